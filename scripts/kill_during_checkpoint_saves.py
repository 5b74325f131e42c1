"""Kill -9 a CPU pretraining run in the middle of checkpoint saves, resume it each time, and check
that every last.ckpt loads, that no temporary file is left behind and that --resume continues.

The run saves a checkpoint at every step with $TMPDIR on another filesystem (tmpfs /dev/shm by
default: check with `df /dev/shm /tmp`), the case where Lightning's own writer destroyed
last.ckpt. Each kill waits for a save to start (a temporary file appears next to last.ckpt or in
$TMPDIR), then a random delay within a typical save, so kills fall at random moments of saves.

    python scripts/kill_during_checkpoint_saves.py                 # 20 kills, prints a table
    python scripts/kill_during_checkpoint_saves.py --kills 5 --work /tmp/kills
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

RATE = 16000


def tone_store(root: Path) -> Path:
    """12 three-second tones, prepared as a store (what the tests train on)."""
    from mucon.audio.store_writer import prepare_store

    audio = root / "audio"
    audio.mkdir(parents=True)
    t = np.arange(3 * RATE) / RATE
    for i in range(12):
        tone = 0.3 * np.sin(2 * np.pi * 110 * 2 ** (i / 12) * t)
        sf.write(audio / f"tone{i:02d}.wav", tone.astype(np.float32), RATE)
    prepare_store(audio, root / "store", RATE, progress=False, num_workers=1)
    return root / "store"


def temporary_files(checkpoints: Path, tmpdir: Path) -> list[Path]:
    """Files of saves in progress, or left by killed ones (torch also makes a cache folder in $TMPDIR)."""
    return [*checkpoints.glob("*.tmp"), *(path for path in tmpdir.iterdir() if path.is_file())]


def kill_during_a_save(command: list[str], environment: dict, checkpoints: Path, tmpdir: Path,
                       saves_first: int, delay: float) -> bool:
    """Start the run, let ``saves_first`` saves finish, kill ``delay`` s into the next; True if it was still saving."""
    saving = bool(temporary_files(checkpoints, tmpdir))  # a killed save's file counts only once gone and back
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = 0
    while process.poll() is None:
        now_saving = bool(temporary_files(checkpoints, tmpdir))
        if now_saving and not saving:
            started += 1
            if started > saves_first:
                time.sleep(delay)
                mid_save = bool(temporary_files(checkpoints, tmpdir))
                process.send_signal(signal.SIGKILL)
                process.wait()
                return mid_save
        saving = now_saving
        time.sleep(0.001)
    raise RuntimeError(f"the run ended by itself:\n{process.stderr.read().decode()[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmpdir-parent", type=Path, default=Path("/dev/shm"), help="where $TMPDIR is made")
    parser.add_argument("--work", type=Path, help="folder for the store and the run (default: a temporary one)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="mucon-kills-"))
    tmpdir = Path(tempfile.mkdtemp(prefix="mucon-kills-tmpdir-", dir=args.tmpdir_parent))
    store, run_dir = tone_store(work), work / "run"
    checkpoints, last = run_dir / "checkpoints", run_dir / "checkpoints" / "last.ckpt"
    same_filesystem = os.stat(tmpdir).st_dev == os.stat(work).st_dev
    print(f"run {run_dir}, TMPDIR {tmpdir} ({'same' if same_filesystem else 'another'} filesystem)")
    base = [sys.executable, "-m", "mucon.cli", "pretrain", "--config", "clmr-cpu", "--store", str(store),
            "--run-dir", str(run_dir), "data.batch_size=4", "data.num_workers=0", "trainer.progress_bar=false",
            "trainer.log_every_n_steps=1", "trainer.checkpoint_every_n_steps=1"]
    environment = {**os.environ, "TMPDIR": str(tmpdir)}
    chance = random.Random(args.seed)
    failures = 0
    print("kill  step  mid-save  loads  tmp-next-to-ckpt  left-in-TMPDIR")
    for kill in range(1, args.kills + 1):
        command = [*base, "trainer.max_steps=1000000", *(["--resume"] if last.exists() else [])]
        mid_save = kill_during_a_save(command, environment, checkpoints, tmpdir,
                                      saves_first=chance.randint(1, 3), delay=chance.uniform(0.0, 0.03))
        try:
            step, loads = torch.load(last, weights_only=True)["global_step"], "yes"
        except Exception as error:  # what a broken checkpoint gives: many types
            step, loads = "-", f"NO ({type(error).__name__})"
        next_to = [path.name for path in checkpoints.glob("*.tmp")]
        in_tmpdir = [f"{path.name} ({path.stat().st_size} B)" for path in tmpdir.iterdir() if path.is_file()]
        failures += loads != "yes" or bool(in_tmpdir)
        print(f"{kill:4d}  {step!s:>4}  {'yes' if mid_save else 'no':>8}  {loads:>5}  {','.join(next_to) or '-':>16}  "
              f"{','.join(in_tmpdir) or '-'}")
        if loads != "yes":
            break
        for leftover in tmpdir.iterdir():  # so that the next kill is judged on its own
            if leftover.is_file():
                leftover.unlink()

    reached = torch.load(last, weights_only=True)["global_step"] if failures == 0 else None
    if reached is not None:
        finished = subprocess.run([*base, "--resume", f"trainer.max_steps={reached + 3}"], env=environment,
                                  capture_output=True, text=True)
        final = torch.load(last, weights_only=True)["global_step"] if finished.returncode == 0 else None
        with open(run_dir / "logs" / "metrics.csv") as handle:
            steps = [int(row["step"]) for row in csv.DictReader(handle)]
        missing = sorted(set(range(reached + 3)) - set(steps))
        print(f"final --resume to step {reached + 3}: exit {finished.returncode}, last.ckpt at step {final}; "
              f"temporary files left: {[str(path) for path in temporary_files(checkpoints, tmpdir)] or 'none'}; "
              f"metrics.csv: {len(steps)} rows, steps 0..{max(steps)}, duplicates {len(steps) - len(set(steps))}, "
              f"missing {missing or 'none'}")
        failures += finished.returncode != 0 or final != reached + 3 or bool(temporary_files(checkpoints, tmpdir))
    print("PASS" if failures == 0 else f"FAIL ({failures})")
    shutil.rmtree(tmpdir, ignore_errors=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
