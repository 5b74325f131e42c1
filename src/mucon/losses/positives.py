"""Which pairs of embeddings count as positives: views of one clip, (SemiSupCon) clips sharing labels, and
(a composed method) clips cut from the same source recording."""

from __future__ import annotations

import torch


def positive_mask(
    clip_ids: torch.Tensor,
    candidate_clip_ids: torch.Tensor,
    labels: torch.Tensor | None = None,
    candidate_labels: torch.Tensor | None = None,
    *,
    min_shared_labels: int = 1,
    weighted: bool = False,
    items: torch.Tensor | None = None,
    candidate_items: torch.Tensor | None = None,
) -> torch.Tensor:
    """Target matrix P [n, N] between anchors and candidates, values in [0, 1].

    P_ssl = 1 where both are views of the same clip. With labels (multi-hot rows, all-zero for an
    unlabelled clip; single-label tasks one-hot), P_sl = 1 where the two share at least
    `min_shared_labels` positive labels, or, `weighted`, 2|y_i & y_j| / (|y_i| + |y_j|) (SemiSupCon).
    With ``items`` (each embedding's store item), P_item = 1 where both were cut from the same recording: two
    clips of one track in a global batch are then positives, not negatives. The result is
    1[P_ssl + P_sl + P_item > 0], or min(1, P_ssl + P_sl + P_item) when weighted. The anchor's own column
    is not removed here: the loss excludes it.
    """
    same_clip = (clip_ids[:, None] == candidate_clip_ids[None, :]).to(torch.float32)
    if items is not None:
        if candidate_items is None:
            raise ValueError("items given for the anchors but not for the candidates")
        same_clip = torch.maximum(same_clip, (items[:, None] == candidate_items[None, :]).to(torch.float32))
    if labels is None:
        return same_clip
    if candidate_labels is None:
        raise ValueError("labels given for the anchors but not for the candidates")
    labels = labels.to(torch.float32)
    candidate_labels = candidate_labels.to(torch.float32)
    shared = labels @ candidate_labels.T
    if weighted:
        sizes = labels.sum(1)[:, None] + candidate_labels.sum(1)[None, :]
        supervised = torch.where(sizes > 0, 2 * shared / sizes.clamp_min(1), torch.zeros_like(shared))
        return (same_clip + supervised).clamp(max=1.0)
    supervised = (shared >= min_shared_labels) & (shared > 0)
    return ((same_clip > 0) | supervised).to(torch.float32)
