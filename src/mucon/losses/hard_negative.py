"""PEMR's objective as the paper describes it: InfoNCE with one extra, hard negative per anchor.

Each anchor (the embedding of a clean view) pulls in its positive (the other view with its least
important frames masked) and pushes away the other clips of the global batch, both their anchors
and their positives, as NT-Xent does, plus its own self-augmented negative (the same view with only
those least important frames kept): a negative built from the anchor's own music, hence hard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mucon.distributed import gather_with_grad


def hard_negative_loss(
    anchors: torch.Tensor,
    hard_negatives: torch.Tensor,
    candidates: torch.Tensor,
    positive_columns: torch.Tensor,
    anchor_columns: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean over anchors of -log( exp(s_ip / t) / (sum_{k != i} exp(s_ik / t) + exp(s_in / t)) ).

    anchors [n, d], hard_negatives [n, d] (row i belongs to anchor i) and candidates [N, d] are
    L2-normalised; positive_columns [n] is each anchor's positive among the candidates and
    anchor_columns [n] its own column, left out of the denominator. Computed with log-sum-exp.
    """
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    logits = anchors @ candidates.T / temperature
    logits = logits.index_put((rows, anchor_columns), torch.tensor(float("-inf"), device=logits.device, dtype=logits.dtype))
    hard = (anchors * hard_negatives).sum(dim=1, keepdim=True) / temperature
    denominator = torch.logsumexp(torch.cat([logits, hard], dim=1), dim=1)
    return (denominator - logits[rows, positive_columns]).mean()


class HardNegativeLoss(nn.Module):
    """The paper's objective over the global batch: anchors and positives are gathered from every
    process (with gradient) as candidates; the hard negative stays with its own anchor's process."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        anchors, positives, negatives = (F.normalize(z.float(), dim=1) for z in (anchors, positives, negatives))
        all_anchors, offset = gather_with_grad(anchors)
        all_positives, _ = gather_with_grad(positives)
        rows = offset + torch.arange(anchors.shape[0], device=anchors.device)
        candidates = torch.cat([all_anchors, all_positives])
        with torch.autocast(anchors.device.type, enabled=False):  # similarities / t in float32 even in mixed precision
            return hard_negative_loss(anchors, negatives, candidates, rows + all_anchors.shape[0], rows, self.temperature)
