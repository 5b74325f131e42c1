"""FMA-small: ``fma_metadata/tracks.csv`` and ``fma_small/NNN/NNNNNN.mp3``.

``tracks.csv`` is a pandas table with two header rows (a column group such as ``track``, ``set`` or
``album``, then the column's name) and a third row naming the index (``track_id``); fields may run
over several lines inside quotes. The layout reads ``(set, subset)`` (small, medium, large),
``(set, split)`` (training, validation, test: the official split, stratified by genre, no artist in
two parts) and ``(track, genre_top)``. A track's audio is ``fma_small/`` + the first three digits of
its zero-padded six-digit id + ``/`` + that id + ``.mp3``.

Labels: ``split`` (train, valid, test), ``genre`` (one of the 8 top genres).
"""

from __future__ import annotations

import csv
from pathlib import Path

from mucon.audio.io import PATH_CSV_OPTIONS

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, require_files

TRACKS = "fma_metadata/tracks.csv"
AUDIO = "fma_small"
RELEASE = "FMA: fma_metadata.zip and fma_small.zip, unzipped side by side, https://github.com/mdeff/fma"
SOURCE = "the official split: tracks.csv columns (set, split) of fma_metadata (Defferrard et al. 2017)"
SPLIT_NAMES = {"training": "train", "validation": "valid", "test": "test"}  # tracks.csv's name -> mucon's
COLUMNS = {("set", "subset"): "subset", ("set", "split"): "split", ("track", "genre_top"): "genre"}


def audio_path(track_id: int) -> str:
    digits = f"{track_id:06d}"
    return f"{AUDIO}/{digits[:3]}/{digits}.mp3"


def _read(folder: Path, options: LayoutOptions) -> Table:
    require_files(folder, "FMA-small", RELEASE, [TRACKS, f"{AUDIO}/"])
    tracks = []
    with open(folder / TRACKS, **PATH_CSV_OPTIONS) as handle:
        rows = csv.reader(handle)
        groups, names = next(rows, []), next(rows, [])
        position = {COLUMNS[key]: i for i, key in enumerate(zip(groups, names)) if key in COLUMNS}
        if len(position) != len(COLUMNS):
            raise ValueError(f"{folder / TRACKS}: not FMA's tracks.csv (no columns (set, subset), (set, split) and "
                             "(track, genre_top) in its first two rows)")
        for row in rows:
            if not row or row[0] == "track_id" or row[position["subset"]] != "small":
                continue
            split = SPLIT_NAMES.get(row[position["split"]], "")
            tracks.append(Track(audio_path(int(row[0])), labels=(split, row[position["genre"]])))
    return Table("fma-small", ("split", "genre"), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and (folder / TRACKS).is_file()


FMA_SMALL = Layout(
    "fma-small", "FMA-small: fma_metadata/tracks.csv and fma_small/NNN/NNNNNN.mp3", _detect, _read,
    dataset="FMA-small", release=RELEASE,
    tasks=(BenchmarkTask("fma-small-genre", "multiclass", "genre", "accuracy over the 8 top genres",
                         {"train": 6400, "valid": 800, "test": 800}, SOURCE),),
)
