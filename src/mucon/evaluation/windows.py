"""Clips cut into the windows an encoder embeds, and those windows embedded in shared batches.

Windows are ``encoder.input_samples`` long, the crop the encoder was trained on, so the network
always sees the input size its statistics were learnt from. A clip shorter than a window, or the
tail of a longer one, is zero-padded to a full window. A clip's embedding is the mean of its
window embeddings (each window already pooled by the encoder). A cap on the windows per clip (the
papers' "up to 64 chunks per track") keeps that many, evenly spaced over the whole clip, so a long
track costs no more than the cap and is still heard from start to end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mucon.encoders import Encoder
from mucon.evaluation.model_identity import module_device
from mucon.heap import keep_freed_heap


def count_windows(n_samples: int, window: int, hop: int) -> int:
    """Windows starting at 0, hop, 2 hop, ... until one reaches the end (at least one), each starting
    inside the clip: a hop longer than the window must not add windows of padding past the end."""
    reaching_the_end = 1 + max(0, -(-(n_samples - window) // hop))
    return min(reaching_the_end, 1 + max(0, n_samples - 1) // hop)


def window_centres(n_samples: int, window: int, hop: int) -> Tensor:
    """Where each window of ``frame_windows`` is centred, in samples: the middle of the audio it holds
    (a window padded past the end, or a short clip, is centred on its part inside the clip)."""
    starts = torch.arange(count_windows(n_samples, window, hop), dtype=torch.float64) * hop
    return (starts + torch.clamp(starts + window, max=n_samples)) / 2


def frame_windows(audio: Tensor, window: int, hop: int) -> Tensor:
    """``[..., T]`` -> ``[..., K, window]``: the last window (or a short clip) zero-padded at the end."""
    n_windows = count_windows(audio.shape[-1], window, hop)
    padded_length = (n_windows - 1) * hop + window
    audio = torch.nn.functional.pad(audio, (0, padded_length - audio.shape[-1]))
    return audio.unfold(-1, window, hop)


@torch.no_grad()
def embed_windows(encoder: Encoder, windows: Tensor, batch_size: int = 64, levels: Tensor | None = None) -> Tensor:
    """``[N, window]`` -> ``[N, D]`` pooled window embeddings, at most ``batch_size`` windows per forward.
    ``levels`` ``[N]``: the RMS of the track each window was cut from, for an encoder that scales by it
    (``Encoder.scales_by_item_level``); without them such an encoder levels each window by itself."""
    keep_freed_heap()  # each forward's activations reuse the last one's memory
    device = module_device(encoder)
    if not encoder.scales_by_item_level:
        levels = None
    outputs = [
        encoder.embed(
            windows[start : start + batch_size].to(device, torch.float32),
            None if levels is None else levels[start : start + batch_size].to(device, torch.float32),
        ).float()
        for start in range(0, windows.shape[0], batch_size)
    ]
    return torch.cat(outputs) if outputs else windows.new_zeros(0, encoder.dim)


def track_level(audio: Tensor) -> Tensor:
    """``[..., T]`` -> ``[...]``: the RMS of each whole track, the level an item-level frontend scales
    its windows by (as ``measure_levels`` does for a store's items in pretraining)."""
    return audio.double().square().mean(-1).sqrt().float()


def spread_windows(n_windows: int, max_windows: int | None) -> np.ndarray:
    """Indices of at most ``max_windows`` of ``n_windows`` windows, evenly spaced from the first to
    the last (all of them when there are no more than the cap, or no cap)."""
    if max_windows is None or n_windows <= max_windows:
        return np.arange(n_windows)
    return np.linspace(0, n_windows - 1, max_windows).round().astype(np.int64)  # spacing > 1: no repeats


class WindowBatcher:
    """Clips in, window embeddings out, in input order: windows of consecutive clips share forward
    passes, so a folder of short files still runs in full batches. At most about one batch plus
    one clip's windows is held at a time. ``max_windows`` caps the windows of a clip (see
    ``spread_windows``)."""

    def __init__(self, encoder: Encoder, hop: int, batch_size: int, max_windows: int | None = None):
        if max_windows is not None and max_windows < 1:
            raise ValueError(f"the windows per clip must be at least 1, got {max_windows}")
        self.encoder, self.hop, self.batch_size, self.max_windows = encoder, hop, batch_size, max_windows
        self.pending: list[tuple[Any, Tensor]] = []
        self.n_pending = 0

    def add(self, key: Any, waveform: Tensor) -> list[tuple[Any, Tensor]]:
        """Queue a clip ``[T]``; returns the ``(key, window embeddings [K, D])`` that a full batch finished."""
        waveform = torch.as_tensor(waveform, dtype=torch.float32)
        windows = frame_windows(waveform, self.encoder.input_samples, self.hop)
        windows = windows[torch.from_numpy(spread_windows(len(windows), self.max_windows))]
        level = track_level(waveform).expand(len(windows)) if self.encoder.scales_by_item_level else None
        self.pending.append((key, windows, level))
        self.n_pending += len(windows)
        return self.flush() if self.n_pending >= self.batch_size else []

    def flush(self) -> list[tuple[Any, Tensor]]:
        """Embed whatever is queued."""
        if not self.pending:
            return []
        pending, self.pending, self.n_pending = self.pending, [], 0
        embeddings = embed_windows(self.encoder, torch.cat([windows for _, windows, _ in pending]), self.batch_size,
                                   None if pending[0][2] is None else torch.cat([level for _, _, level in pending]))
        return list(zip([key for key, _, _ in pending], embeddings.cpu().split([len(w) for _, w, _ in pending])))


def hop_samples(encoder: Encoder, hop_seconds: float | None, default_fraction: float) -> int:
    """A hop in samples: ``hop_seconds`` if given, else ``default_fraction`` of the encoder's window."""
    hop = encoder.input_samples * default_fraction if hop_seconds is None else hop_seconds * encoder.sample_rate
    if hop < 1:
        raise ValueError(f"hop must be at least one sample, got {hop_seconds} s")
    return int(round(hop))

