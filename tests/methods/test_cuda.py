"""Every method's training step on a GPU: views, losses and the view generator all on the device."""

import pytest
import torch

from mucon.config import load_config
from mucon.data.synthetic import synthetic_batch
from mucon.demo import demo_presets
from mucon.methods import method_class

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@pytest.mark.parametrize("preset", demo_presets())
def test_a_training_step_runs_on_cuda_under_bf16_autocast_with_finite_gradients(preset):
    config = load_config(preset)
    method = method_class(config.method_name)(config).cuda()
    batch = synthetic_batch(method.data_request, 8, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, _ = method.compute_loss(batch)
    loss.backward()
    assert loss.device.type == "cuda" and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert method.view_generator.device.type == "cuda"
    gradients = [parameter.grad for parameter in method.parameters() if parameter.grad is not None]
    assert gradients and all(gradient.is_cuda and torch.isfinite(gradient).all() for gradient in gradients)
