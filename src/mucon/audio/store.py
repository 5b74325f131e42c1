"""The prepared store: decode a corpus once, then read random crops by slicing memory maps.

Training draws thousands of random crops per second; decoding compressed audio for each one
would starve the GPU, so ``prepare_store`` writes every file once as int16 PCM and
``AudioStore`` reads crops from memory-mapped shards.

Layout of a finished store (everything per item is a numpy array, so a million-item store
opens without a Python object per item)::

    store.json            format version, sample_rate, counts, seconds, what it was built from
    shard-00000.i16 ...   raw little-endian int16 PCM, items back to back, up to shard_bytes each
                          (an item never spans shards, so a longer item gets a shard of its own)
    index-shard.npy       int32  [N]    shard number of item i
    index-offset.npy      int64  [N]    first sample of item i inside its shard
    index-length.npy      int64  [N]    samples of item i
    paths-blob.npy        uint8  [B]    utf-8 item paths (relative to the audio folder), concatenated
    paths-offsets.npy     int64  [N+1]  item i's path is blob[offsets[i]:offsets[i+1]]
    labels.csv            only with a metadata table: its rows for kept items, in store order
    skipped.csv           path, reason, detail for every input that was not kept

While preparing, the index lives in append-only journals and ``progress.json`` records how far
they (and the shards) are committed; ``progress.json`` is replaced atomically, so after a crash
anything beyond it is truncated and the run resumes at the first uncommitted input.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mucon import __version__
from mucon.audio.io import AudioDecodeError, is_audio_path, load_audio

FORMAT_NAME = "mucon-audio-store"
FORMAT_VERSION = 1
SILENCE_PEAK = 1e-4

# Progress is committed after this many inputs or this much new audio, whichever comes first:
# often enough that a crash loses little work, rarely enough that fsync costs nothing.
_COMMIT_EVERY_FILES = 256
_COMMIT_EVERY_BYTES = 64 * 2**20

_STORE_JSON = "store.json"
_PROGRESS_JSON = "progress.json"
_JOURNAL_ITEMS = "journal-items.i64"
_JOURNAL_PATHS = "journal-paths.bin"
_SKIPPED_CSV = "skipped.csv"
_LABELS_CSV = "labels.csv"
# Scanned file names may hold bytes that are not utf-8; keep them as they are rather than fail.
_SKIPPED_CSV_OPTIONS = {"newline": "", "encoding": "utf-8", "errors": "surrogateescape"}
_INDEX_FILES = ("index-shard", "index-offset", "index-length", "paths-blob", "paths-offsets")
# One journal record per kept item: shard, offset, length, input row, path byte count.
_RECORD_FIELDS = 5


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Quantise float audio in [-1, 1] (clipping beyond) to int16; inverse of ``to_float``."""
    return np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM to float32 in [-1, 1), the scale every model in mucon sees."""
    audio = np.asarray(pcm).astype(np.float32)
    audio *= np.float32(1 / 32768)
    return audio


@dataclass
class PrepareReport:
    """What a prepare run produced, for the CLI to print and scripts to check."""

    kept: int
    skipped: int
    skipped_by_reason: dict[str, int]
    seconds: float
    store_dir: Path

    def summary(self) -> str:
        """One line for the CLI: what was kept, what was skipped and where the skipped files are listed."""
        kept = f"kept {self.kept} files ({self.seconds / 3600:.2f} h) in {self.store_dir}"
        if not self.skipped:
            return f"{kept}; skipped 0"
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped_by_reason.items()))
        return f"{kept}; skipped {self.skipped} ({reasons}), listed in {self.store_dir / _SKIPPED_CSV}"


@dataclass
class _Progress:
    """The committed state of an unfinished store; everything on disk beyond it is discarded."""

    fingerprint: str
    inputs_done: int = 0
    kept: int = 0
    samples: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    num_shards: int = 0
    last_shard_bytes: int = 0
    paths_bytes: int = 0
    skipped_bytes: int = 0


def _write_atomically(path: Path, write, mode: str = "wb") -> None:
    """Write through a temporary file and rename, so readers see the old or the new file only."""
    temporary = path.with_name(path.name + ".tmp")
    text_options = {"newline": "", "encoding": "utf-8"} if "b" not in mode else {}
    with open(temporary, mode, **text_options) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _write_json(path: Path, payload: dict) -> None:
    _write_atomically(path, lambda handle: handle.write(json.dumps(payload, indent=2)), mode="w")


def _csv_writer(handle):
    return csv.writer(handle, lineterminator="\n")


def _shard_path(store_dir: Path, shard: int) -> Path:
    return store_dir / f"shard-{shard:05d}.i16"


def _metadata_rows(metadata: Path) -> Iterator[list[str]]:
    """Yield the header, then each non-blank row padded to the header's width.

    Both the input listing and labels.csv read the table through here, so row numbers agree.
    """
    with open(metadata, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if "path" not in header:
            raise ValueError(f"{metadata} has no 'path' column (columns: {header})")
        yield header
        for row in reader:
            if any(cell.strip() for cell in row):
                yield row + [""] * (len(header) - len(row))


def _list_inputs(audio_dir: Path, metadata: Path | None) -> list[str]:
    """Item paths relative to ``audio_dir``: the metadata rows, or every audio file in sorted order."""
    if metadata is not None:
        rows = _metadata_rows(metadata)
        path_column = next(rows).index("path")
        return [row[path_column] for row in rows]
    found = []
    for root, _, files in os.walk(audio_dir):
        relative_root = Path(root).relative_to(audio_dir)
        found.extend((relative_root / name).as_posix() for name in files if is_audio_path(name))
    return sorted(found)


def _fingerprint(inputs: Sequence[str], sample_rate: int, min_seconds: float, shard_bytes: int) -> str:
    """Identify what a store is built from, so a resume never mixes two different runs."""
    settings = [FORMAT_VERSION, int(sample_rate), float(min_seconds), int(shard_bytes)]
    digest = hashlib.sha256(json.dumps(settings).encode())
    for path in inputs:
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _decode_item(path: str, sample_rate: int, min_seconds: float) -> np.ndarray | AudioDecodeError:
    """Decode one input into int16, or return (not raise) why it cannot be kept.

    Runs in worker processes, so it returns the error: the writer decides, in input order,
    whether a bad file is skipped or stops the run.
    """
    try:
        audio = load_audio(path, sample_rate)
    except AudioDecodeError as error:
        return error
    seconds = audio.shape[0] / sample_rate
    if seconds < min_seconds:
        return AudioDecodeError(path, "too short", f"{seconds:.3f} s < {min_seconds} s")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        return AudioDecodeError(path, "silent", f"peak {peak:.1e} < {SILENCE_PEAK:.0e}")
    return to_int16(audio)


def _exit_with_parent() -> None:
    """Worker initializer: when the preparing process is killed (kill -9 included), stop too.

    Pool workers otherwise wait forever on their task queue, and every interrupted run would
    leave idle decoders behind.
    """

    def wait_then_exit() -> None:
        multiprocessing.parent_process().join()
        os._exit(1)

    threading.Thread(target=wait_then_exit, daemon=True).start()


def _decode_in_order(
    paths: Iterable[str], sample_rate: int, min_seconds: float, num_workers: int
) -> Iterator[np.ndarray | AudioDecodeError]:
    """Decode in parallel but yield in input order, with a bounded number of files in flight."""
    if num_workers <= 1:
        for path in paths:
            yield _decode_item(path, sample_rate, min_seconds)
        return
    # forkserver/spawn rather than fork: the caller may hold threads (tqdm, torch) that fork copies badly.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(num_workers, context, initializer=_exit_with_parent)
    try:
        in_flight = deque()
        for path in paths:
            in_flight.append(pool.submit(_decode_item, path, sample_rate, min_seconds))
            if len(in_flight) >= 4 * num_workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _StoreWriter:
    """Appends items to shards and journals; ``commit`` makes everything written so far durable."""

    def __init__(self, store_dir: Path, progress: _Progress, shard_bytes: int):
        self.store_dir = store_dir
        self.progress = progress
        self.shard_bytes = shard_bytes
        self._discard_uncommitted()
        self._items = open(store_dir / _JOURNAL_ITEMS, "ab")
        self._paths = open(store_dir / _JOURNAL_PATHS, "ab")
        self._skipped = open(store_dir / _SKIPPED_CSV, "a", **_SKIPPED_CSV_OPTIONS)
        self._skipped_csv = _csv_writer(self._skipped)
        self._shard = None
        if progress.num_shards:
            self._shard = open(_shard_path(store_dir, progress.num_shards - 1), "ab")
        # The live state runs ahead of self.progress, which only moves on commit.
        self.live = _Progress(**asdict(progress))
        self.uncommitted_inputs = 0
        self.uncommitted_bytes = 0

    def _discard_uncommitted(self) -> None:
        """Cut every append-only file back to its committed length (a killed run leaves tails)."""
        committed = self.progress
        sizes = {
            _JOURNAL_ITEMS: committed.kept * _RECORD_FIELDS * 8,
            _JOURNAL_PATHS: committed.paths_bytes,
            _SKIPPED_CSV: committed.skipped_bytes,
        }
        for name, size in sizes.items():
            with open(self.store_dir / name, "ab") as handle:
                handle.truncate(size)
        for shard_file in self.store_dir.glob("shard-*.i16"):
            if int(shard_file.stem.split("-")[1]) >= committed.num_shards:
                shard_file.unlink()
        if committed.num_shards:
            with open(_shard_path(self.store_dir, committed.num_shards - 1), "ab") as handle:
                handle.truncate(committed.last_shard_bytes)

    def add(self, input_row: int, path: str, pcm: np.ndarray) -> None:
        live = self.live
        data = np.ascontiguousarray(pcm, dtype="<i2")
        shard_full = live.last_shard_bytes and live.last_shard_bytes + data.nbytes > self.shard_bytes
        if self._shard is None or shard_full:
            self._start_shard()
        self._shard.write(memoryview(data))
        encoded_path = path.encode("utf-8", "surrogateescape")
        record = (live.num_shards - 1, live.last_shard_bytes // 2, len(pcm), input_row, len(encoded_path))
        self._items.write(np.asarray(record, dtype="<i8").tobytes())
        self._paths.write(encoded_path)
        live.last_shard_bytes += data.nbytes
        live.paths_bytes += len(encoded_path)
        live.kept += 1
        live.samples += len(pcm)
        self._count_input(data.nbytes)

    def skip(self, path: str, error: AudioDecodeError) -> None:
        self._skipped_csv.writerow([path, error.reason, error.detail])
        reasons = self.live.skipped_by_reason
        reasons[error.reason] = reasons.get(error.reason, 0) + 1
        self._count_input(0)

    def _count_input(self, new_bytes: int) -> None:
        self.live.inputs_done += 1
        self.uncommitted_inputs += 1
        self.uncommitted_bytes += new_bytes
        if self.uncommitted_inputs >= _COMMIT_EVERY_FILES or self.uncommitted_bytes >= _COMMIT_EVERY_BYTES:
            self.commit()

    def _start_shard(self) -> None:
        if self._shard is not None:
            self._sync(self._shard)
            self._shard.close()
        self.live.num_shards += 1
        self.live.last_shard_bytes = 0
        self._shard = open(_shard_path(self.store_dir, self.live.num_shards - 1), "wb")

    @staticmethod
    def _sync(handle) -> None:
        handle.flush()
        os.fsync(handle.fileno())

    def commit(self) -> None:
        """Make data durable, then move the committed marker: a crash never sees a marker ahead of data."""
        for handle in (self._shard, self._items, self._paths, self._skipped):
            if handle is not None:
                self._sync(handle)
        self.live.skipped_bytes = os.fstat(self._skipped.fileno()).st_size
        _write_json(self.store_dir / _PROGRESS_JSON, asdict(self.live))
        self.progress = _Progress(**asdict(self.live))
        self.uncommitted_inputs = 0
        self.uncommitted_bytes = 0

    def close(self) -> None:
        for handle in (self._shard, self._items, self._paths, self._skipped):
            if handle is not None:
                handle.close()


def _start_or_resume(store_dir: Path, fingerprint: str) -> _Progress:
    """The committed progress of this run, starting a fresh one when there is none."""
    progress_file = store_dir / _PROGRESS_JSON
    if progress_file.exists():
        progress = _Progress(**json.loads(progress_file.read_text()))
        if progress.fingerprint != fingerprint:
            raise ValueError(
                f"{store_dir} holds an unfinished store prepared from other inputs or settings; "
                "finish it with the same command, or delete it / choose another store directory"
            )
        return progress
    store_dir.mkdir(parents=True, exist_ok=True)
    for name in (_JOURNAL_ITEMS, _JOURNAL_PATHS):
        (store_dir / name).write_bytes(b"")
    with open(store_dir / _SKIPPED_CSV, "w", **_SKIPPED_CSV_OPTIONS) as handle:
        _csv_writer(handle).writerow(["path", "reason", "detail"])
    progress = _Progress(fingerprint, skipped_bytes=(store_dir / _SKIPPED_CSV).stat().st_size)
    _write_json(progress_file, asdict(progress))
    return progress


def _save_npy(path: Path, array: np.ndarray) -> None:
    _write_atomically(path, lambda handle: np.save(handle, array))


def _write_index(
    store_dir: Path,
    shard: np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    path_blob: np.ndarray,
    path_offsets: np.ndarray,
) -> None:
    """Write the read-side index arrays (the only place that knows their names and dtypes)."""
    arrays = (
        shard.astype(np.int32),
        offset.astype(np.int64),
        length.astype(np.int64),
        path_blob.astype(np.uint8),
        path_offsets.astype(np.int64),
    )
    for name, array in zip(_INDEX_FILES, arrays, strict=True):
        _save_npy(store_dir / f"{name}.npy", array)


def _write_labels(store_dir: Path, metadata: Path, kept_rows: np.ndarray) -> None:
    """Copy the metadata rows of kept items, in store order, with ``path`` as first column."""

    def write(handle) -> None:
        writer = _csv_writer(handle)
        rows = _metadata_rows(metadata)
        header = next(rows)
        path_column = header.index("path")
        label_columns = [i for i, name in enumerate(header) if name != "path"]
        writer.writerow(["path"] + [header[i] for i in label_columns])
        wanted = iter(kept_rows.tolist())
        next_row = next(wanted, None)
        for row_number, row in enumerate(rows):
            if row_number == next_row:
                writer.writerow([row[path_column]] + [row[i] for i in label_columns])
                next_row = next(wanted, None)

    _write_atomically(store_dir / _LABELS_CSV, write, mode="w")


def _finalize(
    store_dir: Path,
    progress: _Progress,
    sample_rate: int,
    num_inputs: int,
    settings: dict,
    metadata: Path | None,
) -> dict:
    """Turn the journals into the read-side index, then write store.json last: it marks completion."""
    records = np.fromfile(store_dir / _JOURNAL_ITEMS, dtype="<i8").reshape(-1, _RECORD_FIELDS)
    path_offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(records[:, 4], out=path_offsets[1:])
    path_blob = np.fromfile(store_dir / _JOURNAL_PATHS, dtype=np.uint8)
    _write_index(store_dir, records[:, 0], records[:, 1], records[:, 2], path_blob, path_offsets)
    if metadata is not None:
        _write_labels(store_dir, metadata, records[:, 3])
    info = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "mucon_version": __version__,
        "sample_rate": sample_rate,
        "dtype": "int16",
        "num_items": progress.kept,
        "num_skipped": sum(progress.skipped_by_reason.values()),
        "num_inputs": num_inputs,
        "total_seconds": progress.samples / sample_rate,
        "num_shards": progress.num_shards,
        "skipped_by_reason": progress.skipped_by_reason,
        "has_labels": metadata is not None,
        "fingerprint": progress.fingerprint,
        **settings,
    }
    _write_json(store_dir / _STORE_JSON, info)
    _remove_journals(store_dir)
    return info


def _remove_journals(store_dir: Path) -> None:
    """Drop the prepare-time files; also on a no-op re-run, in case a crash left them behind."""
    for name in (_PROGRESS_JSON, _JOURNAL_ITEMS, _JOURNAL_PATHS):
        (store_dir / name).unlink(missing_ok=True)


def _report(info: dict, store_dir: Path) -> PrepareReport:
    return PrepareReport(
        kept=info["num_items"],
        skipped=info["num_skipped"],
        skipped_by_reason=dict(info["skipped_by_reason"]),
        seconds=info["total_seconds"],
        store_dir=store_dir,
    )


def prepare_store(
    audio_dir: str | os.PathLike,
    store_dir: str | os.PathLike,
    sample_rate: int,
    *,
    strict: bool = False,
    min_seconds: float = 1.0,
    metadata: str | os.PathLike | None = None,
    num_workers: int | None = None,
    shard_bytes: int = 256 * 2**20,
    progress: bool = True,
) -> PrepareReport:
    """Decode every input under ``audio_dir`` once into a store at ``store_dir``.

    Inputs are the rows of ``metadata`` (default ``audio_dir/metadata.csv`` when present; its
    ``path`` column is relative to ``audio_dir`` and all other columns become ``labels.csv``),
    otherwise every audio file below ``audio_dir`` in sorted path order. Files that cannot be
    used are listed in ``skipped.csv``; with ``strict`` the first one raises ``AudioDecodeError``.
    Re-running the same call resumes an interrupted run and is a no-op on a finished store.
    ``num_workers`` decoding processes (0 or 1: decode here) never change the output; they
    start by forkserver/spawn, so a script calling this needs the ``if __name__ == "__main__":``
    guard, as for any multiprocessing.
    """
    audio_dir = Path(audio_dir)
    store_dir = Path(store_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"audio folder not found: {audio_dir}")
    if metadata is None and (audio_dir / "metadata.csv").is_file():
        metadata = audio_dir / "metadata.csv"
    metadata = Path(metadata) if metadata is not None else None
    num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers

    inputs = _list_inputs(audio_dir, metadata)
    fingerprint = _fingerprint(inputs, sample_rate, min_seconds, shard_bytes)
    store_json = store_dir / _STORE_JSON
    if store_json.exists():
        info = json.loads(store_json.read_text())
        if info.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{store_dir} already holds a store ({info.get('num_items')} items at "
                f"{info.get('sample_rate')} Hz) prepared from other inputs or settings; "
                "choose another store directory"
            )
        _remove_journals(store_dir)
        return _report(info, store_dir)

    writer = _StoreWriter(store_dir, _start_or_resume(store_dir, fingerprint), shard_bytes)
    todo = inputs[writer.progress.inputs_done :]
    full_paths = (str(audio_dir / path) for path in todo)
    decoded = _decode_in_order(full_paths, sample_rate, min_seconds, num_workers)
    bar = tqdm(total=len(inputs), initial=writer.progress.inputs_done, unit="file", disable=not progress)
    try:
        with closing(decoded), bar:
            for path, result in zip(todo, decoded):
                input_row = writer.live.inputs_done
                if isinstance(result, AudioDecodeError):
                    if strict:
                        writer.commit()
                        raise result
                    writer.skip(path, result)
                else:
                    writer.add(input_row, path, result)
                bar.update()
        writer.commit()
    finally:
        writer.close()
    settings = {
        "min_seconds": min_seconds,
        "shard_bytes": shard_bytes,
        "source_dir": str(audio_dir.resolve()),
        "metadata": str(metadata.resolve()) if metadata is not None else None,
    }
    info = _finalize(store_dir, writer.progress, sample_rate, len(inputs), settings, metadata)
    return _report(info, store_dir)


class AudioStore:
    """Read-only random access to a prepared store.

    Index arrays are memory-mapped and shards are opened on first use (at most
    ``max_open_shards`` at a time, since each map holds a file descriptor), so opening a
    million-item store is cheap and the object pickles into DataLoader workers as just its path.
    """

    def __init__(self, store_dir: str | os.PathLike, max_open_shards: int = 64):
        self.store_dir = Path(store_dir)
        self.max_open_shards = max_open_shards
        store_json = self.store_dir / _STORE_JSON
        if not store_json.exists():
            raise FileNotFoundError(
                f"no finished store at {self.store_dir} (store.json missing; run `mucon prepare`)"
            )
        self.info = json.loads(store_json.read_text())
        if self.info.get("format") != FORMAT_NAME or self.info.get("version") != FORMAT_VERSION:
            raise ValueError(f"{store_json} is not a {FORMAT_NAME} version {FORMAT_VERSION} store")
        self.sample_rate = int(self.info["sample_rate"])
        index = {name: np.load(self.store_dir / f"{name}.npy", mmap_mode="r") for name in _INDEX_FILES}
        self._shard = index["index-shard"]
        self._offset = index["index-offset"]
        self.lengths: np.ndarray = index["index-length"]
        self._path_blob = index["paths-blob"]
        self._path_offsets = index["paths-offsets"]
        self._open_shards: OrderedDict[int, np.memmap] = OrderedDict()
        self._labels: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {"store_dir": self.store_dir, "max_open_shards": self.max_open_shards}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["store_dir"], state["max_open_shards"])

    def __len__(self) -> int:
        return len(self.lengths)

    def path(self, i: int) -> str:
        """The item's path relative to the audio folder it was prepared from."""
        start, end = self._path_offsets[i], self._path_offsets[i + 1]
        return bytes(self._path_blob[start:end]).decode("utf-8", "surrogateescape")

    @property
    def labels(self) -> dict[str, np.ndarray] | None:
        """Label column -> array of str, row i for item i; None when prepared without metadata."""
        if self._labels is None and self.info.get("has_labels"):
            with open(self.store_dir / _LABELS_CSV, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                columns = list(zip(*reader)) or [()] * len(header)
            self._labels = {
                name: np.asarray(values, dtype=object)
                for name, values in zip(header, columns)
                if name != "path"
            }
            if any(len(values) != len(self) for values in self._labels.values()):
                raise ValueError(f"{self.store_dir / _LABELS_CSV} does not have one row per item")
        return self._labels

    def _shard_map(self, shard: int) -> np.memmap:
        shard_map = self._open_shards.get(shard)
        if shard_map is None:
            shard_map = np.memmap(_shard_path(self.store_dir, shard), dtype="<i2", mode="r")
            self._open_shards[shard] = shard_map
            if len(self._open_shards) > self.max_open_shards:
                self._open_shards.popitem(last=False)
        else:
            self._open_shards.move_to_end(shard)
        return shard_map

    def _copy_into(self, out: np.ndarray, i: int, start: int) -> None:
        """Fill ``out`` (zeroed) from item ``i`` at ``start``; samples past the item's end stay 0."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        available = max(0, min(len(out), int(self.lengths[i]) - start))
        if available:
            first = int(self._offset[i]) + start
            out[:available] = self._shard_map(int(self._shard[i]))[first : first + available]

    def read(self, i: int, start: int, n: int) -> np.ndarray:
        """``n`` int16 samples of item ``i`` from ``start``, zero-padded past the item's end."""
        out = np.zeros(n, dtype=np.int16)
        self._copy_into(out, int(i), int(start))
        return out

    def read_crops(self, indices: Sequence[int], starts: Sequence[int], n: int) -> np.ndarray:
        """A batch of crops, int16 [len(indices), n]."""
        if len(indices) != len(starts):
            raise ValueError(f"{len(indices)} indices but {len(starts)} starts")
        crops = np.zeros((len(indices), n), dtype=np.int16)
        for row, (i, start) in enumerate(zip(indices, starts)):
            self._copy_into(crops[row], int(i), int(start))
        return crops

    def random_starts(
        self, indices: Sequence[int] | np.ndarray, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """A uniformly random valid crop start per item (0 when the item is shorter than ``n``)."""
        last_start = np.maximum(self.lengths[np.asarray(indices, dtype=np.int64)] - n, 0)
        return rng.integers(0, last_start + 1, dtype=np.int64)
