import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("two_process_bilinear_worker.py")
sys.path.insert(0, str(WORKER.parent))
import two_process_bilinear_worker as worker  # noqa: E402

WORLD_SIZE = 2


def single_process(loss_name: str, pairs_per_rank: int, gathered: bool = True):
    """The loss and gradients of one process on the global batch (each rank's rows with its own shift);
    ``gathered=False`` averages per-rank losses that see only their own rows instead."""
    anchors, positives, present = worker.global_batch(pairs_per_rank, WORLD_SIZE)
    net, loss_fn = worker.model(), worker.losses()[loss_name]
    shifts = torch.stack([worker.shift_of(rank) for rank in range(WORLD_SIZE)])[:, None]
    a, p = worker.embed(net, anchors, shifts), worker.embed(net, positives, shifts)

    def loss_of(a, p, present):
        return loss_fn(a, p, present) if loss_name == "absence" else loss_fn(a, p)

    if gathered:
        loss = loss_of(a.flatten(0, 1), p.flatten(0, 1), present.flatten())
    else:
        loss = sum(loss_of(a[rank], p[rank], present[rank]) for rank in range(WORLD_SIZE)) / WORLD_SIZE
    loss.backward()
    return loss, [*net.parameters(), *loss_fn.parameters()]


def test_two_processes_give_the_single_process_loss_and_gradients(tmp_path):
    """COLA's positives, and MSCOL's positives and null column, gathered across two gloo ranks (absent
    sources on rank 1 only) equal one process on the global batch."""
    pairs_per_rank = 4
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), str(WORLD_SIZE), str(tmp_path / "store"),
             str(tmp_path / f"rank{rank}.pt"), str(pairs_per_rank)],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        for rank in range(WORLD_SIZE)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    for loss_name in ("bilinear", "absence"):
        loss, parameters = single_process(loss_name, pairs_per_rank)
        for rank in range(WORLD_SIZE):
            result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)[loss_name]
            assert result["loss"].item() == pytest.approx(loss.item(), rel=1e-5), loss_name
            for distributed_grad, parameter in zip(result["grads"], parameters, strict=True):
                torch.testing.assert_close(distributed_grad, parameter.grad, rtol=1e-5, atol=1e-6, msg=loss_name)


@pytest.mark.parametrize("loss_name", ["bilinear", "absence"])
def test_local_only_positives_would_differ(loss_name):
    """Guards the test above: per-rank losses without gathering give another value on this batch."""
    local, _ = single_process(loss_name, 4, gathered=False)
    full, _ = single_process(loss_name, 4)
    assert abs(local.item() - full.item()) > 1e-3
