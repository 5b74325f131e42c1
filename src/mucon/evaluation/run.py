"""``evaluate``: models x tasks -> probes, retrieval, robustness, baselines, tables and figures.

The expensive step is embedding audio, so it is organised around it: for each model and each
audio folder, the union of the files that the tasks on that folder use is embedded once (and
cached on disk); every task on the folder then only selects rows. Corrupted test audio is
embedded once per (model, folder, corruption, severity) the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mucon.encoders import Encoder
from mucon.evaluation.baselines import HandcraftedFeatures, random_init_encoder
from mucon.evaluation.embed import FileEmbeddings, cached_embed_files, model_fingerprint, resolve_encoder
from mucon.evaluation.metrics import confusion_matrix, retrieval_metrics
from mucon.evaluation.probes import ChunkFeatures, Probe, carve_validation, fit_probe
from mucon.evaluation.report import RETRIEVAL_HEAD, summary_table, text_table, write_report
from mucon.evaluation.robustness import robustness_conditions, robustness_curves
from mucon.evaluation.tasks import PRIMARY_METRIC, PROBE_KIND, SPLITS, Task, resolve_tasks, score_predictions


@dataclasses.dataclass
class ModelEntry:
    """A model under evaluation: its encoder, cache identity, and where it came from."""

    name: str
    encoder: Encoder
    fingerprint: str
    kind: str  # "pretrained", "encoder", "random-init" or "handcrafted"
    source: str
    training_log: Path | None = None


def _training_log(checkpoint: Path) -> Path | None:
    """``RUN_DIR/logs/metrics.csv`` for a checkpoint saved under ``RUN_DIR`` (or RUN_DIR/checkpoints)."""
    for run_dir in list(checkpoint.resolve().parents)[:3]:
        if (run_dir / "logs" / "metrics.csv").is_file():
            return run_dir / "logs" / "metrics.csv"
    return None


def _entry(name: str, model, kind: str, source: str, device, training_log: Path | None = None) -> ModelEntry:
    return ModelEntry(name, resolve_encoder(model, device), model_fingerprint(model), kind, source, training_log)


def resolve_models(
    models: Mapping[str, str | os.PathLike | Encoder], *, baselines: bool = True, seed: int = 0, device="cpu"
) -> list[ModelEntry]:
    """The models to evaluate, followed (``baselines``) by a random-init copy of every distinct
    checkpoint architecture and by MFCC+chroma statistics at the first model's sample rate."""
    from mucon.checkpoint import read_checkpoint

    if not models:
        raise ValueError("give at least one model: {name: checkpoint path or Encoder}")
    entries, architectures = [], {}
    for name, model in models.items():
        if isinstance(model, Encoder):
            entries.append(_entry(name, model, "encoder", type(model).__name__, device))
            continue
        path = Path(model)
        entries.append(_entry(name, path, "pretrained", str(path), device, _training_log(path)))
        architecture = read_checkpoint(path)["mucon"]["config"]["encoder"]
        architectures.setdefault(json.dumps(architecture, sort_keys=True), (architecture["name"], path))
    if baselines:
        numbered = len(architectures) > 1
        for index, (encoder_name, path) in enumerate(architectures.values()):
            name = f"{encoder_name} random-init" + (f" {index + 1}" if numbered else "")
            random_weights = random_init_encoder(path, seed)
            entries.append(_entry(name, random_weights, "random-init", f"architecture of {path}", device))
        handcrafted = HandcraftedFeatures(entries[0].encoder.sample_rate)
        entries.append(_entry("mfcc-chroma", handcrafted, "handcrafted", "MFCC + chroma mean/std", device))
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique (baselines add 'random-init' and 'mfcc-chroma'): {names}")
    return entries


@dataclasses.dataclass
class TaskOutcome:
    """A model's result on one task, with what the figures and the robustness test need."""

    scores: dict[str, dict[str, float]]
    map_rows: np.ndarray  # task rows shown on the embedding map
    probes: dict[str, Probe] = dataclasses.field(default_factory=dict)
    test_rows: np.ndarray | None = None
    test_predictions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _embedded_rows(task: Task, split: str, embedded: set[str]) -> np.ndarray:
    return np.array([row for row in task.rows(split) if task.paths[row] in embedded], dtype=np.int64)


def _chunks(task: Task, rows: np.ndarray, embeddings: FileEmbeddings) -> ChunkFeatures:
    features, owner = embeddings.chunks([task.paths[row] for row in rows])
    return ChunkFeatures(features, owner, len(rows))


def _track_means(task: Task, rows: np.ndarray, embeddings: FileEmbeddings) -> np.ndarray:
    position = {path: i for i, path in enumerate(embeddings.paths)}
    return embeddings.means()[[position[task.paths[row]] for row in rows]]


def probe_task(task: Task, embeddings: FileEmbeddings, heads: Sequence[str], seed: int) -> TaskOutcome:
    """Train each head on the train split (early stopping on valid, or on a carved 20 % of train)
    and score it on the test split."""
    embedded = set(embeddings.paths)
    train_rows, valid_rows, test_rows = (_embedded_rows(task, split, embedded) for split in SPLITS)
    if len(valid_rows) == 0:
        keep, held_out = carve_validation(len(train_rows), seed=seed)
        train_rows, valid_rows = train_rows[keep], train_rows[held_out]
    train, valid, test = (_chunks(task, rows, embeddings) for rows in (train_rows, valid_rows, test_rows))
    test_targets = task.targets(test_rows)
    outcome = TaskOutcome(scores={}, map_rows=test_rows, test_rows=test_rows)
    for head in heads:
        probe = fit_probe(
            PROBE_KIND[task.type], train, task.targets(train_rows), valid, task.targets(valid_rows),
            len(task.classes), head=head, seed=seed,
        )
        predictions = probe.predict(test)
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
    means = _track_means(task, rows, embeddings)
    standardised = (means - means.mean(axis=0)) / (means.std(axis=0) + 1e-6) if len(means) else means
    return TaskOutcome(scores={RETRIEVAL_HEAD: retrieval_metrics(standardised, task.targets(rows))}, map_rows=rows)


def _robustness_of(
    task: Task, outcome: TaskOutcome, head: str, conditions, corrupted: dict[str, FileEmbeddings]
) -> dict[str, dict[str, float]]:
    """The clean-trained probe's primary metric on each condition's embeddings of the test files."""
    metric = PRIMARY_METRIC[task.type]

    def score(condition) -> float:
        under = corrupted[condition.key]
        embedded = set(under.paths)
        rows = np.array([row for row in outcome.test_rows if task.paths[row] in embedded], dtype=np.int64)
        predictions = outcome.probes[head].predict(_chunks(task, rows, under))
        return score_predictions(task.type, task.targets(rows), predictions)[metric]

    return robustness_curves(outcome.scores[head][metric], conditions, score)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _map_labels(task: Task, rows: np.ndarray) -> list:
    if task.type == "regression":
        return [float(task.labels[row]) for row in rows]
    if task.type == "multilabel":  # colour by the first tag: a map has one colour per point
        return [task.labels[row].split(";")[0].strip() for row in rows]
    return [task.labels[row] for row in rows]


@dataclasses.dataclass
class _Folder:
    """The tasks that read one audio folder, and the files to embed there (clean, and corrupted)."""

    root: Path
    tasks: list[Task]
    paths: list[str]
    test_paths: list[str]

    @classmethod
    def group(cls, tasks: Sequence[Task]) -> list[_Folder]:
        by_root: dict[Path, list[Task]] = {}
        for task in tasks:
            by_root.setdefault(task.audio_root.resolve(), []).append(task)
        return [
            cls(
                root,
                group,
                sorted({path for task in group for path in task.paths}),
                sorted({task.paths[row] for task in group if task.type != "retrieval" for row in task.rows("test")}),
            )
            for root, group in by_root.items()
        ]


def evaluate(
    models: Mapping[str, str | os.PathLike | Encoder],
    tasks: Sequence[Task | str | os.PathLike],
    out_dir: str | os.PathLike,
    robustness: bool = True,
    seed: int = 0,
    *,
    heads: Sequence[str] = ("linear", "mlp"),
    baselines: bool = True,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[float] | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    verbose: bool = True,
) -> dict:
    """Evaluate ``models`` ({name: checkpoint path or Encoder}) on ``tasks`` and write a report.

    ``tasks`` are Task objects, task header files, or corpus folders (their built-in tasks).
    Probe tasks get one probe per head (linear, MLP); retrieval tasks use cosine similarity.
    ``baselines`` adds random-init and MFCC+chroma rows. With ``robustness``, the first head of
    every probe task is also scored on corrupted test audio for the models given (not the
    baselines): ``corruptions`` are names from ``mucon.evaluation.corruptions.CORRUPTIONS``
    (default all), ``severities`` a subset of their levels (default all). Embedding dominates the
    cost, and robustness adds one pass over the test files per condition (33 by default).

    Writes ``results.json``, ``results.md`` and ``figures/*.png`` to ``out_dir``; embeddings are
    cached in ``cache_dir`` (default ``out_dir/cache``), so a re-run only trains probes. Returns
    the results dict (the content of results.json) and, if ``verbose``, prints the summary table.
    """
    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    tasks = resolve_tasks(tasks)
    folders = _Folder.group(tasks)
    entries = resolve_models(models, baselines=baselines, seed=seed, device=device)
    heads = list(heads)

    results: dict = {
        "settings": {"seed": seed, "heads": heads, "robustness": robustness, "corruptions": corruptions,
                     "severities": severities, "device": str(device), "skipped_corruptions": {}},
        "models": {
            entry.name: {"kind": entry.kind, "source": entry.source, "sample_rate": entry.encoder.sample_rate,
                         "window_samples": entry.encoder.input_samples, "dim": entry.encoder.dim}
            for entry in entries
        },
        "tasks": {},
        "scores": {},
        "robustness": {},
        "figures": [],
    }
    outcomes: dict[str, dict[str, TaskOutcome]] = {}
    map_panels: dict[str, dict[str, tuple[np.ndarray, list]]] = {task.name: {} for task in tasks}
    failed: dict[str, dict[str, str]] = {task.name: {} for task in tasks}

    for entry in tqdm(entries, desc="models", unit="model", disable=not verbose):
        outcomes[entry.name] = {}
        for folder in folders:
            clean = cached_embed_files(
                entry.encoder, entry.fingerprint, folder.root, folder.paths, cache_dir,
                batch_size=batch_size, progress=verbose, description=f"{entry.name}: {folder.root.name}",
            )
            for task in folder.tasks:
                task_paths = set(task.paths)
                failed[task.name].update({path: why for path, why in clean.failed.items() if path in task_paths})
                if task.type == "retrieval":
                    outcome = retrieval_task(task, clean)
                else:
                    outcome = probe_task(task, clean, heads, seed)
                outcomes[entry.name][task.name] = outcome
                map_panels[task.name][entry.name] = (
                    _track_means(task, outcome.map_rows, clean), _map_labels(task, outcome.map_rows)
                )
        results["scores"][entry.name] = {task: outcome.scores for task, outcome in outcomes[entry.name].items()}
        if robustness and entry.kind in ("pretrained", "encoder"):
            conditions, skipped = robustness_conditions(entry.encoder.sample_rate, corruptions, severities)
            results["settings"]["skipped_corruptions"].update(skipped)
            results["robustness"][entry.name] = {}
            for folder in folders:
                results["robustness"][entry.name].update(_folder_robustness(
                    entry, folder, conditions, outcomes[entry.name], heads[0], cache_dir, seed, batch_size, verbose
                ))

    for task in tasks:
        results["tasks"][task.name] = {
            "type": task.type,
            "primary_metric": PRIMARY_METRIC[task.type],
            "audio_root": str(task.audio_root),
            "tracks": {split: len(task.rows(split)) for split in SPLITS if len(task.rows(split))},
            "classes": len(task.classes),
            "failed": failed[task.name],
        }
    figures = _draw_figures(tasks, entries, outcomes, map_panels, results, heads[0], figures_dir, verbose)
    results["figures"] = [str(path.relative_to(out_dir)) for path in figures]
    write_report(results, out_dir)
    if verbose:
        print(text_table(*summary_table(results)))
    return results


def _folder_robustness(entry, folder, conditions, outcomes, head, cache_dir, seed, batch_size, verbose) -> dict:
    """Robustness curves of the probe tasks on one folder: its test files are embedded once per
    condition, and every task on the folder reads its rows from those embeddings."""
    probe_tasks = [task for task in folder.tasks if task.type != "retrieval"]
    if not probe_tasks:
        return {}
    corrupted = {
        condition.key: cached_embed_files(
            entry.encoder, entry.fingerprint, folder.root, folder.test_paths, cache_dir,
            corruption=condition, seed=seed, batch_size=batch_size, progress=False,
        )
        for condition in tqdm(conditions, desc=f"{entry.name}: corrupted {folder.root.name}", unit="condition",
                              leave=False, disable=not verbose)
    }
    return {task.name: _robustness_of(task, outcomes[task.name], head, conditions, corrupted) for task in probe_tasks}


def _draw_figures(tasks, entries, outcomes, map_panels, results, head, figures_dir: Path, verbose) -> list[Path]:
    """Embedding maps, confusion matrices (of ``head``), robustness curves and pretraining losses."""
    from mucon.evaluation import plots  # matplotlib is needed for reports only, not for embeddings

    paths = []
    for task in tqdm(tasks, desc="figures", unit="task", leave=False, disable=not verbose):
        slug = _slug(task.name)
        paths.append(plots.embedding_maps(
            task.name, map_panels[task.name], figures_dir / f"map-{slug}.png", continuous=task.type == "regression"
        ))
        if task.type in ("multiclass", "key"):
            panels = {}
            for entry in entries:
                outcome = outcomes[entry.name][task.name]
                predicted = outcome.test_predictions[head].argmax(axis=1)
                panels[entry.name] = confusion_matrix(task.targets(outcome.test_rows), predicted, len(task.classes))
            path = figures_dir / f"confusion-{slug}.png"
            paths.append(plots.confusion_matrices(task.name, panels, task.classes, path))
        curves = {model: tasks[task.name] for model, tasks in results["robustness"].items() if task.name in tasks}
        if curves:
            paths.append(plots.robustness_curves(
                task.name, PRIMARY_METRIC[task.type], curves, figures_dir / f"robustness-{slug}.png"
            ))
    logs = {entry.name: entry.training_log for entry in entries if entry.training_log is not None}
    if logs:
        paths.append(plots.training_curves(logs, figures_dir / "training-curves.png"))
    return paths
