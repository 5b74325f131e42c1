import torch
from embedding_clips import RATE

from mucon.encoders import build_encoder
from mucon.evaluation.model_identity import model_fingerprint


def test_fingerprint_changes_with_the_weights_not_with_the_object(encoder):
    copy = build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE)
    copy.load_state_dict(encoder.state_dict())
    assert model_fingerprint(copy) == model_fingerprint(encoder)
    with torch.no_grad():
        copy.to_frames.bias.add_(1.0)
    assert model_fingerprint(copy) != model_fingerprint(encoder)
