"""Checkpoints survive a kill mid-save, and every unusable one is a one-line error naming the file."""

import csv
import errno
import multiprocessing
import os
import random
import signal
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import mucon
from mucon.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint
from mucon.cli import main
from mucon.config import load_config
from mucon.files import remove_temporary_files
from mucon.methods import method_class

from conftest import CONFIGS, write_tone_folder

WEIGHTS = 4_000_000  # 16 MB: a save lasts long enough to be killed in the middle


def _save_until_killed(target: Path, weights: torch.Tensor) -> None:
    step = 0
    while True:
        step += 1
        AtomicCheckpointIO().save_checkpoint({"step": step, "weights": weights}, target)


def test_a_kill_during_a_save_leaves_the_last_checkpoint_whole_and_no_file_in_tmpdir(tmp_path, monkeypatch):
    """Lightning's own writer goes through $TMPDIR: across filesystems (here tmpfs) a kill mid-copy cut
    last.ckpt short, and each kill left a checkpoint-sized file in $TMPDIR."""
    shm = Path("/dev/shm")
    tmpdir = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))  # what $TMPDIR sets, for the forked saver
    target, weights = tmp_path / "last.ckpt", torch.randn(WEIGHTS)
    delays = random.Random(0)
    try:
        for _ in range(4):
            saver = multiprocessing.get_context("fork").Process(target=_save_until_killed, args=(target, weights))
            saver.start()
            while not target.exists():
                time.sleep(0.01)
            time.sleep(delays.uniform(0.05, 0.4))
            os.kill(saver.pid, signal.SIGKILL)
            saver.join()
            checkpoint = torch.load(target, weights_only=True)
            assert checkpoint["step"] >= 1
            torch.testing.assert_close(checkpoint["weights"], weights)
            assert list(tmpdir.iterdir()) == []
    finally:
        for leftover in tmpdir.iterdir():
            leftover.unlink()
        tmpdir.rmdir()
    remove_temporary_files(tmp_path)  # what a run does when it starts or resumes
    assert [path.name for path in tmp_path.iterdir()] == ["last.ckpt"]


# --- unusable checkpoints ------------------------------------------------------------------------


def write_checkpoint(path: Path) -> Path:
    """A small mucon checkpoint, as `mucon pretrain` writes it."""
    config = load_config(CONFIGS / "clmr-cpu.yaml", ["encoder.params.input_samples=8000"])
    method = method_class(config.method_name)(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": method.state_dict(),
                "mucon": {"version": mucon.__version__, "config": config.to_dict(), "label_vocabulary": []}}, path)
    return path


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _replace_by_a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _damage_inside_a_tensor(path: Path) -> None:
    """Overwrite bytes in the middle of the largest tensor: the archive stays readable, its CRC does not match."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
        with archive.open(member) as handle:
            start = handle._fileobj.tell()  # where the member's bytes begin in the file
    data = bytearray(path.read_bytes())
    data[start + 64 : start + 96] = np.full(8, 1e27, "<f4").tobytes()
    path.write_bytes(bytes(data))


DAMAGE = {
    "bytes inside a tensor": (_damage_inside_a_tensor, "fails its CRC check"),
    "empty": (lambda path: path.write_bytes(b""), "empty file"),
    "cut short": (_cut_short, "cut short"),
    "garbage": (lambda path: path.write_bytes(random.Random(0).randbytes(5000)), "not a checkpoint"),
    "a folder": (_replace_by_a_folder, "Is a directory"),
    "not mucon's": (lambda path: torch.save({"weights": torch.zeros(3)}, path), "not a mucon checkpoint"),
}


def damaged_checkpoint(path: Path, damage: str) -> Path:
    write_checkpoint(path)
    DAMAGE[damage][0](path)
    return path


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_is_one_error_naming_the_file_and_the_problem(tmp_path, damage):
    path = damaged_checkpoint(tmp_path / "last.ckpt", damage)
    with pytest.raises(CheckpointError) as raised:
        mucon.load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and DAMAGE[damage][1] in message and "\n" not in message


def test_a_checkpoint_without_read_permission_is_one_error_naming_the_file(tmp_path, monkeypatch):
    path = write_checkpoint(tmp_path / "last.ckpt")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: fail the read as it fails for anyone else

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(CheckpointError, match=f"^{path}: cannot read the checkpoint: Permission denied$"):
        read_checkpoint(path)


def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"mucon": {}, "payload": os.system}, path)  # loading would need the global os.system
    with pytest.raises(CheckpointError, match=f"^{path}: refused: it holds Python objects that could run code"):
        read_checkpoint(path)


@pytest.fixture(scope="module")
def task_header(tmp_path_factory):
    """A small declared task over tone files, for `mucon evaluate`."""
    root = tmp_path_factory.mktemp("task")
    audio = write_tone_folder(root, 6, 16000, 1.0)
    with open(audio / "metadata.csv") as handle:
        rows = list(csv.DictReader(handle))
    with open(root / "register.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "genre", "split"])
        writer.writeheader()
        writer.writerows({**row, "split": ["train", "valid", "test"][i % 3]} for i, row in enumerate(rows))
    (root / "register.yaml").write_text("name: register\ntype: multiclass\nlabel: genre\n")
    return root / "register.yaml"


@pytest.mark.parametrize("damage", ["empty", "cut short", "bytes inside a tensor"])
@pytest.mark.parametrize("command", ["embed", "evaluate", "pretrain --resume"])
def test_every_command_given_a_damaged_checkpoint_prints_one_line_and_exits_2(
    tmp_path, capsys, tone_store, task_header, command, damage
):
    run_dir = tmp_path / "run"
    path = damaged_checkpoint(run_dir / "checkpoints" / "last.ckpt", damage)
    before = sorted(run_dir.rglob("*"))
    argv = {
        "embed": ["embed", str(task_header.parent), "--checkpoint", str(path), "--out", str(tmp_path / "out")],
        "evaluate": ["evaluate", "--checkpoint", str(path), "--tasks", str(task_header),
                     "--out", str(tmp_path / "out")],
        "pretrain --resume": ["pretrain", "--config", "clmr-cpu", "--store", str(tone_store), "--run-dir",
                              str(run_dir), "--resume", "data.num_workers=0", "data.batch_size=4"],
    }[command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"mucon {command.split()[0]}: {path}: ") and error.count("\n") == 1
    assert DAMAGE[damage][1] in error
    assert sorted(run_dir.rglob("*")) == before
