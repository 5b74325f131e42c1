"""PEMR's encoder: a 4-block 2D CNN on a 128-band dB mel spectrogram.

Shapes at the design length (59049 samples at 22050 Hz, 128 mels x 462 frames)::

    [B, 1, 128, 462] -> BN -> 64ch /(2,4) -> [64, 64, 115] -> 128ch /(2,4) -> [128, 32, 28]
                     -> 128ch /(2,4) -> [128, 16, 7] -> 128ch /(4,5) -> [128, 4, 1]

so one frame of 128 channels x 4 bands = 512 features. Time is divided by 4*4*4*5 = 320, so the
backbone needs at least 320 frames (about 1.9 s with the PEMR frontend); longer inputs give
``frames // 320`` time steps.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from mucon.encoders.base import SpectrogramEncoder, check_frontend, conv_bn_pool_relu

PEMR_CHANNELS = (64, 128, 128, 128)
PEMR_POOLS = ((2, 4), (2, 4), (2, 4), (4, 5))


class PEMRCNN(SpectrogramEncoder):
    """BatchNorm2d(1) on the spectrogram, then 4 x [3x3 conv + BN + MaxPool + ReLU].

    Pooling is MAX over time: at the design length the last (4, 5) max-pool already spans all the
    remaining time, so the network's clip vector is a max over time; a global max over T keeps that
    meaning for longer inputs (a wider last pool), where a mean would change it into an average of
    window vectors. At the design length T = 1 and the choice makes no difference.
    """

    pooling = "max"

    def __init__(
        self,
        frontend: nn.Module | None = None,
        n_mels: int = 128,
        sample_rate: int = 22050,
        input_samples: int = 59049,
        channels: tuple[int, ...] = PEMR_CHANNELS,
        pools: tuple[tuple[int, int], ...] = PEMR_POOLS,
        filterbank_sample_rate: int | None = None,
    ):
        super().__init__()
        if len(channels) != len(pools):
            raise ValueError("channels and pools must have one entry per block")
        if frontend is not None and filterbank_sample_rate is not None:
            raise ValueError("filterbank_sample_rate shapes the default frontend; a given frontend brings its own")
        if frontend is None:
            from mucon.audio.frontend import pemr_frontend

            frontend = pemr_frontend(sample_rate, n_mels, filterbank_sample_rate)
        check_frontend(frontend, sample_rate, n_mels)
        self.frontend = frontend
        self.sample_rate = sample_rate
        self.input_samples = input_samples

        freq_reduction = math.prod(pool[0] for pool in pools)
        if n_mels < freq_reduction:
            raise ValueError(f"n_mels={n_mels} is fewer than the {freq_reduction}x frequency pooling")
        self.dim = channels[-1] * (n_mels // freq_reduction)
        self.min_frames = math.prod(pool[1] for pool in pools)

        self.input_norm = nn.BatchNorm2d(1)
        blocks = []
        for in_channels, out_channels, pool in zip((1, *channels), channels, pools):
            blocks += conv_bn_pool_relu(in_channels, out_channels, pool, bias=True)
        self.blocks = nn.Sequential(*blocks)

    def forward_spectrogram(self, spec: Tensor) -> Tensor:
        """``[B, n_mels, frames]`` -> ``[B, T, channels * remaining bands]``."""
        features = self.blocks(self.input_norm(spec.unsqueeze(1)))  # [B, C, F, T]
        return features.flatten(1, 2).transpose(1, 2)
