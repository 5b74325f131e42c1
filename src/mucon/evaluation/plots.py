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

MAX_LEGEND_ENTRIES = 12


def pca_2d(embeddings: np.ndarray) -> np.ndarray:
    """Coordinates on the first two principal components (after centring)."""
    if len(embeddings) == 0:  # a task whose split scored nothing (a tiny corpus): an empty map
        return np.zeros((0, 2))
    centred = np.asarray(embeddings, np.float64) - np.mean(embeddings, axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ components[:2].T
    return np.pad(coordinates, ((0, 0), (0, 2 - coordinates.shape[1])))


def _grid(n_panels: int, panel_size: float = 3.6, share_y: bool = False) -> tuple[Figure, list]:
    columns = min(n_panels, 3)
    rows = math.ceil(n_panels / columns)
    figure = Figure(figsize=(panel_size * columns, panel_size * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharey=share_y).ravel().tolist()
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    return figure, axes[:n_panels]


def embedding_maps(
    title: str, panels: Mapping[str, tuple[np.ndarray, Sequence]], path: Path, continuous: bool = False
) -> Path:
    """One PCA scatter per model of ``(embeddings [n, D], labels [n])``, coloured by label.

    Categorical labels beyond the most frequent dozen are grey, so the legend stays readable;
    ``continuous`` labels (regression targets) get a colour scale instead.
    """
    figure, axes = _grid(len(panels))
    for axis, (model, (embeddings, labels)) in zip(axes, panels.items()):
        xy = pca_2d(embeddings)
        if continuous:
            points = axis.scatter(xy[:, 0], xy[:, 1], c=np.asarray(labels, float), s=8, cmap="viridis")
            figure.colorbar(points, ax=axis)
        else:
            labels = np.asarray(labels, dtype=str)
            names, counts = np.unique(labels, return_counts=True)
            shown = names[np.argsort(-counts, kind="stable")[:MAX_LEGEND_ENTRIES]]
            palette = colormaps["tab20"]
            others = ~np.isin(labels, shown)
            axis.scatter(xy[others, 0], xy[others, 1], s=6, color="lightgrey")
            for index, name in enumerate(sorted(shown)):
                chosen = labels == name
                axis.scatter(xy[chosen, 0], xy[chosen, 1], s=8, color=palette(index % 20), label=name)
            if len(shown):
                axis.legend(fontsize=6, markerscale=1.5, loc="best")
        axis.set_title(model, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{title}: embeddings of the evaluated tracks, first two principal components")
    figure.savefig(path, dpi=110)
    return path


def confusion_matrices(
    title: str, panels: Mapping[str, np.ndarray], class_names: Sequence[str], path: Path
) -> Path:
    """Row-normalised confusion matrix (true class down, predicted across) per model."""
    figure, axes = _grid(len(panels), panel_size=4.2)
    show_names = len(class_names) <= 30
    for axis, (model, counts) in zip(axes, panels.items()):
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        axis.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
        axis.set_title(model, fontsize=9)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        if show_names:
            ticks = np.arange(len(class_names))
            axis.set_xticks(ticks, class_names, rotation=90, fontsize=5)
            axis.set_yticks(ticks, class_names, fontsize=5)
    figure.suptitle(f"{title}: confusion (rows sum to 1)")
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
    """The pretraining loss of each run against its step, from ``RUN_DIR/logs/metrics.csv``."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axis = figure.subplots()
    for model, metrics_csv in logs.items():
        steps, values = read_training_log(metrics_csv, column)
        if len(steps):
            axis.plot(steps, values, label=model)
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
