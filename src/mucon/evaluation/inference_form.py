"""An encoder rewritten for embedding: the same outputs, to float rounding, in fewer passes over its activations.

Evaluation spends most of its time in encoder forwards, and much of a small CNN's forward on a CPU is
memory-bound work over the first layers' full-resolution activations:

- 2x2 max-pooling: torch's CPU pooling also writes the argmax indices that only a backward pass needs, and
  a 2x2 max-pool taken as three elementwise maxima writes none (bit for bit the same).
- batch norm after a convolution: at inference it is an affine map per channel with fixed statistics, so
  it folds into the convolution's weights and bias, and its pass over the activations goes (the same to
  float rounding: the scale multiplies the weights before the sums instead of the sums after them).

Training never sees this (its backward needs the indices, and its batch norm uses batch statistics): only a
copy that evaluation embeds with is rewritten. (The blocks already take their ReLU after the pool:
``encoders.base.conv_bn_pool_relu``.)
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from mucon.encoders import Encoder


class MaxPool2x2(nn.Module):
    """``nn.MaxPool2d(2)`` without indices: each 2x2 cell's maximum (an odd last row or column is
    dropped, as the floor mode does; a NaN propagates, as there)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                             torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def _plain_2x2_pool(module: nn.Module) -> bool:
    """A max-pool that ``MaxPool2x2`` equals: 2x2 cells, stride 2, no padding, dilation or ceil mode."""
    def pair(value) -> tuple:
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    return (isinstance(module, nn.MaxPool2d) and pair(module.kernel_size) == (2, 2)
            and pair(module.stride or module.kernel_size) == (2, 2) and pair(module.padding) == (0, 0)
            and pair(module.dilation) == (1, 1) and not module.ceil_mode and not module.return_indices)


_CONV_THEN_NORM = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    """A convolution whose output goes straight into a batch norm that normalises by running statistics."""
    return (any(isinstance(conv, conv_type) and type(norm) is norm_type for conv_type, norm_type in _CONV_THEN_NORM)
            and norm.track_running_stats and norm.running_mean is not None and norm.num_features == conv.out_channels)


def folded_convolution(conv: nn.Conv1d | nn.Conv2d, norm: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """``norm(conv(x))`` at inference as one convolution: ``w * s`` and ``(b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)``, computed in float64 and stored in the convolution's dtype."""
    scale = norm.running_var.double().add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = -norm.running_mean.double() * scale
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.double()
    folded = copy.deepcopy(conv)
    weight_shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    folded.weight = nn.Parameter((conv.weight.double() * scale.view(weight_shape)).to(conv.weight.dtype),
                                 requires_grad=False)
    folded.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
    return folded


def _rewritable(sequential: nn.Sequential) -> bool:
    layers = list(sequential)
    return any(map(_plain_2x2_pool, layers)) or any(map(_foldable, layers, layers[1:]))


def _rewrite(sequential: nn.Sequential) -> None:
    """In place: every plain 2x2 max-pool becomes a ``MaxPool2x2``, every batch norm right after a
    convolution is folded into it (the norm becomes an identity, so the indices of the layers stay)."""
    for index, layer in enumerate(sequential):
        if _plain_2x2_pool(layer):
            sequential[index] = MaxPool2x2()
        elif index + 1 < len(sequential) and _foldable(layer, sequential[index + 1]):
            sequential[index] = folded_convolution(layer, sequential[index + 1])
            sequential[index + 1] = nn.Identity()


def for_inference(encoder: Encoder) -> Encoder:
    """``encoder``'s embeddings in fewer passes (see the module's docstring): a copy in which the plain 2x2
    max-pools and the batch norms after convolutions of its ``nn.Sequential`` blocks are rewritten, or
    ``encoder`` itself where it has none."""
    if not any(isinstance(module, nn.Sequential) and _rewritable(module) for module in encoder.modules()):
        return encoder
    rewritten = copy.deepcopy(encoder)
    for module in list(rewritten.modules()):
        if isinstance(module, nn.Sequential):
            _rewrite(module)
    return rewritten.eval()
