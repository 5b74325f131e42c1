"""Downstream tasks declared as data: a CSV table of files, labels and splits plus a small header.

A user adds a task by writing two files, no code::

    # genre.yaml (YAML or JSON)
    name: genre
    type: multiclass          # multilabel | multiclass | key | regression | retrieval
    table: genre.csv          # default: the header's name with .csv; relative to the header
    audio_root: audio         # default: the header's folder; table paths are relative to it
    label: genre              # the label column (retrieval: the group column)
    group: album              # optional: items of one album are resampled together (see below)
    max_chunks: 64            # optional: at most this many windows of a track, evenly spread
                              # (default MAX_CHUNKS, as the benchmark tasks; null: every window)
    average_chunks: true      # optional: a track is the mean of its window embeddings (see below)

    # genre.csv
    path,split,genre
    a/track1.wav,train,rock

Multilabel labels are joined by ';' in one cell. Splits are train / valid / test; a probe task
without a valid split gets one carved from train (see probes). A retrieval task queries the items
of ``retrieval_split`` (default test; "all" for every row) against each other. Rows with an empty
label are left out: a corpus may leave a group or a tag unset for some versions.

A track is cut into windows of the encoder's input length. By default a probe trains on every
window (each with the track's label) and averages its predictions over a track; with
``average_chunks`` a track is the mean of its window embeddings and the probe sees one example per
track, mucon's own protocol for the built-in benchmark tasks (``mucon.evaluation.benchmarks``); the
releases' protocols (``mucon.evaluation.protocols``) choose their own windows.

Scores carry bootstrap intervals over the test items (see ``bootstrap``). Items of one test split
are often not independent (several versions of a piece, several tracks of an album): a ``group``
column makes the bootstrap resample whole groups, which gives the honest, wider interval.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from mucon.data.labels import SPLITS
from mucon.data.layouts import BenchmarkTask
from mucon.evaluation.metrics import (
    KEY_NAMES,
    accuracy,
    average_precision_macro,
    key_index,
    key_weighted_scores,
    macro_f1,
    r2_score,
    roc_auc_macro,
)

TASK_TYPES = ("multilabel", "multiclass", "key", "regression", "retrieval")
# The figure a robustness curve follows and a summary leads with, per task type.
PRIMARY_METRIC = {
    "multilabel": "roc_auc",
    "multiclass": "accuracy",
    "key": "weighted",
    "regression": "r2",
    "retrieval": "map",
}
# What a probe of each type is trained as (a key is one of 24 classes).
PROBE_KIND = {"multilabel": "multilabel", "multiclass": "multiclass", "key": "multiclass", "regression": "regression"}
MULTILABEL_SEPARATOR = ";"
# Windows of a track a task embeds, evenly spread: SemiSupCon's "up to 64 chunks of a track". The cost of
# a task is then bounded by its track count, however long the tracks are, and `mucon embed` uses the same
# cap so that its embeddings are the ones evaluate would make (and reuses from the cache).
MAX_CHUNKS = 64


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Where a built-in benchmark task comes from, for the report: its dataset, the layout's published
    task (the source of its split, the published item count of each split, the metrics the field
    reports: kept there alone, read here), and what the folder lacks against the published lists
    (found before embedding)."""

    dataset: str
    published_task: BenchmarkTask
    missing: str = ""

    @property
    def source(self) -> str:
        return self.published_task.source

    @property
    def published(self) -> Mapping[str, int]:
        return self.published_task.counts

    @property
    def metrics(self) -> str:
        return self.published_task.metrics


@dataclasses.dataclass(frozen=True)
class Task:
    """One downstream task: ``paths[i]`` (relative to ``audio_root``) has ``labels[i]`` in ``splits[i]``."""

    name: str
    type: str
    audio_root: Path
    paths: tuple[str, ...]
    splits: tuple[str, ...]
    labels: tuple[str, ...]
    retrieval_split: str = "test"
    groups: tuple[str, ...] | None = None  # bootstrap units: rows of one group are resampled together
    group_column: str | None = None  # where the groups came from, for the report
    max_chunks: int | None = None  # windows per track, evenly spread; None: every window
    average_chunks: bool = False  # a track is the mean of its window embeddings (one probe example)
    benchmark: Benchmark | None = None  # set for the built-in benchmark tasks
    label_column: str | None = None  # the table column the labels came from, to spot labels pretraining used

    def __post_init__(self):
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name!r}: type {self.type!r} is not one of {TASK_TYPES}")
        if not len(self.paths) == len(self.splits) == len(self.labels):
            raise ValueError(f"task {self.name!r}: paths, splits and labels differ in length")
        if self.groups is not None and len(self.groups) != len(self.paths):
            raise ValueError(f"task {self.name!r}: one group per row is needed")
        if self.max_chunks is not None and (isinstance(self.max_chunks, bool) or not isinstance(self.max_chunks, int)
                                            or self.max_chunks < 1):
            raise ValueError(f"task {self.name!r}: max_chunks must be a whole number, at least 1; got {self.max_chunks!r}")
        unknown = sorted(set(self.splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown split(s) {unknown}; use {SPLITS}")
        if self.type == "retrieval":
            if self.retrieval_split != "all" and self.retrieval_split not in SPLITS:
                raise ValueError(f"task {self.name!r}: retrieval_split must be one of {SPLITS} or 'all'")
        elif not {"train", "test"} <= set(self.splits):
            raise ValueError(f"task {self.name!r}: a probe task needs train and test rows")
        if self.type == "key":
            for label in set(self.labels):
                key_index(label)  # fail at load time on a malformed key, not after embedding
        if self.type == "regression":
            for label in set(self.labels):
                if not _is_number(label):
                    raise ValueError(f"task {self.name!r}: regression label {label!r} is not a number")

    @property
    def classes(self) -> tuple[str, ...]:
        """Output names of a probe: the 24 keys, the tags, or the classes in natural order.

        Numeric class names (MIDI pitches) sort by value, so confusion matrices read in order.
        """
        if self.type == "key":
            return KEY_NAMES
        if self.type == "multilabel":
            return tuple(sorted({tag for label in self.labels for tag in _tags(label)}))
        if self.type == "multiclass":
            return tuple(sorted(set(self.labels), key=_natural_order))
        return ()

    def rows(self, split: str) -> np.ndarray:
        """Row indices of a split ("all" for every row)."""
        return np.array([i for i, s in enumerate(self.splits) if split in ("all", s)], dtype=np.int64)

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """Encoded labels of ``rows``: class indices, multi-hot rows, values, or group names."""
        labels = [self.labels[i] for i in rows]
        if self.type == "key":
            return np.array([key_index(label) for label in labels], dtype=np.int64)
        if self.type == "multiclass":
            index = {name: i for i, name in enumerate(self.classes)}
            return np.array([index[label] for label in labels], dtype=np.int64)
        if self.type == "multilabel":
            index = {name: i for i, name in enumerate(self.classes)}
            hot = np.zeros((len(labels), len(index)), dtype=np.float32)
            for row, label in enumerate(labels):
                hot[row, [index[tag] for tag in _tags(label)]] = 1.0
            return hot
        if self.type == "regression":
            return np.array([float(label) for label in labels], dtype=np.float32)
        return np.array(labels)


def score_predictions(task_type: str, targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """The metrics of a probe task from track-level probe outputs (probabilities or values)."""
    if task_type == "multilabel":
        return {"roc_auc": roc_auc_macro(targets, predictions), "pr_auc": average_precision_macro(targets, predictions)}
    if task_type == "regression":
        return {"r2": r2_score(targets, predictions)}
    predicted = predictions.argmax(axis=1)
    if task_type == "key":
        weighted = float(key_weighted_scores(targets, predicted).mean())
        return {"accuracy": accuracy(targets, predicted), "weighted": weighted}
    if task_type == "multiclass":
        return {"accuracy": accuracy(targets, predicted), "macro_f1": macro_f1(targets, predicted)}
    raise ValueError(f"{task_type!r} is not a probe task type")


def _tags(label: str) -> list[str]:
    return [tag.strip() for tag in label.split(MULTILABEL_SEPARATOR) if tag.strip()]


def _natural_order(name: str) -> tuple[int, float, str]:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def task_from_table(
    name: str,
    task_type: str,
    table: str | Path,
    audio_root: str | Path,
    label: str,
    path_column: str = "path",
    split_column: str = "split",
    retrieval_split: str = "test",
    group_column: str | None = None,
    max_chunks: int | None = MAX_CHUNKS,
    average_chunks: bool = False,
) -> Task:
    """A task from a CSV table; rows whose label cell is empty are left out."""
    columns, numbered_rows = _read_table(table)
    missing = {path_column, split_column, label, group_column or label} - set(columns)
    if missing:
        raise ValueError(f"{table}: task {name!r} needs column(s) {sorted(missing)}")
    rows = [row for _, row in numbered_rows if row[label].strip()]
    if task_type == "regression":
        for line, row in numbered_rows:
            if row[label].strip() and not _is_number(row[label]):
                raise ValueError(f"{table}, line {line}: regression label {row[label]!r} (column {label}) is not a number")
    return Task(
        name=name,
        type=task_type,
        audio_root=Path(audio_root),
        paths=tuple(row[path_column] for row in rows),
        splits=tuple(row[split_column].strip() for row in rows),
        labels=tuple(row[label].strip() for row in rows),
        retrieval_split=retrieval_split,
        groups=tuple(row[group_column].strip() for row in rows) if group_column else None,
        group_column=group_column,
        max_chunks=max_chunks,
        average_chunks=average_chunks,
        label_column=label,
    )


def _read_table(table: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A task table's columns and its (line number, row) pairs, from UTF-8 text (a byte-order mark
    allowed: spreadsheet programs write one, and it hid the first column's name); a row shorter than
    the header, or a file in another encoding, is refused naming the file and the line."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or ())
            rows = []
            for row in reader:
                if None in row.values():
                    raise ValueError(f"{table}, line {reader.line_num}: {sum(v is not None for v in row.values())} "
                                     f"fields, the header has {len(columns)} ({','.join(columns)})")
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as error:
        raise ValueError(f"{table}: not UTF-8 text (it holds the byte 0x{error.object[error.start]:02x}, as Latin-1 "
                         "and other encodings write accents); save it as UTF-8") from None
    return columns, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_task(header_path: str | Path) -> Task:
    """A task declared by a YAML/JSON header and its CSV table (see the module docstring)."""
    header_path = Path(header_path)
    try:
        header = yaml.safe_load(header_path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"{header_path}: not a valid task header: broken YAML{where} "
                         f"({getattr(error, 'problem', None) or type(error).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{header_path}: a task header is a mapping (name, type, label, ...)")
    known = {"name", "type", "table", "audio_root", "label", "group", "path_column", "split_column", "retrieval_split",
             "max_chunks", "average_chunks"}
    unknown = sorted(set(header) - known)
    if unknown:
        raise ValueError(f"{header_path}: unknown key(s) {unknown}; known: {sorted(known)}")
    for required in ("name", "type", "label"):
        if required not in header:
            raise ValueError(f"{header_path}: missing {required!r}")
    folder = header_path.parent
    return task_from_table(
        name=str(header["name"]),
        task_type=header["type"],
        table=folder / header.get("table", header_path.with_suffix(".csv").name),
        audio_root=folder / header.get("audio_root", "."),
        label=header["label"],
        path_column=header.get("path_column", "path"),
        split_column=header.get("split_column", "split"),
        retrieval_split=header.get("retrieval_split", "test"),
        group_column=header.get("group"),
        max_chunks=header.get("max_chunks", MAX_CHUNKS),
        average_chunks=bool(header.get("average_chunks", False)),
    )


def _has_values(table: Path, column: str) -> bool:
    columns, rows = _read_table(table)
    return column in columns and any(row[column].strip() for _, row in rows)


def corpus_tasks(corpus_dir: str | Path) -> list[Task]:
    """The built-in tasks of a mucon corpus, derived from its metadata tables.

    From ``metadata.csv`` (mixtures): key (MIREX-weighted), composer, instrument families present
    (multilabel tagging), separation sources present (multilabel over vocals, drums, bass, other),
    tempo (regression), cover retrieval (versions of a piece: cover_group, test split) and tune
    retrieval (other chorales on the same tune: tune_retrieval, set on one version per chorale);
    from ``notes/metadata.csv``: instrument family and pitch (multiclass over MIDI pitch). A task
    whose column is absent or empty is skipped, so a smaller or older corpus still works.
    """
    corpus_dir = Path(corpus_dir)
    declared = [
        # (table, audio root, task name, type, column, retrieval split)
        ("metadata.csv", ".", "key", "key", "key", "test"),
        ("metadata.csv", ".", "composer", "multiclass", "composer", "test"),
        ("metadata.csv", ".", "instrument-tags", "multilabel", "families", "test"),
        ("metadata.csv", ".", "sources-present", "multilabel", "sources", "test"),
        ("metadata.csv", ".", "tempo", "regression", "tempo", "test"),
        ("metadata.csv", ".", "cover-retrieval", "retrieval", "cover_group", "test"),
        ("metadata.csv", ".", "tune-retrieval", "retrieval", "tune_retrieval", "test"),
        ("notes/metadata.csv", "notes", "instrument-family", "multiclass", "family", "test"),
        ("notes/metadata.csv", "notes", "pitch", "multiclass", "pitch", "test"),
    ]
    tasks = []
    for table, root, name, task_type, column, split in declared:
        table = corpus_dir / table
        if table.is_file() and _has_values(table, column):
            tasks.append(task_from_table(name, task_type, table, corpus_dir / root, column, retrieval_split=split))
    if not tasks:
        raise FileNotFoundError(f"{corpus_dir}: no metadata.csv or notes/metadata.csv with task columns")
    return tasks
