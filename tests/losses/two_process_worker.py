"""One rank of the two-process gloo check; run by test_distributed.py, writes its loss and gradients."""

import sys

import torch
import torch.distributed as dist

from mucon.losses import ContrastiveLoss, nt_xent_ids


def global_batch(clips_per_rank: int, world_size: int, n_views: int):
    """The same inputs and labels on every rank and in the single-process reference, rank-major."""
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(world_size, n_views * clips_per_rank, 6, generator=generator)
    labels = (torch.rand(world_size, clips_per_rank, 3, generator=generator) < 0.4).float()
    labels[:, ::2] = 0  # half the clips unlabelled
    return inputs, labels.repeat(1, n_views, 1)


def model():
    torch.manual_seed(3)
    return torch.nn.Linear(6, 8)


def main(rank: int, world_size: int, store_file: str, out_file: str, clips_per_rank: int, n_views: int):
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world_size)
    inputs, labels = global_batch(clips_per_rank, world_size, n_views)
    net = model()
    loss_fn = ContrastiveLoss(0.2)
    z = net(inputs[rank])
    loss = loss_fn(z, nt_xent_ids(clips_per_rank, n_views), labels[rank])
    torch.save(averaged(loss, list(net.parameters())), out_file)
    dist.destroy_process_group()


def averaged(loss: torch.Tensor, parameters: list[torch.Tensor]) -> dict:
    """Backward, then what DDP does: the loss and gradients averaged over ranks."""
    world_size = dist.get_world_size()
    loss.backward()
    for parameter in parameters:
        dist.all_reduce(parameter.grad)
        parameter.grad /= world_size
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world_size
    return {"loss": mean_loss, "grads": [p.grad for p in parameters]}


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
