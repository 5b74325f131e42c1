"""Random batches in the layout a ``DataRequest`` asks for, for benchmarks and device checks that time
or exercise a method's step without a store."""

from __future__ import annotations

import torch

from mucon.data.composition import labelled_clips_per_batch
from mucon.data.request import DataRequest


def synthetic_batch(request: DataRequest, batch_size: int, n_classes: int = 10,
                    device: torch.device | str = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    """int16 noise for every crop and stem, random presence flags and tags, the requested labelled share;
    item levels are the noise's RMS; row i is item i."""
    generator = torch.Generator().manual_seed(seed)

    def pcm(*shape: int) -> torch.Tensor:
        return torch.randint(-8000, 8000, shape, generator=generator, dtype=torch.int16)

    noise_rms = 8000 / 32768 / 3**0.5  # of uniform int16 noise in -8000 .. 8000
    batch = {"audio": pcm(batch_size, request.views, request.crop_samples), "index": torch.arange(batch_size)}
    if request.item_level:
        batch["level"] = torch.full((batch_size,), noise_rms)
    if request.sources:
        n_sources = 1 if request.source_per_batch else len(request.sources)
        batch["sources"] = pcm(batch_size, n_sources, request.crop_samples)
        if request.item_level:
            batch["source_level"] = torch.full((batch_size, n_sources), noise_rms)
        batch["source_present"] = torch.rand(batch_size, n_sources, generator=generator) < 0.7
        batch["source_index"] = torch.zeros(batch_size, dtype=torch.long)
    if request.labels:
        batch["labels"] = (torch.rand(batch_size, n_classes, generator=generator) < 0.2).to(torch.uint8)
        batch["labelled"] = torch.arange(batch_size) < labelled_clips_per_batch(request, batch_size)
    return {key: value.to(device) for key, value in batch.items()}
