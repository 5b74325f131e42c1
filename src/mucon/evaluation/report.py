"""Results as text: the table printed at the end of an evaluation, results.json and results.md.

The results object is plain JSON data (see ``mucon.evaluation.run.evaluate``), so a notebook can
load results.json and rebuild any table without mucon.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

# Retrieval figures shown in the summary; the cosine statistics stay in the per-task tables.
SUMMARY_RETRIEVAL_METRICS = ("map", "precision_at_10", "mean_rank_first_hit")
RETRIEVAL_HEAD = "cosine"
MAX_FAILED_LISTED = 20  # results.json lists them all


def _format(value) -> str:
    """Three decimals; "n/a" for an undefined metric (NaN here, null once read back from JSON)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _summary_metrics(results: dict, task: str) -> list[str]:
    if results["tasks"][task]["type"] == "retrieval":
        return list(SUMMARY_RETRIEVAL_METRICS)
    head = results["settings"]["heads"][0]
    for per_task in results["scores"].values():
        if task in per_task:
            return list(per_task[task][head])
    return []


def summary_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Rows: each task's metrics (first probe head; retrieval by cosine similarity); columns: models.

    Tasks times metrics outnumber models, so this way round the table fits a terminal.
    """
    head = results["settings"]["heads"][0]
    header = ["task", "metric", *results["models"]]
    rows = []
    for task in results["tasks"]:
        scored_by = RETRIEVAL_HEAD if results["tasks"][task]["type"] == "retrieval" else head
        for metric in _summary_metrics(results, task):
            row = [task, metric]
            for model in results["models"]:
                scores = results["scores"].get(model, {}).get(task, {}).get(scored_by, {})
                row.append(_format(scores.get(metric, float("nan"))))
            rows.append(row)
    return header, rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _task_table(results: dict, task: str) -> tuple[list[str], list[list[str]]]:
    columns = []
    for per_task in results["scores"].values():
        for head, metrics in per_task.get(task, {}).items():
            columns += [(head, metric) for metric in metrics if (head, metric) not in columns]
    header = ["model"] + [f"{head} {metric}" for head, metric in columns]
    rows = [
        [model] + [_format(results["scores"][model].get(task, {}).get(head, {}).get(metric, float("nan")))
                   for head, metric in columns]
        for model in results["models"]
        if task in results["scores"].get(model, {})
    ]
    return header, rows


def _robustness_table(results: dict, task: str) -> tuple[list[str], list[list[str]]]:
    per_model = {model: tasks[task] for model, tasks in results["robustness"].items() if task in tasks}
    severities = sorted({s for curves in per_model.values() for curve in curves.values() for s in curve}, key=float)
    header = ["model", "corruption"] + severities
    rows = [
        [model, corruption] + [_format(curve[s]) if s in curve else "" for s in severities]
        for model, curves in per_model.items()
        for corruption, curve in curves.items()
    ]
    return header, rows


def markdown_report(results: dict) -> str:
    settings = results["settings"]
    lines = ["# mucon evaluation", ""]
    models = [[name, info["kind"], info["source"]] for name, info in results["models"].items()]
    lines += [markdown_table(["model", "kind", "source"], models), ""]
    lines += [
        f"## Summary ({settings['heads'][0]} probe; retrieval by cosine similarity)",
        "",
        markdown_table(*summary_table(results)),
        "",
        "## Tasks",
        "",
    ]
    for task, info in results["tasks"].items():
        counts = ", ".join(f"{split} {n}" for split, n in info["tracks"].items())
        lines += [f"### {task}", "", f"{info['type']}, primary metric {info['primary_metric']}; tracks: {counts}", ""]
        lines += [markdown_table(*_task_table(results, task)), ""]
        if info["failed"]:
            shown = list(info["failed"].items())[:MAX_FAILED_LISTED]
            left_out = ", ".join(f"`{path}` ({reason})" for path, reason in shown)
            more = " ..." if len(info["failed"]) > len(shown) else ""
            lines += [f"{len(info['failed'])} file(s) could not be decoded and were left out: {left_out}{more}", ""]
    if results["robustness"]:
        lines += [
            "## Robustness",
            "",
            f"Primary metric of the {settings['heads'][0]} probe (trained on clean audio) on corrupted test "
            "audio; severity 0 is the clean test set.",
            "",
        ]
        skipped = settings.get("skipped_corruptions") or {}
        if skipped:
            lines += ["Skipped: " + ", ".join(f"{name} ({why})" for name, why in skipped.items()), ""]
        for task in results["tasks"]:
            header, rows = _robustness_table(results, task)
            if rows:
                lines += [f"### {task}", "", markdown_table(header, rows), ""]
    if results["figures"]:
        lines += ["## Figures", ""] + [f"![{Path(figure).stem}]({figure})" for figure in results["figures"]] + [""]
    return "\n".join(lines)


def _strict_json(value):
    """NaN (an undefined metric) becomes null: strict JSON readers reject NaN."""
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_strict_json(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """results.json (every number; undefined ones as null) and results.md (tables, figure links)."""
    json_path, markdown_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(_strict_json(results), indent=2, allow_nan=False))
    markdown_path.write_text(markdown_report(results))
    return json_path, markdown_path
