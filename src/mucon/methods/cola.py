"""COLA (Saeed, Grangier & Zeghidour, ICASSP 2021): one crop of a segment against another.

Two independent ~1 s crops of the same 4 s segment, no augmentation, at the level of their whole item
(the release L2-normalises the whole clip before cropping; the ``cola`` frontend; ``cola_crop_level``
normalises each crop instead); both through the encoder
(EfficientNet-B0, global max pooling) and the COLA head (Linear -> LayerNorm -> tanh) in one batch;
each anchor picks its own positive among every positive of the global batch by the bilinear
similarity a^T W p.
"""

from __future__ import annotations

import dataclasses

import torch

from mucon.data.request import INDEPENDENT, DataRequest
from mucon.losses import BilinearLoss
from mucon.methods.base import Method, MethodParams


@dataclasses.dataclass
class COLAParams(MethodParams):
    crop_samples: int = 16000  # 1 s at 16 kHz: 98 frames of the COLA front end
    segment_samples: int = 64000  # 4 s: both crops of a pair lie inside one segment


class COLA(Method):
    Params = COLAParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        self.loss = BilinearLoss(self.projector.out_dim)

    @property
    def data_request(self) -> DataRequest:
        return DataRequest(crop_samples=self.params.crop_samples, views=2, layout=INDEPENDENT,
                           segment_samples=self.params.segment_samples, item_level=self.scales_by_item_level)

    def compute_loss(self, batch):
        audio = self.audio(batch)
        level = self.item_level(batch)
        crops = torch.cat([audio[:, 0], audio[:, 1]])
        anchors, positives = self.project(crops, None if level is None else level.repeat(2)).chunk(2)
        return self.loss(anchors, positives), {}
