"""The contrastive loss core: SupCon's L_out with a general positive mask (NT-Xent is its simplest case)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mucon.distributed import gather, gather_with_grad, world_size
from mucon.losses.positives import positive_mask
from mucon.precision import full_precision


def anchor_losses(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    positives: torch.Tensor,
    anchor_columns: torch.Tensor,
    temperature: float,
    candidate_kept: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's positive-weighted cross-entropy against every other candidate, and whether it counts.

    anchors [n, d] and candidates [N, d] are L2-normalised embeddings; positives [n, N] holds each pair's
    target weight; anchor_columns [n] is each anchor's own column in the candidates, excluded from both
    the positives and the softmax denominator. For anchor i:
        l_i = -(1 / sum_j P_ij) sum_{j != i} P_ij log( exp(s_ij / t) / sum_{k != i} exp(s_ik / t) ),
    computed with log-sum-exp. Returns (l [n], counted [n]): an anchor without any positive has no loss
    (0 here) and does not count. A batch in which no anchor has a negative is an error, since nothing
    would push anything away (a batch of one clip); a few anchors without one (a labelled clip sharing
    a label with every other clip) keep their term, which only spreads their positives apart evenly.

    ``candidate_kept`` [N] (bool) leaves candidates out of the loss altogether, as neither positives nor
    negatives (a composed method's views of absent sources: zero inputs that embed alike); an anchor
    whose own column is left out does not count.
    """
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    logits = anchors @ candidates.T / temperature
    logits = logits.index_put((rows, anchor_columns), torch.tensor(float("-inf"), device=logits.device, dtype=logits.dtype))
    if candidate_kept is not None:
        logits = logits.masked_fill(~candidate_kept[None, :], float("-inf"))
        positives = positives * candidate_kept[None, :]
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = positives.to(log_prob.dtype).index_put((rows, anchor_columns), torch.tensor(0.0, device=logits.device, dtype=log_prob.dtype))
    negatives = (torch.isfinite(logits) & (positives == 0)).sum(1)  # the anchor's own column is no negative
    if not (negatives > 0).any():
        raise ValueError(
            "no anchor has a negative: every other embedding of the batch is a positive, so nothing is "
            "contrasted; use a larger batch (or fewer shared labels)"
        )
    log_prob = log_prob.masked_fill(positives == 0, 0.0)
    weight = positives.sum(1)
    counted = weight > 0
    if candidate_kept is not None:
        counted = counted & candidate_kept[anchor_columns]
    return -(positives * log_prob).sum(1) / weight.clamp_min(torch.finfo(weight.dtype).tiny), counted


def contrastive_loss(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    positives: torch.Tensor,
    anchor_columns: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """SupCon's L_out: the mean of ``anchor_losses`` over the anchors that have a positive."""
    losses, counted = anchor_losses(anchors, candidates, positives, anchor_columns, temperature)
    return losses[counted].mean()


def global_mean(losses: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """This process's share of the mean over the GLOBAL batch's counted anchors: its counted losses summed,
    over the global count, times the number of processes, so that DDP's average of the shares is the
    single-process mean even when processes count different numbers of anchors (rows left out)."""
    total = gather(counted.sum().reshape(1)).sum()
    return losses[counted].sum() * world_size() / total


class ContrastiveLoss(nn.Module):
    """Contrastive loss over the global batch: gathers embeddings (with gradient), clip ids and labels.

    Clip ids are local to each process and lie in [0, n) for n embeddings; they are offset by rank so that
    only views of the same clip on the same process are each other's self-supervised positives, while
    label positives and negatives come from every process.
    """

    def __init__(self, temperature: float = 0.1, *, min_shared_labels: int = 1, weighted: bool = False):
        super().__init__()
        self.temperature = temperature
        self.min_shared_labels = min_shared_labels
        self.weighted = weighted

    def forward(self, z: torch.Tensor, clip_ids: torch.Tensor, labels: torch.Tensor | None = None,
                items: torch.Tensor | None = None, kept: torch.Tensor | None = None) -> torch.Tensor:
        return global_mean(*self.anchor_losses(z, clip_ids, labels, items, kept))

    @full_precision
    def anchor_losses(
        self, z: torch.Tensor, clip_ids: torch.Tensor, labels: torch.Tensor | None = None,
        items: torch.Tensor | None = None, kept: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss of each of this process's anchors, whether it counts); the mean of the counted is ``forward``.

        Splitting the loss by anchor lets a method report it over subsets (SemiSupCon's labelled and
        unlabelled clips) without a second computation. ``items`` (each row's store item) makes clips of
        one recording positives across the global batch; ``kept`` (bool) leaves rows out of the loss.
        """
        z = F.normalize(z, dim=1)
        candidates, offset = gather_with_grad(z)
        rows = z.shape[0]
        process_of_row = torch.arange(candidates.shape[0], device=z.device) // rows
        candidate_ids = gather(clip_ids) + process_of_row * rows
        own_ids = clip_ids + offset
        candidate_labels = gather(labels) if labels is not None else None
        mask = positive_mask(
            own_ids, candidate_ids, labels, candidate_labels,
            min_shared_labels=self.min_shared_labels, weighted=self.weighted,
            items=items, candidate_items=gather(items) if items is not None else None,
        )
        anchor_columns = offset + torch.arange(rows, device=z.device)
        candidate_kept = gather(kept.to(torch.uint8)).bool() if kept is not None else None  # uint8: not every backend gathers bool
        return anchor_losses(candidates[offset : offset + rows], candidates, mask, anchor_columns, self.temperature,
                             candidate_kept)


def nt_xent_ids(batch_size: int, n_views: int, device: torch.device | None = None) -> torch.Tensor:
    """Clip ids for embeddings laid out view-major ([view0 of all clips, view1 of all clips, ...])."""
    return torch.arange(batch_size, device=device).repeat(n_views)
