"""The models of an evaluation: checkpoints and encoders, each read once, and their baselines.

A checkpoint is read once into a ``ModelEntry`` that carries its encoder and its run config: the
random-init twin, the run and step and the pretraining facts all come from that one read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

from mucon.encoders import Encoder
from mucon.evaluation.baselines import HandcraftedFeatures, random_init_encoder
from mucon.evaluation.embed import BrokenModel
from mucon.evaluation.hear_models import is_hear_source, load_hear_encoder
from mucon.evaluation.exported_models import is_exported_source, load_exported_encoder
from mucon.evaluation.inference_form import for_inference
from mucon.evaluation.model_identity import model_fingerprint, resolve_encoder
from mucon.evaluation.results import ModelInfo
from mucon.evaluation.robustness import pretraining_augmentations


@dataclasses.dataclass
class ModelEntry:
    """A model under evaluation: its encoder, cache identity, and where it came from."""

    name: str
    encoder: Encoder
    fingerprint: str
    kind: str  # "pretrained", "encoder", "random-init" or "handcrafted"
    source: str
    training_log: Path | None = None
    twin: str | None = None  # the random-init model of a checkpoint's architecture
    run: str | None = None  # a checkpoint's run (its run_dir's name) and training step: several
    step: int | None = None  # checkpoints of one run draw the probe score against steps
    pretraining_labels: str | None = None  # the label column a checkpoint's run took positives from
    pretraining_augmentations: frozenset[str] = frozenset()  # the effects its pretraining chain applies
    run_config: Mapping | None = None  # a checkpoint's run config, as stored in it

    @property
    def compared(self) -> bool:
        """Models under test (not baselines): compared with the baselines."""
        return self.kind in ("pretrained", "encoder")

    def info(self) -> ModelInfo:
        return ModelInfo(
            self.kind, self.source, self.encoder.sample_rate, self.encoder.input_samples, self.encoder.dim,
            random_init_twin=self.twin, run=self.run, step=self.step if self.run else None,
            pretraining_augmentations=sorted(self.pretraining_augmentations) if self.kind == "pretrained" else None,
        )


def _training_log(checkpoint: Path) -> Path | None:
    """``RUN_DIR/logs/metrics.csv`` for a checkpoint saved under ``RUN_DIR`` (or RUN_DIR/checkpoints)."""
    for run_dir in list(checkpoint.resolve().parents)[:3]:
        if (run_dir / "logs" / "metrics.csv").is_file():
            return run_dir / "logs" / "metrics.csv"
    return None


def _pretraining_labels(config: Mapping) -> str | None:
    """The label column a run drew positives from: set, with a labelled share of the batch that keeps
    some labels (SemiSupCon's b_s and p_s); None for a self-supervised run."""
    column, method = config["data"].get("label_column"), config["method"]
    if column and method.get("labelled_share") and method.get("labelled_keep", 1.0):
        return column
    return None


def _entry(name: str, encoder: Encoder, fingerprint_of: Path | Encoder, kind: str, source: str, device) -> ModelEntry:
    """``encoder`` on ``device`` in eval mode, cached under the fingerprint of its checkpoint file or its weights;
    mucon's own encoders (a checkpoint's, a random-init twin) embed in their ``for_inference`` form, which
    gives the same embeddings in less time (an encoder handed in, a HEAR or ONNX model, is used as it is)."""
    resolved = resolve_encoder(encoder, device)
    if kind in ("pretrained", "random-init"):
        resolved = for_inference(resolved)
    return ModelEntry(name, resolved, model_fingerprint(fingerprint_of), kind, source)


def _checkpoint_entry(name: str, path: Path, device) -> ModelEntry:
    """A checkpoint, read once: its encoder, run config, run and step, and pretraining facts."""
    from mucon.checkpoint import method_from_checkpoint, read_checkpoint

    checkpoint = read_checkpoint(path)
    config = checkpoint["mucon"]["config"]
    entry = _entry(name, method_from_checkpoint(checkpoint, path).encoder, path, "pretrained", str(path), device)
    entry.training_log, entry.run_config = _training_log(path), config
    if "global_step" in checkpoint:  # saved by training (a hand-made checkpoint may lack it)
        entry.run, entry.step = Path(config["run_dir"]).name, int(checkpoint["global_step"])
    entry.pretraining_labels = _pretraining_labels(config)
    entry.pretraining_augmentations = pretraining_augmentations(config)
    return entry


def resolve_models(
    models: Mapping[str, str | os.PathLike | Encoder], *, baselines: bool = True, seed: int = 0, device="cpu",
    broken: dict[str, str] | None = None,
) -> list[ModelEntry]:
    """The models to evaluate, followed (``baselines``) by a random-init copy of every distinct
    checkpoint architecture and by MFCC+chroma statistics at the first model's sample rate.

    A model is a checkpoint path, an ``Encoder``, ``hear:PACKAGE.MODULE[:WEIGHTS]`` (``hear_models``) or
    ``onnx:FILE`` or ``pt2:FILE`` (``exported_models``);
    a HEAR module that fails to load or to embed a trial clip is left out and its problem put in
    ``broken`` ({name: one line}), or raised where ``broken`` is None."""
    if not models:
        raise ValueError("give at least one model: {name: checkpoint path or Encoder}")
    entries, architectures, architecture_of = [], {}, {}
    for name, model in models.items():
        if isinstance(model, Encoder):
            entries.append(_entry(name, model, model, "encoder", type(model).__name__, device))
            continue
        if is_hear_source(model):
            try:
                hear = load_hear_encoder(model)
            except BrokenModel as error:
                if broken is None:
                    raise
                broken[name] = str(error)
                continue
            entries.append(_entry(name, hear, hear, "encoder", hear.describe(), device))
            continue
        if is_exported_source(model):
            exported = load_exported_encoder(model)
            entries.append(_entry(name, exported, exported, "encoder", exported.describe(), device))
            continue
        entry = _checkpoint_entry(name, Path(model), device)
        entries.append(entry)
        config = entry.run_config
        # the encoder's settings and the run's one sample rate make an architecture
        architecture_of[name] = json.dumps([config["encoder"], config["data"]["sample_rate"]], sort_keys=True)
        architectures.setdefault(architecture_of[name], (config, Path(model), name))
    if not entries:
        raise BrokenModel(f"no model could be loaded: {'; '.join(broken.values())}")
    if baselines:
        numbered = len(architectures) > 1
        twins = {}
        for key, (config, path, first_model) in architectures.items():
            twins[key] = f"{config['encoder']['name']} random-init" + (f" ({first_model})" if numbered else "")
            random_weights = random_init_encoder(config, seed)
            entries.append(_entry(twins[key], random_weights, random_weights, "random-init",
                                  f"architecture of {path}", device))
        for entry in entries:
            if entry.name in architecture_of:
                entry.twin = twins[architecture_of[entry.name]]
        handcrafted = HandcraftedFeatures(entries[0].encoder.sample_rate)
        entries.append(_entry("mfcc-chroma", handcrafted, handcrafted, "handcrafted", "MFCC + chroma mean/std", device))
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique (baselines add 'random-init' and 'mfcc-chroma'): {names}")
    return entries
