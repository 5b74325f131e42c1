"""Audio corruptions for the robustness evaluation, each a function of a severity.

Signature shared by all: ``corrupt(x [B, T], severity, sample_rate, generator) -> [B, T]``.
Shape is kept (a length-changing effect is cut or zero-padded at the end, as audiomentations'
``leave_length_unchanged`` does), each row draws its own parameters from ``generator`` only, and
severity 0 is never called (it is the clean audio, shared by every curve). Severity 1 is a clearly
audible but musical setting; 2 is harsh (e.g. 4-bit, 8 kbit/s MP3).

The training chain is SemiSupCon's; the others are SemiSupCon's "unseen corruptions", applied one
at a time, and its tiers stack them on the chain cumulatively (``tier-5`` .. ``tier-10``, as the
release's ``Tier N.yaml``). "Unseen" holds for a model whose pretraining chain applied none of a
corruption's effects: CLMR and PEMR pretrain with reverb, for instance. Each corruption names the
pretraining augmentations (``mucon.audio.augment`` classes) that produce it, and
``robustness.exposure`` says, from a checkpoint's own chain, whether it saw it.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from collections.abc import Callable

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor

from mucon.audio.augment import Reverb, rms, uniform
from mucon.audio.chains import SEMISUPCON_SEVERITIES, semisupcon_chain

CorruptionFn = Callable[[Tensor, float, int, torch.Generator], Tensor]
_TINY = 1e-8


def _peak(x: Tensor) -> Tensor:
    return x.abs().amax(dim=-1, keepdim=True).clamp(min=_TINY)


def _match_rms(y: Tensor, reference: Tensor) -> Tensor:
    """Give ``y`` the loudness of ``reference``, so a corruption changes timbre, not level."""
    return y * rms(reference) / rms(y).clamp(min=_TINY)


def _fit_length(y: Tensor, length: int) -> Tensor:
    return y[..., :length] if y.shape[-1] >= length else F.pad(y, (0, length - y.shape[-1]))


@functools.lru_cache(maxsize=32)
def _training_chain_module(sample_rate: int, severity: float):
    return semisupcon_chain(sample_rate, severity)


def training_chain(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """SemiSupCon's pretraining chain at this severity (the chain's own p applies per row)."""
    return _training_chain_module(sample_rate, float(severity))(x, generator)


def _stretch_row(row: Tensor, rate: float, n_fft: int) -> Tensor:
    """Phase-vocoder time stretch of one waveform: ``rate`` > 1 is faster, pitch unchanged."""
    if row.shape[-1] <= n_fft:  # too short to hold one analysis frame: nothing to stretch
        return row
    hop = n_fft // 4
    window = torch.hann_window(n_fft, dtype=row.dtype)
    spectrum = torch.stft(row, n_fft, hop, window=window, return_complex=True)
    n_bins, n_frames = spectrum.shape
    positions = torch.arange(0.0, n_frames - 1, rate, dtype=row.dtype)
    left = positions.long()
    fraction = positions - left
    magnitude = (1 - fraction) * spectrum[:, left].abs() + fraction * spectrum[:, left + 1].abs()
    # Each output frame advances each bin's phase by the advance measured between its two source frames.
    nominal = 2 * math.pi * hop / n_fft * torch.arange(n_bins, dtype=row.dtype).unsqueeze(1)
    measured = spectrum[:, left + 1].angle() - spectrum[:, left].angle() - nominal
    advance = nominal + torch.remainder(measured + math.pi, 2 * math.pi) - math.pi
    phase = spectrum[:, :1].angle() + torch.cumsum(advance, dim=1) - advance  # exclusive running sum
    length = max(1, round(row.shape[-1] / rate))
    return torch.istft(torch.polar(magnitude, phase), n_fft, hop, window=window, length=length)


def time_stretch(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """Tempo change by a factor 1 + 0.1 s, faster or slower at random (s = 2: +-20 %), pitch kept."""
    factor = 1.0 + 0.1 * severity
    faster = torch.rand(x.shape[0], generator=generator) < 0.5
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    rows = [
        _fit_length(_stretch_row(row, factor if fast else 1.0 / factor, n_fft), x.shape[-1])
        for row, fast in zip(x, faster.tolist())
    ]
    return _match_rms(torch.stack(rows), x)


def reverse(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """Time reversal: the spectrum over a window is kept, every onset becomes a swell."""
    return x.flip(-1)


def splice_out(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """Cut out random 20-60 ms intervals, about 10 x severity % of the clip, and join what is left
    (clicks at the joins included); the freed tail is silence."""
    batch, length = x.shape
    mean_width = int(0.04 * sample_rate)
    n_intervals = max(1, round(0.1 * severity * length / mean_width))
    widths = (uniform(batch * n_intervals, 0.02, 0.06, x, generator) * sample_rate).long().view(batch, n_intervals)
    starts = (torch.rand(batch, n_intervals, generator=generator) * length).long()
    ends = (starts + widths).clamp(max=length)
    # +1 where an interval starts, -1 where it ends: a positive running sum marks removed samples.
    edges = torch.zeros(batch, length + 1)
    edges.scatter_add_(1, starts, torch.ones_like(starts, dtype=edges.dtype))
    edges.scatter_add_(1, ends, -torch.ones_like(ends, dtype=edges.dtype))
    removed = edges.cumsum(dim=1)[:, :length] > 0
    kept_first = torch.argsort(removed.to(torch.int8), dim=1, stable=True)
    n_kept = (~removed).sum(dim=1, keepdim=True)
    joined = x.gather(1, kept_first)
    return joined * (torch.arange(length).unsqueeze(0) < n_kept)


def chorus(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """A chorus: the clip mixed with a copy whose delay swings around 7 ms at 5 Hz (pedalboard's
    ``Chorus`` centre and SemiSupCon's rate), depth and mix 0.5 s each, capped at 1 (s = 2: the
    release's depth 1, mix 1); each row starts its swing at a random phase. Loudness kept."""
    depth, mix = min(1.0, 0.5 * severity), min(1.0, 0.5 * severity)
    centre = 0.007 * sample_rate
    phase = 2 * math.pi * torch.rand(x.shape[0], 1, generator=generator, dtype=x.dtype)
    t = torch.arange(x.shape[-1], dtype=x.dtype) / sample_rate
    delay = centre * (1.0 + depth * torch.sin(2 * math.pi * 5.0 * t + phase))  # samples, >= 0
    position = (torch.arange(x.shape[-1], dtype=x.dtype) - delay).clamp(min=0.0)
    left = position.floor().long()
    fraction = position - left
    right = (left + 1).clamp(max=x.shape[-1] - 1)
    delayed = (1 - fraction) * x.gather(1, left) + fraction * x.gather(1, right)  # linear interpolation
    return _match_rms((1 - mix) * x + mix * delayed, x)


def reverb(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """A synthetic room with RT60 0.5 s .. s seconds and a wet mix growing with s."""
    room = Reverb(
        sample_rate,
        min_rt60_s=0.5 * severity,
        max_rt60_s=1.0 * severity,
        min_wet=min(0.8, 0.25 * severity),
        max_wet=min(0.9, 0.4 * severity),
    )
    return room(x, generator)


def distortion(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """tanh saturation driven 12 s dB into the clip's peak (level-independent), loudness kept."""
    drive = 10.0 ** (12.0 * severity * uniform(x.shape[0], 0.75, 1.0, x, generator).unsqueeze(1) / 20.0)
    peak = _peak(x)
    return _match_rms(torch.tanh(drive * x / peak), x)


def compression(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """Dynamic-range compression above a threshold 6 s dB under the loudest 10 ms, at a ratio drawn in
    1 + (2.25 .. 3) s (s = 2: about 7:1). The gain follows a 10 ms RMS envelope, interpolated per
    sample; make-up gain restores the clip's loudness."""
    frame = max(1, int(0.01 * sample_rate))
    envelope = F.avg_pool1d(x.square().unsqueeze(1), frame, frame, ceil_mode=True).squeeze(1)
    level_db = 10.0 * torch.log10(envelope.clamp(min=1e-10))
    ratio = 1.0 + 3.0 * severity * uniform(x.shape[0], 0.75, 1.0, x, generator).unsqueeze(1)
    threshold_db = level_db.amax(dim=1, keepdim=True) - 6.0 * severity
    gain_db = -(1.0 - 1.0 / ratio) * (level_db - threshold_db).clamp(min=0.0)
    gain = F.interpolate((10.0 ** (gain_db / 20.0)).unsqueeze(1), size=x.shape[-1], mode="linear", align_corners=False)
    return _match_rms(x * gain.squeeze(1), x)


def bitcrush(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """Quantise to 8 - 2 s bits of the clip's peak (s = 2: the 4-bit crush of SemiSupCon).

    Relative to the peak so a quiet recording is not simply silenced; mid-tread, so silence stays silent.
    """
    bits = max(1.0, 8.0 - 2.0 * severity)
    steps = 2.0 ** (bits - 1.0) - 1.0
    peak = _peak(x)
    return torch.round(x / peak * steps) / steps * peak


def _mp3_level(severity: float) -> float:
    """libsndfile's MP3 compression level: 0.5 is ~90 kbit/s, 0.99 ~8 kbit/s at 16-22 kHz."""
    return min(0.99, 0.5 + 0.245 * severity)


def _mp3_round_trip(row: np.ndarray, sample_rate: int, level: float) -> np.ndarray:
    buffer = io.BytesIO()
    clipped = np.clip(row, -1.0, 1.0)
    sf.write(buffer, clipped, sample_rate, format="MP3", compression_level=level, bitrate_mode="CONSTANT")
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return decoded


def _align(decoded: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Undo the codec's start delay (which some bitrates leave in) by cross-correlation, then fit length."""
    extra = len(decoded) - len(original)
    if extra > 0:
        # Zero-padded to a power of two: any length >= both signals gives the same lags, and an FFT of
        # a length with a large prime factor (801472 = 2^6 x 12523) takes seconds instead of milliseconds.
        n = 1 << (len(decoded) + len(original) - 1).bit_length()
        correlation = np.fft.irfft(np.fft.rfft(decoded, n) * np.conj(np.fft.rfft(original, n)), n)
        decoded = decoded[int(np.argmax(correlation[: extra + 1])) :]
    return np.pad(decoded[: len(original)], (0, max(0, len(original) - len(decoded))))


@functools.lru_cache(maxsize=8)
def mp3_supported(sample_rate: int) -> bool:
    """Whether this libsndfile can encode MP3 at this rate (it needs libmp3lame and an MPEG rate)."""
    if "MP3" not in sf.available_formats():
        return False
    try:
        _mp3_round_trip(np.zeros(sample_rate // 10, dtype=np.float32), sample_rate, _mp3_level(2.0))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        return False
    return True


def mp3(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """Encode and decode as constant-bitrate MP3, lower bitrate at higher severity (~8 kbit/s at 2)."""
    level = _mp3_level(severity)
    rows = [_align(_mp3_round_trip(row, sample_rate, level), row) for row in x.detach().cpu().float().numpy()]
    return torch.from_numpy(np.stack(rows)).to(x)


def _leaf_augmentations(chain) -> frozenset[str]:
    """The class names of the effects a chain applies (its ``Compose`` and ``OneOf`` opened)."""
    from mucon.audio.augment import Augmentation, Compose, OneOf

    return frozenset(type(module).__name__ for module in chain.modules()
                     if isinstance(module, Augmentation) and not isinstance(module, (Compose, OneOf)))


@dataclasses.dataclass(frozen=True)
class Corruption:
    """A named corruption, the severities it is tested at, the pretraining augmentations that
    produce it (``produced_by``), and for a tier the corruptions it stacks, in order (``members``)."""

    name: str
    apply: CorruptionFn
    severities: tuple[float, ...]
    produced_by: frozenset[str] = frozenset()
    members: tuple[str, ...] = ()

    def available(self, sample_rate: int) -> bool:
        if self.members:
            return all(CORRUPTIONS[member].available(sample_rate) for member in self.members)
        return self.apply is not mp3 or mp3_supported(sample_rate)


def _stacked(members: tuple[str, ...]) -> CorruptionFn:
    """The members applied one after the other, each at the tier's severity, from one generator."""
    def apply(x: Tensor, severity: float, sample_rate: int, generator: torch.Generator) -> Tensor:
        for member in members:
            x = CORRUPTIONS[member].apply(x, severity, sample_rate, generator)
        return x

    return apply


_TESTED = tuple(s for s in SEMISUPCON_SEVERITIES if s > 0)
# SemiSupCon's tiers (severity_experiments/new_augmentations/with/Tier N.yaml): each adds these to the last.
_TIER_ADDS = {5: ("training-chain", "time-stretch"), 6: ("splice-out",), 7: ("reverb", "chorus"), 8: ("distortion",),
              9: ("compression", "reverse"), 10: ("bitcrush", "mp3")}
TIER_SEVERITY = 2.0  # the release's tiers: its chain at severity modifier 2, its effects at what mucon's s = 2 gives


def _tiers() -> list[Corruption]:
    tiers, stacked = [], ()
    for number, added in _TIER_ADDS.items():
        stacked += added
        tiers.append(Corruption(f"tier-{number}", _stacked(stacked), (TIER_SEVERITY,), members=stacked))
    return tiers


CORRUPTIONS: dict[str, Corruption] = {
    corruption.name: corruption
    for corruption in (
        Corruption("training-chain", training_chain, _TESTED, _leaf_augmentations(semisupcon_chain())),
        Corruption("time-stretch", time_stretch, _TESTED),
        Corruption("reverse", reverse, (1.0,)),
        Corruption("splice-out", splice_out, _TESTED),
        Corruption("reverb", reverb, _TESTED, frozenset({"Reverb"})),
        Corruption("chorus", chorus, _TESTED),
        Corruption("distortion", distortion, _TESTED),
        Corruption("compression", compression, _TESTED),
        Corruption("bitcrush", bitcrush, _TESTED),
        Corruption("mp3", mp3, _TESTED),
        *_tiers(),
    )
}
