"""`mucon evaluate --tasks NAME --data-root DIR` on each benchmark dataset's folder as its publisher
ships it: the paper protocol, the published facts in the report, and one-line errors for wrong folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from mucon.cli import main
from mucon.data.layouts import LAYOUTS

import benchmark_folders as folders


class Case(NamedTuple):
    write: object
    task: str  # the name given to --tasks
    scored: dict  # task -> items used per split (the tiny folder's)
    metric: str  # a figure every scored task reports
    missing: str  # an audio file to remove


CASES = {
    "mtat": Case(folders.write_mtat, "mtat", {"mtat-top50": {"train": 4, "valid": 2, "test": 3},
                                             "mtat-all": {"train": 4, "valid": 2, "test": 3}}, "roc_auc",
                 "1/ambient_teknology-phoenix-01-ambient_teknology-0-29.mp3"),
    "mtg-jamendo": Case(folders.write_mtg_jamendo, "mtg-jamendo-genre", {"mtg-jamendo-genre": {"train": 3, "valid": 2,
                                                                                               "test": 2}},
                        "pr_auc", "15/215.mp3"),
    "gtzan": Case(folders.write_gtzan, "gtzan", {"gtzan-genre": {"train": 6, "valid": 4, "test": 4}}, "accuracy",
                  "genres/blues/blues.00000.wav"),
    "nsynth": Case(folders.write_nsynth, "nsynth-pitch", {"nsynth-pitch": {"train": 4, "valid": 2, "test": 2}},
                   "accuracy", "nsynth-train/audio/bass_synthetic_033-022-050.wav"),
    "giantsteps": Case(folders.write_giantsteps, "giantsteps-key", {"giantsteps-key": {"train": 4, "valid": 2,
                                                                                       "test": 3}},
                       "weighted", "giantsteps-key-dataset/audio/10089.LOFI.mp3"),
    "fma-small": Case(folders.write_fma, "fma-small-genre", {"fma-small-genre": {"train": 4, "valid": 2, "test": 2}},
                      "accuracy", "fma_small/000/000190.mp3"),
    "covers80": Case(folders.write_covers80, "covers80", {"covers80": {"test": 6}}, "mean_rank_first_hit",
                     "coversongs/covers32k/Take_Me_To_The_River/annie_lennox+Medusa+07-Take_Me_To_The_River.mp3"),
    "hear": Case(folders.write_hear, "hear", {"hear-tones-v2.2.3-5h": {"train": 4, "valid": 2, "test": 2},
                                              **{f"hear-tones_folds-v1.0-full-fold0{i}": {"train": 4, "valid": 4,
                                                                                        "test": 4} for i in range(3)}},
                 "accuracy", "tones-v2.2.3-5h/22050/test/test_001.wav"),
}


def evaluate(checkpoint, task, root, out, *more):
    return main(["evaluate", "--checkpoint", str(checkpoint), "--tasks", task, "--data-root", str(root),
                 "--out", str(out), "--no-robustness", "--no-baselines", *more])


@pytest.mark.parametrize("layout", list(CASES))
def test_evaluate_scores_the_benchmark_task_and_reports_its_published_facts(layout, tmp_path, clmr_checkpoint,
                                                                           capsys):
    case = CASES[layout]
    root = case.write(tmp_path / layout)
    assert evaluate(clmr_checkpoint, case.task, root, tmp_path / "report") == 0
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert list(results["tasks"]) == list(case.scored)
    [model] = results["models"]
    report = (tmp_path / "report" / "results.md").read_text()
    for name, used in case.scored.items():
        info = results["tasks"][name]
        benchmark = info["benchmark"]
        [spec] = [spec for _, specs in LAYOUTS[layout].benchmark_folders(root) for spec in specs if spec.name == name]
        assert benchmark["published"] == dict(spec.counts) and benchmark["used"] == used
        assert info["chunks"] == {"max": 64, "average": True}  # the papers' protocol
        head = "cosine" if info["type"] == "retrieval" else "linear"
        assert np.isfinite(results["scores"][model][name][head][case.metric])
        # a tiny copy is not the published split, except a HEAR task folder, which is its own publication
        assert benchmark["comparable"] == (layout == "hear")
        assert spec.source in report and f"used: {', '.join(f'{s} {n}' for s, n in used.items())}" in report
    printed = capsys.readouterr().err
    if layout != "hear":
        assert "not comparable" in printed and "(not comparable)" in report
    else:
        assert f"warning: hear: {root / 'tone_events-v1.0-full'} is not scored (a HEAR event task" in printed


@pytest.mark.parametrize(("layout", "task"), [("mtat", "mtat-top50"), ("gtzan", "gtzan-genre"),
                                              ("covers80", "covers80")])
def test_a_missing_audio_file_is_a_warning_naming_it_and_the_counts(layout, task, tmp_path, clmr_checkpoint, capsys):
    case = CASES[layout]
    root = case.write(tmp_path / layout)
    (root / case.missing).unlink()
    assert evaluate(clmr_checkpoint, task, root, tmp_path / "report") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    [warning] = [line for line in warnings if "missing" in line]
    assert case.missing.rsplit("/", 1)[-1] in warning and "published" in warning and "not comparable" in warning


@pytest.mark.parametrize(("layout", "removed"), [
    ("mtat", "annotations_final.csv"), ("mtg-jamendo", "data/splits/split-0/autotagging_genre-train.tsv"),
    ("nsynth", "nsynth-test/examples.json"), ("giantsteps", "giantsteps-key-dataset/audio"),
    ("fma-small", "fma_metadata/tracks.csv"), ("covers80", "coversongs/covers32k/list1.list"),
    ("hear", "tones-v2.2.3-5h/test.json"),
])
def test_a_folder_without_a_file_of_its_release_is_a_one_line_error_naming_it(layout, removed, tmp_path,
                                                                              clmr_checkpoint, capsys):
    case = CASES[layout]
    root = case.write(tmp_path / layout)
    target = root / removed
    if target.is_dir():
        for file in target.iterdir():
            file.unlink()
        target.rmdir()
    else:
        target.unlink()
    assert evaluate(clmr_checkpoint, case.task, root, tmp_path / "report") == 2
    error = capsys.readouterr().err
    assert error.startswith("mucon evaluate: ") and error.count("\n") == 1
    folder, named = error.split(": ")[1], error.split(" missing ")[1].split(" (from ")[0]
    assert Path(folder) / named == root / removed  # "FOLDER: not a complete DATASET folder: missing FILE (from ...)"


def test_a_gtzan_folder_without_a_test_excerpt_left_is_an_error_naming_one(tmp_path, clmr_checkpoint, capsys):
    root = folders.write_gtzan(tmp_path / "gtzan")
    for genre, parts in folders.GTZAN_EXCERPTS.items():
        for number in parts["test"]:
            (root / "genres" / genre / f"{genre}.{number:05d}.wav").unlink()
    assert evaluate(clmr_checkpoint, "gtzan-genre", root, tmp_path / "report") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no test item" in error and "blues.00012.wav" in error


@pytest.mark.parametrize("wrong", ["empty", "another dataset"])
def test_a_wrong_data_root_is_one_line_saying_which_files_were_expected(wrong, tmp_path, clmr_checkpoint, capsys):
    root = tmp_path / "data"
    root.mkdir()
    if wrong == "another dataset":
        folders.write_gtzan(root)
    assert evaluate(clmr_checkpoint, "mtat-top50", root, tmp_path / "report") == 2
    error = capsys.readouterr().err
    assert error == (f"mucon evaluate: {root}: no MagnaTagATune here: expected annotations_final.csv, "
                     f"{', '.join(f'{name}/' for name in '0123456789abcdef')} (from {LAYOUTS['mtat'].release})\n")


def test_each_task_name_reads_the_data_root_that_holds_its_dataset(tmp_path, clmr_checkpoint):
    gtzan, covers = folders.write_gtzan(tmp_path / "gtzan"), folders.write_covers80(tmp_path / "covers80")
    code = main(["evaluate", "--checkpoint", str(clmr_checkpoint), "--tasks", "covers80", "gtzan-genre",
                 "--data-root", str(gtzan), "--data-root", str(covers), "--out", str(tmp_path / "report"),
                 "--no-robustness", "--no-baselines"])
    assert code == 0
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert {name: info["audio_root"] for name, info in results["tasks"].items()} == {
        "covers80": str(covers), "gtzan-genre": str(gtzan)}


def test_a_benchmark_name_without_a_data_root_says_to_give_one(tmp_path, clmr_checkpoint, capsys):
    assert main(["evaluate", "--checkpoint", str(clmr_checkpoint), "--tasks", "gtzan-genre",
                 "--out", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err == ("mucon evaluate: gtzan-genre is a built-in benchmark task: give its dataset "
                                       "folder with --data-root\n")


def test_the_random_gtzan_folds_run_only_on_request(tmp_path, clmr_checkpoint):
    root = folders.write_gtzan(tmp_path / "gtzan")
    assert evaluate(clmr_checkpoint, "gtzan", root, tmp_path / "default") == 0
    assert list(json.loads((tmp_path / "default" / "results.json").read_text())["tasks"]) == ["gtzan-genre"]
    assert evaluate(clmr_checkpoint, "gtzan-genre-fold3", root, tmp_path / "fold") == 0
    info = json.loads((tmp_path / "fold" / "results.json").read_text())["tasks"]["gtzan-genre-fold3"]
    assert info["benchmark"]["published"] == {"train": 800, "valid": 100, "test": 100}
    assert "random 10-fold" in info["benchmark"]["split"]


def test_a_second_run_of_one_task_reuses_its_cached_embeddings(tmp_path, clmr_checkpoint, monkeypatch):
    root = folders.write_mtat(tmp_path / "mtat")
    assert evaluate(clmr_checkpoint, "mtat", root, tmp_path / "report") == 0  # both tasks: each file embedded once

    from mucon.evaluation import embedding_cache

    monkeypatch.setattr(embedding_cache, "embed_jobs", lambda *a, **k: pytest.fail("embedded again"))
    assert evaluate(clmr_checkpoint, "mtat-all", root, tmp_path / "report") == 0


def test_mucon_tasks_lists_every_task_with_its_dataset_metric_counts_and_source(capsys):
    assert main(["tasks"]) == 0
    listed = capsys.readouterr().out
    for layout in LAYOUTS.values():
        if layout.dataset:
            assert layout.dataset in listed and layout.release in listed
        for task in layout.tasks:
            counts = " / ".join(f"{split} {n}" for split, n in task.counts.items())
            assert f"  {task.name}  {task.type}  {counts}" in listed
            assert task.metrics in listed and task.source in listed
    assert "gtzan-genre-fold0" in listed and "(on request only)" in listed and "hear" in listed


@pytest.mark.parametrize(("layout", "header", "kept"), [("mtat", "path,split,top50,tags", 4),
                                                      ("mtg-jamendo", "path,split,top50tags,genre,moodtheme,instrument",
                                                       5)])
def test_prepare_takes_a_benchmark_layout_to_pretrain_on_its_training_audio(layout, header, kept, tmp_path, capsys):
    root = CASES[layout].write(tmp_path / layout)
    store = tmp_path / "store"
    assert main(["prepare", str(root), str(store), "--layout", layout, "--sample-rate", "16000", "--split", "train",
                 "--min-seconds", "0.1", "--quiet", "--workers", "1"]) == 0
    assert f"kept {kept} files" in capsys.readouterr().out
    written, *rows = (store / "labels.csv").read_text().splitlines()
    assert written == header and len(rows) == kept and all(",train," in row for row in rows)


def test_an_undecodable_file_makes_a_complete_folder_not_comparable(tmp_path, clmr_checkpoint, capsys):
    root = folders.write_hear(tmp_path / "hear")
    (root / "tones-v2.2.3-5h" / "22050" / "test" / "test_001.wav").write_bytes(b"RIFF but not audio")
    assert evaluate(clmr_checkpoint, "hear", root, tmp_path / "report") == 0
    benchmark = json.loads((tmp_path / "report" / "results.json").read_text())["tasks"]["hear-tones-v2.2.3-5h"][
        "benchmark"]
    assert not benchmark["comparable"] and benchmark["used"] == {"train": 4, "valid": 2, "test": 1}
    assert ("warning: hear-tones-v2.2.3-5h: not comparable with published results: it used train 4, valid 2, test 1 "
            "items, the published split has train 4, valid 2, test 2") in capsys.readouterr().err
