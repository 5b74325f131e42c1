import torch
from torch import nn

from mucon.encoders.small_cnn import SmallCNN
from mucon.evaluation.inference_form import MaxPool2x2, for_inference


def _trained_looking(encoder: SmallCNN) -> SmallCNN:
    """Batch-norm statistics and affine terms away from their defaults, some scales negative, so that a
    rewrite that moved the ReLU past the batch norm (it does not commute with it) would show."""
    generator = torch.Generator().manual_seed(1)
    for module in encoder.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator))
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator))
    return encoder.eval()


def test_the_inference_form_of_a_small_cnn_embeds_bit_for_bit_as_it():
    torch.manual_seed(0)
    encoder = _trained_looking(SmallCNN(input_samples=16000))
    waveforms = torch.randn(3, 16000 + 700) * 0.1  # frames and bands that a pool halves to odd counts
    rewritten = for_inference(encoder)
    with torch.inference_mode():
        assert torch.equal(rewritten.embed(waveforms), encoder.embed(waveforms))
    assert any(isinstance(module, MaxPool2x2) for module in rewritten.modules())
    assert not any(isinstance(module, MaxPool2x2) for module in encoder.modules())  # the original is kept


def test_a_pool_other_than_a_plain_2x2_one_is_left_as_it_is():
    block = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(), nn.MaxPool2d(3))
    encoder = SmallCNN(input_samples=16000).eval()
    encoder.blocks = block
    assert for_inference(encoder) is encoder


def test_a_nan_propagates_through_the_rewritten_pool_as_through_max_pool():
    x = torch.randn(1, 2, 4, 6)
    x[0, 1, 2, 3] = float("nan")
    assert torch.equal(MaxPool2x2()(x).isnan(), nn.MaxPool2d(2)(x).isnan())
    torch.testing.assert_close(MaxPool2x2()(x), nn.MaxPool2d(2)(x), equal_nan=True, rtol=0, atol=0)
