"""Waveform augmentations that run on a whole batch, on the model's device.

The papers' releases augment one clip at a time in CPU data-loader workers (sox, essentia,
python ``random``). Here every augmentation takes ``[B, T]`` on whatever device the model is on,
draws one set of parameters per example, and does the work for all selected examples in a few
tensor operations: the data loader only slices memory, and a batch of views costs a handful of
FFTs instead of B sox processes.

Conventions shared by every module:

- ``forward(x, generator)``: all randomness comes from the explicit ``torch.Generator`` (on
  ``x``'s device), so a seed reproduces a batch of views exactly and no global RNG is touched.
- Each example is selected independently with probability ``p``; unselected rows come back
  bit-exact, and the effect is computed only for the selected subset.
- ``forward(x, generator, clips)``: ``clips`` (``ClipGroups``) says which rows are views of one
  clip. ``Compose`` and ``OneOf`` built with ``per_clip=True`` then draw their gate and their pick
  once per clip, shared by its views (torch-audiomentations' ``p_mode="per_batch"`` applied to one
  clip's views, as SemiSupCon did); every other draw stays per row.
- Shape and dtype are preserved; silent input stays finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from mucon.audio.frontend import hz_to_mel, mel_to_hz

_SIXTY_DB_IN_NEPERS = 3.0 * math.log(10.0)  # exp(-6.91) = 1e-3: amplitude 60 dB down


def uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator) -> Tensor:
    """``n`` draws from U(low, high) in ``like``'s dtype and device."""
    draws = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * draws


def _mel_uniform(n: int, low_hz: float, high_hz: float, like: Tensor, generator: torch.Generator) -> Tensor:
    """Frequencies drawn uniformly on the mel scale, so low cutoffs are not starved of draws."""
    low_mel, high_mel = hz_to_mel(torch.tensor([low_hz, high_hz], dtype=torch.float64)).tolist()
    return mel_to_hz(uniform(n, low_mel, high_mel, like, generator))


def rms(x: Tensor) -> Tensor:
    """Root-mean-square of each row, shape ``[B, 1]``."""
    return x.square().mean(dim=-1, keepdim=True).sqrt()


@lru_cache(maxsize=64)
def _fast_fft_length(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFTs of such lengths are fast, and much shorter than the next
    power of two (59049 + padding would otherwise double to 131072)."""
    best = 1 << max(n - 1, 0).bit_length()
    power_of_5 = 1
    while power_of_5 < best:
        power_of_3_and_5 = power_of_5
        while power_of_3_and_5 < best:
            candidate = power_of_3_and_5
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power_of_3_and_5 *= 3
        power_of_5 *= 5
    return best


def _check_range(name: str, low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"{name}: minimum {low} is above maximum {high}")


@dataclass(frozen=True)
class ClipGroups:
    """Which clip each row of a batch is a view of: ``ids`` [B] in 0 .. ``count`` - 1.

    ``count`` travels as a Python int so that per-clip draws never wait on the device.
    """

    ids: Tensor
    count: int

    @classmethod
    def view_major(cls, clips: int, views: int, device: torch.device | str | None = None) -> ClipGroups:
        """Rows laid out view by view (row v * clips + c is view v of clip c), as ``nt_xent_ids`` lays them."""
        return cls(torch.arange(clips, device=device).repeat(views), clips)

    def rows(self, rows: Tensor) -> ClipGroups:
        return ClipGroups(self.ids.index_select(0, rows), self.count)

    def rand(self, generator: torch.Generator) -> Tensor:
        """One U(0, 1) draw per clip, given to each of its rows."""
        return torch.rand(self.count, generator=generator, device=self.ids.device)[self.ids]

    def randint(self, high: int, generator: torch.Generator) -> Tensor:
        """One draw in 0 .. high - 1 per clip, given to each of its rows."""
        return torch.randint(high, (self.count,), generator=generator, device=self.ids.device)[self.ids]


class Augmentation(nn.Module):
    """Base class: select each example with probability ``p``, transform only the selected ones.

    Subclasses implement ``transform``, which applies the effect to every row it is given; the
    selection, the pass-through of unselected rows and the re-assembly of the batch live here once.
    ``per_clip``: the selection is drawn once per clip of ``clips`` (shared by its views) when given.
    """

    per_clip = False

    def __init__(self, p: float = 1.0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor, generator: torch.Generator, clips: ClipGroups | None = None) -> Tensor:
        if self.per_clip and clips is not None:
            selected = clips.rand(generator) < self.p
        else:
            selected = torch.rand(x.shape[0], generator=generator, device=x.device) < self.p
        rows = selected.nonzero().squeeze(1)
        if rows.numel() == 0:
            return x
        if rows.numel() == x.shape[0]:
            return self.apply_to(x, generator, clips).to(x.dtype)
        transformed = self.apply_to(x.index_select(0, rows), generator, None if clips is None else clips.rows(rows)).to(x.dtype)
        return x.index_copy(0, rows, transformed)

    def apply_to(self, x: Tensor, generator: torch.Generator, clips: ClipGroups | None) -> Tensor:
        """The effect on the selected rows; a leaf draws per row and has no use for ``clips``."""
        return self.transform(x, generator)

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Apply the effect to every row of ``x`` ([n, T]) with per-row parameters."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Compose(Augmentation):
    """Run a chain on a ``p``-selected subset; each member then applies its own probability.

    SemiSupCon gates its whole chain this way (p = min(1, 0.8 s)), which is what makes severity 0
    the identity; ``per_clip=True`` draws that gate once per clip (see ``ClipGroups``).
    """

    def __init__(self, augmentations: Sequence[nn.Module], p: float = 1.0, per_clip: bool = False):
        super().__init__(p)
        self.augmentations = nn.ModuleList(augmentations)
        self.per_clip = per_clip

    def apply_to(self, x: Tensor, generator: torch.Generator, clips: ClipGroups | None) -> Tensor:
        for augmentation in self.augmentations:
            x = augmentation(x, generator, clips)
        return x

    def extra_repr(self) -> str:
        return f"p={self.p}, per_clip={self.per_clip}"


class OneOf(Augmentation):
    """Each selected example gets exactly one member, picked uniformly (SemiSupCon's filters).

    The pick is per example, so one batch mixes all the filter types; ``per_clip=True`` picks (and
    gates) once per clip, so that the views of a clip share the filter type (see ``ClipGroups``).
    """

    def __init__(self, augmentations: Sequence[nn.Module], p: float = 1.0, per_clip: bool = False):
        super().__init__(p)
        if not augmentations:
            raise ValueError("OneOf needs at least one augmentation")
        self.augmentations = nn.ModuleList(augmentations)
        self.per_clip = per_clip

    def apply_to(self, x: Tensor, generator: torch.Generator, clips: ClipGroups | None) -> Tensor:
        if self.per_clip and clips is not None:
            choice = clips.randint(len(self.augmentations), generator)
        else:
            choice = torch.randint(len(self.augmentations), (x.shape[0],), generator=generator, device=x.device)
        out = x
        for index, augmentation in enumerate(self.augmentations):
            rows = (choice == index).nonzero().squeeze(1)
            if rows.numel():
                picked = augmentation(x.index_select(0, rows), generator, None if clips is None else clips.rows(rows))
                out = out.index_copy(0, rows, picked.to(x.dtype))
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}, per_clip={self.per_clip}"


class PolarityInversion(Augmentation):
    """Flip the sign: the ear cannot hear it, so the encoder should not care either."""

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return -x


class Gain(Augmentation):
    """Scale by a per-example gain drawn uniformly in dB: loudness should not define a clip."""

    def __init__(self, min_db: float, max_db: float, p: float = 1.0):
        super().__init__(p)
        _check_range("gain (dB)", min_db, max_db)
        self.min_db, self.max_db = min_db, max_db

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        gain_db = uniform(x.shape[0], self.min_db, self.max_db, x, generator)
        return x * torch.pow(10.0, gain_db / 20.0).unsqueeze(1)

    def extra_repr(self) -> str:
        return f"min_db={self.min_db}, max_db={self.max_db}, p={self.p}"


class WhiteNoise(Augmentation):
    """Add Gaussian white noise at a per-example SNR (dB, relative to the clip's own RMS).

    CLMR's noise; relative to the clip so quiet passages are not drowned.
    """

    def __init__(self, min_snr_db: float, max_snr_db: float, p: float = 1.0):
        super().__init__(p)
        _check_range("SNR (dB)", min_snr_db, max_snr_db)
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        snr_db = uniform(x.shape[0], self.min_snr_db, self.max_snr_db, x, generator)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + noise * rms(x) * torch.pow(10.0, -snr_db / 20.0).unsqueeze(1)

    def extra_repr(self) -> str:
        return f"min_snr_db={self.min_snr_db}, max_snr_db={self.max_snr_db}, p={self.p}"


class ColouredNoise(Augmentation):
    """Add noise whose power spectrum follows 1/f^decay, at a per-example SNR (SemiSupCon).

    decay 0 is white, 1 pink, 2 brown, -1 blue, -2 violet (the naming of torch-audiomentations,
    which SemiSupCon's release used). Noise is shaped in the frequency domain and scaled to unit
    RMS before the SNR is applied, so the SNR holds for every decay; a power law has no scale, so
    no sample rate is needed.
    """

    def __init__(
        self, min_snr_db: float, max_snr_db: float, min_decay: float, max_decay: float, p: float = 1.0
    ):
        super().__init__(p)
        _check_range("SNR (dB)", min_snr_db, max_snr_db)
        _check_range("spectral decay", min_decay, max_decay)
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db
        self.min_decay, self.max_decay = min_decay, max_decay

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, length = x.shape
        snr_db = uniform(n, self.min_snr_db, self.max_snr_db, x, generator)
        decay = uniform(n, self.min_decay, self.max_decay, x, generator)
        white = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        bins = torch.arange(length // 2 + 1, device=x.device, dtype=x.dtype).clamp(min=1.0)
        amplitude = torch.pow(bins.unsqueeze(0), -decay.unsqueeze(1) / 2.0)
        amplitude[:, 0] = 0.0  # no DC offset
        coloured = torch.fft.irfft(torch.fft.rfft(white) * amplitude, n=length)
        coloured = coloured / rms(coloured).clamp(min=torch.finfo(x.dtype).tiny)
        return x + coloured * rms(x) * torch.pow(10.0, -snr_db / 20.0).unsqueeze(1)

    def extra_repr(self) -> str:
        return (
            f"min_snr_db={self.min_snr_db}, max_snr_db={self.max_snr_db}, "
            f"min_decay={self.min_decay}, max_decay={self.max_decay}, p={self.p}"
        )


# ---------------------------------------------------------------------------------------------
# Filters: zero-phase Butterworth magnitude responses applied in the frequency domain.
# ---------------------------------------------------------------------------------------------


def _lowpass_gain(freqs: Tensor, cutoff: Tensor, order: int) -> Tensor:
    return torch.rsqrt(1.0 + torch.pow(freqs / cutoff, 2 * order))


def _highpass_gain(freqs: Tensor, cutoff: Tensor, order: int) -> Tensor:
    return torch.rsqrt(1.0 + torch.pow(cutoff / freqs, 2 * order))  # f = 0 gives 1/inf = 0


def _band_edges(centre: Tensor, bandwidth_fraction: Tensor) -> tuple[Tensor, Tensor]:
    """-3 dB edges of a band ``centre * fraction`` Hz wide around ``centre`` (fraction < 2)."""
    half_width = centre * bandwidth_fraction / 2.0
    return centre - half_width, centre + half_width


def _bandpass_gain(freqs: Tensor, low: Tensor, high: Tensor, order: int) -> Tensor:
    # Analogue low-pass -> band-pass transform: Omega = (f^2 - f0^2) / (f B), f0^2 = low * high,
    # so the -3 dB points fall exactly on low and high.
    omega = (freqs.square() - low * high) / (freqs * (high - low))
    return torch.rsqrt(1.0 + torch.pow(omega.abs(), 2 * order))


def _bandstop_gain(freqs: Tensor, low: Tensor, high: Tensor, order: int) -> Tensor:
    omega = (freqs * (high - low)) / (freqs.square() - low * high)  # f = f0 gives inf: a full notch
    return torch.rsqrt(1.0 + torch.pow(omega.abs(), 2 * order))


class _SpectralFilter(Augmentation):
    """Filter every selected row with its own response, in one rFFT / irFFT pair.

    A per-sample IIR loop cannot be batched over different cutoffs; a magnitude response in the
    frequency domain can, and it is zero-phase, so filtering never shifts the clip in time.
    The clip is zero-padded by 0.1 s before the FFT so that the filter's ringing at the ends
    lands in the padding instead of wrapping around onto the other end.
    """

    def __init__(self, sample_rate: int, order: int, p: float):
        super().__init__(p)
        self.sample_rate = sample_rate
        self.order = order

    def response(self, freqs: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """Per-row magnitude responses ``[n, F]`` at ``freqs`` (Hz, ``[1, F]``)."""
        raise NotImplementedError

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        length = x.shape[-1]
        n_fft = _fast_fft_length(length + self.sample_rate // 10)
        freqs = torch.fft.rfftfreq(n_fft, d=1.0 / self.sample_rate, device=x.device, dtype=x.dtype)
        gain = self.response(freqs.unsqueeze(0), x.shape[0], generator)
        return torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * gain, n=n_fft)[:, :length]


class _CutoffFilter(_SpectralFilter):
    """A filter with one per-example cutoff drawn uniformly on the mel scale; subclasses pick the slope."""

    def __init__(
        self, sample_rate: int, min_cutoff_hz: float, max_cutoff_hz: float, order: int = 4, p: float = 1.0
    ):
        super().__init__(sample_rate, order, p)
        _check_range("cutoff (Hz)", min_cutoff_hz, max_cutoff_hz)
        self.min_cutoff_hz, self.max_cutoff_hz = min_cutoff_hz, max_cutoff_hz

    def response(self, freqs: Tensor, n: int, generator: torch.Generator) -> Tensor:
        cutoff = _mel_uniform(n, self.min_cutoff_hz, self.max_cutoff_hz, freqs, generator)
        return self.gain(freqs, cutoff.unsqueeze(1), self.order)


class LowPass(_CutoffFilter):
    """Low-pass with a per-example cutoff drawn uniformly on the mel scale."""

    gain = staticmethod(_lowpass_gain)


class HighPass(_CutoffFilter):
    """High-pass with a per-example cutoff drawn uniformly on the mel scale."""

    gain = staticmethod(_highpass_gain)


class BandPass(_SpectralFilter):
    """Keep a band ``centre * bandwidth_fraction`` Hz wide; centre drawn on the mel scale.

    ``order`` is that of the low-pass prototype; each skirt falls at 6 * order dB per octave.
    """

    def __init__(
        self,
        sample_rate: int,
        min_centre_hz: float,
        max_centre_hz: float,
        min_bandwidth_fraction: float = 0.5,
        max_bandwidth_fraction: float = 1.99,
        order: int = 2,
        p: float = 1.0,
    ):
        super().__init__(sample_rate, order, p)
        _check_range("centre (Hz)", min_centre_hz, max_centre_hz)
        _check_range("bandwidth fraction", min_bandwidth_fraction, max_bandwidth_fraction)
        if not 0.0 < max_bandwidth_fraction < 2.0:
            raise ValueError("bandwidth fraction must be in (0, 2) so that the band starts above 0 Hz")
        self.min_centre_hz, self.max_centre_hz = min_centre_hz, max_centre_hz
        self.min_bandwidth_fraction = min_bandwidth_fraction
        self.max_bandwidth_fraction = max_bandwidth_fraction

    def band(self, n: int, like: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        centre = _mel_uniform(n, self.min_centre_hz, self.max_centre_hz, like, generator)
        fraction = uniform(n, self.min_bandwidth_fraction, self.max_bandwidth_fraction, like, generator)
        low, high = _band_edges(centre, fraction)
        return low.unsqueeze(1), high.unsqueeze(1)

    def response(self, freqs: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return _bandpass_gain(freqs, *self.band(n, freqs, generator), self.order)


class BandStop(BandPass):
    """Remove a band ``centre * bandwidth_fraction`` Hz wide; the complement of ``BandPass``."""

    def response(self, freqs: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return _bandstop_gain(freqs, *self.band(n, freqs, generator), self.order)


class HighLowPass(_SpectralFilter):
    """CLMR's filter: a fair coin per example picks a high-pass or a low-pass.

    Both responses are built for every row and the coin selects between them, so the batch still
    needs only one FFT pair. Cutoffs are drawn on the mel scale within the given ranges (Hz).
    """

    def __init__(
        self,
        sample_rate: int,
        highpass_hz: tuple[float, float] = (200.0, 1200.0),
        lowpass_hz: tuple[float, float] = (2200.0, 4000.0),
        order: int = 4,
        p: float = 1.0,
    ):
        super().__init__(sample_rate, order, p)
        _check_range("high-pass cutoff (Hz)", *highpass_hz)
        _check_range("low-pass cutoff (Hz)", *lowpass_hz)
        self.highpass_hz, self.lowpass_hz = tuple(highpass_hz), tuple(lowpass_hz)

    def response(self, freqs: Tensor, n: int, generator: torch.Generator) -> Tensor:
        use_highpass = torch.rand(n, generator=generator, device=freqs.device) < 0.5
        highpass_cutoff = _mel_uniform(n, *self.highpass_hz, freqs, generator).unsqueeze(1)
        lowpass_cutoff = _mel_uniform(n, *self.lowpass_hz, freqs, generator).unsqueeze(1)
        return torch.where(
            use_highpass.unsqueeze(1),
            _highpass_gain(freqs, highpass_cutoff, self.order),
            _lowpass_gain(freqs, lowpass_cutoff, self.order),
        )


# ---------------------------------------------------------------------------------------------
# Time-domain effects.
# ---------------------------------------------------------------------------------------------


class Delay(Augmentation):
    """Add one echo ``delay`` later at ``volume_factor``, then divide by (1 + volume_factor).

    The division keeps the peak at most the input's (CLMR's release halved the sum instead).
    The delay is drawn per example, uniformly, or on a grid of ``step_ms`` (CLMR's 50 ms steps).
    The echo is a per-row window into the zero-padded batch, so the batch needs no loop.
    """

    def __init__(
        self,
        sample_rate: int,
        min_ms: float,
        max_ms: float,
        volume_factor: float = 0.5,
        step_ms: float | None = None,
        p: float = 1.0,
    ):
        super().__init__(p)
        _check_range("delay (ms)", min_ms, max_ms)
        if min_ms < 0 or volume_factor < 0 or (step_ms is not None and step_ms <= 0):
            raise ValueError("delay and volume factor must be non-negative, and a step positive")
        self.sample_rate = sample_rate
        self.min_ms, self.max_ms = min_ms, max_ms
        self.volume_factor = volume_factor
        self.step_ms = step_ms

    def draw_delay_ms(self, n: int, like: Tensor, generator: torch.Generator) -> Tensor:
        if self.step_ms is None:
            return uniform(n, self.min_ms, self.max_ms, like, generator)
        n_steps = int((self.max_ms - self.min_ms) // self.step_ms)
        steps = torch.randint(n_steps + 1, (n,), generator=generator, device=like.device)
        return self.min_ms + self.step_ms * steps.to(like.dtype)

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, length = x.shape
        lag = torch.round(self.draw_delay_ms(n, x, generator) * (self.sample_rate / 1000.0)).long()
        max_lag = round(self.max_ms * self.sample_rate / 1000.0)
        # Row i of the echo is the zero-padded clip read from max_lag - lag_i: one copy, no index tensor.
        padded = nn.functional.pad(x, (max_lag, 0))
        echo = padded.unfold(1, length, 1)[torch.arange(n, device=x.device), max_lag - lag]
        return (x + self.volume_factor * echo) / (1.0 + self.volume_factor)

    def extra_repr(self) -> str:
        return f"min_ms={self.min_ms}, max_ms={self.max_ms}, volume_factor={self.volume_factor}, p={self.p}"


def _running_sum_over_frames(values: Tensor) -> Tensor:
    """Cumulative sum over dim 1 of ``[n, frames, bins]`` (in place on CPU).

    On CPU, torch.cumsum over a non-innermost dimension is about ten times slower than one
    vectorised add per frame (~100 frames); on an accelerator one cumsum kernel beats ~100 launches.
    """
    if values.device.type != "cpu":
        return values.cumsum(dim=1)
    for frame in range(1, values.shape[1]):
        values[:, frame] += values[:, frame - 1]
    return values


class PitchShift(Augmentation):
    """Transpose by a per-example number of semitones, keeping the duration.

    A phase vocoder that moves bins instead of frames: output bin k reads the magnitude of bin
    k / ratio, and its phase advances at ratio times that bin's measured instantaneous frequency.
    The frame grid never changes, so rows with different ratios share one STFT and one inverse,
    and no resampling (or aliasing from it) is needed. Partials are re-synthesised at exactly
    ratio times their frequency; the output is scaled back to the input's RMS because moving bins
    widens or narrows spectral peaks and so changes energy slightly. STFT window ~90 ms.
    """

    def __init__(self, sample_rate: int, min_semitones: float, max_semitones: float, p: float = 1.0):
        super().__init__(p)
        _check_range("pitch shift (semitones)", min_semitones, max_semitones)
        self.sample_rate = sample_rate
        self.min_semitones, self.max_semitones = min_semitones, max_semitones
        self.n_fft = 2 ** round(math.log2(0.09 * sample_rate))
        self.hop_length = self.n_fft // 4

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, length = x.shape
        if length <= self.n_fft // 2:
            raise ValueError(f"pitch shift needs clips longer than {self.n_fft // 2} samples, got {length}")
        two_pi = 2.0 * math.pi
        ratio = torch.pow(2.0, uniform(n, self.min_semitones, self.max_semitones, x, generator) / 12.0)
        window = torch.hann_window(self.n_fft, device=x.device, dtype=x.dtype)
        # [n, frames, bins]: torch.stft's memory order, so no transposing copies are made.
        spectrum = torch.stft(x, self.n_fft, self.hop_length, window=window, return_complex=True)
        spectrum = spectrum.transpose(1, 2)
        n_frames, n_bins = spectrum.shape[1:]
        # Complex elementwise kernels are several times slower than real ones on CPU: split once.
        real, imag = (part.contiguous() for part in torch.view_as_real(spectrum).unbind(-1))
        magnitude, phase = torch.hypot(real, imag), torch.atan2(imag, real)

        # Phase advance per hop of bin k = nominal 2 pi hop k / n_fft + a deviation in [-pi, pi);
        # the deviation is what locates a partial between bins. Stored shifted by +pi.
        bins = torch.arange(n_bins, device=x.device, dtype=x.dtype)
        nominal = (two_pi * self.hop_length / self.n_fft) * bins
        deviation_plus_pi = torch.remainder(phase.diff(dim=1) + (math.pi - nominal), two_pi)

        source_bin = torch.round(bins / ratio.unsqueeze(1)).long()  # output bin k reads bin k / ratio
        inside = (source_bin < n_bins).to(x.dtype).unsqueeze(1)
        source_bin = source_bin.clamp(max=n_bins - 1)
        index = source_bin.unsqueeze(1).expand(-1, n_frames, -1)
        # New advance = ratio * (nominal + deviation). The nominal part depends on row and bin only,
        # so it is wrapped before it meets the frames: the running phase stays small and precise.
        ratio_column = ratio.unsqueeze(1)
        nominal_part = torch.remainder(ratio_column * nominal[source_bin], two_pi) - ratio_column * math.pi
        increments = torch.addcmul(
            nominal_part.unsqueeze(1), deviation_plus_pi.gather(2, index[:, 1:]), ratio_column.unsqueeze(1)
        )
        start = phase.gather(2, index[:, :1])
        shifted_phase = _running_sum_over_frames(torch.cat([start, increments], dim=1))
        shifted_magnitude = magnitude.gather(2, index) * inside

        shifted_spectrum = torch.complex(
            shifted_magnitude * torch.cos(shifted_phase), shifted_magnitude * torch.sin(shifted_phase)
        )
        shifted = torch.istft(
            shifted_spectrum.transpose(1, 2), self.n_fft, self.hop_length, window=window, length=length
        )
        scale = rms(x) / rms(shifted).clamp(min=torch.finfo(x.dtype).tiny)
        return shifted * scale

    def extra_repr(self) -> str:
        return f"min_semitones={self.min_semitones}, max_semitones={self.max_semitones}, p={self.p}"


class Reverb(Augmentation):
    """Convolve with a synthetic room: exponentially decaying Gaussian noise, mixed with the dry.

    Per example: decay time RT60 (s, the time the tail takes to fall 60 dB), pre-delay (ms, the gap
    between the direct sound and the tail, larger in larger rooms) and wet mix (0 dry .. 1 wet).
    The impulse response has unit energy, so the wet signal has about the dry signal's level.
    Convolution is one batched FFT product; the tail past the clip's end is cut, keeping length.
    """

    def __init__(
        self,
        sample_rate: int,
        min_rt60_s: float = 0.2,
        max_rt60_s: float = 1.5,
        min_pre_delay_ms: float = 0.0,
        max_pre_delay_ms: float = 20.0,
        min_wet: float = 0.1,
        max_wet: float = 0.5,
        p: float = 1.0,
    ):
        super().__init__(p)
        _check_range("RT60 (s)", min_rt60_s, max_rt60_s)
        _check_range("pre-delay (ms)", min_pre_delay_ms, max_pre_delay_ms)
        _check_range("wet mix", min_wet, max_wet)
        if min_rt60_s <= 0 or min_pre_delay_ms < 0 or not 0.0 <= min_wet <= max_wet <= 1.0:
            raise ValueError("RT60 must be positive, pre-delay non-negative and wet mix within [0, 1]")
        self.sample_rate = sample_rate
        self.min_rt60_s, self.max_rt60_s = min_rt60_s, max_rt60_s
        self.min_pre_delay_ms, self.max_pre_delay_ms = min_pre_delay_ms, max_pre_delay_ms
        self.min_wet, self.max_wet = min_wet, max_wet
        # Long enough for the longest pre-delay plus the longest decay to reach -60 dB.
        self.ir_length = math.ceil((max_rt60_s + max_pre_delay_ms / 1000.0) * sample_rate)

    def impulse_responses(self, n: int, like: Tensor, generator: torch.Generator) -> Tensor:
        """``[n, ir_length]`` unit-energy impulse responses, one room per row."""
        rt60 = uniform(n, self.min_rt60_s, self.max_rt60_s, like, generator).unsqueeze(1)
        pre_delay_ms = uniform(n, self.min_pre_delay_ms, self.max_pre_delay_ms, like, generator).unsqueeze(1)
        time = torch.arange(self.ir_length, device=like.device, dtype=like.dtype) / self.sample_rate
        tail_time = time - pre_delay_ms / 1000.0
        envelope = torch.exp(-_SIXTY_DB_IN_NEPERS * tail_time.clamp(min=0.0) / rt60) * (tail_time >= 0)
        noise = torch.randn((n, self.ir_length), generator=generator, device=like.device, dtype=like.dtype)
        response = noise * envelope
        response[:, 0] = 0.0  # the direct path comes from the dry signal
        return response / response.norm(dim=1, keepdim=True)

    def transform(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, length = x.shape
        wet_mix = uniform(n, self.min_wet, self.max_wet, x, generator).unsqueeze(1)
        response = self.impulse_responses(n, x, generator)
        n_fft = _fast_fft_length(length + self.ir_length - 1)
        wet_spectrum = torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(response, n=n_fft)
        wet = torch.fft.irfft(wet_spectrum, n=n_fft)[:, :length]
        return (1.0 - wet_mix) * x + wet_mix * wet

    def extra_repr(self) -> str:
        return (
            f"rt60_s=({self.min_rt60_s}, {self.max_rt60_s}), "
            f"pre_delay_ms=({self.min_pre_delay_ms}, {self.max_pre_delay_ms}), "
            f"wet=({self.min_wet}, {self.max_wet}), p={self.p}"
        )
