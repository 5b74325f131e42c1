"""GiantSteps key: ``giantsteps-key-dataset/`` and ``giantsteps-mtg-key-dataset/``, side by side.

Both are clones of the GiantSteps repositories with their audio fetched by ``audio_dl.sh`` into
``audio/<id>.LOFI.mp3``. The GiantSteps key set (604 two-minute previews) annotates each track in
``annotations/key/<id>.LOFI.key`` ("F minor"); the GiantSteps MTG key set (1486) in
``annotations/annotations.txt``, tab-separated ``ID``, ``MANUAL KEY`` ("D# minor", "-" for none,
"A / B" for several) and ``C`` (the annotator's confidence, 0 .. 2).

The split is JukeMIR's (Castellon et al. 2021; MARBLE uses it too): train 923 and valid 236 from
the MTG key set (confidence 2, a single key, split by artist), test on the whole GiantSteps key set
(604); shipped as published/giantsteps-key-jukemir-split.csv (see published/README.md).

Labels: ``split`` (empty for the MTG tracks JukeMIR leaves out), ``key``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mucon.audio.io import PATH_CSV_OPTIONS

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, published_lines, require_files

KEY_SET = "giantsteps-key-dataset"
MTG_KEY_SET = "giantsteps-mtg-key-dataset"
RELEASE = ("https://github.com/GiantSteps/giantsteps-key-dataset and "
           "https://github.com/GiantSteps/giantsteps-mtg-key-dataset, cloned side by side, audio fetched by "
           "each one's audio_dl.sh")
SOURCE = ("JukeMIR's split (github.com/p-lambda/jukemir metadata/giantsteps_clips.json.gz, commit 2415556), "
          "shipped as published/giantsteps-key-jukemir-split.csv")
EXPECTED = (f"{KEY_SET}/annotations/key/", f"{KEY_SET}/audio/", f"{MTG_KEY_SET}/annotations/annotations.txt",
            f"{MTG_KEY_SET}/audio/")


def _split_of_track() -> dict[str, str]:
    return dict(line.split(",") for line in published_lines("giantsteps-key-jukemir-split.csv")[1:])


def _read(folder: Path, options: LayoutOptions) -> Table:
    require_files(folder, "GiantSteps key", RELEASE, EXPECTED)
    split_of = _split_of_track()
    tracks = []
    for annotation in sorted((folder / KEY_SET / "annotations" / "key").glob("*.LOFI.key")):
        track = annotation.name.split(".")[0]
        key = annotation.read_text().split("\t")[0].strip()
        tracks.append(Track(f"{KEY_SET}/audio/{track}.LOFI.mp3", labels=(split_of.get(track, ""), key)))
    table = folder / MTG_KEY_SET / "annotations" / "annotations.txt"
    with open(table, **PATH_CSV_OPTIONS) as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        if not {"ID", "MANUAL KEY"} <= set(rows.fieldnames or ()):
            raise ValueError(f"{table}: not the GiantSteps MTG key annotations (expected the columns ID, "
                             "MANUAL KEY, C)")
        for row in rows:
            tracks.append(Track(f"{MTG_KEY_SET}/audio/{row['ID']}.LOFI.mp3",
                                labels=(split_of.get(row["ID"], ""), row["MANUAL KEY"].strip())))
    return Table("giantsteps", ("split", "key"), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and ((folder / KEY_SET).is_dir() or (folder / MTG_KEY_SET).is_dir())


GIANTSTEPS = Layout(
    "giantsteps", "GiantSteps key and MTG key sets: giantsteps-key-dataset/, giantsteps-mtg-key-dataset/",
    _detect, _read, dataset="GiantSteps key", release=RELEASE,
    tasks=(BenchmarkTask("giantsteps-key", "key", "key", "accuracy and the MIREX weighted score over 24 keys",
                         {"train": 923, "valid": 236, "test": 604}, SOURCE),),
)
