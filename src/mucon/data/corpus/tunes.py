"""Real cover groups: chorales that harmonise the same tune.

Bach set many hymn tunes several times, in different keys, metres and with different texts, so the
title does not tell the tune. The soprano does: two harmonisations of one tune share the melody of
their opening phrases. Melodies are compared as interval sequences (key-free), folded into one
octave (Bach moves a note by an octave to fit the range) with repeated notes merged (different texts
split notes differently), by edit distance (a passing note or a missing pickup costs one edit).
"""

from __future__ import annotations

import numpy as np

from .scores import Score

PHRASES = 3
"""Phrases (up to the third fermata) compared: one phrase is shared by unrelated tunes too often,
three tell tunes apart while the melodies stay short."""
MAX_NOTES = 32
SIMILARITY = 0.8
"""Minimum 1 - edit distance / length to call two openings one tune. Set by reading the groups
music21's chorale titles give: at 0.8 the groups match the hymnals' tune families (e.g.
'Befiehl du deine Wege' joins 'O Haupt voll Blut und Wunden'); lower, distinct tunes start to merge."""


def opening(score: Score) -> list[int]:
    """Octave-folded intervals of the top voice's opening phrases, repeated notes merged."""
    top = score.parts[score.top]
    fermatas = sorted(set(top.fermatas))
    end = fermatas[PHRASES - 1] if len(fermatas) >= PHRASES else float("inf")
    pitches = [int(n[2]) for n in top.notes if n[0] <= end][:MAX_NOTES]
    merged = [p for i, p in enumerate(pitches) if i == 0 or p != pitches[i - 1]]
    return [(b - a + 6) % 12 - 6 for a, b in zip(merged, merged[1:])]


def _edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def tune_groups(scores: list[Score]) -> dict[str, str]:
    """piece -> tune group id ('tune-<first piece>') for every chorale; other pieces get none.

    Single linkage: a chorale joins a group when it matches any member. A histogram bound
    (edit distance >= half the L1 distance of interval counts) skips most pairs before the
    quadratic edit distance, which keeps all 350 chorales to a second or two.
    """
    chorales = sorted((s for s in scores if s.chorale), key=lambda s: s.piece)
    seqs = [opening(s) for s in chorales]
    n = len(seqs)
    hist = np.zeros((n, 12), dtype=np.int64)
    for i, q in enumerate(seqs):
        np.add.at(hist[i], np.asarray(q, dtype=np.int64) + 6, 1)
    lengths = np.array([max(len(q), 1) for q in seqs])
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        longest = np.maximum(lengths[i], lengths[i + 1:])
        bound = np.maximum(np.abs(hist[i + 1:] - hist[i]).sum(1) / 2, np.abs(lengths[i + 1:] - lengths[i]))
        for j in np.flatnonzero(1 - bound / longest >= SIMILARITY) + i + 1:
            if find(i) != find(j) and 1 - _edit_distance(seqs[i], seqs[j]) / longest[j - i - 1] >= SIMILARITY:
                parent[find(j)] = find(i)
    # Name each group after its first member in sorted order, so ids do not depend on the selection order.
    names: dict[int, str] = {}
    for i in range(n):
        names.setdefault(find(i), "tune-" + chorales[i].piece.removeprefix("bach-"))
    return {chorales[i].piece: names[find(i)] for i in range(n)}
