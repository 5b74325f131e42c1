import itertools

import pytest
import torch

from mucon.losses import BilinearLoss, bilinear_loss

from references import reference_absence_aware


def pairs(n, dim, seed, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.tanh(scale * torch.randn(n, dim, generator=generator))
    positives = torch.tanh(scale * torch.randn(n, dim, generator=generator))
    return anchors, positives


@pytest.mark.parametrize("n,dim,scale", list(itertools.product([1, 2, 5, 16], [3, 8], [0.5, 3.0])))
def test_cola_loss_equals_loop_reference(n, dim, scale):
    anchors, positives = pairs(n, dim, seed=n * 10 + dim)
    loss_fn = BilinearLoss(dim)
    with torch.no_grad():
        loss_fn.weight.mul_(scale / 0.05)  # from near-uniform softmaxes to peaked ones
    loss = loss_fn(anchors, positives)
    expected = reference_absence_aware(anchors, positives, [True] * n, loss_fn.weight)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_the_anchors_own_positive_is_a_column_of_the_softmax_not_excluded():
    """COLA's target is the anchor's own positive among all positives (NT-Xent would exclude a column)."""
    anchors, positives = pairs(4, 6, seed=1)
    weight = torch.randn(6, 6)
    logits = anchors @ weight @ positives.T
    expected = -torch.diagonal(logits.log_softmax(1)).mean()
    assert bilinear_loss(anchors, positives, weight, torch.arange(4)).item() == pytest.approx(expected.item(), rel=1e-6)
    one_pair = bilinear_loss(anchors[:1], positives[:1], weight, torch.tensor([0]))
    assert one_pair.item() == 0.0  # a lone positive is the whole softmax


def test_similarity_is_bilinear_so_it_is_not_symmetric():
    """s(a, p) = a^T W p with a free W: swapping anchors and positives changes the loss."""
    anchors, positives = pairs(6, 5, seed=2)
    loss_fn = BilinearLoss(5)
    assert abs(loss_fn(anchors, positives).item() - loss_fn(positives, anchors).item()) > 1e-4


def test_gradients_are_finite_and_reach_anchors_positives_and_w():
    anchors, positives = (x.requires_grad_() for x in pairs(8, 6, seed=3))
    loss_fn = BilinearLoss(6)
    loss_fn(anchors, positives).backward()
    for grad in (anchors.grad, positives.grad, loss_fn.weight.grad):
        assert torch.isfinite(grad).all() and (grad.abs().sum() > 0)


def test_huge_similarities_stay_finite():
    anchors, positives = pairs(8, 6, seed=4)
    loss = bilinear_loss(anchors, positives, torch.eye(6) * 1e4, torch.arange(8))
    assert torch.isfinite(loss)


def test_loss_runs_in_float32_under_bf16_autocast():
    anchors, positives = pairs(8, 6, seed=5)
    loss_fn = BilinearLoss(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(anchors.bfloat16(), positives.bfloat16())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(loss_fn(anchors.bfloat16().float(), positives.bfloat16().float()).item(), rel=1e-6)


def test_w_starts_like_the_releases_random_normal():
    weight = BilinearLoss(512).weight
    assert weight.shape == (512, 512)
    assert weight.std().item() == pytest.approx(0.05, rel=0.02)
