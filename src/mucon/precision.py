"""Mixed precision: which one a run uses, and the parts that must stay in float32; and whether the
device a command is asked to run on exists here.

bf16 autocast roughly halves a CPU training step where the CPU has bf16 instructions (avx512_bf16,
AMX). Convolutions and matmuls tolerate bf16; a log of small mel energies and a softmax over
logits divided by a temperature of 0.1 do not, so front ends and losses run in float32 inside it.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

AUTO = "auto"
# What an evaluation's encoders can run in: bf16 autocast or float32 (``auto``: as ``resolve_precision``).
EMBEDDING_PRECISIONS = (AUTO, "32-true", "bf16-mixed")
_HALF = (torch.float16, torch.bfloat16)


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (avx512_bf16 or AMX); elsewhere bf16 is emulated and slow."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, accelerator: str) -> tuple[str, str]:
    """Lightning's precision for a config value, and why. ``auto``: bf16-mixed where the device
    computes bf16 natively, else 32-true; any other value is Lightning's own and is kept."""
    if precision != AUTO:
        return precision, "as configured"
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", "the GPU supports bf16"
        return "32-true", "the GPU lacks bf16"
    if cpu_has_bf16():
        return "bf16-mixed", "this CPU has bf16 instructions (avx512_bf16/AMX)"
    return "32-true", "this CPU lacks bf16 instructions, so float32"


def full_precision(forward):
    """Decorate a module's ``forward`` to run outside autocast, half-precision inputs raised to float32."""

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        device = next((arg.device.type for arg in args if isinstance(arg, Tensor)), "cpu")
        with torch.autocast(device, enabled=False):
            args = [arg.float() if isinstance(arg, Tensor) and arg.dtype in _HALF else arg for arg in args]
            return forward(self, *args, **kwargs)

    return wrapper


def checked_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refused in one line where this machine has no such device
    (``--device cuda`` without CUDA failed with an AssertionError from inside torch)."""
    try:
        checked = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {str(device)!r}: {error}") from None
    if checked.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees no CUDA device here")
    if checked.type == "cuda" and checked.index is not None and checked.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    if checked.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees no MPS device here")
    return checked
