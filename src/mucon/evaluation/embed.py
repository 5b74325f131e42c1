"""From audio files to window embeddings: every file decoded once per sample rate, corrupted once
per condition, and handed to each encoder that asks for it (the windowing is ``windows``'s, the disk
cache ``embedding_cache``'s)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mucon.audio.io import AudioDecodeError, load_audio
from mucon.encoders import Encoder
from mucon.evaluation.model_identity import module_device
from mucon.evaluation.windows import WindowBatcher, hop_samples


class BrokenModel(ValueError):
    """An encoder that cannot give embeddings (its own code failed, a wrong shape, NaN or Inf); the
    message names it and the problem."""


@dataclasses.dataclass
class FileEmbeddings:
    """Window embeddings of a list of files: those of ``paths[i]`` are ``windows[offsets[i]:offsets[i+1]]``.
    ``broken``: why the encoder stopped giving embeddings part way (``BrokenModel``), its job left unfinished."""

    paths: list[str]
    windows: np.ndarray
    offsets: np.ndarray
    failed: dict[str, str]
    broken: str | None = None

    def means(self) -> np.ndarray:
        """One vector per file: the mean of its windows."""
        sums = np.add.reduceat(self.windows, self.offsets[:-1], axis=0) if len(self.paths) else self.windows[:0]
        return sums / np.diff(self.offsets)[:, None]

    def chunks(self, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Windows of ``paths`` (all embedded) and, for each window, the position of its file in ``paths``."""
        position = {path: i for i, path in enumerate(self.paths)}
        ranges = [(self.offsets[position[p]], self.offsets[position[p] + 1]) for p in paths]
        rows = np.concatenate([np.arange(start, end) for start, end in ranges]) if ranges else np.zeros(0, int)
        owner = np.repeat(np.arange(len(paths)), [end - start for start, end in ranges])
        return self.windows[rows], owner


def _file_generator(seed: int, condition_key: str, path: str) -> torch.Generator:
    """A generator per (seed, corruption, file): the corrupted audio of a file never depends on which
    other files, models or batches came before it, which is what makes it cacheable."""
    digest = hashlib.sha256(f"{seed}|{condition_key}|{path}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


@dataclasses.dataclass(frozen=True)
class EmbeddingJob:
    """One set of window embeddings to make: ``encoder`` on ``paths`` (relative to an audio root,
    without repeats), clean or under a ``robustness.Condition``. ``fingerprint`` (see
    ``model_fingerprint``) identifies the encoder in the cache. ``max_windows`` caps a file's
    windows (see ``spread_windows``); with ``average`` a file keeps only the mean of its windows
    (one row): the track embedding of mucon's benchmark protocol, which also keeps memory and cache small."""

    encoder: Encoder
    paths: Sequence[str]
    corruption: Any = None
    fingerprint: str = ""
    max_windows: int | None = None
    average: bool = False


def embed_jobs(
    jobs: Sequence[EmbeddingJob],
    audio_root: str | os.PathLike,
    *,
    seed: int = 0,
    hop_seconds: float | None = None,
    batch_size: int = 64,
    progress: bool = True,
    description: str = "embedding",
    precision: str = "32-true",
) -> list[FileEmbeddings]:
    """The window embeddings of every job, decoding each file once per sample rate for all of them.

    Decoding and resampling cost as much as a small encoder's forward pass, so the files are
    walked once for every sample rate among the jobs; each file is corrupted once per condition
    (with a generator seeded by (seed, condition, path)) and handed to every encoder at that rate
    that asks for it. The default hop is a full window: non-overlapping chunks, as in SemiSupCon's
    downstream protocol. Files that cannot be decoded end up in each job's ``failed``; an encoder that
    raises ``BrokenModel`` stops there, each of its jobs ``broken``, and the others go on. With
    ``precision="bf16-mixed"`` the encoders run under bf16 autocast (front ends and embeddings stay float32).
    """
    audio_root = Path(audio_root)
    windows: list[dict[str, np.ndarray]] = [{} for _ in jobs]
    failed: list[dict[str, str]] = [{} for _ in jobs]
    broken: dict[int, str] = {}
    by_rate: dict[int, list[int]] = {}
    for number, job in enumerate(jobs):
        by_rate.setdefault(job.encoder.sample_rate, []).append(number)
    for rate, numbers in by_rate.items():
        batchers = {n: WindowBatcher(jobs[n].encoder, hop_samples(jobs[n].encoder, hop_seconds, 1.0), batch_size,
                                     jobs[n].max_windows) for n in numbers}
        wanted = {n: set(jobs[n].paths) for n in numbers}
        paths = list(dict.fromkeys(path for n in numbers for path in jobs[n].paths))
        bar = tqdm(paths, desc=description, unit="file", leave=False, disable=not progress)

        def collect(number: int, finished: list[tuple[Any, Tensor]]) -> None:
            average = jobs[number].average
            windows[number].update((path, (embedded.mean(dim=0, keepdim=True) if average else embedded).numpy())
                                   for path, embedded in finished)

        def feed(number: int, step, *args) -> None:
            """``step`` of a job's batcher, collected; a broken encoder's jobs all stop, the others go on."""
            if number in broken:
                return
            try:
                collect(number, step(*args))
            except BrokenModel as error:
                broken.update((n, str(error)) for n, job in enumerate(jobs) if job.encoder is jobs[number].encoder)

        devices = {module_device(jobs[n].encoder).type for n in numbers}
        autocast = torch.autocast(devices.pop() if len(devices) == 1 else "cpu", dtype=torch.bfloat16,
                                  enabled=precision == "bf16-mixed")
        with torch.inference_mode(), autocast:
            for path in bar:
                readers = [n for n in numbers if path in wanted[n]]
                try:
                    audio = torch.from_numpy(load_audio(audio_root / path, rate))
                except AudioDecodeError as error:
                    for n in readers:
                        failed[n][path] = error.reason
                    continue
                for corruption in dict.fromkeys(jobs[n].corruption for n in readers):
                    heard = audio
                    if corruption is not None:
                        generator = _file_generator(seed, corruption.key, path)
                        heard = corruption.apply(audio.unsqueeze(0), rate, generator)[0]
                    for n in readers:
                        if jobs[n].corruption == corruption:
                            feed(n, batchers[n].add, path, heard)
            for n in numbers:
                feed(n, batchers[n].flush)
        bar.close()
    results = []
    for number, (job, embedded, job_failed) in enumerate(zip(jobs, windows, failed)):
        kept = [path for path in job.paths if path in embedded]
        offsets = np.cumsum([0] + [len(embedded[path]) for path in kept])
        matrix = np.concatenate([embedded[path] for path in kept]) if kept else np.zeros((0, job.encoder.dim), np.float32)
        results.append(FileEmbeddings(kept, matrix, offsets, job_failed, broken.get(number)))
    return results


def embed_files(
    encoder: Encoder, audio_root: str | os.PathLike, paths: Sequence[str], *, corruption=None, **options
) -> FileEmbeddings:
    """Window embeddings of ``paths`` (relative to ``audio_root``), optionally corrupted first
    (``corruption``: a ``robustness.Condition``); ``options`` as for ``embed_jobs``."""
    return embed_jobs([EmbeddingJob(encoder, paths, corruption)], audio_root, **options)[0]

