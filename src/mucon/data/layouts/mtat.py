"""MagnaTagATune: the clip folders ``0`` .. ``f`` of ``mp3.zip`` and ``annotations_final.csv``.

``annotations_final.csv`` is tab-separated despite its name, every field in double quotes:
``clip_id``, the 188 tags (``0`` or ``1``), ``mp3_path`` (``f/american_bach_soloists-...-30-59.mp3``,
relative to the folder that holds ``0`` .. ``f``).

The split is the one musicnn published and CLMR evaluates on by default (its ``pons2017`` split):
folders ``0`` .. ``b`` train, ``c`` valid, ``d`` .. ``f`` test, without three clips that cannot be
decoded; clips with none of the top-50 tags stay (negatives for every tag). It ships as
``published/mtat-pons2017-split.csv`` and the top-50 tags, in musicnn's order, as
``published/mtat-top50-tags.txt`` (see ``published/README.md``).

Labels: ``split`` (empty for the three clips outside it), ``top50`` and ``tags`` (all 188), tags
joined by ``;``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mucon.audio.io import PATH_CSV_OPTIONS

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, published_lines, require_files

ANNOTATIONS = "annotations_final.csv"
CLIP_FOLDERS = tuple("0123456789abcdef")
RELEASE = ("the MagnaTagATune release: mp3.zip.001-003 joined and unzipped, and annotations_final.csv, "
           "https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset")
SPLIT_SOURCE = ("musicnn-training data/index/mtt (train/val/test_gt_mtt.tsv, commit c7aa67b; CLMR's default "
                "'pons2017' split), shipped as published/mtat-pons2017-split.csv")
COUNTS = {"train": 18706, "valid": 1825, "test": 5329}


def _split_of_clip() -> dict[str, str]:
    rows = published_lines("mtat-pons2017-split.csv")
    return dict(line.split(",") for line in rows[1:])


def _read(folder: Path, options: LayoutOptions) -> Table:
    require_files(folder, "MagnaTagATune", RELEASE, [ANNOTATIONS, *(f"{name}/" for name in CLIP_FOLDERS)])
    top50 = published_lines("mtat-top50-tags.txt")
    split_of = _split_of_clip()
    tracks = []
    with open(folder / ANNOTATIONS, **PATH_CSV_OPTIONS) as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, [])
        if header[:1] != ["clip_id"] or header[-1:] != ["mp3_path"] or not set(top50) <= set(header):
            raise ValueError(f"{folder / ANNOTATIONS}: not MagnaTagATune's annotations (expected tab-separated "
                             f"clip_id, the 188 tags, mp3_path; found {header[:3]} ...)")
        tags = header[1:-1]
        for row in rows:
            if len(row) != len(header):
                raise ValueError(f"{folder / ANNOTATIONS}, line {rows.line_num}: {len(row)} fields, the header has "
                                 f"{len(header)}")
            present = [tag for tag, value in zip(tags, row[1:-1]) if value.strip() == "1"]
            chosen = set(present)
            tracks.append(Track(row[-1], labels=(split_of.get(row[0], ""), ";".join(t for t in top50 if t in chosen),
                                                 ";".join(present))))
    return Table("mtat", ("split", "top50", "tags"), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and (folder / ANNOTATIONS).is_file()


MTAT = Layout(
    "mtat", "MagnaTagATune: annotations_final.csv and the clip folders 0 .. f", _detect, _read,
    dataset="MagnaTagATune", release=RELEASE,
    tasks=(
        BenchmarkTask("mtat-top50", "multilabel", "top50", "ROC-AUC and PR-AUC (macro) over the top-50 tags",
                      COUNTS, SPLIT_SOURCE, keep_unlabelled=True),
        BenchmarkTask("mtat-all", "multilabel", "tags", "ROC-AUC and PR-AUC (macro) over all 188 tags",
                      COUNTS, SPLIT_SOURCE, keep_unlabelled=True),
    ),
)
