import pytest
import torch

import mucon
from mucon import hear
from mucon.config import load_config
from mucon.encoders import build_encoder
from mucon.methods import method_class

from conftest import CONFIGS

RATE = WINDOW = 16000


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=WINDOW)
    return hear.model_from_encoder(encoder)


def test_model_exposes_the_hear_attributes(model):
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == RATE
    assert model.scene_embedding_size == model.timestamp_embedding_size == 128


@pytest.mark.parametrize(
    "n_samples, n_windows",
    [(3000, 1), (WINDOW, 1), (int(2.5 * WINDOW), 4)],  # shorter than a window, exactly one, two and a half
)
def test_any_length_gives_one_embedding_per_half_window_hop(model, n_samples, n_windows):
    audio = torch.randn(3, n_samples) * 0.1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (3, n_windows, 128)
    assert timestamps.shape == (3, n_windows)
    assert torch.isfinite(embeddings).all()
    assert hear.get_scene_embeddings(audio, model).shape == (3, 128)


def test_timestamps_are_the_centres_of_their_windows_in_milliseconds(model):
    _, timestamps = hear.get_timestamp_embeddings(torch.zeros(2, int(2.5 * WINDOW)), model)
    hop_ms, window_ms = 500.0, 1000.0
    expected = torch.arange(4) * hop_ms + window_ms / 2
    torch.testing.assert_close(timestamps, expected.expand(2, 4))


def test_each_timestamp_embedding_is_the_encoder_embedding_of_its_window(model):
    audio = torch.randn(1, int(2.5 * WINDOW)) * 0.1
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    second_window = audio[:, WINDOW // 2 : WINDOW // 2 + WINDOW]
    with torch.no_grad():
        torch.testing.assert_close(embeddings[:, 1], model.encoder.embed(second_window), atol=1e-5, rtol=1e-4)


def test_a_short_clip_is_zero_padded_to_one_window(model):
    audio = torch.randn(1, 3000) * 0.1
    padded = torch.nn.functional.pad(audio, (0, WINDOW - 3000))
    with torch.no_grad():
        torch.testing.assert_close(hear.get_scene_embeddings(audio, model), model.encoder.embed(padded), atol=1e-5, rtol=1e-4)


def test_scene_embedding_is_the_mean_over_time(model):
    audio = torch.randn(2, 2 * WINDOW) * 0.1
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), embeddings.mean(dim=1))


def test_items_of_a_batch_do_not_affect_each_other(model):
    audio = torch.randn(4, int(1.5 * WINDOW)) * 0.1
    together = hear.get_scene_embeddings(audio, model)
    alone = torch.cat([hear.get_scene_embeddings(audio[i : i + 1], model) for i in range(4)])
    loud_neighbours = hear.get_scene_embeddings(torch.cat([audio[:1], 50 * torch.randn(3, audio.shape[1])]), model)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(loud_neighbours[0], together[0], atol=1e-5, rtol=1e-4)


def test_windows_are_chunked_through_the_encoder_in_bounded_batches(model):
    calls = []
    handle = model.encoder.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    small_batches = hear.model_from_encoder(model.encoder, batch_size=3)
    try:
        embeddings, _ = hear.get_timestamp_embeddings(torch.randn(2, 3 * WINDOW) * 0.1, small_batches)
    finally:
        handle.remove()
    assert embeddings.shape[:2] == (2, 5) and max(calls) <= 3 and sum(calls) == 10


def test_embeddings_carry_no_gradient_and_a_custom_hop_sets_the_timestamps(model):
    audio = torch.randn(1, 2 * WINDOW, requires_grad=True)
    fine = hear.model_from_encoder(model.encoder, hop_seconds=0.25)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, fine)
    assert not embeddings.requires_grad
    torch.testing.assert_close(timestamps[0], torch.tensor([500.0, 750.0, 1000.0, 1250.0, 1500.0]))


@pytest.mark.parametrize("hop_seconds, timestamps_ms", [(100.0, [500.0]), (2.0, [500.0, 2250.0])])
def test_a_hop_longer_than_the_window_starts_windows_only_inside_the_clip(model, hop_seconds, timestamps_ms):
    audio = torch.randn(1, int(2.5 * WINDOW)) * 0.1
    sparse = hear.model_from_encoder(model.encoder, hop_seconds=hop_seconds)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, sparse)
    assert timestamps[0].tolist() == timestamps_ms  # the last at the centre of its part inside the clip
    with torch.no_grad():
        torch.testing.assert_close(embeddings[:, 0], model.encoder.embed(audio[:, :WINDOW]), atol=1e-5, rtol=1e-4)
    if len(timestamps_ms) == 1:  # no window of padding averaged into the scene
        torch.testing.assert_close(hear.get_scene_embeddings(audio, sparse), embeddings[:, 0])


def test_a_clip_shorter_than_a_window_is_stamped_at_its_own_centre(model):
    _, timestamps = hear.get_timestamp_embeddings(torch.zeros(1, 3000), model)
    assert timestamps.tolist() == [[1000.0 * 1500 / RATE]]


def test_load_model_reads_a_mucon_checkpoint(tmp_path):
    config = load_config(CONFIGS / "clmr-cpu.yaml", [f"encoder.params.input_samples={WINDOW}"])
    method = method_class(config.method_name)(config)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": method.state_dict(),
                "mucon": {"version": mucon.__version__, "config": config.to_dict(), "label_vocabulary": []}}, path)
    loaded = hear.load_model(str(path))
    assert loaded.sample_rate == 16000 and loaded.scene_embedding_size == method.encoder.dim
    audio = torch.randn(2, 20000) * 0.1
    with torch.no_grad():
        windows = torch.nn.functional.pad(audio, (0, 24000 - 20000)).unfold(1, WINDOW, WINDOW // 2)  # 2 per clip
        expected = method.eval().encoder.embed(windows.reshape(-1, WINDOW)).view(2, 2, -1).mean(dim=1)
    torch.testing.assert_close(hear.get_scene_embeddings(audio, loaded), expected, atol=1e-5, rtol=1e-4)


def test_load_model_without_a_path_says_a_checkpoint_is_needed():
    with pytest.raises(ValueError, match="checkpoint"):
        hear.load_model()


def test_int16_audio_is_scaled_to_the_float_range(model):
    pcm = (torch.randn(2, WINDOW) * 3000).to(torch.int16)
    torch.testing.assert_close(hear.get_scene_embeddings(pcm, model), hear.get_scene_embeddings(pcm / 32768.0, model))


def test_other_integer_audio_is_refused_because_its_scale_is_ambiguous(model):
    with pytest.raises(ValueError, match="float in \\[-1, 1\\] or int16"):
        hear.get_scene_embeddings(torch.zeros(1, WINDOW, dtype=torch.int32), model)


@pytest.mark.parametrize("shape", [(2, 0), (0, WINDOW)], ids=["clips of zero samples", "zero clips"])
def test_empty_audio_is_a_clear_error(model, shape):
    with pytest.raises(ValueError, match="HEAR audio is empty"):
        hear.get_timestamp_embeddings(torch.zeros(shape), model)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_audio_holding_nan_or_inf_is_refused_naming_the_sounds_not_embedded_to_nan(model, bad):
    audio = torch.zeros(3, WINDOW)
    audio[1, 100] = bad
    with pytest.raises(ValueError, match=r"HEAR audio holds NaN or infinite samples \(sound\(s\) \[1\]\)"):
        hear.get_scene_embeddings(audio, model)
