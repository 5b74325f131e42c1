"""Which encoder a model argument names, where it runs, and the key the embedding cache knows it by."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

import mucon
from mucon.encoders import Encoder
from mucon.precision import checked_device

def resolve_encoder(model: str | os.PathLike | Encoder, device: str | torch.device = "cpu") -> Encoder:
    """The encoder of a checkpoint (via ``mucon.load``) or an ``Encoder`` itself, on ``device``, in eval mode.

    Eval mode matters: batch-norm then uses its running statistics, so a clip's embedding does not
    depend on what else is in the batch.
    """
    device = checked_device(device)
    encoder = model if isinstance(model, Encoder) else mucon.load(model, device).encoder
    return encoder.to(device).eval()


def model_fingerprint(model: str | os.PathLike | Encoder) -> str:
    """A cache key for a model: a checkpoint's path, size and mtime, or a hash of an encoder's weights.

    Path and mtime are enough for checkpoints (hashing hundreds of MB on every run is not); an
    in-memory encoder has no file, so its class, settings and tensors are hashed.
    """
    if not isinstance(model, Encoder):
        path = Path(model).resolve()
        stat = path.stat()
        return f"checkpoint:{path}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(repr(model).encode())
    digest.update(f"{type(model).__qualname__}:{model.sample_rate}:{model.input_samples}:{model.dim}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"encoder:{digest.hexdigest()}"


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's tensors live (CPU for one without any, like a pure feature extractor)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")

