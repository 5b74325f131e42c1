"""The training loop every method shares: make views -> encode -> project -> loss.

A method is a small subclass that says what data it needs (a ``DataRequest``), how it turns a batch
into views, and which loss compares them; logging, the optimiser, the seeded view generator and what
a checkpoint carries (resolved config, mucon version, label vocabulary, random state) live here once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

import mucon
from mucon.config import RunConfig, check_ranges, from_dict
from mucon.data.composition import BatchComposition
from mucon.data.request import DataRequest
from mucon.encoders import build_projection_head, build_run_encoder
from mucon.user_code import recorded_code


class NonFiniteLossError(ValueError):
    """The loss turned NaN or Inf: the run stops at that step, before the step's update spoils the weights."""


@dataclasses.dataclass
class MethodParams:
    name: str


class Method(L.LightningModule):
    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init__(self, config: RunConfig, label_vocabulary: list[str] | None = None):
        super().__init__()
        self.config = config
        self.params = from_dict(self.Params, config.method, where="method")
        check_ranges(self.params, "method")
        self.label_vocabulary = list(label_vocabulary or [])
        self.encoder = build_run_encoder(config)
        self.projector = self.build_projector()
        self._view_generator: torch.Generator | None = None
        self._pending_generator_state: torch.Tensor | None = None

    # --- what a method defines ---------------------------------------------------------------------
    @property
    def data_request(self) -> DataRequest:
        """What each batch must hold: crops, chunks, sources, labels (served by ``mucon.data``)."""
        raise NotImplementedError

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one batch and the extra numbers to log (``{name: value}``, logged as train/name)."""
        raise NotImplementedError

    def check_composition(self, composition: BatchComposition) -> None:
        """Handed, once before training, how the run's batches mix labelled and unlabelled items: a method
        warns here about settings of its own that those batches make moot (by default nothing to check)."""

    def size_item_state(self, items: int) -> None:
        """Handed, once before training (and before a resume checks its checkpoint's shapes), how many
        items the store holds: a method that keeps state per item (Myna's SogCLR denominators) sizes it
        here, so that its checkpoint's shapes are fixed from the first step (by default nothing)."""

    def build_projector(self) -> nn.Module:
        return build_projection_head(self.config.head.name, in_dim=self.encoder.dim, **self.config.head.params)

    # --- shared pieces -----------------------------------------------------------------------------
    @property
    def view_generator(self) -> torch.Generator:
        """The one source of randomness for views on the model's device, seeded per process."""
        if self._view_generator is None or self._view_generator.device != self.device:
            self._view_generator = torch.Generator(device=self.device)
            self._view_generator.manual_seed(self.config.seed * 1_000_003 + self.global_rank)
            if self._pending_generator_state is not None:
                self._view_generator.set_state(self._pending_generator_state)
                self._pending_generator_state = None
        return self._view_generator

    @staticmethod
    def audio(batch: dict[str, torch.Tensor], key: str = "audio") -> torch.Tensor:
        """The batch's int16 crops ``[B, views, samples]`` as float waveforms in [-1, 1)."""
        return batch[key].float() / 32768.0

    def project(self, waveforms: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        """Projections of crops; ``level``: their items' RMS, for a frontend that scales by it."""
        return self.projector(self.encoder.embed(waveforms, level))

    def project_spectrogram(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Projections of a spectrogram encoder's frontend output ``[B, n_mels, frames]``: for a method
        that changes the spectrograms between frontend and backbone (MSCOL's absent sources, PEMR's masks)."""
        return self.projector(self.encoder.embed_spectrogram(spectrogram))

    @property
    def scales_by_item_level(self) -> bool:
        """Whether the encoder scales each crop by its whole item's level, so that the data must bring
        that level with the crop."""
        return self.encoder.scales_by_item_level

    def item_level(self, batch: dict[str, torch.Tensor], key: str = "level") -> torch.Tensor | None:
        """The batch's item levels where the frontend scales by them (else None)."""
        return batch[key] if self.scales_by_item_level else None

    def spectrograms(self, waveforms: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        """The encoder's frontend on ``waveforms``, at their items' ``level`` when given."""
        return self.encoder.spectrogram(waveforms, level)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logged = self.compute_loss(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"train/loss is {loss.item()} at step {self.global_step}")
        batch_size = batch["audio"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        for name, value in logged.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        return loss

    def configure_optimizers(self) -> Any:
        settings = self.config.optimizer
        optimizer = torch.optim.Adam(self.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        if settings.halve_lr_at_fraction is None:
            return optimizer
        milestone = max(1, int(self.config.trainer.max_steps * settings.halve_lr_at_fraction))
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[milestone], gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mucon"] = {
            "version": mucon.__version__,
            "user_code": recorded_code(self.config),  # {import path: version} of the user's own classes
            "config": self.config.to_dict(),
            "label_vocabulary": self.label_vocabulary,
            "view_generator_state": self.view_generator.get_state(),
            # dropout and any other draw from torch's global generator, so that a resumed run is exact
            "torch_rng_state": torch.get_rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_generator_state = checkpoint["mucon"]["view_generator_state"]
        self._view_generator = None
        if "torch_rng_state" in checkpoint["mucon"]:
            torch.set_rng_state(checkpoint["mucon"]["torch_rng_state"])
