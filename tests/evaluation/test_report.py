import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import mucon
from mucon.config import load_config
from mucon.encoders import build_encoder
from mucon.evaluation import evaluate
from mucon.evaluation.report import summary_table
from mucon.evaluation.tasks import Task
from mucon.methods import method_class

from conftest import CONFIGS

RATE = 16000


def tone_tasks(root):
    """A register task (low/high tones) and a retrieval task (pairs of tones an octave apart), one folder."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    t = np.arange(RATE // 2) / RATE
    paths, splits, registers, pairs = [], [], [], []
    for i in range(20):
        f0 = (880 if i % 2 else 110) * rng.uniform(1.0, 1.5) * (2 if i % 4 >= 2 else 1)
        sf.write(root / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), RATE)
        paths.append(f"t{i}.wav")
        splits.append(["train", "train", "valid", "test", "train"][(i // 2) % 5])
        registers.append("high" if i % 2 else "low")
        pairs.append(f"g{i // 4}{i % 2}")
    (root / "broken.wav").write_bytes(b"not audio")
    register = Task("register", "multiclass", root, (*paths, "broken.wav"), (*splits, "test"), (*registers, "low"))
    octave_pairs = Task("octaves", "retrieval", root, tuple(paths), tuple(splits), tuple(pairs), retrieval_split="all")
    return [register, octave_pairs]


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint in a run folder with a Lightning-style CSV log, as `mucon pretrain` leaves it."""
    config = load_config(CONFIGS / "clmr-cpu.yaml", ["encoder.params.input_samples=8000"])
    with torch.random.fork_rng():
        torch.manual_seed(1)
        method = method_class(config.method_name)(config)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "logs").mkdir()
    path = run_dir / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": method.state_dict(),
                "mucon": {"version": mucon.__version__, "config": config.to_dict(), "label_vocabulary": []}}, path)
    with open(run_dir / "logs" / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "train/loss"])
        writer.writerows([[0, step, 4.0 / (1 + step)] for step in range(0, 50, 5)])
    return path


def test_evaluate_writes_json_markdown_and_figures_with_a_row_per_model_and_baseline(tmp_path, checkpoint, capsys):
    with torch.random.fork_rng():
        torch.manual_seed(2)
        encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)
    tasks = tone_tasks(tmp_path / "audio")
    results = evaluate(
        {"clmr": checkpoint, "scratch": encoder}, tasks, tmp_path / "report",
        robustness=True, seed=0, heads=("linear",), corruptions=["reverse", "bitcrush"], severities=[2.0],
    )
    out = tmp_path / "report"
    expected_rows = ["clmr", "scratch", "small_cnn random-init", "mfcc-chroma"]
    assert list(results["models"]) == expected_rows

    stored = json.loads((out / "results.json").read_text())
    assert stored["scores"]["clmr"]["register"]["linear"].keys() == {"accuracy", "macro_f1"}
    assert stored["scores"]["mfcc-chroma"]["octaves"]["cosine"]["queries"] == 20
    assert stored["tasks"]["register"]["failed"] == {"broken.wav": "not audio"}
    assert stored["robustness"]["clmr"]["register"].keys() == {"reverse", "bitcrush"}
    assert stored["robustness"]["scratch"]["register"]["bitcrush"].keys() == {"0", "2"}
    assert "small_cnn random-init" not in stored["robustness"]  # robustness is for the models given

    header, rows = summary_table(stored)
    assert header == ["task", "metric", *expected_rows]
    assert [row[:2] for row in rows] == [["register", "accuracy"], ["register", "macro_f1"], ["octaves", "map"],
                                         ["octaves", "precision_at_10"], ["octaves", "mean_rank_first_hit"]]
    markdown = (out / "results.md").read_text()
    assert "| task | metric | " + " | ".join(expected_rows) + " |" in markdown
    for row in expected_rows:
        assert f"| {row} |" in markdown  # the per-task tables keep a row per model
    printed = capsys.readouterr()
    assert all(word in printed.out for row in expected_rows for word in row.split())  # long names wrap
    assert "broken.wav" in printed.err and "broken.wav" in stored["warnings"][0]
    assert stored["tasks"]["register"]["tracks"] == {"train": 12, "valid": 4, "test": 4}  # broken.wav not scored

    for model, per_task in stored["scores"].items():  # every figure has an interval, except counts
        for task, per_head in per_task.items():
            for head, metrics in per_head.items():
                bounds = stored["intervals"][model][task][head]
                assert bounds.keys() == metrics.keys() - {"queries"}
                assert all(low <= high for low, high in bounds.values())
    assert stored["settings"]["bootstrap"] == {"resamples": 1000, "confidence": 0.95, "paired": True}
    against = stored["comparisons"]["clmr"]["register"]["linear"]["accuracy"]
    assert {role: other["model"] for role, other in against.items()} == {
        "random-init": "small_cnn random-init", "baseline": "mfcc-chroma"}
    assert stored["comparisons"]["scratch"]["octaves"]["cosine"]["map"].keys() == {"baseline"}  # no twin
    assert stored["comparisons"].keys() == {"clmr", "scratch"}
    bands = stored["robustness_intervals"]["clmr"]["register"]
    assert {name: curve.keys() for name, curve in bands.items()} == {
        name: curve.keys() for name, curve in stored["robustness"]["clmr"]["register"].items()}

    figures = {path.split("/")[-1] for path in stored["figures"]}
    assert figures == {"map-register.png", "map-octaves.png", "confusion-register.png", "robustness-register.png",
                       "training-curves.png"}
    for figure in stored["figures"]:
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_evaluation_reuses_the_cached_embeddings(tmp_path, monkeypatch):
    tasks = tone_tasks(tmp_path / "audio")[:1]
    encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)
    first = evaluate({"scratch": encoder}, tasks, tmp_path / "a", robustness=False, heads=("linear",),
                     baselines=False, cache_dir=tmp_path / "cache", verbose=False)

    from mucon.evaluation import embed

    monkeypatch.setattr(embed, "embed_files", lambda *a, **k: pytest.fail("embedded again"))
    second = evaluate({"scratch": encoder}, tasks, tmp_path / "b", robustness=False, heads=("linear",),
                      baselines=False, cache_dir=tmp_path / "cache", verbose=False)
    assert second["scores"] == first["scores"]
