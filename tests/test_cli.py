"""The `mucon` command end to end, as a user types it."""

import csv

import numpy as np
import pytest

from mucon.cli import main

from conftest import write_tone_folder


def test_embed_gives_every_good_file_an_embedding_and_reports_the_bad_one(tmp_path, clmr_checkpoint, capsys):
    audio = write_tone_folder(tmp_path / "audio", 4, 16000, 2.0)
    (audio / "broken.wav").write_text("not audio at all")
    out = tmp_path / "out"
    assert main(["embed", str(audio), "--checkpoint", str(clmr_checkpoint), "--out", str(out), "--quiet"]) == 0
    assert "embedded 4 files" in capsys.readouterr().out
    embeddings = np.load(tmp_path / "out" / "embeddings.npy")
    with open(tmp_path / "out" / "index.csv") as handle:
        names = [row["path"] for row in csv.DictReader(handle)]
    with open(tmp_path / "out" / "failed.csv") as handle:
        failed = [row["path"] for row in csv.DictReader(handle)]
    assert sorted(names) == [f"tone{i:03d}.wav" for i in range(4)]
    assert embeddings.shape[0] == 4 and np.isfinite(embeddings).all()
    assert [name.rsplit("/", 1)[-1] for name in failed] == ["broken.wav"]


def test_pretrain_accepts_a_preset_name_and_overrides_after_options(tmp_path, tone_store, capsys):
    code = main(["pretrain", "--config", "clmr-cpu", "--store", str(tone_store), "--run-dir", str(tmp_path / "run"),
                 "trainer.max_steps=1", "data.batch_size=4", "data.num_workers=0", "trainer.progress_bar=false"])
    assert code == 0
    assert "last.ckpt" in capsys.readouterr().out


def test_an_unknown_preset_is_a_one_line_error_listing_the_shipped_ones(capsys):
    assert main(["pretrain", "--config", "no-such-preset"]) == 2
    error = capsys.readouterr().err
    assert "no-such-preset" in error and "clmr-cpu" in error and "Traceback" not in error


def test_embed_refuses_an_out_folder_holding_earlier_results_unless_told_to_overwrite(tmp_path, clmr_checkpoint,
                                                                                    capsys):
    audio = write_tone_folder(tmp_path / "audio", 2, 16000, 2.0)
    embed = ["embed", str(audio), "--checkpoint", str(clmr_checkpoint), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(embed) == 0
    earlier = {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()}
    (tmp_path / "empty").mkdir()
    assert main(["embed", str(tmp_path / "empty"), *embed[2:]]) == 2  # it would embed 0 files over them
    error = capsys.readouterr().err
    assert error.startswith(f"mucon embed: {tmp_path / 'out'} already holds embeddings") and "--overwrite" in error
    assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == earlier
    (tmp_path / "audio" / "tone001.wav").unlink()
    assert main([*embed, "--overwrite"]) == 0
    assert np.load(tmp_path / "out" / "embeddings.npy").shape[0] == 1


def test_evaluate_names_checkpoints_of_same_named_run_folders_apart(tmp_path, monkeypatch):
    import mucon.evaluation

    given = {}
    monkeypatch.setattr(mucon.evaluation, "evaluate",
                        lambda models, *args, **kwargs: given.update(models) or {"failed_models": {}})
    paths = [tmp_path / group / "run" / "checkpoints" / "last.ckpt" for group in ("a", "b")]
    paths.append(tmp_path / "other" / "single.ckpt")
    paths.append(tmp_path / "a" / "run" / "checkpoints" / "step-100.ckpt")
    argv = ["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out")]
    assert main([*argv, *(item for path in paths for item in ("--checkpoint", str(path)))]) == 0
    assert given == {"a/run": str(paths[0]), "b/run": str(paths[1]), "single": str(paths[2]),
                     "run@step-100": str(paths[3])}


def test_evaluate_model_takes_checkpoints_and_hear_modules_and_exits_1_when_some_rows_failed(tmp_path, monkeypatch):
    import mucon.evaluation

    given = {}
    failed = {"failed_models": {"broken.model": "broken.model: ImportError: no"}}
    monkeypatch.setattr(mucon.evaluation, "evaluate", lambda models, *args, **kwargs: given.update(models) or failed)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    argv = ["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out"), "--model", str(checkpoint),
            "--model", "hear:lab.encoder:weights.pt", "--model", "hear:broken.model"]
    assert main(argv) == 1
    assert given == {"run": str(checkpoint), "lab.encoder": "hear:lab.encoder:weights.pt",
                     "broken.model": "hear:broken.model"}


def test_evaluate_names_one_hear_module_with_two_weights_files_apart(tmp_path, monkeypatch):
    import mucon.evaluation

    given = {}
    monkeypatch.setattr(mucon.evaluation, "evaluate",
                        lambda models, *args, **kwargs: given.update(models) or {"failed_models": {}})
    argv = ["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out"),
            "--model", "hear:lab.encoder:w/small.pt", "--model", "hear:lab.encoder:w/large.pt"]
    assert main(argv) == 0
    assert given == {"lab.encoder:small": "hear:lab.encoder:w/small.pt",
                     "lab.encoder:large": "hear:lab.encoder:w/large.pt"}


def test_evaluate_names_an_exported_model_after_its_file_and_two_files_of_one_name_by_their_paths(tmp_path,
                                                                                                   monkeypatch):
    import mucon.evaluation

    given = {}
    monkeypatch.setattr(mucon.evaluation, "evaluate",
                        lambda models, *args, **kwargs: given.update(models) or {"failed_models": {}})
    argv = ["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out"), "--model", "onnx:ship/clmr.onnx",
            "--model", "onnx:a/pemr.onnx", "--model", "onnx:b/pemr.onnx", "--model", "pt2:ship/clmr.pt2"]
    assert main(argv) == 0
    assert given == {"clmr.onnx": "onnx:ship/clmr.onnx", "a/pemr.onnx": "onnx:a/pemr.onnx",
                     "b/pemr.onnx": "onnx:b/pemr.onnx", "clmr.pt2": "pt2:ship/clmr.pt2"}


def test_evaluate_without_a_checkpoint_or_model_is_one_line_and_exit_status_two(tmp_path, capsys):
    assert main(["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "mucon evaluate: give at least one --checkpoint or --model\n"


def test_evaluate_refuses_one_checkpoint_given_twice(tmp_path, capsys):
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main(["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out"),
                 "--checkpoint", str(path), "--checkpoint", str(path)]) == 2
    assert capsys.readouterr().err == f"mucon evaluate: {path}: given twice as --checkpoint\n"


def test_evaluate_refuses_a_severity_no_corruption_is_tested_at_in_one_line(tmp_path, capsys):
    assert main(["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out"), "--checkpoint", "unused.ckpt",
                 "--severities", "-5"]) == 2
    assert capsys.readouterr().err == ("mucon evaluate: severity -5: the corruptions are tested at 0.5, 1, 1.5, 2 "
                                       "only (severity 0, the clean test set, is always scored)\n")


def test_evaluate_accepts_only_the_precisions_it_can_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--tasks", "unused", "--out", str(tmp_path / "out"), "--checkpoint", "unused.ckpt",
              "--precision", "17"])
    assert stop.value.code == 2
    [error] = capsys.readouterr().err.splitlines()  # one line, no usage block above it
    assert error.startswith("mucon evaluate: argument --precision: invalid choice: '17'")
    assert all(choice in error for choice in ("auto", "32-true", "bf16-mixed"))
    from mucon.evaluation import evaluate

    with pytest.raises(ValueError, match="precision '17' is not one of auto, 32-true, bf16-mixed"):
        evaluate({"unused": "unused.ckpt"}, ["unused"], tmp_path / "out", precision="17")


def test_embed_with_an_exported_onnx_file_or_program_writes_the_checkpoints_embeddings(tmp_path, clmr_checkpoint,
                                                                                      capsys):
    audio = write_tone_folder(tmp_path / "audio", 3, 16000, 2.0)
    onnx_path, program_path = tmp_path / "clmr.onnx", tmp_path / "clmr.pt2"
    assert main(["export", str(clmr_checkpoint), "--onnx", str(onnx_path), "--torch", str(program_path)]) == 0
    common = ["--precision", "32-true", "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(["embed", str(audio), "--checkpoint", str(clmr_checkpoint), "--out", str(tmp_path / "eager"),
                 *common]) == 0
    eager = np.load(tmp_path / "eager" / "embeddings.npy")
    for source in (f"onnx:{onnx_path}", f"pt2:{program_path}"):
        out = tmp_path / source.split(":")[0]
        assert main(["embed", str(audio), "--model", source, "--out", str(out), *common]) == 0
        exported = np.load(out / "embeddings.npy")
        difference = np.abs(exported - eager).max() / np.abs(eager).max()
        print(f"{source}: largest embedding difference {difference:.2e} (tolerance 1e-4)")
        assert eager.shape == exported.shape == (3, 128) and difference <= 1e-4


def test_a_missing_onnx_model_is_a_one_line_error(tmp_path, capsys):
    audio = write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    missing = tmp_path / "missing.onnx"
    assert main(["embed", str(audio), "--model", f"onnx:{missing}", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{missing}: no such ONNX file" in error and "Traceback" not in error


@pytest.mark.parametrize("argv", [["--methods", "clmr-cpu", "trainer.precision=32-true", "--seed", "3"],
                                  ["--seed", "3", "--methods", "clmr-cpu", "--", "trainer.precision=32-true"],
                                  ["trainer.precision=32-true", "--methods", "clmr-cpu", "--seed", "3"]])
def test_demo_passes_settings_to_every_preset_wherever_they_stand(tmp_path, monkeypatch, argv):
    calls = []
    monkeypatch.setattr("mucon.demo.run_demo", lambda out, **options: calls.append(options))
    assert main(["demo", "--out", str(tmp_path), *argv]) == 0
    (options,) = calls
    assert options["presets"] == ["clmr-cpu"] and options["overrides"] == ["trainer.precision=32-true"]
    assert options["seed"] == 3
