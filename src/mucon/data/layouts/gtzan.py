"""GTZAN: ``genres/<genre>/<genre>.000NN.wav``, ten genres of 100 excerpts.

The folder may hold ``genres/`` (the original release, whose files end in ``.au``; the WAV
conversion keeps the names), ``genres_original/`` (the Kaggle copy), or the ten genre folders
themselves. The table lists all 1000 excerpts, with the extension the folder's files have, so that
a missing one is named (by ``prepare`` in skipped.csv, by ``evaluate`` in its warning).

The default split is the fault-filtered one of Kereliuk, Sturm and Larsen (2015): 930 excerpts
without the repetitions, distortions and mislabellings Sturm found, in train (443), valid (197) and
test (290) with no artist in two parts; shipped as published/gtzan-fault-filtered/ (see
published/README.md). The random 10-fold protocol, which lets an artist's excerpts fall on both
sides and inflates scores, is only there on request (tasks ``gtzan-genre-fold0`` .. ``fold9``):
excerpt NN of every genre goes to a fold drawn once with a fixed seed, 10 per genre per fold.

Labels: ``split`` (fault-filtered; empty for the 70 excerpts it leaves out), ``genre``, ``fold``
(0 .. 9).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, published_lines

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
GENRE_FOLDERS = ("genres", "genres_original", "")
EXTENSIONS = (".wav", ".au")
RELEASE = "GTZAN genre collection (genres.tar.gz, http://marsyas.info/downloads/datasets.html, or its WAV copy)"
FILTERED_SOURCE = ("fault-filtered split of Kereliuk, Sturm and Larsen (2015), github.com/coreyker/dnn-mgr "
                   "gtzan/{train,valid,test}_filtered.txt (commit bdad579), shipped as published/gtzan-fault-filtered")
FOLD_SOURCE = "random 10-fold split, stratified by genre (mucon, seed 0): on request only, artists cross folds"
FOLD_SEED = 0
N_FOLDS = 10


def _genres_folder(folder: Path) -> Path | None:
    """The folder holding the genre folders: the first candidate whose blues/ holds a blues.000NN file."""
    for place in GENRE_FOLDERS:
        blues = folder / place / "blues"
        if blues.is_dir() and next(blues.glob("blues.000*"), None) is not None:
            return blues.parent
    return None


def _fault_filtered_split() -> dict[str, str]:
    """Excerpt name (``blues.00029``) -> split."""
    split_of = {}
    for split in ("train", "valid", "test"):
        for line in published_lines(f"gtzan-fault-filtered/{split}_filtered.txt"):
            if line.strip():
                split_of[Path(line.strip()).stem] = split
    return split_of


def _folds() -> dict[str, int]:
    """Excerpt name -> fold: within each genre, a seeded permutation of its 100 excerpts dealt to 10 folds."""
    rng = np.random.default_rng(FOLD_SEED)
    fold_of = {}
    for genre in GENRES:
        for position, number in enumerate(rng.permutation(100)):
            fold_of[f"{genre}.{number:05d}"] = position % N_FOLDS
    return fold_of


def _read(folder: Path, options: LayoutOptions) -> Table:
    genres = _genres_folder(folder)
    if genres is None:
        raise FileNotFoundError(f"{folder}: no GTZAN here: expected genres/<genre>/<genre>.000NN.wav (or .au) for "
                                f"{', '.join(GENRES)} (from {RELEASE})")
    extension = next((file.suffix for file in (genres / "blues").glob("blues.000*") if file.suffix in EXTENSIONS),
                     EXTENSIONS[0])
    split_of, fold_of = _fault_filtered_split(), _folds()
    place = genres.relative_to(folder).as_posix()
    tracks = []
    for excerpt, fold in sorted(fold_of.items()):  # every excerpt of the release: a missing one is named
        genre = excerpt.split(".")[0]
        path = f"{place}/{genre}/{excerpt}{extension}".removeprefix("./")
        tracks.append(Track(path, labels=(split_of.get(excerpt, ""), genre, str(fold))))
    return Table("gtzan", ("split", "genre", "fold"), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and _genres_folder(folder) is not None


def _fold_task(test_fold: int) -> BenchmarkTask:
    return BenchmarkTask(f"gtzan-genre-fold{test_fold}", "multiclass", "genre", "accuracy",
                         {"train": 800, "valid": 100, "test": 100}, FOLD_SOURCE, split="fold",
                         test_fold=str(test_fold), on_request=True)


GTZAN = Layout(
    "gtzan", "GTZAN: genres/<genre>/<genre>.000NN.wav (or .au)", _detect, _read,
    dataset="GTZAN", release=RELEASE,
    tasks=(
        BenchmarkTask("gtzan-genre", "multiclass", "genre", "accuracy", {"train": 443, "valid": 197, "test": 290},
                      FILTERED_SOURCE),
        *(_fold_task(fold) for fold in range(N_FOLDS)),
    ),
    groups={"gtzan-10fold": tuple(f"gtzan-genre-fold{fold}" for fold in range(N_FOLDS))},
)
