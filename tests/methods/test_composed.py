"""A composed method: views, positives and loss named in the config; its positive mask (views OR shared
labels OR same source recording) against a float64 loop, its data request the union of its parts', and
SemiSupCon and CLMR written as compositions computing their own loss on the same batch."""

import sys

import pytest
import torch

import mucon
from mucon import hear
from mucon.audio.store_writer import prepare_store
from mucon.checkpoint import CheckpointError
from mucon.config import ConfigError, load_config
from mucon.losses import ContrastiveLoss, nt_xent_ids, positive_mask
from mucon.methods import CLMR, Composed, SemiSupCon, method_class
from mucon.methods.pemr import frame_tokens, replace_frames
from mucon.training import pretrain

from conftest import CONFIGS, assert_loads_back_as_trained, pretrain_keeping_the_model
from references import reference_supcon, reference_supcon_terms

FAST = ["data.num_workers=0", "trainer.progress_bar=false", "trainer.log_every_n_steps=1"]
SMALL = ["method.crop_samples=8000", "encoder.params.input_samples=8000"]


def composed(*overrides, preset="semisupcon-mscol-cpu"):
    return Composed(load_config(CONFIGS / f"{preset}.yaml", [*SMALL, *overrides]))


def random_rows(seed, clips=6, views=3, items=4, classes=5):
    """Projections, clip ids, labels (half the clips unlabelled), store items and kept flags of one batch."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(clips * views, 7, generator=generator)
    labels = (torch.rand(clips, classes, generator=generator) < 0.4).to(torch.uint8)
    labels[::2] = 0
    item_of_clip = torch.randint(items, (clips,), generator=generator)
    kept = torch.rand(clips * views, generator=generator) > 0.2
    return z, nt_xent_ids(clips, views), labels.repeat(views, 1), item_of_clip.repeat(views), kept


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weighted,min_shared", [(False, 1), (False, 2), (True, 1)])
def test_the_composed_mask_is_views_or_shared_labels_or_same_source_as_a_float64_loop(seed, weighted, min_shared):
    z, ids, labels, items, kept = random_rows(seed)
    mask = positive_mask(ids, ids, labels, labels, min_shared_labels=min_shared, weighted=weighted,
                         items=items, candidate_items=items)
    n = len(ids)
    for i in range(n):
        for j in range(n):
            shared = sum(int(a) & int(b) for a, b in zip(labels[i].tolist(), labels[j].tolist()))
            size = int(labels[i].sum() + labels[j].sum())
            supervised = (2 * shared / size if size else 0.0) if weighted else float(shared >= min_shared and shared > 0)
            same = float(ids[i] == ids[j] or items[i] == items[j])
            expected = min(1.0, same + supervised) if weighted else float(same + supervised > 0)
            assert mask[i, j].item() == pytest.approx(expected, abs=1e-7), (i, j)
    assert (mask - positive_mask(ids, ids, labels, labels, min_shared_labels=min_shared, weighted=weighted)).abs().sum() > 0
    loss_fn = ContrastiveLoss(0.2, min_shared_labels=min_shared, weighted=weighted)
    losses, counted = loss_fn.anchor_losses(z, ids, labels, items, kept)
    terms = reference_supcon_terms(z, ids.tolist(), labels.tolist(), 0.2, min_shared, weighted, items.tolist(), kept.tolist())
    assert counted.tolist() == [term is not None for term in terms]
    for loss, term in zip(losses[counted].tolist(), [term for term in terms if term is not None]):
        assert loss == pytest.approx(term, rel=1e-5)
    assert loss_fn(z, ids, labels, items, kept).item() == pytest.approx(
        reference_supcon(z, ids.tolist(), labels.tolist(), 0.2, min_shared, weighted, items.tolist(), kept.tolist()), rel=1e-5)


def test_a_left_out_row_changes_no_other_anchors_loss_than_a_batch_without_it():
    z, ids, labels, items, _ = random_rows(0)
    kept = torch.ones(len(ids), dtype=torch.bool)
    kept[4] = False
    loss_fn = ContrastiveLoss(0.1)
    losses, counted = loss_fn.anchor_losses(z, ids, labels, items, kept)
    others = torch.arange(len(ids)) != 4
    without, _ = loss_fn.anchor_losses(z[others], ids[others], labels[others], items[others])
    assert not counted[4]
    torch.testing.assert_close(losses[others], without)


def test_the_data_request_is_the_union_of_the_parts_requests():
    request = composed().data_request  # chunks + source_crop, positives views + labels
    assert (request.crop_samples, request.views, request.layout) == (8000, 2, "adjacent")
    assert request.sources == ("vocals", "drums", "bass", "other") and request.source_per_batch
    assert request.present_only_probability == 1.0
    assert request.labels and (request.labelled_share, request.labelled_keep) == (0.5, 0.5)
    unlabelled = composed("method.positives=[views]").data_request
    assert not unlabelled.labels and unlabelled.labelled_share is None
    pair = composed("method.views=[mixture_crop, source_crop]", "method.segment_samples=32000",
                    "method.positives=[views]").data_request
    assert (pair.views, pair.layout, pair.segment_samples, pair.sources) == (1, "independent", 32000, request.sources)


def test_parts_that_cut_clips_differently_are_a_config_error_naming_both():
    with pytest.raises(ConfigError, match="'chunks' and 'mixture_crop'.*layout"):
        composed("method.views=[chunks, mixture_crop]")


@pytest.mark.parametrize("overrides,message", [
    (["method.views=[chunk]"], "method.views"),
    (["method.positives=[labels]"], "lacks 'views'"),
    (["method.loss=infonce"], "method.loss"),
    (["method.loss=ntxent"], "ntxent takes only the views positive"),
    (["method.chunks=0"], "method.chunks=0"),
    (["method.sources=[piano]"], "method.sources"),
])
def test_a_composition_that_cannot_train_is_a_config_error_naming_the_setting(overrides, message):
    with pytest.raises(ConfigError, match=message):
        composed(*overrides)


def test_a_source_view_needs_a_spectrogram_encoder_for_its_zero_inputs():
    with pytest.raises(ConfigError, match="source_crop needs a spectrogram encoder"):
        composed("encoder.name=samplecnn", "encoder.params={}")


def same_weights(composition, method):
    composition.encoder.load_state_dict(method.encoder.state_dict())
    composition.projector.load_state_dict(method.projector.state_dict())


def labelled_batch(clips=6, views=2, samples=8000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand(clips, 5, generator=generator) < 0.5).to(torch.uint8)
    labels[::2] = 0
    return {"audio": torch.randint(-20000, 20000, (clips, views, samples), generator=generator, dtype=torch.int16),
            "labels": labels, "labelled": labels.sum(1) > 0, "index": torch.arange(clips)}


@pytest.mark.parametrize("weighted", [False, True])
def test_semisupcon_as_chunks_with_views_and_labels_positives_computes_its_loss(weighted):
    setting = f"method.weighted={str(weighted).lower()}"
    reference = SemiSupCon(load_config(CONFIGS / "semisupcon-cpu.yaml",
                                       ["method.chunk_samples=8000", "encoder.params.input_samples=8000", setting]))
    composition = composed("method.views=[chunks]", setting)
    same_weights(composition, reference)
    for seed in range(3):
        batch = labelled_batch(seed=seed)
        expected, expected_logged = reference.compute_loss(batch)  # their view generators start alike, seed 0
        loss, logged = composition.compute_loss(batch)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
        assert logged["labelled_clips"] == expected_logged["labelled_clips"]


def test_clmr_as_two_crops_with_the_views_positive_and_ntxent_computes_its_loss():
    reference = CLMR(load_config(CONFIGS / "clmr-cpu.yaml", ["method.crop_samples=8000", "encoder.params.input_samples=8000"]))
    composition = Composed(load_config(CONFIGS / "clmr-cpu.yaml", [
        "method={name: composed, views: [crops], positives: [views], loss: ntxent, temperature: 0.5, crop_samples: 8000}",
        "encoder.params.input_samples=8000"]))
    same_weights(composition, reference)
    assert composition.data_request == reference.data_request
    for seed in range(3):
        batch = labelled_batch(views=2, seed=seed)
        assert composition.compute_loss(batch)[0].item() == pytest.approx(reference.compute_loss(batch)[0].item(), rel=1e-6)


def test_an_absent_source_gives_no_view_and_a_zero_input(monkeypatch):
    method = composed()
    batch = labelled_batch(clips=4)
    batch["sources"] = torch.randint(-20000, 20000, (4, 1, 8000), dtype=torch.int16)
    batch["source_present"] = torch.tensor([[True], [False], [True], [True]])
    seen = {}
    monkeypatch.setattr(method.loss, "anchor_losses", lambda z, ids, labels, items, kept: seen.update(kept=kept, z=z)
                        or (torch.ones(len(ids)), torch.ones(len(ids), dtype=torch.bool)))
    spectrograms = []
    original = method.project_spectrogram
    monkeypatch.setattr(method, "project_spectrogram", lambda s: spectrograms.append(s) or original(s))
    _, logged = method.compute_loss(batch)
    assert seen["kept"].tolist() == [True] * 8 + [True, False, True, True]
    assert spectrograms[0][9].abs().sum() == 0 and spectrograms[0][8].abs().sum() > 0
    assert logged["source_present"].item() == 0.75


@pytest.fixture(scope="module")
def musdb_store(tmp_path_factory):
    from multitrack import write_musdb_folder

    root = write_musdb_folder(tmp_path_factory.mktemp("musdb") / "musdb18hq", tracks=6, seconds=4.5)
    prepare_store(root, root.parent / "store", 16000, progress=False, num_workers=1)
    return root.parent / "store"


def test_the_preset_trains_loads_through_mucon_and_hear_and_resumes(tmp_path, musdb_store, monkeypatch):
    """Chunks of the mixture and a source crop, clips of one track positives, on a multitrack store; it loads
    through mucon.load and HEAR, and the resumed run continues from its step."""
    settings = [f"data.store={musdb_store}", "data.batch_size=4", "data.label_column=null", "data.crops_per_item=2",
                "method.positives=[views, sources]", *SMALL, *FAST]  # the store has no labels; its tracks repeat
    config = load_config("semisupcon-mscol-cpu", [f"run_dir={tmp_path / 'run'}", "trainer.max_steps=2", *settings])
    trained, checkpoint = pretrain_keeping_the_model(config, monkeypatch)
    model = mucon.load(checkpoint)
    assert isinstance(model, Composed) and model.params.views == ["chunks", "source_crop"]
    assert_loads_back_as_trained(model, trained, torch.randn(2, 8000))
    clips = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(hear.get_scene_embeddings(clips, hear.load_model(str(checkpoint))),
                                   model.encoder.embed(clips), atol=1e-5, rtol=1e-4)
    last = pretrain(load_config(tmp_path / "run" / "config.yaml", ["trainer.max_steps=3"]), resume=True)
    assert torch.load(last, weights_only=False)["global_step"] == 3


def test_composed_is_a_built_in_name_but_no_demo_method():
    from mucon.demo import demo_presets

    assert method_class("composed") is Composed
    assert "semisupcon-mscol-cpu" not in demo_presets()


def test_pemrs_masked_positive_is_a_third_view_of_semisupcons_chunks(monkeypatch):
    """The masked view is the second chunk's spectrogram with PEMR's k least important frames (scored against
    the first chunk) replaced by the [MASK] frame, a positive of its clip; PEMR's prediction loss is added."""
    method = composed("method.views=[chunks, masked]", "method.positives=[views]").eval()  # eval: no dropout
    spectrograms, ids = [], []
    original = method.project_spectrogram
    monkeypatch.setattr(method, "project_spectrogram", lambda s: spectrograms.append(s.detach()) or original(s))
    anchor_losses = method.loss.anchor_losses
    monkeypatch.setattr(method.loss, "anchor_losses", lambda z, clip_ids, *rest: ids.append(clip_ids) or
                        anchor_losses(z, clip_ids, *rest))
    loss, logged = method.compute_loss(labelled_batch(clips=4))
    first, second, masked = spectrograms[0].chunk(3)
    _, dropped = method.select(frame_tokens(first), frame_tokens(second))
    assert dropped.sum(1).tolist() == [int(first.shape[2] * 0.1)] * 4
    torch.testing.assert_close(masked, replace_frames(second, dropped, method.mask_frame.detach()))
    assert ids[0].tolist() == list(range(4)) * 3
    assert loss.item() == pytest.approx(logged["objective"].item() + 0.01 * logged["prediction"].item(), rel=1e-6)


def test_a_masked_view_needs_two_views_to_score_frames_against():
    with pytest.raises(ConfigError, match="masked masks a clip's second view"):
        composed("method.views=[source_crop, masked]")


LOUDER = '''
import torch

import mucon


class Louder(mucon.Augmentation):
    """A gain of 1 .. 2, drawn per row: the least a chain of one's own defines."""

    def __init__(self, sample_rate):
        super().__init__(p=1.0)

    def transform(self, x, generator):
        return x * (1 + torch.rand(x.shape[0], 1, generator=generator, device=x.device))
'''


def test_a_chain_of_ones_own_by_import_path_trains_is_recorded_and_loads_only_where_importable(
        tmp_path, tone_store, monkeypatch):
    package = tmp_path / "site" / "my_chains"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "1.2"\n')
    (package / "louder.py").write_text(LOUDER)
    monkeypatch.syspath_prepend(str(package.parent))
    path = "my_chains.louder:Louder"
    config = load_config("semisupcon-mscol-cpu", [
        f"data.store={tone_store}", f"run_dir={tmp_path / 'run'}", "data.batch_size=4", "data.label_column=null",
        "trainer.max_steps=1", "method.views=[chunks]", "method.positives=[views]", f"method.chain={path}", *SMALL, *FAST])
    last = pretrain(config)
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["mucon"]["user_code"] == {path: "1.2"}
    assert type(mucon.load(last).augment["chunks"]).__module__ == "my_chains.louder"
    for name in [name for name in sys.modules if name.startswith("my_chains")]:
        del sys.modules[name]
    sys.path.remove(str(package.parent))
    with pytest.raises(CheckpointError, match=f"'{path}'.*No module named 'my_chains'.*trained with my_chains version 1.2$"):
        mucon.load(last)
