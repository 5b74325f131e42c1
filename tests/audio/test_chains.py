"""The CLMR and SemiSupCon presets: built from METHODS.md's numbers, and behaving as a whole."""

from __future__ import annotations

import math

import pytest
import torch

from mucon.audio.augment import (
    BandPass,
    BandStop,
    ClipGroups,
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
from mucon.audio.chains import SEMISUPCON_SEVERITIES, clmr_chain, semisupcon_chain
from mucon.audio.frontend import LogMelSpectrogram

SR = 22050


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def music_like(batch: int, length: int = 59049, seed: int = 1) -> torch.Tensor:
    """Harmonic notes with random pitches and decaying envelopes, plus a little noise."""
    generator = seeded(seed)
    time = torch.arange(length) / SR
    f0 = 110.0 * 2 ** (torch.randint(0, 36, (batch, 1), generator=generator) / 12)
    notes = sum(torch.sin(2 * math.pi * h * f0 * time) / h for h in range(1, 6))
    envelope = torch.exp(-3.0 * torch.remainder(time, 0.5))
    return 0.3 * notes * envelope + 0.01 * torch.randn(batch, length, generator=generator)


def log_mel_distance_db(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute log-mel difference (dB) per clip: grows with noise, filtering, gain and pitch."""
    frontend = LogMelSpectrogram(SR, n_fft=1024, hop_length=512, n_mels=64, top_db=80.0)
    return (frontend(estimate) - frontend(reference)).abs().mean(dim=(-2, -1))


def test_clmr_chain_is_built_from_methods_numbers():
    chain = clmr_chain()
    assert isinstance(chain, Compose) and chain.p == 1.0
    expected = [
        (PolarityInversion, 0.8),
        (WhiteNoise, 0.01),
        (Gain, 0.3),
        (HighLowPass, 0.8),
        (Delay, 0.3),
        (PitchShift, 0.6),
        (Reverb, 0.6),
    ]
    assert [(type(a), a.p) for a in chain.augmentations] == expected
    delay = chain.augmentations[4]
    assert (delay.min_ms, delay.max_ms, delay.step_ms, delay.volume_factor) == (200.0, 450.0, 50.0, 0.5)
    pitch = chain.augmentations[5]
    assert (pitch.min_semitones, pitch.max_semitones) == (-7.0, 7.0)


def test_clmr_delays_are_the_releases_grid_200_to_450_ms():
    # torchaudio-augmentations draws from np.arange(200, 500, 50): 500 ms itself is never drawn
    delay = clmr_chain(8000).augmentations[4]
    drawn = delay.draw_delay_ms(4000, torch.zeros(1), torch.Generator().manual_seed(0))
    assert sorted(set(drawn.round().tolist())) == [200.0, 250.0, 300.0, 350.0, 400.0, 450.0]


def test_clmr_chain_without_pitch_shift_is_pemr_release():
    types = [type(a) for a in clmr_chain(pitch_shift=False).augmentations]
    assert PitchShift not in types and len(types) == 6


@pytest.mark.parametrize("s", [0.5, 1.0, 1.5, 2.0])
def test_semisupcon_chain_follows_each_line_of_methods(s):
    chain = semisupcon_chain(SR, severity=s)
    assert chain.p == pytest.approx(min(1.0, 0.8 * s))
    gain, polarity, noise, filters, pitch, delay = chain.augmentations
    assert isinstance(gain, Gain)
    assert (gain.min_db, gain.max_db, gain.p) == pytest.approx((-15 * s, 5 * s, min(0.7, 0.4 * s)))
    assert isinstance(polarity, PolarityInversion) and polarity.p == pytest.approx(min(0.8, 0.6 * s))
    assert isinstance(noise, ColouredNoise)
    assert (noise.min_snr_db, noise.max_snr_db) == pytest.approx((3 / s, 30 / s))
    assert (noise.min_decay, noise.max_decay, noise.p) == pytest.approx((-2 * s, 2 * s, min(0.8, 0.6 * s)))
    assert isinstance(filters, OneOf) and filters.p == 1.0
    bandpass, bandstop, highpass, lowpass = filters.augmentations
    assert [type(f) for f in filters.augmentations] == [BandPass, BandStop, HighPass, LowPass]
    for band in (bandpass, bandstop):
        assert (band.min_centre_hz, band.max_centre_hz) == (200.0, 4000.0)
    assert (highpass.min_cutoff_hz, highpass.max_cutoff_hz) == pytest.approx((200 * s, min(SR / 2, 2400 * s)))
    lowpass_range = (max(75, 150 / s), 7500 / max(1, s))
    assert (lowpass.min_cutoff_hz, lowpass.max_cutoff_hz) == pytest.approx(lowpass_range)
    assert all(f.p == pytest.approx(min(0.6, 0.3 * s)) for f in filters.augmentations)
    assert isinstance(pitch, PitchShift)
    pitch_settings = (pitch.min_semitones, pitch.max_semitones, pitch.p)
    assert pitch_settings == pytest.approx((-4 * s, 4 * s, min(0.75, 0.6 * s)))
    assert isinstance(delay, Delay)
    assert (delay.min_ms, delay.max_ms, delay.p) == pytest.approx((100 / s, 500.0, min(0.6, 0.6 * s)))


def test_views_of_a_clip_share_the_gate_and_the_filter_type_while_leaf_draws_differ():
    # the release's per-batch Compose and OneOf on one clip's [N, 1, T] views; leaves per view
    clips, views = 200, 2
    chain = semisupcon_chain(SR)
    gain, filters = chain.augmentations[0], chain.augmentations[3]
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = (args[2].ids, args[0], output)
        return hook

    gain.register_forward_hook(record("gain"))
    for index, member in enumerate(filters.augmentations):
        member.register_forward_hook(record(index))
    chain(music_like(clips * views, 4096), seeded(), ClipGroups.view_major(clips, views))

    gated_ids = seen["gain"][0]  # the chain's first member sees exactly the gated rows
    gated = torch.bincount(gated_ids, minlength=clips)
    assert set(gated.tolist()) == {0, views}  # a clip passes the gate with all its views or none
    assert 0.7 < (gated > 0).float().mean() < 0.9  # p = 0.8, drawn per clip
    filter_of = torch.full((clips, views), -1)
    for index in range(4):
        ids = seen[index][0]
        for clip in ids.unique().tolist():
            assert (ids == clip).sum() == views  # a filter type takes all the views of a clip
        filter_of[ids.unique()] = index
    assert set(filter_of[gated > 0, 0].tolist()) == {0, 1, 2, 3}  # each clip its own type
    assert (filter_of[gated == 0] == -1).all() and (filter_of[gated > 0] >= 0).all()
    _, before, after = seen["gain"]
    applied = (before != after).any(dim=1).reshape(views, -1)  # gain (p 0.4) drawn per view
    disagree = (applied[0] != applied[1]).float().mean()
    assert 0.3 < disagree < 0.65  # 2 x 0.4 x 0.6 = 0.48 of the gated clips apply it to one view only


def test_severity_zero_is_identity():
    x = music_like(8, 8192)
    assert torch.equal(semisupcon_chain(severity=0.0)(x, seeded()), x)


def test_extreme_severities_still_build_valid_ranges():
    for s in (0.05, 3.0, 5.0):
        x = music_like(4, 8192)
        assert torch.isfinite(semisupcon_chain(severity=s)(x, seeded())).all()
    with pytest.raises(ValueError):
        semisupcon_chain(severity=-1.0)


@pytest.mark.parametrize("make_chain", [clmr_chain, semisupcon_chain], ids=["clmr", "semisupcon"])
def test_chains_run_on_a_batch_deterministically(make_chain):
    x = music_like(32)
    chain = make_chain()
    first, again = chain(x, seeded(1)), chain(x, seeded(1))
    assert first.shape == x.shape and first.dtype == x.dtype and torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert first.abs().max() < 10 * x.abs().max()
    # Another seed gives another view of each clip (SimCLR needs the two views to differ).
    other = chain(x[:8], seeded(2))
    assert (first[:8] != other).any(dim=-1).all()


def test_higher_severity_corrupts_more():
    x = music_like(32, 22050)
    distance = []
    for severity in SEMISUPCON_SEVERITIES:
        corrupted = semisupcon_chain(severity=severity)(x, seeded(3))
        distance.append(log_mel_distance_db(corrupted, x).mean().item())
    assert distance[0] == 0.0
    assert all(a < b for a, b in zip(distance, distance[1:])), distance
