"""`mucon export`: the exported encoder computes what the eager one computes, at lengths and batch sizes other
than the example it was traced with, and carries where it came from."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from conftest import CONFIGS
from mucon.audio.frontend import cola_frontend, pemr_frontend
from mucon.cli import main
from mucon.config import load_config
from mucon.encoders import build_run_encoder
from mucon.encoders.small_cnn import small_cnn_frontend
from mucon.export import (EmbeddingModel, ExportError, export_onnx, export_program, export_torch, file_sha256,
                          load_torch, onnx_metadata, program_metadata, with_stft)

CPU_PRESETS = sorted(path.stem for path in CONFIGS.glob("*-cpu.yaml"))
RELATIVE_TOLERANCE = 1e-4


def random_encoder(preset: str, seed: int = 0):
    """The preset's encoder with random weights and non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    encoder = build_run_encoder(load_config(preset, []))
    for module in encoder.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return encoder.eval()


def exported_both_ways(encoder, folder, stft="fft"):
    """(an onnxruntime session, the loaded torch.export module, the metadata) of ``encoder``."""
    program = export_program(encoder)
    metadata = program_metadata(program, encoder, "0" * 64, stft)
    export_onnx(program, folder / "encoder.onnx", metadata)
    export_torch(program, folder / "encoder.pt2", metadata)
    loaded, _ = load_torch(folder / "encoder.pt2")
    return onnxruntime.InferenceSession(str(folder / "encoder.onnx")), loaded.module(), metadata


def assert_relatively_close(found, expected) -> None:
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= RELATIVE_TOLERANCE * np.abs(expected).max()


@pytest.mark.parametrize("preset", CPU_PRESETS)
def test_onnx_and_torch_export_of_each_cpu_preset_match_eager_at_two_lengths_and_two_batch_sizes(preset, tmp_path):
    encoder = random_encoder(preset)
    session, program, metadata = exported_both_ways(encoder, tmp_path)
    lengths = (metadata.min_input_samples, encoder.input_samples + 1001)  # neither is the traced example's
    for batch in (1, 3):
        for length in lengths:
            waveform = 0.3 * torch.randn(batch, length)
            with torch.no_grad():
                expected = [output.numpy() for output in EmbeddingModel(encoder)(waveform)]
            from_onnx = session.run(None, {"waveform": waveform.numpy()})
            from_program = [output.detach().numpy() for output in program(waveform)]
            assert expected[0].shape == (batch, encoder.dim) and expected[1].shape[::2] == (batch, encoder.dim)
            for found in (from_onnx, from_program):
                for output, reference in zip(found, expected):
                    assert_relatively_close(output, reference)


@pytest.mark.parametrize("frontend", [small_cnn_frontend(), cola_frontend(), pemr_frontend()],
                         ids=["small_cnn", "cola", "pemr"])
def test_conv_stft_front_end_equals_the_fft_front_end_to_float32_rounding(frontend):
    waveform = 0.3 * torch.randn(3, 9001, generator=torch.Generator().manual_seed(0))
    conv = copy.deepcopy(frontend)
    conv.use_stft("conv")
    fft_magnitude, conv_magnitude = frontend._magnitude(waveform), conv._magnitude(waveform)
    assert (conv_magnitude - fft_magnitude).abs().max() <= 1e-5 * fft_magnitude.abs().max()
    fft_features, conv_features = frontend(waveform), conv(waveform)
    assert (conv_features - fft_features).abs().max() <= 1e-5 * fft_features.abs().max()


def test_conv_stft_encoder_exports_to_onnx_without_an_stft_or_dft_op_and_matches_the_fft_encoder(tmp_path):
    encoder = random_encoder("cola-cpu")
    session, _, metadata = exported_both_ways(with_stft(encoder, "conv"), tmp_path, stft="conv")
    op_types = {node.op_type for node in onnx.load(str(tmp_path / "encoder.onnx")).graph.node}
    assert not op_types & {"STFT", "DFT"} and "Conv" in op_types
    assert metadata.stft == "conv"
    waveform = 0.3 * torch.randn(2, encoder.input_samples + 777)
    with torch.no_grad():
        expected = encoder.embed(waveform).numpy()
    assert_relatively_close(session.run(["embedding"], {"waveform": waveform.numpy()})[0], expected)


def test_export_command_writes_both_files_with_the_checkpoints_metadata_and_prints_it(tmp_path, clmr_checkpoint,
                                                                                       capsys):
    onnx_path, torch_path = tmp_path / "clmr.onnx", tmp_path / "clmr.pt2"
    assert main(["export", str(clmr_checkpoint), "--onnx", str(onnx_path), "--torch", str(torch_path)]) == 0
    printed = capsys.readouterr().out
    digest = file_sha256(clmr_checkpoint)
    for metadata in (onnx_metadata(onnx_path), load_torch(torch_path)[1]):
        assert (metadata.checkpoint_sha256, metadata.sample_rate, metadata.input_samples, metadata.embedding_dim) \
            == (digest, 16000, 32000, 128)
        assert metadata.mucon_version in printed and metadata.stft == "fft"
    assert f"checkpoint_sha256: {digest}" in printed and "embedding_dim: 128" in printed


class DataDependentGate(nn.Module):
    """Branches on the values of its input: torch.export cannot trace that."""

    def forward(self, spec):
        return spec if spec.sum() > 0 else -spec


def test_an_encoder_that_cannot_be_exported_names_the_module_that_stops_it_in_one_line():
    encoder = random_encoder("clmr-cpu")
    encoder.input_norm = nn.Sequential(DataDependentGate(), encoder.input_norm)
    with pytest.raises(ExportError) as raised:
        export_program(encoder)
    message = str(raised.value)
    assert "\n" not in message and "encoder.input_norm.0 (DataDependentGate)" in message
    assert isinstance(raised.value, ValueError)  # what the command line prints in one line, exit status 2


class EigenvalueScale(nn.Module):
    """Scales by a sum of eigenvalues: torch.export traces it, but no ONNX function translates the op."""

    def forward(self, spec):
        return spec * torch.linalg.eigvalsh(torch.eye(2)).sum()


def test_an_encoder_with_an_op_onnx_cannot_translate_names_the_module_and_the_op_in_one_line(tmp_path):
    encoder = random_encoder("clmr-cpu")
    encoder.input_norm = nn.Sequential(EigenvalueScale(), encoder.input_norm)
    program = export_program(encoder)
    with pytest.raises(ExportError) as raised:
        export_onnx(program, tmp_path / "encoder.onnx", program_metadata(program, encoder, "0" * 64, "fft"))
    message = str(raised.value)
    assert "\n" not in message and "encoder.input_norm.0 (EigenvalueScale)" in message and "linalg_eigh" in message
    assert not (tmp_path / "encoder.onnx").exists()


def test_export_command_without_an_output_is_a_one_line_user_error(clmr_checkpoint, capsys):
    assert main(["export", str(clmr_checkpoint)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_onnx_export_without_onnxscript_installed_says_which_extra_to_install(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "onnxscript"
                        else find_spec(name, *rest))
    with pytest.raises(ExportError, match=r"pip install 'mucon\[export\]'"):
        export_onnx(None, tmp_path / "encoder.onnx", None)
