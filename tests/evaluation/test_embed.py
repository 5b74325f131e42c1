import numpy as np
import soundfile as sf
from embedding_clips import RATE, tone

from mucon.audio.io import load_audio
from mucon.encoders import build_encoder
from mucon.evaluation import embed
from mucon.evaluation.embed import EmbeddingJob, embed_files, embed_jobs
from mucon.evaluation.robustness import Condition


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
