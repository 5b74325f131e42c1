"""The two augmentation chains of the papers, as presets of ``mucon.audio.augment`` modules.

Probabilities and ranges follow METHODS.md ("Shared pieces", the project's method reference)
exactly; where it is silent the docstrings say which published default was taken. Both chains
are ``Compose`` modules: call ``chain(x, generator)`` on a ``[B, T]`` batch of cropped clips, or
``chain(x, generator, clips)`` to say which rows are views of one clip (``ClipGroups``).
"""

from __future__ import annotations

from mucon.audio.augment import (
    BandPass,
    BandStop,
    ColouredNoise,
    Compose,
    Delay,
    Gain,
    HighLowPass,
    HighPass,
    LowPass,
    OneOf,
    PitchShift,
    PolarityInversion,
    Reverb,
    WhiteNoise,
)

CLMR_SAMPLE_RATE = 22050
CLMR_CROP_SAMPLES = 59049  # CLMR and PEMR crop this many samples before the chain
SEMISUPCON_SEVERITIES = (0.0, 0.5, 1.0, 1.5, 2.0)  # the robustness evaluation's corruption levels


def clmr_chain(sample_rate: int = CLMR_SAMPLE_RATE, pitch_shift: bool = True) -> Compose:
    """CLMR's chain: each step applied independently with its METHODS.md probability.

    polarity inversion (p .8), white noise (p .01), gain (p .3), high- or low-pass (p .8),
    delay (p .3), pitch shift (p .6), reverb (p .6). ``pitch_shift=False`` is PEMR's release,
    which dropped that step. The random crop (59049 samples) is not part of the chain: the
    caller crops first.

    Ranges, from the defaults of CLMR's torchaudio-augmentations release (METHODS.md is silent):

    - white noise: the release drew the noise std as 0.0001 .. 0.01 of the clip's std, i.e. an
      SNR of 40 .. 80 dB; here the SNR is drawn uniformly in dB over that range.
    - gain: -20 .. -1 dB.
    - high-pass cutoff 200 .. 1200 Hz, low-pass cutoff 2200 .. 4000 Hz (a fair coin picks which),
      4th-order Butterworth magnitude; the release drew the cutoff uniformly in Hz, here on mel.
    - delay: 200 .. 450 ms in 50 ms steps (the release's ``np.arange(200, 500, 50)``: its 500 ms
      maximum is never drawn), echo at 0.5 of the level.
    - pitch shift: -7 .. +7 semitones (the release drew whole cents in that range).
    - reverb: the release ran sox's reverb with reverberance, damping and room size each drawn
      in 0 .. 100 %; here a synthetic room with RT60 0.2 .. 1.5 s, pre-delay 0 .. 20 ms and wet
      mix 0.1 .. 0.5 (sox's damping has no counterpart).
    """
    augmentations = [
        PolarityInversion(p=0.8),
        WhiteNoise(min_snr_db=40.0, max_snr_db=80.0, p=0.01),
        Gain(min_db=-20.0, max_db=-1.0, p=0.3),
        HighLowPass(sample_rate, highpass_hz=(200.0, 1200.0), lowpass_hz=(2200.0, 4000.0), p=0.8),
        Delay(sample_rate, min_ms=200.0, max_ms=450.0, volume_factor=0.5, step_ms=50.0, p=0.3),
    ]
    if pitch_shift:
        augmentations.append(PitchShift(sample_rate, min_semitones=-7.0, max_semitones=7.0, p=0.6))
    augmentations.append(
        Reverb(
            sample_rate,
            min_rt60_s=0.2,
            max_rt60_s=1.5,
            min_pre_delay_ms=0.0,
            max_pre_delay_ms=20.0,
            min_wet=0.1,
            max_wet=0.5,
            p=0.6,
        )
    )
    return Compose(augmentations, p=1.0)


def _ordered(low: float, high: float) -> tuple[float, float]:
    """A range whose lower end never passes the upper one (the formulas cross at extreme s)."""
    return min(low, high), high


def semisupcon_chain(sample_rate: int = CLMR_SAMPLE_RATE, severity: float = 1.0) -> Compose:
    """SemiSupCon's chain at severity s, every line of METHODS.md as a function of s.

    Whole chain p = min(1, .8 s); inside, in this order:
    gain -15 s .. +5 s dB (p = min(.7, .4 s)); polarity inversion (p = min(.8, .6 s));
    coloured noise, SNR 3/s .. 30/s dB, decay -2 s .. 2 s (p = min(.8, .6 s));
    one of band-pass / band-stop (centre 200 .. 4000 Hz) / high-pass (200 s .. min(sr/2, 2400 s) Hz)
    / low-pass (max(75, 150/s) .. 7500/max(1, s) Hz), each p = min(.6, .3 s);
    pitch shift -4 s .. +4 s semitones (p = min(.75, .6 s)); delay 100/s .. 500 ms (p = min(.6, .6 s)).

    Which draws are shared: the release applied torch-audiomentations' ``Compose`` and ``OneOf``,
    whose ``p_mode`` defaults to "per_batch", to the ``[N, 1, T]`` views of ONE clip. So the chain's
    gate and the choice of filter type are drawn once per clip and shared by its N views; every leaf
    (whether it applies, and its parameters) is drawn per view. Given ``clips``, this chain does the
    same; without it (the robustness corruptions: one view per clip) every row is its own clip.

    Severity 0 is the identity (the chain's p is 0; the 1/s ranges are never built).
    Where METHODS.md is silent, SemiSupCon's release: band widths 0.5 s .. 1.99 times the centre
    frequency. A lower bound that would cross its upper bound at extreme severities (e.g. the
    delay's 100/s ms for s < 0.2) is clamped to it.

    The delay differs from the release's (``custom_augmentations/delay.py``), by choice: mucon adds
    ONE echo at volume min(1, 0.5 s) and divides by 1 + volume, the delay drawn uniformly in ms. The
    release drew, per view, the volume from {0.5 s - 0.2, 0.5 s + 0.2}, a repeat count from
    {int(2 s) - 1, int(2 s) + 1} (1 or 3 at s = 1) and an attenuation from {min(1, 0.5 s) -+ 0.2};
    its "echo" sums copies delayed by 0, d, 2d, ... with weights attenuation^i (the undelayed copy
    included), and it halves the sum: out = (x + volume * echo) / 2, so the dry signal is also
    boosted and the level changes with the draw. mucon keeps one echo, whose level keeps the input's
    peak, so that severity stays a single knob of the echo's strength.
    """
    if severity < 0:
        raise ValueError(f"severity must be >= 0, got {severity}")
    s = float(severity)
    if s == 0.0:
        return Compose([], p=0.0)
    filter_p = min(0.6, 0.3 * s)
    bandwidth = _ordered(0.5 * s, 1.99)
    augmentations = [
        Gain(min_db=-15.0 * s, max_db=5.0 * s, p=min(0.7, 0.4 * s)),
        PolarityInversion(p=min(0.8, 0.6 * s)),
        ColouredNoise(
            min_snr_db=3.0 / s,
            max_snr_db=30.0 / s,
            min_decay=-2.0 * s,
            max_decay=2.0 * s,
            p=min(0.8, 0.6 * s),
        ),
        OneOf(
            [
                BandPass(sample_rate, 200.0, 4000.0, *bandwidth, p=filter_p),
                BandStop(sample_rate, 200.0, 4000.0, *bandwidth, p=filter_p),
                HighPass(sample_rate, *_ordered(200.0 * s, min(sample_rate / 2, 2400.0 * s)), p=filter_p),
                LowPass(sample_rate, *_ordered(max(75.0, 150.0 / s), 7500.0 / max(1.0, s)), p=filter_p),
            ],
            per_clip=True,
        ),
        PitchShift(sample_rate, min_semitones=-4.0 * s, max_semitones=4.0 * s, p=min(0.75, 0.6 * s)),
        Delay(sample_rate, *_ordered(100.0 / s, 500.0), volume_factor=min(1.0, 0.5 * s), p=min(0.6, 0.6 * s)),
    ]
    return Compose(augmentations, p=min(1.0, 0.8 * s), per_clip=True)
