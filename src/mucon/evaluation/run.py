"""``evaluate``: models x tasks -> probes, retrieval, robustness, baselines, tables and figures.

``evaluate`` runs stages that each own one job: check the options, resolve the tasks and the models
(``models``), warn about what makes a task's scores meaningless (``checks``), plan and embed each
audio folder once (``plan``), score every model on every task with paired bootstrap intervals,
robustness and comparisons (``scoring``), draw the figures (``figures``) and write the typed results
(``results``) as results.json and results.md (``report``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from mucon.encoders import Encoder
from mucon.evaluation.baselines import chance_scores
from mucon.evaluation.benchmarks import resolve_tasks
from mucon.evaluation.bootstrap import CONFIDENCE, N_RESAMPLES
from mucon.evaluation.checks import task_record, train_overlap, warn, warnings_before_embedding
from mucon.evaluation.embedding_cache import embedding_cache_dir
from mucon.evaluation.figures import draw_figures, map_panel
from mucon.evaluation.models import ModelEntry, resolve_models
from mucon.evaluation.plan import Folder, evaluation_plan
from mucon.evaluation.protocols import DEFAULT_PROTOCOL, Protocol, resolve_protocol
from mucon.evaluation.report import summary_text, write_report
from mucon.evaluation.results import Results, Settings
from mucon.evaluation.robustness import UNKNOWN, checked_corruptions, exposure, robustness_conditions
from mucon.evaluation.scoring import (
    TaskBootstrap,
    TaskOutcome,
    comparisons,
    probe_task,
    retrieval_task,
    robustness_scores,
    with_intervals,
)
from mucon.evaluation.tasks import Task
from mucon.precision import EMBEDDING_PRECISIONS, checked_device, resolve_precision


PROBE_PROTOCOL = ("frozen encoder; tracks cut into windows of the encoder's input length; probes trained on the "
                  "train split with early stopping on the valid split (20 % of train where a task has none), "
                  "scored on the test split; retrieval by cosine similarity")


@dataclasses.dataclass(frozen=True)
class _Options:
    """evaluate's options, checked before anything is read or embedded."""

    recipe: Protocol
    heads: list[str]
    seed: int
    robustness: bool
    corruptions: str | Sequence[str] | None
    severities: Sequence[float] | None
    device: str
    precision: str
    batch_size: int
    resamples: int
    cache_dir: Path
    progress: bool

    @classmethod
    def checked(cls, protocol, heads, seed, robustness, corruptions, severities, device, batch_size, resamples,
                precision, cache_dir, progress) -> _Options:
        recipe = resolve_protocol(protocol)
        heads = list(heads or recipe.heads)
        for head in heads:
            recipe.check_head(head)  # an unknown head fails before anything is read or embedded
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {resamples}")
        if precision not in EMBEDDING_PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(EMBEDDING_PRECISIONS)}")
        if robustness:
            checked_corruptions(corruptions, severities)  # before anything is loaded or embedded
        cache_dir = Path(cache_dir) if cache_dir is not None else embedding_cache_dir()
        precision, _ = resolve_precision(precision, checked_device(device).type)
        return cls(recipe, heads, seed, robustness, corruptions, severities, device, precision, batch_size,
                   resamples, cache_dir, progress)

    def settings(self, skipped_corruptions: dict[str, str]) -> Settings:
        return Settings(
            seed=self.seed, heads=self.heads, protocol=self.recipe.name, probing=PROBE_PROTOCOL,
            protocol_recipe=self.recipe.describe(), robustness=self.robustness, corruptions=self.corruptions,
            severities=self.severities, device=str(self.device), precision=self.precision,
            skipped_corruptions=skipped_corruptions,
            bootstrap={"resamples": self.resamples, "confidence": CONFIDENCE, "paired": True},
        )


def evaluate(
    models: Mapping[str, str | os.PathLike | Encoder], tasks: Sequence[Task | str | os.PathLike],
    out_dir: str | os.PathLike, robustness: bool = True, seed: int = 0, *, heads: Sequence[str] | None = None,
    protocol: str = DEFAULT_PROTOCOL, baselines: bool = True, corruptions: str | Sequence[str] | None = "quick",
    severities: Sequence[float] | None = None, cache_dir: str | os.PathLike | None = None, device: str = "cpu",
    batch_size: int = 256, resamples: int = N_RESAMPLES, precision: str = "auto", verbose: bool = True,
    progress: bool | None = None, data_roots: Sequence[str | os.PathLike] = (),
) -> dict:
    """Evaluate ``models`` ({name: checkpoint path, Encoder or ``hear:PACKAGE.MODULE[:WEIGHTS]``}) on ``tasks``
    (Task objects, task files, corpus folders, or built-in benchmark names read from ``data_roots``; a
    benchmark's counts that differ from the published ones are marked not comparable) and write a report.

    Probes: one per head (default: the ``protocol``'s; ``protocols.PROTOCOLS`` says what a probe trains on,
    its optimiser, stopping and track prediction); retrieval by cosine similarity; ``baselines`` adds
    random-init and MFCC+chroma rows. ``robustness``: the first head scored on corrupted test audio for
    every row, ``corruptions`` names or a ``robustness.CORRUPTION_PRESETS`` preset (``quick``: 6 conditions,
    ``full``: all), ``severities`` a subset of their levels, each row marked with what its own pretraining
    chain applied (``robustness_exposure``). The plan is printed first if ``verbose``; ``batch_size``
    windows per forward at ``precision`` (``auto``: bf16 where the device has it). Every score gets a 95 %
    interval from ``resamples`` paired resamples of the test items (of their groups). Writes results.json,
    results.md and figures/*.png to ``out_dir``; embeddings are cached in ``cache_dir`` (default
    ``$MUCON_CACHE/embeddings``, shared with ``mucon embed``). Warnings are printed and kept; a model that
    fails to load or embed is left out in one warning and named in ``failed_models``. Returns results.json."""
    options = _Options.checked(protocol, heads, seed, robustness, corruptions, severities, device, batch_size,
                               resamples, precision, cache_dir, verbose if progress is None else progress)
    out_dir, tasks = Path(out_dir), resolve_tasks(tasks, data_roots)
    folders = Folder.group(tasks, options.recipe)
    broken: dict[str, str] = {}
    entries = resolve_models(models, baselines=baselines, seed=seed, device=device, broken=broken)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    entries, exposures = _leave_out(broken, entries, {}, warnings)
    overlaps = _warn_before_embedding(tasks, entries, warnings)
    conditions, skipped, exposures = _robustness_plan(entries, options)
    if verbose:
        print(evaluation_plan(folders, entries, conditions, batch_size), flush=True)
    bootstraps = {task.name: TaskBootstrap.draw(task, resamples, seed) for task in tasks}
    scored = _score_folders(folders, entries, tasks, options, conditions, bootstraps)
    broken.update(scored.broken)
    entries, exposures = _leave_out(scored.broken, entries, exposures, warnings)
    scores, compared = _intervals_and_comparisons(entries, tasks, scored, bootstraps)
    task_infos, chance = _task_records(tasks, scored, overlaps, bootstraps, options.recipe, warnings)
    results = Results(options.settings(skipped), {entry.name: entry.info() for entry in entries}, task_infos,
                      scores, compared, chance, scored.robustness, exposures, warnings, figures=[],
                      failed_models=broken)
    figures = draw_figures(tasks, entries, scored.outcomes, scored.map_panels, results, options.heads[0],
                           out_dir / "figures", options.progress)
    written = dataclasses.replace(results, figures=[str(path.relative_to(out_dir)) for path in figures]).to_json()
    write_report(written, out_dir)
    if verbose:
        print(summary_text(written))
    return written


def _leave_out(broken: Mapping[str, str], entries: Sequence[ModelEntry], exposures: dict, warnings: list[str]):
    """The entries and exposures without the models that failed (``broken``: name -> problem), each said in
    one warning: every other row is still produced."""
    for name, problem in broken.items():
        warn(warnings, f"model {name} left out: {problem}")
    return ([entry for entry in entries if entry.name not in broken],
            {name: exposed for name, exposed in exposures.items() if name not in broken})


def _warn_before_embedding(tasks: Sequence[Task], entries: Sequence[ModelEntry], warnings: list[str]) -> dict:
    """Warns (``checks.warnings_before_embedding``) before the long embedding; returns each task's rows whose
    file is a train file too."""
    overlaps = {task.name: train_overlap(task) for task in tasks}
    for message in warnings_before_embedding(tasks, entries, overlaps):
        warn(warnings, message)
    return overlaps


def _robustness_plan(entries: Sequence[ModelEntry], options: _Options) -> tuple[dict, dict, dict]:
    """Every model's corruption conditions (none without robustness), the corruptions skipped at some
    model's rate, and whether each model's pretraining chain applied each corruption."""
    conditions, skipped, exposures = {}, {}, {}
    if not options.robustness:
        return conditions, skipped, exposures
    for entry in entries:
        conditions[entry.name], skipped_here = robustness_conditions(
            entry.encoder.sample_rate, options.corruptions, options.severities)
        skipped.update(skipped_here)
        exposures[entry.name] = {  # an Encoder object carries no pretraining chain
            name: UNKNOWN if entry.kind == "encoder" else exposure(name, entry.pretraining_augmentations)
            for name in dict.fromkeys(condition.corruption for condition in conditions[entry.name])}
    return conditions, skipped, exposures


@dataclasses.dataclass
class _Scored:
    """What scoring every model on every task found, model by model and task by task."""

    outcomes: dict[str, dict[str, TaskOutcome]]
    robustness: dict[str, dict[str, dict]]  # model -> task -> {corruption: {severity: Score}}
    map_panels: dict[str, dict[str, tuple]]  # task -> model -> its points on the embedding map
    failed: dict[str, dict[str, str]]  # task -> undecodable file -> why
    broken: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> why it gave no embeddings

    def drop(self, name: str, problem: str) -> None:
        """A model that broke while embedding: none of its rows, on any task."""
        self.broken[name] = problem
        self.outcomes.pop(name, None)
        self.robustness.pop(name, None)
        for panels in self.map_panels.values():
            panels.pop(name, None)


def _score_folders(folders: Sequence[Folder], entries: Sequence[ModelEntry], tasks: Sequence[Task],
                   options: _Options, conditions: dict, bootstraps: dict[str, TaskBootstrap]) -> _Scored:
    """Each folder embedded once by every model, then every model scored on each task of it."""
    scored = _Scored({entry.name: {} for entry in entries}, {name: {} for name in conditions},
                     {task.name: {} for task in tasks}, {task.name: {} for task in tasks})
    for folder in folders:
        working = [entry for entry in entries if entry.name not in scored.broken]
        clean, corrupted = folder.embed(working, conditions, options.cache_dir, options.seed, options.batch_size,
                                        options.precision, options.progress)
        for entry in working:  # a model that broke part way is dropped; the others are scored as without it
            embedded = [clean[entry.name], *corrupted[entry.name].values()]
            problem = next((result.broken for result in embedded if result.broken), None)
            if problem:
                scored.drop(entry.name, problem)
        for entry in tqdm([entry for entry in working if entry.name not in scored.broken],
                          desc=f"probes on {folder.root.name}", unit="model", leave=False, disable=not options.progress):
            for task in folder.tasks:
                task_paths = set(task.paths)
                scored.failed[task.name].update(
                    {path: why for path, why in clean[entry.name].failed.items() if path in task_paths}
                )
                if task.type == "retrieval":
                    outcome = retrieval_task(task, clean[entry.name])
                else:
                    outcome = probe_task(task, clean[entry.name], options.heads, options.seed, options.recipe)
                scored.outcomes[entry.name][task.name] = outcome
                scored.map_panels[task.name][entry.name] = map_panel(task, outcome, clean[entry.name])
                if entry.name in conditions and task.type != "retrieval":
                    scored.robustness[entry.name][task.name] = robustness_scores(
                        task, outcome, options.heads[0], conditions[entry.name], corrupted[entry.name],
                        bootstraps[task.name], options.recipe)
    return scored


def _intervals_and_comparisons(entries: Sequence[ModelEntry], tasks: Sequence[Task], scored: _Scored,
                               bootstraps: dict[str, TaskBootstrap]) -> tuple[dict, dict]:
    """Every score with its interval over the task's shared resamples, and each model under test compared
    with its baselines on those resamples."""
    distributions = {
        entry.name: {task.name: bootstraps[task.name].resampled(task, scored.outcomes[entry.name][task.name])
                     for task in tasks}
        for entry in entries
    }
    scores = {model: {task: with_intervals(outcome.scores, distributions[model][task])
                      for task, outcome in per_model.items()} for model, per_model in scored.outcomes.items()}
    return scores, comparisons(entries, scores, distributions)


def _task_records(tasks: Sequence[Task], scored: _Scored, overlaps: dict, bootstraps: dict[str, TaskBootstrap],
                  recipe: Protocol, warnings: list[str]) -> tuple[dict, dict]:
    """Each task's record (what it scored) and its chance level on the items scored."""
    infos, chance = {}, {}
    for task in tasks:
        failed = scored.failed[task.name]
        infos[task.name], messages = task_record(task, failed, overlaps[task.name],
                                                 bootstraps[task.name].resamples.n_units, recipe.embedding_of(task))
        for message in messages:
            warn(warnings, message)
        chance_rows = [row for row in bootstraps[task.name].rows if task.paths[row] not in failed]
        chance[task.name] = chance_scores(task.type, task.targets(chance_rows), len(task.classes))
    return infos, chance
