"""Train/valid/test assignment by unit, never by file.

A unit is everything that must stay on one side: a piece with all its versions, a whole tune group
of chorales (its harmonisations are covers of each other), or a GM program with all its single notes
(so test holds instruments never heard in training). Units are shuffled within their class and dealt
along a fixed pattern, so each class is spread over the three sides in about the same proportions and
even a build of four pieces puts something in each of train, valid and test.
"""

from __future__ import annotations

from collections import defaultdict

from .rng import item_rng

PIECE_PATTERN = ("train", "test", "valid", "train", "test", "train", "train", "test", "train", "train")
"""60/10/30, with valid and test early so that tiny builds still have all three sides. Test is large
because it is what the evaluation measures with: its size sets the width of every interval, while
a probe learns well enough from twice as many items and early-stops on a few."""
PROGRAM_PATTERN = ("train", "test", "valid", "train", "test", "train", "train", "train")
"""Per GM family of 8 programs: 5 train, 1 valid, 2 test (two unseen instruments per family, so a
family's test notes are not one instrument's)."""


def assign(units: dict[str, str], seed: int, pattern: tuple[str, ...], kind: str,
           per_class: bool | None = None) -> dict[str, str]:
    """unit -> split, for units given as unit -> class.

    Classes are visited in sorted order and their shuffled units dealt along one running pattern for
    pieces (classes with few units still fill the pattern between them), or, ``per_class`` (the
    default for programs: every family needs unseen programs in test), one pattern per class.
    """
    per_class = kind == "program" if per_class is None else per_class
    by_class: dict[str, list[str]] = defaultdict(list)
    for unit, cls in sorted(units.items()):
        by_class[cls].append(unit)
    out: dict[str, str] = {}
    i = 0
    for cls in sorted(by_class):
        members = by_class[cls]
        order = item_rng(seed, "split", kind, cls).permutation(len(members))
        if per_class:
            i = 0
        for j in order:
            out[members[j]] = pattern[i % len(pattern)]
            i += 1
    return out
