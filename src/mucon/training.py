"""Pretraining: one function from a resolved config to a checkpoint, on Lightning.

The same call runs on a laptop CPU or many GPUs and nodes: devices, strategy, precision and gradient
accumulation come from the config. The run folder holds the resolved config (re-runnable as is),
mucon.json (version, label vocabulary), CSV and TensorBoard logs and checkpoints/last.ckpt.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

import mucon
from mucon.config import RunConfig, save_config
from mucon.data.datamodule import StoreDataModule
from mucon.methods import method_class
from mucon.precision import resolve_precision

LAST_CHECKPOINT = "checkpoints/last.ckpt"


def build_trainer(config: RunConfig) -> L.Trainer:
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
        logger=[CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="logs", version="")],
        callbacks=[
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                save_last=True,
                save_top_k=0,
                every_n_train_steps=settings.checkpoint_every_n_steps,
            )
        ],
    )


def pretrain(config: RunConfig, resume: bool = False) -> Path:
    """Train `config` and return the last checkpoint; `resume` continues from run_dir's last checkpoint."""
    run_dir = Path(config.run_dir)
    last = run_dir / LAST_CHECKPOINT
    if resume and not last.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}")
    if not resume and last.exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or pick another run_dir")
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = StoreDataModule(config.data, seed=config.seed)
    method = method_class(config.method_name)(config, label_vocabulary=datamodule.vocabulary)
    trainer = build_trainer(config)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
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
