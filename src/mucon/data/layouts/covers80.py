"""Covers80: ``covers32k/<Song>/<artist+Album+NN-Song>.mp3`` and the lists ``list1.list``, ``list2.list``.

The release (``covers80.tgz``) unpacks to ``coversongs/covers32k/``; the folder may be the one that
holds ``coversongs/`` or ``covers32k/``. Each list names one version of each of the 80 songs, in the
same order, as ``Song/artist+Album+NN-Song`` without the extension; the first part is the song.

The benchmark is retrieval: each of the 160 versions queries the other 159 and the one other version
of its song is the hit, scored by mean average precision and the mean rank of the first hit.

Labels: ``split`` (test, all of them), ``work`` (the song), ``list`` (list1, list2).
"""

from __future__ import annotations

from pathlib import Path

from mucon.audio.io import PATH_CSV_OPTIONS

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, first_existing, require_files

LISTS = ("list1.list", "list2.list")
PLACES = ("covers32k", "coversongs/covers32k")
RELEASE = "covers80.tgz, https://labrosa.ee.columbia.edu/projects/coversongs/covers80/"
SOURCE = "the release's list1.list and list2.list (Ellis and Cronin 2007): 80 songs, 2 versions each"


def _lists_folder(folder: Path) -> Path | None:
    """The ``covers32k`` folder, which holds the lists and the audio."""
    return first_existing(folder, PLACES)


def _read(folder: Path, options: LayoutOptions) -> Table:
    place = _lists_folder(folder) or folder / PLACES[0]
    prefix = place.relative_to(folder).as_posix()
    require_files(folder, "Covers80", RELEASE, [f"{prefix}/{name}" for name in LISTS])
    tracks = []
    for name in LISTS:
        with open(place / name, **PATH_CSV_OPTIONS) as handle:
            for line in handle:
                if line.strip():
                    entry = line.strip()
                    tracks.append(Track(f"{prefix}/{entry}.mp3", labels=("test", entry.split("/")[0], Path(name).stem)))
    return Table("covers80", ("split", "work", "list"), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and _lists_folder(folder) is not None


COVERS80 = Layout(
    "covers80", "Covers80: covers32k/<Song>/<version>.mp3, list1.list, list2.list", _detect, _read,
    dataset="Covers80", release=RELEASE,
    tasks=(BenchmarkTask("covers80", "retrieval", "work", "MAP and mean rank of the first hit (160 queries)",
                         {"test": 160}, SOURCE),),
)
