import subprocess
import sys

import pytest
import torch
from embedding_clips import RATE, small_encoder, tone

from mucon import hear
from mucon.evaluation.windows import WindowBatcher
from mucon.heap import keep_freed_heap

FAULTS_OF_A_REPEATED_FORWARD = """
import resource, torch
from mucon.encoders import build_encoder
from mucon.evaluation.windows import embed_windows
encoder = build_encoder("small_cnn", sample_rate=16000, input_samples=16000).eval()
windows = torch.randn(256, 16000)
embed_windows(encoder, windows, 256)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
embed_windows(encoder, windows, 256)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


@pytest.mark.skipif(not keep_freed_heap(), reason="needs glibc's mallopt")
def test_a_repeated_forward_reuses_the_freed_memory_of_the_last_one_instead_of_faulting_it_in_again():
    """The activations of 256 windows take about 1 GB; glibc would hand them back to the OS after
    every forward and fault them in again at the next one (half the embedding time on a 2-core CPU).
    Measured in a new process, as `mucon evaluate` runs: this one's heap is shaped by other tests."""
    result = subprocess.run([sys.executable, "-c", FAULTS_OF_A_REPEATED_FORWARD], capture_output=True, text=True,
                            check=True)
    assert int(result.stdout) < 50_000  # about 230,000 pages (900 MB) when the heap is given back


@pytest.mark.parametrize("frontend, windows_differ", [("cola", True), ("cola_crop_level", False)])
def test_an_item_level_encoder_embeds_a_tracks_windows_at_the_tracks_level_as_in_pretraining(frontend, windows_differ):
    """A loud second and the same second 40 dB quieter in one track: at the track's level (COLA's and MSCOL's
    pretraining) the quiet window stays quiet and embeds apart from the loud one; leveled window by window
    (``cola_crop_level``) the two are one input. HEAR's windows follow the same rule."""
    encoder = small_encoder(frontend=frontend)
    loud = torch.from_numpy(tone(1.0, 220))
    track = torch.cat([loud, 0.01 * loud])
    batcher = WindowBatcher(encoder, hop=RATE, batch_size=8)
    [(_, windows)] = batcher.add("track", track) + batcher.flush()
    hear_windows, _ = hear.get_timestamp_embeddings(track[None], hear.model_from_encoder(encoder, hop_seconds=1.0))
    for embedded in (windows, hear_windows[0]):
        assert (not torch.allclose(embedded[0], embedded[1], atol=1e-4)) == windows_differ
