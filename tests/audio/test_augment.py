"""Batched augmentations: the shared contract (probability, determinism, pass-through) for every
module, then one semantic check per effect on signals whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

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

SR = 22050

# name -> factory(p): every augmentation with ranges wide enough to always change a row.
FACTORIES = {
    "polarity": lambda p: PolarityInversion(p=p),
    "gain": lambda p: Gain(-12.0, -1.0, p=p),
    "white_noise": lambda p: WhiteNoise(10.0, 30.0, p=p),
    "coloured_noise": lambda p: ColouredNoise(3.0, 30.0, -2.0, 2.0, p=p),
    "lowpass": lambda p: LowPass(SR, 500.0, 4000.0, p=p),
    "highpass": lambda p: HighPass(SR, 200.0, 2400.0, p=p),
    "bandpass": lambda p: BandPass(SR, 200.0, 4000.0, p=p),
    "bandstop": lambda p: BandStop(SR, 200.0, 4000.0, p=p),
    "high_low_pass": lambda p: HighLowPass(SR, p=p),
    "delay": lambda p: Delay(SR, 20.0, 50.0, p=p),
    "pitch_shift": lambda p: PitchShift(SR, -4.0, 4.0, p=p),
    "reverb": lambda p: Reverb(SR, max_rt60_s=0.5, p=p),
    "one_of": lambda p: OneOf([Gain(-6.0, -1.0), PolarityInversion()], p=p),
    "compose": lambda p: Compose([Gain(-6.0, -1.0), WhiteNoise(20.0, 30.0)], p=p),
}


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise_batch(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return 0.1 * torch.randn(batch, length, generator=seeded(seed))


def sines(freqs_hz, length: int = 2 * SR) -> torch.Tensor:
    time = torch.arange(length, dtype=torch.float64) / SR
    rows = [torch.sin(2 * math.pi * f * time) for f in freqs_hz]
    return torch.stack(rows).float()


def peak_hz(x: torch.Tensor) -> torch.Tensor:
    """Peak frequency of each row, refined by parabolic interpolation of the log spectrum."""
    length = x.shape[-1]
    spectrum = torch.fft.rfft(x.double() * torch.hann_window(length, dtype=torch.float64)).abs().log()
    k = spectrum[:, 1:-1].argmax(dim=-1) + 1
    left, centre, right = (spectrum.gather(1, (k + o).unsqueeze(1)).squeeze(1) for o in (-1, 0, 1))
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (k + offset) * SR / length


def rms_db(x: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(x.double().square().mean(dim=-1))


# ---------------------------------------------------------------------------------------------
# The contract every augmentation keeps.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FACTORIES)
def test_shape_dtype_and_p1_changes_every_row(name):
    x = noise_batch(6, 8192)
    out = FACTORIES[name](1.0)(x, seeded())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert all(not torch.equal(out[i], x[i]) for i in range(x.shape[0]))


@pytest.mark.parametrize("name", FACTORIES)
def test_p0_is_bit_exact_identity(name):
    x = noise_batch(6, 8192)
    assert torch.equal(FACTORIES[name](0.0)(x, seeded()), x)


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_output_other_seed_other_output(name):
    x = noise_batch(6, 8192)
    augmentation = FACTORIES[name](1.0)
    first, again = augmentation(x, seeded(3)), augmentation(x, seeded(3))
    assert torch.equal(first, again)
    if name != "polarity":  # the one effect with nothing to draw
        assert not torch.equal(first, augmentation(x, seeded(4)))


@pytest.mark.parametrize("name", FACTORIES)
def test_rows_selected_independently_with_probability_p(name):
    p, batch = 0.3, 400
    x = noise_batch(batch, 4096)
    out = FACTORIES[name](p)(x, seeded(5))
    changed = (out != x).any(dim=-1)
    assert abs(changed.float().mean().item() - p) < 0.08
    assert torch.equal(out[~changed], x[~changed])  # unselected rows pass through bit-exact


@pytest.mark.parametrize("name", FACTORIES)
def test_silent_input_stays_finite(name):
    x = torch.zeros(4, 8192)
    out = FACTORIES[name](1.0)(x, seeded())
    assert torch.isfinite(out).all()
    assert out.abs().max() < 1e-6


@pytest.mark.parametrize("name", ["gain", "lowpass", "pitch_shift", "reverb", "coloured_noise", "delay"])
def test_float64_supported(name):
    x = noise_batch(3, 8192).double()
    out = FACTORIES[name](1.0)(x, seeded())
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


def test_global_rng_untouched():
    state = torch.random.get_rng_state()
    x = noise_batch(4, 8192)
    for factory in FACTORIES.values():
        factory(0.5)(x, seeded())
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_cuda_with_a_cuda_generator():
    x = noise_batch(4, 8192).cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    for factory in FACTORIES.values():
        out = factory(1.0)(x, generator)
        assert out.device == x.device and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------
# The containers.
# ---------------------------------------------------------------------------------------------


def test_one_of_applies_exactly_one_member_per_row():
    x = noise_batch(200, 256)
    out = OneOf([Gain(6.0, 6.0), PolarityInversion()])(x, seeded())
    doubled = torch.isclose(out, x * 10 ** (6 / 20)).all(dim=-1)
    inverted = torch.equal(out[~doubled], -x[~doubled])
    assert inverted and 0.35 < doubled.float().mean() < 0.65


def test_compose_applies_members_in_order():
    x = noise_batch(4, 256)
    out = Compose([Gain(6.0, 6.0), PolarityInversion()])(x, seeded())
    assert torch.allclose(out, -x * 10 ** (6 / 20))


# ---------------------------------------------------------------------------------------------
# What each effect does.
# ---------------------------------------------------------------------------------------------


def test_polarity_flips_sign():
    x = noise_batch(4, 1024)
    assert torch.equal(PolarityInversion()(x, seeded()), -x)


def test_gain_changes_rms_by_a_drawn_db_within_range():
    x = noise_batch(64, 4096)
    change = rms_db(Gain(-15.0, 5.0)(x, seeded())) - rms_db(x)
    assert ((change >= -15.0 - 1e-4) & (change <= 5.0 + 1e-4)).all()
    assert change.std() > 3.0  # drawn per example


def test_white_noise_is_added_at_the_drawn_snr():
    x = noise_batch(32, 59049)
    fixed = WhiteNoise(12.0, 12.0)(x, seeded())
    snr = rms_db(x) - rms_db(fixed - x)
    assert torch.allclose(snr, torch.full_like(snr, 12.0), atol=0.1)
    ranged = WhiteNoise(20.0, 40.0)(x, seeded())
    snr = rms_db(x) - rms_db(ranged - x)
    assert ((snr > 19.9) & (snr < 40.1)).all() and snr.std() > 2.0


@pytest.mark.parametrize("decay", [-2.0, 0.0, 1.0, 2.0])
def test_coloured_noise_has_the_drawn_snr_and_spectral_slope(decay):
    x = noise_batch(8, 59049)
    out = ColouredNoise(6.0, 6.0, decay, decay)(x, seeded())
    noise = (out - x).double()
    assert torch.allclose(rms_db(x) - rms_db(noise), torch.full((8,), 6.0, dtype=torch.float64), atol=0.1)
    power = torch.fft.rfft(noise).abs().square().mean(dim=0)
    freqs = torch.fft.rfftfreq(noise.shape[-1], 1 / SR, dtype=torch.float64)
    band = (freqs > 50) & (freqs < 10000)
    log_f, log_p = freqs[band].log10(), power[band].log10()
    slope = ((log_f - log_f.mean()) * (log_p - log_p.mean())).sum() / (log_f - log_f.mean()).square().sum()
    assert abs(slope.item() + decay) < 0.1  # power ~ 1 / f^decay


def _gain_db(filtered: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    middle = slice(SR // 2, -SR // 2)  # away from the ends
    return rms_db(filtered[:, middle]) - rms_db(clean[:, middle])


@pytest.mark.parametrize(
    ("augmentation", "kept_hz", "removed_hz"),
    [
        (LowPass(SR, 1000.0, 1000.0), [100.0, 500.0], [4000.0, 8000.0]),
        (HighPass(SR, 1000.0, 1000.0), [4000.0, 8000.0], [100.0, 250.0]),
        (BandPass(SR, 1000.0, 1000.0, 0.5, 0.5), [900.0, 1000.0, 1100.0], [100.0, 6000.0]),
        (BandStop(SR, 1000.0, 1000.0, 0.5, 0.5), [100.0, 6000.0], [980.0, 1000.0, 1020.0]),
    ],
    ids=["lowpass", "highpass", "bandpass", "bandstop"],
)
def test_filters_keep_the_passband_and_attenuate_outside(augmentation, kept_hz, removed_hz):
    kept, removed = sines(kept_hz), sines(removed_hz)
    assert (_gain_db(augmentation(kept, seeded()), kept) > -1.5).all()
    assert (_gain_db(augmentation(removed, seeded()), removed) < -25.0).all()


def test_filter_cutoffs_are_drawn_per_example():
    x = sines([1500.0] * 32)
    gains = _gain_db(LowPass(SR, 500.0, 4000.0)(x, seeded()), x)
    assert gains.std() > 3.0


def test_high_low_pass_picks_one_per_example():
    low, high = sines([100.0] * 64), sines([9000.0] * 64)
    augmentation = HighLowPass(SR)
    low_gain = _gain_db(augmentation(low, seeded(2)), low)
    high_gain = _gain_db(augmentation(high, seeded(2)), high)  # same seed: same coins, same cutoffs
    was_highpass = low_gain < -12.0
    assert (high_gain[was_highpass] > -1.0).all()
    assert (high_gain[~was_highpass] < -12.0).all() and (low_gain[~was_highpass] > -1.0).all()
    assert 0.25 < was_highpass.float().mean() < 0.75


def test_delay_echo_appears_at_the_drawn_delay():
    x = torch.zeros(16, SR)
    x[:, 1000] = 1.0
    out = Delay(SR, 200.0, 500.0, volume_factor=0.5)(x, seeded())
    echo_at = out[:, 1001:].abs().argmax(dim=-1) + 1001
    delay_ms = (echo_at - 1000).float() * 1000 / SR
    assert ((delay_ms >= 199.9) & (delay_ms <= 500.1)).all() and delay_ms.std() > 20
    assert torch.allclose(out[:, 1000], torch.full((16,), 1 / 1.5))
    assert torch.allclose(out.gather(1, echo_at.unsqueeze(1)).squeeze(1), torch.full((16,), 0.5 / 1.5))
    assert torch.allclose(out.abs().sum(dim=-1), torch.ones(16))  # nothing else


def test_delay_on_a_grid_of_steps():
    x = torch.zeros(64, SR)
    x[:, 0] = 1.0
    out = Delay(SR, 200.0, 500.0, step_ms=50.0)(x, seeded())
    delay_ms = (out[:, 1:].abs().argmax(dim=-1) + 1).float() * 1000 / SR
    steps = torch.round((delay_ms - 200.0) / 50.0)
    assert torch.allclose(delay_ms, 200.0 + 50.0 * steps, atol=0.05)
    assert set(steps.long().tolist()) == set(range(7))  # 200, 250, ..., 500 all drawn


@pytest.mark.parametrize("semitones", [-7.0, -2.5, 3.0, 7.0])
def test_pitch_shift_moves_a_sine_by_the_drawn_semitones(semitones):
    x = sines([220.0, 440.0, 660.0], length=59049)
    out = PitchShift(SR, semitones, semitones)(x, seeded())
    assert out.shape == x.shape
    measured = 12 * torch.log2(peak_hz(out) / peak_hz(x))
    assert torch.allclose(measured, torch.full_like(measured, semitones), atol=0.05)
    assert torch.allclose(rms_db(out), rms_db(x), atol=0.01)


def test_pitch_shift_draws_per_example_within_range():
    x = sines([440.0] * 24, length=59049)
    measured = 12 * torch.log2(peak_hz(PitchShift(SR, -4.0, 4.0)(x, seeded())) / 440.0)
    assert ((measured > -4.05) & (measured < 4.05)).all() and measured.std() > 1.0


def test_reverb_adds_a_tail_that_decays_at_the_drawn_rt60():
    x = torch.zeros(8, SR)
    x[:, :2205] = torch.randn(8, 2205, generator=seeded(9))  # a 0.1 s burst, then silence
    out = Reverb(SR, min_rt60_s=0.6, max_rt60_s=0.6, min_wet=0.5, max_wet=0.5)(x, seeded())
    window = SR // 20
    starts = range(2205 + window, 2205 + 7 * window, window)
    tail_db = torch.stack([rms_db(out[:, start : start + window]) for start in starts], dim=1)
    slope_db_per_s = (tail_db[:, -1] - tail_db[:, 0]) / (5 * window / SR)
    assert torch.allclose(slope_db_per_s, torch.full_like(slope_db_per_s, -60 / 0.6), rtol=0.25)
    assert (tail_db[:, 0] > rms_db(x[:, :2205]) - 30).all()  # the tail is audible, the input was silent there


def test_longer_rt60_gives_a_longer_tail():
    x = torch.zeros(8, SR)
    x[:, :2205] = torch.randn(8, 2205, generator=seeded(9))
    short = Reverb(SR, min_rt60_s=0.2, max_rt60_s=0.2, min_wet=0.5, max_wet=0.5)(x, seeded())
    long = Reverb(SR, min_rt60_s=1.0, max_rt60_s=1.0, min_wet=0.5, max_wet=0.5)(x, seeded())
    late = slice(2205 + SR // 5, None)
    assert (rms_db(long[:, late]) > rms_db(short[:, late]) + 10).all()
