import numpy as np
import pytest
import torch

import mucon
from mucon.config import load_config
from mucon.evaluation.baselines import HandcraftedFeatures, chance_scores, random_init_encoder
from mucon.methods import method_class

from conftest import CONFIGS

RATE = 16000


def test_handcrafted_features_are_mean_and_std_of_mfcc_and_chroma_per_window():
    features = HandcraftedFeatures(RATE)
    assert features.dim == 64 and features.input_samples == RATE
    frames = features(torch.randn(2, RATE) * 0.1)
    assert frames.shape == (2, 1, 64) and torch.isfinite(frames).all()
    assert (frames[:, 0, 32:] >= 0).all()  # the second half is standard deviations


@pytest.mark.parametrize("hz, pitch_class", [(261.63, 0), (440.0, 9), (196.0, 7)])
def test_chroma_of_a_pure_tone_peaks_at_its_pitch_class(hz, pitch_class):
    t = torch.arange(RATE) / RATE
    features = HandcraftedFeatures(RATE)(torch.sin(2 * torch.pi * hz * t).unsqueeze(0))
    chroma_mean = features[0, 0, 20:32]
    assert int(chroma_mean.argmax()) == pitch_class


def test_random_init_encoder_has_the_checkpoint_architecture_but_not_its_weights(tmp_path):
    config = load_config(CONFIGS / "clmr-cpu.yaml", ["encoder.params.input_samples=16000"])
    method = method_class(config.method_name)(config)
    with torch.no_grad():
        for parameter in method.parameters():
            parameter.add_(1.0)  # "trained" weights, away from any initialisation
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": method.state_dict(),
                "mucon": {"version": mucon.__version__, "config": config.to_dict(), "label_vocabulary": []}}, path)
    random = random_init_encoder(config.to_dict(), seed=0)
    trained = mucon.load(path).encoder
    assert type(random) is type(trained) and random.input_samples == trained.input_samples and random.dim == trained.dim
    assert not random.training
    assert not torch.allclose(random.to_frames.weight, trained.to_frames.weight)
    again = random_init_encoder(config.to_dict(), seed=0)
    for a, b in zip(random.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not np.allclose(random_init_encoder(config.to_dict(), seed=1).to_frames.weight.detach(), random.to_frames.weight.detach())


@pytest.mark.parametrize("task_type, targets, n_classes, expected", [
    ("multiclass", np.array([0, 0, 1, 2, 0]), 3, {"accuracy": 0.6, "macro_f1": 0.25}),  # class 0 always
    ("key", np.array([0, 0, 7, 2, 12]), 24, {"accuracy": 0.4, "weighted": (2 + 0.2) / 5}),  # C major: G 0, C minor 0.2
    ("multilabel", np.array([[1, 0], [0, 0], [1, 1], [0, 0]], np.float32), 2, {"roc_auc": 0.5, "pr_auc": (0.5 + 0.25) / 2}),
    ("regression", np.array([1.0, 2.0, 4.5], np.float32), 0, {"r2": 0.0}),
    ("retrieval", np.array(["a", "a", "b", "b", "b"]), 0,  # 4 others each: a has 1 hit, b 2
     {"map": (2 * 25 / 48 + 3 * (1 / 3 + 2 / 3 * 25 / 48)) / 5, "mean_rank_first_hit": (2 * 5 / 2 + 3 * 5 / 3) / 5,
      "precision_at_10": (2 * 0.1 + 3 * 0.2) / 5, "queries": 5}),
])
def test_chance_scores_are_the_best_answer_that_ignores_the_audio(task_type, targets, n_classes, expected):
    assert chance_scores(task_type, targets, n_classes) == pytest.approx(expected)
