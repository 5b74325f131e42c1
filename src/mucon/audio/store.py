"""The prepared store: decode a corpus once, then read random crops by slicing memory maps.

Training draws thousands of random crops per second; decoding compressed audio for each one
would starve the GPU, so ``prepare_store`` writes every file once as int16 PCM and
``AudioStore`` reads crops from memory-mapped shards.

An item is a mixture and, when the dataset's layout has them (``mucon.data.layouts``), its
stems per source type (vocals, drums, bass, other), sample-aligned: same start, same length,
same rate. A crop of an item is the same window of each. An absent or silent stem is not stored.

Layout of a finished store (everything per item is a numpy array, so a million-item store
opens without a Python object per item)::

    store.json            format version, sample_rate, source types, counts, what it was built from
    shard-00000.i16 ...   raw little-endian int16 PCM, items back to back, up to shard_bytes each
                          (an item never spans shards, so a longer item gets a shard of its own);
                          an item is its mixture followed by its stored stems in source-type order
    index-shard.npy       int32  [N]    shard number of item i
    index-offset.npy      int64  [N]    first sample of item i inside its shard
    index-length.npy      int64  [N]    samples of item i (of its mixture, and of each of its stems)
    index-sources.npy     bool   [N, S] item i has a stored stem of source type source_names[s]
    paths-blob.npy        uint8  [B]    utf-8 item paths (relative to the audio folder), concatenated
    paths-offsets.npy     int64  [N+1]  item i's path is blob[offsets[i]:offsets[i+1]]
    index-rms.npy         float32 [N, 1+S] RMS (x in [-1, 1)) of item i's whole mixture, then of each of its
                          stems in source_names order (0 where it has none): the item's level, which COLA and
                          MSCOL scale by (a store prepared before it existed measures it on first use, once)
    labels.csv            only when the layout has label columns: their rows for kept items, in store order
    skipped.csv           path, reason, detail for every input that was not kept
    normalised.csv        only when some item peaked above 1: path, peak, the gain it was scaled by
    truncated.csv         only when some mixture's data ended before its header said (a cut-off MP3): path,
                          the header's seconds, the seconds decoded and kept

While preparing, the index lives in append-only journals and ``progress.json`` records how far
they (and the shards) are committed; ``progress.json`` is replaced atomically, so after a crash
anything beyond it is truncated and the run resumes at the first uncommitted input. Decoders
stream each item into a spill file next to the shards (memory stays flat in the file's length)
and the writer appends it to the current shard.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import shutil
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
from mucon.audio.io import PATH_CSV_OPTIONS, AudioDecodeError, audio_info, check_duration, decode_blocks, peak_gain
from mucon.data.layouts import SOURCE_TYPES, Table, Track, read_table
from mucon.files import locked_folder, write_atomically

FORMAT_NAME = "mucon-audio-store"
FORMAT_VERSION = 2  # 2: stems next to the mixture (index-sources.npy)
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
_LOCK_FILE = "prepare.lock"  # held while preparing: a second prepare into the store is refused
_LABELS_CSV = "labels.csv"
_NORMALISED_CSV = "normalised.csv"
_TRUNCATED_CSV = "truncated.csv"
_INDEX_FILES = ("index-shard", "index-offset", "index-length", "index-sources", "paths-blob", "paths-offsets")
_LEVELS_NPY = "index-rms.npy"
_LEVEL_CHUNK = 2**16  # samples summed at a time (0.5 MB of float64): memory stays flat in an item's length
# One journal record per kept item; ``sources`` is a bit mask over SOURCE_TYPES of the stems stored after
# the mixture, ``peak`` the item's peak before it was scaled (above 1: scaled by 1 / peak), ``header_seconds``
# what the header of a truncated mixture promised (0: the file was whole).
_RECORD = np.dtype([("shard", "<i8"), ("offset", "<i8"), ("length", "<i8"), ("row", "<i8"),
                    ("path_bytes", "<i8"), ("sources", "<i8"), ("peak", "<f8"), ("header_seconds", "<f8")])
_SPILL_PATTERN = "spill-*.i16"


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
            line += f"; skipped {self.skipped} ({reasons}), listed in {self.store_dir / _SKIPPED_CSV}"
        if self.normalised:
            line += (f"; scaled {self.normalised} down to peak 1 (they peaked above 1), "
                     f"listed in {self.store_dir / _NORMALISED_CSV}")
        if self.truncated:
            line += (f"; {self.truncated} truncated (kept as far as their data goes), "
                     f"listed in {self.store_dir / _TRUNCATED_CSV}")
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


def _shard_path(store_dir: Path, shard: int) -> Path:
    return store_dir / f"shard-{shard:05d}.i16"


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


def _stem_problem(mixture: str, source: str, stem: str, reason: str, detail: str) -> AudioDecodeError:
    """A stem's problem reported on its track: the track is what gets skipped."""
    return AudioDecodeError(mixture, reason, f"{source} stem {stem}: {detail}")


def _checked_stems(track: Track, root: str, mixture: str) -> list[tuple[int, str, list[str]]]:
    """(bit, source, files) per stem type, after checking each file against the mixture's header.

    A missing stem, one at another rate and one of another length are found here, before any
    decoding, and named with their track.
    """
    if not track.stems:
        return []
    expected = audio_info(mixture)
    checked = []
    for source, files in track.stems:
        for stem in files:
            path = os.path.join(root, stem)
            if not os.path.lexists(path):
                raise _stem_problem(mixture, source, stem, "missing stem", "no such file")
            try:
                info = audio_info(path)
            except AudioDecodeError as error:
                raise _stem_problem(mixture, source, stem, error.reason, error.detail) from error
            if info.sample_rate != expected.sample_rate:
                raise _stem_problem(mixture, source, stem, "stem sample rate",
                                    f"{info.sample_rate} Hz, the mixture {expected.sample_rate} Hz")
            if info.frames != expected.frames:
                raise _stem_problem(mixture, source, stem, "stem length",
                                    f"{info.frames} frames, the mixture {expected.frames}")
        checked.append((1 << SOURCE_TYPES.index(source), source, [os.path.join(root, stem) for stem in files]))
    return checked


def _summed_blocks(streams: list[Iterator[np.ndarray]], mixture: str, source: str) -> Iterator[np.ndarray]:
    """Several stems of one type (Slakh's instruments) as one stream: their sum, block by block."""
    if len(streams) == 1:
        yield from streams[0]
        return
    while True:
        blocks = [next(stream, None) for stream in streams]
        if all(block is None for block in blocks):
            return
        if any(block is None for block in blocks) or len({len(block) for block in blocks}) > 1:
            raise AudioDecodeError(mixture, "stem length", f"the {source} stems decode to different lengths")
        yield np.sum(blocks, axis=0, dtype=np.float32)


def _write_track(out, blocks: Iterator[np.ndarray]) -> tuple[int, float, bool]:
    """Quantise a stream into ``out``; returns its samples, its peak and whether any sample is non-zero."""
    samples, peak, audible = 0, 0.0, False
    for block in blocks:
        peak = max(peak, float(np.abs(block).max()))
        pcm = to_int16(block)
        audible = audible or bool(pcm.any())
        out.write(pcm.astype("<i2", copy=False).tobytes())
        samples += len(pcm)
    return samples, peak, audible


def _write_item(track: Track, root: str, sample_rate: int, min_seconds: float, spill: str, gain: float):
    """Stream the mixture, then each stem type, into ``spill``; returns (samples, sources bit mask, peak,
    the header's seconds where the mixture is truncated, else 0).

    The mixture is checked (too short, silent) before its stems are decoded; a stem type whose
    samples all quantise to 0 is cut off again, so it costs no disk.
    """
    mixture = os.path.join(root, track.path)
    stems = _checked_stems(track, root, mixture)
    header_seconds = []
    with open(spill, "wb") as out:
        blocks = decode_blocks(mixture, sample_rate, gain=gain, on_truncated=lambda header, _: header_seconds.append(header))
        length, peak, _ = _write_track(out, blocks)
        check_duration(mixture, length, sample_rate, min_seconds)
        if peak < SILENCE_PEAK:
            raise AudioDecodeError(mixture, "silent", f"peak {peak:.1e} < {SILENCE_PEAK:.0e}")
        sources = 0
        for bit, source, files in stems:
            start = out.tell()
            streams = [decode_blocks(path, sample_rate, gain=gain) for path in files]
            try:
                samples, stem_peak, audible = _write_track(out, _summed_blocks(streams, mixture, source))
            except AudioDecodeError as error:
                if error.path == mixture:
                    raise
                raise _stem_problem(mixture, source, os.path.relpath(error.path, root), error.reason, error.detail) from error
            if samples != length:
                raise AudioDecodeError(mixture, "stem length", f"{source} stem decodes to {samples} samples, "
                                       f"the mixture to {length}")
            peak = max(peak, stem_peak)
            if audible:
                sources |= bit
            else:
                out.seek(start)
                out.truncate()
    return length, sources, peak, header_seconds[0] if header_seconds else 0.0


@dataclass(frozen=True)
class _Decoded:
    """An item a decoder left in its spill file: the mixture, then the stems in ``sources``, ``length`` samples each."""

    spill: str
    length: int
    sources: int
    peak: float
    header_seconds: float


def _decode_item(track: Track, root: str, sample_rate: int, min_seconds: float, spill: str) -> _Decoded | AudioDecodeError:
    """Decode one input into its spill file, or return (not raise) why it cannot be kept.

    Runs in worker processes, so it returns the error: the writer decides, in input order,
    whether a bad file is skipped or stops the run. An item peaking above 1 is decoded a second
    time with one gain for the mixture and its stems (scaled, not clipped, and still summing up).
    """
    try:
        if track.problem is not None:
            raise AudioDecodeError(os.path.join(root, track.path), *track.problem)
        length, sources, peak, header_seconds = _write_item(track, root, sample_rate, min_seconds, spill, gain=1.0)
        if peak > 1.0:
            length, sources, _, _ = _write_item(track, root, sample_rate, min_seconds, spill, gain=peak_gain(peak))
        return _Decoded(spill, length, sources, peak, header_seconds)
    except AudioDecodeError as error:
        Path(spill).unlink(missing_ok=True)
        return error


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
    jobs: Iterable[tuple], sample_rate: int, min_seconds: float, num_workers: int
) -> Iterator[_Decoded | AudioDecodeError]:
    """Decode (track, root, spill) jobs in parallel but yield in input order, a bounded number in flight."""
    if num_workers <= 1:
        for track, root, spill in jobs:
            yield _decode_item(track, root, sample_rate, min_seconds, spill)
        return
    # forkserver/spawn rather than fork: the caller may hold threads (tqdm, torch) that fork copies badly.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(num_workers, context, initializer=_exit_with_parent)
    try:
        in_flight = deque()
        for track, root, spill in jobs:
            in_flight.append(pool.submit(_decode_item, track, root, sample_rate, min_seconds, spill))
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
        self._skipped = open(store_dir / _SKIPPED_CSV, "a", **PATH_CSV_OPTIONS)
        self._skipped_csv = _csv_writer(self._skipped)
        self._shard = None
        if progress.num_shards:
            self._shard = open(_shard_path(store_dir, progress.num_shards - 1), "ab")
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
        _remove_spills(self.store_dir)

    def add(self, input_row: int, path: str, item: _Decoded) -> None:
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
                f"{store_dir} holds an unfinished store prepared from other inputs or settings (a file added, "
                "removed or changed since, or another setting); "
                "finish it with the same command, or delete it / choose another store directory"
            )
        return progress
    store_dir.mkdir(parents=True, exist_ok=True)
    for name in (_JOURNAL_ITEMS, _JOURNAL_PATHS):
        (store_dir / name).write_bytes(b"")
    with open(store_dir / _SKIPPED_CSV, "w", **PATH_CSV_OPTIONS) as handle:
        _csv_writer(handle).writerow(["path", "reason", "detail"])
    progress = _Progress(fingerprint, skipped_bytes=(store_dir / _SKIPPED_CSV).stat().st_size)
    _write_json(progress_file, asdict(progress))
    return progress


def _save_npy(path: Path, array: np.ndarray) -> None:
    write_atomically(path, lambda handle: np.save(handle, array))


def _write_index(
    store_dir: Path,
    shard: np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    has_source: np.ndarray,
    path_blob: np.ndarray,
    path_offsets: np.ndarray,
) -> None:
    """Write the read-side index arrays (the only place that knows their names and dtypes)."""
    arrays = (
        shard.astype(np.int32),
        offset.astype(np.int64),
        length.astype(np.int64),
        has_source.astype(bool),
        path_blob.astype(np.uint8),
        path_offsets.astype(np.int64),
    )
    for name, array in zip(_INDEX_FILES, arrays, strict=True):
        _save_npy(store_dir / f"{name}.npy", array)


def _measure_levels(store_dir: Path, shard: np.ndarray, offset: np.ndarray, length: np.ndarray,
                    has_source: np.ndarray) -> np.ndarray:
    """float32 [N, 1 + S]: the RMS of each item's whole mixture and of each of its stored stems, read from
    the shards once (an item is its mixture, then its stems in source order, ``length`` samples each)."""
    levels = np.zeros((len(length), 1 + has_source.shape[1]), dtype=np.float32)
    maps: dict[int, np.memmap] = {}
    for i in range(len(length)):
        n = int(length[i])
        if n == 0:
            continue
        pcm = maps.get(int(shard[i]))
        if pcm is None:
            pcm = maps.setdefault(int(shard[i]), np.memmap(_shard_path(store_dir, int(shard[i])), dtype="<i2", mode="r"))
        columns = [0, *(1 + np.flatnonzero(has_source[i]))]
        for track, column in enumerate(columns):
            first = int(offset[i]) + track * n
            energy = sum(float(np.square(pcm[start : min(start + _LEVEL_CHUNK, first + n)], dtype=np.float64).sum())
                         for start in range(first, first + n, _LEVEL_CHUNK))
            levels[i, column] = np.sqrt(energy / n) / 32768.0
    return levels


def _write_labels(store_dir: Path, table: Table, kept_rows: np.ndarray) -> None:
    """The label columns of kept items, in store order, with ``path`` as first column."""

    def write(handle) -> None:
        writer = _csv_writer(handle)
        writer.writerow(["path", *table.label_columns])
        for row in kept_rows.tolist():
            track = table.tracks[row]
            writer.writerow([track.path, *track.labels])

    write_atomically(store_dir / _LABELS_CSV, write, mode="w")


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
    return _write_listing(store_dir / _NORMALISED_CSV, ["path", "peak", "gain"], rows)


def _write_truncated(store_dir: Path, table: Table, records: np.ndarray, sample_rate: int) -> int:
    """List the items whose data ended before their header said; returns how many."""
    cut = records[records["header_seconds"] > 0]
    rows = [[table.tracks[row].path, f"{header:.3f}", f"{length / sample_rate:.3f}"]
            for row, header, length in zip(cut["row"].tolist(), cut["header_seconds"].tolist(), cut["length"].tolist())]
    return _write_listing(store_dir / _TRUNCATED_CSV, ["path", "header_seconds", "decoded_seconds"], rows)


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
    levels = _measure_levels(store_dir, records["shard"], records["offset"], records["length"], has_source)
    _save_npy(store_dir / _LEVELS_NPY, levels)
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
    _write_json(store_dir / _STORE_JSON, info)
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
        decoded = _decode_in_order(jobs, sample_rate, min_seconds, num_workers)
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
    store_json = store_dir / _STORE_JSON
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


class AudioStore:
    """Read-only random access to a prepared store.

    Index arrays are memory-mapped and shards are opened on first use (at most
    ``max_open_shards`` at a time, since each map holds a file descriptor), so opening a
    million-item store is cheap and the object pickles into DataLoader workers as just its path.

    ``source_names`` are the source types the store holds stems for (SOURCE_TYPES order, those
    present in at least one item; () for a mixture-only store) and ``has_source[i, s]`` says
    whether item i has a stem of type ``source_names[s]``. ``read_sources`` returns the stems at
    the same window as ``read``.
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
            raise ValueError(
                f"{store_json} is not a {FORMAT_NAME} version {FORMAT_VERSION} store (found version "
                f"{self.info.get('version')}); prepare it again with this mucon into a new folder"
            )
        self.sample_rate = int(self.info["sample_rate"])
        index = {name: self._index_array(name) for name in _INDEX_FILES}
        self._shard = index["index-shard"]
        self._offset = index["index-offset"]
        self.lengths: np.ndarray = index["index-length"]
        self.source_names: tuple[str, ...] = tuple(self.info["sources"])
        self.has_source: np.ndarray = index["index-sources"]
        self._source_column = {name: column for column, name in enumerate(self.source_names)}
        self._path_blob = index["paths-blob"]
        self._path_offsets = index["paths-offsets"]
        self._open_shards: OrderedDict[int, np.memmap] = OrderedDict()
        self._labels: dict[str, np.ndarray] | None = None
        self._levels: np.ndarray | None = None
        self._check_shard_sizes()

    def _index_array(self, name: str) -> np.memmap:
        """One index file, memory-mapped; a damaged one is refused naming it (numpy's own error advised
        unpickling it, which is how a damaged file would run code)."""
        path = self.store_dir / f"{name}.npy"
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (FileNotFoundError, ValueError, EOFError) as error:
            problem = "missing" if isinstance(error, FileNotFoundError) else "damaged: not a numpy array file"
            raise ValueError(f"{path}: the store's index is {problem}; prepare the store again "
                             f"(`mucon prepare AUDIO_DIR {self.store_dir}` after deleting it, or into a new folder)") from None

    def _check_shard_sizes(self, chunk: int = 2**16) -> None:
        """Refuse a shard shorter than its items: its missing part would read as zeros and train silently.

        Each shard must reach the end of its last item (mixture and stored stems); the index is read in
        chunks, so a million-item store is checked without holding a per-item array.
        """
        needed = np.zeros(int(self._shard.max()) + 1 if len(self.lengths) else 0, dtype=np.int64)
        for first in range(0, len(self.lengths), chunk):
            part = slice(first, first + chunk)
            tracks = 1 + np.count_nonzero(self.has_source[part], axis=1)
            np.maximum.at(needed, self._shard[part], 2 * (self._offset[part] + self.lengths[part] * tracks))
        for shard in np.flatnonzero(needed).tolist():
            path, size = _shard_path(self.store_dir, shard), int(needed[shard])
            found = path.stat().st_size if path.exists() else None
            if found is None or found < size:
                what = "missing" if found is None else f"{found} bytes"
                raise ValueError(f"{path}: {what}, but the store's index needs {size} bytes (cut short or lost); "
                                 "prepare the store again")

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
        """Label column -> array of str, row i for item i; None when the layout had no label columns."""
        if self._labels is None and self.info.get("has_labels"):
            with open(self.store_dir / _LABELS_CSV, **PATH_CSV_OPTIONS) as handle:
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

    @property
    def levels(self) -> np.ndarray:
        """float32 [N, 1 + S]: RMS of item i's whole mixture (column 0) and of its stem of type
        ``source_names[s]`` (column 1 + s; 0 where absent), as ``index-rms.npy`` holds them.

        A store prepared before that file existed measures it here, once: it is saved next to the index
        when the folder is writable (else kept for this object's life).
        """
        if self._levels is None:
            path = self.store_dir / _LEVELS_NPY
            if path.exists():
                self._levels = np.load(path)
            else:
                self._levels = _measure_levels(self.store_dir, self._shard, self._offset, self.lengths, self.has_source)
                try:
                    _save_npy(path, self._levels)
                except OSError:
                    pass  # a read-only store: measured again by the next process that opens it
        return self._levels

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

    def _window(self, i: int, track: int, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n) of track ``track`` of item i (0: the mixture), cut at the item's end."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        length = int(self.lengths[i])
        available = max(0, min(n, length - start))
        first = int(self._offset[i]) + track * length + start
        return self._shard_map(int(self._shard[i]))[first : first + available]

    def _copy_into(self, out: np.ndarray, i: int, start: int, track: int = 0) -> None:
        """Fill ``out`` (zeroed) from item ``i`` at ``start``; samples past the item's end stay 0."""
        window = self._window(i, track, start, len(out))
        out[: len(window)] = window

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

    def _stem_tracks(self, i: int, names: Sequence[str]) -> list[int | None]:
        """For each name, the track of item i holding that stem (1 + stems stored before it), None if absent."""
        unknown = [name for name in names if name not in self._source_column]
        if unknown:
            known = ", ".join(self.source_names) or "none: it holds mixtures only"
            raise ValueError(f"{self.store_dir}: no {', '.join(map(repr, unknown))} stems; its sources are {known}")
        present = self.has_source[i]
        tracks = []
        for name in names:
            column = self._source_column[name]
            tracks.append(1 + int(np.count_nonzero(present[:column])) if present[column] else None)
        return tracks

    def read_sources(self, i: int, start: int, n: int, names: Sequence[str]) -> np.ndarray:
        """int16 [len(names), n]: the named stems of item i at the same window as ``read(i, start, n)``.

        Rows are zero where the item has no such stem and past the item's end.
        """
        i, start = int(i), int(start)
        out = np.zeros((len(names), n), dtype=np.int16)
        for row, track in enumerate(self._stem_tracks(i, names)):
            if track is not None:
                self._copy_into(out[row], i, start, track)
        return out

    def source_activity(self, i: int, start: int, n: int, names: Sequence[str]) -> np.ndarray:
        """float32 [len(names)]: mean |x| (x in [-1, 1)) of each named stem over [start, start + n) cut at the
        item's end; 0.0 where the item has no such stem. A presence threshold is the caller's choice."""
        i, start = int(i), int(start)
        activity = np.zeros(len(names), dtype=np.float32)
        for row, track in enumerate(self._stem_tracks(i, names)):
            if track is not None:
                window = self._window(i, track, start, n)
                if len(window):
                    activity[row] = np.abs(window, dtype=np.int32).sum(dtype=np.int64) / (32768.0 * len(window))
        return activity

    def random_starts(
        self, indices: Sequence[int] | np.ndarray, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """A uniformly random valid crop start per item (0 when the item is shorter than ``n``)."""
        last_start = np.maximum(self.lengths[np.asarray(indices, dtype=np.int64)] - n, 0)
        return rng.integers(0, last_start + 1, dtype=np.int64)
