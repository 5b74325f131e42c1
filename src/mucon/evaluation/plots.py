"""Figures of an evaluation, drawn with matplotlib's object API on the Agg canvas.

``Figure`` objects are used directly (no pyplot), so drawing never changes the backend or global
state of a notebook or GUI the user runs mucon from.

Embedding maps use PCA, not t-SNE: PCA is deterministic, has no perplexity to tune, costs one SVD,
and its axes are linear directions of the embedding, i.e. what a linear probe can exploit; t-SNE
can draw clusters that no linear read-out finds, which would flatter weak models.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from mucon.evaluation.tasks import _natural_order

# Categorical classes: 20 colours, the ten of tab10 and then their light tones (tab20's odd entries);
# beyond them a new marker every 20 classes, so every class up to 160 has its own (colour, marker) pair.
CLASS_COLOURS = [colormaps["tab20"](index) for index in (*range(0, 20, 2), *range(1, 20, 2))]
CLASS_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MAX_TICK_LABEL_CHARS = 20
MAX_NAMED_TICKS = 60  # more classes than this: every n-th tick is named
MAX_COUNTED_CLASSES = 30  # more classes: confusion cells are shaded only, without their counts, in
SHADED_CELL_INCHES = 0.09  # cells this small (counts in 84 pitch classes made 18 inch panels, 6000 px figures)
LEGEND_ROW_INCHES = 0.21  # a legend entry at 7 points, its marker scaled 1.5


def class_style(index: int) -> tuple[tuple, str]:
    """(colour, marker) of the ``index``-th class of a map: distinct for every class up to 160."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)], CLASS_MARKERS[(index // len(CLASS_COLOURS)) % len(CLASS_MARKERS)]


def pca_2d(embeddings: np.ndarray) -> np.ndarray:
    """Coordinates on the first two principal components (after centring)."""
    if len(embeddings) == 0:  # a task whose split scored nothing (a tiny corpus): an empty map
        return np.zeros((0, 2))
    centred = np.asarray(embeddings, np.float64) - np.mean(embeddings, axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ components[:2].T
    return np.pad(coordinates, ((0, 0), (0, 2 - coordinates.shape[1])))


def _grid(n_panels: int, panel_size: float = 3.6, share_y: bool = False,
          extra_width: float = 0.0) -> tuple[Figure, list]:
    columns = min(n_panels, 3)
    rows = math.ceil(n_panels / columns)
    figure = Figure(figsize=(panel_size * columns + extra_width, panel_size * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharey=share_y).ravel().tolist()
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    return figure, axes[:n_panels]


def embedding_maps(
    title: str, panels: Mapping[str, tuple[np.ndarray, Sequence]], path: Path, continuous: bool = False
) -> Path:
    """One PCA scatter per model of ``(embeddings [n, D], labels [n])``, coloured by label.

    Every class has its own colour and marker (see ``class_style``), the same in every panel, and
    one legend beside the panels names them all; ``continuous`` labels (regression targets) get a
    colour scale instead.
    """
    classes = [] if continuous else sorted({str(label) for _, labels in panels.values() for label in labels},
                                           key=_natural_order)
    panel_size, rows = 3.6, math.ceil(len(panels) / 3)
    legend_columns = max(1, math.ceil(len(classes) * LEGEND_ROW_INCHES / (panel_size * rows - 0.8)))  # below the title
    extra_width = legend_columns * (0.5 + 0.065 * max(map(len, classes))) if classes else 0.0
    figure, axes = _grid(len(panels), panel_size=panel_size, extra_width=extra_width)
    for axis, (model, (embeddings, labels)) in zip(axes, panels.items()):
        xy = pca_2d(embeddings)
        if continuous:
            points = axis.scatter(xy[:, 0], xy[:, 1], c=np.asarray(labels, float), s=8, cmap="viridis")
            figure.colorbar(points, ax=axis)
        else:
            labels = np.asarray(labels, dtype=str)
            for index, name in enumerate(classes):
                chosen = labels == name
                colour, marker = class_style(index)
                axis.scatter(xy[chosen, 0], xy[chosen, 1], s=14, color=colour, marker=marker, label=name,
                             linewidths=0)
        axis.set_title(model, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    if classes:
        handles, names = axes[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="outside right center", fontsize=7, markerscale=1.5, ncols=legend_columns)
    figure.suptitle(f"{title}: embeddings of the evaluated tracks, first two principal components")
    figure.savefig(path, dpi=110)
    return path


def _tick_label(name: str) -> str:
    """A class name short enough for an axis: long names end in an ellipsis."""
    return name if len(name) <= MAX_TICK_LABEL_CHARS else name[: MAX_TICK_LABEL_CHARS - 1] + "…"


def _text_colour(background) -> str:
    """Black on a light cell, white on a dark one (by the cell colour's luminance)."""
    red, green, blue, _ = background
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5 else "white"


def confusion_matrices(
    title: str, panels: Mapping[str, np.ndarray], class_names: Sequence[str], path: Path
) -> Path:
    """Confusion matrix per model (true class down, predicted across): each cell shaded by its share of
    the true class (rows sum to 1) and, up to ``MAX_COUNTED_CLASSES`` classes, labelled with its count
    (a blank cell: none).

    Panels grow with the number of classes, so counted cells stay big enough for their counts; beyond
    that the shade alone is shown, in small cells, which keeps the figure readable on a screen and
    cheap to draw; long class names are cut and the predicted ones slanted.
    """
    n_classes = len(class_names)
    counted = n_classes <= MAX_COUNTED_CLASSES
    labels = [_tick_label(str(name)) for name in class_names]
    label_inches = 0.06 * max(map(len, labels), default=0)
    cell_inches = min(11.0 / max(n_classes, 1), 0.45) if counted else SHADED_CELL_INCHES
    panel_size = max(4.2, n_classes * cell_inches + label_inches + 1.2)
    figure, axes = _grid(len(panels), panel_size=panel_size, extra_width=1.0)
    cell_points = cell_inches * 72
    count_size = float(np.clip(cell_points * 0.38, 3.0, 9.0))
    tick_size = float(np.clip(cell_points * 0.45, 4.0, 8.0))
    colours = colormaps["Blues"]
    named = np.arange(0, n_classes, math.ceil(n_classes / MAX_NAMED_TICKS) if n_classes else 1)
    slanted = max(map(len, labels), default=0) > 3
    for axis, (model, counts) in zip(axes, panels.items()):
        counts = np.asarray(counts)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = axis.imshow(rates, cmap=colours, vmin=0.0, vmax=1.0)
        for (true, predicted), count in np.ndenumerate(counts if counted else counts[:0]):
            if count:
                axis.text(predicted, true, str(count), ha="center", va="center", fontsize=count_size,
                          color=_text_colour(colours(rates[true, predicted])))
        axis.set_title(model, fontsize=9)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_xticks(named, [labels[i] for i in named], fontsize=tick_size,
                        rotation=45 if slanted else 0, ha="right" if slanted else "center", rotation_mode="anchor")
        axis.set_yticks(named, [labels[i] for i in named], fontsize=tick_size)
    if axes:
        figure.colorbar(image, ax=axes, shrink=0.6, label="share of the true class")
    counts_said = "count in each cell (blank: none), " if counted else ""
    figure.suptitle(f"{title}: confusion, {counts_said}shade: share of the row")
    figure.savefig(path, dpi=110)
    return path


def _label_panel(axis, title: str, xlabel: str, ylabel: str) -> None:
    axis.set_title(title, fontsize=9)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)


def _save_panels(figure: Figure, axes: list, title: str, path: Path) -> Path:
    """The legend on the first panel (every panel draws the same lines), the title, the PNG."""
    if axes:
        axes[0].legend(fontsize=7)
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    return path


def robustness_curves(
    title: str,
    metric: str,
    curves: Mapping[str, Mapping[str, Mapping[str, float]]],
    path: Path,
    bands: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]] | None = None,
    exposure: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """One panel per corruption, metric against severity, a line per model, and its 95 % interval
    as a shaded band of the line's colour. A model's line is dashed where ``exposure``
    (``{model: {corruption: "seen" | "partly seen" | "unseen" | "unknown"}}``) says its pretraining saw
    the corruption, wholly or partly.

    ``curves`` is ``{model: {corruption: {severity: value}}}`` and ``bands`` the same with
    ``[low, high]`` values. The panels share their y axis, so a small wobble is not drawn as large
    as a collapse, and the bands show which wobbles are within the test set's noise.
    """
    bands = bands or {}
    corruptions = list(dict.fromkeys(name for per_model in curves.values() for name in per_model))
    figure, axes = _grid(len(corruptions), panel_size=3.2, share_y=True)
    for axis, corruption in zip(axes, corruptions):
        for model, per_model in curves.items():
            points = sorted((float(severity), value) for severity, value in per_model.get(corruption, {}).items())
            if not points:
                continue
            seen = (exposure or {}).get(model, {}).get(corruption) in ("seen", "partly seen")
            (line,) = axis.plot(*zip(*points), marker="o", label=model, linestyle="--" if seen else "-")
            band = bands.get(model, {}).get(corruption, {})
            spans = sorted((float(severity), *bounds) for severity, bounds in band.items()
                           if None not in bounds and np.isfinite(bounds).all())
            if spans:
                severities, lows, highs = zip(*spans)
                axis.fill_between(severities, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
        _label_panel(axis, corruption, "severity", metric)
    return _save_panels(figure, axes, f"{title}: {metric} on corrupted test audio, 95 % interval shaded "
                                      "(probe trained on clean audio; dashed: seen in pretraining)", path)


def score_against_steps(
    curves: Mapping[str, tuple[str, Mapping[str, Sequence[tuple[int, float, float, float]]]]], path: Path
) -> Path:
    """One panel per task: its primary metric against pretraining steps, a line per run with its 95 %
    interval shaded; step 0 is the run's random-init twin, so a line that never leaves step 0's band
    has learnt nothing the probe can use.

    ``curves`` is ``{task: (metric, {run: [(step, value, low, high), ...]})}``.
    """
    figure, axes = _grid(len(curves), panel_size=3.2)
    for axis, (task, (metric, runs)) in zip(axes, curves.items()):
        for run, points in runs.items():
            steps, values, lows, highs = (np.array(column, dtype=float) for column in zip(*sorted(points)))
            (line,) = axis.plot(steps, values, marker="o", label=run)
            finite = np.isfinite(lows) & np.isfinite(highs)
            axis.fill_between(steps[finite], lows[finite], highs[finite], color=line.get_color(), alpha=0.2, linewidth=0)
        _label_panel(axis, task, "pretraining step (0: random init)", metric)
    return _save_panels(figure, axes, "probe score against pretraining steps, 95 % interval shaded", path)


def read_training_log(metrics_csv: Path, column: str = "train/loss") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one column of a Lightning CSVLogger file, skipping rows that lack it."""
    steps, values = [], []
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(column, "") not in ("", None) and row.get("step", "") not in ("", None):
                steps.append(float(row["step"]))
                values.append(float(row[column]))
    return np.array(steps), np.array(values)


def training_curves(logs: Mapping[str, Path], path: Path, column: str = "train/loss") -> Path:
    """The pretraining loss of each run against its step, from ``RUN_DIR/logs/metrics.csv``.

    ``logs`` maps models to their run's log; checkpoints of one run share it and draw one line, named
    by the run folder and the models evaluated from it (one line per checkpoint would hide under another).
    """
    runs: dict[Path, list[str]] = {}
    for model, metrics_csv in logs.items():
        runs.setdefault(Path(metrics_csv).resolve(), []).append(model)
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axis = figure.subplots()
    for metrics_csv, models in runs.items():
        steps, values = read_training_log(metrics_csv, column)
        run = metrics_csv.parent.parent.name
        if len(steps):
            axis.plot(steps, values, label=run if models == [run] else f"{run} ({', '.join(models)})")
    axis.set_xlabel("step")
    axis.set_ylabel(column)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.suptitle("pretraining loss")
    figure.savefig(path, dpi=110)
    return path


def frame_mask_figure(
    spectrogram: np.ndarray, importance: np.ndarray, positive_masked: np.ndarray, seconds_per_frame: float,
    title: str, path: Path,
) -> Path:
    """PEMR's view of one clip: two strips with the frames its positive and its negative replace by
    [MASK] (complements), the log-mel [n_mels, T] with the positive's masked frames hatched over it,
    and the frame importance under it with the masked (least important) frames marked."""
    n_frames = spectrogram.shape[1]
    extent_seconds = n_frames * seconds_per_frame
    figure = Figure(figsize=(10.0, 5.2), layout="constrained")
    strips, image, curve = figure.subplots(3, 1, sharex=True, height_ratios=[0.5, 3.0, 1.4])
    rows = np.stack([positive_masked, ~positive_masked]).astype(float)
    strips.imshow(rows, aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest",
                  extent=(0.0, extent_seconds, 1.5, -0.5))
    strips.set_yticks([0, 1], ["positive", "negative"], fontsize=7)
    strips.set_title("frames replaced by [MASK] (black)", fontsize=8)
    shown = image.imshow(spectrogram, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                         extent=(0.0, extent_seconds, 0, spectrogram.shape[0]))
    figure.colorbar(shown, ax=[strips, image, curve], label="dB", shrink=0.6, pad=0.01)  # spans all: time axes align
    starts = np.flatnonzero(positive_masked) * seconds_per_frame
    for start in starts:
        image.axvspan(start, start + seconds_per_frame, facecolor="none", edgecolor="cyan", hatch="///", linewidth=0)
    image.set_ylabel("mel band")
    image.set_title(f"log-mel; hatched: the {len(starts)} least important frames, masked in the positive, kept "
                    "in the negative", fontsize=8)
    times = (np.arange(n_frames) + 0.5) * seconds_per_frame
    curve.plot(times, importance, color="black", linewidth=0.8)
    curve.scatter(times[positive_masked], importance[positive_masked], s=8, color="tab:cyan", zorder=3)
    curve.set_ylabel("importance")
    curve.set_xlabel("time (s)")
    curve.grid(alpha=0.3)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=110)
    return path
