"""Gathering embeddings across processes so that contrastive negatives come from the global batch.

Every loss that compares an embedding with the rest of the batch calls `gather_with_grad`; under data
parallelism it returns the embeddings of every rank (in rank order) and the row at which this rank's
own embeddings start. The backward pass sums the gradient that every rank's loss sends to each row, so a
loss averaged per rank and a DDP gradient average give exactly the single-process gradient of the global
batch. CLMR's release skipped this and trained on local negatives only under DDP.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        rows = grad.shape[0] // dist.get_world_size()
        start = dist.get_rank() * rows
        return grad[start : start + rows]


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows concatenated in rank order, differentiable, and the offset of this rank's rows.

    Every rank must pass the same number of rows (the data loaders drop their last partial batch).
    """
    if not is_distributed():
        return tensor, 0
    return _AllGatherWithGrad.apply(tensor), dist.get_rank() * tensor.shape[0]


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' rows concatenated in rank order, without gradient (ids, labels)."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)
