"""Reading a prepared store: random crops by slicing memory maps.

Training draws thousands of random crops per second; decoding compressed audio for each one
would starve the GPU, so ``mucon.audio.store_writer.prepare_store`` writes every file once as
int16 PCM (the format: ``mucon.audio.store_format``) and ``AudioStore`` reads crops from
memory-mapped shards.

An item is a mixture and, when the dataset's layout has them (``mucon.data.layouts``), its
stems per source type (vocals, drums, bass, other), sample-aligned: same start, same length,
same rate. A crop of an item is the same window of each. An absent or silent stem is not stored.
"""

from __future__ import annotations

import csv
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mucon.audio.io import PATH_CSV_OPTIONS
from mucon.audio.store_format import (FORMAT_NAME, FORMAT_VERSION, INDEX_DTYPES, LABELS_CSV, LEVELS_NPY, SAMPLE_DTYPE,
                                      STORE_JSON, save_array, shard_path)

_LEVEL_CHUNK = 2**16  # samples summed at a time (0.5 MB of float64): memory stays flat in an item's length


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
        store_json = self.store_dir / STORE_JSON
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
        index = {name: self._index_array(name) for name in INDEX_DTYPES}
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
            path, size = shard_path(self.store_dir, shard), int(needed[shard])
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
            with open(self.store_dir / LABELS_CSV, **PATH_CSV_OPTIONS) as handle:
                reader = csv.reader(handle)
                header = next(reader)
                columns = list(zip(*reader)) or [()] * len(header)
            self._labels = {
                name: np.asarray(values, dtype=object)
                for name, values in zip(header, columns)
                if name != "path"
            }
            if any(len(values) != len(self) for values in self._labels.values()):
                raise ValueError(f"{self.store_dir / LABELS_CSV} does not have one row per item")
        return self._labels

    @property
    def levels(self) -> np.ndarray:
        """float32 [N, 1 + S]: RMS of item i's whole mixture (column 0) and of its stem of type
        ``source_names[s]`` (column 1 + s; 0 where absent), as ``index-rms.npy`` holds them.

        A store prepared before that file existed measures it here, once: it is saved next to the index
        when the folder is writable (else kept for this object's life).
        """
        if self._levels is None:
            path = self.store_dir / LEVELS_NPY
            if path.exists():
                self._levels = np.load(path)
            else:
                self._levels = measure_levels(self.store_dir, self._shard, self._offset, self.lengths, self.has_source)
                try:
                    save_array(path, self._levels)
                except OSError:
                    pass  # a read-only store: measured again by the next process that opens it
        return self._levels

    def _shard_map(self, shard: int) -> np.memmap:
        shard_map = self._open_shards.get(shard)
        if shard_map is None:
            shard_map = np.memmap(shard_path(self.store_dir, shard), dtype=SAMPLE_DTYPE, mode="r")
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


def measure_levels(store_dir: Path, shard: np.ndarray, offset: np.ndarray, length: np.ndarray,
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
            pcm = maps.setdefault(int(shard[i]), np.memmap(shard_path(store_dir, int(shard[i])), dtype=SAMPLE_DTYPE, mode="r"))
        columns = [0, *(1 + np.flatnonzero(has_source[i]))]
        for track, column in enumerate(columns):
            first = int(offset[i]) + track * n
            energy = sum(float(np.square(pcm[start : min(start + _LEVEL_CHUNK, first + n)], dtype=np.float64).sum())
                         for start in range(first, first + n, _LEVEL_CHUNK))
            levels[i, column] = np.sqrt(energy / n) / 32768.0
    return levels
