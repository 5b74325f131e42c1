"""mucon: contrastive learning of music audio representations."""

__version__ = "0.1.0"
