"""`mucon task make`: a seeded, stratified, group-aware split written as a task evaluate reads."""

import csv

import pytest

from mucon.cli import main
from mucon.data.labels import SPLITS
from mucon.evaluation.splitting import make_task
from mucon.evaluation.tasks import load_task


@pytest.fixture
def metadata(tmp_path):
    """Games a (6 albums), b (4 albums) and c (2 albums) of 1 to 3 tracks each, and one track without a game."""
    rows = [{"path": "loose.wav", "game": "", "album": "none"}]
    for game, albums in (("a", 6), ("b", 4), ("c", 2)):
        for album in range(albums):
            rows += [{"path": f"{game}/{album}/{track}.wav", "game": game, "album": f"{game}{album}"}
                     for track in range(1 + album % 3)]
    path = tmp_path / "music" / "metadata.csv"
    path.parent.mkdir()
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "game", "album"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_same_seed_makes_the_same_split_and_another_seed_another(metadata, tmp_path):
    first = make_task(metadata, "game", tmp_path / "one", group="album", seed=3)
    again = make_task(metadata, "game", tmp_path / "two", group="album", seed=3)
    other = make_task(metadata, "game", tmp_path / "three", group="album", seed=4)
    assert first.splits == again.splits and first.table.read_text() == again.table.read_text()
    assert other.splits != first.splits


def test_no_group_is_in_two_splits(metadata, tmp_path):
    made = make_task(metadata, "game", tmp_path / "task", group="album")
    split_of = {}
    for path, split in made.splits.items():
        assert split_of.setdefault(made.groups[path], split) == split


def test_every_class_with_three_groups_or_more_is_in_every_split_and_one_with_fewer_is_said(metadata, tmp_path):
    for seed in range(5):
        made = make_task(metadata, "game", tmp_path / f"task{seed}", group="album", seed=seed)
        counts = made.counts()
        assert all(counts[split][game] > 0 for split in SPLITS for game in ("a", "b"))
        assert sum(counts[split]["c"] > 0 for split in SPLITS) == 2  # two albums: two splits at most
        assert "note: class c is in no" in made.summary()


def test_the_written_task_loads_with_the_task_reader_and_holds_every_labelled_row(metadata, tmp_path):
    made = make_task(metadata, "game", tmp_path / "tasks", group="album", seed=1)
    task = load_task(made.header)
    assert task.audio_root.resolve() == metadata.parent.resolve()
    assert dict(zip(task.paths, task.splits)) == made.splits and "loose.wav" not in task.paths
    assert dict(zip(task.paths, task.labels)) == made.labels
    assert task.group_column == "album" and set(task.groups) == {f"a{i}" for i in range(6)} | {
        f"b{i}" for i in range(4)} | {"c0", "c1"}


def test_task_make_prints_the_items_and_groups_of_each_split_per_class(metadata, tmp_path, capsys):
    assert main(["task", "make", str(metadata), "--label", "game", "--group", "album", "--out",
                 str(tmp_path / "tasks")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["split", "items", "groups", "a", "b", "c"]
    table = {line.split()[0]: [int(cell) for cell in line.split()[1:]] for line in lines[2:5]}
    assert sorted(table) == sorted(SPLITS)
    assert sum(row[0] for row in table.values()) == 12 + 7 + 3  # every labelled row, the unlabelled one left out
    assert all(row[0] == sum(row[2:]) for row in table.values())


def test_task_make_names_a_missing_column_in_one_line(metadata, tmp_path, capsys):
    assert main(["task", "make", str(metadata), "--label", "genre", "--out", str(tmp_path / "tasks")]) == 2
    assert capsys.readouterr().err == f"mucon task: {metadata}: no column 'genre' (its columns: game, album)\n"
