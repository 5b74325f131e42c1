"""A method, encoder and head of the user's own, in a package outside mucon, named by import path: they train,
resume, load (mucon.load, HEAR) and evaluate as built-in ones, and the checkpoint says which code it needs."""

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import mucon
from mucon import hear
from mucon.checkpoint import CheckpointError, read_checkpoint
from mucon.cli import main
from mucon.encoders import build_encoder
from mucon.evaluation import evaluate, run
from mucon.evaluation.tasks import Task
from mucon.training import pretrain

from conftest import CONFIGS, tiny_run_config

RATE = 16000
METHOD_PATH, ENCODER_PATH, HEAD_PATH = "my_lab.methods:TwoCrops", "my_lab.encoders:FrameLinear", "my_lab.heads:Linear"

# The README's "Write your own method" example, as the README gives it: SimCLR on two crops.
README = Path(__file__).resolve().parents[2] / "README.md"
MY_LAB_METHODS = re.search(r"```python\n# my_lab/methods.py\n(.*?)```", README.read_text(), re.S).group(1)

MY_LAB_ENCODERS = '''
import torch

import mucon


class FrameLinear(mucon.Encoder):
    """Frames of ``frame`` samples through one linear layer: the least an encoder defines."""

    pooling = "mean"

    def __init__(self, sample_rate, input_samples=16000, dim=32, frame=400):
        super().__init__()
        self.sample_rate, self.input_samples, self.dim, self.frame = sample_rate, input_samples, dim, frame
        self.layer = torch.nn.Linear(frame, dim)

    @property
    def min_input_samples(self):
        return self.frame

    def forward(self, waveform):
        self.check_input(waveform)
        whole = waveform.shape[-1] // self.frame * self.frame
        return torch.relu(self.layer(waveform[:, :whole].unflatten(-1, (-1, self.frame))))
'''

MY_LAB_HEADS = '''
import torch


class Linear(torch.nn.Linear):
    """A linear projection of ``out_dim``: any torch module taking ``in_dim`` is a head."""

    def __init__(self, in_dim, out_dim=16):
        super().__init__(in_dim, out_dim)
'''


@pytest.fixture
def my_lab(tmp_path, monkeypatch):
    """The package my_lab (version 0.3) in a folder on sys.path, not installed, imported by no one yet."""
    package = tmp_path / "site" / "my_lab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.3"\n')
    (package / "methods.py").write_text(textwrap.dedent(MY_LAB_METHODS))
    (package / "encoders.py").write_text(textwrap.dedent(MY_LAB_ENCODERS))
    (package / "heads.py").write_text(textwrap.dedent(MY_LAB_HEADS))
    monkeypatch.syspath_prepend(str(package.parent))
    yield package
    forget_my_lab()


def forget_my_lab():
    """Unload my_lab, so that the next use imports it again (or fails to)."""
    for name in [name for name in sys.modules if name == "my_lab" or name.startswith("my_lab.")]:
        del sys.modules[name]


def user_method_config(tmp_path, store, run_dir, steps, encoder="small_cnn", head=None):
    """clmr-cpu's trainer with the user's method in place of CLMR, on ``encoder`` and ``head`` (default:
    clmr-cpu's)."""
    preset = yaml.safe_load((CONFIGS / "clmr-cpu.yaml").read_text())
    preset["method"] = {"name": METHOD_PATH, "crop_samples": 16000, "temperature": 0.3}
    preset["encoder"] = {"name": encoder, "params": {"input_samples": 16000}}
    if head:
        preset["head"] = {"name": head, "params": {}}
    path = tmp_path / "my-method.yaml"
    path.write_text(yaml.safe_dump(preset))
    return tiny_run_config(path, store, run_dir, steps)


def tone_task(root):
    """Low and high tones, three of each per split: a task any encoder can be scored on."""
    root.mkdir()
    t = np.arange(RATE // 2) / RATE
    paths = [f"t{i}.wav" for i in range(12)]
    for i, path in enumerate(paths):
        sf.write(root / path, (0.3 * np.sin(2 * np.pi * (880 if i % 2 else 110) * t)).astype(np.float32), RATE)
    splits = [["train", "train", "valid", "test"][(i // 2) % 4] for i in range(12)]
    return Task("register", "multiclass", root, tuple(paths), tuple(splits), tuple("hl"[i % 2] for i in range(12)))


def test_a_method_encoder_and_head_in_an_outside_package_train_resume_load_and_evaluate_by_import_path(
        tmp_path, tone_store, my_lab, monkeypatch):
    run_dir, mine = tmp_path / "run", {"encoder": ENCODER_PATH, "head": HEAD_PATH}
    pretrain(user_method_config(tmp_path, tone_store, run_dir, steps=1, **mine))
    last = pretrain(user_method_config(tmp_path, tone_store, run_dir, steps=2, **mine), resume=True)

    checkpoint = read_checkpoint(last)
    assert checkpoint["global_step"] == 2
    assert checkpoint["mucon"]["user_code"] == {METHOD_PATH: "0.3", ENCODER_PATH: "0.3", HEAD_PATH: "0.3"}
    loaded = mucon.load(last)
    assert type(loaded).__module__ == "my_lab.methods" and isinstance(loaded, mucon.Method)
    assert type(loaded.encoder).__module__ == "my_lab.encoders" and isinstance(loaded.encoder, mucon.Encoder)
    assert type(loaded.projector).__module__ == "my_lab.heads"
    assert loaded.params.temperature == 0.3
    clips = torch.randn(2, RATE) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(hear.get_scene_embeddings(clips, hear.load_model(str(last))),
                                   loaded.encoder.embed(clips), atol=1e-5, rtol=1e-4)

    monkeypatch.setattr(run, "draw_figures", lambda *args: [])
    results = evaluate({"mine": last}, [tone_task(tmp_path / "audio")], tmp_path / "report", heads=("linear",),
                       corruptions=["reverse"], baselines=False, resamples=20, verbose=False)
    assert results["models"]["mine"]["step"] == 2
    assert 0 <= results["scores"]["mine"]["register"]["linear"]["accuracy"] <= 1
    assert set(results["robustness"]["mine"]["register"]) == {"reverse"}


def test_a_user_method_setting_outside_its_declared_range_is_refused_naming_it(tmp_path, tone_store, my_lab):
    config = user_method_config(tmp_path, tone_store, tmp_path / "run", steps=1)
    config.method["temperature"] = 0.0
    with pytest.raises(ValueError, match=r"^method.temperature=0.0: must be > 0$"):
        pretrain(config)


def test_a_checkpoint_whose_method_package_is_missing_is_one_line_naming_the_import_path(
        tmp_path, tone_store, my_lab, capsys):
    last = pretrain(user_method_config(tmp_path, tone_store, tmp_path / "run", steps=1))
    forget_my_lab()
    sys.path.remove(str(my_lab.parent))

    with pytest.raises(CheckpointError, match=f"'{METHOD_PATH}'.*No module named 'my_lab'.*trained with my_lab version 0.3$"):
        mucon.load(last)
    capsys.readouterr()
    audio = tone_task(tmp_path / "audio").audio_root
    assert main(["embed", str(audio), "--checkpoint", str(last), "--out", str(tmp_path / "embeddings")]) == 2
    error = capsys.readouterr().err
    assert METHOD_PATH in error and error.count("\n") == 1


@pytest.mark.parametrize("name, problem", [
    ("my_lab.encoders:Missing", "module my_lab.encoders has no Missing"),
    ("collections:OrderedDict", "OrderedDict is not a subclass of mucon.encoders.base.Encoder"),
    ("no_such_lab.encoders:FrameLinear", "cannot import no_such_lab.encoders (ModuleNotFoundError"),
    ("my_lab.encoders:", "an import path is module:Class"),
])
def test_an_import_path_that_names_no_encoder_class_is_refused_in_one_line(my_lab, name, problem):
    with pytest.raises(ValueError, match=f"^encoder.name {name!r}: {re.escape(problem)}"):
        build_encoder(name, sample_rate=RATE)


def test_loading_with_another_version_of_the_users_package_warns_naming_both(tmp_path, tone_store, my_lab):
    last = pretrain(user_method_config(tmp_path, tone_store, tmp_path / "run", steps=1))
    forget_my_lab()
    (my_lab / "__init__.py").write_text('__version__ = "0.4"\n')

    with pytest.warns(UserWarning, match=f"{METHOD_PATH} was trained with my_lab version 0.3, and is loaded with version 0.4$"):
        mucon.load(last)
