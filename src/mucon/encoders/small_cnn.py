"""SmallCNN: a cheap 2D CNN on a log-mel spectrogram, sized for CPU demos and tests.

It stands in for the papers' encoders when a method has to train for real on a laptop: a training
step on a batch of 32 two-second crops takes a fraction of a second on two CPU cores. Every block
halves frequency and time, so it needs 2**len(channels) frames (16 by default: about 0.25 s with
the default frontend); longer inputs give ``frames // 16`` time steps.
"""

from __future__ import annotations

from torch import Tensor, nn

from mucon.encoders.base import SpectrogramEncoder, check_frontend, conv_bn_pool_relu


def small_cnn_frontend(sample_rate: int = 16000, n_mels: int = 64) -> nn.Module:
    """32 ms windows, 16 ms hop, dB scale: coarse enough to keep the CNN cheap."""
    from mucon.audio.frontend import LogMelSpectrogram

    return LogMelSpectrogram(
        sample_rate=sample_rate, n_fft=512, win_length=512, hop_length=256, n_mels=n_mels, scale="db"
    )


FRONTEND_NAMES = ("small_cnn", "cola", "cola_crop_level")


def named_frontend(name: str, sample_rate: int, n_mels: int) -> nn.Module:
    """A frontend a config can name, so CPU presets of a method keep its features: ``small_cnn`` (the
    default above), ``cola`` (COLA/MSCOL's 64-band natural-log mel of the waveform at its item's level, as
    the releases) or ``cola_crop_level`` (the same with each crop normalised to one level, an ablation)."""
    from mucon.audio.frontend import cola_frontend

    if name == "small_cnn":
        return small_cnn_frontend(sample_rate, n_mels)
    if name == "cola":
        return cola_frontend(sample_rate)
    if name == "cola_crop_level":
        return cola_frontend(sample_rate, waveform_level="crop")
    raise ValueError(f"unknown frontend {name!r}; choose one of {', '.join(FRONTEND_NAMES)}")


class SmallCNN(SpectrogramEncoder):
    """BatchNorm2d(1) on the spectrogram, blocks of 3x3 conv + BN + 2x2 max-pool + ReLU, then a
    per-frame linear map from (channels x remaining bands) to ``dim``.

    The linear map keeps which band a feature came from (averaging bands would discard it) while
    fixing D independently of ``n_mels``. Mean pooling over frames: a stable clip summary for the
    short, noisy demo runs.
    """

    pooling = "mean"

    def __init__(
        self,
        sample_rate: int = 16000,
        input_samples: int = 32000,
        n_mels: int = 64,
        channels: tuple[int, ...] = (32, 64, 128, 128),
        dim: int = 128,
        frontend: nn.Module | str = "small_cnn",
    ):
        super().__init__()
        reduction = 2 ** len(channels)
        if n_mels < reduction:
            raise ValueError(f"n_mels={n_mels} is fewer than the {reduction}x frequency pooling")
        self.frontend = named_frontend(frontend, sample_rate, n_mels) if isinstance(frontend, str) else frontend
        check_frontend(self.frontend, sample_rate, n_mels)
        self.sample_rate = sample_rate
        self.input_samples = input_samples
        self.dim = dim
        self.min_frames = reduction

        self.input_norm = nn.BatchNorm2d(1)
        blocks = []
        for in_channels, out_channels in zip((1, *channels), channels):
            blocks += conv_bn_pool_relu(in_channels, out_channels, pool=2, bias=False)
        self.blocks = nn.Sequential(*blocks)
        self.to_frames = nn.Linear(channels[-1] * (n_mels // reduction), dim)

    def forward_spectrogram(self, spec: Tensor) -> Tensor:
        """``[B, n_mels, frames]`` -> ``[B, frames // 16, dim]``."""
        features = self.blocks(self.input_norm(spec.unsqueeze(1)))  # [B, C, F, T]
        return self.to_frames(features.flatten(1, 2).transpose(1, 2))
