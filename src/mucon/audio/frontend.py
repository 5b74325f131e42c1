"""Log-mel front ends that run on the model's device, as part of the model.

PEMR's encoder reads a dB mel spectrogram (torchaudio's conventions); MSCOL/COLA read a natural-log
mel spectrogram computed the TensorFlow way. Both are one module here, ``LogMelSpectrogram``,
built from plain torch so that no audio library decides the numbers, with presets that reproduce
each paper's frame counts (PEMR: 59049 samples -> 128 x 462; COLA: 16000 samples -> 64 x 98).

Mel scale: HTK (mel = 2595 log10(1 + f / 700)), triangles linear in Hz between mel-spaced edges,
no area normalisation; this is torchaudio's default, which PEMR used, and the scale TensorFlow's
mel matrix (COLA) is built on. Myna's release reads nnAudio's default instead, Slaney's scale (linear
below 1 kHz, logarithmic above) with each triangle scaled to unit area (``mel_scale="slaney"``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mucon.precision import full_precision

Scale = Literal["db", "log", "log1p"]
SCALES = ("db", "log", "log1p")
MelScale = Literal["htk", "slaney"]
Stft = Literal["fft", "conv"]
STFTS = ("fft", "conv")
WaveformLevel = Literal["item", "crop"]
WAVEFORM_LEVELS = ("item", "crop")

PEMR_SAMPLE_RATE = 22050
PEMR_CROP_SAMPLES = 59049
COLA_SAMPLE_RATE = 16000
COLA_CROP_SAMPLES = 16000  # 1 s: 1 + (16000 - 400) // 160 = 98 frames, as in COLA and MSCOL


def hz_to_mel(hz: Tensor) -> Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)


SLANEY_LINEAR_HZ_PER_MEL = 200.0 / 3.0
SLANEY_LOG_FROM_HZ = 1000.0
SLANEY_LOG_STEP = math.log(6.4) / 27.0  # 27 mels per factor 6.4 above 1 kHz


def hz_to_slaney_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (librosa's and nnAudio's default): linear up to 1 kHz (15 mels), log above."""
    linear = hz / SLANEY_LINEAR_HZ_PER_MEL
    logarithmic = SLANEY_LOG_FROM_HZ / SLANEY_LINEAR_HZ_PER_MEL + torch.log(hz.clamp(min=1e-12) / SLANEY_LOG_FROM_HZ) / SLANEY_LOG_STEP
    return torch.where(hz < SLANEY_LOG_FROM_HZ, linear, logarithmic)


def slaney_mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of ``hz_to_slaney_mel``."""
    log_from_mel = SLANEY_LOG_FROM_HZ / SLANEY_LINEAR_HZ_PER_MEL
    logarithmic = SLANEY_LOG_FROM_HZ * torch.exp(SLANEY_LOG_STEP * (mel - log_from_mel))
    return torch.where(mel < log_from_mel, mel * SLANEY_LINEAR_HZ_PER_MEL, logarithmic)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float,
                   mel_scale: MelScale = "htk") -> Tensor:
    """Triangular mel filterbank ``[n_freqs, n_mels]`` for rFFT bins 0 .. sample_rate / 2.

    Band m rises linearly (in Hz) from edge m to edge m + 1 and falls to edge m + 2, the
    ``n_mels + 2`` edges being evenly spaced in mel between ``f_min`` and ``f_max``. ``"htk"``: HTK's
    scale, peaks of 1; ``"slaney"``: Slaney's scale, each band scaled by 2 / its width in Hz (unit area).
    """
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    if mel_scale not in ("htk", "slaney"):
        raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")
    to_mel, to_hz = (hz_to_mel, mel_to_hz) if mel_scale == "htk" else (hz_to_slaney_mel, slaney_mel_to_hz)
    bin_hz = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mel_edges = torch.linspace(
        to_mel(torch.tensor(f_min, dtype=torch.float64)),
        to_mel(torch.tensor(f_max, dtype=torch.float64)),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = to_hz(mel_edges)
    lower, centre, upper = hz_edges[:-2], hz_edges[1:-1], hz_edges[2:]
    rising = (bin_hz.unsqueeze(1) - lower) / (centre - lower)
    falling = (upper - bin_hz.unsqueeze(1)) / (upper - centre)
    bands = torch.minimum(rising, falling).clamp(min=0.0)
    if mel_scale == "slaney":
        bands = bands * (2.0 / (upper - lower))
    return bands.to(torch.float32)


class LogMelSpectrogram(nn.Module):
    """Waveforms ``[..., T]`` -> log-mel spectrograms ``[..., n_mels, frames]``.

    Frames are ``win_length`` samples every ``hop_length``, Hann-windowed (periodic), zero-padded
    to ``n_fft`` for the FFT. With ``center=True`` the signal is reflect-padded by win_length // 2
    on each side first, so frames = 1 + T // hop (torch.stft / torchaudio); with ``center=False``
    frames = 1 + (T - win_length) // hop (TensorFlow's ``tf.signal.stft``). Framing by
    ``win_length`` rather than ``n_fft`` is what lets a 400-sample window in a 1024-point FFT give
    COLA's 98 frames per second; when win_length == n_fft it equals torch.stft.

    ``power`` 2 gives a power spectrogram, 1 a magnitude one. ``scale='db'`` gives
    10 log10(max(mel, 1e-10)), optionally floored at ``top_db`` below each example's maximum;
    ``scale='log'`` gives log(max(mel, 1e-5)); ``scale='log1p'`` gives log(1 + mel) (Myna's), which needs
    no floor. ``mel_scale``: see ``mel_filterbank``.

    ``waveform_level`` scales the waveform before anything else (COLA, MSCOL), so that the features do
    not depend on the recording's level. ``"item"``: by the level of the whole item the crop was cut
    from, ``forward(crops, level=item_rms)``, to x / (item_rms sqrt(T)): a crop as loud as its item gets
    unit L2 norm, and a quiet passage stays as much quieter than the item as it is. The releases
    L2-normalise the whole clip (COLA) or stem (MSCOL) before cropping; dividing by the RMS instead of the
    norm gives the same features up to a constant factor for their equal-length clips, and keeps the level
    of items of any length comparable. Without ``level`` the input is taken as its own item (a whole
    track's windows at evaluation are then each their own item). ``"crop"``: each crop by its own L2 norm
    (mucon's earlier way), so that every crop, a near-silent one included, reaches the same level.
    ``None``: the waveform as it comes.
    ``filterbank_sample_rate`` builds the mel filterbank as if the audio were at that rate (its bins
    spanning 0 .. filterbank_sample_rate / 2) and applies it to the audio's FFT bins as they are:
    PEMR's release did so by leaving torchaudio's 16 kHz default (see ``pemr_frontend``).
    ``stft="conv"`` computes the spectrum as one strided conv1d with a fixed basis (window times cos and
    sin of each rFFT bin) instead of an FFT: the same numbers to float32 rounding, and an exported model
    without an ONNX DFT/STFT op, for runtimes where that op is slow or missing (``use_stft``).
    Window, filterbank and conv basis are non-persistent buffers: they follow ``.to(device)`` and stay out
    of checkpoints.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        win_length: int | None = None,
        hop_length: int | None = None,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        scale: Scale = "db",
        power: float = 2.0,
        center: bool = True,
        waveform_level: WaveformLevel | None = None,
        top_db: float | None = None,
        filterbank_sample_rate: int | None = None,
        stft: Stft = "fft",
        mel_scale: MelScale = "htk",
    ):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r}")
        if waveform_level is not None and waveform_level not in WAVEFORM_LEVELS:
            raise ValueError(f"waveform_level must be 'item', 'crop' or None, got {waveform_level!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 4
        if self.win_length > n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {n_fft}")
        self.n_mels = n_mels
        self.scale = scale
        self.power = power
        self.center = center
        self.waveform_level = waveform_level
        self.top_db = top_db
        self.filterbank_sample_rate = filterbank_sample_rate or sample_rate
        f_max = self.filterbank_sample_rate / 2 if f_max is None else f_max
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer(
            "filterbank", mel_filterbank(n_fft // 2 + 1, n_mels, self.filterbank_sample_rate, f_min, f_max, mel_scale),
            persistent=False,
        )
        self.use_stft(stft)

    def use_stft(self, stft: Stft) -> None:
        """Switch how the spectrum is computed (``"fft"`` or ``"conv"``); the features stay the same."""
        if stft not in STFTS:
            raise ValueError(f"stft must be 'fft' or 'conv', got {stft!r}")
        self.stft = stft
        basis = conv_stft_basis(self.window, self.n_fft) if stft == "conv" else None
        self.register_buffer("stft_basis", None if basis is None else basis.to(self.window.device), persistent=False)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a waveform of ``n_samples``."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + (n_samples - self.win_length) // self.hop_length

    @full_precision
    def forward(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        """``level``: the RMS of each waveform's whole item (shape ``waveform.shape[:-1]``), used by
        ``waveform_level="item"`` only."""
        leading, length = waveform.shape[:-1], waveform.shape[-1]
        x = waveform.reshape(-1, length)
        if self.waveform_level == "item" and level is not None:
            x = x / (level.reshape(-1, 1).to(x.dtype) * length**0.5).clamp(min=1e-12)
        elif self.waveform_level is not None:
            x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        if self.center:
            pad = self.win_length // 2
            x = nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spectrum = self._power_spectrum(x) if self.power == 2.0 else self._magnitude(x)
        if self.power not in (1.0, 2.0):
            spectrum = spectrum.pow(self.power)
        mel = spectrum @ self.filterbank.to(x.dtype)  # [B, frames, n_mels]
        if self.scale == "db":
            features = 10.0 * torch.log10(mel.clamp(min=1e-10))
            if self.top_db is not None:
                ceiling = features.amax(dim=(-2, -1), keepdim=True)
                features = torch.maximum(features, ceiling - self.top_db)
        elif self.scale == "log1p":
            features = torch.log1p(mel)
        else:
            features = torch.log(mel.clamp(min=1e-5))
        return features.transpose(-1, -2).reshape(*leading, self.n_mels, -1)

    def _magnitude(self, x: Tensor) -> Tensor:
        """``|STFT|`` ``[B, frames, freqs]``."""
        if self.stft == "conv":
            return self._power_spectrum(x).sqrt()
        frames = x.unfold(-1, self.win_length, self.hop_length) * self.window.to(x.dtype)
        return torch.fft.rfft(frames, n=self.n_fft).abs()

    def _power_spectrum(self, x: Tensor) -> Tensor:
        """``|STFT|**2`` ``[B, frames, freqs]`` as real^2 + imaginary^2: no square root to square again
        (a complex abs took as long as the FFT)."""
        if self.stft == "fft":
            frames = x.unfold(-1, self.win_length, self.hop_length) * self.window.to(x.dtype)
            spectrum = torch.fft.rfft(frames, n=self.n_fft)
            return spectrum.real.square() + spectrum.imag.square()
        parts = nn.functional.conv1d(x.unsqueeze(1), self.stft_basis.to(x.dtype), stride=self.hop_length)
        real, imaginary = parts.chunk(2, dim=1)
        # contiguous: a transposed spectrum takes matmul's batched path, whose traced reshape fixes the batch
        return (real.square() + imaginary.square()).transpose(1, 2).contiguous()

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
            f"hop_length={self.hop_length}, n_mels={self.n_mels}, scale={self.scale!r}, power={self.power}, "
            f"center={self.center}, waveform_level={self.waveform_level!r}, "
            f"filterbank_sample_rate={self.filterbank_sample_rate}, stft={self.stft!r}"
        )


def conv_stft_basis(window: Tensor, n_fft: int) -> Tensor:
    """conv1d weights ``[2 * (n_fft // 2 + 1), 1, win_length]``: the windowed cos then -sin of each rFFT
    bin over the window's samples (the rest of the n_fft-point frame is zero padding), computed in float64
    so the basis itself adds no rounding beyond float32's."""
    samples = torch.arange(window.numel(), dtype=torch.float64)
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    phase = 2 * torch.pi * torch.outer(bins, samples).remainder(n_fft) / n_fft
    windowed = window.double().cpu()
    basis = torch.cat([torch.cos(phase) * windowed, -torch.sin(phase) * windowed])
    return basis.unsqueeze(1).to(torch.float32)


def myna_frontend(sample_rate: int = 16000, n_mels: int = 128) -> LogMelSpectrogram:
    """Myna: nnAudio's default ``MelSpectrogram`` (2048-point FFT and Hann window, hop 512, centre reflect
    padding, power, 128 Slaney-scale unit-area bands over 0 .. sample_rate / 2), then log(1 + x) as the
    release's ``--log_mel``: 100,000 samples at 16 kHz give 1 + 100000 // 512 = 196 frames."""
    return LogMelSpectrogram(sample_rate=sample_rate, n_fft=2048, hop_length=512, n_mels=n_mels,
                             scale="log1p", center=True, mel_scale="slaney")


def pemr_frontend(
    sample_rate: int = PEMR_SAMPLE_RATE, n_mels: int = 128, filterbank_sample_rate: int | None = None
) -> LogMelSpectrogram:
    """PEMR: 22050 Hz, n_fft = window = 256, hop 128, 128 mels, power in dB.

    Centre padding (torchaudio's default, which PEMR's release used) is what turns 59049 samples
    into 462 frames: 1 + 59049 // 128. At another rate the window and hop keep their sizes in samples.

    The filterbank: ``filterbank_sample_rate=None`` builds it for the audio's rate, 128 HTK-mel bands
    over 0 .. 11025 Hz (centres 15.5, 171, 708, 2134, 5002, 10772 Hz at bands 0, 9, 31, 63, 95, 127).
    PEMR's release (``filterbank_sample_rate=16000``, the ``pemr`` preset) left torchaudio's
    MelSpectrogram at its default 16 kHz: bands mel-spaced over 0 .. 8000 Hz of a 16 kHz FFT, applied
    to the 22050 Hz FFT bins, so each band really sits at 22050 / 16000 = 1.378 times its nominal
    frequency: centres 19.0, 208, 838, 2403, 5328, 10793 Hz at the same bands (36 bands below 1 kHz
    instead of 40): up to a fifth higher at the low end, the same at the top (11025 Hz).
    """
    return LogMelSpectrogram(
        sample_rate=sample_rate,
        n_fft=256,
        win_length=256,
        hop_length=128,
        n_mels=n_mels,
        scale="db",
        center=True,
        filterbank_sample_rate=filterbank_sample_rate,
    )


def cola_frontend(sample_rate: int = COLA_SAMPLE_RATE, waveform_level: WaveformLevel = "item") -> LogMelSpectrogram:
    """COLA / MSCOL: 16 kHz, 25 ms window (400), 10 ms hop (160), 1024-point FFT, 64 mels over
    60 .. 7800 Hz, log(max(x, 1e-5)), the waveform at its item's level (the releases normalise the
    whole clip or stem; ``waveform_level="crop"``, the frontend named ``cola_crop_level``, normalises
    each crop instead; see ``LogMelSpectrogram``).

    No centre padding (TensorFlow's ``tf.signal.stft``, which COLA used), so ``COLA_CROP_SAMPLES``
    = 16000 samples (1 s) give 98 frames. The mel filterbank is applied to the magnitude
    spectrogram (power 1), as COLA's code does. At another rate window and hop keep their
    durations (25 ms, 10 ms) and the FFT grows to hold the window.
    """
    win_length = round(0.025 * sample_rate)
    return LogMelSpectrogram(
        sample_rate=sample_rate,
        n_fft=max(1024, 1 << (win_length - 1).bit_length()),
        win_length=win_length,
        hop_length=round(0.010 * sample_rate),
        n_mels=64,
        f_min=60.0,
        f_max=7800.0,
        scale="log",
        power=1.0,
        center=False,
        waveform_level=waveform_level,
    )

