"""evaluate says what it will cost before it starts, caps a custom task's windows, and tests a short
robustness list unless told otherwise."""

import numpy as np
import pytest
import soundfile as sf
import torch

from mucon.cli import main
from mucon.encoders import build_encoder
from mucon.evaluation import evaluate, load_task, plan
from mucon.evaluation.benchmarks import MAX_CHUNKS as BENCHMARK_CHUNKS
from mucon.evaluation.tasks import MAX_CHUNKS

RATE = 16000
WINDOW = RATE // 4  # 0.25 s windows: a 20 s file holds 80 of them, a 1 s file 4


class StoppedBeforeEmbedding(Exception):
    pass


@pytest.fixture
def task_header(tmp_path):
    """Four files (one 20 s long) and a genre task over them, its header naming no window cap."""
    audio = tmp_path / "audio"
    audio.mkdir()
    lines = ["path,split,genre"]
    for i, seconds in enumerate((20.0, 1.0, 1.0, 1.0)):
        t = np.arange(int(seconds * RATE)) / RATE
        sf.write(audio / f"{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32), RATE)
        lines.append(f"{i}.wav,{'train' if i < 2 else 'test'},{'low' if i % 2 else 'high'}")
    (tmp_path / "genre.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "genre.yaml").write_text("name: genre\ntype: multiclass\nlabel: genre\naudio_root: audio\n")
    return tmp_path / "genre.yaml"


@pytest.fixture
def stop_before_embedding(monkeypatch):
    def stop(*args, **kwargs):
        raise StoppedBeforeEmbedding

    monkeypatch.setattr(plan, "cached_embed_jobs", stop)


def test_evaluate_prints_models_tasks_files_windows_conditions_and_minutes_before_embedding(
        task_header, stop_before_embedding, tmp_path, capsys):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=WINDOW).eval()
    with pytest.raises(StoppedBeforeEmbedding):
        evaluate({"tiny": encoder}, [task_header], tmp_path / "out", baselines=False, progress=False)
    plan = capsys.readouterr().out
    assert plan.startswith("plan: 1 model(s): tiny (encoder)")
    assert "task genre (multiclass): train 2, test 2 tracks; 2 classes" in plan
    assert "4 files" in plan and f"at most {MAX_CHUNKS} windows per file" in plan
    windows = MAX_CHUNKS + 3 * 4  # the long file capped, three of 4 windows
    corrupted = 6 * 2 * 4  # quick: 6 conditions of the two 1 s test files
    assert f"tiny: {windows} windows + {corrupted} under 6 conditions" in plan
    assert "robustness: 6 condition(s)" in plan and " min " in plan


def test_a_custom_task_caps_its_windows_per_track_as_the_benchmark_tasks_do(task_header):
    assert load_task(task_header).max_chunks == MAX_CHUNKS == BENCHMARK_CHUNKS == 64


@pytest.mark.parametrize(("choice", "conditions"), [([], 6), (["--corruptions", "full"], 43)])
def test_evaluate_tests_the_quick_robustness_list_unless_told_full(choice, conditions, task_header, clmr_checkpoint,
                                                                   stop_before_embedding, tmp_path, capsys):
    with pytest.raises(StoppedBeforeEmbedding):
        main(["evaluate", "--checkpoint", str(clmr_checkpoint), "--tasks", str(task_header), "--out",
              str(tmp_path / "out"), "--no-baselines", "--quiet", *choice])
    plan = capsys.readouterr().out
    assert f"robustness: {conditions} condition(s)" in plan
    if not choice:
        assert "(mp3@1, mp3@2, reverb@1, reverb@2, training-chain@1, training-chain@2)" in plan
