"""The disk cache of window embeddings, so a file is embedded once per (model, setting, corruption),
whatever task or command asks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mucon.evaluation.embed import EmbeddingJob, FileEmbeddings, embed_jobs
from mucon.files import cache_root, write_atomically

CACHE_FORMAT = 4  # bump when what is cached, or how it is computed, changes (4: batch norms folded at inference)


def embedding_cache_dir() -> Path:
    """The cache ``embed`` and ``evaluate`` share by default: a file embedded by one is not embedded again
    by the other under the same model and settings."""
    return cache_root() / "embeddings"


def _file_stamp(path: Path) -> tuple[int, int]:
    """A file's size and mtime: a cached embedding stands while they do ((-1, -1): no such file)."""
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def _stream_key(job: EmbeddingJob, audio_root: Path, seed: int, hop_seconds: float | None, precision: str) -> str:
    """What makes two embeddings of one file the same: the model, the folder, the corruption (and its
    seed), the hop, the window cap, the averaging and the precision; not which other files a job asks for."""
    description = {
        "format": CACHE_FORMAT,
        "model": job.fingerprint,
        "sample_rate": job.encoder.sample_rate,
        "window": job.encoder.input_samples,
        "root": str(audio_root.resolve()),
        "corruption": None if job.corruption is None else job.corruption.key,
        "hop_seconds": hop_seconds,
        "precision": precision,
        "max_windows": job.max_windows,
        "average": job.average,
    }
    if job.corruption is not None:
        description["seed"] = seed
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


@dataclasses.dataclass
class _StreamCache:
    """The embeddings a model has made of a folder's files under one setting, file by file, with the
    stamp each file had: kept in one .npz per setting and grown by every run that needs more files."""

    windows: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    stamps: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _StreamCache:
        if not path.is_file():
            return cls()
        with np.load(path) as stored:
            paths, windows, offsets = stored["paths"].tolist(), stored["windows"], stored["offsets"]
            failed_paths = stored["failed_paths"].tolist()
            stamps = [tuple(map(int, stamp)) for stamp in stored["stamps"]]
            return cls({p: windows[offsets[i]:offsets[i + 1]] for i, p in enumerate(paths)},
                       dict(zip(failed_paths, stored["failed_reasons"].tolist())),
                       dict(zip(paths + failed_paths, stamps)))

    def save(self, path: Path) -> None:
        """Replace the file at ``path`` whole: a reader, or a run killed mid-save, never sees half of it."""
        paths, failed = list(self.windows), list(self.failed)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda handle: np.savez(  # a file handle: np.savez would append .npz to a name
            handle,
            paths=np.array(paths, dtype=str),
            windows=np.concatenate([self.windows[p] for p in paths]) if paths else np.zeros((0, 0), np.float32),
            offsets=np.cumsum([0] + [len(self.windows[p]) for p in paths]),
            failed_paths=np.array(failed, dtype=str),
            failed_reasons=np.array([self.failed[p] for p in failed], dtype=str),
            stamps=np.array([self.stamps[p] for p in paths + failed], dtype=np.int64).reshape(-1, 2),
        ))

    def add(self, result: FileEmbeddings, stamps: dict[str, tuple[int, int]]) -> None:
        """Take in what was computed: each file's new embedding or failure replaces its old entry."""
        for i, path in enumerate(result.paths):
            self.failed.pop(path, None)
            self.windows[path] = result.windows[result.offsets[i]:result.offsets[i + 1]]
            self.stamps[path] = stamps[path]
        for path, reason in result.failed.items():
            self.windows.pop(path, None)
            self.failed[path], self.stamps[path] = reason, stamps[path]

    def select(self, job: EmbeddingJob, dim: int) -> FileEmbeddings:
        kept = [path for path in job.paths if path in self.windows]
        matrix = np.concatenate([self.windows[p] for p in kept]) if kept else np.zeros((0, dim), np.float32)
        return FileEmbeddings(kept, matrix, np.cumsum([0] + [len(self.windows[p]) for p in kept]),
                              {path: self.failed[path] for path in job.paths if path in self.failed})


def cached_embed_jobs(
    jobs: Sequence[EmbeddingJob],
    audio_root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    seed: int = 0,
    hop_seconds: float | None = None,
    precision: str = "32-true",
    **options,
) -> list[FileEmbeddings]:
    """``embed_jobs``, with every file's embedding kept in ``cache_dir`` and computed only once.

    The cache holds, per model and setting (see ``_stream_key``), each file's embedding with the
    file's size and mtime: a job takes what is there and only its missing or changed files are
    embedded (all jobs' together, so a file is still decoded once). So a task re-run alone, or a
    task over files an earlier run embedded, costs no encoding; editing a file or retraining a
    checkpoint (its fingerprint) invalidates what it touches.
    """
    audio_root, cache_dir = Path(audio_root), Path(cache_dir)
    keys = [_stream_key(job, audio_root, seed, hop_seconds, precision) for job in jobs]
    caches = {key: _StreamCache.load(cache_dir / f"{key}.npz") for key in dict.fromkeys(keys)}
    stamps = {path: _file_stamp(audio_root / path) for job in jobs for path in job.paths}
    missing_jobs, missing_keys = [], []
    for key in caches:
        numbers = [n for n, job_key in enumerate(keys) if job_key == key]
        wanted = dict.fromkeys(path for n in numbers for path in jobs[n].paths)
        missing = [path for path in wanted if caches[key].stamps.get(path) != stamps[path]]
        if missing:
            missing_jobs.append(dataclasses.replace(jobs[numbers[0]], paths=missing))
            missing_keys.append(key)
    broken = {}
    if missing_jobs:
        computed = embed_jobs(missing_jobs, audio_root, seed=seed, hop_seconds=hop_seconds, precision=precision,
                              **options)
        for key, result in zip(missing_keys, computed):
            if result.broken:  # an unfinished job is not kept: a later run tries the files again
                broken[key] = result.broken
                continue
            caches[key].add(result, stamps)
            caches[key].save(cache_dir / f"{key}.npz")
    return [dataclasses.replace(caches[key].select(job, job.encoder.dim), broken=broken.get(key))
            for key, job in zip(keys, jobs)]
