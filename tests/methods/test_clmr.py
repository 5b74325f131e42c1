import pytest
import torch

from mucon.config import ConfigError, load_config
from mucon.methods import CLMR, method_class

from conftest import CONFIGS, losses_on_a_fixed_batch


def tiny_clmr(*overrides):
    config = load_config(CONFIGS / "clmr-cpu.yaml", ["method.crop_samples=8000", "encoder.params.input_samples=8000", *overrides])
    return CLMR(config)


def test_presets_name_their_method_class():
    assert method_class(load_config(CONFIGS / "clmr.yaml").method_name) is CLMR


def test_paper_preset_keeps_the_paper_numbers():
    method = CLMR(load_config(CONFIGS / "clmr.yaml"))
    assert method.data_request.crop_samples == 59049
    assert method.params.temperature == 0.5
    assert method.config.data.batch_size == 48
    assert method.config.optimizer.lr == 3e-4
    assert method.encoder.dim == 512
    assert method.projector(torch.zeros(2, 512)).shape == (2, 64)


def test_unknown_method_setting_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="temprature"):
        tiny_clmr("method.temprature=0.1")


def test_views_are_two_different_augmentations_of_each_crop(monkeypatch):
    method = tiny_clmr()
    seen = []
    monkeypatch.setattr(method, "project", lambda views: seen.append(views) or torch.randn(views.shape[0], 8))
    batch = {"audio": (torch.randn(3, 1, 8000) * 3000).to(torch.int16)}
    method.compute_loss(batch)
    views = seen[0]
    assert views.shape == (6, 8000)
    assert not torch.equal(views[:3], views[3:])


def test_the_same_seed_makes_the_same_views():
    batch = {"audio": (torch.randn(3, 1, 8000) * 3000).to(torch.int16)}
    torch.manual_seed(0)
    first, _ = tiny_clmr().compute_loss(batch)
    torch.manual_seed(0)
    second, _ = tiny_clmr().compute_loss(batch)
    assert first.item() == second.item()


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    method = tiny_clmr("method.pitch_shift=false")
    t = torch.arange(8000) / 16000
    pitches = torch.tensor([110.0, 185.0, 262.0, 392.0, 523.0, 740.0, 880.0, 1245.0])
    audio = torch.sin(2 * torch.pi * pitches[:, None] * t) * 0.5
    batch = {"audio": (audio[:, None] * 32767).to(torch.int16)}
    losses = losses_on_a_fixed_batch(method, batch, lr=3e-3)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
