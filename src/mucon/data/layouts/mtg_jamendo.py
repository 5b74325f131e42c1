"""MTG-Jamendo: the audio folders ``00`` .. ``99`` and the split-0 TSVs of the four tag subsets.

The TSVs (``autotagging_<subset>-<train|validation|test>.tsv`` for the subsets ``top50tags``,
``genre``, ``moodtheme`` and ``instrument``) come with the dataset's repository
(``data/splits/split-0/``); they are read from the folder (at its top, or below
``data/splits/split-0/`` as in a copy of the repository's ``data`` folder), not shipped: a user who
has the audio has them, and their licence (CC BY-NC-SA 4.0) is not mucon's to re-license. Columns,
tab-separated: ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, where the tags fill the
remaining fields of the row, one per field (``genre---rock``, ``mood/theme---happy``).
``PATH`` (``14/214.mp3``) is relative to the audio folder; the low-quality download names the
file ``14/214.low.mp3``, which is used when the full-quality file is absent.

Labels: ``split`` (train, valid, test: a track is in the same part of split-0 in every subset) and
one column per subset holding the track's tags there, joined by ``;`` (empty: not in that subset).
"""

from __future__ import annotations

from pathlib import Path

from mucon.audio.io import PATH_CSV_OPTIONS

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, first_existing, require_files

SUBSETS = ("top50tags", "genre", "moodtheme", "instrument")
PARTS = {"train": "train", "validation": "valid", "test": "test"}  # file name part -> split
SPLIT_FOLDERS = ("", "data/splits/split-0/")  # where the TSVs may lie, below the folder
RELEASE = ("MTG-Jamendo: the audio (scripts/download/download.py, raw_30s audio or audio-low, unpacked) and "
           "the split-0 TSVs of https://github.com/MTG/mtg-jamendo-dataset data/splits/split-0")
HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
SOURCE = "the folder's split-0 TSVs (MTG-Jamendo repository data/splits/split-0, commit 1b4fa8c)"
COUNTS = {
    "top50tags": {"train": 32136, "valid": 10888, "test": 11356},
    "genre": {"train": 32572, "valid": 11043, "test": 11479},
    "moodtheme": {"train": 9949, "valid": 3802, "test": 4231},
    "instrument": {"train": 14395, "valid": 5466, "test": 5115},
}


def tsv_names() -> list[str]:
    return [f"autotagging_{subset}-{part}.tsv" for subset in SUBSETS for part in PARTS]


def _split_folder(folder: Path) -> Path | None:
    """The folder holding the TSVs (the first place that has the first of them)."""
    found = first_existing(folder, [f"{place}{tsv_names()[0]}" for place in SPLIT_FOLDERS])
    return found.parent if found else None


def _audio_path(folder: Path, path: str) -> str:
    low = path[: -len(".mp3")] + ".low.mp3" if path.endswith(".mp3") else path
    return low if not (folder / path).exists() and (folder / low).exists() else path


def _read(folder: Path, options: LayoutOptions) -> Table:
    tsv_folder = _split_folder(folder)
    place = tsv_folder.relative_to(folder).as_posix() + "/" if tsv_folder and tsv_folder != folder else ""
    require_files(folder, "MTG-Jamendo", RELEASE, [f"{place}{name}" for name in tsv_names()])
    split_of: dict[str, str] = {}
    path_of: dict[str, str] = {}
    tags_of: dict[str, dict[str, list[str]]] = {subset: {} for subset in SUBSETS}
    for subset in SUBSETS:
        for part, split in PARTS.items():
            table = tsv_folder / f"autotagging_{subset}-{part}.tsv"
            with open(table, **PATH_CSV_OPTIONS) as handle:
                lines = [line.rstrip("\r\n").split("\t") for line in handle if line.strip()]
            if not lines or lines[0] != HEADER:
                raise ValueError(f"{table}: not an MTG-Jamendo split TSV (expected the header {' '.join(HEADER)})")
            for line, fields in enumerate(lines[1:], 2):
                if len(fields) < len(HEADER):
                    raise ValueError(f"{table}, line {line}: {len(fields)} tab-separated fields, an MTG-Jamendo row "
                                     f"has {len(HEADER) - 1} and at least one tag ({' '.join(HEADER)})")
                track = fields[0]
                if split_of.setdefault(track, split) != split:
                    raise ValueError(f"{table}: {track} is in {split} here but in {split_of[track]} in another "
                                     "subset's file; these are not the split-0 TSVs")
                path_of[track] = fields[3]
                tags_of[subset][track] = fields[5:]
    tracks = [
        Track(_audio_path(folder, path_of[track]),
              labels=(split_of[track], *(";".join(tags_of[subset].get(track, ())) for subset in SUBSETS)))
        for track in sorted(split_of)
    ]
    return Table("mtg-jamendo", ("split", *SUBSETS), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and _split_folder(folder) is not None


def _task(subset: str, name: str, what: str) -> BenchmarkTask:
    return BenchmarkTask(f"mtg-jamendo-{name}", "multilabel", subset, f"ROC-AUC and PR-AUC (macro) over {what}",
                         COUNTS[subset], SOURCE)


MTG_JAMENDO = Layout(
    "mtg-jamendo", "MTG-Jamendo: audio folders 00 .. 99 and the split-0 autotagging_*.tsv", _detect, _read,
    dataset="MTG-Jamendo", release=RELEASE,
    tasks=(_task("top50tags", "top50", "the top-50 tags"), _task("genre", "genre", "the 87 genre tags"),
           _task("moodtheme", "moodtheme", "the 56 mood/theme tags"),
           _task("instrument", "instrument", "the 40 instrument tags")),
)
