"""MSCOL's absence-aware loss (Garoufis et al., SMC 2023): COLA's bilinear loss with one shared null column.

A pair whose source is absent from its segment has an all-zero positive input. Its anchor (the mixture)
cannot be told apart from the others by that positive, so instead it must pick out the "null" column,
the mean embedding of the batch's zero inputs: the model learns to say that the source is absent.
"""

from __future__ import annotations

import torch

from mucon.distributed import gather, gather_with_grad
from mucon.losses.bilinear import BilinearLoss, bilinear_loss
from mucon.precision import full_precision


def absence_aware_loss(anchors: torch.Tensor, positives: torch.Tensor, present: torch.Tensor,
                       anchor_rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L = -(1/n) [ sum_{k in A} log softmax(s(a_k, .))_k + sum_{k in Z} log softmax(s(a_k, .))_null ].

    positives [N, d] and present [N] (bool) are every pair of the (global) batch; anchors [n, d] are the
    anchors this call scores, anchor_rows [n] their pairs' rows in ``positives``; s(a, p) = a^T W p.

    The candidate columns are the positives of the present pairs A, in row order, then, when any pair
    is absent (Z), ONE null column: the mean of the absent pairs' positives (the embeddings of the zero
    inputs). The absent pairs' own positives are not columns. They all embed the same input, so each
    would be a copy of the null column: the absent anchors' target would then be split over |Z| + 1
    identical columns and its probability capped at 1 / (|Z| + 1), and present anchors would be pushed
    away from the null once per absent pair. This is also what the authors' release computes.

    Defined for any mix: no absent pair gives COLA's loss; every pair absent leaves the null column as
    the only candidate, so the loss is exactly 0 and the batch teaches nothing (as in the release).
    """
    candidates = positives[present]
    n_present = candidates.shape[0]
    # a present pair's column is its rank among the present rows; an absent one targets the null column
    column_of_row = torch.cumsum(present.long(), 0) - 1
    column_of_row = torch.where(present, column_of_row, torch.full_like(column_of_row, n_present))
    if n_present < len(present):
        null = positives[~present].mean(0, keepdim=True)
        candidates = torch.cat([candidates, null])
    return bilinear_loss(anchors, candidates, weight, column_of_row[anchor_rows])


class AbsenceAwareLoss(BilinearLoss):
    """The absence-aware loss over the global batch: present positives and the null column come from every
    process (gathered with gradient), so the null column is the mean over the global batch's zero inputs."""

    @full_precision
    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """anchors and positives [n, d], present [n] bool: row k of each is one pair."""
        all_positives, offset = gather_with_grad(positives)
        all_present = gather(present.to(torch.uint8)).bool()  # uint8: not every backend gathers bool
        anchor_rows = offset + torch.arange(anchors.shape[0], device=anchors.device)
        return absence_aware_loss(anchors, all_positives, all_present, anchor_rows, self.weight)
