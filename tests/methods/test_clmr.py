import pytest
import torch

from mucon.audio.augment import Compose
from mucon.config import ConfigError, load_config
from mucon.losses import nt_xent_ids
from mucon.methods import CLMR, method_class

from conftest import CONFIGS, losses_on_a_fixed_batch, recorded_outputs, sine_tones
from references import reference_supcon


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


def test_each_view_is_its_own_crop_anywhere_in_the_item_unless_one_crop_per_clip_is_asked_for(monkeypatch):
    request = tiny_clmr().data_request
    assert (request.views, request.layout, request.crop_samples) == (2, "anywhere", 8000)
    method = tiny_clmr()
    monkeypatch.setattr(method, "augment", Compose([]))  # no augmentation: the views are the crops
    seen = []
    monkeypatch.setattr(method, "project", lambda views: seen.append(views) or torch.randn(views.shape[0], 8))
    audio = (torch.randn(3, 2, 8000) * 3000).to(torch.int16)
    method.compute_loss({"audio": audio})
    torch.testing.assert_close(seen[0], torch.cat([audio[:, 0], audio[:, 1]]).float() / 32768)
    ablation = tiny_clmr("method.crop_per_view=false").data_request
    assert (ablation.views, ablation.layout) == (1, "adjacent")
    with pytest.raises(ConfigError, match="crop_per_view"):
        tiny_clmr("method.crop_per_view=3")


def test_views_are_two_different_augmentations_of_each_crop(monkeypatch):
    method = tiny_clmr()
    seen = []
    monkeypatch.setattr(method, "project", lambda views: seen.append(views) or torch.randn(views.shape[0], 8))
    batch = {"audio": (torch.randn(3, 1, 8000) * 3000).to(torch.int16)}
    method.compute_loss(batch)
    views = seen[0]
    assert views.shape == (6, 8000)
    assert not torch.equal(views[:3], views[3:])


def test_the_loss_is_nt_xent_of_the_views_projections_at_the_set_temperature(monkeypatch):
    method = tiny_clmr("method.temperature=0.3")
    projections = recorded_outputs(monkeypatch, method, "project")
    loss, _ = method.compute_loss({"audio": sine_tones(8000)[:4, None]})
    expected = reference_supcon(projections[0], nt_xent_ids(4, 2).tolist(), temperature=0.3)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


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
    losses = losses_on_a_fixed_batch(method, {"audio": sine_tones(8000)[:, None]})
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
