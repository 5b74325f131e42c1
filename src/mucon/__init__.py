"""mucon: contrastive learning of music audio representations."""

__version__ = "0.1.0"

# The public bases of a user's own method, encoder and chain (``method.name: my_lab.methods:MyMethod``), imported
# on first use so that ``import mucon`` stays light.
_PUBLIC_BASES = {"Method": "mucon.methods", "MethodParams": "mucon.methods.base", "Encoder": "mucon.encoders",
                 "Augmentation": "mucon.audio.augment"}


def __getattr__(name):
    if name in _PUBLIC_BASES:
        import importlib

        return getattr(importlib.import_module(_PUBLIC_BASES[name]), name)
    raise AttributeError(f"module 'mucon' has no attribute {name!r}")


def load(path, device="cpu"):
    """The trained method stored in a checkpoint, in eval mode (see mucon.checkpoint.load)."""
    from mucon.checkpoint import load as load_checkpoint

    return load_checkpoint(path, device)


__all__ = ["Augmentation", "Encoder", "Method", "MethodParams", "load"]
