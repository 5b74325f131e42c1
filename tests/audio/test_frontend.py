"""Log-mel front ends: the filterbank against a plain numpy reference, the frame conventions that give
the papers' shapes, and the two log scales."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mucon.audio.frontend import (
    COLA_CROP_SAMPLES,
    PEMR_CROP_SAMPLES,
    LogMelSpectrogram,
    cola_frontend,
    hz_to_slaney_mel,
    mel_filterbank,
    myna_frontend,
    pemr_frontend,
)


def htk_hz_to_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def htk_mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def slaney_hz_to_mel(f):
    return f / (200.0 / 3.0) if f < 1000.0 else 15.0 + math.log(f / 1000.0) / (math.log(6.4) / 27.0)


def slaney_mel_to_hz(m):
    return m * 200.0 / 3.0 if m < 15.0 else 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27.0)


def reference_filterbank(n_freqs, n_mels, sample_rate, f_min, f_max, hz_to_mel=htk_hz_to_mel,
                         mel_to_hz=htk_mel_to_hz, unit_area=False):
    """Mel triangles (HTK's by default; Slaney's of unit area as librosa's ``norm="slaney"`` and nnAudio's
    ``norm=1``), written the slow obvious way."""
    low_mel, high_mel = hz_to_mel(f_min), hz_to_mel(f_max)
    edges = [mel_to_hz(low_mel + i * (high_mel - low_mel) / (n_mels + 1)) for i in range(n_mels + 2)]
    weights = np.zeros((n_freqs, n_mels))
    for k in range(n_freqs):
        f = k * (sample_rate / 2) / (n_freqs - 1)
        for m in range(n_mels):
            left, centre, right = edges[m], edges[m + 1], edges[m + 2]
            scale = 2.0 / (right - left) if unit_area else 1.0
            if left < f <= centre:
                weights[k, m] = (f - left) / (centre - left) * scale
            elif centre < f < right:
                weights[k, m] = (right - f) / (right - centre) * scale
    return weights


@pytest.mark.parametrize(
    ("n_freqs", "n_mels", "sample_rate", "f_min", "f_max"),
    [(129, 128, 22050, 0.0, 11025.0), (513, 64, 16000, 60.0, 7800.0), (257, 40, 16000, 0.0, 8000.0)],
)
def test_mel_filterbank_matches_numpy_reference(n_freqs, n_mels, sample_rate, f_min, f_max):
    ours = mel_filterbank(n_freqs, n_mels, sample_rate, f_min, f_max).numpy()
    reference = reference_filterbank(n_freqs, n_mels, sample_rate, f_min, f_max)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


@pytest.mark.parametrize(("n_freqs", "n_mels", "sample_rate"), [(1025, 128, 16000), (257, 40, 22050)])
def test_slaney_filterbank_matches_numpy_reference(n_freqs, n_mels, sample_rate):
    ours = mel_filterbank(n_freqs, n_mels, sample_rate, 0.0, sample_rate / 2, mel_scale="slaney").numpy()
    reference = reference_filterbank(n_freqs, n_mels, sample_rate, 0.0, sample_rate / 2, slaney_hz_to_mel,
                                     slaney_mel_to_hz, unit_area=True)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-9)


def test_slaney_scale_is_linear_to_15_mels_at_1_khz_then_27_mels_per_factor_6_4():
    mels = hz_to_slaney_mel(torch.tensor([500.0, 1000.0, 6400.0], dtype=torch.float64))
    torch.testing.assert_close(mels, torch.tensor([7.5, 15.0, 42.0], dtype=torch.float64))


def test_myna_frontend_takes_log1p_and_gives_196_frames_for_the_release_crop():
    frontend = myna_frontend()
    waveform = torch.randn(1, 100_000) * 0.1
    features = frontend(waveform)
    assert features.shape == (1, 128, 196)
    power = torch.fft.rfft(torch.nn.functional.pad(waveform.unsqueeze(1), (1024, 1024), mode="reflect").squeeze(1)
                           .unfold(-1, 2048, 512) * torch.hann_window(2048), n=2048).abs().pow(2)
    torch.testing.assert_close(features, torch.log1p(power @ frontend.filterbank).transpose(1, 2), rtol=1e-4, atol=1e-4)


def test_sine_lands_in_the_band_centred_nearest_to_it():
    frontend = cola_frontend()
    mel_edges = np.linspace(2595 * np.log10(1 + 60 / 700), 2595 * np.log10(1 + 7800 / 700), 66)
    centres = (700.0 * (10 ** (mel_edges / 2595) - 1))[1:-1]
    time = torch.arange(COLA_CROP_SAMPLES) / 16000
    for f in (150.0, 440.0, 1000.0, 3000.0, 6500.0):
        features = frontend(torch.sin(2 * math.pi * f * time).unsqueeze(0))
        assert features.mean(dim=-1).argmax().item() == int(np.abs(centres - f).argmin())


def test_pemr_preset_gives_128_by_462():
    frontend = pemr_frontend()
    assert frontend(torch.randn(4, PEMR_CROP_SAMPLES)).shape == (4, 128, 462)
    assert frontend.n_frames(PEMR_CROP_SAMPLES) == 462


def test_pemr_release_filterbank_is_torchaudios_16_khz_one_on_22050_hz_audio():
    # the release's bank reads FFT bin k as k x 8000 / 128 Hz while it holds k x 11025 / 128 Hz: a band
    # nominally centred at f really listens at f x 22050 / 16000, so a 1 kHz sine lands in a lower band
    release = pemr_frontend(filterbank_sample_rate=16000)
    np.testing.assert_allclose(release.filterbank.numpy(), reference_filterbank(129, 128, 16000, 0.0, 8000.0), atol=1e-6)
    own = pemr_frontend()
    np.testing.assert_allclose(own.filterbank.numpy(), reference_filterbank(129, 128, 22050, 0.0, 11025.0), atol=1e-6)
    mel_edges = np.linspace(0.0, 2595 * np.log10(1 + 8000 / 700), 130)
    nominal_centres = (700.0 * (10 ** (mel_edges / 2595) - 1))[1:-1]
    sine = torch.sin(2 * math.pi * 1000.0 * torch.arange(PEMR_CROP_SAMPLES) / 22050).unsqueeze(0)
    band = release(sine).mean(dim=-1).argmax().item()
    assert abs(nominal_centres[band] * 22050 / 16000 - 1000.0) < 22050 / 256  # within one FFT bin
    assert band < own(sine).mean(dim=-1).argmax().item()


def test_cola_preset_gives_64_by_98_for_one_second():
    frontend = cola_frontend()
    assert COLA_CROP_SAMPLES == 16000
    assert frontend(torch.randn(4, COLA_CROP_SAMPLES)).shape == (4, 64, 98)
    assert frontend.n_frames(COLA_CROP_SAMPLES) == 98


def test_centred_frames_equal_torch_stft():
    frontend = LogMelSpectrogram(22050, n_fft=256, hop_length=128, n_mels=128)
    x = torch.randn(2, 5000)
    power = torch.stft(x, 256, 128, window=torch.hann_window(256), return_complex=True).abs().square()
    expected = 10 * torch.log10((frontend.filterbank.T @ power).clamp(min=1e-10))
    assert torch.allclose(frontend(x), expected, atol=1e-3, rtol=1e-4)


def test_db_and_log_scales_of_silence():
    silence = torch.zeros(1, 4096)
    db = LogMelSpectrogram(16000, n_fft=512, n_mels=32, scale="db")(silence)
    log = LogMelSpectrogram(16000, n_fft=512, n_mels=32, scale="log")(silence)
    assert torch.allclose(db, torch.full_like(db, -100.0))
    assert torch.allclose(log, torch.full_like(log, math.log(1e-5)))


def test_top_db_floors_relative_to_each_example():
    x = torch.randn(2, 8000) * torch.tensor([[1.0], [1e-3]])
    features = LogMelSpectrogram(16000, n_fft=512, n_mels=32, top_db=40.0)(x)
    span = features.amax(dim=(1, 2)) - features.amin(dim=(1, 2))
    assert (span <= 40.0 + 1e-4).all()


def test_waveform_normalisation_removes_level():
    x = torch.randn(3, COLA_CROP_SAMPLES)
    frontend = cola_frontend()
    assert torch.allclose(frontend(x), frontend(37.0 * x), atol=1e-4, rtol=1e-5)
    assert torch.isfinite(frontend(torch.zeros(1, COLA_CROP_SAMPLES))).all()


def test_batch_rows_are_independent_and_leading_dims_kept():
    frontend = pemr_frontend()
    x = torch.randn(2, 3, 22050)
    batched = frontend(x)
    assert batched.shape == (2, 3, 128, frontend.n_frames(22050))
    assert torch.allclose(batched[1, 2], frontend(x[1, 2].unsqueeze(0))[0], atol=1e-4, rtol=1e-5)


def test_buffers_follow_dtype_and_device_and_stay_out_of_state_dict():
    frontend = pemr_frontend().to(torch.float64)
    assert frontend.filterbank.dtype == torch.float64
    features = frontend(torch.randn(2, PEMR_CROP_SAMPLES, dtype=torch.float64))
    assert features.dtype == torch.float64
    assert frontend.state_dict() == {}


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        LogMelSpectrogram(16000, n_fft=512, scale="linear")
    with pytest.raises(ValueError):
        LogMelSpectrogram(16000, n_fft=256, win_length=400)
    with pytest.raises(ValueError):
        mel_filterbank(257, 40, 16000, 0.0, 9000.0)
