"""`mucon task make`: a task of one's own from a metadata table, with a split one can trust.

The table is the ``metadata.csv`` that ``prepare`` and ``embed`` read (a ``path`` column and label
columns). The split is seeded (the same seed, the same split), group-aware (all rows of a group,
say an album or a game, land in one split, so no test track shares a recording session with a
training one) and stratified: within each class its groups are shuffled and dealt along
``TASK_PATTERN``, so every class with three groups or more is in train, valid and test, in about
60/20/20 proportions. Without a group column every row is its own group. A group is dealt with the
class most of its rows have.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import posixpath
from collections import Counter
from pathlib import Path

import yaml

from mucon.audio.io import PATH_CSV_OPTIONS
from mucon.data.corpus.splits import assign
from mucon.data.labels import SPLITS
from mucon.data.layouts import read_table

TASK_PATTERN = ("train", "test", "valid", "train", "train")
"""Per class: 3 of 5 groups train, 1 valid, 1 test; test and valid early so three groups fill all three."""
STRATIFIED_TYPES = ("multiclass", "key")  # types whose label is one class per row
MADE_TYPES = (*STRATIFIED_TYPES, "multilabel", "regression")


@dataclasses.dataclass
class MadeTask:
    """What ``make_task`` wrote and the split's counts, for the user to judge before evaluating."""

    header: Path
    table: Path
    label: str
    splits: dict[str, str]  # path -> split
    labels: dict[str, str]  # path -> label
    groups: dict[str, str]  # path -> group
    left_out: int  # rows without a label, or that the table's checks refused

    def counts(self) -> dict[str, Counter]:
        """Rows per class in each split."""
        counts = {split: Counter() for split in SPLITS}
        for path, split in self.splits.items():
            counts[split][self.labels[path]] += 1
        return counts

    def summary(self) -> str:
        counts = self.counts()
        classes = sorted({label for split in counts.values() for label in split})
        groups = {split: len({self.groups[p] for p, s in self.splits.items() if s == split}) for split in SPLITS}
        shown = classes if len(classes) <= 12 else []  # a regression or tagging task: totals only
        widths = [max(len(name), 5) for name in shown]
        lines = [f"wrote {self.header} and {self.table}: {len(self.splits)} rows"
                 + (f" ({self.left_out} left out: no {self.label}, listed twice or outside the folder)"
                    if self.left_out else ""),
                 "split  items  groups  " + "  ".join(name.rjust(width) for name, width in zip(shown, widths))]
        for split in SPLITS:
            per_class = "  ".join(str(counts[split][name]).rjust(width) for name, width in zip(shown, widths))
            lines.append(f"{split:<5}  {sum(counts[split].values()):>5}  {groups[split]:>6}  {per_class}")
        for name in shown:
            absent = [split for split in SPLITS if not counts[split][name]]
            if absent:
                lines.append(f"note: class {name} is in no {' or '.join(absent)} split (it has too few groups)")
        return "\n".join(lines)


def make_task(metadata: str | os.PathLike, label: str, out_dir: str | os.PathLike, *, group: str | None = None,
              seed: int = 0, task_type: str = "multiclass", name: str | None = None) -> MadeTask:
    """Write ``OUT_DIR/NAME.yaml`` and ``NAME.csv`` (``NAME``: the label column): a task over the rows of
    ``metadata`` that ``evaluate --tasks OUT_DIR/NAME.yaml`` reads, audio paths relative to the table's folder."""
    if task_type not in MADE_TYPES:
        raise ValueError(f"--type {task_type!r}: task make writes {', '.join(MADE_TYPES)} tasks")
    metadata, out_dir = Path(metadata), Path(out_dir)
    table = read_table(metadata.parent, "plain", metadata=metadata)
    for column in filter(None, (label, group)):
        if column not in table.label_columns:
            raise ValueError(f"{metadata}: no column {column!r} (its columns: {', '.join(table.label_columns)})")
    if "split" in (label, group) or label == group:
        raise ValueError(f"--label {label!r} and --group {group!r}: two different columns, neither named 'split' "
                         "(the task's own split column)")
    position = {column: i for i, column in enumerate(table.label_columns)}
    labels, groups = {}, {}
    for track in table.tracks:
        value = track.labels[position[label]].strip()
        if track.problem is None and value:
            path = posixpath.normpath(track.path)
            labels[path] = value
            groups[path] = (group and track.labels[position[group]].strip()) or f"item {path}"
    if not labels:
        raise ValueError(f"{metadata}: no row has a {label!r} value")
    members: dict[str, list[str]] = {}
    for path, unit in groups.items():
        members.setdefault(unit, []).append(path)
    stratified = task_type in STRATIFIED_TYPES
    unit_class = {unit: Counter(labels[p] for p in paths).most_common(1)[0][0] if stratified else ""
                  for unit, paths in members.items()}
    unit_split = assign(unit_class, seed, TASK_PATTERN, "task", per_class=True)
    splits = {path: unit_split[groups[path]] for path in labels}

    name = name or label
    out_dir.mkdir(parents=True, exist_ok=True)
    header, csv_path = out_dir / f"{name}.yaml", out_dir / f"{name}.csv"
    with open(csv_path, "w", **PATH_CSV_OPTIONS) as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "split", label, *([group] if group else [])])
        for path in sorted(labels):
            rows.writerow([path, splits[path], labels[path], *([groups[path]] if group else [])])
    declared = {"name": name, "type": task_type, "table": csv_path.name, "label": label,
                "audio_root": os.path.relpath(metadata.parent.resolve(), out_dir.resolve()),
                **({"group": group} if group else {})}
    header.write_text(f"# made by `mucon task make {metadata} --label {label}"
                      + (f" --group {group}" if group else "") + f" --seed {seed}`\n"
                      + yaml.safe_dump(declared, sort_keys=False))
    return MadeTask(header, csv_path, label, splits, labels, groups, len(table.tracks) - len(labels))
