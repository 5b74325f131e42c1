"""The field's benchmark tasks, read from a dataset folder as its publisher distributes it.

Each benchmark dataset is a layout (``mucon.data.layouts``) that carries its tasks: the label
column, the published split and where it comes from, the published item count of each split. A
task built here runs mucon's own protocol (``protocols.PROTOCOLS["mucon"]``; ``--protocol`` gives the
releases' own, SemiSupCon's among them): the frozen encoder embeds up to ``MAX_CHUNKS`` windows of
a track, evenly spread, and a track is their mean; linear and MLP probes train on the train split
with early stopping on the valid split; each task is scored with its own metrics (see
``tasks.score_predictions``).

Names: a task's name (``mtat-top50``), a dataset's name for its default tasks (``mtat``: top-50 and
all tags; tasks ``on_request`` are left out), a layout's group (``gtzan-10fold``), and ``hear`` for
every scene task of the HEAR task folders found. A name is read from the first ``--data-root``
folder that holds its dataset. ``resolve_tasks`` takes these names beside the tasks of
``mucon.evaluation.tasks`` (task files, corpus folders), which knows nothing of benchmarks.

A folder whose items differ from the published counts (missing files, another release) still
runs: the difference is printed as a warning with the counts, and the report marks the task's
results as not comparable with published ones.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from mucon.data.labels import SPLITS
from mucon.data.layouts import LAYOUTS, BenchmarkTask, Layout, LayoutOptions, Table
from mucon.evaluation.tasks import MAX_CHUNKS, Benchmark, Task, corpus_tasks, load_task

ALL_SCENE_TASKS = None  # what ``hear`` asks for: the tasks its folders declare


def _benchmark_layouts() -> list[Layout]:
    return [layout for layout in LAYOUTS.values() if layout.dataset]


def _names() -> dict[str, tuple[Layout, tuple[str, ...] | None]]:
    """Every name ``--tasks`` accepts with ``--data-root``: its layout and the task names it stands for."""
    names: dict[str, tuple[Layout, tuple[str, ...] | None]] = {}
    for layout in _benchmark_layouts():
        defaults = tuple(task.name for task in layout.tasks if not task.on_request)
        names[layout.name] = (layout, defaults or ALL_SCENE_TASKS)
        names.update({task.name: (layout, (task.name,)) for task in layout.tasks})
        names.update({group: (layout, members) for group, members in layout.groups.items()})
    return names


def is_benchmark_name(name: str) -> bool:
    return name in _names()


def _assign_split(value: str, task: BenchmarkTask, folds: Sequence[str]) -> str | None:
    """The train/valid/test part of a row whose split column holds ``value`` (None: not in the task)."""
    if task.test_fold is None:
        return value if value in SPLITS else None
    if not value:
        return None
    position = folds.index(task.test_fold)
    if value == task.test_fold:
        return "test"
    return "valid" if value == folds[(position + 1) % len(folds)] else "train"


def benchmark_task(layout: Layout, spec: BenchmarkTask, table: Table, folder: Path) -> Task:
    """The evaluation task ``spec`` of ``layout`` over ``table`` (read from ``folder``).

    Rows whose audio file is absent are left out and noted; a split left without any item is an
    error naming a file it expected.
    """
    label_column, split_column = table.label_columns.index(spec.label), table.label_columns.index(spec.split)
    folds = sorted({track.labels[split_column] for track in table.tracks} - {""})
    if spec.test_fold is not None and spec.test_fold not in folds:
        raise FileNotFoundError(f"{spec.name}: {folder} holds no item of fold {spec.test_fold} (from {layout.release})")
    rows, missing = [], []
    for track in table.tracks:
        split = _assign_split(track.labels[split_column], spec, folds)
        label = track.labels[label_column]
        if split is None or not (label or spec.keep_unlabelled):
            continue
        (rows if (folder / track.path).is_file() else missing).append((track.path, split, label))
    found = Counter(split for _, split, _ in rows)
    for split in spec.counts:
        if not found[split]:
            example = next((path for path, part, _ in missing if part == split), None)
            expected = f"expected e.g. {folder / example}" if example else "its lists name none"
            raise FileNotFoundError(f"{spec.name}: no {split} item in {folder}: {expected} (from {layout.release})")
    note = ""
    if missing:
        note = (f"{len(missing)} of the {len(rows) + len(missing)} files the task lists are missing "
                f"(e.g. {folder / missing[0][0]})")
    paths, splits, labels = zip(*rows)
    return Task(spec.name, spec.type, folder, paths, splits, labels, retrieval_split=spec.retrieval_split,
                max_chunks=MAX_CHUNKS, average_chunks=True,
                benchmark=Benchmark(layout.dataset, spec, note))


def benchmark_tasks(names: Sequence[str], data_roots: Sequence[Path]) -> list[list[Task]]:
    """The tasks each name stands for, read from the first of ``data_roots`` that holds its dataset.

    A root is tried by reading it: a layout names the files it lacks (``FileNotFoundError``), and
    with one root that is the error; other errors (a malformed file) stop at once. Each dataset
    folder is read once however many names use it.
    """
    known = _names()
    tables: dict[tuple[str, Path], Table] = {}

    def read(layout: Layout, folder: Path) -> Table:
        if (layout.name, folder) not in tables:
            tables[layout.name, folder] = layout.read(folder, LayoutOptions())
        return tables[layout.name, folder]

    def folders_of(layout: Layout) -> list[tuple[Path, tuple[BenchmarkTask, ...]]]:
        errors = []
        for root in data_roots:
            try:
                folders = layout.benchmark_folders(root)
                for folder, _ in folders:
                    read(layout, folder)
                return folders
            except FileNotFoundError as error:
                errors.append(str(error))
        if len(errors) == 1:
            raise FileNotFoundError(errors[0])
        raise FileNotFoundError(f"no --data-root holds {layout.dataset}: " + "; ".join(errors))

    expanded = []
    for name in names:
        layout, wanted = known[name]
        tasks = []
        for folder, specs in folders_of(layout):
            if not specs:
                print(f"warning: {name}: {folder} is not scored (a HEAR event task: timestamped labels)",
                      file=sys.stderr)
            tasks += [benchmark_task(layout, spec, read(layout, folder), folder) for spec in specs
                      if wanted is ALL_SCENE_TASKS or spec.name in wanted]
        if not tasks:
            raise ValueError(f"{name}: the {layout.dataset} folders hold no task mucon scores (HEAR event tasks, "
                             "with timestamped labels, are read for pretraining only)")
        expanded.append(tasks)
    return expanded


def resolve_tasks(specs: Sequence[Task | str | Path], data_roots: Sequence[str | Path] = ()) -> list[Task]:
    """Tasks from Task objects, header files, corpus folders (expanded to their built-in tasks) and
    built-in benchmark task names (``mucon tasks``), read from the dataset folders ``data_roots``."""
    resolved: list[Task | str] = []  # benchmark names wait, so that each dataset folder is read once
    for spec in specs:
        if isinstance(spec, Task):
            resolved.append(spec)
        elif data_roots and is_benchmark_name(str(spec)):
            resolved.append(str(spec))
        elif Path(spec).is_dir():
            resolved.extend(corpus_tasks(spec))
        elif Path(spec).is_file():
            resolved.append(load_task(spec))
        elif is_benchmark_name(str(spec)):
            raise ValueError(f"{spec} is a built-in benchmark task: give its dataset folder with --data-root")
        else:
            raise FileNotFoundError(f"{spec}: not a task file, a corpus folder or a built-in task name "
                                    "(`mucon tasks` lists them)")
    names = [spec for spec in resolved if isinstance(spec, str)]
    expanded = dict(zip(names, benchmark_tasks(names, [Path(root) for root in data_roots]))) if names else {}
    tasks = [task for spec in resolved for task in (expanded[spec] if isinstance(spec, str) else [spec])]
    names = [task.name for task in tasks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"task names must be unique; repeated: {duplicates}")
    return tasks


def _counts(counts: dict[str, int]) -> str:
    return " / ".join(f"{split} {counts[split]}" for split in SPLITS if split in counts)


def describe_benchmarks() -> str:
    """What ``mucon tasks`` prints: every built-in task with its dataset, type, metrics, published
    split sizes, the split's source and the data to download; then the names that stand for several."""
    lines = []
    for layout in _benchmark_layouts():
        lines.append(f"{layout.dataset} (--data-root: {layout.description}; layout `{layout.name}`)")
        lines.append(f"  data:  {layout.release}")
        if not layout.tasks:
            lines.append(f"  {layout.name}: every scene task of the task folders at --data-root; split sizes, "
                         "split and metrics from each task's own files")
        said = None
        for task in layout.tasks:
            request = "  (on request only)" if task.on_request else ""
            lines.append(f"  {task.name}  {task.type}  {_counts(dict(task.counts))}{request}")
            if (task.metrics, task.source) != said:  # the next tasks share them until they change
                lines += [f"      metric: {task.metrics}", f"      split:  {task.source}"]
                said = (task.metrics, task.source)
        defaults = [task.name for task in layout.tasks if not task.on_request]
        if defaults and defaults != [layout.name]:
            lines.append(f"  `{layout.name}` stands for: {', '.join(defaults)}")
        lines += [f"  `{group}` stands for: {', '.join(members)}" for group, members in layout.groups.items()]
        lines.append("")
    lines.append(f"Protocol (mucon's own, the default): frozen encoder; up to {MAX_CHUNKS} windows per track, "
                 "evenly spread, averaged into one embedding; linear and MLP probes with early stopping on the valid "
                 "split (retrieval: cosine). --protocol semisupcon|clmr|marble: the releases' own.")
    lines.append("Run: mucon evaluate --checkpoint CKPT --tasks NAME ... --data-root DATASET_FOLDER --out DIR")
    return "\n".join(lines)
