"""Downstream metrics, vectorised in numpy so mucon needs no scikit-learn or mir_eval at run time.

Every function follows the definition of the reference implementation the papers report with
(scikit-learn for classification and regression, mir_eval for keys); the test suite checks them
against those libraries on random inputs, ties included.
"""

from __future__ import annotations

import re

import numpy as np

from mucon.data.labels import PITCH_CLASS_NAMES

# --- ranking helpers -------------------------------------------------------------------------------


def tie_group_bounds(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For columns already sorted, the first and last row index of each entry's run of equal values."""
    n = sorted_values.shape[0]
    rows = np.arange(n)[:, None]
    starts_run = np.ones(sorted_values.shape, dtype=bool)
    starts_run[1:] = sorted_values[1:] != sorted_values[:-1]
    ends_run = np.ones(sorted_values.shape, dtype=bool)
    ends_run[:-1] = starts_run[1:]
    first = np.maximum.accumulate(np.where(starts_run, rows, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends_run, rows, n - 1)[::-1], axis=0)[::-1]
    return first, last


def _as_columns(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape:
        raise ValueError(f"labels {y_true.shape} and scores {scores.shape} differ in shape")
    if y_true.ndim == 1:
        y_true, scores = y_true[:, None], scores[:, None]
    return y_true.astype(bool), scores


def _mean(values: np.ndarray) -> float:
    """Mean that is NaN, without a warning, when nothing is there to average."""
    return float(values.mean()) if values.size else float("nan")


def _macro_mean(per_class: np.ndarray) -> float:
    """Mean over the classes where the metric is defined (both a positive and a negative exist).

    scikit-learn raises instead; on small test splits a rare tag with no positive is common, and
    dropping it is the usual reporting choice (the count of classes used is what changes).
    """
    return _mean(per_class[np.isfinite(per_class)])


# --- multilabel tagging ----------------------------------------------------------------------------


def roc_auc_per_class(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of each column, as the Mann-Whitney statistic on tie-averaged ranks (NaN if undefined)."""
    y_true, scores = _as_columns(y_true, scores)
    order = np.argsort(scores, axis=0, kind="stable")
    first, last = tie_group_bounds(np.take_along_axis(scores, order, axis=0))
    ranks = np.empty_like(scores)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    positives = y_true.sum(axis=0)
    negatives = y_true.shape[0] - positives
    rank_sum = np.where(y_true, ranks, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def average_precision_per_class(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of each column: sum over thresholds of (recall step) x precision.

    Tied scores form one threshold, as in scikit-learn: every positive of a tie run gets the
    precision measured at the end of the run. NaN for a column without positives.
    """
    y_true, scores = _as_columns(y_true, scores)
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_true = np.take_along_axis(y_true, order, axis=0)
    _, last = tie_group_bounds(np.take_along_axis(-scores, order, axis=0))
    true_positives = np.cumsum(sorted_true, axis=0)
    precision = true_positives / np.arange(1, y_true.shape[0] + 1)[:, None]
    precision_at_run_end = np.take_along_axis(precision, last, axis=0)
    positives = y_true.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sorted_true, precision_at_run_end, 0.0).sum(axis=0) / positives


def roc_auc_macro(y_true: np.ndarray, scores: np.ndarray) -> float:
    return _macro_mean(roc_auc_per_class(y_true, scores))


def average_precision_macro(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro PR-AUC (average precision), the tagging figure the papers report beside ROC-AUC."""
    return _macro_mean(average_precision_per_class(y_true, scores))


# --- multiclass --------------------------------------------------------------------------------------


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 averaged over every class that occurs in the truth or the predictions (scikit-learn's set)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, encoded = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    true_index, pred_index = encoded[: y_true.size], encoded[y_true.size :]
    hits = true_index == pred_index
    true_positives = np.bincount(true_index[hits], minlength=classes.size)
    support = np.bincount(true_index, minlength=classes.size)
    predicted = np.bincount(pred_index, minlength=classes.size)
    # 2 tp / (2 tp + fp + fn) is the harmonic mean of precision and recall, 0 where tp is 0.
    return float(np.mean(2.0 * true_positives / (support + predicted)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true class, predicted class]``."""
    flat = np.asarray(y_true) * n_classes + np.asarray(y_pred)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


# --- regression ----------------------------------------------------------------------------------------


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination, averaged uniformly over output columns; NaN (undefined) where a
    column's targets are all one value (scikit-learn returns 0 or 1 there instead, a made-up figure)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    residual = np.square(y_true - y_pred).sum(axis=0)
    total = np.square(y_true - y_true.mean(axis=0)).sum(axis=0)
    total = np.where((y_true != y_true[:1]).any(axis=0), total, np.nan)  # else rounding error, not a spread
    return float(np.mean(1.0 - residual / total))


# --- musical key ---------------------------------------------------------------------------------------

MODES = ("major", "minor")
# Index = pitch class + 12 * mode: the probe's 24 classes, whatever keys the train split happens to hold.
KEY_NAMES = tuple(f"{tonic} {mode}" for mode in MODES for tonic in PITCH_CLASS_NAMES)

_NATURAL_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTAL = {"#": 1, "♯": 1, "b": -1, "♭": -1}
_KEY_PATTERN = re.compile(r"^\s*([a-gA-G])([#♯b♭]*)[\s:_-]*(major|minor|maj|min)\s*$", re.IGNORECASE)


def key_index(name: str) -> int:
    """"A minor", "Bb major", "f#:min" -> 0..23 (pitch class + 12 x mode)."""
    match = _KEY_PATTERN.match(name)
    if match is None:
        raise ValueError(f"not a key name: {name!r} (expected e.g. 'A minor' or 'Bb major')")
    letter, accidentals, mode = match.groups()
    pitch_class = (_NATURAL_PITCH_CLASS[letter.lower()] + sum(_ACCIDENTAL[a] for a in accidentals)) % 12
    return pitch_class + (12 if mode.lower().startswith("min") else 0)


def key_weighted_scores(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """MIREX key score per item, on key indices: same key 1, estimate a fifth above the reference
    (same mode) 0.5, relative major/minor 0.3, parallel major/minor 0.2, else 0 (mir_eval's rules)."""
    reference, estimate = np.asarray(reference), np.asarray(estimate)
    ref_tonic, ref_minor = reference % 12, reference >= 12
    est_tonic, est_minor = estimate % 12, estimate >= 12
    interval = (est_tonic - ref_tonic) % 12
    same_mode = ref_minor == est_minor
    relative = ~same_mode & np.where(ref_minor, interval == 3, interval == 9)
    return np.select(
        [same_mode & (interval == 0), same_mode & (interval == 7), relative, ~same_mode & (interval == 0)],
        [1.0, 0.5, 0.3, 0.2],
        default=0.0,
    )


# --- retrieval -----------------------------------------------------------------------------------------


def retrieval_per_query(embeddings: np.ndarray, groups: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Each item queries all the others by cosine similarity; items of its group are the hits.

    Per query (one entry per item): ``answered`` (it has at least one hit), its average precision,
    the rank (1-based) of its first hit and its precision at ``k`` (NaN where unanswered), and the
    sum and count of its similarities to same-group and to other-group items. Per-query values are
    what a bootstrap over queries resamples. Ties in similarity keep the items' order.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    groups = np.asarray(groups)
    n = len(groups)
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    is_self = np.eye(n, dtype=bool)
    same_group = (groups[:, None] == groups[None, :]) & ~is_self
    other_group = ~same_group & ~is_self

    ranking = np.argsort(np.where(is_self, np.inf, -similarity), axis=1, kind="stable")[:, : n - 1]
    hits = np.take_along_axis(same_group, ranking, axis=1)
    n_hits = hits.sum(axis=1)
    answered = n_hits > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, n)
        average_precision = np.where(hits, precision_at_rank, 0.0).sum(axis=1) / n_hits
    first_hit = hits.argmax(axis=1) if n > 1 else np.zeros(n)  # a lone item has nothing to rank
    return {
        "answered": answered,
        "average_precision": np.where(answered, average_precision, np.nan),
        "first_hit_rank": np.where(answered, first_hit + 1.0, np.nan),
        "precision_at_k": np.where(answered, hits[:, :k].sum(axis=1) / k, np.nan),
        "cosine_same_sum": np.where(same_group, similarity, 0.0).sum(axis=1),
        "same_pairs": same_group.sum(axis=1),
        "cosine_other_sum": np.where(other_group, similarity, 0.0).sum(axis=1),
        "other_pairs": other_group.sum(axis=1),
    }


def retrieval_means(per_query: dict[str, np.ndarray], counts: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """The retrieval figures with each query counted ``counts[r, i]`` times, for every row r at once
    (a bootstrap's resamples of the queries; one row of ones gives the plain figures): mean AP,
    first-hit rank and precision at ``k`` over the answered queries, and the mean cosine similarity
    of same-group and of other-group pairs (the searched items stay all of the split)."""
    answered = per_query["answered"]
    answered_counts = counts[:, answered]
    with np.errstate(invalid="ignore", divide="ignore"):
        def query_mean(values: np.ndarray) -> np.ndarray:
            return answered_counts @ values[answered] / answered_counts.sum(axis=1)

        return {
            "map": query_mean(per_query["average_precision"]),
            "mean_rank_first_hit": query_mean(per_query["first_hit_rank"]),
            f"precision_at_{k}": query_mean(per_query["precision_at_k"]),
            "cosine_same_group": counts @ per_query["cosine_same_sum"] / (counts @ per_query["same_pairs"]),
            "cosine_other_group": counts @ per_query["cosine_other_sum"] / (counts @ per_query["other_pairs"]),
        }


def summarise_retrieval(per_query: dict[str, np.ndarray], k: int = 10) -> dict[str, float]:
    """The figures of ``retrieval_means`` for the split as it is, and the number of answered queries.

    The ranking figures average the queries that have at least one hit; the gap between the two
    cosine figures says how far apart the groups sit, whatever the ranking.
    """
    means = retrieval_means(per_query, np.ones((1, len(per_query["answered"]))), k)
    return {**{metric: float(values[0]) for metric, values in means.items()},
            "queries": int(per_query["answered"].sum())}


def random_ranking_means(groups: np.ndarray, k: int = 10) -> dict[str, float]:
    """The ranking figures of ``summarise_retrieval`` that a random ranking scores on average: the
    chance level of a retrieval split. Per answered query with h hits among the m others:
    E[first-hit rank] = (m + 1) / (h + 1), E[precision at k] = h min(k, m) / (m k) and
    E[AP] = q + (1 - q) H_m / m with q = (h - 1) / (m - 1) (H_m the m-th harmonic number: a hit at
    rank r holds, on average, (r - 1) q other hits above it)."""
    groups = np.asarray(groups)
    hits = (groups[:, None] == groups[None, :]).sum(axis=1) - 1
    answered = hits > 0
    if not answered.any():
        return {"map": float("nan"), "mean_rank_first_hit": float("nan"), f"precision_at_{k}": float("nan"),
                "queries": 0}
    others = len(groups) - 1
    h = hits[answered].astype(np.float64)
    other_hits_share = (h - 1) / max(others - 1, 1)
    harmonic = np.sum(1.0 / np.arange(1, others + 1))
    return {
        "map": _mean(other_hits_share + (1 - other_hits_share) * harmonic / others),
        "mean_rank_first_hit": _mean((others + 1) / (h + 1)),
        f"precision_at_{k}": _mean(h * min(k, others) / (others * k)),
        "queries": int(answered.sum()),
    }


def retrieval_metrics(embeddings: np.ndarray, groups: np.ndarray, k: int = 10) -> dict[str, float]:
    """Each item queries all the others by cosine similarity; see ``summarise_retrieval``."""
    return summarise_retrieval(retrieval_per_query(embeddings, groups, k), k)
