"""SmallCNN: a cheap log-mel CNN whose frame count grows with length and whose frontend is swappable."""

import pytest
import torch
from torch import nn

from mucon.encoders import SmallCNN


def test_small_cnn_default_frontend_is_64_mel_16khz_and_frames_are_dim_wide():
    encoder = SmallCNN().eval()
    waveform = torch.randn(2, 32000)
    with torch.no_grad():
        spec = encoder.frontend(waveform)
        frames = encoder(waveform)
    assert spec.shape[1] == 64
    assert frames.shape == (2, spec.shape[-1] // 16, 128)
    assert (encoder.sample_rate, encoder.input_samples, encoder.dim) == (16000, 32000, 128)


def test_small_cnn_frames_grow_with_input_length():
    encoder = SmallCNN().eval()
    with torch.no_grad():
        one_second = encoder(torch.randn(1, 16000)).shape[1]
        four_seconds = encoder(torch.randn(1, 64000)).shape[1]
    assert four_seconds >= 4 * one_second - 1 and four_seconds > one_second


def test_small_cnn_accepts_a_custom_frontend_and_sizes():
    class SampleFramesAsBands(nn.Module):
        def forward(self, waveform):
            return waveform.unfold(-1, 40, 20).transpose(1, 2)  # 40-sample frames stand in for 40 bands

    encoder = SmallCNN(n_mels=40, channels=(8, 16), dim=32, frontend=SampleFramesAsBands()).eval()
    with torch.no_grad():
        frames = encoder(torch.randn(3, 20 * 16 + 20))
    assert frames.shape == (3, 4, 32)
    assert encoder.min_input_samples == 20 * 4 + 20


def test_small_cnn_rejects_more_pooling_than_mel_bands():
    with pytest.raises(ValueError, match="n_mels"):
        SmallCNN(n_mels=8)


def test_small_cnn_takes_colas_frontend_by_name_from_a_config():
    from mucon.audio.frontend import cola_frontend

    encoder = SmallCNN(frontend="cola", input_samples=16000).eval()
    waveform = torch.randn(2, 16000)
    with torch.no_grad():
        torch.testing.assert_close(encoder.frontend(waveform), cola_frontend(16000)(waveform))
        assert encoder(waveform).shape == (2, 98 // 16, 128)
    with pytest.raises(ValueError, match="unknown frontend 'mfcc'"):
        SmallCNN(frontend="mfcc")
