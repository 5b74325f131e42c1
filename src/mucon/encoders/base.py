"""The encoder interface every method and evaluation codes against.

An encoder maps a batch of mono waveforms to a sequence of frame features ``[B, T, D]``; pooling to
one vector per clip is a separate, named step. Keeping the frames lets evaluation build timestamp
embeddings (HEAR) and lets a method choose where to pool, while ``embed`` gives the clip vector that
the papers' projection heads take.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Pooling = Literal["mean", "max"]


def pool_frames(frames: Tensor, pooling: Pooling) -> Tensor:
    """Reduce ``[B, T, D]`` frames over time to ``[B, D]``."""
    if pooling == "mean":
        return frames.mean(dim=1)
    if pooling == "max":
        return frames.amax(dim=1)
    raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")


class Encoder(nn.Module):
    """Base class: waveform ``[B, samples]`` -> frames ``[B, T, D]``.

    Subclasses set ``sample_rate`` (the rate the weights expect), ``input_samples`` (the crop length
    the architecture was designed for, which HEAR windows use), ``dim`` (D), ``pooling`` and
    ``min_input_samples`` (the shortest input that still yields one frame; T grows with length).
    """

    sample_rate: int
    input_samples: int
    dim: int
    pooling: Pooling

    def forward(self, waveform: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def min_input_samples(self) -> int:
        raise NotImplementedError

    def compile_network(self) -> None:
        """Compile the network for training (``trainer.compile``): inductor fuses the memory-bound batch
        norm, ReLU and pooling passes over the first layers' activations that dominate a CPU step. Only
        this instance's calls change; its weights, state dict and checkpoint are those of the eager network,
        so a checkpoint loads, embeds and exports uncompiled."""
        self.forward = torch.compile(self.forward, dynamic=False)

    def pool(self, frames: Tensor) -> Tensor:
        """``[B, T, D]`` -> ``[B, D]`` with this encoder's pooling."""
        return pool_frames(frames, self.pooling)

    @property
    def scales_by_item_level(self) -> bool:
        """Whether the frontend scales each input by its whole item's level (``waveform_level`` "item":
        COLA's and MSCOL's), so that a caller must bring each clip's item RMS with it."""
        return getattr(getattr(self, "frontend", None), "waveform_level", None) == "item"

    def embed(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        """One vector per clip: ``pool(forward(waveform))``; ``level``: each clip's whole item's RMS,
        for an encoder that scales by it (evaluation windows of a track are at the track's level, as
        pretraining crops are at their item's)."""
        return self.pool(self(waveform) if level is None else self(waveform, level))

    def check_input(self, waveform: Tensor) -> None:
        """Fail with a readable message instead of a shape error deep inside the network."""
        if waveform.dim() != 2:
            raise ValueError(f"expected a waveform batch [B, samples], got shape {tuple(waveform.shape)}")
        if waveform.shape[-1] < self.min_input_samples:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_input_samples} samples at "
                f"{self.sample_rate} Hz, got {waveform.shape[-1]}"
            )


def check_frontend(frontend: nn.Module, sample_rate: int, n_mels: int | None = None) -> None:
    """A given frontend must match the rate and mel count the encoder declares, or ``dim`` and the
    rate the data is prepared at would silently disagree with what the network computes."""
    found_rate = getattr(frontend, "sample_rate", sample_rate)
    if found_rate != sample_rate:
        raise ValueError(f"the frontend works at {found_rate} Hz but the encoder is declared at {sample_rate} Hz")
    found_mels = getattr(frontend, "n_mels", n_mels)
    if n_mels is not None and found_mels != n_mels:
        raise ValueError(f"the frontend makes {found_mels} mel bands but the encoder is declared with n_mels={n_mels}")


def conv_bn_pool_relu(in_channels: int, out_channels: int, pool: int | tuple[int, int], bias: bool) -> list[nn.Module]:
    """A 3x3 conv + BN + ReLU + max-pool block, with the ReLU after the pool: the two commute (max and
    ReLU are both monotone), so outputs and gradients are those of the usual order while the ReLU and
    its backward pass run on a quarter of the activations instead of all of them."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.MaxPool2d(pool),
        nn.ReLU(),
    ]


class SpectrogramEncoder(Encoder):
    """A frontend (waveform -> ``[B, n_mels, frames]``) followed by a 2D backbone.

    The split exists because PEMR masks the spectrogram between the two steps:
    ``forward(w) == forward_spectrogram(frontend(w))``. Subclasses set ``min_frames``, the fewest
    spectrogram frames the backbone accepts.
    """

    frontend: nn.Module
    min_frames: int

    def forward_spectrogram(self, spec: Tensor) -> Tensor:
        raise NotImplementedError

    def spectrogram(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        """The frontend's output; ``level``: each waveform's item RMS, for a frontend that scales by it (see
        ``scales_by_item_level``)."""
        return self.frontend(waveform) if level is None else self.frontend(waveform, level)

    def forward(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        self.check_input(waveform)
        return self.forward_spectrogram(self.spectrogram(waveform, level))

    def compile_network(self) -> None:
        """The backbone only: PEMR and MSCOL call it on spectrograms they changed, and the frontend's FFTs
        gain nothing from compiling."""
        self.forward_spectrogram = torch.compile(self.forward_spectrogram, dynamic=False)

    def embed_spectrogram(self, spec: Tensor) -> Tensor:
        """One vector per clip from a frontend output: ``pool(forward_spectrogram(spec))``."""
        return self.pool(self.forward_spectrogram(spec))

    @property
    def min_input_samples(self) -> int:
        """Shortest waveform whose spectrogram has ``min_frames`` frames.

        Found by asking the frontend (bisection on silent input) rather than assuming its padding
        and centring conventions; computed once and cached.
        """
        cached = getattr(self, "_min_input_samples", None)
        if cached is None:
            cached = smallest_length_with_frames(self.frontend, self.min_frames)
            self._min_input_samples = cached
        return cached


@torch.no_grad()
def smallest_length_with_frames(module: nn.Module, min_frames: int, frame_axis: int = -1) -> int:
    """The shortest waveform ``module`` turns into ``min_frames`` frames along ``frame_axis``, by bisection."""
    tensors = [*module.parameters(), *module.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")

    def frames_for(length: int) -> int:
        try:
            return module(torch.zeros(1, length, device=device)).shape[frame_axis]
        except (RuntimeError, ValueError):  # too short for the frontend's own window
            return 0

    high = 1
    while frames_for(high) < min_frames:
        high *= 2
    low = high // 2  # frames_for(low) < min_frames, or low == 0
    while high - low > 1:
        middle = (low + high) // 2
        if frames_for(middle) >= min_frames:
            high = middle
        else:
            low = middle
    return high
