"""SampleCNN follows METHODS.md layer by layer and maps 3**10 samples to one 512-d frame."""

import pytest
import torch
from torch import nn

from mucon.encoders import SampleCNN


@pytest.fixture(scope="module")
def samplecnn():
    torch.manual_seed(0)
    return SampleCNN().eval()


def test_samplecnn_layer_structure_is_strided_stem_nine_pooled_blocks_and_1x1_conv(samplecnn):
    convs = [m for m in samplecnn.modules() if isinstance(m, nn.Conv1d)]
    pools = [m for m in samplecnn.modules() if isinstance(m, nn.MaxPool1d)]
    norms = [m for m in samplecnn.modules() if isinstance(m, nn.BatchNorm1d)]

    assert [c.out_channels for c in convs] == [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    assert [c.in_channels for c in convs] == [1, 128, 128, 128, 256, 256, 256, 256, 256, 256, 512]
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == (
        [(3, 3, 0)] + [(3, 1, 1)] * 9 + [(1, 1, 0)]
    )
    assert len(pools) == 9 and all(p.kernel_size == 3 and p.stride == 3 for p in pools)
    assert len(norms) == 11


@pytest.mark.parametrize("samples", [59049, 59535], ids=["clmr", "semisupcon"])
def test_samplecnn_design_lengths_give_one_512d_frame(samplecnn, samples):
    with torch.no_grad():
        frames = samplecnn(torch.randn(2, samples))
    assert frames.shape == (2, 1, 512)


def test_samplecnn_frames_grow_with_input_length(samplecnn):
    with torch.no_grad():
        frames = samplecnn(torch.randn(1, 3 * 59049))
    assert frames.shape == (1, 3, 512)


def test_samplecnn_reports_and_enforces_its_minimum_length(samplecnn):
    assert samplecnn.min_input_samples == 59049
    with pytest.raises(ValueError, match="at least 59049"):
        samplecnn(torch.randn(1, 59048))


def test_samplecnn_attributes_describe_its_input_and_output():
    encoder = SampleCNN(input_samples=59535)
    assert (encoder.sample_rate, encoder.input_samples, encoder.dim) == (22050, 59535, 512)
