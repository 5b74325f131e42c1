"""The report's figures: embedding maps, confusion matrices, robustness curves, training losses and
the probe score against training steps."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mucon.evaluation.embed import FileEmbeddings
from mucon.evaluation.metrics import confusion_matrix
from mucon.evaluation.models import ModelEntry
from mucon.evaluation.report import RETRIEVAL_HEAD
from mucon.evaluation.results import Results, Score
from mucon.evaluation.scoring import TaskOutcome, track_means
from mucon.evaluation.tasks import PRIMARY_METRIC, Task


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _map_labels(task: Task, rows: np.ndarray) -> list:
    if task.type == "regression":
        return [float(task.labels[row]) for row in rows]
    if task.type == "multilabel":  # colour by the first tag: a map has one colour per point
        return [task.labels[row].split(";")[0].strip() for row in rows]
    return [task.labels[row] for row in rows]


def map_panel(task: Task, outcome: TaskOutcome, embeddings: FileEmbeddings) -> tuple[np.ndarray, list]:
    """A model's points on a task's embedding map: the scored tracks' mean embeddings and their labels,
    taken while the folder's embeddings are at hand."""
    return track_means(task, outcome.rows, embeddings), _map_labels(task, outcome.rows)


def _values_and_bands(curves: dict[str, dict[str, dict[str, Score]]]) -> tuple[dict, dict]:
    """Robustness curves ``{model: {corruption: {severity: Score}}}`` as the plot takes them: the values,
    and their intervals ``[low, high]``."""
    values = {model: {corruption: {severity: score.value for severity, score in curve.items()}
                      for corruption, curve in per_model.items()} for model, per_model in curves.items()}
    bands = {model: {corruption: {severity: list(score.interval) for severity, score in curve.items()}
                     for corruption, curve in per_model.items()} for model, per_model in curves.items()}
    return values, bands


def draw_figures(tasks, entries, outcomes, map_panels, results: Results, head, figures_dir: Path,
                 progress) -> list[Path]:
    """Embedding maps, confusion matrices (of ``head``), robustness curves and pretraining losses."""
    from mucon.evaluation import plots  # matplotlib is needed for reports only, not for embeddings

    paths = []
    for task in tqdm(tasks, desc="figures", unit="task", leave=False, disable=not progress):
        slug = _slug(task.name)
        paths.append(plots.embedding_maps(
            task.name, map_panels[task.name], figures_dir / f"map-{slug}.png", continuous=task.type == "regression"
        ))
        if task.type in ("multiclass", "key"):
            panels = {}
            for entry in entries:
                outcome = outcomes[entry.name][task.name]
                predicted = outcome.test_predictions[head].argmax(axis=1)
                panels[entry.name] = confusion_matrix(task.targets(outcome.rows), predicted, len(task.classes))
            path = figures_dir / f"confusion-{slug}.png"
            paths.append(plots.confusion_matrices(task.name, panels, task.classes, path))
        robust = {model: per_task[task.name] for model, per_task in results.robustness.items() if task.name in per_task}
        if robust:
            curves, bands = _values_and_bands(robust)
            paths.append(plots.robustness_curves(
                task.name, PRIMARY_METRIC[task.type], curves, figures_dir / f"robustness-{slug}.png", bands=bands,
                exposure={model: results.robustness_exposure.get(model, {}) for model in curves},
            ))
    logs = {entry.name: entry.training_log for entry in entries if entry.training_log is not None}
    if logs:
        paths.append(plots.training_curves(logs, figures_dir / "training-curves.png"))
    runs = {}
    for entry in entries:
        if entry.run is not None:
            runs.setdefault(entry.run, []).append(entry)
    runs = {run: members for run, members in runs.items() if len(members) > 1}
    if runs:
        paths.append(plots.score_against_steps(step_curves(tasks, runs, results, head),
                                               figures_dir / "score-against-steps.png"))
    return paths


def step_curves(tasks, runs: dict[str, list[ModelEntry]], results: Results, head: str) -> dict:
    """``{task: (primary metric, {run: [(step, value, low, high), ...]})}`` for the runs evaluated at several
    steps; a run's random-init twin stands at step 0."""
    curves = {}
    for task in tasks:
        metric = PRIMARY_METRIC[task.type]
        task_head = RETRIEVAL_HEAD if task.type == "retrieval" else head

        def point(model: str, step: int) -> tuple[int, float, float, float]:
            score = results.scores[model][task.name][task_head][metric]
            return step, score.value, *(np.nan if bound is None else bound for bound in (score.low, score.high))

        curves[task.name] = (metric, {
            run: [*([point(members[0].twin, 0)] if members[0].twin else []),
                  *(point(entry.name, entry.step) for entry in members)]
            for run, members in runs.items()
        })
    return curves
