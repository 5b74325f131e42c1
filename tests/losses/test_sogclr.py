import pytest
import torch

from mucon.losses import SogCLRLoss

from references import reference_sogclr_step


def views(generator, clips, dim=8):
    return torch.randn(2 * clips, dim, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("clips,temperature,gamma", [(2, 0.1, 0.9), (5, 0.1, 0.9), (6, 0.5, 0.3)])
def test_two_steps_equal_the_release_loop_reference_with_their_denominators(clips, temperature, gamma):
    """Step 1 sees every item for the first time; step 2 repeats some (the moving average) and meets new ones."""
    generator = torch.Generator().manual_seed(clips)
    loss_fn = SogCLRLoss(temperature, gamma).double()
    stored = {}
    for items in (torch.arange(clips) * 3, torch.arange(clips) * 2):  # 0, 6, 12, .. then 0, 2, 4, ..
        z = views(generator, clips)
        loss = loss_fn(z, items)
        expected, updated = reference_sogclr_step(z[:clips].tolist(), z[clips:].tolist(), items.tolist(), stored,
                                                  temperature, gamma)
        stored = {**stored, **updated}
        assert loss.item() == pytest.approx(expected, rel=1e-10)
        held = {item: loss_fn.denominators[item].item() for item in stored}
        assert held == pytest.approx(stored, rel=1e-10)
    assert set(torch.nonzero(loss_fn.denominators).flatten().tolist()) == set(stored)


def test_an_item_drawn_twice_in_a_batch_keeps_the_mean_of_its_estimates():
    generator = torch.Generator().manual_seed(1)
    z = views(generator, 4)
    items = torch.tensor([3, 1, 3, 0])
    loss_fn = SogCLRLoss().double()
    loss = loss_fn(z, items)
    expected, updated = reference_sogclr_step(z[:4].tolist(), z[4:].tolist(), items.tolist(), {}, 0.1, 0.9)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss_fn.denominators[3].item() == pytest.approx(updated[3], rel=1e-10)


def test_a_first_steps_gradient_is_t_times_the_global_contrastive_losss():
    """With u from the batch alone, the surrogate's gradient is that of t log mean_n exp((s_an - s_ap) / t)
    over the negatives (no positive in the denominator, unlike NT-Xent), summed over each item's views."""
    generator = torch.Generator().manual_seed(2)
    clips, temperature = 5, 0.2
    z = views(generator, clips).requires_grad_()
    SogCLRLoss(temperature).double()(z, torch.arange(clips)).backward()
    sogclr_grad, z.grad = z.grad, None
    unit = torch.nn.functional.normalize(z, dim=1)
    similarities = unit @ unit.T
    own = torch.arange(2 * clips)
    positive = (own + clips) % (2 * clips)
    negatives = torch.ones_like(similarities, dtype=torch.bool)
    negatives[own, own] = negatives[own, positive] = False
    log_mean_exp = torch.stack([torch.logsumexp(similarities[a][negatives[a]] / temperature, 0) for a in own])
    global_loss = temperature * (log_mean_exp - similarities[own, positive] / temperature)
    global_loss.sum().div(clips).backward()
    torch.testing.assert_close(sogclr_grad, z.grad)


def test_denominators_are_a_buffer_that_a_state_dict_carries_at_its_size():
    loss_fn = SogCLRLoss()
    loss_fn.size_for(10)
    loss_fn(torch.randn(4, 8), torch.tensor([7, 2]))
    restored = SogCLRLoss()
    restored.load_state_dict(loss_fn.state_dict())
    assert restored.denominators.shape == (10,)
    torch.testing.assert_close(restored.denominators, loss_fn.denominators)
    assert (restored.denominators[[2, 7]] > 0).all() and restored.denominators.count_nonzero() == 2
