"""What an evaluation warns about, and what it records of each task's items.

Most checks run before anything is embedded (a train split of one class, leakage between splits,
a benchmark folder that differs from the published split, a task scored on the labels its model
was pretrained on); the undecodable files are known after embedding.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from mucon.evaluation.models import ModelEntry
from mucon.evaluation.report import MAX_FAILED_LISTED
from mucon.evaluation.results import TaskInfo
from mucon.evaluation.tasks import PRIMARY_METRIC, SPLITS, Task


def _seen_label_warnings(entries: Sequence[ModelEntry], tasks: Sequence[Task]) -> list[str]:
    """A probe scored on the labels its model's pretraining took positives from measures what the model
    was taught, not what it learned on its own: said for each such model and task."""
    return [f"{task.name}: scored on the column {task.label_column!r}, which {entry.name} was pretrained on "
            "as positives (a seen task for it, not an unseen one)"
            for entry in entries for task in tasks
            if entry.pretraining_labels and entry.pretraining_labels == task.label_column]


def warn(warnings: list[str], message: str) -> None:
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


def train_overlap(task: Task) -> dict[str, int]:
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


def warnings_before_embedding(tasks: Sequence[Task], entries: Sequence[ModelEntry],
                              overlaps: Mapping[str, Mapping[str, int]]) -> list[str]:
    """What makes a task's scores meaningless or incomparable, said before the long embedding."""
    messages = [message for task in tasks for message in (
        *_train_split_warnings(task), *_train_overlap_warnings(task, overlaps[task.name]),
        *_published_count_warnings(task))]
    return messages + _seen_label_warnings(entries, tasks)


def task_record(task: Task, failed: dict[str, str], overlap: dict[str, int], bootstrap_units: int,
                chunks: tuple) -> tuple[TaskInfo, list[str]]:
    """What results.json says of a scored task (the tracks scored: its files that decoded), and the
    warnings about them: the undecodable files, and a benchmark's counts that differ from the published."""
    warnings = [_failed_files_warning(task, failed)] if failed else []
    scored = {split: sum(task.paths[row] not in failed for row in task.rows(split)) for split in SPLITS}
    benchmark = _benchmark_record(task, scored) if task.benchmark is not None else None
    if benchmark is not None and not benchmark["comparable"] and not _published_count_warnings(task):
        warnings.append(f"{task.name}: {benchmark['why']}")
    info = TaskInfo(
        type=task.type,
        primary_metric=PRIMARY_METRIC[task.type],
        audio_root=str(task.audio_root),
        tracks={split: n for split, n in scored.items() if n},
        classes=len(task.classes),
        failed=failed,
        also_in_train=overlap,
        bootstrap={"unit": task.group_column or "item", "units": bootstrap_units},
        chunks=dict(zip(("max", "average"), chunks)),
        benchmark=benchmark,
    )
    return info, warnings
