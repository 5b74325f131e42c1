"""PEMR's 2D CNN: 128 mels x 462 frames -> one 512-d frame; time shrinks 320-fold."""

import pytest
import torch
from torch import nn

from mucon.encoders import PEMRCNN


@pytest.fixture(scope="module")
def pemr_cnn():
    torch.manual_seed(0)
    return PEMRCNN().eval()


def test_pemr_cnn_blocks_have_the_papers_channels_and_pools(pemr_cnn):
    convs = [m for m in pemr_cnn.blocks if isinstance(m, nn.Conv2d)]
    pools = [m for m in pemr_cnn.blocks if isinstance(m, nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [tuple(p.kernel_size) for p in pools] == [(2, 4), (2, 4), (2, 4), (4, 5)]
    assert isinstance(pemr_cnn.input_norm, nn.BatchNorm2d) and pemr_cnn.input_norm.num_features == 1


def test_pemr_cnn_turns_a_128x462_spectrogram_into_one_512d_frame(pemr_cnn):
    with torch.no_grad():
        frames = pemr_cnn.forward_spectrogram(torch.randn(2, 128, 462))
    assert frames.shape == (2, 1, 512)


def test_pemr_cnn_design_waveform_goes_through_a_128x462_spectrogram(pemr_cnn):
    waveform = torch.randn(2, 59049)
    with torch.no_grad():
        assert pemr_cnn.frontend(waveform).shape == (2, 128, 462)
        assert pemr_cnn(waveform).shape == (2, 1, 512)


def test_pemr_cnn_frames_grow_with_spectrogram_length(pemr_cnn):
    with torch.no_grad():
        frames = pemr_cnn.forward_spectrogram(torch.randn(1, 128, 3 * 320))
    assert frames.shape == (1, 3, 512)


def test_pemr_cnn_minimum_length_is_the_shortest_waveform_with_320_frames(pemr_cnn):
    shortest = pemr_cnn.min_input_samples
    with torch.no_grad():
        assert pemr_cnn.frontend(torch.randn(1, shortest)).shape[-1] >= 320
        assert pemr_cnn.frontend(torch.randn(1, shortest - 1)).shape[-1] < 320
        assert pemr_cnn(torch.randn(1, shortest)).shape == (1, 1, 512)
    with pytest.raises(ValueError, match="at least"):
        pemr_cnn(torch.randn(1, shortest - 1))


def test_pemr_cnn_attributes_describe_its_input_and_output(pemr_cnn):
    assert (pemr_cnn.sample_rate, pemr_cnn.input_samples, pemr_cnn.dim) == (22050, 59049, 512)
