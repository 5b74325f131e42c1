"""PEMR (Yao et al., WWW 2022): contrastive learning with positive-negative frame masks.

Two views, each its own random crop of the item (the release's per-view chain starts with
RandomResizedCrop; ``crop_per_view: false`` augments one crop twice, for ablations), go through the
CLMR chain (without pitch shift, as PEMR's final release) and the encoder's log-mel front end. A small transformer reads the mel frames of both views as tokens
after a learned [CLS] token; at its last layer the [CLS] queries of both views against the keys of
view j's frames score how much each frame of view j matters. With k = int(frames x mask_ratio):

- the positive is view j with its k LEAST important frames replaced by a learned [MASK] frame
  (what is left carries the music), and
- the negative is view j with every frame EXCEPT those k replaced (only the inessential remains).

The anchor is view i, unmasked. The selection is a sort, so no gradient reaches the transformer
through it: the transformer learns only from a BERT-style frame prediction task on both views
(weight 0.01), and the encoder and projector from the objective.

Objectives (``method.objective``):

- ``cross_correlation`` (the default): the authors' released code, Barlow-Twins style
  (``mucon.losses.cross_correlation``). It is the default because it is what the authors trained
  their released checkpoint with (300 epochs, batch 48): the one PEMR model there is to compare
  with came from it, and its every term and weight can be read off the code.
- ``contrastive``: the paper's description, InfoNCE in which the self-augmented negative is an
  extra, hard negative of its anchor next to the other clips of the global batch
  (``mucon.losses.hard_negative``; temperature 0.5, the release's unused setting).

Where METHODS.md and the release are silent or differ, mucon chooses:

- Heads span the full token width (3 heads of 128 for 128 mels, concatenated and projected back),
  as in the release, since 128 does not split into 3; scores are scaled by sqrt(head width).
- Tokens are each view's dB frames standardised over the view (mean 0, std 1). The release fed raw
  dB (around -100 .. +40), which saturates every attention softmax, so that the importance of all
  but a few frames is numerically zero and the mask is an arbitrary pick among them.
- The prediction task picks exactly round(15% x frames) frames per view (never [CLS]) and draws the
  80/10/10 split per frame, as BERT does (the release drew one branch per batch); a "random frame"
  is a frame of the same view; the Huber loss is averaged over the picked frames only.
- The [MASK] frame lives in the encoder's input (dB) and starts at 0 dB.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mucon.audio.chains import clmr_chain
from mucon.data.request import DataRequest
from mucon.encoders import SpectrogramEncoder
from mucon.losses import CrossCorrelationLoss, HardNegativeLoss
from mucon.methods.base import Method, MethodParams
from mucon.methods.clmr import two_view_crops, view_crops_request

OBJECTIVES = ("cross_correlation", "contrastive")
BERT_ZEROED, BERT_RANDOM = 0.8, 0.1  # of the picked frames; the remaining 10% are left as they are


@dataclasses.dataclass
class FrameMaskingParams(MethodParams):
    """The settings of PEMR's masks and frame prediction task (``FrameMasking``)."""

    mask_ratio: float = 0.1
    prediction_weight: float = 0.01
    prediction_share: float = 0.15
    huber_delta: float = 0.1
    transformer_layers: int = 3
    transformer_heads: int = 3
    feedforward_dim: int = 2048
    dropout: float = 0.1
    prediction_hidden_dim: int = 512


@dataclasses.dataclass
class PEMRParams(FrameMaskingParams):
    crop_samples: int = 59049
    objective: str = "cross_correlation"  # or "contrastive"; see the module docstring
    temperature: float = 0.5  # contrastive objective
    off_diagonal_weight: float = 5e-3  # cross-correlation objective
    negative_weight: float = 5e-3  # cross-correlation objective
    pitch_shift: bool = False
    crop_per_view: bool = True  # false: one crop, augmented twice (an ablation)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """``[length, dim]`` encodings of "Attention is all you need": sin on even, cos on odd channels."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return encoding


def lowest(scores: Tensor, k: int) -> Tensor:
    """``[B, T]`` bool, True at the k lowest scores of each row (ties broken by position)."""
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    return chosen.scatter(1, scores.argsort(dim=1, stable=True)[:, :k], True)


def replace_frames(spectrogram: Tensor, frames: Tensor, mask_frame: Tensor) -> Tensor:
    """``[B, n_mels, T]`` with the frames where ``frames [B, T]`` is True replaced by ``mask_frame [n_mels]``."""
    return torch.where(frames[:, None, :], mask_frame[None, :, None], spectrogram)


def frame_tokens(spectrogram: Tensor) -> Tensor:
    """``[B, n_mels, T]`` dB -> ``[B, T, n_mels]`` tokens, standardised over each spectrogram."""
    mean = spectrogram.mean(dim=(1, 2), keepdim=True)
    std = spectrogram.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
    return ((spectrogram - mean) / std).transpose(1, 2)


class FullWidthAttention(nn.Module):
    """Multi-head self-attention whose every head is as wide as a token (PEMR's release)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(dim, heads * dim)
        self.key = nn.Linear(dim, heads * dim)
        self.value = nn.Linear(dim, heads * dim)
        self.out = nn.Linear(heads * dim, dim)

    def split_heads(self, projection: nn.Linear, x: Tensor) -> Tensor:
        """``[B, L, dim]`` -> ``[B, heads, L, dim]``."""
        return projection(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (self.split_heads(projection, x) for projection in (self.query, self.key, self.value))
        context = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(context.transpose(1, 2).flatten(2))


class TransformerLayer(nn.Module):
    """Post-norm encoder layer: x = LN(x + attention(x)); x = LN(x + feed-forward(x))."""

    def __init__(self, dim: int, heads: int, feedforward_dim: int, dropout: float):
        super().__init__()
        self.attention = FullWidthAttention(dim, heads, dropout)
        self.feedforward = nn.Sequential(nn.Linear(dim, feedforward_dim), nn.ReLU(), nn.Linear(feedforward_dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.feedforward_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attention_norm(x + self.dropout(self.attention(x)))
        return self.feedforward_norm(x + self.dropout(self.feedforward(x)))


class FrameTransformer(nn.Module):
    """The mask generator: [CLS] + frame tokens + sinusoidal positions through a transformer."""

    def __init__(self, dim: int, layers: int, heads: int, feedforward_dim: int, dropout: float):
        super().__init__()
        self.cls = nn.Parameter(torch.randn(dim))
        self.input_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(TransformerLayer(dim, heads, feedforward_dim, dropout) for _ in range(layers))

    def embed(self, frames: Tensor) -> Tensor:
        """``[B, T, dim]`` frames -> ``[B, T + 1, dim]`` tokens with [CLS] first and positions added."""
        tokens = torch.cat([self.cls.expand(frames.shape[0], 1, -1), frames], dim=1)
        return self.input_dropout(tokens + sinusoidal_positions(tokens.shape[1], tokens.shape[2], tokens.device))

    def forward(self, frames: Tensor) -> Tensor:
        """The last layer's output ``[B, T + 1, dim]``; position 0 is [CLS]."""
        x = self.embed(frames)
        for layer in self.layers:
            x = layer(x)
        return x

    @torch.no_grad()
    def importance(self, frames_i: Tensor, frames_j: Tensor) -> Tensor:
        """``[B, T]`` importance of view j's frames: at the last layer,
        softmax(q_cls_i K_j / sqrt(w)) + softmax(q_cls_j K_j / sqrt(w)), averaged over heads.

        Without gradient: the masks it selects are a sort, which has none to give.
        """
        x = self.embed(torch.cat([frames_i, frames_j]))
        for layer in self.layers[:-1]:
            x = layer(x)
        last = self.layers[-1].attention
        x_i, x_j = x.chunk(2)
        keys = last.split_heads(last.key, x_j[:, 1:])  # [B, heads, T, w]
        scale = keys.shape[-1] ** -0.5
        scores = sum((last.split_heads(last.query, side[:, :1]) @ keys.transpose(-1, -2) * scale).softmax(dim=-1)
                     for side in (x_i, x_j))  # [B, heads, 1, T]
        return scores.mean(dim=1).squeeze(1)


class FrameMasking:
    """PEMR's mask generator, its [MASK] frame and its frame prediction task, for a ``Method`` whose params
    are ``FrameMaskingParams``: PEMR, and a composed method's ``masked`` view."""

    def build_frame_masking(self) -> None:
        params, config = self.params, self.config
        if not 0.0 < params.mask_ratio < 1.0:
            raise ValueError(f"method.mask_ratio must lie in (0, 1), got {params.mask_ratio}")
        if not isinstance(self.encoder, SpectrogramEncoder):
            raise ValueError(f"PEMR masks spectrogram frames; encoder {config.encoder.name!r} has no spectrogram "
                             "front end (use pemr_cnn or small_cnn)")
        n_mels = self.encoder.frontend.n_mels
        self.transformer = FrameTransformer(n_mels, params.transformer_layers, params.transformer_heads,
                                            params.feedforward_dim, params.dropout)
        self.mask_frame = nn.Parameter(torch.zeros(n_mels))
        self.prediction_head = nn.Sequential(
            nn.Linear(n_mels, params.prediction_hidden_dim), nn.ReLU(), nn.Linear(params.prediction_hidden_dim, n_mels)
        )

    def masked_count(self, n_frames: int) -> int:
        k = int(n_frames * self.params.mask_ratio)
        if k < 1:
            raise ValueError(f"mask_ratio {self.params.mask_ratio} of {n_frames} frames masks no frame; "
                             "raise method.mask_ratio or method.crop_samples")
        return k

    def select(self, frames_i: Tensor, frames_j: Tensor) -> tuple[Tensor, Tensor]:
        """Importance ``[B, T]`` of view j's frames and the k least important ones ``[B, T]`` (bool)."""
        importance = self.transformer.importance(frames_i, frames_j)
        return importance, lowest(importance, self.masked_count(importance.shape[1]))

    def prediction_loss(self, frames: Tensor) -> Tensor:
        """BERT on frames: pick 15% of each sequence's frames; zero 80% of those, swap 10% for a random
        frame of the same sequence, keep 10%; predict the picked frames' original values (Huber)."""
        n, length, dim = frames.shape
        generator = self.view_generator
        device = generator.device
        picked = lowest(torch.rand(n, length, generator=generator, device=device),
                        max(1, round(self.params.prediction_share * length)))
        branch = torch.rand(n, length, generator=generator, device=device)
        donors = torch.randint(length, (n, length), generator=generator, device=device)
        random_frames = frames.gather(1, donors[..., None].expand(-1, -1, dim))
        corrupted = torch.where((picked & (branch < BERT_ZEROED))[..., None], torch.zeros_like(frames), frames)
        swapped = picked & (branch >= BERT_ZEROED) & (branch < BERT_ZEROED + BERT_RANDOM)
        corrupted = torch.where(swapped[..., None], random_frames, corrupted)
        predicted = self.prediction_head(self.transformer(corrupted)[:, 1:])
        return F.huber_loss(predicted[picked], frames[picked], delta=self.params.huber_delta)


class PEMR(FrameMasking, Method):
    Params = PEMRParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        params = self.params
        if params.objective not in OBJECTIVES:
            raise ValueError(f"method.objective must be one of {', '.join(OBJECTIVES)}, got {params.objective!r}")
        self.augment = clmr_chain(config.data.sample_rate, pitch_shift=params.pitch_shift)
        self.build_frame_masking()
        if params.objective == "contrastive":
            self.loss = HardNegativeLoss(params.temperature)
        else:
            self.loss = CrossCorrelationLoss(params.off_diagonal_weight, params.negative_weight)

    @property
    def data_request(self) -> DataRequest:
        return view_crops_request(self.params.crop_samples, self.params.crop_per_view)

    def compute_loss(self, batch):
        crop_i, crop_j = two_view_crops(self.audio(batch))
        spectrogram_i = self.encoder.frontend(self.augment(crop_i, self.view_generator))
        spectrogram_j = self.encoder.frontend(self.augment(crop_j, self.view_generator))
        frames_i, frames_j = frame_tokens(spectrogram_i), frame_tokens(spectrogram_j)
        prediction = self.prediction_loss(torch.cat([frames_i, frames_j]))
        _, dropped = self.select(frames_i, frames_j)
        anchors = self.project_spectrogram(spectrogram_i)
        positives = self.project_spectrogram(replace_frames(spectrogram_j, dropped, self.mask_frame))
        negatives = self.project_spectrogram(replace_frames(spectrogram_j, ~dropped, self.mask_frame))
        objective = self.loss(anchors, positives, negatives)
        loss = objective + self.params.prediction_weight * prediction
        return loss, {"objective": objective.detach(), "prediction": prediction.detach()}

    @torch.no_grad()
    def frame_masks(self, waveforms: Tensor) -> dict[str, Tensor]:
        """For pictures: the log-mel ``[B, n_mels, T]`` of each clip, its frame importance ``[B, T]``
        with the clip as both views, and the frames its positive masks ``[B, T]`` (the negative masks
        all the others)."""
        spectrogram = self.encoder.frontend(waveforms)
        frames = frame_tokens(spectrogram)
        importance, dropped = self.select(frames, frames)
        return {"spectrogram": spectrogram, "importance": importance, "positive_masked": dropped}
