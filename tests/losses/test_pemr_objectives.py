import itertools

import pytest
import torch

from mucon.losses import CrossCorrelationLoss, HardNegativeLoss

from references import reference_cross_correlation, reference_hard_negative


def embeddings(batch_size, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, dim, generator=generator) * 3 for _ in range(3)]


@pytest.mark.parametrize("batch_size,dim,temperature", list(itertools.product([1, 2, 5, 9], [3, 16], [0.1, 0.5, 1.0])))
def test_paper_objective_equals_loop_reference(batch_size, dim, temperature):
    anchors, positives, negatives = embeddings(batch_size, dim, batch_size * 100 + dim)
    loss = HardNegativeLoss(temperature)(anchors, positives, negatives)
    expected = reference_hard_negative(anchors, positives, negatives, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("batch_size,dim,weights", list(itertools.product([2, 3, 8], [2, 7, 16], [(5e-3, 5e-3), (0.1, 1.0)])))
def test_released_objective_equals_loop_reference(batch_size, dim, weights):
    anchors, positives, negatives = embeddings(batch_size, dim, batch_size * 10 + dim)
    loss = CrossCorrelationLoss(*weights)(anchors, positives, negatives)
    expected = reference_cross_correlation(anchors, positives, negatives, *weights)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_the_hard_negative_is_in_the_denominator():
    """Moving a clip's own negative onto its anchor raises the paper objective; moving it away lowers it."""
    anchors, positives, negatives = embeddings(4, 8, 0)
    loss = HardNegativeLoss(0.5)
    assert loss(anchors, positives, anchors.clone()) > loss(anchors, positives, negatives) > loss(anchors, positives, -anchors)


def test_released_objective_is_zero_for_identical_decorrelated_positives_and_orthogonal_negatives():
    """C+ = identity and diag(C-) = 0 is the objective's optimum."""
    anchors = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    negatives = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # uncorrelated per dimension
    loss = CrossCorrelationLoss()(anchors, anchors.clone(), negatives)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


def test_released_objective_refuses_a_batch_of_one():
    anchors, positives, negatives = embeddings(1, 4, 0)
    with pytest.raises(ValueError, match="at least 2 clips"):
        CrossCorrelationLoss()(anchors, positives, negatives)


@pytest.mark.parametrize("loss_fn", [HardNegativeLoss(0.5), CrossCorrelationLoss()])
def test_gradients_are_finite_and_reach_every_embedding(loss_fn):
    anchors, positives, negatives = (z.requires_grad_() for z in embeddings(6, 8, 1))
    loss_fn(anchors, positives, negatives).backward()
    for z in (anchors, positives, negatives):
        assert torch.isfinite(z.grad).all()
        assert (z.grad.abs().sum(1) > 0).all()


@pytest.mark.parametrize("loss_fn", [HardNegativeLoss(0.1), CrossCorrelationLoss()])
def test_mixed_precision_computes_the_objectives_in_float32(loss_fn):
    anchors, positives, negatives = embeddings(8, 32, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss_fn(anchors.bfloat16(), positives.bfloat16(), negatives.bfloat16())
    exact = loss_fn(anchors.bfloat16().float(), positives.bfloat16().float(), negatives.bfloat16().float())
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(exact.item(), rel=1e-5)
