"""CLMR (Spijkervet & Burgoyne, ISMIR 2021): SimCLR on raw waveforms.

Two views of one random crop, each through the CLMR augmentation chain independently; NT-Xent over the
2B embeddings of the global batch (every process's embeddings are negatives, unlike the release).
"""

from __future__ import annotations

import dataclasses

import torch

from mucon.audio.chains import clmr_chain
from mucon.data.request import DataRequest
from mucon.losses import ContrastiveLoss, nt_xent_ids
from mucon.methods.base import Method, MethodParams


@dataclasses.dataclass
class CLMRParams(MethodParams):
    crop_samples: int = 59049
    temperature: float = 0.5
    pitch_shift: bool = True


class CLMR(Method):
    Params = CLMRParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        self.augment = clmr_chain(config.data.sample_rate, pitch_shift=self.params.pitch_shift)
        self.loss = ContrastiveLoss(self.params.temperature)

    @property
    def data_request(self) -> DataRequest:
        return DataRequest(crop_samples=self.params.crop_samples)

    def compute_loss(self, batch):
        audio = self.audio(batch)[:, 0]
        views = torch.cat([self.augment(audio, self.view_generator), self.augment(audio, self.view_generator)])
        z = self.project(views)
        return self.loss(z, nt_xent_ids(audio.shape[0], 2, z.device)), {}
