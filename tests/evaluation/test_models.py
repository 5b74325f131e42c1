import torch

import mucon
import mucon.checkpoint
from mucon.config import load_config
from mucon.evaluation.models import resolve_models
from mucon.methods import method_class

from conftest import CONFIGS


def test_each_checkpoint_is_read_once_for_its_encoder_run_step_and_random_init_twin(tmp_path, monkeypatch):
    config = load_config(CONFIGS / "clmr-cpu.yaml", ["encoder.params.input_samples=8000"])
    method = method_class(config.method_name)(config)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": method.state_dict(), "global_step": 7,
                "mucon": {"version": mucon.__version__, "config": config.to_dict(), "label_vocabulary": []}}, path)
    reads = []
    read_checkpoint = mucon.checkpoint.read_checkpoint
    monkeypatch.setattr(mucon.checkpoint, "read_checkpoint", lambda where: reads.append(where) or read_checkpoint(where))

    entries = resolve_models({"clmr": path}, seed=0)

    assert reads == [path]
    pretrained, twin, handcrafted = entries
    assert (pretrained.kind, pretrained.step, pretrained.twin) == ("pretrained", 7, twin.name)
    assert torch.equal(pretrained.encoder.state_dict()["to_frames.weight"], method.encoder.state_dict()["to_frames.weight"])
    assert twin.kind == "random-init" and type(twin.encoder) is type(pretrained.encoder)
    assert handcrafted.kind == "handcrafted"
