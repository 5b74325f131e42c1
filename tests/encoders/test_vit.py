"""The SimpleViT's frames, positions and token masking (Myna's)."""

import pytest
import torch

from mucon.encoders import SimpleViT
from mucon.encoders.vit import kept_token_count, sincos_positions

SMALL = {"width": 32, "depth": 2, "heads": 2, "head_dim": 16, "mlp_dim": 64}


@pytest.fixture(scope="module")
def hybrid():
    torch.manual_seed(0)
    return SimpleViT(input_samples=32000, patch_sizes=[[16, 16], [128, 2]], **SMALL).eval()


def test_hybrid_frames_span_16_spectrogram_frames_and_concatenate_both_patch_shapes(hybrid):
    spec = torch.randn(2, 128, 40)  # 40 frames: two whole spans of 16, the last 8 dropped
    with torch.no_grad():
        frames = hybrid.forward_spectrogram(spec)
        square = hybrid.transformer(hybrid.tokens(spec, 0)[0])  # [2, 8 rows x 2 columns, 32]
        vertical = hybrid.transformer(hybrid.tokens(spec, 1)[0])  # [2, 1 row x 16 columns, 32]
    assert frames.shape == (2, 2, 64)
    torch.testing.assert_close(frames[:, 1, :32], square.view(2, 8, 2, 32)[:, :, 1].mean(1))
    torch.testing.assert_close(frames[:, 0, 32:], vertical[:, :8].mean(1))
    # the clip vector: each shape's mean over all its tokens, concatenated (the release's hybrid mode)
    torch.testing.assert_close(hybrid.pool(frames), torch.cat([square.mean(1), vertical.mean(1)], dim=1))


def test_positions_are_2d_sincos_of_column_then_row():
    positions = sincos_positions(2, 3, 8)  # 8 / 4 = 2 frequencies: 1 and 1 / 10000
    frequencies = torch.tensor([1.0, 1e-4])
    row, column = 1, 2  # token 5, row-major
    expected = torch.cat([(column * frequencies).sin(), (column * frequencies).cos(),
                          (row * frequencies).sin(), (row * frequencies).cos()])
    assert positions.shape == (6, 8)
    torch.testing.assert_close(positions[5], expected)
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_positions(2, 3, 6)


@pytest.mark.parametrize("n_mels,frames,tokens", [(128, 192, 96), (128, 96, 48), (128, 48, 24), (80, 16, 5)])
def test_exactly_round_a_tenth_of_the_tokens_reach_the_transformer_drawn_from_the_seed(n_mels, frames, tokens):
    from mucon.audio.frontend import myna_frontend

    torch.manual_seed(0)
    encoder = SimpleViT(n_mels=n_mels, patch_sizes=[[16, 16]], frontend=myna_frontend(16000, n_mels), **SMALL)
    spec = torch.randn(3, n_mels, frames)
    seen = []
    hook = encoder.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))

    def kept(seed):
        encoder.embed_kept_tokens(spec, 0, 0.1, torch.Generator().manual_seed(seed))
        return seen[-1]

    first, again, other = kept(1), kept(1), kept(2)
    hook.remove()
    all_tokens = encoder.tokens(spec, 0)[0]
    assert all_tokens.shape[1] == tokens
    assert first.shape == (3, max(1, round(0.1 * tokens)), 32)
    torch.testing.assert_close(first, again)
    for row in range(3):  # each kept token is one of its row's tokens, none twice
        matches = (first[row].unsqueeze(1) - all_tokens[row].unsqueeze(0)).abs().sum(-1) < 1e-6
        assert (matches.sum(1) == 1).all() and matches.any(0).sum() == first.shape[1]
    assert not torch.equal(first, other)


def test_kept_token_count_rounds_and_keeps_at_least_one():
    assert [kept_token_count(n, 0.1) for n in (96, 95, 94, 4, 1)] == [10, 10, 9, 1, 1]


def test_patch_frames_that_do_not_divide_the_widest_are_refused():
    with pytest.raises(ValueError, match="divide the largest"):
        SimpleViT(patch_sizes=[[16, 16], [128, 3]], **SMALL)


def test_compiling_the_network_compiles_the_transformer_the_kept_tokens_go_through(hybrid):
    """trainer.compile on the base class would compile forward_spectrogram, which Myna's training never calls."""
    import copy

    encoder = copy.deepcopy(hybrid)
    eager_spectrogram_call = encoder.forward_spectrogram
    encoder.compile_network()
    assert encoder.transformer._compiled_call_impl is not None
    assert encoder.forward_spectrogram == eager_spectrogram_call
