"""PEMR's objective as the authors' released code trains it: Barlow-Twins-style cross-correlations.

With BN the standardisation of each projection dimension over the batch,
C+ = BN(z_i)^T BN(z_pos) / B and C- = BN(z_i)^T BN(z_neg) / B, and
    L = sum_d (1 - C+_dd)^2 + w_off sum_{d != e} (C+_de)^2 + w_neg sum_d (C-_dd)^2:
the positive agrees with the anchor dimension by dimension, dimensions stay decorrelated, and the
self-augmented negative is driven to be uncorrelated with the anchor.
"""

from __future__ import annotations

import torch
from torch import nn

from mucon.distributed import gather_with_grad

BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm1d's, which the release used


def batch_standardise(z: torch.Tensor, eps: float = BATCH_NORM_EPS) -> torch.Tensor:
    """Each column to zero mean and unit (biased) variance over the rows: batch norm in training
    mode without the affine part (a learnable scale and shift could satisfy the diagonal target
    without the embeddings agreeing)."""
    centred = z - z.mean(dim=0, keepdim=True)
    return centred / torch.sqrt(centred.pow(2).mean(dim=0, keepdim=True) + eps)


def cross_correlation_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    off_diagonal_weight: float = 5e-3,
    negative_weight: float = 5e-3,
) -> torch.Tensor:
    """The loss above for [B, d] projections of the whole (global) batch; row b of each is clip b."""
    batch = anchors.shape[0]
    if batch < 2:
        raise ValueError("the cross-correlation objective needs at least 2 clips: batch statistics of one are undefined")
    anchors, positives, negatives = (batch_standardise(z) for z in (anchors, positives, negatives))
    positive_correlation = anchors.T @ positives / batch
    negative_correlation = anchors.T @ negatives / batch
    diagonal = torch.diagonal(positive_correlation)
    off_diagonal = positive_correlation.pow(2).sum() - diagonal.pow(2).sum()
    return ((1 - diagonal).pow(2).sum() + off_diagonal_weight * off_diagonal
            + negative_weight * torch.diagonal(negative_correlation).pow(2).sum())


class CrossCorrelationLoss(nn.Module):
    """The released objective over the GLOBAL batch: the projections of every process are gathered
    (with gradient) before the batch statistics and correlation matrices are taken, so data parallelism
    gives the single-process loss and gradients (the release synchronised its batch norm but took the
    correlations per process)."""

    def __init__(self, off_diagonal_weight: float = 5e-3, negative_weight: float = 5e-3):
        super().__init__()
        self.off_diagonal_weight = off_diagonal_weight
        self.negative_weight = negative_weight

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        gathered = [gather_with_grad(z.float())[0] for z in (anchors, positives, negatives)]
        with torch.autocast(anchors.device.type, enabled=False):  # sums of d^2 terms: float32 even in mixed precision
            return cross_correlation_loss(*gathered, self.off_diagonal_weight, self.negative_weight)
