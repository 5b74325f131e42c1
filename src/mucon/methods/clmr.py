"""CLMR (Spijkervet & Burgoyne, ISMIR 2021): SimCLR on raw waveforms.

Two views, each its own random crop of the item (as the release, whose per-view chain starts with
RandomResizedCrop: positives then differ in where in the piece they are), each through the CLMR
augmentation chain independently; NT-Xent over the 2B embeddings of the global batch (every process's
embeddings are negatives, unlike the release). ``crop_per_view: false`` augments ONE crop twice instead,
for ablations: positives then share every sample.
"""

from __future__ import annotations

import dataclasses

import torch

from mucon.audio.chains import clmr_chain
from mucon.data.request import ANYWHERE, DataRequest
from mucon.losses import ContrastiveLoss, nt_xent_ids
from mucon.methods.base import Method, MethodParams


@dataclasses.dataclass
class CLMRParams(MethodParams):
    crop_samples: int = 59049
    temperature: float = 0.5
    pitch_shift: bool = True
    crop_per_view: bool = True  # false: one crop, augmented twice (an ablation)


class CLMR(Method):
    Params = CLMRParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        self.augment = clmr_chain(config.data.sample_rate, pitch_shift=self.params.pitch_shift)
        self.loss = ContrastiveLoss(self.params.temperature)

    @property
    def data_request(self) -> DataRequest:
        return view_crops_request(self.params.crop_samples, self.params.crop_per_view)

    def compute_loss(self, batch):
        first, second = two_view_crops(self.audio(batch))
        views = torch.cat([self.augment(first, self.view_generator), self.augment(second, self.view_generator)])
        z = self.project(views)
        return self.loss(z, nt_xent_ids(first.shape[0], 2, z.device)), {}


def view_crops_request(crop_samples: int, crop_per_view: bool) -> DataRequest:
    """CLMR's and PEMR's data: two independent crops anywhere in the item, or one crop to augment twice."""
    if crop_per_view:
        return DataRequest(crop_samples=crop_samples, views=2, layout=ANYWHERE)
    return DataRequest(crop_samples=crop_samples)


def two_view_crops(audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 1 or 2, T]`` -> the crops the two views are made from (the same one twice when one was cut)."""
    return audio[:, 0], audio[:, -1]
