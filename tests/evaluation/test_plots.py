import csv

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from mucon.evaluation import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots module would save, kept instead of rendered (a PNG costs time here)."""
    figures = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *args, **kwargs: figures.append(self))
    return figures


def test_each_confusion_cell_shows_its_count_in_a_colour_that_contrasts_with_its_shade(tmp_path, drawn):
    counts = np.array([[9, 1, 0], [0, 5, 5], [2, 0, 0]])
    plots.confusion_matrices("genre", {"clmr": counts}, ["rock", "jazz", "pop"], tmp_path / "c.png")
    [axis] = [axis for axis in drawn[0].axes if axis.get_title() == "clmr"]
    shown = {(round(text.get_position()[1]), round(text.get_position()[0])): text for text in axis.texts}
    assert {cell: int(text.get_text()) for cell, text in shown.items()} == {
        (true, predicted): count for (true, predicted), count in np.ndenumerate(counts) if count}
    assert shown[(0, 0)].get_color() == "white"  # 90 % of its row: a dark cell
    assert shown[(0, 1)].get_color() == "black"  # 10 %: a light one
    assert shown[(2, 0)].get_color() == "white"  # a whole row, whatever its count


def test_confusion_panels_grow_with_the_classes_and_long_class_names_are_cut_and_slanted(tmp_path, drawn):
    few = ["a", "b", "c"]
    many = [f"a rather long class name {i}" for i in range(24)]
    for names in (few, many):
        plots.confusion_matrices("genre", {"m": np.eye(len(names), dtype=int)}, names, tmp_path / "c.png")
    small, large = (figure.get_size_inches()[0] for figure in drawn)
    assert large > 2 * small
    axis = drawn[1].axes[0]
    ticks = [label.get_text() for label in axis.get_xticklabels()]
    assert len(ticks) == 24 and all(len(tick) <= plots.MAX_TICK_LABEL_CHARS for tick in ticks)
    assert ticks[0] == "a rather long class…"
    assert axis.get_xticklabels()[0].get_rotation() == 45


def test_a_confusion_of_more_classes_than_can_hold_counts_is_shaded_only_in_small_cells(tmp_path, drawn):
    counted, shaded = plots.MAX_COUNTED_CLASSES, 84  # 84 pitch classes
    for n in (counted, shaded):
        plots.confusion_matrices("pitch", {"m": np.ones((n, n), dtype=int)}, [str(i) for i in range(n)],
                                 tmp_path / "c.png")
    assert len(drawn[0].axes[0].texts) == counted * counted
    assert len(drawn[1].axes[0].texts) == 0
    assert "count" not in drawn[1]._suptitle.get_text()
    assert drawn[1].get_size_inches()[0] < 12  # was 19 inches at 110 dpi a panel


def test_every_class_of_an_embedding_map_has_its_own_colour_the_same_in_every_panel_and_a_legend_entry(
        tmp_path, drawn):
    rng = np.random.default_rng(0)
    names = [f"game {i:02d}" for i in range(15)]  # more than a dozen: main greyed out the rarest ones
    labels = [names[i] for i in np.repeat(np.arange(15), 3)]
    panels = {model: (rng.normal(size=(45, 6)), labels) for model in ("a", "b")}
    plots.embedding_maps("game", panels, tmp_path / "map.png")
    colours = [{collection.get_label(): to_hex(collection.get_facecolor()[0]) for collection in axis.collections}
               for axis in drawn[0].axes]
    assert colours[0].keys() == set(names)
    assert len(set(colours[0].values())) == 15
    assert colours[0] == colours[1]
    [legend] = drawn[0].legends
    assert [text.get_text() for text in legend.get_texts()] == names


def test_classes_beyond_the_palette_keep_distinct_colour_and_marker_pairs():
    styles = [(to_hex(colour), marker) for colour, marker in map(plots.class_style, range(160))]
    assert len(set(styles)) == 160
    assert len({colour for colour, _ in styles[:20]}) == 20


def test_checkpoints_of_one_run_draw_one_training_curve(tmp_path, drawn):
    logs = {}
    for run in ("clmr-cpu", "cola-cpu"):
        (tmp_path / run / "logs").mkdir(parents=True)
        with open(tmp_path / run / "logs" / "metrics.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([["epoch", "step", "train/loss"], *([0, step, 1.0 / (1 + step)]
                                                                             for step in range(0, 100, 10))])
        logs[run] = tmp_path / run / "logs" / "metrics.csv"
    logs = {"clmr@50": logs["clmr-cpu"], "clmr@100": logs["clmr-cpu"], "cola-cpu": logs["cola-cpu"]}
    plots.training_curves(logs, tmp_path / "curves.png")
    lines = drawn[0].axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["clmr-cpu (clmr@50, clmr@100)", "cola-cpu"]
