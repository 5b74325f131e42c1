"""`mucon evaluate --protocol`: each protocol trains and tests a probe the way its source does, and
the report says which one was used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mucon.evaluation.plan as plan
import mucon.evaluation.scoring as scoring
from mucon.cli import main
from mucon.evaluation import evaluate
from mucon.evaluation.baselines import HandcraftedFeatures
from mucon.evaluation.probes import ChunkFeatures, Probe
from mucon.evaluation.protocols import PROTOCOLS, protocol_table

import benchmark_folders as folders

WINDOW = 2000  # the GTZAN tones are 0.5 s at 16 kHz: four windows, the last one full


def test_the_readme_table_is_the_protocols_table():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert protocol_table() in readme


# protocol -> (train examples per track handed to the probe, fit options that define it)
DEFINED = {
    "mucon": (1, {"sampling": "every-chunk", "standardise": True, "learning_rate": 1e-2, "batch_size": 1024,
                  "max_epochs": 300, "patience": 20, "monitor": None, "plateau": None, "restore_best": True}),
    "semisupcon": (3, {"sampling": "one-chunk-per-epoch", "standardise": False, "hidden_dim": 512, "bias": False,
                       "learning_rate": 3e-4, "weight_decay": 1e-6, "batch_size": 64, "max_epochs": 100,
                       "patience": 15, "monitor": None, "plateau": None, "restore_best": True}),
    "clmr": (1, {"sampling": "every-chunk", "standardise": False, "hidden_dim": None, "learning_rate": 1e-3,
                 "weight_decay": 1e-6, "batch_size": 48, "max_epochs": 200, "patience": 10, "monitor": None,
                 "plateau": (0.1, 5), "restore_best": False}),
    "marble": (1, {"sampling": "every-chunk", "standardise": False, "hidden_dim": 512, "dropout": 0.2,
                   "learning_rate": 1e-3, "weight_decay": 0.0, "batch_size": 64, "max_epochs": 100, "patience": 10,
                   "plateau": (0.5, 3), "restore_best": True}),
}
DEFAULT_HEAD = {"mucon": "linear", "semisupcon": "mlp", "clmr": "linear", "marble": "mlp"}


@pytest.mark.parametrize("name", DEFINED)
def test_a_benchmark_folder_evaluated_under_each_protocol_trains_and_names_it(name, tmp_path, monkeypatch):
    root = folders.write_gtzan(tmp_path / "gtzan")
    seen = []

    def spy(kind, train, train_targets, valid, valid_targets, n_outputs, **options):
        seen.append((np.bincount(train.track, minlength=train.n_tracks), options))
        return fit_probe(kind, train, train_targets, valid, valid_targets, n_outputs, **options)

    fit_probe = scoring.fit_probe
    monkeypatch.setattr(scoring, "fit_probe", spy)
    results = evaluate({"mfcc": HandcraftedFeatures(16000, WINDOW)}, ["gtzan-genre"], tmp_path / "out",
                       robustness=False, baselines=False, verbose=False, resamples=10, data_roots=[root],
                       protocol=name)
    per_track, expected = DEFINED[name]
    counts, options = seen[0]
    assert set(counts) == {per_track}
    assert {key: options[key] for key in expected} == expected
    assert options["head"] == DEFAULT_HEAD[name] and results["settings"]["heads"][0] == DEFAULT_HEAD[name]
    assert (name == "marble") == (options["monitor"] is not None)  # MARBLE stops on the validation metric
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["settings"]["protocol"] == name
    assert f"Protocol: `{name}`" in (tmp_path / "out" / "results.md").read_text()
    assert 0.0 <= written["scores"]["mfcc"]["gtzan-genre"][DEFAULT_HEAD[name]]["accuracy"] <= 1.0


def test_test_aggregation_is_the_mean_prediction_or_the_head_on_the_mean_embedding():
    """Two tracks of five windows; the head's softmax is not linear, so the two aggregations differ."""
    head = torch.nn.Linear(2, 2, bias=False)
    head.weight.data = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    probe = Probe("multiclass", head, np.zeros(2, np.float32), np.ones(2, np.float32), np.zeros(1), np.ones(1), 1, 1)
    windows = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 5]] * 2, np.float32)
    chunks = ChunkFeatures(windows, np.repeat([0, 1], 5), 2)
    mean_prediction = probe.predict_chunks(windows[:5]).mean(axis=0)
    first_four = probe.predict_chunks(windows[:4])
    assert np.allclose(PROTOCOLS["mucon"].predict(probe, chunks)[0], mean_prediction)
    assert np.allclose(PROTOCOLS["clmr"].predict(probe, chunks)[0], first_four.mean(axis=0))  # last window dropped
    assert np.allclose(PROTOCOLS["semisupcon"].predict(probe, chunks)[0],
                       probe.predict_chunks(windows[:4].mean(axis=0, keepdims=True))[0])
    assert not np.allclose(first_four.mean(axis=0), probe.predict_chunks(windows[:4].mean(axis=0, keepdims=True))[0])


def test_semisupcon_tests_on_the_first_64_windows_and_clmr_trains_on_one_window_drawn_once():
    chunks = ChunkFeatures(np.arange(70, dtype=np.float32)[:, None], np.zeros(70, np.int64), 1)
    assert PROTOCOLS["semisupcon"].select(chunks, "test", 0).features[:, 0].tolist() == list(range(64))
    drawn = [PROTOCOLS["clmr"].select(chunks, "train", seed).features[:, 0] for seed in range(20)]
    assert all(len(draw) == 1 and draw[0] < 69 for draw in drawn)  # never the last, padded window
    assert len({float(draw[0]) for draw in drawn}) > 5
    assert PROTOCOLS["clmr"].select(chunks, "train", 3).features.tolist() == drawn[3].reshape(1, 1).tolist()


def test_one_chunk_per_epoch_trains_each_epoch_on_one_chunk_of_every_track(monkeypatch):
    from mucon.evaluation import probes

    draws = []
    original = probes._epoch_chunks

    def recording(chunks, sampling, rng):
        rows = original(chunks, sampling, rng)
        draws.append(chunks.track[rows].tolist())
        return rows

    monkeypatch.setattr(probes, "_epoch_chunks", recording)
    rng = np.random.default_rng(0)
    train = ChunkFeatures(rng.normal(size=(30, 4)), np.repeat(np.arange(10), 3), 10)
    valid = ChunkFeatures(rng.normal(size=(9, 4)), np.repeat(np.arange(3), 3), 3)
    probes.fit_probe("multiclass", train, np.arange(10) % 2, valid, np.arange(3) % 2, 2, seed=0, max_epochs=3,
                     patience=10, sampling="one-chunk-per-epoch")
    assert draws[0::2] == [list(range(10))] * 3  # train: each epoch one chunk of every track
    assert draws[1::2] == [list(range(3))] * 3  # valid likewise


def test_an_unknown_protocol_is_one_line_on_stderr_and_exit_status_two(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "last.ckpt"), "--tasks", "unused",
                 "--out", str(tmp_path / "out"), "--protocol", "hear"]) == 2
    assert capsys.readouterr().err == ("mucon evaluate: unknown protocol 'hear'; choose from mucon, semisupcon, "
                                       "clmr, marble\n")


def test_a_head_the_protocol_lacks_is_refused_before_anything_is_embedded(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "cached_embed_jobs", lambda *args, **kwargs: pytest.fail("embedded"))
    root = folders.write_gtzan(tmp_path / "gtzan")
    with pytest.raises(ValueError, match="protocol marble has the heads \\['mlp', 'linear', 'knn'\\], not 'svm'"):
        evaluate({"mfcc": HandcraftedFeatures(16000, WINDOW)}, ["gtzan-genre"], tmp_path / "out", heads=["svm"],
                 protocol="marble", data_roots=[root], verbose=False)


def test_an_unknown_head_on_the_command_line_is_one_line_naming_the_heads_and_exit_status_two(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "last.ckpt"), "--tasks", "unused",
                 "--out", str(tmp_path / "out"), "--heads", "linear", "svm"]) == 2
    assert capsys.readouterr().err == "mucon evaluate: protocol mucon has the heads ['linear', 'mlp', 'knn'], not 'svm'\n"
