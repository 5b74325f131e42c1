"""One rank of the two-process gloo check; run by tests/test_distributed.py, writes its loss and gradients.

``objective`` names what the rank computes on its share of the batch: ``supcon`` (views and labels,
``ContrastiveLoss`` with T shared labels or Dice weights), ``composed`` (the same, plus clips of one store
item as positives and rows left out, as a composed method's absent sources), ``pemr``: each of PEMR's
objectives over (anchor, positive, negative) triples, one after the other in the same process group (one
start-up), or ``sogclr``: two SogCLR steps (``sogclr_steps``), the rank's loss and gradients of the second and
its denominators after both.
"""

import sys

import torch
import torch.distributed as dist

from mucon.losses import ContrastiveLoss, CrossCorrelationLoss, HardNegativeLoss, SogCLRLoss, nt_xent_ids

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


def sogclr_steps(clips_per_rank: int, world_size: int):
    """Two steps' inputs [world, 2 x clips, 6] (each rank's two views view-major) and items [world, clips]:
    the second step meets some items again, among them one twice, and some for the first time."""
    inputs, _ = global_batch(clips_per_rank, world_size, 2)
    first_items = torch.arange(world_size * clips_per_rank)
    second_items = (first_items * 3 + 1) % (world_size * clips_per_rank + 2)
    second_items[-1] = second_items[0]
    return [(inputs, first_items.view(world_size, -1)), (inputs.roll(1, dims=1), second_items.view(world_size, -1))]


def sogclr_step(loss_fn: SogCLRLoss, net: torch.nn.Module, inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The SogCLR loss of ranks' inputs and items laid out as one batch: first views of every rank, then
    second views."""
    clips = items.shape[1]
    z = net(inputs)  # [ranks, 2 x clips, d]
    return loss_fn(torch.cat([z[:, :clips].flatten(0, 1), z[:, clips:].flatten(0, 1)]), items.flatten())


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
    elif objective == "sogclr":
        net, loss_fn = model(), SogCLRLoss(0.2, 0.5)
        (first_inputs, first_items), (second_inputs, second_items) = sogclr_steps(clips_per_rank, world_size)
        with torch.no_grad():
            sogclr_step(loss_fn, net, first_inputs[rank : rank + 1], first_items[rank : rank + 1])
        loss = sogclr_step(loss_fn, net, second_inputs[rank : rank + 1], second_items[rank : rank + 1])
        result = {**averaged(loss, list(net.parameters())), "denominators": loss_fn.denominators}
    else:
        result = {}
        for name in TRIPLE_OBJECTIVES:
            net = model()
            result[name] = averaged(triple_loss(name, [net(inputs[rank])]), list(net.parameters()))
    torch.save(result, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), *sys.argv[7:])
