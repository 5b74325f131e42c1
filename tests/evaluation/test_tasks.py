import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mucon.encoders import build_encoder
from mucon.evaluation.benchmarks import resolve_tasks
from mucon.evaluation.embed import embed_files
from mucon.evaluation.scoring import probe_task, retrieval_task
from mucon.evaluation.tasks import Task, corpus_tasks, load_task, score_predictions

RATE = 16000


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def tone_task_folder(root, n=24):
    """Low (110-165 Hz) and high (880-1320 Hz) tones as a declared task: genre.yaml + genre.csv + audio/."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    t = np.arange(RATE // 2) / RATE
    rows = []
    for i in range(n):
        register = "high" if i % 2 else "low"
        f0 = (880 if i % 2 else 110) * rng.uniform(1.0, 1.5)
        sf.write(root / "audio" / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), RATE)
        rows.append({"path": f"t{i}.wav", "split": ["train", "train", "valid", "test"][(i // 2) % 4],
                     "register": register, "pair": f"g{i // 2}"})
    write_csv(root / "genre.csv", rows)
    return root


@pytest.fixture(scope="module")
def encoder():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE // 2).eval()


def test_a_task_declared_as_a_csv_and_a_yaml_header_loads_and_runs(tmp_path, encoder):
    root = tone_task_folder(tmp_path)
    (root / "genre.yaml").write_text("name: register\ntype: multiclass\naudio_root: audio\nlabel: register\n")
    task = load_task(root / "genre.yaml")
    assert task.name == "register" and task.classes == ("high", "low") and len(task.paths) == 24
    embeddings = embed_files(encoder, task.audio_root, task.paths, progress=False)
    outcome = probe_task(task, embeddings, ["linear"], seed=0)
    assert set(outcome.scores["linear"]) == {"accuracy", "macro_f1"}
    assert outcome.scores["linear"]["accuracy"] >= 0.8  # low vs high register is easy even for random weights


def test_a_json_header_declares_a_retrieval_task_over_a_chosen_split(tmp_path, encoder):
    root = tone_task_folder(tmp_path)
    header = {"name": "pairs", "type": "retrieval", "table": "genre.csv", "audio_root": "audio", "label": "pair",
              "retrieval_split": "all"}
    (root / "pairs.json").write_text(json.dumps(header))
    task = load_task(root / "pairs.json")
    outcome = retrieval_task(task, embed_files(encoder, task.audio_root, task.paths, progress=False))
    assert outcome.scores["cosine"]["queries"] == 24
    assert 0.0 < outcome.scores["cosine"]["map"] <= 1.0


def test_a_header_can_ask_for_the_papers_protocol_of_averaged_capped_windows(tmp_path):
    root = tone_task_folder(tmp_path)
    (root / "genre.yaml").write_text("name: register\ntype: multiclass\naudio_root: audio\nlabel: register\n"
                                     "max_chunks: 64\naverage_chunks: true\n")
    task = load_task(root / "genre.yaml")
    assert (task.max_chunks, task.average_chunks) == (64, True)
    (root / "plain.yaml").write_text("name: register\ntype: multiclass\naudio_root: audio\ntable: genre.csv\n"
                                     "label: register\n")
    plain = load_task(root / "plain.yaml")
    assert (plain.max_chunks, plain.average_chunks) == (64, False)  # at most 64 windows, each probed
    (root / "every.yaml").write_text("name: register\ntype: multiclass\naudio_root: audio\ntable: genre.csv\n"
                                     "label: register\nmax_chunks: null\n")
    assert load_task(root / "every.yaml").max_chunks is None  # every window


def test_a_header_with_a_missing_column_or_unknown_key_is_rejected_with_the_reason(tmp_path):
    root = tone_task_folder(tmp_path)
    (root / "bad.yaml").write_text("name: x\ntype: multiclass\ntable: genre.csv\nlabel: mood\n")
    with pytest.raises(ValueError, match="mood"):
        load_task(root / "bad.yaml")
    (root / "typo.yaml").write_text("name: x\ntype: multiclass\ntable: genre.csv\nlabel: register\nlabels: y\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_task(root / "typo.yaml")
    (root / "kind.yaml").write_text("name: x\ntype: ranking\ntable: genre.csv\nlabel: register\n")
    with pytest.raises(ValueError, match="ranking"):
        load_task(root / "kind.yaml")


def test_targets_encode_each_task_type():
    def task(task_type, labels):
        paths = tuple(f"{i}.wav" for i in range(len(labels)))
        return Task("t", task_type, Path("."), paths, ("train",) * (len(labels) - 1) + ("test",), tuple(labels))

    rows = np.arange(3)
    np.testing.assert_array_equal(task("key", ["A minor", "C major", "Bb major"]).targets(rows), [21, 0, 10])
    np.testing.assert_array_equal(task("multiclass", ["60", "100", "9"]).targets(rows), [1, 2, 0])  # numeric order
    tags = task("multilabel", ["rock;guitar", "guitar", "piano; rock"])
    assert tags.classes == ("guitar", "piano", "rock")
    np.testing.assert_array_equal(tags.targets(rows), [[1, 0, 1], [1, 0, 0], [0, 1, 1]])
    np.testing.assert_allclose(task("regression", ["1.5", "2", "-3"]).targets(rows), [1.5, 2.0, -3.0])


def test_key_task_scores_accuracy_and_the_mirex_weighted_score():
    predictions = np.eye(24)[[0, 7, 21, 12]]  # C major -> C major, G major (fifth), A minor (relative), C minor
    scores = score_predictions("key", np.zeros(4, dtype=int), predictions)
    assert scores == pytest.approx({"accuracy": 0.25, "weighted": (1 + 0.5 + 0.3 + 0.2) / 4})


def write_corpus(root):
    """The corpus layout: mixtures in metadata.csv, single notes in notes/metadata.csv (no audio needed)."""
    (root / "notes").mkdir(parents=True)
    splits = ["train", "train", "valid", "test"]
    write_csv(root / "metadata.csv", [
        {"path": f"mix/{i}.flac", "split": splits[i % 4], "piece": f"p{i // 2}", "composer": f"c{i % 3}",
         "key": ["A minor", "C major"][i % 2], "tonic": "A", "mode": "minor", "tempo": 90 + i,
         "cover_group": f"p{i // 2}", "tune_group": "", "has_vocals": 0, "families": "strings;keys"}
        for i in range(8)
    ])
    write_csv(root / "notes" / "metadata.csv", [
        {"path": f"{i}.wav", "split": splits[i % 4], "family": ["brass", "reed"][i % 2], "program": 0,
         "pitch": 60 + i % 3, "velocity": 100}
        for i in range(8)
    ])


def test_corpus_tasks_derive_the_built_in_tasks_from_the_metadata(tmp_path):
    write_corpus(tmp_path)
    tasks = {task.name: task for task in corpus_tasks(tmp_path)}
    assert set(tasks) == {"key", "composer", "instrument-tags", "tempo", "cover-retrieval", "instrument-family", "pitch"}
    assert "tune-retrieval" not in tasks  # the column is empty in this corpus
    assert tasks["key"].type == "key" and tasks["cover-retrieval"].retrieval_split == "test"
    assert tasks["pitch"].classes == ("60", "61", "62") and tasks["pitch"].audio_root == tmp_path / "notes"
    assert tasks["instrument-tags"].classes == ("keys", "strings")
    assert [t.name for t in resolve_tasks([tmp_path])] == [t.name for t in corpus_tasks(tmp_path)]
