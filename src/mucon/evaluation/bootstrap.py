"""Paired bootstrap intervals over test items: how far a score would move with another draw of test
items, and whether two models differ by more than that.

Every model of an evaluation is scored on the SAME resamples of a task's test items, so the
difference between two models has a distribution, and an interval, of its own. It is much
narrower than the two models' intervals side by side, because an item that is hard for one model
is usually hard for the other. When items come in correlated groups (versions of one piece),
whole groups are resampled instead of items, or the interval would claim more certainty than the
test split holds.

A resample is stored as the multiplicity of each item, ``counts [R, n]``, and every metric is
computed for all R resamples at once as the weighted form of its definition. That equals the metric
recomputed on the resampled items: a repeated item ties with its copies, which the rank metrics
already handle (the tests check it against a plain loop).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from mucon.evaluation.metrics import key_weighted_scores, tie_group_bounds

N_RESAMPLES = 1000
CONFIDENCE = 0.95
# Above this share of resamples where the metric is undefined, the interval is undefined too: what
# is left is a biased selection of resamples (those that happened to draw enough distinct items).
MAX_UNDEFINED_SHARE = 0.05
# R² of a resample whose total sum of squares is below this share of its sum of squares about the
# split's mean is undefined: the targets it drew are (all but) one value, and the ratio is rounding error.
CONSTANT_TARGETS = 1e-9
# Metrics where a smaller value is the better one (the rank at which the first hit appears).
LOWER_IS_BETTER = frozenset({"mean_rank_first_hit"})


@dataclasses.dataclass(frozen=True)
class Resamples:
    """Bootstrap resamples of a test split: ``drawn[r]`` are the units (items, or groups of items)
    resample r draws with replacement; ``unit_of_item[i]`` is the unit item i belongs to."""

    drawn: np.ndarray
    unit_of_item: np.ndarray

    @classmethod
    def draw(
        cls,
        n_items: int,
        groups: Sequence[str] | None = None,
        *,
        n_resamples: int = N_RESAMPLES,
        seed: int | Sequence[int] = 0,
    ) -> Resamples:
        """``n_resamples`` resamples of ``n_items`` items, or of their ``groups`` (an item whose
        group is empty is a group of its own), from ``seed`` (an int or a sequence of ints)."""
        if groups is None:
            unit_of_item = np.arange(n_items)
        else:
            if len(groups) != n_items:
                raise ValueError(f"{len(groups)} group labels for {n_items} items")
            keys = [group if group else f"\0item {i}" for i, group in enumerate(groups)]
            unit_of_item = np.unique(np.array(keys, dtype=str), return_inverse=True)[1].reshape(-1)
        n_units = int(unit_of_item.max()) + 1 if n_items else 0
        drawn = np.random.default_rng(seed).integers(0, max(n_units, 1), size=(n_resamples, n_units))
        return cls(drawn, unit_of_item)

    @property
    def n_units(self) -> int:
        return self.drawn.shape[1]

    @functools.cached_property
    def counts(self) -> np.ndarray:
        """``[R, n_items]`` float multiplicities: how often each item occurs in each resample."""
        n_resamples, n_units = self.drawn.shape
        flat = (self.drawn + n_units * np.arange(n_resamples)[:, None]).reshape(-1)
        per_unit = np.bincount(flat, minlength=n_resamples * n_units).reshape(n_resamples, n_units)
        return per_unit[:, self.unit_of_item].astype(np.float64)


def interval(distribution: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """Percentile interval ``[low, high]`` of a bootstrap distribution. Resamples where the metric is
    undefined (NaN or infinite, such as a class with no positive drawn) are left out; NaNs (undefined,
    "n/a" in the tables) where more than ``MAX_UNDEFINED_SHARE`` of them are."""
    distribution = np.asarray(distribution, np.float64)
    finite = distribution[np.isfinite(distribution)]
    if not finite.size or finite.size < (1.0 - MAX_UNDEFINED_SHARE) * distribution.size:
        return [float("nan"), float("nan")]
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return [float(low), float(high)]


def difference(
    metric: str, score: float, other_score: float, distribution: np.ndarray, other_distribution: np.ndarray
) -> dict:
    """A model against another on the same resamples: the difference, its interval and ``better``
    (+1 better beyond the interval, i.e. the interval excludes 0; -1 worse beyond it; 0 neither),
    where better means lower for ``LOWER_IS_BETTER`` metrics."""
    with np.errstate(invalid="ignore"):  # inf - inf (an R2 over constant targets) is undefined, and left out
        low, high = interval(np.asarray(distribution) - np.asarray(other_distribution))
    sign = -1 if metric in LOWER_IS_BETTER else 1
    above, below = low > 0, high < 0  # False for a NaN interval
    return {
        "difference": score - other_score,
        "interval": [low, high],
        "better": sign * (int(above) - int(below)),
    }


# --- metrics on every resample at once ------------------------------------------------------------


def _weighted_mean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts @ np.asarray(values, np.float64) / counts.sum(axis=1)


def _macro_per_resample(per_class: list[np.ndarray]) -> np.ndarray:
    """Mean over the classes defined in each resample (as ``metrics._macro_mean``); NaN where none is."""
    stacked = np.stack(per_class, axis=1) if per_class else np.zeros((0, 0))
    defined = np.isfinite(stacked)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, stacked, 0.0).sum(axis=1) / defined.sum(axis=1)


def _macro_f1(counts: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per resample, F1 averaged over the classes that occur in its truth or its predictions."""
    classes, encoded = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    true_hot = np.eye(classes.size)[encoded[: y_true.size]]
    predicted_hot = np.eye(classes.size)[encoded[y_true.size :]]
    true_positives = counts @ (true_hot * predicted_hot)
    occurrences = counts @ true_hot + counts @ predicted_hot
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(occurrences > 0, 2.0 * true_positives / occurrences, np.nan)
    return _macro_per_resample(list(per_class.T))


def _roc_auc(counts: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney statistic: each (positive, negative) pair counts w_i w_j, a tie half."""
    order = np.argsort(scores, kind="stable")
    first, last = (bounds[:, 0] for bounds in tie_group_bounds(scores[order][:, None]))
    weights, positive = counts[:, order], positive[order]
    negative_weights = np.where(positive, 0.0, weights)
    negatives_through = np.pad(np.cumsum(negative_weights, axis=1), ((0, 0), (1, 0)))
    below, through_tie = negatives_through[:, first], negatives_through[:, last + 1]
    positive_weights = np.where(positive, weights, 0.0)
    wins = (positive_weights * (below + 0.5 * (through_tie - below))).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (positive_weights.sum(axis=1) * negative_weights.sum(axis=1))


def _average_precision(counts: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Weighted average precision: every positive gets the precision at the end of its tie run."""
    order = np.argsort(-scores, kind="stable")
    last = tie_group_bounds(-scores[order][:, None])[1][:, 0]
    weights, positive = counts[:, order], positive[order]
    positive_weights = np.where(positive, weights, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.cumsum(positive_weights, axis=1)[:, last] / np.cumsum(weights, axis=1)[:, last]
        return np.where(positive_weights > 0, positive_weights * precision, 0.0).sum(axis=1) / positive_weights.sum(
            axis=1
        )


def _r2(counts: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    centred = y_true - y_true.mean(axis=0)  # shifting the origin keeps the sums of squares accurate
    about_split_mean = counts @ np.square(centred)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = about_split_mean - np.square(counts @ centred) / counts.sum(axis=1, keepdims=True)
        total = np.where(total > CONSTANT_TARGETS * about_split_mean, total, np.nan)
        return np.mean(1.0 - counts @ np.square(y_true - y_pred) / total, axis=1)


def resampled_scores(task_type: str, targets: np.ndarray, predictions: np.ndarray, counts: np.ndarray) -> dict:
    """``tasks.score_predictions`` on every resample: ``{metric: [R]}``."""
    if task_type == "multilabel":
        positive, scores = np.asarray(targets) > 0.5, np.asarray(predictions, np.float64)
        columns = range(positive.shape[1])
        return {
            "roc_auc": _macro_per_resample([_roc_auc(counts, positive[:, c], scores[:, c]) for c in columns]),
            "pr_auc": _macro_per_resample([_average_precision(counts, positive[:, c], scores[:, c]) for c in columns]),
        }
    if task_type == "regression":
        return {"r2": _r2(counts, targets, predictions)}
    predicted = np.asarray(predictions).argmax(axis=1)
    accuracy = _weighted_mean(counts, np.asarray(targets) == predicted)
    if task_type == "key":
        return {"accuracy": accuracy, "weighted": _weighted_mean(counts, key_weighted_scores(targets, predicted))}
    if task_type == "multiclass":
        return {"accuracy": accuracy, "macro_f1": _macro_f1(counts, np.asarray(targets), predicted)}
    raise ValueError(f"{task_type!r} is not a probe task type")
