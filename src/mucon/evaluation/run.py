"""``evaluate``: models x tasks -> probes, retrieval, robustness, baselines, tables and figures.

The expensive step is embedding audio, so it is organised around it: for each audio folder, the
union of the files that the tasks on that folder use is decoded once, for every model at a sample
rate, and each model embeds it once (cached on disk); every task on the folder then only selects
rows. Corrupted test audio is made once per (file, corruption, severity) and embedded by each
model under test the same way.

Every score carries a paired bootstrap interval over the test items (see ``bootstrap``): the
same resamples of a task's items score every model, so a model's difference to its random-init
twin and to the best handcrafted baseline has an interval too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mucon.encoders import Encoder
from mucon.evaluation.baselines import HandcraftedFeatures, chance_scores, random_init_encoder
from mucon.evaluation.benchmarks import resolve_tasks
from mucon.evaluation.bootstrap import (
    CONFIDENCE,
    LOWER_IS_BETTER,
    N_RESAMPLES,
    Resamples,
    difference,
    interval,
    resampled_scores,
)
from mucon.audio.io import AudioDecodeError, audio_info
from mucon.evaluation.embed import EmbeddingJob, FileEmbeddings
from mucon.evaluation.embedding_cache import cached_embed_jobs, embedding_cache_dir
from mucon.evaluation.models import model_fingerprint, resolve_encoder
from mucon.evaluation.windows import count_windows, embed_windows, spread_windows
from mucon.evaluation.metrics import confusion_matrix, retrieval_means, retrieval_per_query, summarise_retrieval
from mucon.evaluation.probes import ChunkFeatures, Probe, carve_validation, fit_probe
from mucon.evaluation.protocols import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, resolve_protocol
from mucon.evaluation.report import MAX_FAILED_LISTED, RETRIEVAL_HEAD, summary_text, write_report
from mucon.evaluation.robustness import (
    UNKNOWN,
    checked_corruptions,
    exposure,
    pretraining_augmentations,
    robustness_conditions,
    robustness_curves,
)
from mucon.evaluation.tasks import PRIMARY_METRIC, PROBE_KIND, SPLITS, Task, score_predictions
from mucon.precision import EMBEDDING_PRECISIONS, checked_device, resolve_precision


PROBE_PROTOCOL = ("frozen encoder; tracks cut into windows of the encoder's input length; probes trained on the "
                  "train split with early stopping on the valid split (20 % of train where a task has none), "
                  "scored on the test split; retrieval by cosine similarity")


@dataclasses.dataclass
class ModelEntry:
    """A model under evaluation: its encoder, cache identity, and where it came from."""

    name: str
    encoder: Encoder
    fingerprint: str
    kind: str  # "pretrained", "encoder", "random-init" or "handcrafted"
    source: str
    training_log: Path | None = None
    twin: str | None = None  # the random-init model of a checkpoint's architecture
    run: str | None = None  # a checkpoint's run (its run_dir's name) and training step: several
    step: int | None = None  # checkpoints of one run draw the probe score against steps
    pretraining_labels: str | None = None  # the label column a checkpoint's run took positives from
    pretraining_augmentations: frozenset[str] = frozenset()  # the effects its pretraining chain applies

    @property
    def compared(self) -> bool:
        """Models under test (not baselines): compared with the baselines."""
        return self.kind in ("pretrained", "encoder")


def _training_log(checkpoint: Path) -> Path | None:
    """``RUN_DIR/logs/metrics.csv`` for a checkpoint saved under ``RUN_DIR`` (or RUN_DIR/checkpoints)."""
    for run_dir in list(checkpoint.resolve().parents)[:3]:
        if (run_dir / "logs" / "metrics.csv").is_file():
            return run_dir / "logs" / "metrics.csv"
    return None


def _pretraining_labels(config: Mapping) -> str | None:
    """The label column a run drew positives from: set, with a labelled share of the batch that keeps
    some labels (SemiSupCon's b_s and p_s); None for a self-supervised run."""
    column, method = config["data"].get("label_column"), config["method"]
    if column and method.get("labelled_share") and method.get("labelled_keep", 1.0):
        return column
    return None


def _seen_label_warnings(entries: Sequence[ModelEntry], tasks: Sequence[Task]) -> list[str]:
    """A probe scored on the labels its model's pretraining took positives from measures what the model
    was taught, not what it learned on its own: said for each such model and task."""
    return [f"{task.name}: scored on the column {task.label_column!r}, which {entry.name} was pretrained on "
            "as positives (a seen task for it, not an unseen one)"
            for entry in entries for task in tasks
            if entry.pretraining_labels and entry.pretraining_labels == task.label_column]


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
    entries, architectures, architecture_of = [], {}, {}
    for name, model in models.items():
        if isinstance(model, Encoder):
            entries.append(_entry(name, model, "encoder", type(model).__name__, device))
            continue
        path = Path(model)
        entry = _entry(name, path, "pretrained", str(path), device, _training_log(path))
        checkpoint = read_checkpoint(path)
        config = checkpoint["mucon"]["config"]
        if "global_step" in checkpoint:  # saved by training (a hand-made checkpoint may lack it)
            entry.run, entry.step = Path(config["run_dir"]).name, int(checkpoint["global_step"])
        entry.pretraining_labels = _pretraining_labels(config)
        entry.pretraining_augmentations = pretraining_augmentations(config)
        entries.append(entry)
        # the encoder's settings and the run's one sample rate make an architecture
        architecture_of[name] = json.dumps([config["encoder"], config["data"]["sample_rate"]], sort_keys=True)
        architectures.setdefault(architecture_of[name], (config["encoder"]["name"], path, name))
    if baselines:
        numbered = len(architectures) > 1
        twins = {}
        for key, (encoder_name, path, first_model) in architectures.items():
            twins[key] = f"{encoder_name} random-init" + (f" ({first_model})" if numbered else "")
            random_weights = random_init_encoder(path, seed)
            entries.append(_entry(twins[key], random_weights, "random-init", f"architecture of {path}", device))
        for entry in entries:
            if entry.name in architecture_of:
                entry.twin = twins[architecture_of[entry.name]]
        handcrafted = HandcraftedFeatures(entries[0].encoder.sample_rate)
        entries.append(_entry("mfcc-chroma", handcrafted, "handcrafted", "MFCC + chroma mean/std", device))
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique (baselines add 'random-init' and 'mfcc-chroma'): {names}")
    return entries


@dataclasses.dataclass
class TaskOutcome:
    """A model's result on one task, with what the figures, the intervals and robustness need."""

    scores: dict[str, dict[str, float]]
    rows: np.ndarray  # the task rows scored: test rows of a probe task, the searched rows of retrieval
    probes: dict[str, Probe] = dataclasses.field(default_factory=dict)
    test_predictions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    per_query: dict[str, np.ndarray] | None = None  # retrieval: what a bootstrap over queries resamples


def _embedded_rows(task: Task, split: str, embedded: set[str]) -> np.ndarray:
    return np.array([row for row in task.rows(split) if task.paths[row] in embedded], dtype=np.int64)


def _chunks(task: Task, rows: np.ndarray, embeddings: FileEmbeddings) -> ChunkFeatures:
    features, owner = embeddings.chunks([task.paths[row] for row in rows])
    return ChunkFeatures(features, owner, len(rows))


def _track_means(task: Task, rows: np.ndarray, embeddings: FileEmbeddings) -> np.ndarray:
    position = {path: i for i, path in enumerate(embeddings.paths)}
    return embeddings.means()[[position[task.paths[row]] for row in rows]]


def probe_task(
    task: Task, embeddings: FileEmbeddings, heads: Sequence[str], seed: int, protocol: Protocol = PROTOCOLS["mucon"]
) -> TaskOutcome:
    """Train each head on the train split (early stopping on valid, or on a carved 20 % of train)
    and score it on the test split, as ``protocol`` says."""
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
    for head in heads:
        probe = fit_probe(
            PROBE_KIND[task.type], train, task.targets(train_rows), valid, task.targets(valid_rows),
            len(task.classes), head=head, seed=seed, **protocol.fit_options(head, monitor),
        )
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
    means = _track_means(task, rows, embeddings)
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


def _robustness_of(
    task: Task, outcome: TaskOutcome, head: str, conditions, corrupted: dict[str, FileEmbeddings],
    bootstrap: TaskBootstrap, protocol: Protocol,
) -> tuple[dict, dict]:
    """The clean-trained probe's primary metric on each condition's embeddings of the test files:
    curves ``{corruption: {severity: score}}`` and their intervals ``{corruption: {severity: [low, high]}}``."""
    metric = PRIMARY_METRIC[task.type]

    def point(rows: np.ndarray, predictions: np.ndarray) -> tuple[float, list[float]]:
        targets = task.targets(rows)
        spread = resampled_scores(task.type, targets, predictions, bootstrap.counts(rows))[metric]
        return score_predictions(task.type, targets, predictions)[metric], interval(spread)

    def score(condition) -> tuple[float, list[float]]:
        under = corrupted[condition.key]
        embedded = set(under.paths)
        rows = np.array([row for row in outcome.rows if task.paths[row] in embedded], dtype=np.int64)
        return point(rows, protocol.predict(outcome.probes[head], _chunks(task, rows, under)))

    curves = robustness_curves(point(outcome.rows, outcome.test_predictions[head]), conditions, score)
    scores = {name: {severity: value[0] for severity, value in curve.items()} for name, curve in curves.items()}
    bands = {name: {severity: value[1] for severity, value in curve.items()} for name, curve in curves.items()}
    return scores, bands


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
    """The tasks that read one audio folder with one embedding setting (window cap, averaging: the
    protocol's, see ``Protocol.embedding_of``), and the files to embed there (clean, and corrupted)."""

    root: Path
    tasks: list[Task]
    paths: list[str]
    test_paths: list[str]
    max_windows: int | None
    average: bool

    @classmethod
    def group(cls, tasks: Sequence[Task], protocol: Protocol) -> list[_Folder]:
        by_root: dict[tuple, list[Task]] = {}
        for task in tasks:
            by_root.setdefault((task.audio_root.resolve(), *protocol.embedding_of(task)), []).append(task)
        return [
            cls(
                root,
                group,
                sorted({path for task in group for path in task.paths}),
                sorted({task.paths[row] for task in group if task.type != "retrieval" for row in task.rows("test")}),
                max_windows,
                average,
            )
            for (root, max_windows, average), group in by_root.items()
        ]

    def embed(self, entries, conditions, cache_dir, seed, batch_size, precision, progress) -> tuple[dict, dict]:
        """Every model's clean embeddings of the folder, and the corrupted ones of its test files for
        every model (robustness): ``{model: FileEmbeddings}``, ``{model: {condition key: FileEmbeddings}}``.
        One pass over the files for all of them (see ``embed.embed_jobs``); the cache keeps each
        file's embedding, so a later run of any of these tasks costs no encoding."""
        setting = {"max_windows": self.max_windows, "average": self.average}
        jobs, owners = [], []
        for entry in entries:
            jobs.append(EmbeddingJob(entry.encoder, self.paths, None, entry.fingerprint, **setting))
            owners.append((entry.name, None))
            if self.test_paths:
                for condition in conditions.get(entry.name, ()):
                    jobs.append(EmbeddingJob(entry.encoder, self.test_paths, condition, entry.fingerprint, **setting))
                    owners.append((entry.name, condition.key))
        embedded = cached_embed_jobs(jobs, self.root, cache_dir, seed=seed, batch_size=batch_size,
                                     precision=precision, progress=progress, description=f"embedding {self.root.name}")
        clean, corrupted = {}, {entry.name: {} for entry in entries}
        for (name, condition_key), result in zip(owners, embedded):
            if condition_key is None:
                clean[name] = result
            else:
                corrupted[name][condition_key] = result
        return clean, corrupted


def _warn(warnings: list[str], message: str) -> None:
    """Said at once (above any progress bar) and kept for the report."""
    warnings.append(message)
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _train_split_warnings(task: Task) -> list[str]:
    """What makes a probe task's result meaningless before anything is embedded."""
    if task.type not in ("multiclass", "key"):
        return []
    classes = sorted({task.labels[row] for row in task.rows("train")})
    if len(classes) == 1:
        return [f"{task.name}: the train split holds one class only ({classes[0]}), so its probes can only "
                "predict that class"]
    return []


def _train_overlap(task: Task) -> dict[str, int]:
    """Per split (valid, test), the rows whose file is also a train row's (by resolved path, so
    ``a/../b.wav`` and a link are the same file): a probe scored on what it was trained on (leakage).
    Files are not compared by content: that would read every file before anything is embedded."""
    def resolved(row: int) -> Path:
        return (task.audio_root / task.paths[row]).resolve()

    if task.type == "retrieval":
        return {}
    train = {resolved(row) for row in task.rows("train")}
    return {split: sum(resolved(row) in train for row in task.rows(split)) for split in ("valid", "test")}


def _train_overlap_warnings(task: Task, overlap: Mapping[str, int]) -> list[str]:
    if not any(overlap.values()):
        return []
    counts = ", ".join(f"{n} {split}" for split, n in overlap.items() if n)
    return [f"{task.name}: {sum(overlap.values())} row(s) ({counts}) are files of its train split too: "
            "the probes are scored on items they were trained on, so its scores are inflated (leakage)"]


def _split_counts(counts: Mapping[str, int], splits: Iterable[str]) -> str:
    return ", ".join(f"{split} {counts.get(split, 0)}" for split in splits)


def _published_count_warnings(task: Task) -> list[str]:
    """A benchmark task whose folder holds other items than the published split: said before embedding."""
    if task.benchmark is None:
        return []
    found = {split: len(task.rows(split)) for split in SPLITS}
    published = task.benchmark.published
    if all(found[split] == published.get(split, 0) for split in SPLITS):
        return []
    missing = f"; {task.benchmark.missing}" if task.benchmark.missing else ""
    return [f"{task.name}: the folder holds {_split_counts(found, published)} items, the published "
            f"{task.benchmark.dataset} split {_split_counts(published, published)}{missing}; its results are not "
            "comparable with published ones"]


def _benchmark_record(task: Task, scored: Mapping[str, int]) -> dict:
    """What the report says of a benchmark task: dataset, split source, published and used counts, and
    whether its results can stand next to published ones (the same items were scored)."""
    published = dict(task.benchmark.published)
    comparable = all(scored.get(split, 0) == published.get(split, 0) for split in SPLITS)
    why = "" if comparable else (f"not comparable with published results: it used {_split_counts(scored, published)} "
                                 f"items, the published split has {_split_counts(published, published)}")
    return {"dataset": task.benchmark.dataset, "split": task.benchmark.source, "metrics": task.benchmark.metrics,
            "published": published, "used": {split: scored.get(split, 0) for split in SPLITS if split in published},
            "comparable": comparable, "why": why}


def _failed_files_warning(task: Task, failed: dict[str, str]) -> str:
    listed = ", ".join(f"{path} ({reason})" for path, reason in list(failed.items())[:MAX_FAILED_LISTED])
    more = f" and {len(failed) - MAX_FAILED_LISTED} more (see results.json)" if len(failed) > MAX_FAILED_LISTED else ""
    return f"{task.name}: {len(failed)} file(s) could not be decoded and were left out: {listed}{more}"


PLAN_SAMPLED_FILES = 200  # files whose headers the plan reads per folder; more are extrapolated from them


def _audio_seconds(root: Path, paths: Sequence[str]) -> dict[str, float]:
    """Seconds of (at most PLAN_SAMPLED_FILES, evenly chosen of) ``paths`` from their headers; unreadable: 0."""
    chosen = [paths[i] for i in spread_windows(len(paths), PLAN_SAMPLED_FILES)]
    seconds = {}
    for path in chosen:
        try:
            header = audio_info(root / path)
            seconds[path] = header.frames / header.sample_rate
        except AudioDecodeError:
            seconds[path] = 0.0
    return seconds


def _windows(seconds: Mapping[str, float], n_files: int, encoder: Encoder, max_windows: int | None) -> int:
    """The windows ``encoder`` embeds of ``n_files`` files, from the sampled files' durations."""
    per_file = [len(spread_windows(count_windows(round(length * encoder.sample_rate), encoder.input_samples,
                                                 encoder.input_samples), max_windows)) for length in seconds.values()]
    return round(sum(per_file) * n_files / max(1, len(per_file)))


def _seconds_per_window(encoder: Encoder, batch_size: int) -> float:
    """One batch of silent windows through ``encoder`` (after a warm-up one), timed: this machine's cost."""
    windows = torch.zeros(min(batch_size, 16), encoder.input_samples)
    with torch.inference_mode():
        embed_windows(encoder, windows[:1])
        started = time.perf_counter()
        embed_windows(encoder, windows)
    return (time.perf_counter() - started) / len(windows)


def evaluation_plan(folders: Sequence[_Folder], entries: Sequence[ModelEntry], conditions: Mapping[str, list],
                    batch_size: int) -> str:
    """What evaluate is about to do and about how long its embedding takes here, said before any of it:
    models, tasks with their tracks per split, files and windows per folder, robustness conditions,
    and minutes from a timed batch of each model (decoding and corrupting add to it; files the cache
    holds are not embedded again)."""
    cost = {entry.name: _seconds_per_window(entry.encoder, batch_size) for entry in entries}
    lines = [f"plan: {len(entries)} model(s): " + ", ".join(f"{entry.name} ({entry.kind})" for entry in entries)]
    total_seconds, total_windows = 0.0, 0
    for folder in folders:
        for task in folder.tasks:
            counts = ", ".join(f"{split} {len(task.rows(split))}" for split in SPLITS if len(task.rows(split)))
            classes = f"; {len(task.classes)} classes" if task.classes else ""
            lines.append(f"  task {task.name} ({task.type}): {counts} tracks{classes}")
        seconds = _audio_seconds(folder.root, folder.paths)
        test_seconds = {path: seconds[path] for path in folder.test_paths if path in seconds} or seconds
        cap = folder.tasks[0].max_chunks
        lines.append(f"  folder {folder.root}: {len(folder.paths)} files, "
                     f"{sum(seconds.values()) * len(folder.paths) / max(1, len(seconds)) / 60:.1f} min of audio, "
                     + (f"at most {cap} windows per file" if cap else "every window of each file"))
        for entry in entries:
            windows = _windows(seconds, len(folder.paths), entry.encoder, cap)
            corrupted = len(conditions.get(entry.name, ())) * _windows(test_seconds, len(folder.test_paths),
                                                                         entry.encoder, cap)
            total_windows += windows + corrupted
            total_seconds += (windows + corrupted) * cost[entry.name]
            robust = f" + {corrupted} under {len(conditions[entry.name])} conditions" if corrupted else ""
            lines.append(f"    {entry.name}: {windows} windows{robust}")
    named = sorted({condition.key for chosen in conditions.values() for condition in chosen})
    lines.append(f"  robustness: {len(named)} condition(s)" + (f" ({', '.join(named)}) on the test files of the "
                 "models under test" if named else ""))
    lines.append(f"  embedding: {total_windows} windows, about {max(total_seconds / 60, 0.1):.1f} min of encoder "
                 "time here (decoding and corrupting add to it; what the cache holds is not embedded again)")
    return "\n".join(lines)


def evaluate(
    models: Mapping[str, str | os.PathLike | Encoder],
    tasks: Sequence[Task | str | os.PathLike],
    out_dir: str | os.PathLike,
    robustness: bool = True,
    seed: int = 0,
    *,
    heads: Sequence[str] | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    baselines: bool = True,
    corruptions: str | Sequence[str] | None = "quick",
    severities: Sequence[float] | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    resamples: int = N_RESAMPLES,
    precision: str = "auto",
    verbose: bool = True,
    progress: bool | None = None,
    data_roots: Sequence[str | os.PathLike] = (),
) -> dict:
    """Evaluate ``models`` ({name: checkpoint path or Encoder}) on ``tasks`` and write a report.

    ``tasks`` are Task objects, task header files, corpus folders (their built-in tasks), or names
    of built-in benchmark tasks (``mucon tasks``) read from the dataset folders ``data_roots``; the
    report gives a benchmark task's protocol, split and counts, and marks it not comparable with
    published results where the counts it used differ from the published ones.
    Probe tasks get one probe per head (default: the protocol's, mucon's linear and MLP); ``protocol``
    (``protocols.PROTOCOLS``: mucon, semisupcon, clmr, marble) sets what a probe trains on, its heads,
    optimiser and stopping and how a track is predicted; retrieval tasks use cosine similarity.
    ``baselines`` adds random-init and MFCC+chroma rows. With ``robustness``, the first head of
    every probe task is also scored on corrupted test audio for every model, baselines included:
    ``corruptions`` are names from ``mucon.evaluation.corruptions.CORRUPTIONS`` or a preset of
    ``robustness.CORRUPTION_PRESETS`` (default ``quick``: 6 conditions; ``full``: every corruption at
    every severity), ``severities`` a subset of their levels; each model's rows say which conditions
    its own pretraining chain applied (``robustness_exposure``: seen, partly seen; unknown for an
    ``Encoder`` object, which carries no chain). Embedding dominates the cost, and robustness adds one
    pass of each model over the test files per condition; the plan of it all (``evaluation_plan``)
    is printed first, if ``verbose``. ``batch_size`` windows go through an encoder at once. Every score
    gets a 95 % bootstrap interval from ``resamples`` resamples of the test items (of their groups, for a task
    with groups), the same resamples for every model. ``precision`` is the encoders' (``auto``: bf16
    autocast where the device has bf16, as in training; ``32-true`` for float32), and ``progress``
    (default: ``verbose``) shows progress bars.

    Writes ``results.json``, ``results.md`` and ``figures/*.png`` to ``out_dir``; embeddings are
    cached in ``cache_dir`` (default ``$MUCON_CACHE/embeddings``, which ``mucon embed`` shares), so
    a re-run only trains probes. Returns
    the results dict (the content of results.json) and, if ``verbose``, prints the summary table.
    Warnings (undecodable files, a train split with one class) are printed and kept in the report.
    """
    recipe = resolve_protocol(protocol)
    heads = list(heads or recipe.heads)
    for head in heads:
        recipe.fit_options(head, None)  # an unknown head fails before anything is read or embedded
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if precision not in EMBEDDING_PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(EMBEDDING_PRECISIONS)}")
    if robustness:
        checked_corruptions(corruptions, severities)  # before anything is loaded or embedded
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else embedding_cache_dir()
    precision, _ = resolve_precision(precision, checked_device(device).type)
    progress = verbose if progress is None else progress
    tasks = resolve_tasks(tasks, data_roots)
    folders = _Folder.group(tasks, recipe)
    entries = resolve_models(models, baselines=baselines, seed=seed, device=device)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)

    results: dict = {
        "settings": {"seed": seed, "heads": heads, "protocol": recipe.name, "probing": PROBE_PROTOCOL,
                     "protocol_recipe": recipe.describe(),
                     "robustness": robustness, "corruptions": corruptions,
                     "severities": severities, "device": str(device), "precision": precision,
                     "skipped_corruptions": {},
                     "bootstrap": {"resamples": resamples, "confidence": CONFIDENCE, "paired": True}},
        "models": {
            entry.name: {"kind": entry.kind, "source": entry.source, "sample_rate": entry.encoder.sample_rate,
                         "window_samples": entry.encoder.input_samples, "dim": entry.encoder.dim,
                         **({"random_init_twin": entry.twin} if entry.twin else {}),
                         **({"run": entry.run, "step": entry.step} if entry.run else {}),
                         **({"pretraining_augmentations": sorted(entry.pretraining_augmentations)}
                            if entry.kind == "pretrained" else {})}
            for entry in entries
        },
        "tasks": {},
        "scores": {entry.name: {} for entry in entries},
        "intervals": {entry.name: {} for entry in entries},
        "comparisons": {},
        "chance": {},
        "robustness": {},
        "robustness_intervals": {},
        "robustness_exposure": {},
        "warnings": [],
        "figures": [],
    }
    warnings = results["warnings"]
    overlaps = {task.name: _train_overlap(task) for task in tasks}
    for task in tasks:
        for message in [*_train_split_warnings(task), *_train_overlap_warnings(task, overlaps[task.name]),
                        *_published_count_warnings(task)]:
            _warn(warnings, message)
    for message in _seen_label_warnings(entries, tasks):
        _warn(warnings, message)
    conditions = {}
    for entry in entries:
        if robustness:
            conditions[entry.name], skipped = robustness_conditions(entry.encoder.sample_rate, corruptions, severities)
            results["settings"]["skipped_corruptions"].update(skipped)
            results["robustness"][entry.name], results["robustness_intervals"][entry.name] = {}, {}
            results["robustness_exposure"][entry.name] = {  # an Encoder object carries no pretraining chain
                name: UNKNOWN if entry.kind == "encoder" else exposure(name, entry.pretraining_augmentations)
                for name in dict.fromkeys(condition.corruption for condition in conditions[entry.name])}
    if verbose:
        print(evaluation_plan(folders, entries, conditions, batch_size), flush=True)
    bootstraps = {task.name: TaskBootstrap.draw(task, resamples, seed) for task in tasks}
    outcomes: dict[str, dict[str, TaskOutcome]] = {entry.name: {} for entry in entries}
    map_panels: dict[str, dict[str, tuple[np.ndarray, list]]] = {task.name: {} for task in tasks}
    failed: dict[str, dict[str, str]] = {task.name: {} for task in tasks}

    for folder in folders:
        clean, corrupted = folder.embed(entries, conditions, cache_dir, seed, batch_size, precision, progress)
        for entry in tqdm(entries, desc=f"probes on {folder.root.name}", unit="model", leave=False,
                          disable=not progress):
            for task in folder.tasks:
                task_paths = set(task.paths)
                failed[task.name].update(
                    {path: why for path, why in clean[entry.name].failed.items() if path in task_paths}
                )
                if task.type == "retrieval":
                    outcome = retrieval_task(task, clean[entry.name])
                else:
                    outcome = probe_task(task, clean[entry.name], heads, seed, recipe)
                outcomes[entry.name][task.name] = outcome
                results["scores"][entry.name][task.name] = outcome.scores
                map_panels[task.name][entry.name] = (
                    _track_means(task, outcome.rows, clean[entry.name]), _map_labels(task, outcome.rows)
                )
                if entry.name in conditions and task.type != "retrieval":
                    curves, bands = _robustness_of(task, outcome, heads[0], conditions[entry.name],
                                                   corrupted[entry.name], bootstraps[task.name], recipe)
                    results["robustness"][entry.name][task.name] = curves
                    results["robustness_intervals"][entry.name][task.name] = bands

    distributions = {
        entry.name: {task.name: bootstraps[task.name].resampled(task, outcomes[entry.name][task.name]) for task in tasks}
        for entry in entries
    }
    for entry in entries:
        results["intervals"][entry.name] = {
            task: {head: {metric: interval(spread) for metric, spread in per_head.items()}
                   for head, per_head in per_task.items()}
            for task, per_task in distributions[entry.name].items()
        }
    results["comparisons"] = _comparisons(entries, results["scores"], distributions)

    for task in tasks:
        if failed[task.name]:
            _warn(warnings, _failed_files_warning(task, failed[task.name]))
        scored = {split: sum(task.paths[row] not in failed[task.name] for row in task.rows(split)) for split in SPLITS}
        chance_rows = [row for row in bootstraps[task.name].rows if task.paths[row] not in failed[task.name]]
        results["chance"][task.name] = chance_scores(task.type, task.targets(chance_rows), len(task.classes))
        results["tasks"][task.name] = {
            "type": task.type,
            "primary_metric": PRIMARY_METRIC[task.type],
            "audio_root": str(task.audio_root),
            "tracks": {split: n for split, n in scored.items() if n},
            "classes": len(task.classes),
            "failed": failed[task.name],
            "also_in_train": overlaps[task.name],
            "bootstrap": {"unit": task.group_column or "item", "units": bootstraps[task.name].resamples.n_units},
            "chunks": dict(zip(("max", "average"), recipe.embedding_of(task))),
        }
        if task.benchmark is not None:
            results["tasks"][task.name]["benchmark"] = _benchmark_record(task, scored)
            if not results["tasks"][task.name]["benchmark"]["comparable"] and not _published_count_warnings(task):
                _warn(warnings, f"{task.name}: {results['tasks'][task.name]['benchmark']['why']}")
    figures = _draw_figures(tasks, entries, outcomes, map_panels, results, heads[0], figures_dir, progress)
    results["figures"] = [str(path.relative_to(out_dir)) for path in figures]
    write_report(results, out_dir)
    if verbose:
        print(summary_text(results))
    return results


def _comparisons(entries: Sequence[ModelEntry], scores: dict, distributions: dict) -> dict:
    """Each model under test against its random-init twin and against the best handcrafted baseline
    (the one scoring best on that figure), on the same resamples:
    ``{model: {task: {head: {metric: {"random-init": {...}, "baseline": {...}}}}}}``, see ``bootstrap.difference``."""
    handcrafted = [entry.name for entry in entries if entry.kind == "handcrafted"]

    def best_baseline(task: str, head: str, metric: str) -> str | None:
        scored = [(scores[name][task][head][metric], name) for name in handcrafted
                  if np.isfinite(scores[name][task][head][metric])]
        if not scored:
            return None
        pick = min if metric in LOWER_IS_BETTER else max
        return pick(scored)[1]

    comparisons = {}
    for entry in (entry for entry in entries if entry.compared):
        comparisons[entry.name] = per_model = {}
        for task, per_task in distributions[entry.name].items():
            for head, per_head in per_task.items():
                for metric, spread in per_head.items():
                    against = {"random-init": entry.twin, "baseline": best_baseline(task, head, metric)}
                    per_model.setdefault(task, {}).setdefault(head, {})[metric] = {
                        role: {"model": other, **difference(
                            metric, scores[entry.name][task][head][metric], scores[other][task][head][metric],
                            spread, distributions[other][task][head][metric],
                        )}
                        for role, other in against.items() if other is not None
                    }
    return comparisons


def _draw_figures(tasks, entries, outcomes, map_panels, results, head, figures_dir: Path, progress) -> list[Path]:
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
        curves = {model: per_task[task.name] for model, per_task in results["robustness"].items()
                  if task.name in per_task}
        if curves:
            bands = {model: results["robustness_intervals"][model][task.name] for model in curves}
            paths.append(plots.robustness_curves(
                task.name, PRIMARY_METRIC[task.type], curves, figures_dir / f"robustness-{slug}.png", bands=bands,
                exposure={model: results["robustness_exposure"].get(model, {}) for model in curves},
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
        paths.append(plots.score_against_steps(_step_curves(tasks, runs, results, head),
                                               figures_dir / "score-against-steps.png"))
    return paths


def _step_curves(tasks, runs: dict[str, list[ModelEntry]], results: dict, head: str) -> dict:
    """``{task: (primary metric, {run: [(step, value, low, high), ...]})}`` for the runs evaluated at several
    steps; a run's random-init twin stands at step 0."""
    curves = {}
    for task in tasks:
        metric = PRIMARY_METRIC[task.type]
        task_head = RETRIEVAL_HEAD if task.type == "retrieval" else head

        def point(model: str, step: int) -> tuple[int, float, float, float]:
            value = results["scores"][model][task.name][task_head][metric]
            low, high = results["intervals"][model][task.name][task_head].get(metric, (np.nan, np.nan))
            return step, value, *(np.nan if bound is None else bound for bound in (low, high))

        curves[task.name] = (metric, {
            run: [*([point(members[0].twin, 0)] if members[0].twin else []),
                  *(point(entry.name, entry.step) for entry in members)]
            for run, members in runs.items()
        })
    return curves
