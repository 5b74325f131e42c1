import numpy as np
import pytest
import soundfile as sf
from embedding_clips import RATE, tone

from mucon.evaluation import embedding_cache
from mucon.evaluation.embed import EmbeddingJob
from mucon.evaluation.embedding_cache import cached_embed_jobs
from mucon.evaluation.model_identity import model_fingerprint
from mucon.evaluation.robustness import Condition


def test_file_embeddings_are_cached_and_recomputed_when_a_file_changes(encoder, folder, tmp_path, monkeypatch):
    paths = ["a.wav", "broken.wav", "sub/c.wav"]
    job = EmbeddingJob(encoder, paths, fingerprint=model_fingerprint(encoder))
    [first] = cached_embed_jobs([job], folder, tmp_path / "cache", progress=False)
    assert first.paths == ["a.wav", "sub/c.wav"] and first.failed == {"broken.wav": "not audio"}
    assert first.means().shape == (2, encoder.dim)

    def no_embedding(*args, **kwargs):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(embedding_cache, "embed_jobs", no_embedding)
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
    real = embedding_cache.embed_jobs
    monkeypatch.setattr(embedding_cache, "embed_jobs", lambda jobs, *a, **k: asked.append(list(jobs)) or real(jobs, *a, **k))
    cached_embed_jobs([first, second], folder, tmp_path / "cache", progress=False)
    assert asked == [[second]]


def test_a_job_over_files_an_earlier_job_embedded_embeds_only_the_new_ones(encoder, folder, tmp_path, monkeypatch):
    fingerprint = model_fingerprint(encoder)
    [alone] = cached_embed_jobs([EmbeddingJob(encoder, ["a.wav"], fingerprint=fingerprint)], folder,
                                tmp_path / "cache", progress=False)
    asked = []
    real = embedding_cache.embed_jobs
    monkeypatch.setattr(embedding_cache, "embed_jobs", lambda jobs, *a, **k: asked.append([j.paths for j in jobs]) or real(
        jobs, *a, **k))
    [both] = cached_embed_jobs([EmbeddingJob(encoder, ["d.wav", "a.wav"], fingerprint=fingerprint)], folder,
                               tmp_path / "cache", progress=False)
    assert asked == [[["d.wav"]]] and both.paths == ["d.wav", "a.wav"]
    np.testing.assert_array_equal(both.windows[both.offsets[1]:], alone.windows)
    [again] = cached_embed_jobs([EmbeddingJob(encoder, ["a.wav"], fingerprint=fingerprint)], folder,
                                tmp_path / "cache", progress=False)
    assert asked == [[["d.wav"]]]  # nothing new: both files come from the cache
    np.testing.assert_array_equal(again.windows, alone.windows)


def test_bf16_embeddings_run_under_autocast_are_float32_close_to_float32_ones_and_cached_apart(encoder, folder, tmp_path):
    paths = ["a.wav", "d.wav"]
    job = EmbeddingJob(encoder, paths, fingerprint=model_fingerprint(encoder))
    full = cached_embed_jobs([job], folder, tmp_path, precision="32-true", progress=False)[0]
    half = cached_embed_jobs([job], folder, tmp_path, precision="bf16-mixed", progress=False)[0]
    assert half.windows.dtype == np.float32 and not np.array_equal(half.windows, full.windows)
    np.testing.assert_allclose(half.windows, full.windows, rtol=0.1, atol=0.05)
    assert len(list(tmp_path.glob("*.npz"))) == 2
