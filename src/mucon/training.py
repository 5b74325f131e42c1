"""Pretraining: one function from a resolved config to a checkpoint, on Lightning.

The same call runs on a laptop CPU or many GPUs and nodes: devices, strategy, precision and gradient
accumulation come from the config. The run folder holds the resolved config (re-runnable as is),
mucon.json (version, label vocabulary), CSV and TensorBoard logs and checkpoints/last.ckpt.
A kill at any moment leaves a checkpoint that loads, and `resume` continues the run and its logs, or
refuses before touching the run folder. Ctrl-C and SIGTERM save the current step and say how to resume;
a run folder in use by a run is locked against a second one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.rank_zero import rank_zero_only

import mucon
from mucon.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint
from mucon.config import RUN_INFO, RunConfig, save_config
from mucon.data.datamodule import StoreDataModule
from mucon.files import locked_folder, remove_temporary_files, write_atomically
from mucon.methods import Method, method_class
from mucon.methods.base import NonFiniteLossError
from mucon.precision import resolve_precision

LAST_CHECKPOINT = "checkpoints/last.ckpt"
METRICS_CSV = "logs/metrics.csv"
LOCK_FILE = "run.lock"

# Settings a resumed run must share with its checkpoint: they shape the model, or Lightning restores the
# checkpoint's own values (optimiser state), or they seed the sequence the run continues.
FIXED_ON_RESUME = ("method", "encoder", "head", "optimizer", "data.sample_rate", "data.label_column", "seed")


class MetricsCSV(Logger):
    """``logs/metrics.csv`` (a ``step`` column and one per metric), where a resumed run continues its rows.

    Lightning's CSVLogger starts the file over on resume, and holds rows in memory until it flushes,
    so a killed run lost the curve before the interruption. Here each row is on disk as soon as it
    is logged, and a run resumed from step S keeps the rows before S (later ones are redone). One
    row can still be lost: Lightning saves a step's checkpoint before it logs the step, so a kill
    between the two loses the row of step S - 1.
    """

    def __init__(self, path: Path, resume_step: int | None = None):
        super().__init__()
        self.path, self.resume_step = path, resume_step
        self.columns: list[str] | None = None  # known once the file is started, at the first row

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run's config.yaml holds every setting."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {"step": step, **{key: value.item() if isinstance(value, torch.Tensor) else value
                                for key, value in metrics.items()}}
        if self.columns is None:  # this process's first row: the file restarts, after the resumed rows if any
            rows = self._resumed_rows()
            self.columns = sorted(set(row).union(*rows))
            self._rewrite([*rows, row])
        elif set(row) <= set(self.columns):
            with open(self.path, "a", newline="") as handle:
                csv.DictWriter(handle, self.columns).writerow(row)
        else:  # a new metric: the header grows
            self.columns = sorted(set(self.columns) | set(row))
            self._rewrite([*self._rows(), row])

    def _rows(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def _resumed_rows(self) -> list[dict[str, str]]:
        if self.resume_step is None or not self.path.is_file():
            return []
        return [row for row in self._rows() if row["step"].isdigit() and int(row["step"]) < self.resume_step]

    def _rewrite(self, rows: list[dict]) -> None:
        def write(handle) -> None:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(rows)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, write, mode="w")


class KeepCheckpoints(L.Callback):
    """Keeps the checkpoint of each listed step as ``step-N.ckpt`` next to ``last.ckpt``, so that the probe
    score can be drawn against training steps (``mucon evaluate`` on them) from one run."""

    def __init__(self, folder: Path, steps: list[int]):
        self.folder, self.steps = folder, set(steps)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step in self.steps:  # once: with gradient accumulation a step spans several batches
            self.steps.discard(trainer.global_step)
            trainer.save_checkpoint(self.folder / f"step-{trainer.global_step}.ckpt", weights_only=False)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run after saving its current step; the message says how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class RunCheckpoint(Checkpoint):
    """Saves ``last.ckpt`` at the end of a step: every ``every_n_steps`` steps, every ``every_minutes``
    minutes, at the last step, and where the run stops early (max_time, or a SIGINT / SIGTERM it catches).

    Saved at a step's end, a checkpoint is the state a straight run passes through, so a resumed run
    equals it (epoch counter included: Lightning's own save after fit counted the cut epoch as done).
    A Checkpoint subclass runs after Lightning's Timer, and so sees the stop max_time asks for.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, path: Path, every_n_steps: int, every_minutes: float | None):
        self.path, self.every_n_steps = path, every_n_steps
        self.every_seconds = every_minutes * 60 if every_minutes else None
        self.saved_at = time.monotonic()
        self.signal: int | None = None  # the signal that asked this process to stop
        self.stopped_by: int | None = None  # the signal the run stopped for, after saving
        self.non_finite_saved: int | None = None  # the step saved when the loss turned NaN or Inf
        self._pid = os.getpid()

    def _catch(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a data-loader worker forked with this handler: the main process acts
            return
        self.signal = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once, unsaved
        print(f"\nmucon pretrain: {signal.Signals(signum).name}: saving a checkpoint at the end of this step "
              "(Ctrl-C again stops at once, without saving)", flush=True)

    def _install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._catch)

    @contextlib.contextmanager
    def catching_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the run at a step's end while inside; installed before the data-loader
        workers fork, so that they inherit it and a Ctrl-C to the terminal's process group spares them."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
        self._install()
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step_seen = trainer.global_step
        # Lightning's SIGTERM handler, registered after ours, would kill DDP's other processes unsaved
        if threading.current_thread() is threading.main_thread() and self.signal is None:
            self._install()

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        step, stepped = trainer.global_step, trainer.global_step != self.step_seen
        self.step_seen = step
        if not stepped and not trainer.should_stop:  # inside a gradient accumulation: its step is not done
            return
        stop = trainer.strategy.reduce_boolean_decision(self.signal is not None, all=False)  # every process stops
        due = self.every_seconds is not None and time.monotonic() - self.saved_at >= self.every_seconds
        if (stop or trainer.strategy.reduce_boolean_decision(due, all=False) or trainer.should_stop
                or step % self.every_n_steps == 0 or step >= trainer.max_steps):
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved_at = time.monotonic()
        if stop:
            self.stopped_by = self.signal if self.signal is not None else signal.SIGINT
            trainer.should_stop = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """A NaN or Inf loss stops the run before its update: the weights are still the last good step's."""
        if isinstance(exception, NonFiniteLossError) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.non_finite_saved = trainer.global_step


class StepProgressBar(TQDMProgressBar):
    """One bar over the whole run, in optimiser steps: step / max_steps, elapsed < remaining, s/step, loss.

    Lightning's bar counts batches of an epoch ("Epoch 7 1/1"), which says nothing when an epoch is a
    few batches and a run a number of steps.
    """

    BAR_FORMAT = "{l_bar}{bar}| step {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_inv_fmt}{postfix}]"

    def init_train_tqdm(self) -> Tqdm:
        trainer = self.trainer  # a resumed run's bar starts at its step, and its rate counts this run's steps
        return Tqdm(desc="pretrain", total=trainer.max_steps, initial=trainer.global_step, unit="step",
                    position=2 * self.process_position, disable=self.is_disabled, leave=True, dynamic_ncols=True,
                    file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)

    def on_train_epoch_start(self, *_: Any) -> None:
        """Nothing: the bar runs across epochs."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        if self._should_update(trainer.global_step, trainer.max_steps):
            self.train_progress_bar.n = trainer.global_step
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, *_: Any) -> None:
        """Nothing: the bar closes at the end of the run."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        loss = trainer.progress_bar_metrics.get("train/loss")
        return {} if loss is None else {"loss": f"{loss:.4g}"}


def build_trainer(config: RunConfig, resume_step: int | None = None) -> L.Trainer:
    """The Lightning trainer of a run; ``resume_step``, the checkpoint's step, makes the logs continue from it."""
    run_dir = Path(config.run_dir)
    settings = config.trainer
    precision, why = resolve_precision(settings.precision, settings.accelerator)
    rank_zero_info(f"precision: {precision} ({why})")
    return L.Trainer(
        max_steps=settings.max_steps,
        max_time=settings.max_time,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=precision,
        accumulate_grad_batches=settings.accumulate_grad_batches,
        gradient_clip_val=settings.gradient_clip_val,
        log_every_n_steps=settings.log_every_n_steps,
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=False,
        default_root_dir=run_dir,
        use_distributed_sampler=False,  # mucon's batch sampler slices each global batch per process itself
        logger=[
            MetricsCSV(run_dir / METRICS_CSV, resume_step),
            # purge_step: TensorBoard hides what the interrupted run logged from the resumed step on
            TensorBoardLogger(run_dir, name="logs", version="", purge_step=resume_step),
        ],
        plugins=[AtomicCheckpointIO()],
        callbacks=[
            KeepCheckpoints(run_dir / "checkpoints", settings.keep_checkpoints),
            RunCheckpoint(run_dir / LAST_CHECKPOINT, settings.checkpoint_every_n_steps,
                          settings.checkpoint_every_minutes),
            *([StepProgressBar()] if settings.progress_bar else []),
        ],
    )


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(checkpoint: dict, config: RunConfig, method: Method, path: Path) -> None:
    """Refuse, naming the setting, a resume whose config or data would not continue the checkpoint's run."""
    saved, wanted = _flat(checkpoint["mucon"]["config"]), _flat(config.to_dict())
    unset = "(unset)"
    conflicts = [
        f"{key}={wanted.get(key, unset)} (checkpoint: {saved.get(key, unset)})"
        for key in sorted(saved.keys() | wanted.keys())
        if any(key == fixed or key.startswith(f"{fixed}.") for fixed in FIXED_ON_RESUME)
        and saved.get(key, unset) != wanted.get(key, unset)
    ]
    if conflicts:
        raise CheckpointError(f"--resume: {'; '.join(conflicts)} conflicts with {path}; "
                              "resume with the checkpoint's settings or start a new run_dir")
    if checkpoint["mucon"]["label_vocabulary"] != method.label_vocabulary:
        raise CheckpointError(f"--resume: the store's labels {method.label_vocabulary} differ from those of {path} "
                              f"{checkpoint['mucon']['label_vocabulary']}")
    shapes = {name: tuple(value.shape) for name, value in method.state_dict().items()}
    saved_shapes = {name: tuple(value.shape) for name, value in checkpoint["state_dict"].items()}
    differing = sorted(name for name in shapes.keys() | saved_shapes.keys()
                       if shapes.get(name) != saved_shapes.get(name))
    if differing:  # same settings, other weights: a checkpoint of another mucon version
        name = differing[0]
        raise CheckpointError(f"{path}: its weights do not fit the configured model "
                              f"({name}: {saved_shapes.get(name)} in the checkpoint, {shapes.get(name)} wanted)")


def _absolute_paths(config: RunConfig) -> RunConfig:
    """The config with its run folder and store as absolute paths: its config.yaml then works from any
    folder, and a moved or copied run folder (whose config.yaml names itself the run) still finds its store."""
    store = config.data.store and os.path.abspath(config.data.store)
    return dataclasses.replace(config, run_dir=os.path.abspath(config.run_dir),
                               data=dataclasses.replace(config.data, store=store))


def _refuse_a_new_run_over(last: Path, resume: bool) -> None:
    if not resume and last.exists():
        raise FileExistsError(f"{last.parent.parent} already holds a run; pass --resume to continue it or pick "
                              "another run_dir")


def resume_command(run_dir: Path) -> str:
    return f"mucon pretrain --config {shlex.quote(str(run_dir / 'config.yaml'))} --resume"


def _without_cloud_logger_tip(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def lightning_quieted() -> Iterator[None]:
    """Hides, while a run builds its trainer and trains, Lightning's messages that no mucon user can act on;
    inside a run only, so that importing this module leaves the process's warning and logging filters alone.

    Hidden: an advertisement for a cloud logger; a torch-pytree deprecation inside Lightning 2.6 under torch
    2.13; the warning that a mid-epoch resume is inexact (Lightning cannot see that mucon's batches are a
    function of the global step: the resume is exact, tests/test_training.py pins it); and the one about
    an epoch shorter than the logging interval (mucon logs by step across epochs: no log row is lost).
    """
    rank_zero_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero_logger.addFilter(_without_cloud_logger_tip)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
            warnings.filterwarnings("ignore", message=".*is smaller than the logging interval")
            yield
    finally:
        rank_zero_logger.removeFilter(_without_cloud_logger_tip)


def pretrain(config: RunConfig, resume: bool = False) -> Path:
    """Train `config` and return the last checkpoint; `resume` continues from run_dir's last checkpoint.

    A resume reads and checks the checkpoint before anything in the run folder changes, so a failed
    one leaves the run as it was, and resumable as documented. Stopped by SIGINT or SIGTERM, the run
    saves its step and raises ``TrainingInterrupted``; a NaN or Inf loss raises ``NonFiniteLossError``
    naming the step, with the last good step saved.
    """
    config = _absolute_paths(config)
    run_dir = Path(config.run_dir)
    last = run_dir / LAST_CHECKPOINT
    if resume and not last.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}")
    _refuse_a_new_run_over(last, resume)
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = StoreDataModule(config.data, seed=config.seed)
    method = method_class(config.method_name)(config, label_vocabulary=datamodule.vocabulary)
    method.size_item_state(len(datamodule.store))
    check_crop_fits(datamodule, method)
    resume_step = None
    if resume:
        checkpoint = read_checkpoint(last)
        check_resumable(checkpoint, config, method, last)
        resume_step = checkpoint["global_step"]
        del checkpoint  # Lightning reads the file again itself
    method.check_composition(datamodule.composition(method.data_request))
    compile_network(method, config)
    with contextlib.ExitStack() as run:
        run.enter_context(lightning_quieted())
        trainer = build_trainer(config, resume_step)
        (saver,) = [callback for callback in trainer.callbacks if isinstance(callback, RunCheckpoint)]
        if trainer.is_global_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
            run.enter_context(locked_folder(run_dir, LOCK_FILE, "mucon run", "run_dir"))
            _refuse_a_new_run_over(last, resume)  # again: a run that held the lock until now may have saved one
            remove_temporary_files(last.parent)  # left by saves that a kill interrupted
            save_config(config, run_dir / "config.yaml")
            run_info = {"mucon_version": mucon.__version__, "method": config.method_name,
                        "label_vocabulary": datamodule.vocabulary}
            write_atomically(run_dir / RUN_INFO, lambda handle: handle.write(json.dumps(run_info, indent=2)), mode="w")
        run.enter_context(saver.catching_signals())
        started, first_step = time.monotonic(), resume_step or 0
        try:
            trainer.fit(method, datamodule=datamodule, ckpt_path=last if resume else None, weights_only=True)
        except NonFiniteLossError as error:
            kept = (f"{last} holds step {saver.non_finite_saved}, the last good one" if saver.non_finite_saved
                    else "no step finished, nothing saved")
            raise NonFiniteLossError(f"{error}; the run stopped: {kept}") from None
    if saver.stopped_by is not None and trainer.global_step < config.trainer.max_steps:
        raise TrainingInterrupted(
            f"{signal.Signals(saver.stopped_by).name}: stopped at step {trainer.global_step} of "
            f"{config.trainer.max_steps}, saved in {last}; resume with: {resume_command(run_dir)}", saver.stopped_by)
    loss = trainer.callback_metrics.get("train/loss")
    seconds = time.monotonic() - started
    steps = trainer.global_step - first_step
    rank_zero_info(f"trained steps {first_step}-{trainer.global_step} in {seconds:.0f} s"
                   + (f" ({seconds / steps:.2f} s/step)" if steps else "")
                   + (f", final loss {float(loss):.4g}" if loss is not None else "") + f"; checkpoint: {last}")
    return last


def compile_network(method: Method, config: RunConfig) -> bool:
    """Compile the encoder's network where ``trainer.compile`` asks for it and a C++ compiler is there for
    inductor's CPU kernels; without one the run trains eagerly after a warning (the same method, a slower step).

    The first steps pay the compile (inductor caches it on disk, so a later run of the same shapes pays
    less). One run compiles at a time: dynamo's caches are cleared first, so that a process training
    several runs (``mucon demo``) does not fill its recompile limit with earlier runs' graphs.
    """
    if not config.trainer.compile:
        return False
    if not any(shutil.which(name) for name in (os.environ.get("CXX") or "g++", "c++", "clang++")):
        warnings.warn("trainer.compile: no C++ compiler found (install g++), training uncompiled", stacklevel=2)
        return False
    torch._dynamo.reset()
    method.encoder.compile_network()
    return True


def check_crop_fits(datamodule: StoreDataModule, method: Method) -> None:
    """Refuse a clip longer than every item of the store: every clip would end in zero padding."""
    excerpt, longest = method.data_request.excerpt_samples, int(datamodule.store.lengths.max())
    if excerpt > longest:
        rate = datamodule.store.sample_rate
        settings = [f"method.{name}" for name in ("crop_samples", "chunk_samples", "views", "segment_samples")
                    if hasattr(method.params, name)]
        raise ValueError(f"{', '.join(settings)}: a clip spans {excerpt} samples ({excerpt / rate:g} s), longer than "
                         f"every item of {datamodule.config.store} (the longest: {longest} samples, "
                         f"{longest / rate:g} s); shorten the clip or prepare longer files")
