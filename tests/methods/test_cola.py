import numpy as np
import pytest
import soundfile as sf
import torch

import mucon
from mucon.audio.store import AudioStore
from mucon.audio.store_writer import prepare_store
from mucon.config import load_config
from mucon.data.datamodule import ClipDataset
from mucon.data.sampler import PoolBatchSampler
from mucon.losses import BilinearLoss
from mucon.methods import COLA, method_class

from conftest import (CONFIGS, assert_loads_back_as_trained, losses_on_a_fixed_batch, pretrain_keeping_the_model,
                      recorded_outputs)
from references import reference_absence_aware


def tiny_cola(*overrides):
    return COLA(load_config(CONFIGS / "cola-cpu.yaml", ["method.crop_samples=4000", "method.segment_samples=8000",
                                                         *overrides]))


def tones(pitches, samples=4000, rate=16000, views=2):
    """int16 [B, views, samples]: one sine per clip, its views starting at different phases."""
    t = torch.arange(samples) / rate
    audio = torch.stack([torch.sin(2 * torch.pi * pitches[:, None] * (t + 0.01 * view)) for view in range(views)], 1)
    return (audio * 0.5 * 32767).to(torch.int16)


def with_levels(audio):
    """A batch of crops whose items are as loud as the crops themselves."""
    return {"audio": audio, "level": (audio[:, 0].float() / 32768).square().mean(dim=1).sqrt()}


def test_presets_name_their_method_class():
    assert method_class(load_config(CONFIGS / "cola.yaml").method_name) is COLA
    assert method_class(load_config(CONFIGS / "cola-cpu.yaml").method_name) is COLA


def test_paper_preset_keeps_the_paper_numbers():
    config = load_config(CONFIGS / "cola.yaml")
    method = COLA(config)
    request = method.data_request
    assert config.data.sample_rate == 16000 and config.data.batch_size == 128
    assert (request.views, request.layout, request.crop_samples, request.segment_samples) == (2, "independent", 16000, 64000)
    assert method.encoder.frontend.n_frames(request.crop_samples) == 98
    assert (config.optimizer.lr, config.optimizer.halve_lr_at_fraction) == (1e-3, 0.5)
    assert config.encoder.name == "efficientnet_b0" and method.encoder.dim == 1280 and method.encoder.pooling == "max"
    assert method.projector(torch.zeros(2, 1280)).shape == (2, 512)
    assert isinstance(method.loss, BilinearLoss) and method.loss.weight.shape == (512, 512)


def test_the_first_crop_is_the_anchor_and_the_second_its_positive(monkeypatch):
    method = tiny_cola()
    seen = {}
    def project(views, level=None):
        seen["views"] = views
        return torch.randn(len(views), 512)

    monkeypatch.setattr(method, "project", project)
    monkeypatch.setattr(method.loss, "forward", lambda a, p: seen.update(anchors=a, positives=p) or a.sum())
    audio = tones(torch.tensor([220.0, 330.0, 440.0]))
    method.compute_loss(with_levels(audio))
    torch.testing.assert_close(seen["views"], torch.cat([audio[:, 0], audio[:, 1]]).float() / 32768)
    assert seen["anchors"].shape == seen["positives"].shape == (3, 512)


def test_the_loss_is_each_anchors_bilinear_softmax_over_every_positive_towards_its_own(monkeypatch):
    method = tiny_cola("head.params.out_dim=16")
    projections = recorded_outputs(monkeypatch, method, "project")
    loss, _ = method.compute_loss(with_levels(tones(torch.tensor([110.0, 262.0, 523.0, 880.0, 1245.0]))))
    anchors, positives = projections[0].chunk(2)
    every_pair_present = [True] * 5  # the absence-aware loss with no absent pair is COLA's
    expected = reference_absence_aware(anchors, positives, every_pair_present, method.loss.weight.detach())
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_w_is_learned_with_the_network():
    method = tiny_cola()
    assert any(parameter is method.loss.weight for parameter in method.parameters())


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    method = tiny_cola()
    batch = with_levels(tones(torch.tensor([110.0, 185.0, 262.0, 392.0, 523.0, 740.0, 880.0, 1245.0])))
    losses = losses_on_a_fixed_batch(method, batch, lr=1e-3)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_cpu_preset_trains_from_a_store_and_loads_back_as_trained(tmp_path, tone_store, monkeypatch):
    config = load_config("cola-cpu", [f"data.store={tone_store}", f"run_dir={tmp_path / 'run'}", "data.batch_size=4",
                                      "data.num_workers=0", "trainer.max_steps=2", "trainer.progress_bar=false",
                                      "method.segment_samples=48000"])  # the store's tones last 3 s
    trained, checkpoint = pretrain_keeping_the_model(config, monkeypatch)
    model = mucon.load(checkpoint)
    assert isinstance(model, COLA)
    assert_loads_back_as_trained(model, trained, torch.randn(2, 16000))


def test_a_crop_of_the_quiet_half_of_a_loud_then_quiet_item_stays_quiet(tmp_path):
    # the release L2-normalises the whole clip before cropping; a crop is not raised to its item's level
    rate, audio = 16000, tmp_path / "audio"
    audio.mkdir()
    t = np.arange(4 * rate) / rate
    sf.write(audio / "item.wav", 0.5 * np.sin(2 * np.pi * 440 * t) * np.where(t < 2, 1.0, 0.01), rate, subtype="PCM_16")
    prepare_store(audio, tmp_path / "store", rate, progress=False, num_workers=1)
    store = AudioStore(tmp_path / "store")
    method = tiny_cola()
    request = method.data_request
    assert request.item_level
    clip = ClipDataset(store, request)[PoolBatchSampler([np.arange(1)], [1], request, seed=0).batch(0)[0]]
    whole = store.read(0, 0, int(store.lengths[0])).astype(np.float64) / 32768
    assert clip["level"].item() == pytest.approx(np.sqrt(np.mean(whole**2)), rel=1e-4)
    loud, quiet = (torch.from_numpy(store.read(0, start, 4000)).float() / 32768 for start in (8000, 40000))
    features = method.spectrograms(torch.stack([loud, quiet]), clip["level"].repeat(2))
    assert features[0].max() - features[1].max() == pytest.approx(np.log(100), abs=0.1)  # 40 dB quieter, still
    per_crop = tiny_cola("encoder.params.frontend=cola_crop_level")  # the named ablation: each crop to one level
    assert not per_crop.data_request.item_level
    raised = per_crop.spectrograms(torch.stack([loud, quiet]), None)
    assert raised[0].max() - raised[1].max() == pytest.approx(0.0, abs=0.1)
