import json

import numpy as np
import pytest
import soundfile as sf
import torch

from mucon.encoders import build_encoder
from mucon.evaluation import evaluate, run
from mucon.evaluation.results import Results, Score
from mucon.evaluation.tasks import Task

RATE = 16000


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """results.json of a register task (one test file not audio) and a retrieval task, one encoder and the
    MFCC baseline, with robustness (figures left out: slow, and not what is tested here)."""
    tmp_path = tmp_path_factory.mktemp("evaluation")
    root = tmp_path / "audio"
    root.mkdir()
    t = np.arange(RATE // 2) / RATE
    paths = [f"t{i}.wav" for i in range(12)]
    for i, path in enumerate(paths):
        sf.write(root / path, (0.3 * np.sin(2 * np.pi * (880 if i % 2 else 110) * t)).astype(np.float32), RATE)
    (root / "broken.wav").write_bytes(b"not audio")
    splits = [["train", "train", "valid", "test"][(i // 2) % 4] for i in range(12)]
    registers = ["high" if i % 2 else "low" for i in range(12)]
    tasks = [Task("register", "multiclass", root, (*paths, "broken.wav"), (*splits, "test"), (*registers, "low")),
             Task("pairs", "retrieval", root, tuple(paths), tuple(splits), tuple(f"g{i // 2}" for i in range(12)),
                  retrieval_split="all")]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE // 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "draw_figures", lambda *args: [])
        evaluate({"scratch": encoder}, tasks, tmp_path / "report", heads=("linear",), corruptions=["reverse"],
                 resamples=20, cache_dir=tmp_path / "cache", verbose=False)
    return (tmp_path / "report" / "results.json").read_text()


def test_results_json_reads_back_into_typed_results_and_writes_the_same_json(written):
    stored = json.loads(written)
    results = Results.from_json(stored)

    assert json.dumps(results.to_json(), indent=2, allow_nan=False) == written  # same keys, order and values
    assert results.scores["scratch"]["register"]["linear"]["accuracy"] == Score(
        stored["scores"]["scratch"]["register"]["linear"]["accuracy"],
        tuple(stored["intervals"]["scratch"]["register"]["linear"]["accuracy"]))
    assert results.scores["scratch"]["pairs"]["cosine"]["queries"].interval is None  # a count has no interval
    assert results.models["scratch"].kind == "encoder" and results.tasks["register"].failed == {
        "broken.wav": "not audio"}


def test_results_json_keeps_the_keys_that_report_and_readers_rely_on(written):
    stored = json.loads(written)
    assert list(stored) == ["settings", "models", "tasks", "scores", "intervals", "comparisons", "chance",
                            "robustness", "robustness_intervals", "robustness_exposure", "warnings", "figures",
                            "failed_models"]
    assert list(stored["settings"]) == ["seed", "heads", "protocol", "probing", "protocol_recipe", "robustness",
                                        "corruptions", "severities", "device", "precision", "skipped_corruptions",
                                        "bootstrap"]
    assert list(stored["models"]) == ["scratch", "mfcc-chroma"]
    assert list(stored["models"]["scratch"]) == ["kind", "source", "sample_rate", "window_samples", "dim"]
    assert list(stored["tasks"]["register"]) == ["type", "primary_metric", "audio_root", "tracks", "classes",
                                                 "failed", "also_in_train", "bootstrap", "chunks"]
    assert list(stored["scores"]["scratch"]["register"]["linear"]) == ["accuracy", "macro_f1"]
    assert list(stored["intervals"]["scratch"]["pairs"]["cosine"]) == [
        "map", "mean_rank_first_hit", "precision_at_10", "cosine_same_group", "cosine_other_group"]
    assert list(stored["scores"]["scratch"]["pairs"]["cosine"])[-1] == "queries"
    against = stored["comparisons"]["scratch"]["register"]["linear"]["accuracy"]
    assert list(against) == ["baseline"] and list(against["baseline"]) == ["model", "difference", "interval", "better"]
    assert list(stored["comparisons"]) == ["scratch"]  # baselines are compared against, not compared
    assert stored["robustness"]["scratch"]["register"] == {"reverse": {"0": stored["scores"]["scratch"]["register"][
        "linear"]["accuracy"], "1": stored["robustness"]["scratch"]["register"]["reverse"]["1"]}}
    assert list(stored["robustness_intervals"]["mfcc-chroma"]["register"]["reverse"]) == ["0", "1"]
    assert stored["robustness_exposure"] == {"scratch": {"reverse": "unknown"}, "mfcc-chroma": {"reverse": "unseen"}}
