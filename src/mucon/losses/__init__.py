"""Losses: pure functions over embeddings and targets, each in its own file, plus gathering modules."""

from mucon.losses.contrastive import ContrastiveLoss, contrastive_loss, nt_xent_ids
from mucon.losses.positives import positive_mask

__all__ = ["ContrastiveLoss", "contrastive_loss", "nt_xent_ids", "positive_mask"]
