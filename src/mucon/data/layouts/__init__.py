"""Dataset layouts: how a folder of music becomes the table ``mucon prepare`` (and ``mucon separate``) reads.

A layout is one reader, ``read(folder, options) -> Table``, plus a test that recognises the
folder. The table has one ``Track`` per item: its mixture, its stems per source type (several
files of one type are summed), its label values and, when the layout already knows the track
cannot be used (an unreadable folder, a broken metadata file), why. Decoding and checking the
audio is the store's work, so every layout gets the same checks and the same ``skipped.csv``.

Adding a dataset is adding a module with a reader and one entry in ``LAYOUTS``; detection tries
the entries in order and falls back to ``plain``.

The public benchmark datasets (MagnaTagATune, MTG-Jamendo, GTZAN, NSynth, GiantSteps key, FMA-small,
Covers80, HEAR 2021 task folders) are layouts too. Theirs also carry the field's published facts:
the benchmark tasks read from their table (``BenchmarkTask``: label column, split, metric, the
published item count of each split and where the split comes from) and what the user downloads
(``release``); their readers name the files a wrong folder lacks (``require_files``).
``mucon.evaluation.benchmarks`` turns them into evaluation tasks.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import NamedTuple

SOURCE_TYPES = ("vocals", "drums", "bass", "other")
"""The source types a store keeps stems for, in the order every table and store uses."""


class Track(NamedTuple):
    """One item. Paths are relative to the dataset folder, posix-style; ``path`` is the store's item path."""

    path: str
    stems: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (source type, files summed into it), SOURCE_TYPES order
    labels: tuple[str, ...] = ()  # values of Table.label_columns
    problem: tuple[str, str] | None = None  # (reason, detail) known before decoding


@dataclass(frozen=True)
class LayoutOptions:
    """What a user may tell a reader: another metadata table, a stem mapping file (Slakh)."""

    metadata: Path | None = None
    stem_map: Path | None = None


@dataclass(frozen=True)
class Table:
    layout: str
    label_columns: tuple[str, ...]
    tracks: list[Track]

    def only_splits(self, splits: Sequence[str], where: str) -> Table:
        """The tracks whose ``split`` label is one of ``splits`` (``where`` names the dataset in errors)."""
        if "split" not in self.label_columns:
            raise ValueError(f"{where} has no split column ({self.layout} layout); --split needs one")
        column = self.label_columns.index("split")
        wanted = set(splits)
        kept = [track for track in self.tracks if track.labels[column] in wanted]
        if not kept:
            found = sorted({track.labels[column] for track in self.tracks})
            raise ValueError(f"{where}: no rows of split {', '.join(sorted(wanted))} (its splits: {', '.join(found)})")
        return replace(self, tracks=kept)


@dataclass(frozen=True)
class BenchmarkTask:
    """A task the field reports on, read from a layout's table: rows whose ``split`` column holds
    train/valid/test (or, with ``test_fold``, fold names) and whose ``label`` column is set.

    ``counts`` are the published item counts per split (train, valid, test), ``source`` says where
    the split comes from. With ``test_fold``, the ``split`` column holds folds: that fold is the
    test split, the next one (sorted, cyclic) the valid split, the others train, as the HEAR
    evaluation kit does. ``keep_unlabelled`` keeps rows with an empty label (a clip with none of the
    tags is a negative for every tag). ``on_request`` tasks are listed but never part of the
    dataset's default tasks.
    """

    name: str
    type: str
    label: str
    metrics: str
    counts: Mapping[str, int]
    source: str
    split: str = "split"
    test_fold: str | None = None
    keep_unlabelled: bool = False
    retrieval_split: str = "test"
    on_request: bool = False


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    detect: Callable[[Path, LayoutOptions], bool]
    read: Callable[[Path, LayoutOptions], Table]
    dataset: str = ""  # the dataset's name as the field writes it
    release: str = ""  # what the user downloads, and from where
    tasks: tuple[BenchmarkTask, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a name for several of the tasks
    # Where the tasks' tables are read: the folder itself, or (HEAR) each task folder below it,
    # with the tasks that folder declares.
    task_folders: Callable[[Path], list[tuple[Path, tuple[BenchmarkTask, ...]]]] | None = None

    def benchmark_folders(self, folder: Path) -> list[tuple[Path, tuple[BenchmarkTask, ...]]]:
        """(folder to read, its tasks) for a dataset folder."""
        return self.task_folders(folder) if self.task_folders else [(folder, self.tasks)]


def stems_in_order(stems: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A reader's {source type: files} as a Track's ``stems``: SOURCE_TYPES order, empty types dropped."""
    return tuple((source, tuple(stems[source])) for source in SOURCE_TYPES if stems.get(source))


def subfolders(folder: Path, unreadable: list[tuple[Path, str]] | None = None) -> list[Path]:
    """The folders directly in ``folder`` (links followed), without a stat per file: detection stays cheap.

    A folder that cannot be read has none; a reader passes ``unreadable`` to collect it and list it.
    """
    try:
        with os.scandir(folder) as entries:
            return [Path(entry.path) for entry in entries if entry.is_dir()]
    except OSError as error:
        if unreadable is not None:
            unreadable.append((folder, error.strerror or str(error)))
        return []


def track_folders(folder: Path, is_track: Callable[[Path], bool],
                  unreadable: list[tuple[Path, str]] | None = None) -> list[tuple[str, Path]]:
    """(split, track folder) for tracks in ``folder`` itself or one level below (a split folder: train/, test/)."""
    found = []
    for child in subfolders(folder):
        if is_track(child):
            found.append(("", child))
        else:
            found += [(child.name, track) for track in subfolders(child, unreadable) if is_track(track)]
    return found


def unreadable_tracks(folder: Path, unreadable: list[tuple[Path, str]], labels: tuple[str, ...]) -> list[Track]:
    """Folders a reader could not open, as tracks that ``prepare`` lists in skipped.csv."""
    return [Track(path.relative_to(folder).as_posix(), labels=labels, problem=("unreadable", why)) for path, why in unreadable]


def require_files(folder: Path, dataset: str, release: str, expected: Sequence[str]) -> None:
    """Raise ``FileNotFoundError`` naming what a dataset folder lacks (``expected``: paths relative to it).

    One line: all of them when none is there (a wrong folder), else the missing ones, and the
    release they belong to.
    """
    missing = [name for name in expected if not (folder / name).exists()]
    if missing:
        what = (f"no {dataset} here: expected {', '.join(expected)}" if len(missing) == len(expected)
                else f"not a complete {dataset} folder: missing {', '.join(missing)}")
        raise FileNotFoundError(f"{folder}: {what} (from {release})")


def published_lines(name: str) -> list[str]:
    """The lines of a split list shipped in ``published/`` (sources in ``published/README.md``)."""
    return resources.files(__package__).joinpath("published", name).read_text().splitlines()


def first_existing(folder: Path, candidates: Sequence[str]) -> Path | None:
    """The first of ``candidates`` (paths relative to ``folder``) that exists."""
    return next((folder / name for name in candidates if (folder / name).exists()), None)


def detect_layout(folder: Path, options: LayoutOptions = LayoutOptions()) -> Layout:
    """The first layout that recognises ``folder``; ``plain`` recognises every folder."""
    return next(layout for layout in LAYOUTS.values() if layout.detect(folder, options))


def read_table(
    folder: str | os.PathLike,
    layout: str | None = None,
    *,
    metadata: str | os.PathLike | None = None,
    stem_map: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
) -> Table:
    """The table of ``folder`` read with ``layout`` (detected when None), restricted to ``splits``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"audio folder not found or not a folder: {folder}")
    options = LayoutOptions(Path(metadata) if metadata is not None else None, Path(stem_map) if stem_map else None)
    for given in (options.metadata, options.stem_map):
        if given is not None and not given.is_file():
            raise FileNotFoundError(f"file not found: {given}")
    if layout is None:
        chosen = detect_layout(folder, options)
    elif layout in LAYOUTS:
        chosen = LAYOUTS[layout]
    else:
        raise ValueError(f"unknown layout {layout!r}; layouts: {', '.join(LAYOUTS)}")
    if options.stem_map is not None and chosen.name != "slakh2100":
        raise ValueError(f"--stem-map applies to the slakh2100 layout, but {folder} is read as {chosen.name}")
    table = chosen.read(folder, options)
    return _confined_and_unique(table.only_splits(splits, str(folder)) if splits else table)


def _outside(path: str) -> str | None:
    """Why a table's path does not name a file inside its folder, or None when it does."""
    normal = posixpath.normpath(path)
    if posixpath.isabs(path):
        return f"{path!r} is absolute; paths are relative to the folder"
    if normal == ".." or normal.startswith("../"):
        return f"{path!r} leads out of the folder"
    return "an empty path" if normal == "." else None


def _confined_and_unique(table: Table) -> Table:
    """The table with a problem set on each track that ``prepare`` and ``separate`` must not take.

    A path (mixture or stem) outside the folder would be read from, and ``separate`` would write
    next to, a place the user never gave; a second entry for one file (labels agreeing or not)
    would store it twice. The first entry of a file is kept and every later one is listed.
    """
    first: dict[str, Track] = {}
    tracks = []
    for track in table.tracks:
        if track.problem is None:
            paths = (track.path, *(stem for _, files in track.stems for stem in files))
            outside = next((why for why in map(_outside, paths) if why), None)
            if outside:
                track = track._replace(problem=("outside the folder", outside))
            elif (kept := first.setdefault(posixpath.normpath(track.path), track)) is not track:
                track = track._replace(problem=("duplicate", _repeated(table.label_columns, kept, track)))
        tracks.append(track)
    return replace(table, tracks=tracks)


def _repeated(columns: tuple[str, ...], kept: Track, again: Track) -> str:
    """Why a second entry for a file is dropped, naming the labels where it differs from the kept one."""
    differences = [f"{name} {old!r}, here {new!r}" for name, old, new in zip(columns, kept.labels, again.labels)
                   if old != new]
    return f"listed again; the first entry ({kept.path}) is kept" + (f": {'; '.join(differences)}" if differences else "")


def _registry() -> dict[str, Layout]:
    from . import covers80, fma, giantsteps, gtzan, hear, mtat, mtg_jamendo, musdb, nsynth, slakh, tables

    benchmarks = [mtat.MTAT, mtg_jamendo.MTG_JAMENDO, gtzan.GTZAN, nsynth.NSYNTH, giantsteps.GIANTSTEPS,
                  fma.FMA_SMALL, covers80.COVERS80, hear.HEAR]
    layouts = [tables.SEPARATED, musdb.MUSDB18HQ, slakh.SLAKH2100, *benchmarks, tables.CORPUS, tables.PLAIN]
    return {layout.name: layout for layout in layouts}


LAYOUTS: dict[str, Layout] = _registry()


__all__ = ["LAYOUTS", "SOURCE_TYPES", "BenchmarkTask", "Layout", "LayoutOptions", "Table", "Track", "detect_layout",
           "read_table"]
