"""Half-widths of the 95 % bootstrap intervals of the built-in corpus tasks, resampling test items
and resampling whole groups of correlated items: the versions of one piece (`piece` in
metadata.csv) and the notes of one instrument preset (`instrument` in notes/metadata.csv).

    python benchmarks/interval_widths.py CORPUS_DIR --checkpoint RUN/checkpoints/last.ckpt

Both evaluations share one embedding cache, so the second one only trains probes. Prints, per task
and model, the primary metric and the two half-widths.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
from pathlib import Path

from mucon.evaluation import corpus_tasks, evaluate
from mucon.evaluation.tasks import PRIMARY_METRIC

GROUP_COLUMNS = {"metadata.csv": "piece", "notes/metadata.csv": "instrument"}


def grouped(task, corpus: Path):
    """The task with each row's group read from the corpus table its audio root belongs to."""
    table = "notes/metadata.csv" if task.audio_root.resolve() == (corpus / "notes").resolve() else "metadata.csv"
    with open(corpus / table, newline="") as handle:
        group_of = {row["path"]: row[GROUP_COLUMNS[table]] for row in csv.DictReader(handle)}
    return dataclasses.replace(task, groups=tuple(group_of[path] for path in task.paths),
                               group_column=GROUP_COLUMNS[table])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--cache", type=Path, help="embedding cache to reuse (default: a temporary one)")
    args = parser.parse_args()

    models = {Path(path).resolve().parents[1].name: path for path in args.checkpoint}
    tasks = corpus_tasks(args.corpus)
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or Path(scratch) / "cache"
        settings = dict(robustness=False, heads=("linear",), cache_dir=cache, verbose=False)
        by_item = evaluate(models, tasks, Path(scratch) / "items", **settings)
        by_group = evaluate(models, [grouped(task, args.corpus) for task in tasks], Path(scratch) / "groups",
                            **settings)
    print(f"{'task':18} {'metric':9} {'model':22} {'value':>6} {'±items':>7} {'±groups':>8}  units (items / groups)")
    for task in tasks:
        metric = PRIMARY_METRIC[task.type]
        head = "cosine" if task.type == "retrieval" else "linear"
        units = f"{by_item['tasks'][task.name]['bootstrap']['units']} / {by_group['tasks'][task.name]['bootstrap']['units']}"
        for model in by_item["models"]:
            value = by_item["scores"][model][task.name][head][metric]
            widths = [(results["intervals"][model][task.name][head][metric][1]
                       - results["intervals"][model][task.name][head][metric][0]) / 2
                      for results in (by_item, by_group)]
            print(f"{task.name:18} {metric:9} {model:22} {value:6.3f} {widths[0]:7.3f} {widths[1]:8.3f}  {units}")


if __name__ == "__main__":
    main()
