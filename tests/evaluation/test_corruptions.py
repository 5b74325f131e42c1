import pytest
import torch

from mucon.config import load_config
from mucon.evaluation import corruptions
from mucon.evaluation.corruptions import CORRUPTIONS
from mucon.evaluation.robustness import (
    Condition,
    exposure,
    pretraining_augmentations,
    robustness_conditions,
    robustness_curves,
)

from conftest import CONFIGS

RATE = 16000


def music(batch: int = 3, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Decaying harmonic notes with a little noise: onsets, partials and silence-free level."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    f0 = 110 * 2 ** (torch.randint(0, 24, (batch, 1), generator=generator) / 12)
    notes = sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, 5)) * torch.exp(-3 * (t % 0.25))
    return 0.3 * notes + 0.01 * torch.randn(batch, t.numel(), generator=generator)


def run(name: str, x: torch.Tensor, severity: float, seed: int) -> torch.Tensor:
    return CORRUPTIONS[name].apply(x, severity, RATE, torch.Generator().manual_seed(seed))


MIDDLE_TIERS = ("tier-6", "tier-7", "tier-8", "tier-9")  # stacks of what tier-5 and tier-10 already run


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - set(MIDDLE_TIERS)))
def test_every_corruption_keeps_shape_and_is_seeded(name):
    if not CORRUPTIONS[name].available(RATE):
        pytest.skip(f"{name} cannot be encoded here")
    x = music()
    severity = max(CORRUPTIONS[name].severities)
    first, again = run(name, x, severity, seed=1), run(name, x, severity, seed=1)
    assert first.shape == x.shape and first.dtype == x.dtype
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, x, atol=1e-3)


@pytest.mark.parametrize("name", ["training-chain", "time-stretch", "splice-out", "reverb", "distortion", "compression"])
def test_random_corruptions_draw_new_parameters_for_another_seed(name):
    x = music()
    assert not torch.allclose(run(name, x, 2.0, seed=1), run(name, x, 2.0, seed=2), atol=1e-4)


def test_stronger_severity_moves_the_audio_further():
    x = music()
    for name in ("splice-out", "reverb", "distortion", "compression", "bitcrush"):
        mild, harsh = ((run(name, x, s, seed=0) - x).square().mean() for s in (0.5, 2.0))
        assert harsh > mild, name


def test_training_chain_at_severity_zero_is_not_tested_and_at_two_always_applies():
    assert 0.0 not in CORRUPTIONS["training-chain"].severities
    x = music(batch=8)
    changed = (run("training-chain", x, 2.0, seed=0) - x).abs().amax(dim=1) > 1e-6
    assert changed.all()


def test_reverse_plays_the_clip_backwards():
    x = music()
    torch.testing.assert_close(run("reverse", x, 1.0, seed=0), x.flip(-1))


def test_bitcrush_at_severity_two_leaves_four_bit_levels():
    x = music(batch=1)
    crushed = run("bitcrush", x, 2.0, seed=0)
    assert len(torch.unique(crushed)) <= 2**4 - 1  # 7 steps each side of zero, and zero


def test_time_stretch_keeps_pitch():
    t = torch.arange(RATE) / RATE
    x = torch.sin(2 * torch.pi * 440 * t).unsqueeze(0)
    stretched = run("time-stretch", x, 2.0, seed=0)[0, : int(0.7 * RATE)]
    peak_hz = torch.fft.rfft(stretched * torch.hann_window(stretched.numel())).abs().argmax() * RATE / stretched.numel()
    assert abs(peak_hz - 440) < 5


def test_mp3_round_trip_stays_aligned_with_the_original():
    if not corruptions.mp3_supported(RATE):
        pytest.skip("no MP3 encoder in this libsndfile")
    x = music(batch=1)
    decoded = run("mp3", x, 0.5, seed=0)
    assert torch.corrcoef(torch.stack([decoded[0], x[0]]))[0, 1] > 0.9


def test_mp3_is_skipped_with_a_reason_where_it_cannot_be_encoded(monkeypatch):
    monkeypatch.setattr(corruptions, "mp3_supported", lambda sample_rate: False)
    conditions, skipped = robustness_conditions(RATE)
    assert "mp3" in skipped and all(condition.corruption != "mp3" for condition in conditions)


def test_conditions_cover_the_semisupcon_severities_and_can_be_narrowed():
    conditions, _ = robustness_conditions(RATE, ["training-chain", "reverse"])
    assert [c.key for c in conditions] == ["training-chain@0.5", "training-chain@1", "training-chain@1.5", "training-chain@2", "reverse@1"]
    narrowed, _ = robustness_conditions(RATE, ["training-chain", "reverse"], severities=[2.0])
    assert [c.key for c in narrowed] == ["training-chain@2", "reverse@1"]
    with pytest.raises(ValueError, match="unknown corruption"):
        robustness_conditions(RATE, ["vinyl crackle"])



@pytest.mark.parametrize("severities", [[-5.0], [2.0, 1000.0], [0.0]])
def test_a_severity_no_corruption_is_tested_at_is_an_error_saying_the_tested_ones(severities):
    with pytest.raises(ValueError, match=r"tested at 0\.5, 1, 1\.5, 2 only \(severity 0, the clean test set"):
        robustness_conditions(RATE, severities=severities)


def test_robustness_curves_start_from_the_clean_score_at_severity_zero():
    conditions = [Condition("reverb", 1.0), Condition("reverb", 2.0), Condition("reverse", 1.0)]
    curves = robustness_curves(0.9, conditions, lambda condition: 1.0 - condition.severity / 10)
    assert curves == {"reverb": {"0": 0.9, "1": 0.9, "2": 0.8}, "reverse": {"0": 0.9, "1": 0.9}}


@pytest.mark.parametrize(("preset", "seen"), [
    ("clmr-cpu", {"reverb": "seen", "training-chain": "partly seen", "tier-7": "partly seen"}),
    ("pemr-cpu", {"reverb": "seen", "training-chain": "partly seen", "tier-7": "partly seen"}),
    ("semisupcon-cpu", {"reverb": "unseen", "training-chain": "seen", "tier-5": "partly seen"}),
    ("cola-cpu", {"reverb": "unseen", "training-chain": "unseen", "tier-10": "unseen"}),
])
def test_what_a_model_saw_comes_from_its_own_pretraining_chain(preset, seen):
    augmentations = pretraining_augmentations(load_config(CONFIGS / f"{preset}.yaml").to_dict())
    assert {name: exposure(name, augmentations) for name in seen} == seen
    assert all(exposure(name, augmentations) == "unseen" for name in ("chorus", "mp3", "time-stretch", "reverse"))


def test_tiers_stack_the_unseen_corruptions_on_the_chain_cumulatively_as_semisupcons_tiers():
    tiers = {name: corruption.members for name, corruption in CORRUPTIONS.items() if corruption.members}
    assert list(tiers) == [f"tier-{n}" for n in range(5, 11)]
    assert tiers["tier-5"] == ("training-chain", "time-stretch")
    assert tiers["tier-7"] == (*tiers["tier-6"], "reverb", "chorus")
    assert tiers["tier-10"][-2:] == ("bitcrush", "mp3")
    assert all(set(tiers[f"tier-{n}"]) < set(tiers[f"tier-{n + 1}"]) for n in range(5, 10))
    x = music()
    generator = torch.Generator().manual_seed(4)
    expected = CORRUPTIONS["time-stretch"].apply(CORRUPTIONS["training-chain"].apply(x, 2.0, RATE, generator),
                                                 2.0, RATE, generator)
    torch.testing.assert_close(run("tier-5", x, 2.0, seed=4), expected)


def test_chorus_mixes_in_a_copy_delayed_by_a_swinging_few_milliseconds():
    t = torch.arange(RATE) / RATE
    impulses = torch.zeros(1, RATE)
    impulses[0, 1700::1700] = 1.0  # eight clicks: at s = 2 (mix 1) each is heard 7 ms +- up to 7 ms later
    chorused = corruptions.chorus(impulses, 2.0, RATE, torch.Generator().manual_seed(0))
    delays = []
    for click in range(1700, RATE - 1700, 1700):
        after = chorused[0, click : click + 1700].square()
        assert after[: int(0.0145 * RATE)].sum() > 0.999 * after.sum()  # within the swing, nothing later
        delays.append(int(after.argmax()))
    assert len(set(delays)) > 3  # the delay swings
    tone = torch.sin(2 * torch.pi * 440 * t).unsqueeze(0)
    assert torch.allclose(corruptions.rms(corruptions.chorus(tone, 1.0, RATE, torch.Generator())), corruptions.rms(tone))
