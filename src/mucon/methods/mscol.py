"""MSCOL (Garoufis, Zlatintsi & Maragos, SMC 2023): COLA with the mixture as anchor and one source as positive.

Anchor: a ~1 s crop of a 4 s mixture segment. Positive: an independent crop of ONE source of the same
segment (each at the level of its whole mixture or stem, as the release L2-normalises each whole stem
before cropping: a near-silent crop of a present stem stays near-silent), the source type drawn per mini-batch from ``sources`` (all four: the multi-source model; one:
a source-targeted model). Absence-aware mode: a seeded coin per batch (``present_only_probability``)
chooses between batches of clips whose source is present and batches drawn regardless of presence;
there an absent source (mean |x| of the stem over the segment below ``presence_threshold``) gives an
all-zero positive, and its anchor must pick the shared null column (``mucon.losses.absence``).
"""

from __future__ import annotations

import dataclasses

import torch

from mucon.config import ConfigError
from mucon.data.layouts import SOURCE_TYPES
from mucon.data.request import INDEPENDENT, DataRequest
from mucon.encoders import SpectrogramEncoder
from mucon.losses import AbsenceAwareLoss
from mucon.methods.base import Method, MethodParams


@dataclasses.dataclass
class MSCOLParams(MethodParams):
    crop_samples: int = 16000  # 1 s at 16 kHz: 98 frames of the COLA front end
    segment_samples: int = 64000  # 4 s: the mixture and source crops of a pair lie inside one segment
    sources: list[str] = dataclasses.field(default_factory=lambda: list(SOURCE_TYPES))
    present_only_probability: float = 0.5  # 1.0: every batch present-only, the absence-aware mode off
    presence_threshold: float = 0.01


class MSCOL(Method):
    Params = MSCOLParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        sources = self.params.sources
        unknown = [name for name in sources if name not in SOURCE_TYPES]
        if not sources or unknown or len(set(sources)) < len(sources):
            raise ConfigError(f"method.sources: {sources} must name distinct source types among {', '.join(SOURCE_TYPES)}")
        if not isinstance(self.encoder, SpectrogramEncoder):
            # the release feeds an absent source as an all-zero input to the network: a zero spectrogram
            raise ConfigError(f"method mscol: encoder {config.encoder.name!r} takes waveforms; MSCOL needs a "
                              "spectrogram encoder (efficientnet_b0, small_cnn) to give absent sources zero inputs")
        self.loss = AbsenceAwareLoss(self.projector.out_dim)

    @property
    def data_request(self) -> DataRequest:
        return DataRequest(
            crop_samples=self.params.crop_samples, layout=INDEPENDENT, segment_samples=self.params.segment_samples,
            sources=tuple(self.params.sources), source_per_batch=True,
            present_only_probability=self.params.present_only_probability,
            presence_threshold=self.params.presence_threshold, item_level=self.scales_by_item_level,
        )

    def compute_loss(self, batch):
        """Mixture and source crops through the network in one batch (shared batch-norm statistics, as in
        the release), the spectrograms of absent sources set to zero.

        Presence is read from every batch: a present-only batch thus gives COLA's loss between mixture and
        source, and the rare clip of it whose segment still lacks the source (the data module settles for
        the loudest segment it finds) is scored as absent, as it should be.
        """
        mixture = self.audio(batch)[:, 0]
        source = self.audio(batch, "sources")[:, 0]
        present = batch["source_present"][:, 0].bool()
        level = self.item_level(batch)
        if level is not None:
            level = torch.cat([level, self.item_level(batch, "source_level")[:, 0]])
        spectrograms = self.spectrograms(torch.cat([mixture, source]), level)
        zero_input = torch.cat([torch.zeros_like(present), ~present])
        spectrograms = spectrograms.masked_fill(zero_input[:, None, None], 0.0)
        embeddings = self.project_spectrogram(spectrograms)
        anchors, positives = embeddings.chunk(2)
        return self.loss(anchors, positives, present), {"source_present": present.float().mean()}
