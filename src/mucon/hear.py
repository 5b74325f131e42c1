"""The HEAR 2021 API (https://hearbenchmark.com), so any mucon checkpoint runs in the HEAR suite.

Timestamp embeddings are WINDOW embeddings: windows of ``encoder.input_samples`` (the crop the
encoder was pretrained on) every ``hop_seconds`` (default half a window), each pooled by the
encoder and stamped at the centre of the audio it holds. Windows rather than the encoder's inner
frames, because the pooled window vector is what contrastive training shaped (the projection head
sees only it), and because frame rates differ wildly between encoders (SampleCNN gives one frame
per window) while windows behave the same for all. For HEAR's event tasks pass a smaller hop, e.g.
``load_model(path, hop_seconds=0.05)``, at a proportional cost.

Input of any length is accepted: windows start at 0 and every hop while inside the clip (a hop
longer than the window adds no window of padding past the end), and the last one (or a clip
shorter than one window) is zero-padded at the end; its timestamp is the centre of its part
inside the clip, so every timestamp lies within the clip. Scene embeddings are the mean of the
timestamp embeddings.
Audio is float in [-1, 1], or int16 PCM, which is scaled by 1/32768 to that range (other integer
types are refused: their scale is ambiguous). Zero clips, or clips of zero samples, are errors:
there is nothing to embed; so is audio holding NaN or Inf, which would embed to NaN (as files
holding them are refused by ``prepare`` and ``embed``).
The encoder runs in eval mode without gradients, in chunks of at most ``batch_size`` windows, so
each clip's embedding is independent of the rest of the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mucon.audio.io import NON_FINITE
from mucon.encoders import Encoder
from mucon.evaluation.model_identity import module_device, resolve_encoder
from mucon.evaluation.windows import embed_windows, frame_windows, hop_samples, track_level, window_centres


class HearModel(nn.Module):
    """An encoder with the attributes HEAR asks of a model and the windowing settings."""

    def __init__(self, encoder: Encoder, hop_seconds: float | None = None, batch_size: int = 64):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of windows, 1 or more; got {batch_size!r}")
        self.encoder = encoder.eval()
        self.sample_rate = encoder.sample_rate
        self.scene_embedding_size = encoder.dim
        self.timestamp_embedding_size = encoder.dim
        self.window_samples = encoder.input_samples
        self.hop_samples = hop_samples(encoder, hop_seconds, default_fraction=0.5)
        self.batch_size = batch_size


def load_model(
    model_file_path: str = "",
    *,
    hop_seconds: float | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> HearModel:
    """A mucon checkpoint as a HEAR model (mucon ships no default weights, so a path is required)."""
    if not model_file_path:
        raise ValueError("mucon.hear.load_model needs the path of a mucon checkpoint (.ckpt)")
    return HearModel(resolve_encoder(model_file_path, device), hop_seconds, batch_size)


def model_from_encoder(encoder: Encoder, *, hop_seconds: float | None = None, batch_size: int = 64) -> HearModel:
    """Any ``Encoder`` (random weights, hand-made features) behind the same API, for baselines and tests."""
    return HearModel(resolve_encoder(encoder, module_device(encoder)), hop_seconds, batch_size)


def _checked_audio(audio: Tensor) -> Tensor:
    """``audio`` as float waveforms in [-1, 1], or a ValueError saying what is wrong with it."""
    if audio.dim() != 2:
        raise ValueError(f"HEAR audio is [n_sounds, n_samples], got shape {tuple(audio.shape)}")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"HEAR audio is empty (shape {tuple(audio.shape)}): there is nothing to embed")
    if audio.dtype == torch.int16:
        return audio.float() / 32768.0
    if not audio.is_floating_point():
        raise ValueError(f"HEAR audio must be float in [-1, 1] or int16 PCM, got {audio.dtype}")
    non_finite = (~torch.isfinite(audio)).any(dim=1).nonzero().flatten().tolist()
    if non_finite:
        raise ValueError(f"HEAR audio holds {NON_FINITE} (sound(s) {non_finite}): they would embed to NaN")
    return audio


@torch.no_grad()
def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """``[n, samples]`` at ``model.sample_rate`` -> (embeddings ``[n, T, D]``, window centres ``[n, T]`` in ms)."""
    audio = _checked_audio(audio)
    model.eval()
    n_sounds = audio.shape[0]
    windows = frame_windows(audio, model.window_samples, model.hop_samples)  # [n, T, window]
    n_windows = windows.shape[1]
    levels = (track_level(audio).repeat_interleave(n_windows)  # a sound's windows at the sound's level
              if model.encoder.scales_by_item_level else None)
    embeddings = embed_windows(model.encoder, windows.reshape(n_sounds * n_windows, -1), model.batch_size, levels)
    centres = window_centres(audio.shape[1], model.window_samples, model.hop_samples)
    timestamps = (centres * 1000.0 / model.sample_rate).to(torch.float32).expand(n_sounds, n_windows)
    return embeddings.reshape(n_sounds, n_windows, -1).to(audio.device), timestamps.to(audio.device)


@torch.no_grad()
def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """``[n, samples]`` -> ``[n, D]``: the mean over time of the timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)


__all__ = [
    "HearModel",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
    "model_from_encoder",
]
