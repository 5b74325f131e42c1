"""EfficientNet-B0 on a 1-channel log-mel spectrogram: the COLA / MSCOL encoder.

The standard B0 (Tan & Le, 2019) written out here so it trains from scratch with no pretrained
weights and no torchvision: a stride-2 stem of 32 channels, 16 MBConv blocks in 7 stages with
squeeze-and-excitation (ratio 0.25 of the block's input width) and SiLU, and a 1x1 head conv to
1280 channels. With ``in_channels=3`` the feature extractor has exactly the reference count of
4,007,548 parameters; the 1-channel stem used here removes 576 of them (4,006,972).

The network halves height and width 5 times (with padding, so any size >= 1 works): the COLA crop
of 64 mels x ~98 frames ends as a 2 x 4 grid, i.e. 4 frames of 1280 features.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mucon.encoders.base import SpectrogramEncoder, check_frontend

# (expansion ratio, kernel size, first stride, output channels, repeats) per stage
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
B0_STEM_CHANNELS = 32
B0_HEAD_CHANNELS = 1280
SE_RATIO = 0.25
# Keras' BatchNormalization epsilon, which the reference B0 uses; momentum stays at PyTorch's 0.1
# (Keras' 0.99 would be 0.01 here, too slow for the short CPU runs mucon also targets).
BN_EPS = 1e-3


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
             activation: bool = True) -> nn.Sequential:
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=BN_EPS),
    ]
    if activation:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gates from globally averaged features: lets each block reweight its channels."""

    def __init__(self, channels: int, squeezed_channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed_channels, kernel_size=1)
        self.expand = nn.Conv2d(squeezed_channels, channels, kernel_size=1)
        self.activation = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.expand(self.activation(self.reduce(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole example, rescaling the survivors."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> SE -> 1x1 linear projection (+ skip)."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int,
                 stride: int, drop_path_rate: float):
        super().__init__()
        hidden = in_channels * expand_ratio
        layers = []
        if expand_ratio != 1:
            layers.append(_conv_bn(in_channels, hidden, kernel_size=1))
        layers += [
            _conv_bn(hidden, hidden, kernel_size, stride=stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, int(in_channels * SE_RATIO))),
            _conv_bn(hidden, out_channels, kernel_size=1, activation=False),
        ]
        self.branch = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if self.residual else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        return x + self.drop_path(out) if self.residual else out


class EfficientNetB0Backbone(nn.Module):
    """B0 feature extractor: ``[B, in_channels, H, W]`` -> ``[B, 1280, H/32, W/32]`` (rounded up).

    ``drop_path_rate`` is the stochastic-depth rate of the last block, scaled linearly from 0 over
    the blocks (0.2 is the reference B0 setting, also Keras' default that COLA trained with).
    """

    def __init__(self, in_channels: int = 1, drop_path_rate: float = 0.2):
        super().__init__()
        self.stem = _conv_bn(in_channels, B0_STEM_CHANNELS, kernel_size=3, stride=2)
        total_blocks = sum(stage[-1] for stage in B0_STAGES)
        blocks = []
        channels = B0_STEM_CHANNELS
        for expand_ratio, kernel_size, first_stride, out_channels, repeats in B0_STAGES:
            for repeat in range(repeats):
                blocks.append(MBConv(
                    channels, out_channels, expand_ratio, kernel_size,
                    stride=first_stride if repeat == 0 else 1,
                    drop_path_rate=drop_path_rate * len(blocks) / total_blocks,
                ))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(channels, B0_HEAD_CHANNELS, kernel_size=1)
        self.out_channels = B0_HEAD_CHANNELS
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Scratch init: He-normal (fan-out) convolutions, unit BN scales, zero biases.

        The fan-out counts only the outputs one input channel feeds (``out / groups * k * k``), as
        in the reference TF initialiser. ``nn.init.kaiming_normal_`` ignores groups, which makes the
        depthwise kernels ~10x too small: harmless in training mode, but in eval mode before any
        training the activations then shrink into float denormals and CPU inference slows ~20x.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                out_channels, _, height, width = module.weight.shape
                fan_out = out_channels // module.groups * height * width
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


class EfficientNetB0(SpectrogramEncoder):
    """COLA/MSCOL encoder: log-mel frontend + B0 backbone; frames of 1280, global MAX pooling.

    Each frame is the remaining frequency axis reduced by ``freq_reduction``. The default 'max' makes
    ``embed`` exactly the paper's global 2D max pooling (max over bands, then over time); 'mean'
    averages bands instead, for smoother per-frame features. ``frontend``: a module, or a name that
    ``mucon.encoders.small_cnn.named_frontend`` knows (default ``cola``; ``cola_crop_level``).
    """

    pooling = "max"
    min_frames = 1

    def __init__(
        self,
        frontend: nn.Module | str | None = None,
        sample_rate: int = 16000,
        input_samples: int | None = None,
        drop_path_rate: float = 0.2,
        freq_reduction: Literal["max", "mean"] = "max",
    ):
        super().__init__()
        if freq_reduction not in ("max", "mean"):
            raise ValueError(f"freq_reduction must be 'max' or 'mean', got {freq_reduction!r}")
        if frontend is None or isinstance(frontend, str):
            from mucon.encoders.small_cnn import named_frontend

            frontend = named_frontend(frontend or "cola", sample_rate, 64)
        check_frontend(frontend, sample_rate)
        self.frontend = frontend
        self.sample_rate = sample_rate
        self.input_samples = sample_rate if input_samples is None else input_samples  # COLA's 1 s crop
        self.freq_reduction = freq_reduction
        self.backbone = EfficientNetB0Backbone(in_channels=1, drop_path_rate=drop_path_rate)
        self.dim = self.backbone.out_channels

    def forward_spectrogram(self, spec: Tensor) -> Tensor:
        """``[B, n_mels, frames]`` -> ``[B, ceil(frames / 32), 1280]``."""
        features = self.backbone(spec.unsqueeze(1))  # [B, 1280, F, T]
        reduced = features.amax(dim=2) if self.freq_reduction == "max" else features.mean(dim=2)
        return reduced.transpose(1, 2)
