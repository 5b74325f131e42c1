"""Published models next to mucon's: a HEAR 2021 module as one more ``Encoder`` row of an evaluation.

``hear:PACKAGE.MODULE[:WEIGHTS]`` names a module with the HEAR API (``load_model``, ``sample_rate``,
``timestamp_embedding_size``, ``get_timestamp_embeddings``). Its frames ``[B, T, D]`` come from
``get_timestamp_embeddings`` at the module's own rate, a batch of evaluation windows at a time, so
the rest of evaluate (the windows, the resamples, the robustness curves) is the one every row gets.
A module that cannot be imported, loaded, or that answers a short trial clip (or, later, any window) with
the wrong shape or with NaN/Inf is a ``BrokenModel``: its row is left out, in one line, and the others
are produced.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import torch
from torch import Tensor

from mucon.encoders import Encoder
from mucon.evaluation.embed import BrokenModel

HEAR_PREFIX = "hear:"


def is_hear_source(model) -> bool:
    return isinstance(model, str) and model.startswith(HEAR_PREFIX)


class HearEncoder(Encoder):
    """A loaded HEAR module's model; windows of ``input_samples`` (default 1 s) at its ``sample_rate``."""

    pooling = "mean"

    def __init__(self, module_name: str, weights: str | None = None, input_samples: int | None = None):
        super().__init__()
        self.module_name, self.weights = module_name, weights
        self.module = importlib.import_module(module_name)
        self.version = getattr(self.module, "__version__", None) or getattr(
            importlib.import_module(module_name.split(".")[0]), "__version__", None)
        self.weights_sha256 = hashlib.sha256(Path(weights).read_bytes()).hexdigest() if weights else None
        model = self.module.load_model(weights) if weights else self.module.load_model()
        if isinstance(model, torch.nn.Module):
            self.model = model  # a submodule: moved to the evaluation's device, and its weights fingerprinted
        else:
            self._model = model
        self.sample_rate = int(model.sample_rate)
        self.dim = int(model.timestamp_embedding_size)
        self.input_samples = input_samples or self.sample_rate

    @property
    def hear_model(self):
        return self.model if "model" in self._modules else self._model

    @property
    def min_input_samples(self) -> int:
        return 1

    def describe(self) -> str:
        """The report's source of the row: module, version, weights and their SHA-256."""
        version = f" {self.version}" if self.version else ""
        weights = f", weights {self.weights} (sha256 {self.weights_sha256})" if self.weights else ", no weights file"
        return f"HEAR module {self.module_name}{version}{weights}"

    def forward(self, waveform: Tensor) -> Tensor:
        """``[B, samples]`` -> the module's timestamp embeddings ``[B, T, D]``, checked."""
        self.check_input(waveform)
        try:
            with torch.no_grad():
                frames, _ = self.module.get_timestamp_embeddings(waveform.float(), self.hear_model)
        except Exception as error:  # out of memory, or the module's own code failing in any way: its row only
            raise BrokenModel(f"{self.module_name}: {type(error).__name__}: {error}") from error
        if frames.dim() != 3 or frames.shape[0] != waveform.shape[0] or frames.shape[2] != self.dim:
            raise BrokenModel(f"{self.module_name}: get_timestamp_embeddings returned shape {tuple(frames.shape)}, "
                              f"expected [{waveform.shape[0]}, T, {self.dim}]")
        if not torch.isfinite(frames).all():
            raise BrokenModel(f"{self.module_name}: get_timestamp_embeddings returned NaN or Inf")
        return frames

    def extra_repr(self) -> str:
        return f"{self.describe()}, sample_rate={self.sample_rate}, input_samples={self.input_samples}"


def load_hear_encoder(source: str) -> HearEncoder:
    """``hear:PACKAGE.MODULE[:WEIGHTS]`` loaded and tried on a second of noise and one of silence, so that a broken module
    is found before anything is embedded; any failure is a ``BrokenModel`` naming the module."""
    module_name, _, weights = source[len(HEAR_PREFIX):].partition(":")
    try:
        encoder = HearEncoder(module_name, weights or None)
    except Exception as error:  # a module's own code can fail in any way: one line naming it, not a traceback
        raise BrokenModel(f"{module_name}: {type(error).__name__}: {error}") from error
    noise = torch.randn(encoder.input_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    encoder.eval()(torch.stack([noise, torch.zeros_like(noise)]))  # silence too: the plan times it on silence
    return encoder
