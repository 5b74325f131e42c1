"""From audio files to embeddings: the windowing every evaluation shares, a folder export, and a
disk cache so a file is embedded once per (model, setting, corruption), whatever task or command asks.

Windows are ``encoder.input_samples`` long, the crop the encoder was trained on, so the network
always sees the input size its statistics were learnt from. A clip shorter than a window, or the
tail of a longer one, is zero-padded to a full window. A clip's embedding is the mean of its
window embeddings (each window already pooled by the encoder). A cap on the windows per clip (the
papers' "up to 64 chunks per track") keeps that many, evenly spaced over the whole clip, so a long
track costs no more than the cap and is still heard from start to end.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

import mucon
from mucon.audio.io import AudioDecodeError, audio_info, load_audio, walk_audio_files
from mucon.data.layouts.tables import labels_by_path
from mucon.encoders import Encoder
from mucon.evaluation.tasks import MAX_CHUNKS
from mucon.files import cache_root, write_atomically
from mucon.heap import keep_freed_heap
from mucon.precision import checked_device, resolve_precision

CACHE_FORMAT = 3  # bump when what is cached, or how it is computed, changes


# --- models ----------------------------------------------------------------------------------------


def resolve_encoder(model: str | os.PathLike | Encoder, device: str | torch.device = "cpu") -> Encoder:
    """The encoder of a checkpoint (via ``mucon.load``) or an ``Encoder`` itself, on ``device``, in eval mode.

    Eval mode matters: batch-norm then uses its running statistics, so a clip's embedding does not
    depend on what else is in the batch.
    """
    device = checked_device(device)
    encoder = model if isinstance(model, Encoder) else mucon.load(model, device).encoder
    return encoder.to(device).eval()


def model_fingerprint(model: str | os.PathLike | Encoder) -> str:
    """A cache key for a model: a checkpoint's path, size and mtime, or a hash of an encoder's weights.

    Path and mtime are enough for checkpoints (hashing hundreds of MB on every run is not); an
    in-memory encoder has no file, so its class, settings and tensors are hashed.
    """
    if not isinstance(model, Encoder):
        path = Path(model).resolve()
        stat = path.stat()
        return f"checkpoint:{path}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(repr(model).encode())
    digest.update(f"{type(model).__qualname__}:{model.sample_rate}:{model.input_samples}:{model.dim}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"encoder:{digest.hexdigest()}"


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's tensors live (CPU for one without any, like a pure feature extractor)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


# --- windows ---------------------------------------------------------------------------------------


def count_windows(n_samples: int, window: int, hop: int) -> int:
    """Windows starting at 0, hop, 2 hop, ... until one reaches the end (at least one), each starting
    inside the clip: a hop longer than the window must not add windows of padding past the end."""
    reaching_the_end = 1 + max(0, -(-(n_samples - window) // hop))
    return min(reaching_the_end, 1 + max(0, n_samples - 1) // hop)


def window_centres(n_samples: int, window: int, hop: int) -> Tensor:
    """Where each window of ``frame_windows`` is centred, in samples: the middle of the audio it holds
    (a window padded past the end, or a short clip, is centred on its part inside the clip)."""
    starts = torch.arange(count_windows(n_samples, window, hop), dtype=torch.float64) * hop
    return (starts + torch.clamp(starts + window, max=n_samples)) / 2


def frame_windows(audio: Tensor, window: int, hop: int) -> Tensor:
    """``[..., T]`` -> ``[..., K, window]``: the last window (or a short clip) zero-padded at the end."""
    n_windows = count_windows(audio.shape[-1], window, hop)
    padded_length = (n_windows - 1) * hop + window
    audio = torch.nn.functional.pad(audio, (0, padded_length - audio.shape[-1]))
    return audio.unfold(-1, window, hop)


@torch.no_grad()
def embed_windows(encoder: Encoder, windows: Tensor, batch_size: int = 64, levels: Tensor | None = None) -> Tensor:
    """``[N, window]`` -> ``[N, D]`` pooled window embeddings, at most ``batch_size`` windows per forward.
    ``levels`` ``[N]``: the RMS of the track each window was cut from, for an encoder that scales by it
    (``Encoder.scales_by_item_level``); without them such an encoder levels each window by itself."""
    keep_freed_heap()  # each forward's activations reuse the last one's memory
    device = module_device(encoder)
    if not encoder.scales_by_item_level:
        levels = None
    outputs = [
        encoder.embed(
            windows[start : start + batch_size].to(device, torch.float32),
            None if levels is None else levels[start : start + batch_size].to(device, torch.float32),
        ).float()
        for start in range(0, windows.shape[0], batch_size)
    ]
    return torch.cat(outputs) if outputs else windows.new_zeros(0, encoder.dim)


def track_level(audio: Tensor) -> Tensor:
    """``[..., T]`` -> ``[...]``: the RMS of each whole track, the level an item-level frontend scales
    its windows by (as ``measure_levels`` does for a store's items in pretraining)."""
    return audio.double().square().mean(-1).sqrt().float()


def spread_windows(n_windows: int, max_windows: int | None) -> np.ndarray:
    """Indices of at most ``max_windows`` of ``n_windows`` windows, evenly spaced from the first to
    the last (all of them when there are no more than the cap, or no cap)."""
    if max_windows is None or n_windows <= max_windows:
        return np.arange(n_windows)
    return np.linspace(0, n_windows - 1, max_windows).round().astype(np.int64)  # spacing > 1: no repeats


class WindowBatcher:
    """Clips in, window embeddings out, in input order: windows of consecutive clips share forward
    passes, so a folder of short files still runs in full batches. At most about one batch plus
    one clip's windows is held at a time. ``max_windows`` caps the windows of a clip (see
    ``spread_windows``)."""

    def __init__(self, encoder: Encoder, hop: int, batch_size: int, max_windows: int | None = None):
        if max_windows is not None and max_windows < 1:
            raise ValueError(f"the windows per clip must be at least 1, got {max_windows}")
        self.encoder, self.hop, self.batch_size, self.max_windows = encoder, hop, batch_size, max_windows
        self.pending: list[tuple[Any, Tensor]] = []
        self.n_pending = 0

    def add(self, key: Any, waveform: Tensor) -> list[tuple[Any, Tensor]]:
        """Queue a clip ``[T]``; returns the ``(key, window embeddings [K, D])`` that a full batch finished."""
        waveform = torch.as_tensor(waveform, dtype=torch.float32)
        windows = frame_windows(waveform, self.encoder.input_samples, self.hop)
        windows = windows[torch.from_numpy(spread_windows(len(windows), self.max_windows))]
        self.pending.append((key, windows, track_level(waveform).expand(len(windows))))
        self.n_pending += len(windows)
        return self.flush() if self.n_pending >= self.batch_size else []

    def flush(self) -> list[tuple[Any, Tensor]]:
        """Embed whatever is queued."""
        if not self.pending:
            return []
        pending, self.pending, self.n_pending = self.pending, [], 0
        embeddings = embed_windows(self.encoder, torch.cat([windows for _, windows, _ in pending]), self.batch_size,
                                   torch.cat([levels for _, _, levels in pending]))
        return list(zip([key for key, _, _ in pending], embeddings.cpu().split([len(w) for _, w, _ in pending])))


def hop_samples(encoder: Encoder, hop_seconds: float | None, default_fraction: float) -> int:
    """A hop in samples: ``hop_seconds`` if given, else ``default_fraction`` of the encoder's window."""
    hop = encoder.input_samples * default_fraction if hop_seconds is None else hop_seconds * encoder.sample_rate
    if hop < 1:
        raise ValueError(f"hop must be at least one sample, got {hop_seconds} s")
    return int(round(hop))


# --- export of a folder ------------------------------------------------------------------------------


FOLDER_OUTPUTS = ("embeddings.npy", "index.csv", "failed.csv", "embeddings.json")  # what embed_folder writes
INDEX_COLUMNS = ("row", "path", "seconds", "windows")


def embedding_cache_dir() -> Path:
    """The cache ``embed`` and ``evaluate`` share by default: a file embedded by one is not embedded again
    by the other under the same model and settings."""
    return cache_root() / "embeddings"


@dataclasses.dataclass
class FolderEmbeddings:
    """What ``embed_folder`` wrote: row i of ``embeddings`` is the file on row i of ``index``."""

    embeddings: Path
    index: Path
    failed: Path
    n_embedded: int
    n_failed: int


def embed_folder(
    model: str | os.PathLike | Encoder,
    audio_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    hop_seconds: float | None = None,
    max_windows: int | None = MAX_CHUNKS,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    metadata: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> FolderEmbeddings:
    """The clip embedding of every audio file under ``audio_dir`` (links followed), written to ``out_dir``.

    Writes ``embeddings.npy`` (float32 ``[files, D]``, open it with ``np.load(..., mmap_mode='r')``),
    ``index.csv`` (row, path relative to audio_dir, seconds, windows, then the label columns of the
    folder's metadata table: ``metadata``, default AUDIO_DIR/metadata.csv, the table ``prepare``
    reads), ``failed.csv`` (path, reason) and ``embeddings.json`` (model, sample rate, window, hop).
    A file's embedding is the mean of its window embeddings: windows of ``encoder.input_samples``
    every ``hop_seconds`` (default: a full window), at most ``max_windows`` of them evenly spread,
    as ``evaluate`` embeds a custom task's tracks. The windows go through the same cache as
    evaluate's (``cache_dir``, default ``$MUCON_CACHE/embeddings``), so a file embedded once with a
    model and these settings is not embedded again by either command; the folder's window
    embeddings are held in memory meanwhile. A file that cannot be decoded is listed in failed.csv.
    Earlier results in ``out_dir`` are replaced only with ``overwrite``: a mistyped folder must not
    cost a finished export.
    """
    if batch_size < 1 or (hop_seconds is not None and hop_seconds <= 0):
        raise ValueError(f"batch size must be at least 1 and the hop positive; got batch size {batch_size}, "
                         f"hop {hop_seconds} s")
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    earlier = [name for name in FOLDER_OUTPUTS if (out_dir / name).exists()]
    if earlier and not overwrite:
        raise FileExistsError(f"{out_dir} already holds embeddings ({', '.join(earlier)}); "
                              "pass --overwrite (overwrite=True) to replace them, or choose another folder")
    if not audio_dir.is_dir():
        raise NotADirectoryError(f"{audio_dir}: not a folder")
    files, unreadable = walk_audio_files(audio_dir)
    label_columns, labels = labels_by_path(audio_dir, Path(metadata) if metadata is not None else None)
    clashing = sorted(set(label_columns) & set(INDEX_COLUMNS))
    if clashing:
        raise ValueError(f"{metadata or audio_dir / 'metadata.csv'}: label column(s) {clashing} clash with index.csv's "
                         f"own columns {list(INDEX_COLUMNS)}; rename them")
    encoder = resolve_encoder(model, device)
    precision, _ = resolve_precision(precision, module_device(encoder).type)
    hop = hop_samples(encoder, hop_seconds, default_fraction=1.0)
    job = EmbeddingJob(encoder, files, fingerprint=model_fingerprint(model), max_windows=max_windows)
    [embedded] = cached_embed_jobs([job], audio_dir, cache_dir if cache_dir is not None else embedding_cache_dir(),
                                   hop_seconds=hop_seconds, batch_size=batch_size, precision=precision,
                                   progress=progress, description=f"embedding {audio_dir.name}")

    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "embeddings.npy", lambda handle: np.save(handle, embedded.means().astype(np.float32)))
    windows = np.diff(embedded.offsets)
    no_labels = ("",) * len(label_columns)

    def write_index(handle) -> None:
        rows = csv.writer(handle)
        rows.writerow([*INDEX_COLUMNS, *label_columns])
        for row, path in enumerate(embedded.paths):
            header = audio_info(audio_dir / path)
            seconds = header.frames / header.sample_rate
            rows.writerow([row, path, f"{seconds:.3f}", windows[row], *labels.get(path, no_labels)])

    def write_failed(handle) -> None:
        rows = csv.writer(handle)
        rows.writerow(["path", "reason"])
        rows.writerows([(path, "unreadable") for path, _ in unreadable])
        rows.writerows(embedded.failed.items())

    write_atomically(out_dir / "index.csv", write_index, mode="w")
    write_atomically(out_dir / "failed.csv", write_failed, mode="w")
    settings = {
        "model": model if not isinstance(model, Encoder) else type(model).__name__,
        "audio_dir": str(audio_dir),
        "sample_rate": encoder.sample_rate,
        "window_samples": encoder.input_samples,
        "hop_samples": hop,
        "max_windows": max_windows,
        "precision": precision,
        "dim": encoder.dim,
        "pooling": "mean of window embeddings",
        "labels": list(label_columns),
    }
    (out_dir / "embeddings.json").write_text(json.dumps(settings, indent=2, default=str))
    return FolderEmbeddings(out_dir / "embeddings.npy", out_dir / "index.csv", out_dir / "failed.csv",
                            len(embedded.paths), len(unreadable) + len(embedded.failed))


# --- cached embeddings of a task's files -------------------------------------------------------------


@dataclasses.dataclass
class FileEmbeddings:
    """Window embeddings of a list of files: those of ``paths[i]`` are ``windows[offsets[i]:offsets[i+1]]``."""

    paths: list[str]
    windows: np.ndarray
    offsets: np.ndarray
    failed: dict[str, str]

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
    downstream protocol. Files that cannot be decoded end up in each job's ``failed``. With
    ``precision="bf16-mixed"`` the encoders run under bf16 autocast (front ends and embeddings stay float32).
    """
    audio_root = Path(audio_root)
    windows: list[dict[str, np.ndarray]] = [{} for _ in jobs]
    failed: list[dict[str, str]] = [{} for _ in jobs]
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
                            collect(n, batchers[n].add(path, heard))
            for n in numbers:
                collect(n, batchers[n].flush())
        bar.close()
    results = []
    for job, embedded, job_failed in zip(jobs, windows, failed):
        kept = [path for path in job.paths if path in embedded]
        offsets = np.cumsum([0] + [len(embedded[path]) for path in kept])
        matrix = np.concatenate([embedded[path] for path in kept]) if kept else np.zeros((0, job.encoder.dim), np.float32)
        results.append(FileEmbeddings(kept, matrix, offsets, job_failed))
    return results


def embed_files(
    encoder: Encoder, audio_root: str | os.PathLike, paths: Sequence[str], *, corruption=None, **options
) -> FileEmbeddings:
    """Window embeddings of ``paths`` (relative to ``audio_root``), optionally corrupted first
    (``corruption``: a ``robustness.Condition``); ``options`` as for ``embed_jobs``."""
    return embed_jobs([EmbeddingJob(encoder, paths, corruption)], audio_root, **options)[0]


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
        paths, failed = list(self.windows), list(self.failed)
        partial = path.with_suffix(".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:  # a file handle: np.savez would append .npz to a name
            np.savez(
                handle,
                paths=np.array(paths, dtype=str),
                windows=np.concatenate([self.windows[p] for p in paths]) if paths else np.zeros((0, 0), np.float32),
                offsets=np.cumsum([0] + [len(self.windows[p]) for p in paths]),
                failed_paths=np.array(failed, dtype=str),
                failed_reasons=np.array([self.failed[p] for p in failed], dtype=str),
                stamps=np.array([self.stamps[p] for p in paths + failed], dtype=np.int64).reshape(-1, 2),
            )
        os.replace(partial, path)  # readers never see half a file

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
    if missing_jobs:
        computed = embed_jobs(missing_jobs, audio_root, seed=seed, hop_seconds=hop_seconds, precision=precision,
                              **options)
        for key, result in zip(missing_keys, computed):
            caches[key].add(result, stamps)
            caches[key].save(cache_dir / f"{key}.npz")
    return [caches[key].select(job, job.encoder.dim) for key, job in zip(keys, jobs)]
