"""Projection heads: the papers' MLP without biases and COLA's bounded Linear-LayerNorm-tanh."""

import torch
from torch import nn

from mucon.encoders import COLAHead, ProjectionHead, build_projection_head


def test_projection_head_is_linear_relu_linear_without_bias_or_batch_norm_by_default():
    head = ProjectionHead(512, 512, 128)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 512), (512, 128)]
    assert all(m.bias is None for m in linears)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in head.modules())
    assert isinstance(head.layers[1], nn.ReLU)
    assert head(torch.randn(4, 512)).shape == (4, 128)


def test_projection_head_options_add_bias_and_batch_norm():
    head = ProjectionHead(512, 256, 64, bias=True, batch_norm=True)
    assert all(m.bias is not None for m in head.modules() if isinstance(m, nn.Linear))
    assert isinstance(head.layers[1], nn.BatchNorm1d)
    assert head(torch.randn(4, 512)).shape == (4, 64)


def test_cola_head_outputs_are_bounded_layer_normed_projections():
    head = COLAHead(1280)
    assert isinstance(head.norm, nn.LayerNorm) and head.linear.out_features == 512
    x = 100 * torch.randn(8, 1280)
    out = head(x)
    assert out.shape == (8, 512)
    assert out.abs().max() <= 1
    torch.testing.assert_close(out, torch.tanh(head.norm(head.linear(x))))


def test_build_projection_head_makes_heads_by_config_name():
    assert isinstance(build_projection_head("projection", in_dim=512, hidden_dim=512, out_dim=64), ProjectionHead)
    assert isinstance(build_projection_head("cola", in_dim=1280), COLAHead)


def test_linear_head_is_one_linear_layer_with_bias_by_name():
    head = build_projection_head("linear", in_dim=384)
    assert [(m.in_features, m.out_features, m.bias is not None) for m in head.modules() if isinstance(m, nn.Linear)] \
        == [(384, 50, True)]
    assert head(torch.randn(3, 384)).shape == (3, 50)
