"""Mixed precision: the choice a run makes, and the parts kept in float32 under bf16 autocast."""

import pytest
import torch

from mucon.audio.frontend import pemr_frontend
from mucon.losses import ContrastiveLoss, nt_xent_ids
from mucon.precision import resolve_precision


def test_auto_precision_is_bf16_mixed_exactly_where_the_cpu_has_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", "cpu")[0] == "bf16-mixed"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    precision, why = resolve_precision("auto", "cpu")
    assert precision == "32-true" and "lacks bf16" in why
    assert resolve_precision("16-mixed", "cpu") == ("16-mixed", "as configured")


def test_the_loss_and_the_log_mel_stay_float32_under_bf16_autocast():
    z = torch.randn(16, 32)
    ids = nt_xent_ids(8, 2)
    waveform = torch.randn(2, 22050)
    frontend = pemr_frontend()
    expected_loss, expected_mel = ContrastiveLoss(0.1)(z, ids), frontend(waveform)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, mel = ContrastiveLoss(0.1)(z.bfloat16(), ids), frontend(waveform)
    assert loss.dtype == mel.dtype == torch.float32
    torch.testing.assert_close(mel, expected_mel)
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-2)  # only z's rounding to bf16 differs
