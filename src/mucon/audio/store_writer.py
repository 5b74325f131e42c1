"""Preparing a store: decode a corpus once into int16 shards that ``AudioStore`` reads crops from.

``prepare_store`` turns a folder (through its layout, ``mucon.data.layouts``) into the finished
store that ``mucon.audio.store_format`` describes. While preparing, the index lives in append-only
journals and ``progress.json`` records how far they (and the shards) are committed;
``progress.json`` is replaced atomically, so after a crash anything beyond it is truncated and the
run resumes at the first uncommitted input. The decoding itself is ``mucon.audio.store_decode``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mucon import __version__
from mucon.audio.io import PATH_CSV_OPTIONS, AudioDecodeError, peak_gain
from mucon.audio.store import measure_levels
from mucon.audio.store_decode import Decoded, decode_in_order
from mucon.audio.store_format import (FORMAT_NAME, FORMAT_VERSION, INDEX_DTYPES, LABELS_CSV, LEVELS_NPY, NORMALISED_CSV,
                                      SKIPPED_CSV, STORE_JSON, TRUNCATED_CSV, save_array, shard_path)
from mucon.data.layouts import SOURCE_TYPES, Table, read_table
from mucon.files import locked_folder, write_atomically

# Progress is committed after this many inputs or this much new audio, whichever comes first:
# often enough that a crash loses little work, rarely enough that fsync costs nothing.
_COMMIT_EVERY_FILES = 256
_COMMIT_EVERY_BYTES = 64 * 2**20

_PROGRESS_JSON = "progress.json"
_JOURNAL_ITEMS = "journal-items.i64"
_JOURNAL_PATHS = "journal-paths.bin"
_LOCK_FILE = "prepare.lock"  # held while preparing: a second prepare into the store is refused
# One journal record per kept item; ``sources`` is a bit mask over SOURCE_TYPES of the stems stored after
# the mixture, ``peak`` the item's peak before it was scaled (above 1: scaled by 1 / peak), ``header_seconds``
# what the header of a truncated mixture promised (0: the file was whole).
_RECORD = np.dtype([("shard", "<i8"), ("offset", "<i8"), ("length", "<i8"), ("row", "<i8"),
                    ("path_bytes", "<i8"), ("sources", "<i8"), ("peak", "<f8"), ("header_seconds", "<f8")])
_SPILL_PATTERN = "spill-*.i16"


@dataclass
class PrepareReport:
    """What a prepare run produced, for the CLI to print and scripts to check."""

    kept: int
    skipped: int
    skipped_by_reason: dict[str, int]
    seconds: float
    store_dir: Path
    stems: dict[str, int] = field(default_factory=dict)  # source type -> items with that stem stored
    normalised: int = 0  # items scaled down because their peak exceeded 1
    truncated: int = 0  # items kept at the length their data has, shorter than their header says

    def summary(self) -> str:
        """One line for the CLI: what was kept, what was skipped and where the skipped files are listed."""
        stems = ", ".join(f"{source} {count}" for source, count in self.stems.items())
        kept = f"kept {self.kept} files ({self.seconds / 3600:.2f} h)" + (f" with stems ({stems})" if stems else "")
        line = f"{kept} in {self.store_dir}"
        if not self.skipped:
            line += "; skipped 0"
        else:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped_by_reason.items()))
            line += f"; skipped {self.skipped} ({reasons}), listed in {self.store_dir / SKIPPED_CSV}"
        if self.normalised:
            line += (f"; scaled {self.normalised} down to peak 1 (they peaked above 1), "
                     f"listed in {self.store_dir / NORMALISED_CSV}")
        if self.truncated:
            line += (f"; {self.truncated} truncated (kept as far as their data goes), "
                     f"listed in {self.store_dir / TRUNCATED_CSV}")
        return line


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


def _write_json(path: Path, payload: dict) -> None:
    write_atomically(path, lambda handle: handle.write(json.dumps(payload, indent=2)), mode="w")


def _csv_writer(handle):
    return csv.writer(handle, lineterminator="\n")


def _spill_path(store_dir: Path, input_row: int) -> str:
    return str(store_dir / f"spill-{input_row:010d}.i16")


def _check_settings(store_dir: Path, sample_rate, min_seconds, shard_bytes, num_workers) -> None:
    """Refuse bad settings before anything is written, so a typo never leaves a half-made store behind."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"the sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    if not min_seconds >= 0:
        raise ValueError(f"the minimum duration must be 0 s or more, got {min_seconds!r}")
    if shard_bytes < 2:
        raise ValueError(f"shards must hold at least one sample, got shard_bytes={shard_bytes!r}")
    if num_workers is not None and num_workers < 0:
        raise ValueError(f"the number of decoding processes must be 0 or more, got {num_workers!r}")
    if store_dir.exists() and not store_dir.is_dir():
        raise NotADirectoryError(f"the store path is a file, not a folder: {store_dir}")


def _file_state(path: str) -> tuple[int, int] | None:
    """(size, modification time in ns) of an input, None where it cannot be read: a changed file changes it."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _fingerprint(table: Table, root: str, sample_rate: int, min_seconds: float, shard_bytes: int) -> str:
    """Identify what a store is built from, so a resume never mixes two different runs and a re-run
    never keeps the audio of an input that changed since (same name, new size or modification time)."""
    settings = [FORMAT_VERSION, int(sample_rate), float(min_seconds), int(shard_bytes), table.layout]
    digest = hashlib.sha256(json.dumps(settings).encode())
    for track in table.tracks:
        described = track.path if not (track.stems or track.problem) else repr(track[:2] + track[3:])
        if track.problem is None:
            files = (track.path, *(stem for _, stems in track.stems for stem in stems))
            described += repr([_file_state(os.path.join(root, name)) for name in files])
        digest.update(described.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


class _StoreWriter:
    """Appends items to shards and journals; ``commit`` makes everything written so far durable."""

    def __init__(self, store_dir: Path, progress: _Progress, shard_bytes: int):
        self.store_dir = store_dir
        self.progress = progress
        self.shard_bytes = shard_bytes
        self._discard_uncommitted()
        self._items = open(store_dir / _JOURNAL_ITEMS, "ab")
        self._paths = open(store_dir / _JOURNAL_PATHS, "ab")
        self._skipped = open(store_dir / SKIPPED_CSV, "a", **PATH_CSV_OPTIONS)
        self._skipped_csv = _csv_writer(self._skipped)
        self._shard = None
        if progress.num_shards:
            self._shard = open(shard_path(store_dir, progress.num_shards - 1), "ab")
        # The live state runs ahead of self.progress, which only moves on commit.
        self.live = _Progress(**asdict(progress))
        self.uncommitted_inputs = 0
        self.uncommitted_bytes = 0

    def _discard_uncommitted(self) -> None:
        """Cut every append-only file back to its committed length (a killed run leaves tails and spills)."""
        committed = self.progress
        sizes = {
            _JOURNAL_ITEMS: committed.kept * _RECORD.itemsize,
            _JOURNAL_PATHS: committed.paths_bytes,
            SKIPPED_CSV: committed.skipped_bytes,
        }
        for name, size in sizes.items():
            with open(self.store_dir / name, "ab") as handle:
                handle.truncate(size)
        for shard_file in self.store_dir.glob("shard-*.i16"):
            if int(shard_file.stem.split("-")[1]) >= committed.num_shards:
                shard_file.unlink()
        if committed.num_shards:
            with open(shard_path(self.store_dir, committed.num_shards - 1), "ab") as handle:
                handle.truncate(committed.last_shard_bytes)
        _remove_spills(self.store_dir)

    def add(self, input_row: int, path: str, item: Decoded) -> None:
        """Move a decoded item from its spill file to the end of the current shard."""
        live = self.live
        tracks = 1 + item.sources.bit_count()
        nbytes = 2 * item.length * tracks
        if os.path.getsize(item.spill) != nbytes:
            raise RuntimeError(f"{item.spill}: {os.path.getsize(item.spill)} bytes, expected {nbytes}")
        shard_full = live.last_shard_bytes and live.last_shard_bytes + nbytes > self.shard_bytes
        if self._shard is None or shard_full:
            self._start_shard()
        with open(item.spill, "rb") as spill:
            shutil.copyfileobj(spill, self._shard, 2**20)
        os.unlink(item.spill)
        encoded_path = path.encode("utf-8", "surrogateescape")
        record = (live.num_shards - 1, live.last_shard_bytes // 2, item.length, input_row, len(encoded_path),
                  item.sources, item.peak, item.header_seconds)
        self._items.write(np.array([record], dtype=_RECORD).tobytes())
        self._paths.write(encoded_path)
        live.kept += 1
        live.paths_bytes += len(encoded_path)
        live.last_shard_bytes += nbytes
        live.samples += item.length
        self._count_input(nbytes)

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
        self._shard = open(shard_path(self.store_dir, self.live.num_shards - 1), "wb")

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
                f"{store_dir} holds an unfinished store prepared from other inputs or settings (a file added, "
                "removed or changed since, or another setting); "
                "finish it with the same command, or delete it / choose another store directory"
            )
        return progress
    store_dir.mkdir(parents=True, exist_ok=True)
    for name in (_JOURNAL_ITEMS, _JOURNAL_PATHS):
        (store_dir / name).write_bytes(b"")
    with open(store_dir / SKIPPED_CSV, "w", **PATH_CSV_OPTIONS) as handle:
        _csv_writer(handle).writerow(["path", "reason", "detail"])
    progress = _Progress(fingerprint, skipped_bytes=(store_dir / SKIPPED_CSV).stat().st_size)
    _write_json(progress_file, asdict(progress))
    return progress


def _write_index(
    store_dir: Path,
    shard: np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    has_source: np.ndarray,
    path_blob: np.ndarray,
    path_offsets: np.ndarray,
) -> None:
    """Write the read-side index arrays, each as the dtype the format gives it."""
    arrays = (shard, offset, length, has_source, path_blob, path_offsets)
    for (name, dtype), array in zip(INDEX_DTYPES.items(), arrays, strict=True):
        save_array(store_dir / f"{name}.npy", array.astype(dtype))


def _write_labels(store_dir: Path, table: Table, kept_rows: np.ndarray) -> None:
    """The label columns of kept items, in store order, with ``path`` as first column."""

    def write(handle) -> None:
        writer = _csv_writer(handle)
        writer.writerow(["path", *table.label_columns])
        for row in kept_rows.tolist():
            track = table.tracks[row]
            writer.writerow([track.path, *track.labels])

    write_atomically(store_dir / LABELS_CSV, write, mode="w")


def _write_listing(path: Path, header: list[str], rows: list[list[str]]) -> int:
    """A CSV of the items a prepare run changed in some way; returns how many (no file when none)."""
    if rows:

        def write(handle) -> None:
            writer = _csv_writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

        write_atomically(path, write, mode="w")
    return len(rows)


def _write_normalised(store_dir: Path, table: Table, records: np.ndarray) -> int:
    """List the items scaled down to peak 1; returns how many."""
    scaled = records[records["peak"] > 1.0]
    rows = [[table.tracks[row].path, f"{peak:.6g}", f"{peak_gain(peak):.6g}"]
            for row, peak in zip(scaled["row"].tolist(), scaled["peak"].tolist())]
    return _write_listing(store_dir / NORMALISED_CSV, ["path", "peak", "gain"], rows)


def _write_truncated(store_dir: Path, table: Table, records: np.ndarray, sample_rate: int) -> int:
    """List the items whose data ended before their header said; returns how many."""
    cut = records[records["header_seconds"] > 0]
    rows = [[table.tracks[row].path, f"{header:.3f}", f"{length / sample_rate:.3f}"]
            for row, header, length in zip(cut["row"].tolist(), cut["header_seconds"].tolist(), cut["length"].tolist())]
    return _write_listing(store_dir / TRUNCATED_CSV, ["path", "header_seconds", "decoded_seconds"], rows)


def _finalize(
    store_dir: Path,
    progress: _Progress,
    sample_rate: int,
    table: Table,
    settings: dict,
) -> dict:
    """Turn the journals into the read-side index, then write store.json last: it marks completion."""
    records = np.fromfile(store_dir / _JOURNAL_ITEMS, dtype=_RECORD)
    path_offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(records["path_bytes"], out=path_offsets[1:])
    path_blob = np.fromfile(store_dir / _JOURNAL_PATHS, dtype=np.uint8)
    bits = {source: (records["sources"] >> k) & 1 == 1 for k, source in enumerate(SOURCE_TYPES)}
    sources = [source for source in SOURCE_TYPES if bits[source].any()]
    has_source = np.stack([bits[source] for source in sources], axis=1) if sources else np.zeros((len(records), 0), bool)
    _write_index(store_dir, records["shard"], records["offset"], records["length"], has_source, path_blob, path_offsets)
    levels = measure_levels(store_dir, records["shard"], records["offset"], records["length"], has_source)
    save_array(store_dir / LEVELS_NPY, levels)
    if table.label_columns:
        _write_labels(store_dir, table, records["row"])
    info = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "mucon_version": __version__,
        "sample_rate": sample_rate,
        "dtype": "int16",
        "sources": sources,
        "num_items": progress.kept,
        "num_stems": {source: int(bits[source].sum()) for source in sources},
        "num_skipped": sum(progress.skipped_by_reason.values()),
        "num_normalised": _write_normalised(store_dir, table, records),
        "num_truncated": _write_truncated(store_dir, table, records, sample_rate),
        "num_inputs": len(table.tracks),
        "total_seconds": progress.samples / sample_rate,
        "num_shards": progress.num_shards,
        "skipped_by_reason": progress.skipped_by_reason,
        "has_labels": bool(table.label_columns),
        "layout": table.layout,
        "fingerprint": progress.fingerprint,
        **settings,
    }
    _write_json(store_dir / STORE_JSON, info)
    _remove_journals(store_dir)
    return info


def _remove_spills(store_dir: Path) -> None:
    for spill in store_dir.glob(_SPILL_PATTERN):
        spill.unlink(missing_ok=True)


def _remove_journals(store_dir: Path) -> None:
    """Drop the prepare-time files; also on a no-op re-run, in case a crash left them behind."""
    for name in (_PROGRESS_JSON, _JOURNAL_ITEMS, _JOURNAL_PATHS, _LOCK_FILE):  # the lock too: a finished store
        (store_dir / name).unlink(missing_ok=True)                          # is never prepared again
    _remove_spills(store_dir)


def _report(info: dict, store_dir: Path) -> PrepareReport:
    return PrepareReport(
        kept=info["num_items"],
        skipped=info["num_skipped"],
        skipped_by_reason=dict(info["skipped_by_reason"]),
        seconds=info["total_seconds"],
        store_dir=store_dir,
        stems=dict(info["num_stems"]),
        normalised=info["num_normalised"],
        truncated=info.get("num_truncated", 0),  # absent from stores made before it was counted
    )


def prepare_store(
    audio_dir: str | os.PathLike,
    store_dir: str | os.PathLike,
    sample_rate: int,
    *,
    strict: bool = False,
    min_seconds: float = 1.0,
    metadata: str | os.PathLike | None = None,
    layout: str | None = None,
    splits: Sequence[str] | None = None,
    stem_map: str | os.PathLike | None = None,
    num_workers: int | None = None,
    shard_bytes: int = 256 * 2**20,
    progress: bool = True,
) -> PrepareReport:
    """Decode every input under ``audio_dir`` once into a store at ``store_dir``.

    ``layout`` (``mucon.data.layouts``; detected from the folder when None) turns the folder into
    the inputs: for ``plain``, the rows of ``metadata`` (default ``audio_dir/metadata.csv`` when
    present; its ``path`` column is relative to ``audio_dir`` and all other columns become
    ``labels.csv``), otherwise every audio file below ``audio_dir`` in sorted path order; for
    multitrack layouts, each track's mixture and stems. ``splits`` keeps the rows whose ``split``
    label is one of them; ``stem_map`` overrides the Slakh2100 instrument mapping. Inputs that
    cannot be used are listed in ``skipped.csv``; with ``strict`` the first one raises
    ``AudioDecodeError``. Re-running the same call resumes an interrupted run and is a no-op on a
    finished store. ``num_workers`` decoding processes (0 or 1: decode here) never change the
    output; they start by forkserver/spawn, so a script calling this needs the
    ``if __name__ == "__main__":`` guard, as for any multiprocessing.
    """
    audio_dir = Path(audio_dir)
    store_dir = Path(store_dir)
    _check_settings(store_dir, sample_rate, min_seconds, shard_bytes, num_workers)
    table = read_table(audio_dir, layout, metadata=metadata, stem_map=stem_map, splits=splits)
    num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers

    fingerprint = _fingerprint(table, str(audio_dir), sample_rate, min_seconds, shard_bytes)
    finished = _finished_report(store_dir, fingerprint)
    if finished is not None:
        return finished
    store_dir.mkdir(parents=True, exist_ok=True)
    with locked_folder(store_dir, _LOCK_FILE, "mucon prepare", "store folder"):
        finished = _finished_report(store_dir, fingerprint)  # again: a run that held the lock may have finished it
        if finished is not None:
            return finished
        writer = _StoreWriter(store_dir, _start_or_resume(store_dir, fingerprint), shard_bytes)
        first = writer.progress.inputs_done
        todo = table.tracks[first:]
        jobs = ((track, str(audio_dir), _spill_path(store_dir, row)) for row, track in enumerate(todo, first))
        decoded = decode_in_order(jobs, sample_rate, min_seconds, num_workers)
        bar = tqdm(total=len(table.tracks), initial=first, unit="file", disable=not progress)
        try:
            with closing(decoded), bar:
                for track, result in zip(todo, decoded):
                    input_row = writer.live.inputs_done
                    if isinstance(result, AudioDecodeError):
                        if strict:
                            writer.commit()
                            raise result
                        writer.skip(track.path, result)
                    else:
                        writer.add(input_row, track.path, result)
                    bar.update()
            writer.commit()
        finally:
            writer.close()
        settings = {
            "min_seconds": min_seconds,
            "shard_bytes": shard_bytes,
            "source_dir": str(audio_dir.resolve()),
            "metadata": str(Path(metadata).resolve()) if metadata is not None else None,
            "splits": list(splits) if splits else None,
        }
        info = _finalize(store_dir, writer.progress, sample_rate, table, settings)
    return _report(info, store_dir)


def _finished_report(store_dir: Path, fingerprint: str) -> PrepareReport | None:
    """The report of the finished store at ``store_dir`` prepared from these inputs and settings;
    None when there is none yet; a finished store of other inputs is refused."""
    store_json = store_dir / STORE_JSON
    if not store_json.exists():
        return None
    info = json.loads(store_json.read_text())
    if info.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{store_dir} already holds a store ({info.get('num_items')} items at "
            f"{info.get('sample_rate')} Hz) prepared from other inputs or settings (a file added, removed "
            "or changed since, or another setting); delete it or choose another store directory"
        )
    _remove_journals(store_dir)
    return _report(info, store_dir)
