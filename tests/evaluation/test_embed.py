import csv
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from mucon import hear
from mucon.audio.io import load_audio
from mucon.encoders import build_encoder
from mucon.evaluation import embed
from mucon.evaluation.embed import EmbeddingJob, cached_embed_jobs, embed_files, embed_folder, embed_jobs, model_fingerprint
from mucon.evaluation.robustness import Condition
from mucon.heap import keep_freed_heap

RATE = 16000


@pytest.fixture(scope="module")
def encoder():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE).eval()


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    """Five good files (one in a subfolder, one at 22.05 kHz, one shorter than a window) and a bad one."""
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", tone(2.0, 220), RATE)
    sf.write(root / "b.flac", tone(1.3, 330), RATE)
    sf.write(root / "sub" / "c.wav", tone(0.4, 440), RATE)
    sf.write(root / "d.wav", tone(1.0, 550), RATE)
    sf.write(root / "e.wav", tone(1.5, 660), 22050)
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (root / "notes.txt").write_text("not audio: ignored")
    return root


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_embed_folder_embeds_every_good_file_and_reports_the_bad_one(encoder, folder, tmp_path):
    result = embed_folder(encoder, folder, tmp_path / "out", batch_size=4, progress=False)
    index = read_csv(result.index)
    failed = read_csv(result.failed)
    assert [row["path"] for row in index] == ["a.wav", "b.flac", "d.wav", "e.wav", "sub/c.wav"]
    assert [(row["path"], row["reason"]) for row in failed] == [("broken.wav", "not audio")]
    assert (result.n_embedded, result.n_failed) == (5, 1)
    matrix = np.load(result.embeddings, mmap_mode="r")
    assert matrix.shape == (5, encoder.dim) and matrix.dtype == np.float32 and np.isfinite(matrix).all()


def test_embed_folder_with_a_hop_longer_than_the_window_embeds_no_window_past_the_end_of_a_file(encoder, folder, tmp_path):
    result = embed_folder(encoder, folder, tmp_path / "out", hop_seconds=1.5, progress=False)
    windows = {row["path"]: int(row["windows"]) for row in read_csv(result.index)}
    assert windows == {"a.wav": 2, "b.flac": 1, "d.wav": 1, "e.wav": 1, "sub/c.wav": 1}  # a.wav: at 0 and 1.5 s


def test_embed_with_a_batch_size_of_zero_fails_before_writing_anything(folder, tmp_path, capsys):
    from mucon.cli import main

    out = tmp_path / "out"
    code = main(["embed", str(folder), "--checkpoint", str(tmp_path / "run.ckpt"), "--out", str(out),
                 "--batch-size", "0", "--quiet"])
    assert code == 2 and "batch size" in capsys.readouterr().err
    assert not out.exists()


def test_embed_folder_rows_are_the_hear_scene_embeddings_of_the_files(encoder, folder, tmp_path):
    half_window = encoder.input_samples / RATE / 2  # HEAR's hop
    result = embed_folder(encoder, folder, tmp_path / "out", hop_seconds=half_window, max_windows=None, batch_size=3,
                          precision="32-true", progress=False)
    matrix = np.load(result.embeddings)
    model = hear.model_from_encoder(encoder)
    for row in read_csv(result.index):
        audio = torch.from_numpy(load_audio(folder / row["path"], RATE)).unsqueeze(0)
        expected = hear.get_scene_embeddings(audio, model)[0].numpy()
        np.testing.assert_allclose(matrix[int(row["row"])], expected, atol=1e-5, rtol=1e-4)
        assert int(row["windows"]) == max(1, int(np.ceil((audio.shape[1] - RATE) / (RATE // 2))) + 1)


def test_windows_of_many_short_files_share_forward_passes(encoder, folder):
    for copy in range(6):
        sf.write(folder / f"short{copy}.wav", tone(1.0, 550), RATE)
    calls = []
    handle = encoder.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    try:
        result = embed_files(encoder, folder, [f"short{copy}.wav" for copy in range(6)], batch_size=4, progress=False)
    finally:
        handle.remove()
    assert calls == [4, 2] and len(result.paths) == 6
    np.testing.assert_allclose(result.windows, np.repeat(result.windows[:1], 6, axis=0), atol=1e-5)


def test_each_file_is_decoded_once_for_every_model_and_condition_at_its_rate(encoder, folder, monkeypatch):
    other = build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE // 2).eval()
    at_22k = build_encoder("small_cnn", sample_rate=22050, input_samples=22050).eval()
    decoded = []
    monkeypatch.setattr(embed, "load_audio", lambda path, rate: decoded.append((path.name, rate)) or load_audio(path, rate))
    paths, test_paths = ["a.wav", "b.flac", "broken.wav"], ["a.wav", "broken.wav"]
    reverse, bitcrush = Condition("reverse", 1.0), Condition("bitcrush", 2.0)
    jobs = [EmbeddingJob(encoder, paths), EmbeddingJob(other, paths), EmbeddingJob(at_22k, paths),
            EmbeddingJob(encoder, test_paths, reverse), EmbeddingJob(encoder, test_paths, bitcrush),
            EmbeddingJob(other, test_paths, reverse)]
    together = embed_jobs(jobs, folder, batch_size=3, progress=False)
    assert sorted(decoded) == sorted([(name.split("/")[-1], rate) for name in paths for rate in (RATE, 22050)])
    assert [result.paths for result in together] == [["a.wav", "b.flac"]] * 3 + [["a.wav"]] * 3
    assert all(result.failed == {"broken.wav": "not audio"} for result in together)
    for job, result in zip(jobs, together):  # the same embeddings as one job at a time
        alone = embed_jobs([job], folder, batch_size=5, progress=False)[0]
        np.testing.assert_allclose(result.windows, alone.windows, atol=1e-5)
        np.testing.assert_array_equal(result.offsets, alone.offsets)
    reversed_alone = embed_files(encoder, folder, ["a.wav"], progress=False, corruption=reverse).windows
    assert not np.allclose(reversed_alone, together[0].windows[: len(reversed_alone)], atol=1e-3)


def test_a_window_cap_keeps_that_many_windows_evenly_spread_from_the_first_to_the_last(encoder, tmp_path):
    sf.write(tmp_path / "long.wav", tone(10.0, 220) * np.linspace(0.2, 1.0, 10 * RATE, dtype=np.float32), RATE)
    every, capped, averaged = embed_jobs([EmbeddingJob(encoder, ["long.wav"]),
                                          EmbeddingJob(encoder, ["long.wav"], max_windows=4),
                                          EmbeddingJob(encoder, ["long.wav"], max_windows=4, average=True)],
                                         tmp_path, progress=False)
    assert len(every.windows) == 10 and len(capped.windows) == 4
    np.testing.assert_allclose(capped.windows, every.windows[[0, 3, 6, 9]], atol=1e-5)
    np.testing.assert_allclose(averaged.windows, capped.windows.mean(axis=0, keepdims=True), atol=1e-5)
    np.testing.assert_array_equal(averaged.offsets, [0, 1])


def test_file_embeddings_are_cached_and_recomputed_when_a_file_changes(encoder, folder, tmp_path, monkeypatch):
    paths = ["a.wav", "broken.wav", "sub/c.wav"]
    job = EmbeddingJob(encoder, paths, fingerprint=model_fingerprint(encoder))
    [first] = cached_embed_jobs([job], folder, tmp_path / "cache", progress=False)
    assert first.paths == ["a.wav", "sub/c.wav"] and first.failed == {"broken.wav": "not audio"}
    assert first.means().shape == (2, encoder.dim)

    def no_embedding(*args, **kwargs):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(embed, "embed_jobs", no_embedding)
    [again] = cached_embed_jobs([job], folder, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again.windows, first.windows)
    assert again.failed == first.failed

    sf.write(folder / "a.wav", tone(2.5, 220), RATE)  # size and mtime change: the key changes
    with pytest.raises(AssertionError, match="cache"):
        cached_embed_jobs([job], folder, tmp_path / "cache", progress=False)


def test_only_the_jobs_missing_from_the_cache_are_embedded(encoder, folder, tmp_path, monkeypatch):
    first = EmbeddingJob(encoder, ["a.wav"], fingerprint=model_fingerprint(encoder))
    cached_embed_jobs([first], folder, tmp_path / "cache", progress=False)
    second = EmbeddingJob(encoder, ["a.wav"], Condition("reverse", 1.0), fingerprint=model_fingerprint(encoder))
    asked = []
    real = embed.embed_jobs
    monkeypatch.setattr(embed, "embed_jobs", lambda jobs, *a, **k: asked.append(list(jobs)) or real(jobs, *a, **k))
    cached_embed_jobs([first, second], folder, tmp_path / "cache", progress=False)
    assert asked == [[second]]


def test_a_job_over_files_an_earlier_job_embedded_embeds_only_the_new_ones(encoder, folder, tmp_path, monkeypatch):
    fingerprint = model_fingerprint(encoder)
    [alone] = cached_embed_jobs([EmbeddingJob(encoder, ["a.wav"], fingerprint=fingerprint)], folder,
                                tmp_path / "cache", progress=False)
    asked = []
    real = embed.embed_jobs
    monkeypatch.setattr(embed, "embed_jobs", lambda jobs, *a, **k: asked.append([j.paths for j in jobs]) or real(
        jobs, *a, **k))
    [both] = cached_embed_jobs([EmbeddingJob(encoder, ["d.wav", "a.wav"], fingerprint=fingerprint)], folder,
                               tmp_path / "cache", progress=False)
    assert asked == [[["d.wav"]]] and both.paths == ["d.wav", "a.wav"]
    np.testing.assert_array_equal(both.windows[both.offsets[1]:], alone.windows)
    [again] = cached_embed_jobs([EmbeddingJob(encoder, ["a.wav"], fingerprint=fingerprint)], folder,
                                tmp_path / "cache", progress=False)
    assert asked == [[["d.wav"]]]  # nothing new: both files come from the cache
    np.testing.assert_array_equal(again.windows, alone.windows)


def test_fingerprint_changes_with_the_weights_not_with_the_object(encoder):
    copy = build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE)
    copy.load_state_dict(encoder.state_dict())
    assert model_fingerprint(copy) == model_fingerprint(encoder)
    with torch.no_grad():
        copy.to_frames.bias.add_(1.0)
    assert model_fingerprint(copy) != model_fingerprint(encoder)


def test_bf16_embeddings_run_under_autocast_are_float32_close_to_float32_ones_and_cached_apart(encoder, folder, tmp_path):
    paths = ["a.wav", "d.wav"]
    job = EmbeddingJob(encoder, paths, fingerprint=model_fingerprint(encoder))
    full = cached_embed_jobs([job], folder, tmp_path, precision="32-true", progress=False)[0]
    half = cached_embed_jobs([job], folder, tmp_path, precision="bf16-mixed", progress=False)[0]
    assert half.windows.dtype == np.float32 and not np.array_equal(half.windows, full.windows)
    np.testing.assert_allclose(half.windows, full.windows, rtol=0.1, atol=0.05)
    assert len(list(tmp_path.glob("*.npz"))) == 2


FAULTS_OF_A_REPEATED_FORWARD = """
import resource, torch
from mucon.encoders import build_encoder
from mucon.evaluation.embed import embed_windows
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
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE, frontend=frontend).eval()
    loud = torch.from_numpy(tone(1.0, 220))
    track = torch.cat([loud, 0.01 * loud])
    batcher = embed.WindowBatcher(encoder, hop=RATE, batch_size=8)
    [(_, windows)] = batcher.add("track", track) + batcher.flush()
    hear_windows, _ = hear.get_timestamp_embeddings(track[None], hear.model_from_encoder(encoder, hop_seconds=1.0))
    for embedded in (windows, hear_windows[0]):
        assert (not torch.allclose(embedded[0], embedded[1], atol=1e-4)) == windows_differ
