"""One rank of the two-process gloo check of COLA's and MSCOL's losses; run by test_distributed_bilinear.py."""

import sys

import torch
import torch.distributed as dist

from mucon.losses import AbsenceAwareLoss, BilinearLoss

from two_process_worker import averaged

DIM = 8


def global_batch(pairs_per_rank: int, world_size: int):
    """Anchor inputs, positive inputs and presence [world, pairs, ...], rank-major, the same everywhere.

    Rank 0's sources are all present; rank 1 has absent ones, whose positive inputs are zero.
    """
    generator = torch.Generator().manual_seed(5)
    anchors = torch.randn(world_size, pairs_per_rank, 6, generator=generator)
    positives = torch.randn(world_size, pairs_per_rank, 6, generator=generator)
    present = torch.ones(world_size, pairs_per_rank, dtype=torch.bool)
    present[1, ::2] = False
    positives[~present] = 0.0
    return anchors, positives, present


def model():
    """The network, the same on every rank and in the single-process reference."""
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(6, DIM), torch.nn.Tanh())


def losses():
    """Each loss with its W, the same on every rank and in the single-process reference."""
    torch.manual_seed(4)
    return {"bilinear": BilinearLoss(DIM), "absence": AbsenceAwareLoss(DIM)}


def embed(net, inputs: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The embedding; ``shift`` stands for per-process batch-norm statistics, so that zero inputs embed
    differently on each rank and the null column must be their mean over the global batch."""
    return net(inputs) + shift


def shift_of(rank: int) -> torch.Tensor:
    return torch.full((DIM,), 0.1 * rank)


def main(rank: int, world_size: int, store_file: str, out_file: str, pairs_per_rank: int):
    """Both losses in one process group (one start-up for the pair); saves {loss name: loss and gradients}."""
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world_size)
    anchors, positives, present = global_batch(pairs_per_rank, world_size)
    results = {}
    for name, loss_fn in losses().items():
        net = model()
        shift = shift_of(rank)
        a, p = embed(net, anchors[rank], shift), embed(net, positives[rank], shift)
        loss = loss_fn(a, p, present[rank]) if name == "absence" else loss_fn(a, p)
        results[name] = averaged(loss, [*net.parameters(), *loss_fn.parameters()])
    torch.save(results, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
