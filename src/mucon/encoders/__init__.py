"""Encoders (waveform -> frames ``[B, T, D]``) and projection heads, built by name from configs."""

from __future__ import annotations

from torch import nn

from mucon.encoders.base import Encoder, SpectrogramEncoder, pool_frames
from mucon.encoders.efficientnet import EfficientNetB0, EfficientNetB0Backbone
from mucon.encoders.fcn import PEMRCNN
from mucon.encoders.heads import COLAHead, LinearHead, ProjectionHead
from mucon.encoders.samplecnn import SampleCNN
from mucon.encoders.small_cnn import SmallCNN
from mucon.encoders.vit import SimpleViT
from mucon.user_code import import_named, is_import_path

ENCODERS: dict[str, type[Encoder]] = {
    "samplecnn": SampleCNN,
    "pemr_cnn": PEMRCNN,
    "efficientnet_b0": EfficientNetB0,
    "small_cnn": SmallCNN,
    "simple_vit": SimpleViT,
}

PROJECTION_HEADS: dict[str, type[nn.Module]] = {
    "projection": ProjectionHead,
    "cola": COLAHead,
    "linear": LinearHead,
}


def _lookup(registry: dict, kind: str, name: str, base: type):
    """A built-in by name, or the user's own subclass of ``base`` by import path (``my_lab.encoders:MyEncoder``)."""
    if is_import_path(name):
        return import_named(name, base, f"{kind}.name")
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(registry)}") from None


def build_encoder(name: str, **kwargs) -> Encoder:
    """Encoder by config name, e.g. ``build_encoder("samplecnn", input_samples=59535)``."""
    return _lookup(ENCODERS, "encoder", name, Encoder)(**kwargs)


def build_run_encoder(config) -> Encoder:
    """The encoder a run config names, at the run's one sample rate (``data.sample_rate``)."""
    return build_encoder(config.encoder.name, sample_rate=config.data.sample_rate, **config.encoder.params)


def build_projection_head(name: str, **kwargs) -> nn.Module:
    """Projection head by config name (``head.name``), e.g.
    ``build_projection_head("projection", in_dim=512, hidden_dim=512, out_dim=128)``; the probe heads of
    evaluation are another thing (``mucon.evaluation.probes``)."""
    return _lookup(PROJECTION_HEADS, "head", name, nn.Module)(**kwargs)


__all__ = [
    "COLAHead",
    "EfficientNetB0",
    "EfficientNetB0Backbone",
    "LinearHead",
    "ENCODERS",
    "Encoder",
    "PEMRCNN",
    "PROJECTION_HEADS",
    "ProjectionHead",
    "SampleCNN",
    "SimpleViT",
    "SmallCNN",
    "SpectrogramEncoder",
    "build_encoder",
    "build_projection_head",
    "build_run_encoder",
    "pool_frames",
]
