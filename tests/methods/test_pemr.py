import pytest
import torch

import mucon
from mucon.audio.augment import Compose
from mucon.cli import main
from mucon.config import load_config
from mucon.methods import CLMR, PEMR, method_class
from mucon.methods.pemr import frame_tokens, lowest

from conftest import (CONFIGS, assert_loads_back_as_trained, losses_on_a_fixed_batch, pretrain_keeping_the_model,
                      recorded_outputs, tiny_run_config, write_tone_folder)
from references import reference_cross_correlation, reference_hard_negative

CROP = 8000  # 0.5 s at 16 kHz: 32 frames of the small CNN's front end, 3 of them masked


def tiny_pemr(*overrides):
    config = load_config(CONFIGS / "pemr-cpu.yaml", [f"method.crop_samples={CROP}", f"encoder.params.input_samples={CROP}",
                                                     "method.feedforward_dim=128", *overrides])
    return PEMR(config)


def tone_batch(n_clips=6):
    t = torch.arange(CROP) / 16000
    pitches = 110.0 * 2 ** (torch.arange(n_clips) * 7 / 12)
    audio = torch.sin(2 * torch.pi * pitches[:, None] * t) * 0.5 * (1 + torch.sin(2 * torch.pi * 3 * t))
    return {"audio": (audio[:, None] * 16000).to(torch.int16)}


def recorded_views(method, monkeypatch, batch):
    """The (anchor, positive, negative) spectrograms compute_loss hands to the encoder."""
    seen = []
    original = method.project_spectrogram
    monkeypatch.setattr(method, "project_spectrogram", lambda spec: seen.append(spec) or original(spec))
    method.compute_loss(batch)
    return seen


def replaced(spectrogram, mask_frame):
    """[B, T] bool: the frames equal to the [MASK] frame."""
    return (spectrogram == mask_frame[None, :, None]).all(dim=1)


def test_each_view_is_its_own_crop_anywhere_in_the_item_unless_one_crop_per_clip_is_asked_for(monkeypatch):
    assert (tiny_pemr().data_request.views, tiny_pemr().data_request.layout) == (2, "anywhere")
    assert tiny_pemr("method.crop_per_view=false").data_request.views == 1
    method = tiny_pemr()
    monkeypatch.setattr(method, "augment", Compose([]))  # no augmentation: the views are the crops
    batch = tone_batch()
    batch["audio"] = torch.stack([batch["audio"][:, 0], batch["audio"][:, 0].flip(0)], dim=1)  # view j: another clip
    anchors, positives, _ = recorded_views(method, monkeypatch, batch)
    torch.testing.assert_close(anchors, method.encoder.frontend(batch["audio"][:, 0].float() / 32768))
    unmasked = positives != method.mask_frame[None, :, None]
    torch.testing.assert_close(positives[unmasked], method.encoder.frontend(batch["audio"][:, 1].float() / 32768)[unmasked])


def test_presets_name_their_method_class():
    assert method_class(load_config(CONFIGS / "pemr.yaml").method_name) is PEMR
    assert method_class(load_config(CONFIGS / "pemr-cpu.yaml").method_name) is PEMR


def test_paper_preset_keeps_the_paper_numbers():
    method = PEMR(load_config(CONFIGS / "pemr.yaml"))
    assert method.config.data.sample_rate == 22050
    assert method.data_request.crop_samples == 59049
    assert method.encoder.frontend(torch.zeros(1, 59049)).shape == (1, 128, 462)
    assert method.masked_count(462) == 46
    assert method.config.data.batch_size == 48
    assert method.config.optimizer.lr == 3e-4
    assert method.config.trainer.max_steps == 300 * (18706 // 48)  # the release's 300 epochs of MTAT train
    assert method.encoder.frontend.filterbank_sample_rate == 16000  # the release's torchaudio default
    assert method.encoder.dim == 512
    assert method.projector(torch.zeros(2, 512)).shape == (2, 256)
    assert len(method.transformer.layers) == 3
    layer = method.transformer.layers[0]
    assert layer.attention.heads == 3 and layer.attention.query.weight.shape == (3 * 128, 128)  # 3 full-width heads
    assert layer.feedforward[0].out_features == 2048 and layer.dropout.p == 0.1
    assert method.params.objective == "cross_correlation" and not method.params.pitch_shift


@pytest.mark.parametrize("override,message", [("method.objective=barlow", "objective"),
                                              ("method.mask_ratio=1.5", "mask_ratio"),
                                              ("method.mask_ratio=0.01", "masks no frame")])
def test_bad_settings_are_errors_naming_them(override, message):
    with pytest.raises(ValueError, match=message):
        tiny_pemr(override).compute_loss(tone_batch())


def test_an_encoder_without_a_spectrogram_is_refused():
    config = load_config(CONFIGS / "pemr-cpu.yaml", ["encoder.name=samplecnn", "encoder.params.input_samples=59049"])
    with pytest.raises(ValueError, match="spectrogram"):
        PEMR(config)


def test_positive_masks_exactly_k_frames_and_the_negative_masks_all_the_others(monkeypatch):
    method = tiny_pemr()
    with torch.no_grad():
        method.mask_frame.fill_(123.0)  # a value no dB frame takes
    anchor, positive, negative = recorded_views(method, monkeypatch, tone_batch())
    in_positive, in_negative = replaced(positive, method.mask_frame), replaced(negative, method.mask_frame)
    assert (in_positive.sum(dim=1) == 3).all()  # k = int(32 x 0.1)
    assert torch.equal(in_negative, ~in_positive)
    assert not replaced(anchor, method.mask_frame).any()
    kept_positive = torch.where(in_positive[:, None, :], negative, positive)  # each frame from where it survived
    assert not replaced(kept_positive, method.mask_frame).any()


def test_the_masked_frames_are_the_least_important_and_follow_a_permutation_of_the_scores(monkeypatch):
    method = tiny_pemr()
    batch = tone_batch(4)
    scores = torch.rand(4, 32, generator=torch.Generator().manual_seed(0))
    permutation = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    masked = []
    for given in (scores, scores[:, permutation]):
        monkeypatch.setattr(method.transformer, "importance", lambda frames_i, frames_j, given=given: given)
        _, positive, _ = recorded_views(method, monkeypatch, batch)
        masked.append(replaced(positive, method.mask_frame))
    assert torch.equal(masked[0], scores <= scores.sort(dim=1).values[:, 2:3])  # the 3 lowest scores
    assert torch.equal(masked[1], masked[0][:, permutation])


def test_lowest_picks_the_k_smallest_scores_of_each_row():
    scores = torch.tensor([[0.5, 0.1, 0.9, 0.2], [3.0, 2.0, 1.0, 0.0]])
    assert lowest(scores, 2).tolist() == [[False, True, False, True], [False, False, True, True]]


def test_importance_is_the_cls_attention_of_both_views_on_view_j_averaged_over_heads():
    """METHODS.md: softmax(q_cls_i K_j / sqrt(w)) + softmax(q_cls_j K_j / sqrt(w)), mean over heads."""
    transformer = tiny_pemr().transformer.eval()
    generator = torch.Generator().manual_seed(0)
    frames_i, frames_j = torch.randn(2, 5, 20, 64, generator=generator)
    x = transformer.embed(torch.cat([frames_i, frames_j]))
    for layer in transformer.layers[:-1]:
        x = layer(x)
    attention = transformer.layers[-1].attention
    expected = torch.zeros(5, 20)
    for head in range(3):
        rows = slice(head * 64, (head + 1) * 64)
        keys = x[5:, 1:] @ attention.key.weight[rows].T + attention.key.bias[rows]
        for side in (x[:5], x[5:]):
            query = side[:, 0] @ attention.query.weight[rows].T + attention.query.bias[rows]
            expected += torch.softmax(torch.einsum("bd,btd->bt", query, keys) / 64**0.5, dim=1) / 3
    torch.testing.assert_close(transformer.importance(frames_i, frames_j), expected)


def test_no_gradient_flows_through_the_selection():
    """The objective trains encoder, projector and [MASK] frame; the transformer learns only from the
    prediction task (with its weight at 0, it receives no gradient at all)."""
    method = tiny_pemr("method.prediction_weight=0.0")
    loss, _ = method.compute_loss(tone_batch())
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in method.transformer.parameters())
    assert method.mask_frame.grad.abs().sum() > 0
    assert all(p.grad is not None for p in method.encoder.parameters())
    method = tiny_pemr()
    loss, _ = method.compute_loss(tone_batch())
    loss.backward()
    assert method.transformer.layers[0].attention.query.weight.grad.abs().sum() > 0


def test_prediction_task_corrupts_fifteen_percent_of_frames_as_bert_does(monkeypatch):
    method = tiny_pemr()
    frames = torch.randn(400, 40, 64, generator=torch.Generator().manual_seed(0))
    seen = []
    original = method.transformer.forward
    monkeypatch.setattr(method.transformer, "forward", lambda x: seen.append(x) or original(x))
    method.prediction_loss(frames)
    changed = (seen[0] != frames).any(dim=2)
    zeroed = (seen[0] == 0).all(dim=2)
    assert zeroed.sum(dim=1).max() <= 6  # round(0.15 x 40) picked per sequence
    assert zeroed.float().mean().item() == pytest.approx(0.15 * 0.8, abs=0.01)
    assert (changed & ~zeroed).float().mean().item() == pytest.approx(0.15 * 0.1, abs=0.005)


def test_frame_tokens_are_standardised_frames():
    spectrogram = torch.randn(2, 64, 30) * 20 - 50
    tokens = frame_tokens(spectrogram)
    assert tokens.shape == (2, 30, 64)
    torch.testing.assert_close(tokens.mean(dim=(1, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    assert torch.isfinite(frame_tokens(torch.full((1, 64, 30), -100.0))).all()  # silence


@pytest.mark.parametrize("objective", ["cross_correlation", "contrastive"])
def test_the_loss_is_the_objective_of_the_three_projections_plus_the_weighted_prediction_loss(monkeypatch, objective):
    """Weights and temperature away from their defaults (and from 1), so that a swapped or inverted one shows."""
    method = tiny_pemr(f"method.objective={objective}", "method.temperature=0.3", "method.off_diagonal_weight=0.02",
                       "method.negative_weight=0.05", "method.prediction_weight=0.5")
    projections = recorded_outputs(monkeypatch, method, "project_spectrogram")
    loss, logged = method.compute_loss(tone_batch())
    anchors, positives, negatives = projections
    if objective == "contrastive":
        expected = reference_hard_negative(anchors, positives, negatives, temperature=0.3)
    else:
        expected = reference_cross_correlation(anchors, positives, negatives, off_diagonal_weight=0.02,
                                               negative_weight=0.05)
    assert logged["objective"].item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx((logged["objective"] + 0.5 * logged["prediction"]).item(), rel=1e-6)


def test_the_same_seed_makes_the_same_loss():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        losses.append(tiny_pemr().compute_loss(tone_batch())[0].item())
    assert losses[0] == losses[1]


@pytest.mark.parametrize("objective", ["cross_correlation", "contrastive"])
def test_training_steps_lower_the_loss_on_a_fixed_batch(objective):
    torch.manual_seed(0)
    losses = losses_on_a_fixed_batch(tiny_pemr(f"method.objective={objective}"), tone_batch(8))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


@pytest.fixture(scope="module")
def pemr_run(tmp_path_factory, tone_store):
    """(the method as two training steps left it, the run's last checkpoint)."""
    config = tiny_run_config("pemr-cpu", tone_store, tmp_path_factory.mktemp("pemr") / "run", steps=2)
    with pytest.MonkeyPatch.context() as monkeypatch:
        return pretrain_keeping_the_model(config, monkeypatch)


@pytest.fixture(scope="module")
def pemr_checkpoint(pemr_run):
    return pemr_run[1]


def test_a_trained_checkpoint_loads_back_as_trained_and_embeds(tmp_path, pemr_run, capsys):
    trained, pemr_checkpoint = pemr_run
    model = mucon.load(pemr_checkpoint)
    assert isinstance(model, PEMR)
    assert_loads_back_as_trained(model, trained, torch.randn(2, 32000))
    assert model.encoder.embed(torch.zeros(2, 32000)).shape == (2, 128)
    audio = write_tone_folder(tmp_path / "audio", 3, 16000, 2.0)
    assert main(["embed", str(audio), "--checkpoint", str(pemr_checkpoint), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "embedded 3 files" in capsys.readouterr().out


def test_masks_command_writes_a_png_per_file(tmp_path, pemr_checkpoint, capsys):
    audio = write_tone_folder(tmp_path / "audio", 2, 22050, 1.0)  # another rate, shorter than the crop
    files = sorted(str(path) for path in audio.glob("*.wav"))
    assert main(["masks", "--checkpoint", str(pemr_checkpoint), *files, "--out", str(tmp_path / "masks")]) == 0
    pngs = sorted((tmp_path / "masks").glob("*.png"))
    assert [png.name for png in pngs] == ["tone000.png", "tone001.png"]
    assert all(png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs)
    assert str(pngs[0]) in capsys.readouterr().out


@pytest.mark.parametrize("start", ["1.5", "-0.5"])
def test_masks_command_refuses_a_start_outside_the_file_in_one_line_naming_the_file(tmp_path, pemr_checkpoint, start,
                                                                                     capsys):
    audio = write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    assert main(["masks", "--checkpoint", str(pemr_checkpoint), str(audio / "tone000.wav"), "--out",
                 str(tmp_path / "masks"), "--start-seconds", start]) == 2
    expected = (f"{audio / 'tone000.wav'}: --start-seconds 1.5 is outside the file (1.00 s long)" if start == "1.5"
                else "--start-seconds must be at least 0, got -0.5")
    assert capsys.readouterr().err == f"mucon masks: {expected}\n"
    assert not list((tmp_path / "masks").glob("*.png"))


def test_masks_command_refuses_another_method_in_one_line(tmp_path, capsys):
    config = load_config("clmr-cpu")
    checkpoint = tmp_path / "clmr.ckpt"
    torch.save({"state_dict": CLMR(config).state_dict(),
                "mucon": {"config": config.to_dict(), "label_vocabulary": []}}, checkpoint)
    audio = write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    assert main(["masks", "--checkpoint", str(checkpoint), str(audio / "tone000.wav"), "--out", str(tmp_path / "m")]) == 2
    error = capsys.readouterr().err
    assert "clmr checkpoint" in error and "Traceback" not in error
