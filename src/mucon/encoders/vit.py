"""A SimpleViT on a log-mel spectrogram (Beyer et al. 2022, as vit-pytorch's ``SimpleViT``), Myna's encoder.

No class token and no learned positions: each patch's linear embedding plus a fixed 2-D sin-cos code of
its (band, time) place, pre-norm transformer blocks, mean pooling over the tokens. Fixed positions are
what let a method drop 90 % of the tokens (Myna) and the encoder then take any length at evaluation.
Several patch shapes may share the one transformer (Myna-Hybrid: 16 x 16 squares and 128 x 2 vertical
strips), each with its own patch embedding.

Frames: one per ``frame_span`` spectrogram frames (the widest patch), the mean of the tokens over that
span for each patch shape, the shapes' means concatenated; ``dim`` is ``width`` x the number of patch
shapes. The mean over frames is then exactly the release's mean over all tokens (each frame averages
equally many), and a hybrid's clip vector is the release's concatenation of both shapes' embeddings. The
encoder always sees every token; a masking method calls ``embed_kept_tokens`` instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mucon.encoders.base import SpectrogramEncoder, check_frontend


def sincos_positions(rows: int, columns: int, width: int, temperature: float = 10000.0) -> Tensor:
    """``[rows x columns, width]``, row-major: sines and cosines of the column then of the row at
    ``width // 4`` frequencies each, geometric from 1 to 1 / temperature (SimpleViT's code)."""
    if width % 4:
        raise ValueError(f"the ViT width must be a multiple of 4 for 2-D sin-cos positions, got {width}")
    row, column = torch.meshgrid(torch.arange(rows), torch.arange(columns), indexing="ij")
    frequencies = 1.0 / temperature ** (torch.arange(width // 4) / max(width // 4 - 1, 1))
    row = row.flatten()[:, None] * frequencies
    column = column.flatten()[:, None] * frequencies
    return torch.cat([column.sin(), column.cos(), row.sin(), row.cos()], dim=1)


class PatchEmbedding(nn.Module):
    """Cuts ``[B, bands, frames]`` into ``bands_per_patch x frames_per_patch`` patches, row-major over
    (band, time), and embeds each: LayerNorm -> Linear -> LayerNorm, plus its sin-cos position."""

    def __init__(self, bands_per_patch: int, frames_per_patch: int, width: int):
        super().__init__()
        self.bands_per_patch, self.frames_per_patch = bands_per_patch, frames_per_patch
        patch_size = bands_per_patch * frames_per_patch
        self.embed = nn.Sequential(nn.LayerNorm(patch_size), nn.Linear(patch_size, width), nn.LayerNorm(width))

    def forward(self, spec: Tensor) -> tuple[Tensor, int]:
        """(tokens ``[B, rows x columns, width]`` with positions, rows)."""
        batch, bands, frames = spec.shape
        rows, columns = bands // self.bands_per_patch, frames // self.frames_per_patch
        patches = (spec[:, : rows * self.bands_per_patch, : columns * self.frames_per_patch]
                   .reshape(batch, rows, self.bands_per_patch, columns, self.frames_per_patch)
                   .permute(0, 1, 3, 2, 4).reshape(batch, rows * columns, -1))
        tokens = self.embed(patches)
        return tokens + sincos_positions(rows, columns, tokens.shape[-1]).to(tokens), rows


class Attention(nn.Module):
    """Pre-norm multi-head self-attention without biases (SimpleViT's)."""

    def __init__(self, width: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.to_qkv = nn.Linear(width, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).view(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, -1))


class Transformer(nn.Module):
    """Residual pre-norm attention and feed-forward (LayerNorm -> Linear -> GELU -> Linear) blocks, then a
    final LayerNorm."""

    def __init__(self, width: int, depth: int, heads: int, head_dim: int, mlp_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList([Attention(width, heads, head_dim),
                           nn.Sequential(nn.LayerNorm(width), nn.Linear(width, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, width))])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        for attention, feed_forward in self.blocks:
            x = x + attention(x)
            x = x + feed_forward(x)
        return self.norm(x)


def kept_token_count(tokens: int, keep_share: float) -> int:
    """round(keep_share x tokens), at least one."""
    return max(1, round(keep_share * tokens))


class SimpleViT(SpectrogramEncoder):
    """``patch_sizes``: (bands, frames) of each patch shape, e.g. ``[[16, 16]]`` (Myna-Base),
    ``[[128, 2]]`` (Myna-Vertical) or both (Myna-Hybrid); every frame count must divide the largest.
    Sizes as ViT-S: ``width`` 384, ``depth`` 12, ``heads`` 6 of ``head_dim`` 64, ``mlp_dim`` 1536."""

    pooling = "mean"

    def __init__(
        self,
        sample_rate: int = 16000,
        input_samples: int = 100000,
        n_mels: int = 128,
        patch_sizes: list[list[int]] | tuple[tuple[int, int], ...] = ((16, 16),),
        width: int = 384,
        depth: int = 12,
        heads: int = 6,
        head_dim: int = 64,
        mlp_dim: int = 1536,
        frontend: nn.Module | str = "myna",
    ):
        super().__init__()
        from mucon.audio.frontend import myna_frontend

        if frontend == "myna":
            frontend = myna_frontend(sample_rate, n_mels)
        elif isinstance(frontend, str):
            raise ValueError(f"unknown frontend {frontend!r} for simple_vit; it takes 'myna' or a module")
        self.frontend = frontend
        check_frontend(self.frontend, sample_rate, n_mels)
        self.patch_sizes = [tuple(int(size) for size in patch) for patch in patch_sizes]
        if not self.patch_sizes or any(len(patch) != 2 or not 0 < patch[0] <= n_mels for patch in self.patch_sizes):
            raise ValueError(f"patch_sizes must be (bands <= n_mels={n_mels}, frames) pairs, got {patch_sizes}")
        self.frame_span = max(frames for _, frames in self.patch_sizes)
        if any(self.frame_span % frames for _, frames in self.patch_sizes):
            raise ValueError(f"every patch's frame count must divide the largest ({self.frame_span}), got {patch_sizes}")
        self.sample_rate = sample_rate
        self.input_samples = input_samples
        self.width = width
        self.dim = width * len(self.patch_sizes)
        self.min_frames = self.frame_span
        self.patch_embeddings = nn.ModuleList(PatchEmbedding(bands, frames, width) for bands, frames in self.patch_sizes)
        self.transformer = Transformer(width, depth, heads, head_dim, mlp_dim)

    def tokens(self, spec: Tensor, patching: int) -> tuple[Tensor, int]:
        """The embedded tokens of patch shape ``patching`` over whole frame spans of ``spec``, and their rows."""
        whole = spec.shape[-1] // self.frame_span * self.frame_span
        return self.patch_embeddings[patching](spec[..., :whole])

    def forward_spectrogram(self, spec: Tensor) -> Tensor:
        """``[B, n_mels, frames]`` -> ``[B, frames // frame_span, dim]``, every token seen."""
        frames = []
        for patching, (_, frames_per_patch) in enumerate(self.patch_sizes):
            tokens, rows = self.tokens(spec, patching)
            encoded = self.transformer(tokens)
            batch, _, width = encoded.shape
            per_span = self.frame_span // frames_per_patch  # columns of this shape in one frame span
            frames.append(encoded.view(batch, rows, -1, per_span, width).mean(dim=(1, 3)))
        return torch.cat(frames, dim=-1)

    def compile_network(self) -> None:
        """The transformer: training runs it on the kept tokens (``embed_kept_tokens``), never through
        ``forward_spectrogram``, which the base class would compile."""
        self.transformer.compile(dynamic=False)

    def embed_kept_tokens(self, spec: Tensor, patching: int, keep_share: float, generator: torch.Generator) -> Tensor:
        """``[B, width]``: the mean of the transformer's outputs over a random ``kept_token_count`` of each
        row's tokens of patch shape ``patching`` (Myna's masking: the rest never reach the transformer),
        drawn from ``generator``."""
        tokens, _ = self.tokens(spec, patching)
        batch, count, width = tokens.shape
        keep = kept_token_count(count, keep_share)
        order = torch.rand(batch, count, generator=generator, device=generator.device).argsort(dim=1)
        kept = tokens.gather(1, order[:, :keep].to(tokens.device).unsqueeze(-1).expand(-1, -1, width))
        return self.transformer(kept).mean(dim=1)
