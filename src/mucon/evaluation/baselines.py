"""Reference points for every result table: what would one get without pretraining?

- ``random_init_encoder``: the checkpoint's own architecture with random weights. The gap to the
  pretrained model is what contrastive training added (a random CNN is a surprisingly strong
  feature extractor, which is why this row matters).
- ``HandcraftedFeatures``: MFCC and chroma statistics, the classic timbre and harmony summary.
- ``chance_scores``: what an answer that ignores the audio scores on the same test items.

The first two are ``Encoder`` objects, so they flow through the same windows, probes and report as
any checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mucon.audio.frontend import mel_filterbank
from mucon.encoders import Encoder, build_run_encoder
from mucon.evaluation.metrics import random_ranking_means
from mucon.evaluation.tasks import score_predictions
from mucon.precision import full_precision


def random_init_encoder(run_config: Mapping, seed: int = 0) -> Encoder:
    """The encoder of a checkpoint's run config (``checkpoint["mucon"]["config"]``: same name,
    parameters and rate) with freshly initialised weights."""
    from mucon.config import RunConfig, from_dict

    config = from_dict(RunConfig, run_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_run_encoder(config)
    return encoder.eval()


def chance_scores(task_type: str, targets: np.ndarray, n_classes: int) -> dict[str, float]:
    """The figures of the best answer that ignores the audio, on the scored items (``Task.targets``):
    the items' majority class (multiclass, key; a train split's majority can only score less), one
    score for every tag (ROC-AUC 0.5, PR-AUC the tags' prior rates), the items' mean (R² 0), and a
    random ranking's expectation (retrieval). A probe that does not beat it has learnt nothing usable."""
    if len(targets) == 0:
        return {}
    if task_type == "retrieval":
        return random_ranking_means(targets)
    if task_type in ("multiclass", "key"):
        predictions = np.zeros((len(targets), n_classes))
        predictions[:, np.bincount(targets, minlength=n_classes).argmax()] = 1.0
    elif task_type == "multilabel":
        predictions = np.zeros_like(targets)
    else:  # regression: the mean, computed as R² computes it, scores exactly 0
        predictions = np.asarray(targets, np.float64).reshape(len(targets), -1).mean(axis=0).repeat(len(targets))
    return score_predictions(task_type, targets, predictions)


def _dct_matrix(n_inputs: int, n_outputs: int) -> Tensor:
    """Orthonormal DCT-II ``[n_inputs, n_outputs]``: log-mel frames @ it = MFCCs."""
    n = torch.arange(n_inputs, dtype=torch.float64).unsqueeze(1)
    k = torch.arange(n_outputs, dtype=torch.float64).unsqueeze(0)
    basis = torch.cos(math.pi / n_inputs * (n + 0.5) * k) * math.sqrt(2.0 / n_inputs)
    basis[:, 0] /= math.sqrt(2.0)
    return basis.to(torch.float32)


def _chroma_matrix(n_fft: int, sample_rate: int, low_hz: float = 55.0, high_hz: float = 5000.0) -> Tensor:
    """``[n_fft // 2 + 1, 12]``: each FFT bin between ``low_hz`` and ``high_hz`` folded onto its
    nearest pitch class (C = 0); bins outside carry little pitch information and are dropped."""
    frequencies = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    inside = (frequencies >= low_hz) & (frequencies <= min(high_hz, sample_rate / 2))
    semitones_from_a4 = torch.round(12.0 * torch.log2(frequencies.clamp(min=1.0) / 440.0)).long()
    pitch_class = (semitones_from_a4 + 9) % 12
    matrix = torch.zeros(frequencies.numel(), 12)
    matrix[inside.nonzero().squeeze(1), pitch_class[inside]] = 1.0
    return matrix


class HandcraftedFeatures(Encoder):
    """Per window: mean and standard deviation over STFT frames of 20 MFCCs and a 12-bin chroma.

    ~93 ms frames at 22.05 kHz (2048-point FFT, hop 512), 40 mel bands for the MFCCs; chroma is
    the power per pitch class, each frame scaled to a maximum of 1 so it describes harmony, not
    level. D = 2 x (20 + 12) = 64. Windows default to 1 s: enough frames (~30) for stable statistics,
    and short clips (single notes) are not mostly zero padding.
    """

    pooling = "mean"

    def __init__(
        self,
        sample_rate: int = 22050,
        input_samples: int | None = None,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 40,
        n_mfcc: int = 20,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.input_samples = input_samples or sample_rate
        self.n_fft, self.hop_length = n_fft, hop_length
        self.dim = 2 * (n_mfcc + 12)
        n_freqs = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        mel = mel_filterbank(n_freqs, n_mels, sample_rate, 0.0, sample_rate / 2)
        self.register_buffer("mel", mel, persistent=False)
        self.register_buffer("dct", _dct_matrix(n_mels, n_mfcc), persistent=False)
        self.register_buffer("chroma", _chroma_matrix(n_fft, sample_rate), persistent=False)

    @property
    def min_input_samples(self) -> int:
        return self.n_fft // 2 + 1  # torch.stft's reflect padding needs more than half a frame

    @full_precision
    def forward(self, waveform: Tensor) -> Tensor:
        """``[B, samples]`` -> ``[B, 1, 64]``: one statistics vector per window."""
        self.check_input(waveform)
        spectrum = torch.stft(waveform, self.n_fft, self.hop_length, window=self.window, return_complex=True)
        power = spectrum.abs().square().transpose(1, 2)  # [B, frames, freqs]
        mfcc = torch.log(power @ self.mel + 1e-10) @ self.dct
        chroma = power @ self.chroma
        chroma = chroma / chroma.amax(dim=-1, keepdim=True).clamp(min=1e-10)
        frames = torch.cat([mfcc, chroma], dim=-1)
        statistics = torch.cat([frames.mean(dim=1), frames.std(dim=1, correction=0)], dim=-1)
        return statistics.unsqueeze(1)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, input_samples={self.input_samples}, "
            f"n_fft={self.n_fft}, hop_length={self.hop_length}"
        )
