"""COLA's loss (Saeed et al., ICASSP 2021): bilinear similarity a^T W p, softmax over every positive of the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mucon.distributed import gather_with_grad
from mucon.precision import full_precision

# Keras' ``random_normal`` (standard deviation 0.05), which the COLA and MSCOL releases initialise W with.
BILINEAR_INIT_STD = 0.05


def bilinear_loss(anchors: torch.Tensor, candidates: torch.Tensor, weight: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """Mean over anchors of the cross-entropy of softmax_j(a_i^T W c_j) towards column targets[i].

    anchors [n, d], candidates [N, d], weight W [d, d], targets [n] (column indices into candidates).
    Unlike NT-Xent there is no temperature and no excluded column: every candidate, the anchor's own
    positive included, is a column of the softmax. Log-softmax keeps it finite for any logits.
    """
    logits = anchors @ weight @ candidates.T
    return F.cross_entropy(logits, targets)


class BilinearLoss(nn.Module):
    """COLA's loss over the global batch: each anchor against the positives of every process.

    Owns the learned ``dim x dim`` similarity matrix W. Positives are gathered with gradient, so a
    per-process mean and DDP's gradient average give exactly the single-process loss and gradients.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim) * BILINEAR_INIT_STD)

    @full_precision
    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """anchors and positives [n, d]: row k of each is one pair."""
        candidates, offset = gather_with_grad(positives)
        targets = offset + torch.arange(anchors.shape[0], device=anchors.device)
        return bilinear_loss(anchors, candidates, self.weight, targets)
