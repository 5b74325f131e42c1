"""How finely a built corpus measures: per built-in task, the items and independent units in each split,
the 95% interval a test accuracy near 0.5 would get, and what a random ranking scores on retrieval.

- Classification tasks (multiclass, key, multilabel): test items, test units (pieces for mixtures, GM
  programs for single notes: the units the splits keep whole, so items of one unit are correlated),
  and the binomial half-width 1.96 sqrt(0.25 / n) at p = 0.5 over items, and over units (the bound
  when all items of a unit are scored alike, which a piece-grouped bootstrap approaches).
- Retrieval tasks: test items, groups with two or more items, queries (items with a hit), and the
  mean average precision of random rankings (mean and spread over draws) next to 1.0 for a perfect one.
- The class counts per split of every classification task.
- What evaluation embeds: hours of audio and encoder windows (``--window-seconds``, non-overlapping,
  the last one padded) over every file (once per model) and over the test files (once per model
  and robustness condition).

Usage: python benchmarks/corpus_power.py CORPUS_DIR [--draws 200] [--window-seconds 2.0]
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from mucon.data.labels import SPLITS
from mucon.evaluation.metrics import retrieval_metrics
from mucon.evaluation.tasks import corpus_tasks
from mucon.evaluation.windows import count_windows

UNIT_COLUMN = {"metadata.csv": "piece", "notes/metadata.csv": "program"}


def unit_of_path(corpus_dir: Path) -> dict[tuple[Path, str], str]:
    """(audio root, path) -> the unit the split keeps whole."""
    units = {}
    for table, column in UNIT_COLUMN.items():
        root = (corpus_dir / table).parent.resolve()
        with open(corpus_dir / table, newline="") as handle:
            for row in csv.DictReader(handle):
                units[(root, row["path"])] = row[column]
    return units


def half_width(n: int) -> float:
    return 1.96 * math.sqrt(0.25 / n) if n else float("nan")


def random_map(groups: np.ndarray, draws: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    maps = [retrieval_metrics(rng.standard_normal((len(groups), 8)), groups)["map"] for _ in range(draws)]
    return float(np.mean(maps)), float(np.std(maps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus_dir", type=Path)
    parser.add_argument("--draws", type=int, default=200, help="random rankings per retrieval task")
    parser.add_argument("--window-seconds", type=float, default=2.0, help="encoder window (clmr-cpu: 2 s)")
    args = parser.parse_args()
    units = unit_of_path(args.corpus_dir)
    tasks = corpus_tasks(args.corpus_dir)

    print(f"{'task':<18} {'type':<11} {'train':>6} {'valid':>6} {'test':>5} {'units':>5}  test figure")
    class_lines = []
    for task in tasks:
        root = task.audio_root.resolve()
        sizes = {split: len(task.rows(split)) for split in SPLITS}
        test = task.rows("test")
        test_units = {units[(root, task.paths[row])] for row in test}
        head = (f"{task.name:<18} {task.type:<11} {sizes['train']:>6} {sizes['valid']:>6} {sizes['test']:>5} "
                f"{len(test_units):>5}")
        if task.type == "retrieval":
            groups = np.array([task.labels[row] for row in test])
            counts = Counter(groups.tolist())
            if not any(n > 1 for n in counts.values()):
                print(f"{head}  no group with two items in test: nothing to score")
                continue
            mean, spread = random_map(groups, args.draws)
            print(f"{head}  {sum(n > 1 for n in counts.values())} groups of >= 2, "
                  f"{sum(n for n in counts.values() if n > 1)} queries; "
                  f"MAP random {mean:.3f} (sd {spread:.3f}) vs perfect 1.0")
        elif task.type == "regression":
            print(f"{head}  (regression: r2)")
        else:
            print(f"{head}  +-{half_width(len(test)):.3f} over items, +-{half_width(len(test_units)):.3f} over units "
                  f"(p = 0.5, {len(task.classes)} classes)")
            per_split = {split: Counter(tag for row in task.rows(split) for tag in task.labels[row].split(";"))
                         for split in SPLITS}
            class_lines.append(f"{task.name}: " + ", ".join(
                f"{name} {'/'.join(str(per_split[s][name]) for s in SPLITS)}" for name in task.classes))
    print("\nclass counts, train/valid/test:")
    print("\n".join(class_lines))

    every = {(task.audio_root.resolve(), path) for task in tasks for path in task.paths}
    test = {(task.audio_root.resolve(), task.paths[row]) for task in tasks if task.type != "retrieval"
            for row in task.rows("test")}
    seconds = {key: sf.info(key[0] / key[1]).duration for key in every}
    window = round(args.window_seconds * 1000)  # in milliseconds
    for name, keys in (("every file", every), ("test files", test)):
        windows = sum(count_windows(round(seconds[k] * 1000), window, window) for k in keys)
        print(f"{name}: {len(keys)} files, {sum(seconds[k] for k in keys) / 3600:.2f} h, "
              f"{windows} windows of {args.window_seconds:g} s")


if __name__ == "__main__":
    main()
