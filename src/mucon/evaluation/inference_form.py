"""An encoder rewritten for embedding: the same outputs, bit for bit, in fewer passes over its activations.

Evaluation spends most of its time in encoder forwards, and much of a small CNN's forward on a CPU is
memory-bound work over the first layers' full-resolution activations, 2x2 max-pooling among it: torch's
CPU pooling also writes the argmax indices that only a backward pass needs, and a 2x2 max-pool taken as
three elementwise maxima writes none. Training never sees this (its backward needs the indices): only a
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


def _rewrite(sequential: nn.Sequential) -> None:
    """In place: every plain 2x2 max-pool becomes a ``MaxPool2x2``."""
    for index, layer in enumerate(sequential):
        if _plain_2x2_pool(layer):
            sequential[index] = MaxPool2x2()


def for_inference(encoder: Encoder) -> Encoder:
    """``encoder``'s embeddings in fewer passes (see the module's docstring): a copy in which the plain 2x2
    max-pools of its ``nn.Sequential`` blocks are rewritten, or ``encoder`` itself where it has none."""
    if not any(isinstance(module, nn.Sequential) and any(map(_plain_2x2_pool, module))
               for module in encoder.modules()):
        return encoder
    rewritten = copy.deepcopy(encoder)
    for module in rewritten.modules():
        if isinstance(module, nn.Sequential):
            _rewrite(module)
    return rewritten.eval()
