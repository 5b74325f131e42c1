import csv
import signal
import subprocess
import sys
import time

import pytest
import torch

import mucon
from mucon.config import load_config
from mucon.training import pretrain

from conftest import CONFIGS

FAST = ["data.batch_size=4", "data.num_workers=0", "trainer.progress_bar=false", "trainer.log_every_n_steps=1"]


def cpu_config(tmp_path, store, *extra):
    return load_config(CONFIGS / "clmr-cpu.yaml", [f"data.store={store}", f"run_dir={tmp_path / 'run'}", *FAST, *extra])


def test_checkpoint_carries_config_version_and_label_vocabulary(tmp_path, tone_store):
    config = cpu_config(tmp_path, tone_store, "trainer.max_steps=2", "data.label_column=genre")
    checkpoint_path = pretrain(config)
    checkpoint = torch.load(checkpoint_path, weights_only=True)  # loads without executing any code
    assert checkpoint["global_step"] == 2
    assert checkpoint["mucon"]["version"] == mucon.__version__
    assert checkpoint["mucon"]["label_vocabulary"] == ["high", "low"]
    assert checkpoint["mucon"]["config"] == config.to_dict()


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


def test_killed_run_resumes_from_its_checkpoint_and_continues_the_step_count(tmp_path, tone_store):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "mucon.cli", "pretrain", "--config", str(CONFIGS / "clmr-cpu.yaml"),
               "--store", str(tone_store), "--run-dir", str(run_dir), *FAST,
               "trainer.checkpoint_every_n_steps=2"]
    proc = subprocess.Popen([*command, "trainer.max_steps=10000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), proc.stderr.read().decode()
    reached = torch.load(last, weights_only=True)["global_step"]
    assert 2 <= reached < 10000

    finished = subprocess.run([*command, "--resume", f"trainer.max_steps={reached + 3}"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert torch.load(last, weights_only=True)["global_step"] == reached + 3
    with open(run_dir / "logs" / "metrics.csv") as handle:
        logged_steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert max(logged_steps) == reached + 2  # steps count from 0


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


def test_a_run_interrupted_at_step_5_and_resumed_to_10_equals_the_straight_10_step_run(tmp_path, tone_store):
    """Mid-epoch (3 batches an epoch here): data order, crops, views and optimiser continue exactly."""
    settings = [f"data.store={tone_store}", *FAST, "data.num_workers=1"]
    straight = pretrain(load_config(CONFIGS / "clmr-cpu.yaml", [*settings, f"run_dir={tmp_path / 'a'}",
                                                                  "trainer.max_steps=10"]))
    pretrain(load_config(CONFIGS / "clmr-cpu.yaml", [*settings, f"run_dir={tmp_path / 'b'}", "trainer.max_steps=5"]))
    resumed = pretrain(load_config(CONFIGS / "clmr-cpu.yaml", [*settings, f"run_dir={tmp_path / 'b'}",
                                                                 "trainer.max_steps=10"]), resume=True)
    straight_state = torch.load(straight, weights_only=True)["state_dict"]
    resumed_state = torch.load(resumed, weights_only=True)["state_dict"]
    for name, value in straight_state.items():
        torch.testing.assert_close(resumed_state[name], value, rtol=0, atol=0, msg=name)
