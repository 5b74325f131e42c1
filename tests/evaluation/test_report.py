import csv
import dataclasses
import hashlib
import json
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

import mucon
from mucon.config import load_config
from mucon.encoders import build_encoder
from mucon.export import export_checkpoint, file_sha256
from mucon.evaluation import evaluate, plots
from mucon.evaluation.hear_models import load_hear_encoder
from mucon.evaluation.exported_models import load_exported_encoder
from mucon.evaluation.report import markdown_report, summary_table, summary_text, text_table, write_report
from mucon.evaluation.tasks import Task, task_from_table
from mucon.methods import method_class

from conftest import CONFIGS

RATE = 16000


def tone_tasks(root):
    """A register task (low/high tones; one test file is not audio, one is missing) and a retrieval task
    (pairs of tones an octave apart), one folder."""
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
    register = Task("register", "multiclass", root, (*paths, "broken.wav", "missing.wav"), (*splits, "test", "test"),
                    (*registers, "low", "low"))
    octave_pairs = Task("octaves", "retrieval", root, tuple(paths), tuple(splits), tuple(pairs), retrieval_split="all")
    return [register, octave_pairs]


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint in a run folder with a Lightning-style CSV log, as `mucon pretrain` leaves it."""
    return untrained_checkpoint(tmp_path, "clmr-cpu")


def untrained_checkpoint(tmp_path, preset: str):
    """A checkpoint of ``preset`` at 8000 samples with seeded random weights, in a run folder with a CSV log."""
    config = load_config(CONFIGS / f"{preset}.yaml", ["encoder.params.input_samples=8000"])
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
    assert stored["tasks"]["register"]["failed"] == {"broken.wav": "not audio", "missing.wav": "unreadable"}
    assert stored["robustness"]["clmr"]["register"].keys() == {"reverse", "bitcrush"}
    assert stored["robustness"]["scratch"]["register"]["bitcrush"].keys() == {"0", "2"}
    assert stored["robustness"].keys() == set(expected_rows)  # the baselines' curves too, to compare with
    assert stored["robustness_exposure"]["scratch"] == {"reverse": "unknown", "bitcrush": "unknown"}  # no chain
    assert stored["robustness_exposure"]["clmr"] == {"reverse": "unseen", "bitcrush": "unseen"}

    header, rows = summary_table(stored)
    assert header == ["task", "metric", *expected_rows, "chance"]
    assert [row[:2] for row in rows] == [["register", "accuracy"], ["register", "macro_f1"], ["octaves", "map"],
                                         ["octaves", "precision_at_10"], ["octaves", "mean_rank_first_hit"]]
    markdown = (out / "results.md").read_text()
    assert "| task | metric | " + " | ".join(expected_rows) + " |" in markdown
    for row in [*expected_rows, "chance"]:
        assert f"| {row} |" in markdown  # the per-task tables keep a row per model, and the chance row
    printed = capsys.readouterr()
    assert all(word in printed.out for row in expected_rows for word in row.split())  # long names wrap
    assert "broken.wav (not audio), missing.wav (unreadable)" in printed.err
    assert "2 file(s) could not be decoded" in stored["warnings"][0]
    assert stored["tasks"]["register"]["tracks"] == {"train": 12, "valid": 4, "test": 4}  # only what was scored
    # the 4 scored test tones are 2 low, 2 high: the majority class (the first, "high") is right on half
    assert stored["chance"]["register"] == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3)}
    assert stored["chance"]["octaves"]["queries"] == 20  # 10 pairs: each query has 1 hit among 19 others
    assert stored["chance"]["octaves"]["mean_rank_first_hit"] == pytest.approx(10.0)

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


def test_checkpoints_of_one_run_at_several_steps_draw_the_probe_score_against_steps(tmp_path, checkpoint):
    early = tmp_path / "run" / "checkpoints" / "step-10.ckpt"
    for path, step in ((early, 10), (checkpoint, 50)):
        stored = torch.load(checkpoint, weights_only=True)
        torch.save({**stored, "global_step": step}, path)
    results = evaluate({"clmr@10": early, "clmr": checkpoint}, tone_tasks(tmp_path / "audio"), tmp_path / "report",
                       robustness=False, heads=("linear",))
    assert [(results["models"][name]["run"], results["models"][name]["step"]) for name in ("clmr@10", "clmr")] == \
        [("clmr-cpu", 10), ("clmr-cpu", 50)]
    assert "figures/score-against-steps.png" in results["figures"]
    assert (tmp_path / "report" / "figures" / "score-against-steps.png").stat().st_size > 10_000


def test_a_second_evaluation_reuses_the_cached_embeddings(tmp_path, monkeypatch):
    tasks = tone_tasks(tmp_path / "audio")[:1]
    encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)
    first = evaluate({"scratch": encoder}, tasks, tmp_path / "a", robustness=False, heads=("linear",),
                     baselines=False, cache_dir=tmp_path / "cache", verbose=False)

    from mucon.evaluation import embedding_cache

    monkeypatch.setattr(embedding_cache, "embed_jobs", lambda *a, **k: pytest.fail("embedded again"))
    second = evaluate({"scratch": encoder}, tasks, tmp_path / "b", robustness=False, heads=("linear",),
                      baselines=False, cache_dir=tmp_path / "cache", verbose=False)
    assert second["scores"] == first["scores"]


def test_the_knn_head_is_scored_with_intervals_and_robustness_curves_beside_the_linear_one(tmp_path):
    tasks = tone_tasks(tmp_path / "audio")[:1]
    encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)
    results = evaluate({"scratch": encoder}, tasks, tmp_path / "report", heads=("knn", "linear"), baselines=False,
                       corruptions=["reverb"], severities=[1.0], verbose=False)
    scores = results["scores"]["scratch"]["register"]
    assert set(scores) == {"knn", "linear"}
    low, high = results["intervals"]["scratch"]["register"]["knn"]["accuracy"]
    assert low <= scores["knn"]["accuracy"] <= high
    assert "knn probe" in (tmp_path / "report" / "results.md").read_text()  # the first head is the report's
    assert results["robustness"]["scratch"]["register"]["reverb"].keys() == {"0", "1"}


def test_every_model_is_scored_on_the_same_resamples_of_each_task(tmp_path, monkeypatch):
    from mucon.evaluation import run, scoring

    seen = {}
    resampled = scoring.TaskBootstrap.resampled

    def spy(self, task, outcome):
        seen.setdefault(task.name, []).append(self.counts(outcome.rows))
        return resampled(self, task, outcome)

    monkeypatch.setattr(scoring.TaskBootstrap, "resampled", spy)
    monkeypatch.setattr(run, "draw_figures", lambda *args: [])  # not what is tested here, and slow
    tasks = tone_tasks(tmp_path / "audio")
    encoders = {name: build_encoder("small_cnn", sample_rate=RATE, input_samples=8000) for name in ("a", "b")}
    evaluate(encoders, tasks, tmp_path / "report", robustness=False, heads=("linear",), verbose=False)
    assert seen.keys() == {"register", "octaves"}
    for task, counts in seen.items():
        assert len(counts) == 3  # a, b and mfcc-chroma
        assert counts[0].shape == (1000, 4 if task == "register" else 20)
        for other in counts[1:]:
            np.testing.assert_array_equal(other, counts[0])
    assert not np.array_equal(seen["register"][0], seen["octaves"][0][:, :4])  # tasks resample independently


def test_a_train_split_with_one_class_is_a_printed_and_reported_warning(tmp_path, capsys):
    register = tone_tasks(tmp_path / "audio")[0]
    one_class = dataclasses.replace(register, name="one-class", labels=tuple(
        "low" if split == "train" else label for split, label in zip(register.splits, register.labels)))
    encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)
    results = evaluate({"scratch": encoder}, [one_class], tmp_path / "report", robustness=False, heads=("linear",),
                       baselines=False, verbose=False)
    assert any("one-class" in warning and "one class" in warning for warning in results["warnings"])
    assert "train split holds one class" in capsys.readouterr().err
    assert "train split holds one class" in (tmp_path / "report" / "results.md").read_text()


def test_test_and_valid_rows_whose_file_is_in_train_are_a_warning_counted_in_results_json(tmp_path, capsys,
                                                                                          monkeypatch):
    from mucon.evaluation import run

    monkeypatch.setattr(run, "draw_figures", lambda *args: [])  # not what is tested here, and slow
    register = tone_tasks(tmp_path / "audio")[0]
    train = [path for path, split in zip(register.paths, register.splits) if split == "train"]
    (tmp_path / "audio" / "linked.wav").symlink_to(tmp_path / "audio" / train[1])
    leaky = dataclasses.replace(register, name="leaky", paths=(*register.paths, f"./{train[0]}", "linked.wav"),
                                splits=(*register.splits, "test", "valid"), labels=(*register.labels, "low", "low"))
    encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)
    results = evaluate({"scratch": encoder}, [register, leaky], tmp_path / "report", robustness=False,
                       heads=("linear",), baselines=False, verbose=False)
    expected = ("leaky: 2 row(s) (1 valid, 1 test) are files of its train split too: the probes are scored on "
                "items they were trained on, so its scores are inflated (leakage)")
    assert [warning for warning in results["warnings"] if "train split too" in warning] == [expected]
    assert expected in capsys.readouterr().err
    stored = json.loads((tmp_path / "report" / "results.json").read_text())
    assert stored["tasks"]["leaky"]["also_in_train"] == {"valid": 1, "test": 1}
    assert stored["tasks"]["register"]["also_in_train"] == {"valid": 0, "test": 0}


def test_a_probe_scored_on_the_labels_a_model_was_pretrained_on_is_said_to_be_a_seen_task(tmp_path, checkpoint):
    register = tone_tasks(tmp_path / "audio")[0]
    table = tmp_path / "audio" / "table.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "split", "register"), *zip(register.paths, register.splits, register.labels)])
    task = task_from_table("register", "multiclass", table, tmp_path / "audio", "register")
    config = load_config(CONFIGS / "semisupcon-cpu.yaml", ["encoder.params.input_samples=8000",
                                                           "method.chunk_samples=8000", "data.label_column=register"])
    semisupervised = tmp_path / "semisupcon.ckpt"
    torch.save({"state_dict": method_class(config.method_name)(config).state_dict(),
                "mucon": {"version": mucon.__version__, "config": config.to_dict(), "label_vocabulary": ["high", "low"]}},
               semisupervised)
    results = evaluate({"clmr": checkpoint, "semisupcon": semisupervised}, [task], tmp_path / "report",
                       robustness=False, heads=("linear",), baselines=False, verbose=False)
    seen = [warning for warning in results["warnings"] if "pretrained on" in warning]
    assert seen == ["register: scored on the column 'register', which semisupcon was pretrained on as positives "
                    "(a seen task for it, not an unseen one)"]
    assert seen[0] in (tmp_path / "report" / "results.md").read_text()


def hand_built_results(differences):
    """Results of one accuracy figure for a checkpoint, its random-init twin and a handcrafted baseline,
    with the comparisons given as {role: better}."""
    comparisons = {role: {"model": name, "difference": 0.1, "interval": [0.0, 0.2], "better": better}
                   for (role, name), better in zip([("random-init", "twin"), ("baseline", "mfcc")], differences)
                   if better is not None}
    return {
        "settings": {"heads": ["linear"], "bootstrap": {"resamples": 1000, "confidence": 0.95}},
        "models": {"ckpt": {}, "twin": {}, "mfcc": {}},
        "tasks": {"genre": {"type": "multiclass"}},
        "scores": {model: {"genre": {"linear": {"accuracy": value}}}
                   for model, value in [("ckpt", 0.612), ("twin", 0.5), ("mfcc", 0.4)]},
        "intervals": {model: {"genre": {"linear": {"accuracy": [value - 0.03, value + 0.05]}}}
                      for model, value in [("ckpt", 0.612), ("twin", 0.5), ("mfcc", 0.4)]},
        "comparisons": {"ckpt": {"genre": {"linear": {"accuracy": comparisons}}}},
    }


@pytest.mark.parametrize("differences, cell", [
    ((1, 1), "0.61 ±0.04 ▲△"),
    ((-1, -1), "0.61 ±0.04 ▼▽"),
    ((0, 1), "0.61 ±0.04  △"),
    ((1, 0), "0.61 ±0.04 ▲"),
    ((0, 0), "0.61 ±0.04"),
    ((None, -1), "0.61 ±0.04  ▽"),
])
def test_a_model_is_marked_where_it_differs_from_its_twin_or_the_best_baseline_beyond_the_interval(differences, cell):
    header, rows = summary_table(hand_built_results(differences))
    assert header == ["task", "metric", "ckpt", "twin", "mfcc"]
    assert rows == [["genre", "accuracy", cell, "0.50 ±0.04", "0.40 ±0.04"]]


def test_an_undefined_interval_is_n_a_in_the_tables_and_null_in_results_json(tmp_path):
    results = hand_built_results((None, None))
    results["intervals"]["ckpt"]["genre"]["linear"]["accuracy"] = [float("nan"), float("nan")]
    results.update(tasks={"genre": {"type": "multiclass", "primary_metric": "accuracy", "tracks": {"test": 3},
                                    "failed": {}}},
                   robustness={"ckpt": {"genre": {"reverse": {"0": 0.612, "1": 0.5}}}},
                   robustness_intervals={"ckpt": {"genre": {"reverse": {"0": [float("nan")] * 2, "1": [0.4, 0.6]}}}},
                   figures=[], models={model: {"kind": "", "source": ""} for model in results["models"]})
    assert summary_table(results)[1][0][2] == "0.61 ±n/a"
    markdown = markdown_report(results)
    assert "| ckpt | 0.612 [n/a] |" in markdown and "| ckpt | reverse |  | 0.61 ±n/a | 0.50 ±0.10 |" in markdown
    write_report(results, tmp_path)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["intervals"]["ckpt"]["genre"]["linear"]["accuracy"] == [None, None]


def test_the_printed_table_wraps_long_model_names_and_explains_its_marks():
    results = hand_built_results((1, 0))
    results["models"] = {"ckpt": {}, "small_cnn random-init": {}, "mfcc": {}}
    for table in ("scores", "intervals"):
        results[table]["small_cnn random-init"] = results[table].pop("twin")
    text = summary_text(results)
    lines = text.splitlines()
    assert lines[0].split() == ["task", "metric", "ckpt", "small_cnn", "mfcc"]
    assert lines[1].split() == ["random-init"]
    assert max(len(line) for line in lines[:4]) < 60
    assert "▲ ▼ above / below its random-init twin" in text and "95% bootstrap interval" in text


def test_robustness_plots_draw_each_models_interval_as_a_band(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from mucon.evaluation import plots

    drawn = []
    fill_between = Axes.fill_between
    monkeypatch.setattr(Axes, "fill_between", lambda self, x, low, high, **kw: drawn.append(
        (list(x), list(low), list(high))) or fill_between(self, x, low, high, **kw))
    curves = {"a": {"reverb": {"0": 0.8, "1": 0.7, "2": 0.5}}, "b": {"reverb": {"0": 0.6, "2": 0.55}}}
    bands = {"a": {"reverb": {"0": [0.75, 0.85], "1": [0.6, 0.8], "2": [0.4, 0.6]}},
             "b": {"reverb": {"0": [0.5, 0.7], "2": [0.45, 0.65]}}}
    path = plots.robustness_curves("genre", "accuracy", curves, tmp_path / "robustness.png", bands=bands)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn == [([0.0, 1.0, 2.0], [0.75, 0.6, 0.4], [0.85, 0.8, 0.6]), ([0.0, 2.0], [0.5, 0.45], [0.7, 0.65])]


def test_a_table_wider_than_the_terminal_is_printed_in_blocks_of_models():
    header = ["task", "metric", "model a", "model b", "model c"]
    rows = [["genre", "accuracy", "0.61 ±0.04 ▲△", "0.50 ±0.04", "0.40 ±0.04"]]
    whole = text_table(header, rows)
    assert len(whole.splitlines()) == 3 and "0.40 ±0.04" in whole.splitlines()[2]
    blocks = text_table(header, rows, max_width=45).split("\n\n")
    assert [block.splitlines()[0].split()[2:] for block in blocks] == [["model", "a", "model", "b"], ["model", "c"]]
    assert all(block.splitlines()[-1].startswith("genre  accuracy") for block in blocks)
    assert all(len(line) <= 45 for block in blocks for line in block.splitlines())


def test_the_tables_show_each_tasks_chance_level_beside_the_models():
    results = hand_built_results((0, 0))
    results["chance"] = {"genre": {"accuracy": 0.25}}
    header, rows = summary_table(results)
    assert header == ["task", "metric", "ckpt", "twin", "mfcc", "chance"]
    assert rows == [["genre", "accuracy", "0.61 ±0.04", "0.50 ±0.04", "0.40 ±0.04", "0.25"]]
    assert "chance: the best answer that ignores the audio" in summary_text(results)
    results["tasks"]["genre"].update(primary_metric="accuracy", tracks={"test": 8}, failed={})
    results.update(figures=[], robustness={}, models={model: {"kind": "", "source": ""} for model in results["models"]})
    assert "| chance | 0.250 |" in markdown_report(results)


def test_baselines_get_curves_and_seen_conditions_are_marked_in_tables_and_dashed_in_plots(
        tmp_path, checkpoint, monkeypatch):
    styles = []
    draw = plots.robustness_curves

    def recording(title, metric, curves, path, bands=None, exposure=None):
        from matplotlib.axes import Axes

        plot = Axes.plot

        def plotted(self, *args, **kwargs):
            styles.append((kwargs["label"], kwargs["linestyle"]))
            return plot(self, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(Axes, "plot", plotted)
            return draw(title, metric, curves, path, bands=bands, exposure=exposure)

    monkeypatch.setattr(plots, "robustness_curves", recording)
    register = tone_tasks(tmp_path / "audio")[0]
    results = evaluate({"clmr": checkpoint}, [register], tmp_path / "report", heads=("linear",), verbose=False,
                       resamples=10, corruptions=["reverb", "chorus"], severities=[2.0])
    assert results["robustness"].keys() == {"clmr", "small_cnn random-init", "mfcc-chroma"}
    assert results["robustness_exposure"] == {"clmr": {"reverb": "seen", "chorus": "unseen"},
                                              "small_cnn random-init": {"reverb": "unseen", "chorus": "unseen"},
                                              "mfcc-chroma": {"reverb": "unseen", "chorus": "unseen"}}
    assert "Reverb" in json.loads((tmp_path / "report" / "results.json").read_text())["models"]["clmr"][
        "pretraining_augmentations"]
    markdown = (tmp_path / "report" / "results.md").read_text()
    assert "| clmr | reverb | seen |" in markdown and "| clmr | chorus |  |" in markdown
    assert "| mfcc-chroma | reverb |  |" in markdown
    models = ["clmr", "small_cnn random-init", "mfcc-chroma"]
    assert styles == [*zip(models, ["--", "-", "-"]), *zip(models, ["-", "-", "-"])]  # panels: reverb, chorus


# A HEAR 2021 module evaluated as one more row, and a broken one left out in one line.
MODULE = '''
import torch

__version__ = "0.3"
if "{behaviour}" == "import":
    raise ImportError("needs a library that is not installed")


class Model(torch.nn.Module):
    sample_rate = {rate}
    timestamp_embedding_size = 8
    scene_embedding_size = 8

    def __init__(self):
        super().__init__()
        self.projection = torch.nn.Linear(160, 8)


def load_model(model_file_path=""):
    model = Model()
    model.load_state_dict(torch.load(model_file_path))
    return model


def get_timestamp_embeddings(audio, model):
    frames = audio[:, : audio.shape[1] // 160 * 160].reshape(len(audio), -1, 160)
    embeddings = model.projection(frames).abs()
    if "{behaviour}" == "shape":
        embeddings = embeddings[:, :, :5]
    if "{behaviour}" == "nan":
        embeddings = embeddings * float("nan")
    tones = audio.abs().amax(dim=1).sub(0.3).abs() < 0.05  # the tasks' tones (peak 0.3), not the trial clips
    if "{behaviour}" == "nan_on_tones":
        embeddings = torch.where(tones[:, None, None], float("nan"), embeddings)
    if "{behaviour}" == "oom_on_tones" and tones.any():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    timestamps = (torch.arange(frames.shape[1]) * 160 + 80) * 1000.0 / model.sample_rate
    return embeddings, timestamps.expand(len(audio), -1)


def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(dim=1)
'''


def hear_module(tmp_path, monkeypatch, behaviour="works"):
    """A package ``tinyhear_<behaviour>`` on sys.path with a ``model`` module and its weights file."""
    package = tmp_path / f"tinyhear_{behaviour}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(textwrap.dedent(MODULE.format(behaviour=behaviour, rate=RATE)))
    weights = tmp_path / f"{behaviour}.pt"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save({"projection." + name: value for name, value in torch.nn.Linear(160, 8).state_dict().items()},
                   weights)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"hear:tinyhear_{behaviour}.model:{weights}", weights


def scratch_encoder():
    with torch.random.fork_rng():
        torch.manual_seed(2)
        return build_encoder("small_cnn", sample_rate=RATE, input_samples=8000)


def test_a_hear_module_is_a_row_beside_a_checkpoint_its_twin_and_mfcc_with_intervals_and_robustness(
        tmp_path, monkeypatch, checkpoint):
    source, weights = hear_module(tmp_path, monkeypatch)
    results = evaluate({"clmr": checkpoint, "tiny": source}, tone_tasks(tmp_path / "audio")[:1],
                       tmp_path / "report", heads=("linear",), corruptions=["reverb"], severities=[1.0],
                       verbose=False)
    assert list(results["models"]) == ["clmr", "tiny", "small_cnn random-init", "mfcc-chroma"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert results["models"]["tiny"]["source"] == f"HEAR module tinyhear_works.model 0.3, weights {weights} " \
                                                  f"(sha256 {digest})"
    assert results["models"]["tiny"]["dim"] == 8
    assert results["intervals"]["tiny"]["register"]["linear"].keys() == {"accuracy", "macro_f1"}
    assert results["comparisons"]["tiny"]["register"]["linear"]["accuracy"]["baseline"]["model"] == "mfcc-chroma"
    assert {model: curves["register"].keys() for model, curves in results["robustness"].items()} == {
        model: {"reverb"} for model in results["models"]}
    assert results["failed_models"] == {}


@pytest.mark.parametrize("behaviour, problem", [
    ("import", "tinyhear_import.model: ImportError: needs a library that is not installed"),
    ("shape", "tinyhear_shape.model: get_timestamp_embeddings returned shape (2, 100, 5), expected [2, T, 8]"),
    ("nan", "tinyhear_nan.model: get_timestamp_embeddings returned NaN or Inf"),
    ("nan_on_tones", "tinyhear_nan_on_tones.model: get_timestamp_embeddings returned NaN or Inf"),
    ("oom_on_tones", "tinyhear_oom_on_tones.model: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
])
def test_a_broken_hear_module_is_one_line_and_the_other_rows_are_as_without_it(
        tmp_path, monkeypatch, capsys, behaviour, problem):
    source, _ = hear_module(tmp_path, monkeypatch, behaviour)
    tasks = tone_tasks(tmp_path / "audio")[:1]
    options = {"heads": ("linear",), "robustness": False, "cache_dir": tmp_path / "cache", "verbose": False}
    alone = evaluate({"scratch": scratch_encoder()}, tasks, tmp_path / "alone", **options)
    beside = evaluate({"scratch": scratch_encoder(), "broken": source}, tasks, tmp_path / "beside", **options)
    assert beside["failed_models"] == {"broken": problem}
    assert f"warning: model broken left out: {problem}\n" in capsys.readouterr().err
    assert list(beside["models"]) == ["scratch", "mfcc-chroma"]
    assert beside["scores"] == alone["scores"] and beside["intervals"] == alone["intervals"]


def test_a_hear_module_that_breaks_only_on_the_tasks_audio_passes_its_trial(
        tmp_path, monkeypatch):
    for behaviour in ("nan_on_tones", "oom_on_tones"):  # so the cases above are left out by the embedding
        source, _ = hear_module(tmp_path, monkeypatch, behaviour)
        assert load_hear_encoder(source).dim == 8


EMBEDDING_TOLERANCE = 1e-4  # relative to the largest embedding value: float32 rounding of two runtimes


def test_an_exported_onnx_file_scores_what_its_checkpoint_scores_and_its_row_names_both_hashes(tmp_path, checkpoint):
    onnx_path = tmp_path / "clmr.onnx"
    export_checkpoint(checkpoint, onnx_out=onnx_path)
    exported, eager = load_exported_encoder(f"onnx:{onnx_path}"), mucon.load(checkpoint).encoder.eval()
    windows = 0.3 * torch.randn(3, eager.input_samples, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = eager.embed(windows)
    difference = (exported.embed(windows) - expected).abs().max() / expected.abs().max()
    print(f"largest embedding difference {difference:.2e} (tolerance {EMBEDDING_TOLERANCE})")
    assert difference <= EMBEDDING_TOLERANCE
    assert (exported.sample_rate, exported.input_samples, exported.dim) == (RATE, 8000, eager.dim)
    assert exported(windows).shape[::2] == (3, eager.dim)

    results = evaluate({"clmr": checkpoint, "exported": f"onnx:{onnx_path}"}, tone_tasks(tmp_path / "audio")[:1],
                       tmp_path / "report", heads=("linear",), robustness=False, baselines=False,
                       precision="32-true", verbose=False)
    scores = results["scores"]
    assert scores["exported"]["register"]["linear"] == pytest.approx(scores["clmr"]["register"]["linear"], abs=1e-3)
    assert results["models"]["exported"]["source"] == (
        f"ONNX file {onnx_path} (sha256 {file_sha256(onnx_path)}), exported by mucon {mucon.__version__} "
        f"from checkpoint sha256 {file_sha256(checkpoint)}")


def evaluated_next_to_its_checkpoint(tmp_path, checkpoint, source):
    """evaluate's results for ``checkpoint`` as "eager" and ``source`` (an export of it) as "exported"."""
    return evaluate({"eager": checkpoint, "exported": source}, tone_tasks(tmp_path / "audio")[:1], tmp_path / "report",
                    heads=("linear",), robustness=False, baselines=False, precision="32-true", verbose=False)


def test_a_torch_export_program_scores_what_its_checkpoint_scores_and_its_row_names_both_hashes(tmp_path, checkpoint):
    program_path = tmp_path / "clmr.pt2"
    export_checkpoint(checkpoint, torch_out=program_path)
    exported, eager = load_exported_encoder(f"pt2:{program_path}"), mucon.load(checkpoint).encoder.eval()
    windows = 0.3 * torch.randn(3, eager.input_samples + 500, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = eager.embed(windows)
    assert (exported.embed(windows) - expected).abs().max() <= EMBEDDING_TOLERANCE * expected.abs().max()

    results = evaluated_next_to_its_checkpoint(tmp_path, checkpoint, f"pt2:{program_path}")
    scores = results["scores"]
    assert scores["exported"]["register"]["linear"] == pytest.approx(scores["eager"]["register"]["linear"], abs=1e-3)
    assert results["models"]["exported"]["source"] == (
        f"torch.export program {program_path} (sha256 {file_sha256(program_path)}), exported by mucon "
        f"{mucon.__version__} from checkpoint sha256 {file_sha256(checkpoint)}")


def test_an_exported_cola_encoder_takes_the_tracks_level_and_scores_what_its_checkpoint_scores(tmp_path):
    checkpoint = untrained_checkpoint(tmp_path, "cola-cpu")
    onnx_path = tmp_path / "cola.onnx"
    export_checkpoint(checkpoint, onnx_out=onnx_path)
    exported, eager = load_exported_encoder(f"onnx:{onnx_path}"), mucon.load(checkpoint).encoder.eval()
    assert exported.scales_by_item_level  # so evaluation brings each window its track's level
    windows = 0.3 * torch.randn(3, eager.input_samples, generator=torch.Generator().manual_seed(0))
    track_levels = torch.tensor([0.05, 0.1, 0.2])
    with torch.no_grad():
        at_track_level, own_level = eager.embed(windows, track_levels), eager.embed(windows)
    for found, expected in ((exported.embed(windows, track_levels), at_track_level),
                            (exported.embed(windows), own_level)):
        assert (found - expected).abs().max() <= EMBEDDING_TOLERANCE * expected.abs().max()
    assert (at_track_level - own_level).abs().max() > 100 * EMBEDDING_TOLERANCE * own_level.abs().max()

    scores = evaluated_next_to_its_checkpoint(tmp_path, checkpoint, f"onnx:{onnx_path}")["scores"]
    assert scores["exported"]["register"]["linear"] == pytest.approx(scores["eager"]["register"]["linear"], abs=1e-3)
