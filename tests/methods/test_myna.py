import pytest
import torch

from mucon.config import load_config
from mucon.losses import ContrastiveLoss, SogCLRLoss, nt_xent_ids
from mucon.methods import Myna, method_class

from conftest import CONFIGS, losses_on_a_fixed_batch, sine_tones

CROP = 16000  # 1 s: 32 frames, 2 spans of 16: 16 square and 16 vertical tokens per view, 2 of each kept


def tiny_myna(*overrides):
    config = load_config(CONFIGS / "myna-cpu.yaml", [f"method.crop_samples={CROP}", f"encoder.params.input_samples={CROP}",
                                                      "encoder.params.width=32", "encoder.params.depth=2",
                                                      "encoder.params.heads=2", "encoder.params.head_dim=16",
                                                      "encoder.params.mlp_dim=64", *overrides])
    return Myna(config)


def two_view_batch(clips=4, samples=CROP):
    tones = sine_tones(samples)[:clips]
    return {"audio": torch.stack([tones, tones.roll(1, dims=1)], dim=1), "index": torch.arange(clips)}


def transformer_inputs(method):
    seen = []
    method.encoder.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    return seen


def test_presets_name_their_method_class():
    assert method_class(load_config(CONFIGS / "myna.yaml").method_name) is Myna
    assert method_class(load_config(CONFIGS / "myna-cpu.yaml").method_name) is Myna


def test_paper_preset_keeps_the_release_numbers():
    method = Myna(load_config(CONFIGS / "myna.yaml"))
    assert method.data_request.crop_samples == 100000 and method.data_request.views == 2
    assert (method.params.mask_ratio, method.params.loss, method.params.temperature, method.params.gamma) == (0.9, "sogclr", 0.1, 0.9)
    assert method.config.data.batch_size == 4096 and method.config.data.sample_rate == 16000
    assert (method.config.optimizer.lr, method.config.optimizer.weight_decay) == (3e-4, 1e-5)
    assert method.encoder.patch_sizes == [(16, 16), (128, 2)]
    encoder_parameters = sum(p.numel() for p in method.encoder.parameters())
    # the release's SimpleViT with both patch embeddings, counted by hand: 12 blocks of 1,772,928, the final
    # LayerNorm's 768, two patch embeddings of 99,968 (its "22M")
    assert encoder_parameters == 12 * 1_772_928 + 768 + 2 * 99_968
    spectrogram = method.encoder.spectrogram(torch.zeros(1, 100000))
    assert spectrogram.shape == (1, 128, 196)
    assert method.encoder.forward_spectrogram(spectrogram).shape == (1, 12, 768)  # 192 frames, both shapes
    assert method.projector(torch.zeros(2, 384)).shape == (2, 50)


def test_the_views_are_the_two_crops_spectrograms_and_nothing_else(monkeypatch):
    method = tiny_myna()
    seen = []
    original = method.encoder.embed_kept_tokens
    monkeypatch.setattr(method.encoder, "embed_kept_tokens",
                        lambda spec, *args: seen.append(spec) or original(spec, *args))
    batch = two_view_batch()
    method.compute_loss(batch)
    audio = batch["audio"].float() / 32768
    expected = method.encoder.spectrogram(torch.cat([audio[:, 0], audio[:, 1]]))
    assert len(seen) == 2  # one pass per patch shape, on the same views
    for spec in seen:
        torch.testing.assert_close(spec, expected)


def test_a_tenth_of_each_views_tokens_reach_the_transformer_drawn_from_the_runs_seed():
    def kept_tokens(seed):
        torch.manual_seed(0)
        method = tiny_myna(f"seed={seed}")
        seen = transformer_inputs(method)
        method.compute_loss(two_view_batch())
        return seen

    first, again, other = kept_tokens(0), kept_tokens(0), kept_tokens(1)
    assert [tokens.shape for tokens in first] == [(8, round(0.1 * 16), 32)] * 2  # 8 views, both patch shapes
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_myna_cpu_keeps_round_a_tenth_of_its_56_tokens_per_view_and_shape():
    method = Myna(load_config(CONFIGS / "myna-cpu.yaml"))
    seen = transformer_inputs(method)
    with torch.no_grad():
        method.compute_loss(two_view_batch(2, 64000))
    assert [tokens.shape[:2] for tokens in seen] == [(4, round(0.1 * 56))] * 2


def test_evaluation_sees_every_token():
    method = tiny_myna().eval()
    seen = transformer_inputs(method)
    with torch.no_grad():
        frames = method.encoder(torch.randn(3, CROP))
    assert [tokens.shape[1] for tokens in seen] == [16, 16] and frames.shape == (3, 2, 64)


def test_sogclr_is_indexed_by_the_batchs_items_and_nt_xent_is_offered(monkeypatch):
    method = tiny_myna()
    assert all(isinstance(loss, SogCLRLoss) for loss in method.losses)
    method.size_item_state(10)
    batch = two_view_batch()
    batch["index"] = torch.tensor([9, 2, 5, 7])
    loss, logged = method.compute_loss(batch)
    for shape_loss in method.losses:
        assert torch.nonzero(shape_loss.denominators).flatten().tolist() == [2, 5, 7, 9]
    torch.testing.assert_close(loss, (logged["loss_16x16"] + logged["loss_128x2"]) / 2)

    ntxent = tiny_myna("method.loss=nt_xent")
    assert all(isinstance(loss, ContrastiveLoss) for loss in ntxent.losses)
    projections = []
    original = ntxent.projector.forward
    monkeypatch.setattr(ntxent.projector, "forward", lambda x: projections.append(original(x)) or projections[-1])
    loss, _ = ntxent.compute_loss(two_view_batch())
    expected = sum(ContrastiveLoss(0.1)(z, nt_xent_ids(4, 2)) for z in projections) / 2
    torch.testing.assert_close(loss, expected)


def test_training_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    method = tiny_myna("method.mask_ratio=0.5", "method.loss=nt_xent")
    losses = losses_on_a_fixed_batch(method, two_view_batch(8), steps=15)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("override,message", [("method.loss=infonce", "method.loss"), ("method.mask_ratio=1.0", "mask_ratio")])
def test_settings_myna_cannot_train_with_are_refused_naming_them(override, message):
    with pytest.raises(ValueError, match=message):
        tiny_myna(override)


def test_an_encoder_without_tokens_to_mask_is_refused():
    with pytest.raises(ValueError, match="simple_vit"):
        Myna(load_config(CONFIGS / "myna-cpu.yaml", ["encoder.name=small_cnn", "encoder.params={}"]))
