"""SemiSupCon: N adjacent chunks as views, label positives from shared labels, one SupCon loss, and runs
whose batches hold the configured labelled share and whose log says when no label is used."""

import csv
import itertools
import logging
import re

import pytest
import torch

import mucon
from mucon.config import load_config
from mucon.methods import SemiSupCon, method_class
from mucon.training import pretrain

from conftest import CONFIGS, losses_on_a_fixed_batch, sine_tones
from references import reference_supcon, reference_supcon_terms

FAST = ["data.num_workers=0", "trainer.progress_bar=false", "trainer.log_every_n_steps=1"]
SMALL = ["method.chunk_samples=8000", "encoder.params.input_samples=8000"]


def tiny_semisupcon(*overrides):
    return SemiSupCon(load_config(CONFIGS / "semisupcon-cpu.yaml", [*SMALL, *overrides]))


def labelled_batch(kind, clips, views, samples=64, seed=0):
    """int16 audio [clips, views, samples] with label rows and flags as the data module serves them."""
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randint(-20000, 20000, (clips, views, samples), generator=generator, dtype=torch.int16)
    labelled = torch.arange(clips) % 2 == 0 if kind != "unlabelled" else torch.zeros(clips, dtype=torch.bool)
    if kind == "single-label":
        labels = torch.nn.functional.one_hot(torch.randint(3, (clips,), generator=generator), 3)
    else:
        labels = (torch.rand(clips, 5, generator=generator) < 0.6).long()
        labels[:, 0] = 1  # every tagged clip has at least one tag
    labels = (labels * labelled[:, None]).to(torch.uint8)  # unlabelled clips carry all-zero rows
    return {"audio": audio, "labels": labels, "labelled": labelled}


def test_paper_preset_keeps_the_paper_numbers():
    config = load_config(CONFIGS / "semisupcon.yaml")
    method = method_class(config.method_name)(config)
    request = method.data_request
    assert (request.crop_samples, request.views, request.layout) == (59535, 2, "adjacent")
    assert (request.labelled_share, request.labelled_keep) == (0.5, 1.0)
    assert method.params.min_shared_labels == 1 and method.params.temperature == 0.1 and not method.params.weighted
    assert config.data.sample_rate == 22050 and config.data.batch_size == 96
    assert config.optimizer.lr == 1e-4 and config.trainer.max_steps == 200000
    assert config.encoder.name == "samplecnn" and method.encoder.dim == 512
    assert method.encoder.eval()(torch.zeros(1, 59535)).shape == (1, 1, 512)  # one chunk, one frame
    assert [layer.out_features for layer in method.projector.layers if hasattr(layer, "out_features")] == [512, 128]


@pytest.mark.parametrize(
    "kind,views,min_shared",
    list(itertools.product(["single-label", "multi-label", "weighted", "unlabelled"], [2, 3, 4], [1, 2, 3])),
)
def test_loss_and_sub_losses_equal_the_loop_reference(monkeypatch, kind, views, min_shared):
    """Whatever order the method lays views out in: positives are a clip's views and labelled clips
    sharing at least T labels (weighted: Dice), and the logged sub-losses are the labelled and unlabelled
    anchors' own terms of that one loss."""
    weighted = kind == "weighted"
    method = tiny_semisupcon("method.severity=0", f"method.views={views}", f"method.min_shared_labels={min_shared}",
                             f"method.weighted={str(weighted).lower()}")
    batch = labelled_batch(kind, clips=6, views=views, seed=views * 10 + min_shared)
    projection = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(method, "project", lambda chunks: chunks @ projection)  # severity 0: the chain is the identity

    loss, logged = method.compute_loss(batch)

    pairs = [(clip, view) for clip in range(6) for view in range(views)]
    z = torch.stack([batch["audio"][clip, view].double() / 32768 @ projection.double() for clip, view in pairs])
    ids = [clip for clip, _ in pairs]
    labels = [batch["labels"][clip].tolist() for clip in ids]
    terms = reference_supcon_terms(z, ids, labels, 0.1, min_shared, weighted)
    assert loss.item() == pytest.approx(reference_supcon(z, ids, labels, 0.1, min_shared, weighted), rel=1e-5)
    for name, flag in (("loss_labelled", True), ("loss_unlabelled", False)):
        own = [term for term, clip in zip(terms, ids) if bool(batch["labelled"][clip]) == flag]
        if own:
            assert logged[name].item() == pytest.approx(sum(own) / len(own), rel=1e-5)
        else:
            assert name not in logged
    assert logged["labelled_clips"].item() == batch["labelled"].sum().item()


def test_each_chunk_of_a_clip_is_augmented_on_its_own(monkeypatch):
    method = tiny_semisupcon()
    seen = []
    monkeypatch.setattr(method, "project", lambda chunks: seen.append(chunks) or torch.randn(chunks.shape[0], 8))
    batch = labelled_batch("multi-label", clips=4, views=3, samples=8000)
    batch["audio"][:] = batch["audio"][:, :1]  # three identical chunks per clip: only augmentation tells them apart
    method.compute_loss(batch)
    chunks = seen[0]
    assert chunks.shape == (12, 8000)
    for first, second in itertools.combinations(range(3), 2):
        assert not torch.equal(chunks[first * 4 : first * 4 + 4], chunks[second * 4 : second * 4 + 4])


def test_a_single_view_is_refused_since_an_unlabelled_clip_would_have_no_positive():
    with pytest.raises(ValueError, match="at least 2"):
        tiny_semisupcon("method.views=1")


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    method = tiny_semisupcon("method.severity=0.5")
    batch = labelled_batch("multi-label", clips=8, views=2)
    batch["audio"] = sine_tones(16000).reshape(8, 2, 8000)  # two adjacent chunks of each tone
    losses = losses_on_a_fixed_batch(method, batch)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def logged(run_dir, column):
    with open(run_dir / "logs" / "metrics.csv", newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row.get(column)]


@pytest.mark.parametrize("batch_size,share,expected", [(4, 0.5, 2), (8, 0.25, 2)])
def test_every_training_batch_holds_the_configured_labelled_share(tmp_path, tone_store, caplog, batch_size, share, expected):
    config = load_config(CONFIGS / "semisupcon-cpu.yaml", [
        f"data.store={tone_store}", f"run_dir={tmp_path / 'run'}", *SMALL, *FAST, "trainer.max_steps=4",
        f"data.batch_size={batch_size}", "data.label_column=genre", f"method.labelled_share={share}",
    ])
    with caplog.at_level(logging.INFO):
        checkpoint = pretrain(config)
    assert f"semi-supervised: {expected} of {batch_size} clips per batch labelled" in caplog.text
    assert logged(tmp_path / "run", "train/labelled_clips") == [expected] * 4
    assert len(logged(tmp_path / "run", "train/loss_labelled")) == len(logged(tmp_path / "run", "train/loss_unlabelled")) == 4
    model = mucon.load(checkpoint)
    assert isinstance(model, SemiSupCon) and model.label_vocabulary == ["high", "low"]
    assert model.encoder.embed(torch.zeros(2, 8000)).shape == (2, 128)


@pytest.mark.parametrize("setting,reason", [
    ("data.label_column=null", "no data.label_column"),
    ("method.labelled_keep=0.0", "labelled_keep (p_s) is 0"),
])
def test_a_labelled_share_that_finds_no_label_warns_that_the_run_is_purely_self_supervised(tmp_path, tone_store, setting, reason):
    """The release's default config trained without labels and said nothing."""
    config = load_config(CONFIGS / "semisupcon-cpu.yaml", [
        f"data.store={tone_store}", f"run_dir={tmp_path / 'run'}", *SMALL, *FAST, "trainer.max_steps=1",
        "data.batch_size=4", "data.label_column=genre", setting,
    ])
    with pytest.warns(UserWarning, match=f"purely self-supervised: {re.escape(reason)}.*labelled_share \\(b_s\\) 0.5"):
        pretrain(config)
    assert logged(tmp_path / "run", "train/labelled_clips") == [0]


def test_more_shared_labels_than_any_item_has_warns_that_labels_add_no_positive(tmp_path, tone_store):
    config = load_config(CONFIGS / "semisupcon-cpu.yaml", [
        f"data.store={tone_store}", f"run_dir={tmp_path / 'run'}", *SMALL, *FAST, "trainer.max_steps=1",
        "data.batch_size=4", "data.label_column=genre", "method.min_shared_labels=2",  # genre: one label per item
    ])
    with pytest.warns(UserWarning, match=re.escape("min_shared_labels (T) is 2 but no item has more than 1 label(s)")):
        pretrain(config)
