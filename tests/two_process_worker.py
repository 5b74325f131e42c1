"""One rank of the two-process gloo check; run by tests/test_distributed.py, writes its loss and gradients.

``objective`` names what the rank computes on its share of the batch: ``supcon`` (views and labels,
``ContrastiveLoss`` with T shared labels or Dice weights), ``composed`` (the same, plus clips of one store
item as positives and rows left out, as a composed method's absent sources) or ``pemr``: each of PEMR's objectives over
(anchor, positive, negative) triples, one after the other in the same process group (one start-up).
"""

import sys

import torch
import torch.distributed as dist

from mucon.losses import ContrastiveLoss, CrossCorrelationLoss, HardNegativeLoss, nt_xent_ids

TRIPLE_OBJECTIVES = {"hard_negative": lambda: HardNegativeLoss(0.3), "cross_correlation": lambda: CrossCorrelationLoss(0.1, 0.5)}


def global_batch(clips_per_rank: int, world_size: int, n_views: int):
    """The same inputs and labels on every rank and in the single-process reference, rank-major."""
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(world_size, n_views * clips_per_rank, 6, generator=generator)
    labels = (torch.rand(world_size, clips_per_rank, 4, generator=generator) < 0.6).float()
    labels[:, ::2] = 0  # half the clips unlabelled
    return inputs, labels.repeat(1, n_views, 1)


def items_and_kept(clips_per_rank: int, world_size: int, n_views: int):
    """Each row's store item (shared across ranks: clips of one track on both) and whether it is kept, rank-major."""
    generator = torch.Generator().manual_seed(11)
    items = torch.randint(clips_per_rank, (world_size, clips_per_rank), generator=generator).repeat(1, n_views)
    kept = torch.rand(world_size, clips_per_rank * n_views, generator=generator) > 0.25
    return items, kept


def model():
    torch.manual_seed(3)
    return torch.nn.Linear(6, 8)


def triple_loss(objective: str, embeddings_per_rank: list[torch.Tensor]) -> torch.Tensor:
    """A PEMR objective over the ranks' embeddings, each laid out [anchors; positives; negatives]."""
    parts = [z.chunk(3) for z in embeddings_per_rank]
    anchors, positives, negatives = (torch.cat([part[role] for part in parts]) for role in range(3))
    return TRIPLE_OBJECTIVES[objective]()(anchors, positives, negatives)


def averaged(loss: torch.Tensor, parameters: list[torch.Tensor]) -> dict:
    """Backward, then what DDP does: the loss and gradients averaged over ranks."""
    world_size = dist.get_world_size()
    loss.backward()
    for parameter in parameters:
        dist.all_reduce(parameter.grad)
        parameter.grad /= world_size
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    return {"loss": mean_loss / world_size, "grads": [p.grad for p in parameters]}


def main(rank: int, world_size: int, store_file: str, out_file: str, clips_per_rank: int, n_views: int,
         objective: str, *settings: str):
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world_size)
    inputs, labels = global_batch(clips_per_rank, world_size, n_views)
    if objective in ("supcon", "composed"):
        min_shared_labels, weighting = settings
        net = model()
        loss_fn = ContrastiveLoss(0.2, min_shared_labels=int(min_shared_labels), weighted=weighting == "weighted")
        items, kept = (part[rank] for part in items_and_kept(clips_per_rank, world_size, n_views))
        composed = (items, kept) if objective == "composed" else ()
        loss = loss_fn(net(inputs[rank]), nt_xent_ids(clips_per_rank, n_views), labels[rank], *composed)
        result = averaged(loss, list(net.parameters()))
    else:
        result = {}
        for name in TRIPLE_OBJECTIVES:
            net = model()
            result[name] = averaged(triple_loss(name, [net(inputs[rank])]), list(net.parameters()))
    torch.save(result, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), *sys.argv[7:])
