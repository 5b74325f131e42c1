import pytest
import torch
from torch import nn

from mucon.config import load_config
from mucon.encoders import build_run_encoder
from mucon.encoders.small_cnn import SmallCNN
from mucon.evaluation.inference_form import MaxPool2x2, folded_convolution, for_inference


def _trained_looking(encoder: nn.Module) -> nn.Module:
    """Batch-norm statistics and affine terms away from their defaults, some scales negative, so that a
    rewrite that moved the ReLU past the batch norm (it does not commute with it) would show."""
    generator = torch.Generator().manual_seed(1)
    for module in encoder.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            if module.affine:
                module.weight.data.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.data.copy_(torch.randn(module.num_features, generator=generator))
    return encoder.eval()


def test_the_inference_form_of_a_small_cnn_embeds_as_it_to_float_rounding():
    torch.manual_seed(0)
    encoder = _trained_looking(SmallCNN(input_samples=16000))
    waveforms = torch.randn(3, 16000 + 700) * 0.1  # frames and bands that a pool halves to odd counts
    rewritten = for_inference(encoder)
    with torch.inference_mode():
        torch.testing.assert_close(rewritten.embed(waveforms), encoder.embed(waveforms), rtol=1e-5, atol=1e-5)
    assert any(isinstance(module, MaxPool2x2) for module in rewritten.modules())
    assert not any(isinstance(module, MaxPool2x2) for module in encoder.modules())  # the original is kept
    assert any(isinstance(module, nn.BatchNorm2d) for module in encoder.blocks)


def test_the_pool_rewrite_alone_is_bit_for_bit():
    x = torch.randn(2, 3, 9, 14)
    assert torch.equal(MaxPool2x2()(x), nn.MaxPool2d(2)(x))


@pytest.mark.parametrize("conv, norm", [
    (nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)),
    (nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5, affine=False)),
    (nn.Conv1d(2, 4, 3, stride=3), nn.BatchNorm1d(4, eps=1e-3)),
])
def test_a_batch_norm_folded_into_its_convolution_computes_norm_of_conv(conv, norm):
    torch.manual_seed(0)
    block = _trained_looking(nn.Sequential(conv, norm))
    x = torch.randn(4, conv.in_channels, *((12, 10) if isinstance(conv, nn.Conv2d) else (27,)))
    with torch.no_grad():
        torch.testing.assert_close(folded_convolution(conv, norm)(x), block(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["clmr-cpu", "cola-cpu", "pemr-cpu", "semisupcon-cpu", "mscol-cpu"])
def test_every_cnn_presets_inference_form_folds_its_batch_norms_and_embeds_as_it(preset):
    torch.manual_seed(0)
    encoder = _trained_looking(build_run_encoder(load_config(preset)))
    rewritten = for_inference(encoder)
    left = [module for block in rewritten.modules() if isinstance(block, nn.Sequential)
            for conv, module in zip(block, list(block)[1:])
            if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and isinstance(module, nn.modules.batchnorm._BatchNorm)]
    assert not left
    waveforms = torch.randn(2, encoder.input_samples) * 0.1
    levels = waveforms.square().mean(-1).sqrt() if encoder.scales_by_item_level else None
    with torch.inference_mode():
        expected = encoder.embed(waveforms, levels)
        torch.testing.assert_close(rewritten.embed(waveforms, levels), expected, rtol=1e-4,
                                   atol=1e-4 * expected.abs().max().item())


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
