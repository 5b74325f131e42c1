"""Layouts read from a folder and a CSV table: ``plain``, ``corpus`` and ``separated``.

- ``plain``: every audio file below the folder (links followed, unreadable folders listed), or the
  rows of a ``metadata.csv`` with a ``path`` column; every other column is a label.
- ``corpus``: a ``metadata.csv`` that also has ``stem_vocals``, ``stem_drums``, ``stem_bass`` and/or
  ``stem_other`` columns naming each row's stem files (empty cell: no such source). The built-in
  corpus writes one; any dataset can.
- ``separated``: a folder written by ``mucon separate``: the same table, marked by ``separated.json``.
"""

from __future__ import annotations

import csv
import json
import posixpath
from collections.abc import Iterator
from pathlib import Path

from mucon.audio.io import PATH_CSV_OPTIONS, walk_audio_files

from . import SOURCE_TYPES, Layout, LayoutOptions, Table, Track, stems_in_order

SEPARATED_JSON = "separated.json"
STEM_COLUMNS = {f"stem_{source}": source for source in SOURCE_TYPES}


def csv_rows(table: Path) -> Iterator[list[str]]:
    """Yield the header, then each non-blank row padded to the header's width; the header must have ``path``."""
    with open(table, **{**PATH_CSV_OPTIONS, "encoding": "utf-8-sig"}) as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if "path" not in header:
            raise ValueError(f"{table} has no 'path' column (columns: {header})")
        yield header
        for row in reader:
            if any(cell.strip() for cell in row):
                yield row + [""] * (len(header) - len(row))


def _table_file(folder: Path, options: LayoutOptions) -> Path | None:
    if options.metadata is not None:
        return options.metadata
    default = folder / "metadata.csv"
    return default if default.is_file() else None


def _read_csv_table(layout: str, table: Path, with_stems: bool) -> Table:
    rows = csv_rows(table)
    header = next(rows)
    path_column = header.index("path")
    label_columns = [i for i, name in enumerate(header) if name != "path"]
    stem_columns = [(i, STEM_COLUMNS[name]) for i, name in enumerate(header) if name in STEM_COLUMNS] if with_stems else []
    tracks = []
    for row in rows:
        stems = {source: [row[i]] for i, source in stem_columns if row[i].strip()}
        tracks.append(Track(row[path_column], stems_in_order(stems), tuple(row[i] for i in label_columns)))
    return Table(layout, tuple(header[i] for i in label_columns), tracks)


def labels_by_path(folder: Path, metadata: Path | None = None) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The label columns of the table ``prepare`` would read for ``folder`` (``metadata``, else its
    metadata.csv) and each listed file's values by its normalised path (the first row of a file);
    no columns and no rows without a table."""
    table = _table_file(folder, LayoutOptions(metadata))
    if table is None:
        return (), {}
    read = _read_csv_table("plain", table, with_stems=False)
    labels: dict[str, tuple[str, ...]] = {}
    for track in read.tracks:
        labels.setdefault(posixpath.normpath(track.path), track.labels)
    return read.label_columns, labels


def _read_plain(folder: Path, options: LayoutOptions) -> Table:
    table = _table_file(folder, options)
    if table is not None:
        return _read_csv_table("plain", table, with_stems=False)
    files, unreadable = walk_audio_files(folder)
    tracks = [Track(path) for path in files] + [Track(path, problem=("unreadable", why)) for path, why in unreadable]
    return Table("plain", (), sorted(tracks, key=lambda track: track.path))


def _has_stem_columns(folder: Path, options: LayoutOptions) -> bool:
    table = _table_file(folder, options)
    return table is not None and bool(STEM_COLUMNS.keys() & set(next(csv_rows(table))))


def _read_corpus(folder: Path, options: LayoutOptions) -> Table:
    table = _table_file(folder, options)
    if table is None:
        raise FileNotFoundError(f"{folder}: no metadata.csv (the corpus layout reads one with stem_<source> columns)")
    return _read_csv_table("corpus", table, with_stems=True)


def _read_separated(folder: Path, options: LayoutOptions) -> Table:
    if not (folder / SEPARATED_JSON).is_file():
        raise FileNotFoundError(f"{folder}: no {SEPARATED_JSON}; it is not a folder written by `mucon separate`")
    table = _table_file(folder, options)
    if table is None:
        settings = json.loads((folder / SEPARATED_JSON).read_text())
        raise ValueError(f"{folder}: separation not finished (no metadata.csv); run `mucon separate "
                         f"{settings.get('source_dir', 'IN')} {folder}` again to complete it")
    return _read_csv_table("separated", table, with_stems=True)


PLAIN = Layout("plain", "every audio file below the folder, or the rows of its metadata.csv",
               lambda folder, options: True, _read_plain)
CORPUS = Layout("corpus", "a metadata.csv with stem_<source> columns (the built-in corpus)", _has_stem_columns, _read_corpus)
SEPARATED = Layout("separated", "a folder written by `mucon separate`",
                   lambda folder, options: (folder / SEPARATED_JSON).is_file(), _read_separated)
