"""mucon: contrastive learning of music audio representations."""

__version__ = "0.1.0"


def load(path, device="cpu"):
    """The trained method stored in a checkpoint, in eval mode (see mucon.checkpoint.load)."""
    from mucon.checkpoint import load as load_checkpoint

    return load_checkpoint(path, device)
