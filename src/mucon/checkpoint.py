"""Loading a trained model back from its checkpoint, without executing code from the file."""

from __future__ import annotations

from pathlib import Path

import torch

from mucon.config import RunConfig, from_dict


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents, loaded with weights_only (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "mucon" not in checkpoint:
        raise ValueError(f"{path}: not a mucon checkpoint (no 'mucon' entry with its config)")
    return checkpoint


def load(path: str | Path, device: str | torch.device = "cpu"):
    """The trained method of a checkpoint, in eval mode; its `.encoder` gives frames and embeddings.

    The method is rebuilt from the config stored in the checkpoint, so a checkpoint is all one needs.
    """
    from mucon.methods import method_class

    checkpoint = read_checkpoint(path)
    config = from_dict(RunConfig, checkpoint["mucon"]["config"])
    method = method_class(config.method_name)(config, label_vocabulary=checkpoint["mucon"]["label_vocabulary"])
    method.load_state_dict(checkpoint["state_dict"])
    return method.to(device).eval()
