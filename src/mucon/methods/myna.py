"""Myna (arXiv 2502.12511, 2025): contrastive learning whose only augmentation is token masking.

Two independent uniform crops of the item, a log1p mel spectrogram of each (16 kHz, 128 bands), and a
SimpleViT that sees a random ``1 - mask_ratio`` (10 %) of each view's patch tokens, drawn from the
run's seeded view generator: no pitch shift and no other change of the audio, so that pitch and key
survive pretraining, and a step costs a tenth of the tokens. With several patch shapes (Myna-Hybrid:
16 x 16 and 128 x 2), each shape encodes the same two views and the loss is the mean of the shapes'
losses, as the release; evaluation concatenates the shapes' embeddings (``SimpleViT``'s frames).

``loss: sogclr`` is the release's SogCLR (tau 0.1, gamma 0.9), indexed by the item's store index, with
one set of denominators per patch shape (the release's one loss object would mix the two shapes'
estimates); ``loss: nt_xent`` is NT-Xent over the global batch.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mucon.data.request import ANYWHERE, DataRequest
from mucon.encoders import build_projection_head
from mucon.encoders.vit import SimpleViT
from mucon.losses import ContrastiveLoss, SogCLRLoss, nt_xent_ids
from mucon.methods.base import Method, MethodParams
from mucon.methods.clmr import two_view_crops

LOSSES = ("sogclr", "nt_xent")


@dataclasses.dataclass
class MynaParams(MethodParams):
    crop_samples: int = 100000
    mask_ratio: float = 0.9  # the share of each view's tokens dropped before the transformer
    loss: str = "sogclr"  # or nt_xent
    temperature: float = 0.1
    gamma: float = 0.9  # SogCLR's weight of the batch in each item's moving denominator


class Myna(Method):
    Params = MynaParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        if self.params.loss not in LOSSES:
            raise ValueError(f"method.loss must be one of {', '.join(LOSSES)}, got {self.params.loss!r}")
        if not 0.0 <= self.params.mask_ratio < 1.0:
            raise ValueError(f"method.mask_ratio must lie in [0, 1), got {self.params.mask_ratio}")
        shapes = len(self.encoder.patch_sizes)
        if self.params.loss == "sogclr":
            self.losses = nn.ModuleList(SogCLRLoss(self.params.temperature, self.params.gamma) for _ in range(shapes))
        else:
            self.losses = nn.ModuleList(ContrastiveLoss(self.params.temperature) for _ in range(shapes))

    def build_projector(self) -> nn.Module:
        """One head on each patch shape's pooled tokens (``width``, not the concatenated ``dim``); the first
        place the base class's ``__init__`` meets the encoder, hence the check."""
        if not isinstance(self.encoder, SimpleViT):
            raise ValueError(f"myna masks a SimpleViT's tokens: set encoder.name to simple_vit, not {self.config.encoder.name!r}")
        return build_projection_head(self.config.head.name, in_dim=self.encoder.width, **self.config.head.params)

    def size_item_state(self, items: int) -> None:
        for loss in self.losses:
            if isinstance(loss, SogCLRLoss):
                loss.size_for(items)

    @property
    def data_request(self) -> DataRequest:
        return DataRequest(crop_samples=self.params.crop_samples, views=2, layout=ANYWHERE)

    def compute_loss(self, batch):
        first, second = two_view_crops(self.audio(batch))
        spectrograms = self.spectrograms(torch.cat([first, second]), None)
        keep_share = round(1.0 - self.params.mask_ratio, 12)  # 1 - 0.9 is 0.0999..98 in floats: 10 % exactly
        losses = []
        for patching, loss in enumerate(self.losses):
            z = self.projector(self.encoder.embed_kept_tokens(spectrograms, patching, keep_share, self.view_generator))
            if isinstance(loss, SogCLRLoss):
                losses.append(loss(z, batch["index"]))
            else:
                losses.append(loss(z, nt_xent_ids(first.shape[0], 2, z.device)))
        logged = {f"loss_{'x'.join(map(str, size))}": value.detach()
                  for size, value in zip(self.encoder.patch_sizes, losses)} if len(losses) > 1 else {}
        return torch.stack(losses).mean(), logged
