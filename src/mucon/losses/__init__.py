"""Losses: pure functions over embeddings and targets, each in its own file, plus gathering modules."""

from mucon.losses.absence import AbsenceAwareLoss, absence_aware_loss
from mucon.losses.bilinear import BilinearLoss, bilinear_loss
from mucon.losses.contrastive import ContrastiveLoss, contrastive_loss, nt_xent_ids
from mucon.losses.positives import positive_mask

__all__ = [
    "AbsenceAwareLoss",
    "BilinearLoss",
    "ContrastiveLoss",
    "absence_aware_loss",
    "bilinear_loss",
    "contrastive_loss",
    "nt_xent_ids",
    "positive_mask",
]
