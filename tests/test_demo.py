"""`mucon demo` end to end on the small corpus: corpus, store, pretraining, evaluation, one table."""

import json

from mucon.demo import DEMO_CORRUPTIONS, demo_presets, run_demo


def test_every_method_with_a_cpu_preset_joins_the_demo():
    assert "clmr-cpu" in demo_presets()


def test_demo_runs_the_whole_loop_and_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUCON_CACHE", str(tmp_path / "cache"))
    results = run_demo(tmp_path / "demo", corpus_size="small", budget_minutes=1.0, robustness_severities=(2.0,),
                       overrides=["data.batch_size=4", "data.num_workers=0", "trainer.max_steps=2",
                                  "trainer.log_every_n_steps=1"], progress=False)
    assert list(results["models"])[0] == "clmr-cpu"
    assert {"small_cnn random-init", "mfcc-chroma"} <= set(results["models"])
    assert {"key", "composer", "cover-retrieval"} <= set(results["tasks"])
    tested = set(results["robustness"]["clmr-cpu"]["composer"])  # only the demo's named conditions
    assert "training-chain" in tested and tested <= set(DEMO_CORRUPTIONS)
    report = tmp_path / "demo" / "report"
    assert json.loads((report / "results.json").read_text())["models"] == results["models"]
    assert (report / "figures" / "training-curves.png").is_file()
    printed = capsys.readouterr().out
    assert "task" in printed and "clmr-cpu" in printed and "total" in printed
    assert (tmp_path / "demo" / "runs" / "clmr-cpu" / "checkpoints" / "last.ckpt").is_file()
