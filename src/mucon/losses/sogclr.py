"""SogCLR (Yuan et al., ICML 2022), the loss Myna's release trains with (libauc's ``GCLoss_v1``).

NT-Xent's softmax denominator is estimated from the batch alone, which is why SimCLR needs large
batches. SogCLR keeps, for every item of the dataset, a moving average u_i of its mean over negatives of
exp(s / t), and weights each negative by exp(s / t) / u_i: the gradient of t times a global contrastive
loss, with a small batch. The loss value is the release's surrogate (its gradient is the one that
counts): for anchor a with positive p and negatives N(a),
    l_a = -s_ap + (1 / |N(a)|) sum_{n in N(a)} sg[exp(s_an / t) / u_a] s_an,
    u_a = (1 - gamma) u_i + gamma (1 / |N(a)|) sum_{n in N(a)} exp(s_an / t),
where sg is stop-gradient and i is a's item. An item's two views each make such an estimate from the
item's stored u_i; u_i then becomes their mean. A never-seen item (u_i = 0) takes the batch's estimate
outright (gamma = 1): the release's constant schedule does so for its first epoch, in which every item
is seen for the first time.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mucon.distributed import gather, gather_with_grad
from mucon.precision import full_precision


def sogclr_loss(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    anchor_columns: torch.Tensor,
    positive_columns: torch.Tensor,
    stored: torch.Tensor,
    temperature: float,
    gamma: float,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's surrogate loss and its updated denominator estimate u (module docstring).

    anchors [n, d] and candidates [N, d] are L2-normalised; anchor_columns and positive_columns [n] are
    each anchor's own and its positive's column in the candidates: every other candidate is a negative.
    ``stored`` [n]: the u of each anchor's item before this step (0: never seen). Returns (l [n], u [n]),
    u detached.
    """
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    similarities = anchors @ candidates.T
    negatives = torch.ones_like(similarities, dtype=torch.bool)
    negatives[rows, anchor_columns] = False
    negatives[rows, positive_columns] = False
    count = negatives.sum(1)
    exponentials = torch.exp(similarities / temperature).masked_fill(~negatives, 0.0)
    batch_estimate = exponentials.sum(1) / count
    weight_of_batch = torch.where(stored > 0, torch.full_like(stored, gamma), torch.ones_like(stored))
    estimate = ((1 - weight_of_batch) * stored + weight_of_batch * batch_estimate).detach()
    weights = (exponentials / estimate.clamp(min=eps).unsqueeze(1)).detach()
    losses = -similarities[rows, positive_columns] + (weights * similarities).sum(1) / count
    return losses, estimate


class SogCLRLoss(nn.Module):
    """SogCLR over the global batch, with each item's u in a buffer (so a checkpoint carries it and a
    resume continues it exactly).

    ``forward(z, items)``: z [2b, d] this process's two views laid out view-major ([first views; second
    views]) and items [b] their items' store indices. Embeddings and items are gathered from every
    process: each process's anchors meet the global batch's negatives, and every process writes the whole
    global batch's new u, so the buffers stay equal across processes (the release gathered the
    embeddings but left its loss's ``distributed`` off, so each rank computed the whole batch's loss and
    its gradient counted once per rank). The loss is the mean over this process's items of their two
    views' losses, as the release's; with DDP's gradient average it is the single-process global batch's.

    The buffer grows to the largest item index it meets; ``size_for(items)`` sets it up front so that a
    fresh run's model has its checkpoint's shape, and loading a state dict takes the saved size.
    """

    def __init__(self, temperature: float = 0.1, gamma: float = 0.9, eps: float = 1e-8):
        super().__init__()
        self.temperature = temperature
        self.gamma = gamma
        self.eps = eps
        self.register_buffer("denominators", torch.zeros(0))

    def size_for(self, items: int) -> None:
        """Hold a u for each of ``items`` items (those already held keep theirs)."""
        grown = self.denominators.new_zeros(max(items, self.denominators.numel()))
        grown[: self.denominators.numel()] = self.denominators
        self.denominators = grown

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "denominators")
        if saved is not None:
            self.denominators = self.denominators.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args)

    @full_precision
    def forward(self, z: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        z = F.normalize(z, dim=1)
        candidates, offset = gather_with_grad(z)
        rows, clips = z.shape[0], items.shape[0]
        if rows != 2 * clips:
            raise ValueError(f"SogCLR takes two views per item: {rows} embeddings for {clips} items")
        all_items = gather(items)
        self.size_for(int(all_items.max()) + 1)
        own = torch.arange(rows, device=z.device)
        losses, estimates = sogclr_loss(
            candidates[offset : offset + rows], candidates, offset + own, offset + (own + clips) % rows,
            self.denominators[items.repeat(2)].to(z.dtype), self.temperature, self.gamma, self.eps,
        )
        per_item = (estimates[:clips] + estimates[clips:]) / 2
        # an item drawn twice in one batch keeps the mean of its estimates, in any order
        self.denominators.scatter_reduce_(0, all_items, gather(per_item).to(self.denominators.dtype), "mean",
                                          include_self=False)
        return losses.sum() / clips
