"""A folder's clip embeddings written to disk with an index of its files and their labels."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from mucon.audio.io import audio_info, walk_audio_files
from mucon.data.layouts.tables import labels_by_path
from mucon.encoders import Encoder
from mucon.evaluation.embedding_cache import cached_embed_jobs, embedding_cache_dir
from mucon.evaluation.embed import EmbeddingJob
from mucon.evaluation.model_identity import model_fingerprint, module_device, resolve_encoder
from mucon.evaluation.exported_models import is_exported_source, load_exported_encoder
from mucon.evaluation.inference_form import for_inference
from mucon.evaluation.tasks import MAX_CHUNKS
from mucon.evaluation.windows import hop_samples
from mucon.files import write_atomically
from mucon.precision import resolve_precision

FOLDER_OUTPUTS = ("embeddings.npy", "index.csv", "failed.csv", "embeddings.json")  # what embed_folder writes
INDEX_COLUMNS = ("row", "path", "seconds", "windows")


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
    """The clip embedding of every audio file under ``audio_dir`` (links followed), written to ``out_dir``;
    ``model``: a checkpoint, an ``Encoder`` or ``onnx:FILE`` or ``pt2:FILE`` (a file of ``mucon export``).

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
    source = load_exported_encoder(model) if is_exported_source(model) else model
    encoder = resolve_encoder(source, device)
    if source is model and not isinstance(model, Encoder):  # a checkpoint: the form evaluate embeds it in, one cache
        encoder = for_inference(encoder)
    precision, _ = resolve_precision(precision, module_device(encoder).type)
    hop = hop_samples(encoder, hop_seconds, default_fraction=1.0)
    job = EmbeddingJob(encoder, files, fingerprint=model_fingerprint(source), max_windows=max_windows)
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
    write_atomically(out_dir / "embeddings.json", lambda handle: handle.write(json.dumps(settings, indent=2, default=str)),
                     mode="w")
    return FolderEmbeddings(out_dir / "embeddings.npy", out_dir / "index.csv", out_dir / "failed.csv",
                            len(embedded.paths), len(unreadable) + len(embedded.failed))

