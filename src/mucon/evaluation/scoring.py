"""Scoring one model on one task: probes or retrieval, the paired bootstrap, robustness, comparisons.

Every score carries a paired bootstrap interval over the test items (see ``bootstrap``): the
same resamples of a task's items score every model, so a model's difference to its random-init
twin and to the best handcrafted baseline has an interval too.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

import numpy as np

from mucon.evaluation.bootstrap import LOWER_IS_BETTER, Resamples, difference, interval, resampled_scores
from mucon.evaluation.embed import FileEmbeddings
from mucon.evaluation.metrics import retrieval_means, retrieval_per_query, summarise_retrieval
from mucon.evaluation.models import ModelEntry
from mucon.evaluation.probes import KNN_HEAD, ChunkFeatures, KnnProbe, Probe, carve_validation, fit_knn_probe, fit_probe
from mucon.evaluation.protocols import PROTOCOLS, Protocol
from mucon.evaluation.report import RETRIEVAL_HEAD
from mucon.evaluation.results import Comparison, Score
from mucon.evaluation.robustness import robustness_curves
from mucon.evaluation.tasks import PRIMARY_METRIC, PROBE_KIND, SPLITS, Task, score_predictions


@dataclasses.dataclass
class TaskOutcome:
    """A model's result on one task, with what the figures, the intervals and robustness need."""

    scores: dict[str, dict[str, float]]
    rows: np.ndarray  # the task rows scored: test rows of a probe task, the searched rows of retrieval
    probes: dict[str, Probe | KnnProbe] = dataclasses.field(default_factory=dict)
    test_predictions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    per_query: dict[str, np.ndarray] | None = None  # retrieval: what a bootstrap over queries resamples


def _embedded_rows(task: Task, split: str, embedded: set[str]) -> np.ndarray:
    return np.array([row for row in task.rows(split) if task.paths[row] in embedded], dtype=np.int64)


def _chunks(task: Task, rows: np.ndarray, embeddings: FileEmbeddings) -> ChunkFeatures:
    features, owner = embeddings.chunks([task.paths[row] for row in rows])
    return ChunkFeatures(features, owner, len(rows))


def track_means(task: Task, rows: np.ndarray, embeddings: FileEmbeddings) -> np.ndarray:
    position = {path: i for i, path in enumerate(embeddings.paths)}
    return embeddings.means()[[position[task.paths[row]] for row in rows]]


def probe_task(
    task: Task, embeddings: FileEmbeddings, heads: Sequence[str], seed: int, protocol: Protocol = PROTOCOLS["mucon"]
) -> TaskOutcome:
    """Train each head on the train split (early stopping on valid, or on a carved 20 % of train)
    and score it on the test split, as ``protocol`` says; the kNN head's k is chosen on valid by the
    task's primary metric."""
    embedded = set(embeddings.paths)
    train_rows, valid_rows, test_rows = (_embedded_rows(task, split, embedded) for split in SPLITS)
    if len(valid_rows) == 0:
        keep, held_out = carve_validation(len(train_rows), seed=seed)
        train_rows, valid_rows = train_rows[keep], train_rows[held_out]
    train, valid = (protocol.select(_chunks(task, rows, embeddings), split, seed)
                    for rows, split in ((train_rows, "train"), (valid_rows, "valid")))
    test = _chunks(task, test_rows, embeddings)
    test_targets = task.targets(test_rows)
    primary = PRIMARY_METRIC[task.type]

    def monitor(targets: np.ndarray, predictions: np.ndarray) -> float:
        return score_predictions(task.type, targets, predictions)[primary]

    outcome = TaskOutcome(scores={}, rows=test_rows)
    examples = (train, task.targets(train_rows), valid, task.targets(valid_rows), len(task.classes))
    for head in heads:
        if head == KNN_HEAD:
            probe = fit_knn_probe(PROBE_KIND[task.type], *examples, monitor, standardise=protocol.standardise)
        else:
            options = protocol.fit_options(head, monitor)
            probe = fit_probe(PROBE_KIND[task.type], *examples, head=head, seed=seed, **options)
        predictions = protocol.predict(probe, test)
        outcome.probes[head] = probe
        outcome.test_predictions[head] = predictions
        outcome.scores[head] = score_predictions(task.type, test_targets, predictions)
    return outcome


def retrieval_task(task: Task, embeddings: FileEmbeddings) -> TaskOutcome:
    """Every item of the retrieval split queries the others by cosine similarity.

    Embeddings are standardised per dimension over the searched items first (no labels involved),
    so that one large-valued dimension (MFCC energy, a ReLU offset) does not decide every similarity.
    """
    rows = _embedded_rows(task, task.retrieval_split, set(embeddings.paths))
    means = track_means(task, rows, embeddings)
    standardised = (means - means.mean(axis=0)) / (means.std(axis=0) + 1e-6) if len(means) else means
    per_query = retrieval_per_query(standardised, task.targets(rows))
    return TaskOutcome(scores={RETRIEVAL_HEAD: summarise_retrieval(per_query)}, rows=rows, per_query=per_query)


@dataclasses.dataclass
class TaskBootstrap:
    """The resamples of a task's scored split, drawn once and shared by every model: the pairing.

    A model that could not score some items (undecodable files) uses the same resamples, restricted
    to the items it scored.
    """

    rows: np.ndarray  # every row of the scored split, ascending
    resamples: Resamples

    @classmethod
    def draw(cls, task: Task, n_resamples: int, seed: int) -> TaskBootstrap:
        rows = task.rows(task.retrieval_split if task.type == "retrieval" else "test")
        groups = [task.groups[row] for row in rows] if task.groups is not None else None
        task_seed = [seed, zlib.crc32(task.name.encode())]  # tasks resampled independently, reproducibly
        return cls(rows, Resamples.draw(len(rows), groups, n_resamples=n_resamples, seed=task_seed))

    def counts(self, scored_rows: np.ndarray) -> np.ndarray:
        return self.resamples.counts[:, np.searchsorted(self.rows, scored_rows)]

    def resampled(self, task: Task, outcome: TaskOutcome) -> dict[str, dict[str, np.ndarray]]:
        """``{head: {metric: [R]}}``: every figure of the outcome on every resample."""
        counts = self.counts(outcome.rows)
        if task.type == "retrieval":
            return {RETRIEVAL_HEAD: retrieval_means(outcome.per_query, counts)}
        targets = task.targets(outcome.rows)
        return {head: resampled_scores(task.type, targets, predictions, counts)
                for head, predictions in outcome.test_predictions.items()}


def robustness_scores(
    task: Task, outcome: TaskOutcome, head: str, conditions, corrupted: dict[str, FileEmbeddings],
    bootstrap: TaskBootstrap, protocol: Protocol,
) -> dict[str, dict[str, Score]]:
    """The clean-trained probe's primary metric on each condition's embeddings of the test files, with
    its interval: curves ``{corruption: {severity: Score}}``."""
    metric = PRIMARY_METRIC[task.type]

    def point(rows: np.ndarray, predictions: np.ndarray) -> Score:
        targets = task.targets(rows)
        spread = resampled_scores(task.type, targets, predictions, bootstrap.counts(rows))[metric]
        return Score(score_predictions(task.type, targets, predictions)[metric], tuple(interval(spread)))

    def score(condition) -> Score:
        under = corrupted[condition.key]
        embedded = set(under.paths)
        rows = np.array([row for row in outcome.rows if task.paths[row] in embedded], dtype=np.int64)
        return point(rows, protocol.predict(outcome.probes[head], _chunks(task, rows, under)))

    return robustness_curves(point(outcome.rows, outcome.test_predictions[head]), conditions, score)


def with_intervals(scores: dict[str, dict[str, float]], distributions: dict[str, dict[str, np.ndarray]]
                   ) -> dict[str, dict[str, Score]]:
    """A task's figures ``{head: {metric: value}}``, each with the interval of its distribution over the
    resamples (``TaskBootstrap.resampled``); a count (retrieval's queries) has none."""
    return {head: {metric: Score(value, tuple(interval(distributions[head][metric]))
                                 if metric in distributions[head] else None)
                   for metric, value in per_head.items()}
            for head, per_head in scores.items()}


def comparisons(entries: Sequence[ModelEntry], scores: dict, distributions: dict) -> dict:
    """Each model under test against its random-init twin and against the best handcrafted baseline
    (the one scoring best on that figure), on the same resamples:
    ``{model: {task: {head: {metric: {"random-init": Comparison, "baseline": Comparison}}}}}``, see
    ``bootstrap.difference``; ``scores`` are ``{model: {task: {head: {metric: Score}}}}``."""
    handcrafted = [entry.name for entry in entries if entry.kind == "handcrafted"]

    def best_baseline(task: str, head: str, metric: str) -> str | None:
        scored = [(scores[name][task][head][metric].value, name) for name in handcrafted
                  if np.isfinite(scores[name][task][head][metric].value)]
        if not scored:
            return None
        pick = min if metric in LOWER_IS_BETTER else max
        return pick(scored)[1]

    def against(model: str, other: str, task: str, head: str, metric: str, spread: np.ndarray) -> Comparison:
        found = difference(metric, scores[model][task][head][metric].value, scores[other][task][head][metric].value,
                           spread, distributions[other][task][head][metric])
        return Comparison(other, found["difference"], tuple(found["interval"]), found["better"])

    compared = {}
    for entry in (entry for entry in entries if entry.compared):
        compared[entry.name] = per_model = {}
        for task, per_task in distributions[entry.name].items():
            for head, per_head in per_task.items():
                for metric, spread in per_head.items():
                    others = {"random-init": entry.twin, "baseline": best_baseline(task, head, metric)}
                    per_model.setdefault(task, {}).setdefault(head, {})[metric] = {
                        role: against(entry.name, other, task, head, metric, spread)
                        for role, other in others.items() if other is not None
                    }
    return compared
