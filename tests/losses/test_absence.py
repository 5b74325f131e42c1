import pytest
import torch

from mucon.losses import AbsenceAwareLoss, BilinearLoss, absence_aware_loss, bilinear_loss

from references import reference_absence_aware


def batch(n, dim, absent, seed):
    """Pairs whose absent positives embed zero inputs: near one vector, yet each its own, as zero inputs
    embedded on different processes (under their own batch-norm statistics) are, so that a null column
    other than their mean (the first of them, say) differs from the reference."""
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.tanh(2 * torch.randn(n, dim, generator=generator))
    positives = torch.tanh(2 * torch.randn(n, dim, generator=generator))
    present = torch.ones(n, dtype=torch.bool)
    present[list(absent)] = False
    zero_input = torch.randn(dim, generator=generator)
    positives[~present] = torch.tanh(zero_input + 0.3 * torch.randn(len(absent), dim, generator=generator))
    return anchors, positives, present


CASES = [
    (1, ()), (1, (0,)),
    (2, ()), (2, (1,)), (2, (0, 1)),
    (5, (0,)), (5, (1, 3)), (5, (0, 1, 2, 3)), (5, (0, 1, 2, 3, 4)),
    (12, (2, 5, 6, 11)), (12, tuple(range(0, 12, 2))), (12, tuple(range(12))), (12, ()),
]


@pytest.mark.parametrize("n,absent", CASES)
@pytest.mark.parametrize("dim", [4, 9])
def test_absence_aware_loss_equals_loop_reference(n, absent, dim):
    anchors, positives, present = batch(n, dim, absent, seed=n + 31 * len(absent) + dim)
    loss_fn = AbsenceAwareLoss(dim)
    with torch.no_grad():
        loss_fn.weight.mul_(20)  # peaked softmaxes, where mistakes in the columns show most
    anchors.requires_grad_()
    positives.requires_grad_()
    loss = loss_fn(anchors, positives, present)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference_absence_aware(anchors, positives, present, loss_fn.weight),
                                        rel=1e-5, abs=1e-6)
    loss.backward()
    for grad in (anchors.grad, positives.grad, loss_fn.weight.grad):
        assert torch.isfinite(grad).all()


def test_with_every_source_present_it_is_colas_loss():
    anchors, positives, present = batch(7, 5, (), seed=1)
    absence, cola = AbsenceAwareLoss(5), BilinearLoss(5)
    cola.load_state_dict(absence.state_dict())
    assert absence(anchors, positives, present).item() == cola(anchors, positives).item()


def test_absent_anchors_all_target_one_null_column_the_mean_of_the_zero_inputs_embeddings():
    anchors, positives, present = batch(6, 5, (1, 4), seed=2)
    weight = torch.randn(5, 5)
    null = (positives[1] + positives[4]) / 2
    candidates = torch.stack([positives[0], positives[2], positives[3], positives[5], null])
    expected = bilinear_loss(anchors, candidates, weight, torch.tensor([0, 4, 1, 2, 4, 3]))
    loss = absence_aware_loss(anchors, positives, present, torch.arange(6), weight)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_with_every_source_absent_the_loss_is_zero_and_its_gradients_finite():
    """The null column is the only candidate: log softmax is 0, never 0/0 or log 0."""
    anchors, positives, present = batch(4, 5, range(4), seed=3)
    positives.requires_grad_()
    loss = AbsenceAwareLoss(5)(anchors, positives, present)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(positives.grad).all()


def test_an_anchor_that_says_absent_lowers_the_loss():
    """Moving an absent pair's anchor towards the null column lowers its term: the absence is learnable."""
    anchors, positives, present = batch(6, 5, (2,), seed=4)
    weight = torch.eye(5)
    before = absence_aware_loss(anchors, positives, present, torch.arange(6), weight)
    anchors[2] = 10 * positives[2]
    after = absence_aware_loss(anchors, positives, present, torch.arange(6), weight)
    assert after.item() < before.item()
