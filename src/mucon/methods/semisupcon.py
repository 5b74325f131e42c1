"""SemiSupCon (Guinot, Quinton & Fazekas, ISMIR 2024): labels add positives to the self-supervised ones.

Each clip gives N views: N adjacent, non-overlapping chunks of one random excerpt, each through the
SemiSupCon chain: its gate and filter type drawn once per clip and shared by the N views, its leaf
transforms drawn per view (as the release's per-batch Compose and OneOf on one clip's views). A batch holds floor(b_s x B) clips from the labelled pool (the seeded
fraction p_s of labelled items that keep their labels) and the rest from the unlabelled pool.
Positives: views of one clip, and labelled clips sharing at least T labels (weighted: their Dice
overlap). One SupCon loss (L_out, tau 0.1) over the global batch: the balance between supervision and
self-supervision comes only from b_s (0: pure self-supervision, 1: supervised contrastive learning).

Logged next to the total: the same per-anchor terms averaged over this process's labelled and
unlabelled anchors (the release instead logged separate losses on the labelled-only and unlabelled-
only sub-batches), and the number of labelled clips in the batch.
"""

from __future__ import annotations

import dataclasses

from lightning.pytorch.utilities import rank_zero_warn

from mucon.audio.augment import ClipGroups
from mucon.audio.chains import semisupcon_chain
from mucon.data.composition import BatchComposition
from mucon.data.request import ADJACENT, DataRequest
from mucon.losses import ContrastiveLoss, nt_xent_ids
from mucon.methods.base import Method, MethodParams


@dataclasses.dataclass
class SemiSupConParams(MethodParams):
    chunk_samples: int = 59535
    views: int = 2  # N
    labelled_share: float = 0.5  # b_s
    labelled_keep: float = 1.0  # p_s
    min_shared_labels: int = 1  # T
    weighted: bool = False  # Dice overlap of the label sets instead of "at least T shared"
    temperature: float = 0.1
    severity: float = 1.0


class SemiSupCon(Method):
    Params = SemiSupConParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        if self.params.views < 2:
            raise ValueError(f"method.views is {self.params.views}: an unlabelled clip's only positives are its "
                             "other views, so SemiSupCon needs at least 2")
        if self.params.min_shared_labels < 1:
            raise ValueError(f"method.min_shared_labels (T) must be at least 1, got {self.params.min_shared_labels}")
        self.augment = semisupcon_chain(config.data.sample_rate, self.params.severity)
        self.loss = ContrastiveLoss(
            self.params.temperature, min_shared_labels=self.params.min_shared_labels, weighted=self.params.weighted
        )

    @property
    def data_request(self) -> DataRequest:
        return DataRequest(
            crop_samples=self.params.chunk_samples,
            views=self.params.views,
            layout=ADJACENT,
            labels=True,  # even at b_s = 0, so that the run's log says it is purely self-supervised
            labelled_share=self.params.labelled_share,
            labelled_keep=self.params.labelled_keep,
        )

    def check_composition(self, composition: BatchComposition) -> None:
        """Warn when T exceeds every item's label count: labels would add no positive, silently."""
        most = composition.most_labels_per_item
        if most and not self.params.weighted and most < self.params.min_shared_labels:
            rank_zero_warn(f"method.min_shared_labels (T) is {self.params.min_shared_labels} but no item has more than "
                           f"{most} label(s): labels add no positive, and the run is purely self-supervised")

    def compute_loss(self, batch):
        audio = self.audio(batch)  # [B, N, samples]
        clips, views, samples = audio.shape
        chunks = audio.transpose(0, 1).reshape(views * clips, samples)  # view-major, as nt_xent_ids lays out
        z = self.project(self.augment(chunks, self.view_generator, ClipGroups.view_major(clips, views, chunks.device)))
        labels = batch["labels"].repeat(views, 1) if batch["labels"].shape[1] else None  # no label column
        losses, counted = self.loss.anchor_losses(z, nt_xent_ids(clips, views, z.device), labels)
        labelled = batch["labelled"].repeat(views)
        logged = {"labelled_clips": batch["labelled"].sum().float()}
        for name, anchors in (("loss_labelled", labelled & counted), ("loss_unlabelled", ~labelled & counted)):
            if anchors.any():
                logged[name] = losses[anchors].detach().mean()
        return losses[counted].mean(), logged
