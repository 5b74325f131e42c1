import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mucon.losses import ContrastiveLoss, SogCLRLoss, positive_mask

WORKER = Path(__file__).with_name("two_process_worker.py")
sys.path.insert(0, str(WORKER.parent))
import two_process_worker  # noqa: E402

WORLD_SIZE = 2


def run_two_ranks(tmp_path, clips_per_rank, n_views, objective, *settings):
    """Both ranks' (loss, gradients) after the DDP-style gradient average."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), str(WORLD_SIZE), str(tmp_path / "store"),
             str(tmp_path / f"rank{rank}.pt"), str(clips_per_rank), str(n_views), objective, *map(str, settings)],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        for rank in range(WORLD_SIZE)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def assert_same_as_single_process(results, loss, net):
    for result in results:
        assert result["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
        for distributed_grad, parameter in zip(result["grads"], net.parameters()):
            torch.testing.assert_close(distributed_grad, parameter.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clips_per_rank,n_views,min_shared,weighted", [(3, 2, 1, False), (4, 3, 1, False),
                                                                       (3, 4, 2, False), (4, 2, 3, False), (3, 3, 1, True)])
def test_two_processes_give_the_single_process_loss_and_gradients(tmp_path, clips_per_rank, n_views, min_shared, weighted):
    """Negatives and label positives (at least T shared labels, or weighted) gathered across two gloo ranks
    equal one process on the global batch."""
    results = run_two_ranks(tmp_path, clips_per_rank, n_views, "supcon", min_shared,
                            "weighted" if weighted else "counted")
    inputs, labels = two_process_worker.global_batch(clips_per_rank, WORLD_SIZE, n_views)
    net = two_process_worker.model()
    ids_per_rank = torch.arange(clips_per_rank).repeat(n_views)
    global_ids = torch.cat([ids_per_rank + rank * clips_per_rank for rank in range(WORLD_SIZE)])
    global_labels = labels.flatten(0, 1)
    label_pairs = positive_mask(global_ids, global_ids, global_labels, global_labels, min_shared_labels=min_shared,
                                weighted=weighted) - positive_mask(global_ids, global_ids)
    rank0_rows = clips_per_rank * n_views
    assert (label_pairs[:rank0_rows, rank0_rows:] > 0).any()  # labels add positives across the two ranks at this T
    loss = ContrastiveLoss(0.2, min_shared_labels=min_shared, weighted=weighted)(net(inputs.flatten(0, 1)), global_ids, global_labels)
    loss.backward()
    assert_same_as_single_process(results, loss, net)


@pytest.mark.parametrize("weighted", [False, True])
def test_a_composed_mask_on_two_processes_gives_the_single_process_loss_and_gradients(tmp_path, weighted):
    """Views OR shared labels OR same store item, with rows left out (absent sources), across two gloo ranks:
    items are global, so two clips of one track on different ranks are positives, as in one process."""
    results = run_two_ranks(tmp_path, 4, 3, "composed", 1, "weighted" if weighted else "counted")
    inputs, labels = two_process_worker.global_batch(4, WORLD_SIZE, 3)
    items, kept = two_process_worker.items_and_kept(4, WORLD_SIZE, 3)
    net = two_process_worker.model()
    global_ids = torch.cat([torch.arange(4).repeat(3) + rank * 4 for rank in range(WORLD_SIZE)])
    item_pairs = positive_mask(global_ids, global_ids, items=items.flatten(), candidate_items=items.flatten())
    assert (item_pairs[:12, 12:] > 0).any() and not kept.all()  # the items add positives across the ranks
    loss = ContrastiveLoss(0.2, weighted=weighted)(net(inputs.flatten(0, 1)), global_ids, labels.flatten(0, 1),
                                                   items.flatten(), kept.flatten())
    loss.backward()
    assert_same_as_single_process(results, loss, net)


def test_a_mean_of_each_processs_own_mean_would_differ_where_processes_count_different_anchors():
    """Guards the test above: with rows left out, the ranks count different anchors, so averaging per-rank
    means (what DDP does to a plain mean) is not the global batch's mean that the loss gives."""
    inputs, labels = two_process_worker.global_batch(4, WORLD_SIZE, 3)
    items, kept = two_process_worker.items_and_kept(4, WORLD_SIZE, 3)
    global_ids = torch.cat([torch.arange(4).repeat(3) + rank * 4 for rank in range(WORLD_SIZE)])
    losses, counted = ContrastiveLoss(0.2).anchor_losses(two_process_worker.model()(inputs.flatten(0, 1)), global_ids,
                                                         labels.flatten(0, 1), items.flatten(), kept.flatten())
    per_rank = [part_losses[part_counted].mean() for part_losses, part_counted in zip(losses.chunk(2), counted.chunk(2))]
    assert counted[:12].sum() != counted[12:].sum()
    assert abs(sum(per_rank).item() / 2 - losses[counted].mean().item()) > 1e-3


def test_pemr_objectives_on_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    """The paper's negatives and the release's batch statistics and correlations span both ranks."""
    results = run_two_ranks(tmp_path, 3, 3, "pemr")
    inputs, _ = two_process_worker.global_batch(3, WORLD_SIZE, 3)
    for objective in two_process_worker.TRIPLE_OBJECTIVES:
        net = two_process_worker.model()
        loss = two_process_worker.triple_loss(objective, [net(inputs[rank]) for rank in range(WORLD_SIZE)])
        loss.backward()
        assert_same_as_single_process([result[objective] for result in results], loss, net)


def test_sogclr_on_two_processes_equals_one_process_and_keeps_equal_denominators(tmp_path):
    """Negatives from both ranks, and every rank writes the whole global batch's u (an item met twice
    keeps the mean of its estimates), so the second step reads the same u on every rank as one process."""
    results = run_two_ranks(tmp_path, 3, 2, "sogclr")
    net, loss_fn = two_process_worker.model(), SogCLRLoss(0.2, 0.5)
    (first_inputs, first_items), (second_inputs, second_items) = two_process_worker.sogclr_steps(3, WORLD_SIZE)
    with torch.no_grad():
        two_process_worker.sogclr_step(loss_fn, net, first_inputs, first_items)
    loss = two_process_worker.sogclr_step(loss_fn, net, second_inputs, second_items)
    loss.backward()
    assert_same_as_single_process(results, loss, net)
    for result in results:
        torch.testing.assert_close(result["denominators"], loss_fn.denominators)
    assert (loss_fn.denominators[second_items[0]] > 0).all()


@pytest.mark.parametrize("objective", ["supcon", *sorted(two_process_worker.TRIPLE_OBJECTIVES)])
def test_local_only_losses_would_differ(objective):
    """Guards the tests above: a per-rank loss without gathering gives another value on this batch."""
    inputs, labels = two_process_worker.global_batch(3, 2, 3 if objective != "supcon" else 2)
    net = two_process_worker.model()
    if objective == "supcon":
        ids = torch.arange(3).repeat(2)
        local = sum(ContrastiveLoss(0.2)(net(inputs[r]), ids, labels[r]) for r in range(2)) / 2
        full = ContrastiveLoss(0.2)(net(inputs.flatten(0, 1)), torch.cat([ids, ids + 3]), labels.flatten(0, 1))
    else:
        local = sum(two_process_worker.triple_loss(objective, [net(inputs[r])]) for r in range(2)) / 2
        full = two_process_worker.triple_loss(objective, [net(inputs[r]) for r in range(2)])
    assert abs(local.item() - full.item()) > 1e-3
