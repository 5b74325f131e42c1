"""`mucon demo` end to end on the small corpus: corpus, store, pretraining, evaluation, one table."""

import json

import pytest

from mucon.demo import demo_presets, run_demo
from mucon.evaluation.robustness import CORRUPTION_PRESETS


def test_every_cpu_preset_of_a_registered_method_joins_the_demo_clmr_first():
    """Variants such as a source-targeted MSCOL are not method names but join next to their method."""
    assert demo_presets() == ["clmr-cpu", "cola-cpu", "mscol-cpu", "mscol-drums-cpu", "pemr-cpu", "semisupcon-cpu",
                              "myna-cpu"]


def test_demo_runs_the_whole_loop_and_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUCON_CACHE", str(tmp_path / "cache"))
    results = run_demo(tmp_path / "demo", corpus_size="small", budget_minutes=1.0, robustness_severities=(2.0,),
                       overrides=["data.batch_size=4", "data.num_workers=0", "trainer.max_steps=2",
                                  "trainer.log_every_n_steps=1"], progress=False)
    assert list(results["models"])[:7] == demo_presets()
    assert "mfcc-chroma" in results["models"]
    assert any(name.startswith("small_cnn random-init") for name in results["models"])
    assert {"key", "composer", "cover-retrieval"} <= set(results["tasks"])
    tested = set(results["robustness"]["clmr-cpu"]["composer"])  # only the demo's named conditions
    assert "training-chain" in tested and tested <= set(CORRUPTION_PRESETS["quick"][0])
    report = tmp_path / "demo" / "report"
    assert json.loads((report / "results.json").read_text())["models"] == results["models"]
    assert (report / "figures" / "training-curves.png").is_file()
    printed = capsys.readouterr().out
    assert "task" in printed and "total" in printed
    plan = printed[printed.index("plan:"):printed.index("[1/4]")].splitlines()  # before anything is built or trained
    rows = [line.split() for line in plan[2:2 + len(demo_presets())]]
    assert [(row[0], row[1]) for row in rows] == [(preset, "2") for preset in demo_presets()]  # preset, steps
    assert "pretraining: about" in plan[-1] and "--budget-minutes" in plan[-1]
    for preset in demo_presets():
        assert preset in printed
        assert (tmp_path / "demo" / "runs" / preset / "checkpoints" / "last.ckpt").is_file()


def test_the_budget_scales_every_presets_own_steps_and_the_default_trains_a_share_of_them():
    from mucon.demo import DEMO_BUDGET_MINUTES, PRESET_BUDGET_MINUTES, budget_steps

    assert budget_steps(600, PRESET_BUDGET_MINUTES) == 600  # the preset's own steps
    assert budget_steps(600, 2 * PRESET_BUDGET_MINUTES) == 1200
    assert budget_steps(600, DEMO_BUDGET_MINUTES) == round(600 * DEMO_BUDGET_MINUTES / PRESET_BUDGET_MINUTES) < 600
    assert budget_steps(3, 0.01) == 1  # never no step
    with pytest.raises(ValueError, match="--budget-minutes must be positive"):
        budget_steps(600, 0)


def test_the_demo_evaluates_at_the_precision_its_presets_trained_at():
    from mucon.config import load_config
    from mucon.demo import embedding_precision

    float32 = [load_config(preset, ["trainer.precision=32-true"]) for preset in ("clmr-cpu", "cola-cpu")]
    assert embedding_precision(float32) == "32-true"
    mixed = [float32[0], load_config("cola-cpu", ["trainer.precision=bf16-mixed"])]
    assert embedding_precision(mixed) == "auto"
