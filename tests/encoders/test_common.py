"""Behaviour every encoder shares: registry, attributes, pooling, gradients, batch independence."""

import pytest
import torch

from mucon.encoders import Encoder, build_encoder, pool_frames
from mucon.encoders.base import conv_bn_pool_relu

# Small but valid settings: the design length of each encoder, stochastic depth off so that every
# parameter is exercised deterministically.
CONFIGS = {
    "samplecnn": {},
    "pemr_cnn": {},
    "efficientnet_b0": {"drop_path_rate": 0.0},
    "small_cnn": {"input_samples": 16000},
    "simple_vit": {"input_samples": 32000, "patch_sizes": [[16, 16], [128, 2]], "width": 32, "depth": 2, "heads": 2,
                   "head_dim": 16, "mlp_dim": 64},
}
EXPECTED_POOLING = {"samplecnn": "mean", "pemr_cnn": "max", "efficientnet_b0": "max", "small_cnn": "mean", "simple_vit": "mean"}
EXPECTED_DIM = {"samplecnn": 512, "pemr_cnn": 512, "efficientnet_b0": 1280, "small_cnn": 128, "simple_vit": 64}
EXPECTED_RATE = {"samplecnn": 22050, "pemr_cnn": 22050, "efficientnet_b0": 16000, "small_cnn": 16000, "simple_vit": 16000}


# Module scope: building once and reusing one input shape per encoder keeps oneDNN from compiling
# new convolution kernels for every test, which dominates the run time on CPU.
@pytest.fixture(scope="module", params=sorted(CONFIGS))
def named_encoder(request):
    torch.manual_seed(0)
    return request.param, build_encoder(request.param, **CONFIGS[request.param])


def test_registry_builds_an_encoder_with_rate_length_and_dim(named_encoder):
    name, encoder = named_encoder
    assert isinstance(encoder, Encoder)
    assert encoder.sample_rate == EXPECTED_RATE[name]
    assert encoder.dim == EXPECTED_DIM[name]
    assert encoder.min_input_samples <= encoder.input_samples


def test_design_length_input_gives_frames_of_dim_features(named_encoder):
    _, encoder = named_encoder
    with torch.no_grad():
        frames = encoder.eval()(torch.randn(2, encoder.input_samples))
    assert frames.dim() == 3 and frames.shape[0] == 2 and frames.shape[2] == encoder.dim
    assert frames.shape[1] >= 1


def test_pool_is_the_encoders_documented_mean_or_max_and_embed_pools_forward(named_encoder):
    name, encoder = named_encoder
    frames = torch.randn(2, 5, encoder.dim)
    expected = frames.mean(dim=1) if EXPECTED_POOLING[name] == "mean" else frames.amax(dim=1)
    torch.testing.assert_close(encoder.pool(frames), expected)

    waveform = torch.randn(2, encoder.input_samples)
    with torch.no_grad():
        encoder.eval()
        torch.testing.assert_close(encoder.embed(waveform), encoder.pool(encoder(waveform)))


def test_gradients_reach_every_parameter(named_encoder):
    _, encoder = named_encoder
    encoder.train()
    embedding = encoder.embed(torch.randn(2, encoder.input_samples))
    (embedding * torch.randn_like(embedding)).sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_items_in_eval_mode_do_not_depend_on_the_rest_of_the_batch(named_encoder):
    _, encoder = named_encoder
    encoder.eval()
    batch = torch.randn(2, encoder.input_samples)
    with torch.no_grad():
        together = encoder(batch)
        alone = torch.cat([encoder(batch[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def test_pool_frames_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling"):
        pool_frames(torch.randn(1, 2, 3), "median")


def test_build_encoder_rejects_unknown_names_and_lists_the_known_ones():
    with pytest.raises(ValueError, match="samplecnn"):
        build_encoder("resnet50")


@pytest.mark.parametrize("pool", [2, (2, 4)])
def test_a_block_with_the_relu_after_the_pool_computes_the_usual_order_and_its_gradients(pool):
    torch.manual_seed(0)
    block = torch.nn.Sequential(*conv_bn_pool_relu(3, 8, pool, bias=True))
    conv, norm, max_pool, relu = block
    usual = torch.nn.Sequential(conv, norm, relu, max_pool)
    x = torch.randn(4, 3, 16, 40)
    grads = []
    for network in (block, usual):
        network.zero_grad()
        out = network(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in network.parameters()]))
    (ours, our_grads), (theirs, their_grads) = grads
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    for mine, reference in zip(our_grads, their_grads):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-6)
