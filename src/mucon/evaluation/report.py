"""Results as text: the table printed at the end of an evaluation, results.json and results.md.

Every figure is shown with its bootstrap interval, and a model under test is marked where it
differs from its random-init twin or from the best handcrafted baseline by more than the paired
interval of the difference (see ``bootstrap``). A chance column (summary) and row (task tables)
give what an answer that ignores the audio scores on the same test items
(``baselines.chance_scores``).

The results object is plain JSON data (see ``mucon.evaluation.run.evaluate``), so a notebook can
load results.json and rebuild any table without mucon.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

# Retrieval figures shown in the summary; the cosine statistics stay in the per-task tables.
SUMMARY_RETRIEVAL_METRICS = ("map", "precision_at_10", "mean_rank_first_hit")
RETRIEVAL_HEAD = "cosine"
MAX_FAILED_LISTED = 20  # results.json lists them all


CHANCE = "chance"  # the summary's column and the task tables' row of ``baselines.chance_scores``
NOT_COMPARABLE = "(not comparable)"  # a benchmark task scored on other items than the published split

# A model under test against a baseline, beyond the paired interval of the difference: better / worse.
MARKS = {("random-init", 1): "▲", ("random-init", -1): "▼", ("baseline", 1): "△", ("baseline", -1): "▽"}


def _undefined(value) -> bool:
    """NaN here, null once read back from JSON."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _marks(results: dict, model: str, task: str, head: str, metric: str) -> str:
    """Two characters: against the random-init twin, then against the best handcrafted baseline
    (a space where the difference is within the interval); empty for a model not compared."""
    against = results.get("comparisons", {}).get(model, {}).get(task, {}).get(head, {}).get(metric, {})
    marks = "".join(MARKS.get((role, against[role]["better"]), " ") if role in against else " "
                    for role in ("random-init", "baseline"))
    return marks.rstrip()


def _interval_text(low, high, digits: int, bracket: bool) -> str:
    """``[low, high]`` or ``±`` half its width; "n/a" for an undefined interval (too many resamples
    where the metric is undefined, see ``bootstrap.interval``)."""
    if _undefined(low) or _undefined(high):
        return "[n/a]" if bracket else "±n/a"
    return f"[{low:.{digits}f}, {high:.{digits}f}]" if bracket else f"±{(high - low) / 2:.{digits}f}"


def _cell(results: dict, model: str, task: str, head: str, metric: str, *, digits: int, bracket: bool) -> str:
    """A figure with its interval (as ± half its width, or as ``[low, high]``) and its marks."""
    value = results["scores"].get(model, {}).get(task, {}).get(head, {}).get(metric)
    if _undefined(value):
        return "n/a"
    if not isinstance(value, float):
        return str(value)  # a count (retrieval queries): nothing to resample
    low, high = results.get("intervals", {}).get(model, {}).get(task, {}).get(head, {}).get(metric, (None, None))
    text = f"{value:.{digits}f} " + _interval_text(low, high, digits, bracket)
    marks = _marks(results, model, task, head, metric)
    return f"{text} {marks}" if marks else text


def _chance_cell(results: dict, task: str, metric: str, *, digits: int) -> str:
    """The chance level of a figure (one for every head: it ignores the audio), without an interval."""
    value = results.get("chance", {}).get(task, {}).get(metric)
    return "n/a" if _undefined(value) else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _has_chance(results: dict) -> bool:
    """Results written before the chance levels were computed (an older results.json) have none."""
    return bool(results.get("chance"))


def _summary_metrics(results: dict, task: str) -> list[str]:
    if results["tasks"][task]["type"] == "retrieval":
        return list(SUMMARY_RETRIEVAL_METRICS)
    head = results["settings"]["heads"][0]
    for per_task in results["scores"].values():
        if task in per_task:
            return list(per_task[task][head])
    return []


def summary_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Rows: each task's metrics (first probe head; retrieval by cosine similarity); columns: models,
    then the chance level. Each cell: the figure, ± half its 95 % interval, and the marks of ``legend``.

    Tasks times metrics outnumber models, so this way round the table fits a terminal.
    """
    head = results["settings"]["heads"][0]
    chance = [CHANCE] if _has_chance(results) else []
    header = ["task", "metric", *results["models"], *chance]
    rows = []
    for task in results["tasks"]:
        scored_by = RETRIEVAL_HEAD if results["tasks"][task]["type"] == "retrieval" else head
        shown = task + (f" {NOT_COMPARABLE}" if not _comparable(results, task) else "")
        for metric in _summary_metrics(results, task):
            rows.append([shown, metric] + [_cell(results, model, task, scored_by, metric, digits=2, bracket=False)
                                           for model in results["models"]]
                        + [_chance_cell(results, task, metric, digits=2) for _ in chance])
    return header, rows


def _comparable(results: dict, task: str) -> bool:
    """False for a benchmark task that did not score the published split's items."""
    return results["tasks"][task].get("benchmark", {}).get("comparable", True)


def legend(results: dict) -> list[str]:
    """What the ± and the marks of the tables mean."""
    bootstrap = results["settings"].get("bootstrap", {})
    grouped = sorted({info["bootstrap"]["unit"] for info in results["tasks"].values()
                      if info.get("bootstrap", {}).get("unit", "item") != "item"})
    units = "test items" + (f" (whole {', '.join(grouped)} groups where a task has them)" if grouped else "")
    lines = [
        f"± half the {bootstrap.get('confidence', 0.95):.0%} bootstrap interval over {units} "
        f"({bootstrap.get('resamples', '?')} resamples, the same for every model).",
        "▲ ▼ above / below its random-init twin, △ ▽ above / below the best handcrafted baseline,",
        "    where the paired interval of the difference excludes 0 (rank: lower is better).",
    ]
    if _has_chance(results):
        lines += [f"{CHANCE}: the best answer that ignores the audio, on the same test items: the majority class,",
                  "    one score for every tag (ROC-AUC 0.5, PR-AUC the prior rate), the mean (R² 0), a random ranking."]
    if not all(_comparable(results, task) for task in results["tasks"]):
        lines.append(f"{NOT_COMPARABLE}: a benchmark task scored on other items than the published split "
                     "(see the warnings).")
    return lines


def _wrap(cell: str, width: int) -> list[str]:
    """A header cell broken at spaces into lines of at most ``width`` (a longer word stays whole)."""
    lines: list[str] = []
    for word in cell.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def text_table(header: list[str], rows: list[list[str]], max_width: int | None = None, key_columns: int = 2) -> str:
    """Columns as wide as their cells; a header wider than its column (a long model name) wraps.

    A table wider than ``max_width`` is printed in blocks of columns, one under the other, each
    repeating the first ``key_columns`` (task, metric) so that every block reads on its own.
    """
    widths = [max([len(cell) for cell in column] or [1]) for column in zip(*rows)] if rows else [len(c) for c in header]
    wrapped = [_wrap(cell, width) for cell, width in zip(header, widths)]
    widths = [max(width, *(len(line) for line in lines)) for width, lines in zip(widths, wrapped)]
    blocks, block = [], []
    for column in range(key_columns, len(header)):
        used = sum(widths[c] + 2 for c in [*range(key_columns), *block, column])
        if block and max_width is not None and used > max_width:
            blocks.append(block)
            block = []
        block.append(column)
    blocks.append(block)
    texts = []
    for block in blocks:
        chosen = [*range(key_columns), *block]
        header_lines = [[wrapped[c][i] if i < len(wrapped[c]) else "" for c in chosen]
                        for i in range(max(len(wrapped[c]) for c in chosen))]
        lines = [[line[c] for c in chosen] for line in rows]
        texts.append("\n".join(
            "  ".join(cell.ljust(widths[c]) for cell, c in zip(line, chosen)).rstrip()
            for line in [*header_lines, ["-" * widths[c] for c in chosen], *lines]
        ))
    return "\n\n".join(texts)


def summary_text(results: dict, max_width: int | None = None) -> str:
    """The summary table as printed at the end of an evaluation (in blocks of models if it would be
    wider than ``max_width``, default the terminal's), with its legend and the warnings."""
    max_width = max_width or shutil.get_terminal_size((120, 24)).columns
    lines = [text_table(*summary_table(results), max_width=max_width), *legend(results)]
    return "\n".join(lines + [f"warning: {warning}" for warning in results.get("warnings", [])])


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
        [model] + [_cell(results, model, task, head, metric, digits=3, bracket=True) for head, metric in columns]
        for model in results["models"]
        if task in results["scores"].get(model, {})
    ]
    if task in results.get("chance", {}):
        rows.append([CHANCE] + [_chance_cell(results, task, metric, digits=3) for _, metric in columns])
    return header, rows


def _robustness_table(results: dict, task: str) -> tuple[list[str], list[list[str]]]:
    per_model = {model: tasks[task] for model, tasks in results["robustness"].items() if task in tasks}
    severities = sorted({s for curves in per_model.values() for curve in curves.values() for s in curve}, key=float)
    header = ["model", "corruption", "pretraining"] + severities
    exposure = results.get("robustness_exposure", {})

    def cell(model: str, corruption: str, severity: str) -> str:
        value = per_model[model][corruption].get(severity)
        if value is None and severity not in per_model[model][corruption]:
            return ""
        bands = results.get("robustness_intervals", {}).get(model, {}).get(task, {}).get(corruption, {})
        low, high = bands.get(severity, (None, None))
        if _undefined(value):
            return "n/a"
        return f"{value:.2f} " + _interval_text(low, high, 2, bracket=False)

    def seen(model: str, corruption: str) -> str:
        status = exposure.get(model, {}).get(corruption, "unseen")
        return "" if status == "unseen" else status

    rows = [[model, corruption, seen(model, corruption)] + [cell(model, corruption, s) for s in severities]
            for model, curves in per_model.items() for corruption in curves]
    return header, rows


def _chunks_line(info: dict, protocol: str = "mucon") -> str:
    """How a track became probe input: which windows, and whether embeddings or predictions were averaged
    (a protocol other than mucon's says which chunks train and how a track is predicted)."""
    chunks = info.get("chunks", {})
    spread = f"up to {chunks['max']} windows per track, evenly spread" if chunks.get("max") else "every window"
    if chunks.get("average"):
        return f"{spread}, averaged into one embedding per track"
    if protocol != "mucon":
        return f"{spread} embedded, probed as the `{protocol}` protocol says"
    return f"{spread}, each probed, predictions averaged per track"


def _benchmark_lines(benchmark: dict) -> list[str]:
    """The published facts of a benchmark task, and whether its figures can stand next to published ones."""
    def counts(per_split: dict) -> str:
        return ", ".join(f"{split} {n}" for split, n in per_split.items())

    verdict = "comparable with published results (the published split's items, all scored)" if benchmark[
        "comparable"] else f"**{benchmark['why']}**"
    return [f"- dataset: {benchmark['dataset']}; metrics: {benchmark['metrics']}",
            f"- split: {benchmark['split']}",
            f"- published: {counts(benchmark['published'])}; used: {counts(benchmark['used'])}",
            f"- {verdict}"]


def _bootstrap_line(info: dict) -> str:
    bootstrap = info.get("bootstrap", {"unit": "item", "units": "?"})
    if bootstrap["unit"] == "item":
        return f"intervals resample its {bootstrap['units']} scored items"
    return f"intervals resample its {bootstrap['units']} `{bootstrap['unit']}` groups, whole"


def markdown_report(results: dict) -> str:
    settings = results["settings"]
    lines = ["# mucon evaluation", ""]
    models = [[name, info["kind"], info["source"]] for name, info in results["models"].items()]
    lines += [markdown_table(["model", "kind", "source"], models), ""]
    if settings.get("protocol"):
        recipe = settings.get("protocol_recipe", {})
        described = "; ".join(f"{key}: {value}" for key, value in recipe.items() if key != "protocol")
        lines += [f"Protocol: `{settings['protocol']}`" + (f" ({described})" if described else "")
                  + (f"; {settings['probing']}" if settings.get("probing") else "")
                  + f"; heads: {', '.join(settings['heads'])}.", ""]
    lines += [
        f"## Summary ({settings['heads'][0]} probe; retrieval by cosine similarity)",
        "",
        markdown_table(*summary_table(results)),
        "",
        *[f"{line}  " for line in legend(results)],
        "",
    ]
    if results.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {warning}" for warning in results["warnings"]] + [""]
    lines += ["## Tasks", "", "Each figure with its 95 % interval `[low, high]`, marks as in the summary.", ""]
    for task, info in results["tasks"].items():
        counts = ", ".join(f"{split} {n}" for split, n in info["tracks"].items())
        lines += [f"### {task}", "",
                  f"{info['type']}, primary metric {info['primary_metric']}; tracks scored: {counts}; "
                  f"{_bootstrap_line(info)}; {_chunks_line(info, settings.get('protocol', 'mucon'))}", ""]
        if "benchmark" in info:
            lines += [*_benchmark_lines(info["benchmark"]), ""]
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
            "audio, ± half its 95 % interval; severity 0 is the clean test set. `pretraining`: the model's own "
            "pretraining chain applied every effect of the corruption (seen) or some of them (partly seen), "
            "or the model came without its chain (unknown); "
            "a `tier-N` stacks the corruptions before it, as SemiSupCon's tiers.",
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
