import math

import numpy as np
import pytest
import torch

import mucon
from mucon.audio.store import AudioStore
from mucon.audio.store_writer import prepare_store
from mucon.cli import main
from mucon.config import ConfigError, load_config
from mucon.data.datamodule import ClipDataset
from mucon.data.sampler import PoolBatchSampler
from mucon.losses import AbsenceAwareLoss, BilinearLoss
from mucon.methods import MSCOL, method_class

from conftest import (CONFIGS, assert_loads_back_as_trained, losses_on_a_fixed_batch, pretrain_keeping_the_model,
                      recorded_outputs)
from multitrack import MUSDB_RATE, instrument, write_pcm
from references import reference_absence_aware

FAST = ["data.batch_size=4", "data.num_workers=0", "trainer.max_steps=2", "trainer.progress_bar=false"]


def tiny_mscol(*overrides, preset="mscol-cpu"):
    return MSCOL(load_config(CONFIGS / f"{preset}.yaml", ["method.crop_samples=4000", "method.segment_samples=8000",
                                                           *overrides]))


def sources_batch(present, samples=4000, rate=16000, seed=0):
    """A mixture crop and a source crop per clip (a tone each, their pitches tied), with presence flags."""
    generator = torch.Generator().manual_seed(seed)
    pitches = 110 * 2 ** (torch.arange(len(present)) / 3)
    t = torch.arange(samples) / rate
    source = 0.4 * torch.sin(2 * torch.pi * pitches[:, None] * t)
    mixture = source + 0.2 * torch.sin(2 * torch.pi * 3 * pitches[:, None] * t + 1) \
        + 0.01 * torch.randn(len(present), samples, generator=generator)
    pcm = lambda x: (x * 32767).to(torch.int16)[:, None]  # noqa: E731
    level = lambda x: (pcm(x)[:, 0].float() / 32768).square().mean(dim=1).sqrt()  # noqa: E731  (items as loud as their crops)
    present = torch.tensor(present)[:, None]
    return {"audio": pcm(mixture), "sources": pcm(source), "source_present": present,
            "source_index": torch.zeros(len(present), dtype=torch.long),
            "level": level(mixture), "source_level": level(source)[:, None]}


@pytest.fixture(scope="module")
def musdb_store(tmp_path_factory):
    """Six MUSDB18-HQ-layout tracks of 4.5 s at 16 kHz, vocals silent in the first half of three."""
    from multitrack import write_musdb_folder

    root = write_musdb_folder(tmp_path_factory.mktemp("musdb") / "musdb18hq", tracks=6, seconds=4.5)
    prepare_store(root, root.parent / "store", 16000, progress=False, num_workers=1)
    return root.parent / "store"


def test_presets_name_their_method_class():
    for preset in ("mscol", "mscol-cpu", "mscol-drums-cpu"):
        assert method_class(load_config(CONFIGS / f"{preset}.yaml").method_name) is MSCOL


@pytest.mark.parametrize("preset", ["mscol", "mscol-cpu"])
def test_presets_keep_colas_network_data_and_schedule(preset):
    """MSCOL changes only the pairs and the loss: its paper preset (16 kHz, batch 128 pairs, EfficientNet-B0,
    head 512, Adam 1e-3 halved halfway; pinned in test_cola.py) and CPU preset match COLA's in all else."""
    mscol, cola = load_config(CONFIGS / f"{preset}.yaml"), load_config(CONFIGS / f"{preset.replace('mscol', 'cola')}.yaml")
    for section in ("encoder", "head", "data", "optimizer", "trainer", "seed"):
        assert getattr(mscol, section) == getattr(cola, section), section
    assert {key: mscol.method[key] for key in ("crop_samples", "segment_samples")} == \
        {key: cola.method[key] for key in ("crop_samples", "segment_samples")}


def test_paper_preset_draws_every_source_with_half_the_batches_absence_aware():
    method = MSCOL(load_config(CONFIGS / "mscol.yaml"))
    request = method.data_request
    assert (request.views, request.layout, request.crop_samples, request.segment_samples) == (1, "independent", 16000, 64000)
    assert request.sources == ("vocals", "drums", "bass", "other") and request.source_per_batch
    assert (request.present_only_probability, request.presence_threshold) == (0.5, 0.01)
    assert isinstance(method.loss, AbsenceAwareLoss) and method.loss.weight.shape == (512, 512)


def test_the_target_of_a_source_targeted_model_is_one_setting():
    assert tiny_mscol(preset="mscol-drums-cpu").data_request.sources == ("drums",)
    assert tiny_mscol("method.sources=[vocals]", preset="mscol-drums-cpu").data_request.sources == ("vocals",)


@pytest.mark.parametrize("sources", ["[]", "[drums, guitar]", "[bass, bass]"])
def test_sources_must_be_distinct_known_types(sources):
    with pytest.raises(ConfigError, match="method.sources"):
        tiny_mscol(f"method.sources={sources}")


def test_a_waveform_encoder_is_refused_since_absent_sources_are_zero_spectrograms():
    with pytest.raises(ConfigError, match="spectrogram encoder"):
        tiny_mscol("encoder.name=samplecnn", "encoder.params={}")


def test_absent_sources_enter_the_network_as_all_zero_spectrograms(monkeypatch):
    method = tiny_mscol()
    seen = []
    forward = method.encoder.forward_spectrogram

    def record(spec):
        seen.append(spec)
        return forward(spec)

    monkeypatch.setattr(method.encoder, "forward_spectrogram", record)
    batch = sources_batch([True, False, True, False])
    method.compute_loss(batch)
    spec = seen[0]
    assert spec.shape[0] == 8  # mixtures and sources in one batch: shared batch-norm statistics, as the release
    torch.testing.assert_close(spec[:4], method.encoder.frontend(batch["audio"][:, 0].float() / 32768, batch["level"]))
    assert (spec[[5, 7]] == 0).all()  # the absent sources
    torch.testing.assert_close(spec[[4, 6]], method.encoder.frontend(batch["sources"][[0, 2], 0].float() / 32768,
                                                                     batch["source_level"][[0, 2], 0]))


def test_a_present_only_batch_is_colas_loss_between_mixture_and_source(monkeypatch):
    method = tiny_mscol().eval()
    cola = BilinearLoss(512)
    cola.load_state_dict(method.loss.state_dict())
    seen = []
    absence_aware = method.loss.forward

    def record(anchors, positives, present):
        seen.append((anchors, positives))
        return absence_aware(anchors, positives, present)

    monkeypatch.setattr(method.loss, "forward", record)
    with torch.no_grad():
        loss, _ = method.compute_loss(sources_batch([True] * 4))
    assert loss.item() == pytest.approx(cola(*seen[0]).item(), rel=1e-6)


def test_the_loss_is_the_absence_aware_loss_of_the_mixtures_and_sources_projections(monkeypatch):
    method = tiny_mscol("head.params.out_dim=16")
    projections = recorded_outputs(monkeypatch, method, "project_spectrogram")
    present = [True, False, True, True, False]
    loss, _ = method.compute_loss(sources_batch(present))
    mixtures, sources = projections[0].chunk(2)
    expected = reference_absence_aware(mixtures, sources, present, method.loss.weight.detach())
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_every_anchor_absent_gives_a_zero_loss_and_finite_gradients():
    method = tiny_mscol()
    loss, logged = method.compute_loss(sources_batch([False] * 4))
    loss.backward()
    assert loss.item() == 0.0 and logged["source_present"].item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in method.parameters() if p.grad is not None)


def test_training_steps_lower_the_loss_on_a_fixed_batch_with_absent_sources():
    torch.manual_seed(0)
    method = tiny_mscol()
    losses = losses_on_a_fixed_batch(method, sources_batch([True, True, False, True, True, False, True, True]), lr=1e-3)
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_cpu_presets_train_on_a_musdb_layout_store_and_load_back_as_trained(tmp_path, musdb_store, monkeypatch):
    for preset in ("mscol-cpu", "mscol-drums-cpu"):
        config = load_config(preset, [f"data.store={musdb_store}", f"run_dir={tmp_path / preset}", *FAST])
        trained, checkpoint = pretrain_keeping_the_model(config, monkeypatch)
        model = mucon.load(checkpoint)
        assert isinstance(model, MSCOL) and model.params.sources == config.method["sources"]
        assert_loads_back_as_trained(model, trained, torch.randn(2, 16000))


def test_a_store_without_sources_is_a_one_line_error_saying_how_to_make_one(tmp_path, tone_store, capsys):
    code = main(["pretrain", "--config", "mscol-cpu", "--store", str(tone_store), "--run-dir", str(tmp_path / "run"),
                 *FAST, "method.segment_samples=48000"])  # the store's tones last 3 s
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert error.startswith("mucon pretrain: ") and "mucon prepare" in error and "mucon separate" in error


def test_a_near_silent_crop_of_a_present_stem_is_not_raised_to_the_stems_level(tmp_path):
    # the release L2-normalises each whole stem before cropping: a near-silent stretch stays near-silent
    track = tmp_path / "musdb18hq" / "train" / "Artist - Song"
    frames = 3 * MUSDB_RATE
    stems = {source: instrument(source, frames, MUSDB_RATE, k, channels=2)
             for k, source in enumerate(("vocals", "drums", "bass", "other"))}
    stems["vocals"][frames // 2 :] //= 100  # the second half 40 dB down, not silent
    for source, pcm in stems.items():
        write_pcm(track / f"{source}.wav", pcm, MUSDB_RATE)
    write_pcm(track / "mixture.wav", np.sum([p.astype(np.int32) for p in stems.values()], axis=0).astype(np.int16), MUSDB_RATE)
    prepare_store(tmp_path / "musdb18hq", tmp_path / "store", 16000, progress=False, num_workers=1)
    store = AudioStore(tmp_path / "store")
    method = tiny_mscol("method.sources=[vocals]")
    request = method.data_request
    assert request.item_level
    draws = PoolBatchSampler([np.arange(1)], [1], request, seed=0, has_source=store.has_source).batch(0)
    clip = ClipDataset(store, request)[draws[0]]
    vocals = store.read_sources(0, 0, int(store.lengths[0]), ["vocals"])[0].astype(np.float64) / 32768
    assert clip["source_level"][0].item() == pytest.approx(np.sqrt(np.mean(vocals**2)), rel=1e-4)
    present, faint = (torch.from_numpy(store.read_sources(0, start, 4000, ["vocals"])[0]).float() / 32768
                      for start in (4000, 36000))
    features = method.spectrograms(torch.stack([present, faint]), clip["source_level"].repeat(2))
    assert features[0].max() - features[1].max() == pytest.approx(np.log(100), abs=0.2)
