"""Pretraining: one function from a resolved config to a checkpoint, on Lightning.

The same call runs on a laptop CPU or many GPUs and nodes: devices, strategy, precision and gradient
accumulation come from the config. The run folder holds the resolved config (re-runnable as is),
mucon.json (version, label vocabulary), CSV and TensorBoard logs and checkpoints/last.ckpt.
A kill at any moment leaves a checkpoint that loads, and `resume` continues the run and its logs, or
refuses before touching the run folder.
"""

from __future__ import annotations

import csv
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.rank_zero import rank_zero_only

import mucon
from mucon.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint
from mucon.config import RunConfig, save_config
from mucon.data.datamodule import StoreDataModule
from mucon.files import remove_temporary_files, write_atomically
from mucon.methods import Method, method_class
from mucon.precision import resolve_precision

# Lightning's own noise in every run's output, nothing a mucon user can act on: an advertisement for a
# cloud logger, and a torch-pytree deprecation inside Lightning 2.6 under torch 2.13.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage())
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

LAST_CHECKPOINT = "checkpoints/last.ckpt"
METRICS_CSV = "logs/metrics.csv"

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
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                save_last=True,
                save_top_k=0,
                every_n_train_steps=settings.checkpoint_every_n_steps,
            )
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


def pretrain(config: RunConfig, resume: bool = False) -> Path:
    """Train `config` and return the last checkpoint; `resume` continues from run_dir's last checkpoint.

    A resume reads and checks the checkpoint before anything in the run folder changes, so a failed
    one leaves the run as it was, and resumable as documented.
    """
    run_dir = Path(config.run_dir)
    last = run_dir / LAST_CHECKPOINT
    if resume and not last.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}")
    if not resume and last.exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or pick another run_dir")
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = StoreDataModule(config.data, seed=config.seed)
    method = method_class(config.method_name)(config, label_vocabulary=datamodule.vocabulary)
    resume_step = None
    if resume:
        checkpoint = read_checkpoint(last)
        check_resumable(checkpoint, config, method, last)
        resume_step = checkpoint["global_step"]
        del checkpoint  # Lightning reads the file again itself
    trainer = build_trainer(config, resume_step)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(last.parent)  # left by saves that a kill interrupted
        save_config(config, run_dir / "config.yaml")
        (run_dir / "mucon.json").write_text(
            json.dumps({"mucon_version": mucon.__version__, "method": config.method_name,
                        "label_vocabulary": datamodule.vocabulary}, indent=2)
        )
    with warnings.catch_warnings():
        # Lightning cannot see that mucon's batches are a function of the global step, so it warns that a
        # mid-epoch resume is inexact; it is exact (tests/methods/test_training.py pins it).
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
        trainer.fit(method, datamodule=datamodule, ckpt_path=last if resume else None, weights_only=True)
    trainer.save_checkpoint(last, weights_only=False)
    return last
