"""`mucon export`: the exported encoder computes what the eager one computes, at lengths and batch sizes other
than the example it was traced with, and carries where it came from."""

from __future__ import annotations

import copy
import json

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
from mucon.export import (EmbeddingModel, ExportError, MaxPool1dThrough2d, export_onnx, export_program, export_torch,
                          file_sha256, input_feed, load_torch, onnx_metadata, program_metadata, with_stft)

PRESETS = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
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


def encoder_settings(preset: str) -> str:
    """What ``build_run_encoder`` builds the preset's encoder from, but its crop length (which changes no weight
    and no computation): presets that share it share an export."""
    config = load_config(preset, [])
    params = {name: value for name, value in dict(config.encoder.params).items() if name != "input_samples"}
    return json.dumps([config.encoder.name, config.data.sample_rate, params], sort_keys=True)


@pytest.fixture(scope="module")
def exports_by_encoder(tmp_path_factory):
    """One export per distinct preset encoder (seed 0 makes equal settings equal weights), made on first use."""
    exports = {}

    def export(preset: str):
        settings = encoder_settings(preset)
        if settings not in exports:
            exports[settings] = exported_both_ways(random_encoder(preset), tmp_path_factory.mktemp("export"))
        return exports[settings]

    return export


@pytest.mark.parametrize("preset", PRESETS)
def test_onnx_and_torch_export_of_each_preset_match_eager_at_two_lengths_and_two_batch_sizes(preset,
                                                                                             exports_by_encoder):
    encoder = random_encoder(preset)
    session, program, metadata = exports_by_encoder(preset)
    assert metadata.min_input_samples <= encoder.input_samples
    shortest, crop = metadata.min_input_samples, encoder.input_samples
    for batch in (1, 2):
        for length in (shortest, crop) if shortest < crop else (crop, crop + 1001):
            waveform = 0.3 * torch.randn(batch, length)
            inputs = [waveform, *([0.1 * torch.rand(batch) + 0.05] if encoder.scales_by_item_level else [])]
            with torch.no_grad():
                expected = [output.numpy() for output in EmbeddingModel(encoder)(*inputs)]
            from_onnx = session.run(None, dict(zip(metadata.inputs.split(","), [value.numpy() for value in inputs])))
            from_program = [output.detach().numpy() for output in program(*inputs)]
            assert expected[0].shape == (batch, encoder.dim) and expected[1].shape[::2] == (batch, encoder.dim)
            for found in (from_onnx, from_program):
                for output, reference in zip(found, expected):
                    assert_relatively_close(output, reference)


def test_an_exported_samplecnn_accepts_its_one_frame_crop_and_a_longer_input_of_several_frames(
        exports_by_encoder):
    _, program, metadata = exports_by_encoder("clmr")
    assert metadata.min_input_samples == 59049  # its crop length, one frame: refused before
    assert program(torch.zeros(1, 3 * 59049 + 5))[1].shape == (1, 3, 512)


def test_an_encoder_that_scales_by_its_items_level_exports_with_a_level_input_and_its_own_rms_as_default(
        exports_by_encoder):
    session, program, metadata = exports_by_encoder("cola-cpu")
    assert (metadata.inputs, [value.name for value in session.get_inputs()]) == ("waveform,level", ["waveform", "level"])
    waveform = 0.3 * torch.randn(2, 16000) * torch.tensor([[1.0], [0.1]])
    with torch.no_grad():
        own_item = random_encoder("cola-cpu").embed(waveform)  # each clip its own item: no level
    assert_relatively_close(program(*input_feed(metadata, waveform).values())[0].detach(), own_item)
    assert exports_by_encoder("clmr-cpu")[2].inputs == "waveform"


def test_max_pool_1d_through_2d_equals_max_pool_1d():
    signal = torch.randn(2, 4, 101, generator=torch.Generator().manual_seed(0))
    for settings in ({"kernel_size": 3}, {"kernel_size": 4, "stride": 2, "padding": 1, "ceil_mode": True},
                     {"kernel_size": 2, "dilation": 3}):
        pool = nn.MaxPool1d(**settings)
        through_2d = copy.deepcopy(pool)
        through_2d.__class__ = MaxPool1dThrough2d
        assert torch.equal(through_2d(signal), pool(signal))


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
    waveform, level = 0.3 * torch.randn(2, encoder.input_samples + 777), torch.tensor([0.05, 0.2])
    with torch.no_grad():
        expected = encoder.embed(waveform, level).numpy()
    feed = {name: value.numpy() for name, value in input_feed(metadata, waveform, level).items()}
    assert_relatively_close(session.run(["embedding"], feed)[0], expected)


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
