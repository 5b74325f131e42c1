import csv
import fcntl
import importlib.util
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch

import mucon
from mucon.checkpoint import AtomicCheckpointIO
from mucon.cli import main
from mucon.config import load_config
from mucon.methods import CLMR
from mucon.training import build_trainer, lightning_quieted, pretrain

from conftest import CONFIGS

LAST_CHECKPOINT, METRICS_CSV, LOCK_FILE = "checkpoints/last.ckpt", "logs/metrics.csv", "run.lock"
FAST = ["data.batch_size=4", "data.num_workers=0", "trainer.progress_bar=false", "trainer.log_every_n_steps=1"]


def cpu_config(tmp_path, store, *extra):
    return load_config(CONFIGS / "clmr-cpu.yaml", [f"data.store={store}", f"run_dir={tmp_path / 'run'}", *FAST, *extra])


def logged_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def logged_epochs(run_dir: Path) -> list[tuple[int, int]]:
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return [(int(row["epoch"]), int(row["step"])) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory, tone_store):
    """A finished 2-step run with a checkpoint and a log row at every step; copy it before changing it."""
    config = cpu_config(tmp_path_factory.mktemp("two-steps"), tone_store, "trainer.max_steps=2",
                        "trainer.checkpoint_every_n_steps=1")
    pretrain(config)
    return Path(config.run_dir)


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_every_checkpoint_save_goes_through_the_atomic_writer(tmp_path, tone_store, monkeypatch):
    saved = []
    save = AtomicCheckpointIO.save_checkpoint
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint",
                        lambda self, checkpoint, path, storage_options=None: (saved.append(Path(path).name),
                                                                              save(self, checkpoint, path)))
    pretrain(cpu_config(tmp_path, tone_store, "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=1"))
    assert saved == ["last.ckpt"] * 2  # at the end of steps 1 and 2


def test_a_resumed_run_keeps_the_log_before_its_checkpoint_and_logs_the_redone_steps_once(tmp_path, two_step_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    run_dir = copy_of(two_step_run, tmp_path)
    # as if killed after logging steps 2 and 3 but before checkpointing them: those two are redone
    with open(run_dir / "logs" / "metrics.csv", "a", newline="") as handle:
        csv.writer(handle).writerows([[0, 2, 99.0], [0, 3, 99.0]])  # epoch, step, train/loss
    (original,) = (run_dir / "logs").glob("events.out.tfevents.*")
    with SummaryWriter(tmp_path / "killed") as writer:
        for step in (2, 3):
            writer.add_scalar("train/loss", 99.0, step)
    # TensorBoard reads event files in name order, and names start with the second they were opened
    (fake,) = (tmp_path / "killed").iterdir()
    fake.rename(original.with_name(original.name + "~"))
    while time.time() < int(original.name.split(".")[3]) + 1:
        time.sleep(0.05)
    pretrain(cpu_config(tmp_path, load_config(run_dir / "config.yaml").data.store, "trainer.max_steps=4"), resume=True)

    with open(run_dir / "logs" / "metrics.csv") as handle:
        rows = [(int(row["step"]), float(row["train/loss"])) for row in csv.DictReader(handle)]
    assert [step for step, _ in rows] == [0, 1, 2, 3] and 99.0 not in [loss for _, loss in rows]
    events = EventAccumulator(str(run_dir / "logs"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [0, 1, 2, 3]
    assert 99.0 not in [event.value for event in events.Scalars("train/loss")]


def test_a_resume_that_changes_the_model_is_refused_in_one_line_and_leaves_the_run_resumable(
    tmp_path, two_step_run, capsys
):
    run_dir = copy_of(two_step_run, tmp_path)
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    resume = ["pretrain", "--config", str(run_dir / "config.yaml"), "--run-dir", str(run_dir), "--resume"]
    assert main([*resume, "encoder.params.dim=64", "trainer.max_steps=3"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mucon pretrain: --resume: encoder.params.dim=64 ") and error.count("\n") == 1
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before
    assert main([*resume, "trainer.max_steps=3"]) == 0
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_checkpoint_carries_config_version_and_label_vocabulary(tmp_path, tone_store):
    config = cpu_config(tmp_path, tone_store, "trainer.max_steps=2", "data.label_column=genre")
    checkpoint_path = pretrain(config)
    checkpoint = torch.load(checkpoint_path, weights_only=True)  # loads without executing any code
    assert checkpoint["global_step"] == 2
    assert checkpoint["mucon"]["version"] == mucon.__version__
    assert checkpoint["mucon"]["label_vocabulary"] == ["high", "low"]
    assert checkpoint["mucon"]["config"] == config.to_dict()


def test_the_checkpoints_of_listed_steps_are_kept_next_to_the_last(tmp_path, tone_store):
    last = pretrain(cpu_config(tmp_path, tone_store, "trainer.max_steps=3", "trainer.keep_checkpoints=[1, 2]"))
    for step in (1, 2):
        assert torch.load(last.parent / f"step-{step}.ckpt", weights_only=True)["global_step"] == step
    assert sorted(path.name for path in last.parent.iterdir()) == ["last.ckpt", "step-1.ckpt", "step-2.ckpt"]


def test_saved_config_reruns_the_same_run(tmp_path, tone_store):
    config = cpu_config(tmp_path, tone_store, "trainer.max_steps=1")
    pretrain(config)
    assert load_config(tmp_path / "run" / "config.yaml") == config


def test_same_seed_gives_the_same_weights(tmp_path, tone_store):
    first = pretrain(load_config(CONFIGS / "clmr-cpu.yaml", [f"data.store={tone_store}", f"run_dir={tmp_path / 'a'}", *FAST, "trainer.max_steps=2"]))
    second = pretrain(load_config(CONFIGS / "clmr-cpu.yaml", [f"data.store={tone_store}", f"run_dir={tmp_path / 'b'}", *FAST, "trainer.max_steps=2"]))
    first_state = torch.load(first, weights_only=True)["state_dict"]
    second_state = torch.load(second, weights_only=True)["state_dict"]
    for name, value in first_state.items():
        torch.testing.assert_close(value, second_state[name], msg=name)


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, tone_store):
    config = cpu_config(tmp_path, tone_store, "trainer.max_steps=1")
    pretrain(config)
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(config)


def test_store_at_another_sample_rate_is_a_clear_error(tmp_path, tone_store):
    config = load_config(CONFIGS / "clmr.yaml", [f"data.store={tone_store}", f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match="--sample-rate 22050"):
        pretrain(config)


def test_killed_run_resumes_from_its_checkpoint_and_continues_the_step_count_and_the_log(tmp_path, tone_store):
    """Killed while it saves a checkpoint every step, with $TMPDIR on another filesystem (tmpfs)."""
    run_dir = tmp_path / "run"
    shm = Path("/dev/shm")
    tmpdir = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else tmp_path))
    command = [sys.executable, "-m", "mucon.cli", "pretrain", "--config", str(CONFIGS / "clmr-cpu.yaml"),
               "--store", str(tone_store), "--run-dir", str(run_dir), *FAST,
               "trainer.checkpoint_every_n_steps=1"]
    environment = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([*command, "trainer.max_steps=10000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=environment)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), proc.stderr.read().decode()
    reached = torch.load(last, weights_only=True)["global_step"]
    assert 1 <= reached < 10000
    assert list(tmpdir.iterdir()) == []
    tmpdir.rmdir()

    finished = subprocess.run([*command, "--resume", f"trainer.max_steps={reached + 3}"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert torch.load(last, weights_only=True)["global_step"] == reached + 3
    assert [path.name for path in last.parent.iterdir()] == ["last.ckpt"]  # a killed save's file is gone
    logged = logged_steps(run_dir)
    # every step once; the row of the checkpoint's last step may be lost, if the kill fell between them
    assert logged == sorted(set(logged)) and set(logged) >= set(range(reached + 3)) - {reached - 1}


def test_the_same_command_trains_on_two_cpu_processes_with_ddp(tmp_path, tone_store):
    """devices/strategy from the config reach Lightning: two gloo processes train and checkpoint together."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "mucon.cli", "pretrain", "--config", "clmr-cpu", "--store", str(tone_store),
         "--run-dir", str(run_dir), *FAST, "trainer.max_steps=2", "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.strategy=ddp"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Starting with 2 processes" in result.stderr + result.stdout
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert checkpoint["mucon"]["config"]["trainer"]["devices"] == 2


def assert_resumed_equals_straight(tmp_path: Path, settings: list[str], stopped_at: int, steps: int,
                                   preset: str = "clmr-cpu") -> dict[str, torch.Tensor]:
    """A run of ``preset`` of ``steps`` steps into tmp_path/a, and one stopped at ``stopped_at`` and resumed to
    ``steps`` into tmp_path/b, end with the same weights and buffers, bit for bit; returns that state."""
    straight = pretrain(load_config(CONFIGS / f"{preset}.yaml", [*settings, f"run_dir={tmp_path / 'a'}",
                                                                   f"trainer.max_steps={steps}"]))
    pretrain(load_config(CONFIGS / f"{preset}.yaml", [*settings, f"run_dir={tmp_path / 'b'}",
                                                      f"trainer.max_steps={stopped_at}"]))
    resumed = pretrain(load_config(CONFIGS / f"{preset}.yaml", [*settings, f"run_dir={tmp_path / 'b'}",
                                                                  f"trainer.max_steps={steps}"]), resume=True)
    straight_state = torch.load(straight, weights_only=True)["state_dict"]
    resumed_state = torch.load(resumed, weights_only=True)["state_dict"]
    assert resumed_state.keys() == straight_state.keys()
    for name, value in straight_state.items():
        torch.testing.assert_close(resumed_state[name], value, rtol=0, atol=0, msg=name)
    return resumed_state


def test_a_run_interrupted_at_step_5_and_resumed_to_10_equals_the_straight_10_step_run(tmp_path, tone_store):
    """Mid-epoch (3 batches an epoch here): data order, crops, views, optimiser and the log's epoch column
    continue exactly (the finished 5-step run's checkpoint once counted its cut epoch as done)."""
    assert_resumed_equals_straight(tmp_path, [f"data.store={tone_store}", *FAST, "data.num_workers=1"], 5, 10)
    assert logged_epochs(tmp_path / "b") == logged_epochs(tmp_path / "a") == [(step // 3, step) for step in range(10)]


def test_a_run_with_gradient_accumulation_resumed_mid_epoch_equals_the_straight_run(tmp_path, tone_store):
    """With two batches a step, a run stopped at step 1 has used batches 0 and 1 of the 3 of an epoch: the
    resumed run goes on at batch 2, as the straight run does (its position is the step times the accumulation)."""
    assert_resumed_equals_straight(tmp_path, [f"data.store={tone_store}", *FAST, "trainer.accumulate_grad_batches=2"],
                                   1, 2)


def test_a_myna_run_resumed_mid_epoch_continues_its_sogclr_denominators_exactly(tmp_path, tone_store):
    """SogCLR's per-item denominators are in the checkpoint, sized for the store from the first step: the
    resumed run reads each item's u as the straight run does (12 items, 3 batches of 4 an epoch, so steps 4
    and 5 meet items again)."""
    state = assert_resumed_equals_straight(
        tmp_path, [f"data.store={tone_store}", *FAST, "method.crop_samples=16000", "encoder.params.input_samples=16000",
                   "trainer.precision=32-true"], 2, 5, preset="myna-cpu")
    for shape in (0, 1):  # the Hybrid's two patch shapes, each its own denominators
        denominators = state[f"losses.{shape}.denominators"]
        assert denominators.shape == (12,) and (denominators > 0).all()


def _other_labels(checkpoint):
    checkpoint["mucon"]["label_vocabulary"] = ["jazz", "rock"]


def _other_weights(checkpoint):  # as a checkpoint of another mucon version would have
    checkpoint["state_dict"]["projector.layers.0.weight"] = torch.zeros(3, 3)


@pytest.mark.parametrize("change, message", [(_other_labels, "the store's labels"),
                                             (_other_weights, "projector.layers.0.weight")])
def test_a_checkpoint_that_does_not_fit_the_store_or_the_model_is_refused_before_the_run_changes(
    tmp_path, two_step_run, capsys, change, message
):
    run_dir = copy_of(two_step_run, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, last)
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert main(["pretrain", "--config", str(run_dir / "config.yaml"), "--run-dir", str(run_dir), "--resume"]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before


def test_a_second_run_into_a_run_folder_in_use_is_refused_in_one_line_and_the_lock_ends_with_the_run(
    tmp_path, tone_store, capsys
):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    command = ["pretrain", "--config", "clmr-cpu", "--store", str(tone_store), "--run-dir", str(run_dir), *FAST,
               "trainer.max_steps=1"]
    with open(run_dir / LOCK_FILE, "w") as running:  # the lock another run holds while it trains there
        fcntl.flock(running, fcntl.LOCK_EX)
        assert main(command) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"mucon pretrain: {run_dir} is in use by another mucon run") and error.count("\n") == 1
        assert sorted(path.name for path in run_dir.iterdir()) == [LOCK_FILE]
    assert main(command) == 0
    with open(run_dir / LOCK_FILE, "w") as after:  # released with the run
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_copied_run_folder_resumes_into_itself_and_a_moved_one_resumes_from_any_folder(
    tmp_path, tone_store, monkeypatch
):
    """Started with relative paths; the folder of the config.yaml given is the run."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "runs").mkdir(parents=True)
    elsewhere.mkdir()
    (work / "store").symlink_to(tone_store)
    monkeypatch.chdir(work)
    assert main(["pretrain", "--config", "clmr-cpu", "--store", "store", "--run-dir", "runs/original", *FAST,
                 "trainer.max_steps=1"]) == 0
    original = {path: path.read_bytes() for path in (work / "runs" / "original").rglob("*") if path.is_file()}
    copy = Path(shutil.copytree(work / "runs" / "original", work / "runs" / "copy"))
    monkeypatch.chdir(elsewhere)
    assert main(["pretrain", "--config", str(copy / "config.yaml"), "--resume", "trainer.max_steps=2"]) == 0
    assert torch.load(copy / LAST_CHECKPOINT, weights_only=True)["global_step"] == 2
    assert {path: path.read_bytes() for path in (work / "runs" / "original").rglob("*") if path.is_file()} == original
    moved = copy.rename(tmp_path / "moved")
    assert main(["pretrain", "--config", str(moved / "config.yaml"), "--resume", "trainer.max_steps=3"]) == 0
    assert torch.load(moved / LAST_CHECKPOINT, weights_only=True)["global_step"] == 3
    assert load_config(moved / "config.yaml").run_dir == str(moved)


@pytest.mark.parametrize("settings, message", [
    (["method.temperature=0"], "method.temperature=0.0: must be > 0"),
    (["method.temperature=-1"], "method.temperature=-1.0: must be > 0"),
    (["method.temperature=.nan"], "method.temperature=nan: must be > 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be > 0"),
    (["data.batch_size=0"], "data.batch_size=0: must be >= 1"),
    (["trainer.keep_checkpoints=[0]"], "trainer.keep_checkpoints=0: must be >= 1"),
    (["method.crop_samples=64000", "encoder.params.input_samples=64000"],  # the store's tones last 3 s
     "method.crop_samples: a clip spans 64000 samples (4 s), longer than every item"),
])
def test_a_setting_out_of_its_range_is_refused_in_one_line_naming_it_before_the_run_starts(
    tmp_path, tone_store, capsys, settings, message
):
    run_dir = tmp_path / "run"
    assert main(["pretrain", "--config", "clmr-cpu", "--store", str(tone_store), "--run-dir", str(run_dir), *FAST,
                 "trainer.max_steps=1", *settings]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"mucon pretrain: {message}") and error.count("\n") == 1
    assert not run_dir.exists()


def test_a_loss_that_turns_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_step(
    tmp_path, tone_store, capsys, monkeypatch
):
    compute_loss = CLMR.compute_loss

    def nan_from_step_2(self, batch):
        loss, figures = compute_loss(self, batch)
        return (loss * float("nan") if self.global_step == 2 else loss), figures

    monkeypatch.setattr(CLMR, "compute_loss", nan_from_step_2)
    run_dir = tmp_path / "run"
    assert main(["pretrain", "--config", "clmr-cpu", "--store", str(tone_store), "--run-dir", str(run_dir), *FAST,
                 "trainer.max_steps=5"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mucon pretrain: train/loss is nan at step 2; the run stopped: ") and error.count("\n") == 1
    assert f"{run_dir / LAST_CHECKPOINT} holds step 2, the last good one" in error
    checkpoint = torch.load(run_dir / LAST_CHECKPOINT, weights_only=True)
    assert checkpoint["global_step"] == 2
    assert all(value.isfinite().all() for value in checkpoint["state_dict"].values() if value.is_floating_point())


def test_pretrain_shows_its_progress_in_steps_and_ends_with_a_summary(tmp_path, tone_store, capsys, caplog):
    run_dir = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checkpoint = pretrain(cpu_config(tmp_path, tone_store, "trainer.max_steps=2", "trainer.progress_bar=true",
                                         "trainer.log_every_n_steps=5"))  # more than the 3 batches of an epoch
    output = capsys.readouterr().out
    assert "step 2/2 [" in output and "s/step, loss=" in output and "Epoch" not in output
    summary = caplog.text + output + capsys.readouterr().err
    assert f"trained steps 0-2 in " in summary and f", final loss " in summary and f"checkpoint: {checkpoint}" in summary
    assert checkpoint == run_dir / LAST_CHECKPOINT
    assert not [w for w in caught if "logging interval" in str(w.message)]


def test_checkpoint_every_minutes_saves_at_the_end_of_every_step_once_the_time_is_due(tmp_path, tone_store, monkeypatch):
    saved = []
    save = AtomicCheckpointIO.save_checkpoint
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint",
                        lambda self, checkpoint, path, storage_options=None: (saved.append(checkpoint["global_step"]),
                                                                              save(self, checkpoint, path)))
    pretrain(cpu_config(tmp_path, tone_store, "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=100",
                        "trainer.checkpoint_every_minutes=0.000001"))
    assert saved == [1, 2, 3]


def test_sigterm_saves_the_current_step_and_says_the_resume_command(tmp_path, tone_store, monkeypatch):
    compute_loss = CLMR.compute_loss

    def terminated_in_step_1(self, batch):
        if self.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return compute_loss(self, batch)

    monkeypatch.setattr(CLMR, "compute_loss", terminated_in_step_1)
    config = cpu_config(tmp_path, tone_store, "trainer.max_steps=5")
    from mucon.training import TrainingInterrupted

    with pytest.raises(TrainingInterrupted) as stopped:
        pretrain(config)
    last = Path(config.run_dir) / LAST_CHECKPOINT
    assert str(stopped.value) == (f"SIGTERM: stopped at step 2 of 5, saved in {last}; resume with: "
                                  f"mucon pretrain --config {Path(config.run_dir) / 'config.yaml'} --resume")
    assert torch.load(last, weights_only=True)["global_step"] == 2


def test_ctrl_c_saves_the_step_and_the_printed_command_resumes_from_another_folder_to_the_straight_run(
    tmp_path, tone_store
):
    """A real SIGINT to a training process; its printed resume command, run elsewhere, ends where a straight run does.
    The run is 12 steps long so that the signal, sent once the first step's row is logged, lands mid-run even
    on a fast, idle machine (with 4 steps the run could finish first and exit 0)."""
    settings = [f"data.store={tone_store}", *FAST, "trainer.max_steps=12"]
    straight = pretrain(load_config(CONFIGS / "clmr-cpu.yaml", [*settings, f"run_dir={tmp_path / 'straight'}"]))
    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "mucon.cli", "pretrain", "--config", "clmr-cpu",
                             "--run-dir", str(run_dir), *settings], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (run_dir / METRICS_CSV).exists():
        time.sleep(0.05)  # the first step's row: the run is training
    proc.send_signal(signal.SIGINT)
    error = proc.communicate(timeout=300)[1]
    assert proc.returncode == 128 + signal.SIGINT, error
    (line,) = [line for line in error.splitlines() if line.startswith("mucon pretrain: SIGINT: stopped at step")]
    reached = torch.load(run_dir / LAST_CHECKPOINT, weights_only=True)["global_step"]
    assert 1 <= reached < 12 and f"stopped at step {reached} of 12" in line
    command = shlex.split(line.split("resume with: ")[1])
    assert command[:2] == ["mucon", "pretrain"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run([sys.executable, "-m", "mucon.cli", *command[1:]], cwd=elsewhere, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    straight_state = torch.load(straight, weights_only=True)["state_dict"]
    resumed_state = torch.load(run_dir / LAST_CHECKPOINT, weights_only=True)["state_dict"]
    for name, value in straight_state.items():
        torch.testing.assert_close(resumed_state[name], value, rtol=0, atol=0, msg=name)


def _warning_and_logging_filters():
    loggers = {name: logger for name, logger in logging.Logger.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    return list(warnings.filters), {name: (logger.level, list(logger.filters))
                                    for name, logger in {"": logging.getLogger(), **loggers}.items()}


def test_importing_mucon_training_leaves_the_warning_filters_and_the_loggers_as_they_were():
    """Lightning's noise is hidden inside a run, not in every program that imports the module."""
    before = _warning_and_logging_filters()
    spec = importlib.util.spec_from_file_location("mucon_training_imported_afresh", mucon.training.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # the module's code run again, its imports cached
    assert _warning_and_logging_filters() == before


def test_the_cloud_logger_tip_is_hidden_inside_a_run_only(tmp_path, tone_store, caplog):
    config = cpu_config(tmp_path, tone_store)
    with caplog.at_level(logging.INFO):
        with lightning_quieted():
            build_trainer(config)
        assert "litlogger" not in caplog.text
        build_trainer(config)
    assert "litlogger" in caplog.text



def logged_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "logs" / "metrics.csv") as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle)]


def test_a_compiled_run_resumed_follows_the_eager_run_and_its_checkpoint_embeds_in_an_uncompiled_process(
        tmp_path, tone_store):
    """trainer.compile changes how a step runs, not what it computes: a compiled run stopped after a step and
    resumed logs the eager run's losses up to float32 rounding (fusion reorders the sums), and its checkpoint
    holds the eager network's state, so a process that never compiles loads it and embeds what this one does."""
    settings = [f"data.store={tone_store}", *FAST, "trainer.precision=32-true"]
    eager = cpu_config(tmp_path / "eager", tone_store, *settings, "trainer.max_steps=3")
    pretrain(eager)
    pretrain(cpu_config(tmp_path / "compiled", tone_store, *settings, "trainer.compile=true", "trainer.max_steps=1"))
    resumed = pretrain(cpu_config(tmp_path / "compiled", tone_store, *settings, "trainer.compile=true",
                                  "trainer.max_steps=3"), resume=True)
    compiled_losses = logged_losses(tmp_path / "compiled" / "run")
    assert len(compiled_losses) == 3
    assert compiled_losses == pytest.approx(logged_losses(Path(eager.run_dir)), rel=1e-4)

    clip = torch.sin(torch.arange(32000) / 7.0)[None].repeat(2, 1)
    torch.save(clip, tmp_path / "clip.pt")
    script = ("import sys, torch, mucon; method = mucon.load(sys.argv[1]); "
              "torch.save(method.encoder.embed(torch.load(sys.argv[2])).detach(), sys.argv[3]); "
              "assert not torch._dynamo.utils.counters['stats']['unique_graphs'], 'something compiled'")
    subprocess.run([sys.executable, "-c", script, str(resumed), str(tmp_path / "clip.pt"), str(tmp_path / "embedded.pt")],
                   check=True)
    with torch.no_grad():
        here = mucon.load(resumed).encoder.embed(clip)
    torch.testing.assert_close(torch.load(tmp_path / "embedded.pt"), here, rtol=0, atol=0)


def test_trainer_compile_without_a_cpp_compiler_warns_and_trains_the_eager_network(tmp_path, tone_store, monkeypatch):
    from mucon.training import compile_network

    config = cpu_config(tmp_path, tone_store, "trainer.compile=true")
    method = CLMR(config)
    eager_call = method.encoder.forward_spectrogram
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler found"):
        assert compile_network(method, config) is False
    assert method.encoder.forward_spectrogram == eager_call
