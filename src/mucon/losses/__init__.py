"""Losses: pure functions over embeddings and targets, each in its own file, plus gathering modules."""

from mucon.losses.absence import AbsenceAwareLoss, absence_aware_loss
from mucon.losses.bilinear import BilinearLoss, bilinear_loss
from mucon.losses.contrastive import ContrastiveLoss, contrastive_loss, nt_xent_ids
from mucon.losses.cross_correlation import CrossCorrelationLoss, cross_correlation_loss
from mucon.losses.hard_negative import HardNegativeLoss, hard_negative_loss
from mucon.losses.positives import positive_mask
from mucon.losses.sogclr import SogCLRLoss, sogclr_loss

__all__ = [
    "AbsenceAwareLoss",
    "BilinearLoss",
    "ContrastiveLoss",
    "CrossCorrelationLoss",
    "HardNegativeLoss",
    "SogCLRLoss",
    "absence_aware_loss",
    "bilinear_loss",
    "contrastive_loss",
    "cross_correlation_loss",
    "hard_negative_loss",
    "nt_xent_ids",
    "positive_mask",
    "sogclr_loss",
]
