"""EfficientNet-B0 from scratch: the reference parameter count, 1280-d frames, global max pooling."""

import math

import pytest
import torch
from torch import nn

from mucon.encoders import EfficientNetB0, EfficientNetB0Backbone
from mucon.encoders.efficientnet import DropPath, MBConv, SqueezeExcitation

# EfficientNet-B0 without its classifier, 3-channel input, as published (5,288,548 - 1,281,000).
REFERENCE_B0_FEATURE_PARAMS = 4_007_548


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def efficientnet():
    torch.manual_seed(0)
    return EfficientNetB0().eval()


def test_efficientnet_b0_with_rgb_stem_has_the_reference_parameter_count():
    assert count(EfficientNetB0Backbone(in_channels=3)) == REFERENCE_B0_FEATURE_PARAMS


def test_efficientnet_b0_mono_stem_saves_only_the_two_extra_input_channels(efficientnet):
    assert count(efficientnet) - count(efficientnet.frontend) == REFERENCE_B0_FEATURE_PARAMS - 2 * 32 * 3 * 3


def test_efficientnet_b0_blocks_follow_the_b0_stage_table(efficientnet):
    blocks = [m for m in efficientnet.backbone.blocks if isinstance(m, MBConv)]
    assert len(blocks) == 16
    widths = [b.branch[-1][0].out_channels for b in blocks]
    assert widths == [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320]
    depthwise = [b.branch[-3][0] for b in blocks]
    assert [c.kernel_size[0] for c in depthwise] == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    assert [c.stride[0] for c in depthwise] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    squeeze = [m.reduce.out_channels for m in efficientnet.backbone.modules() if isinstance(m, SqueezeExcitation)]
    assert squeeze[:3] == [8, 4, 6]  # a quarter of each block's input width: 32, 16, 24
    assert any(isinstance(m, nn.SiLU) for m in efficientnet.backbone.modules())
    assert efficientnet.backbone.head[0].out_channels == 1280


@pytest.fixture(scope="module")
def cola_spectrogram(efficientnet):
    """One spectrogram shape shared by these tests: each new shape costs a oneDNN kernel build."""
    with torch.no_grad():
        return efficientnet.frontend(torch.randn(2, efficientnet.input_samples))


def test_efficientnet_b0_cola_crop_gives_1280d_frames_of_32_spectrogram_frames(efficientnet, cola_spectrogram):
    with torch.no_grad():
        frames = efficientnet.forward_spectrogram(cola_spectrogram)
    assert cola_spectrogram.shape[1] == 64
    assert frames.shape == (2, math.ceil(cola_spectrogram.shape[-1] / 32), 1280)


def test_efficientnet_b0_frames_grow_with_spectrogram_length(efficientnet):
    with torch.no_grad():
        frames = efficientnet.forward_spectrogram(torch.randn(1, 64, 12 * 32))
    assert frames.shape == (1, 12, 1280)


def test_efficientnet_b0_embedding_is_a_global_2d_max_over_the_feature_map(efficientnet, cola_spectrogram):
    with torch.no_grad():
        feature_map = efficientnet.backbone(cola_spectrogram.unsqueeze(1))
        embedding = efficientnet.pool(efficientnet.forward_spectrogram(cola_spectrogram))
    torch.testing.assert_close(embedding, feature_map.amax(dim=(2, 3)))


def test_efficientnet_b0_mean_frequency_reduction_averages_bands(cola_spectrogram):
    encoder = EfficientNetB0(freq_reduction="mean").eval()
    with torch.no_grad():
        expected = encoder.backbone(cola_spectrogram.unsqueeze(1)).mean(dim=2).transpose(1, 2)
        torch.testing.assert_close(encoder.forward_spectrogram(cola_spectrogram), expected)


def test_drop_path_keeps_or_drops_whole_examples_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(1000, 2, 3, 3)
    out = drop(x)
    per_example = out.flatten(1)
    assert set(per_example.unique().tolist()) <= {0.0, 2.0}
    assert (per_example == per_example[:, :1]).all()
    assert 0.4 < (per_example[:, 0] > 0).float().mean() < 0.6
    assert torch.equal(drop.eval()(x), x)


def test_efficientnet_b0_stochastic_depth_grows_linearly_to_the_given_rate():
    backbone = EfficientNetB0Backbone(drop_path_rate=0.2)
    rates = [b.drop_path.rate for b in backbone.blocks if isinstance(b.drop_path, DropPath)]
    assert rates == sorted(rates) and 0 < rates[0] and max(rates) < 0.2


def test_efficientnet_b0_attributes_describe_its_input_and_output(efficientnet):
    assert (efficientnet.sample_rate, efficientnet.dim) == (16000, 1280)
    assert 15000 <= efficientnet.input_samples <= 17000
