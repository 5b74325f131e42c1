"""Projection heads: map a pooled clip vector to the space the contrastive loss works in.

The loss acts on the head's output; evaluation uses the encoder's pooled vector before the head.
"""

from __future__ import annotations

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """SimCLR-style MLP: Linear -> [BatchNorm] -> ReLU -> Linear.

    CLMR, SemiSupCon and PEMR all use 512 -> 512 -> ReLU -> d without biases and without batch norm,
    hence the defaults; ``batch_norm=True`` gives the SimCLR-v2 variant.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, bias: bool = False, batch_norm: bool = False):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        layers = [nn.Linear(in_dim, hidden_dim, bias=bias)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(), nn.Linear(hidden_dim, out_dim, bias=bias)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class LinearHead(nn.Module):
    """One Linear layer with bias: SimpleViT's ``linear_head``, which Myna's release trains its loss on
    (``--num_outputs``, 50 by default) unless ``--proj_head`` asks for an MLP."""

    def __init__(self, in_dim: int, out_dim: int = 50):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class COLAHead(nn.Module):
    """COLA / MSCOL head: Linear -> LayerNorm -> tanh, bounding the embedding that the bilinear
    similarity a^T W p then compares (unbounded inputs would let the logits grow without limit)."""

    def __init__(self, in_dim: int, out_dim: int = 512):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.linear(x)).tanh()
