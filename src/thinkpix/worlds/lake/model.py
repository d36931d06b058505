"""The lake model: a pixel-space MMDiT (diffusers `SD3Transformer2DModel`) that draws a shortest path
on a lake map. The map is given twice:

- as three extra input channels: the rendered map (in [-1, 1]) concatenated to the noisy image, so
  in_channels = 6 and out_channels = 3 (copying the map is free; only the path must be reasoned out);
- as context tokens in the joint attention's text stream: one token per canvas cell (8 x 8 = 64), a
  learned embedding of the cell's kind plus a learned embedding of its position; the pooled vector
  is their mean. The position target (meta `target` "position") adds a 65th token, a learned
  embedding of k, the number of moves after which the agent is to be drawn.

Each 4x4 patch is exactly one cell, so no image token sees a neighbouring cell: adjacency has to be
learned through attention. `patch_context = c` widens the patch embedding to a (2c + 1) x (2c + 1)-cell
window around each cell (a convolution of kernel 4(2c + 1), stride 4, padding 4c), initialised with the
plain embedding in its centre and zeros around it, so the model starts as the plain one.

Saved as a bundle folder (transformer/ + thinkpix.json, kind "lake") plus cells.safetensors for the
cell embeddings; a widened patch embedding is recorded in thinkpix.json and rebuilt on load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import SD3Transformer2DModel
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file
from torch import nn

from ...models import autoencoder as ae_lib
from ...models.bundle import PIXEL_PATCH, ImageBundle
from ...models.registry import size_config
from .maps import KIND_NAMES
from .render import CELLS, canvas_kinds, render

KIND = "lake"
MAP_KINDS = len(KIND_NAMES)  # embedding rows (the PATH row is never used by a map)
MAX_K = 2 * CELLS * CELLS  # rows of the position target's k embedding


def build_transformer(size: str, depth: int = 0, canvas: int = 32, patch_context: int = 0) -> SD3Transformer2DModel:
    """A registry MMDiT size (width, heads), `depth` blocks (0: the size's own), 6 in / 3 out channels,
    a patch embedding that sees `patch_context` cells on each side (0: one cell per patch)."""
    cfg = size_config("mmdit", size)
    if depth:
        cfg["num_layers"] = depth
    width = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    transformer = SD3Transformer2DModel(
        sample_size=canvas, patch_size=PIXEL_PATCH, in_channels=6, out_channels=3,
        joint_attention_dim=width, caption_projection_dim=width, pooled_projection_dim=width,
        pos_embed_max_size=max(canvas // PIXEL_PATCH, 4), **cfg,
    )
    if patch_context:
        widen_patch_embedding(transformer, patch_context)
    return transformer


def widen_patch_embedding(transformer: SD3Transformer2DModel, context: int) -> None:
    """Replace the patch embedding's Conv2d(6, D, 4, stride 4) by Conv2d(6, D, 4(2c + 1), stride 4,
    padding 4c): same output grid (one token per cell), each token now sees the c cells around its own.
    The plain kernel goes in the centre and the rest is zero, so the output is unchanged at init."""
    if context < 0:
        raise ValueError(f"patch_context must be >= 0, got {context}")
    plain = transformer.pos_embed.proj
    p = plain.kernel_size[0]  # one cell's pixels
    with torch.random.fork_rng(devices=[]):  # the weights are overwritten: draw nothing from the caller's stream
        wide = nn.Conv2d(plain.in_channels, plain.out_channels, p * (2 * context + 1), stride=p, padding=p * context)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, :, p * context:p * (context + 1), p * context:p * (context + 1)] = plain.weight
        wide.bias.copy_(plain.bias)
    transformer.pos_embed.proj = wide


class CellTokens(nn.Module):
    """(B, 64) cell kinds [+ (B,) k] -> tokens (B, 64 [+1], D) = kind + position embedding [, k
    embedding], pooled (B, D) = their mean."""

    def __init__(self, dim: int, with_k: bool = False):
        super().__init__()
        self.kind = nn.Embedding(MAP_KINDS, dim)
        self.position = nn.Parameter(torch.randn(CELLS * CELLS, dim) * 0.02)
        nn.init.normal_(self.kind.weight, std=0.02)
        self.k = nn.Embedding(MAX_K, dim) if with_k else None
        if self.k is not None:
            nn.init.normal_(self.k.weight, std=0.02)

    def forward(self, kinds: torch.Tensor, ks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.kind(kinds) + self.position  # (B, 64, D)
        if self.k is not None:
            tokens = torch.cat([tokens, self.k(ks)[:, None]], dim=1)  # (B, 65, D)
        return tokens, tokens.mean(1)


def map_inputs(grids: list[np.ndarray], canvas: int = 32, ks: list[int] | None = None) -> tuple[torch.Tensor, ...]:
    """Maps -> (map channels (B, 3, H, W) in [-1, 1], cell kinds (B, 64) int64[, ks (B,) int64])."""
    images = torch.from_numpy(np.stack([render(g, canvas) for g in grids]))  # (B, H, W, 3) uint8
    kinds = torch.from_numpy(np.stack([canvas_kinds(g).reshape(-1) for g in grids]).astype(np.int64))
    out = (ae_lib.images_to_unit(images), kinds)
    return out if ks is None else (*out, torch.tensor(ks, dtype=torch.int64))


class LakeModel(ImageBundle):
    KIND = KIND  # the kind in thinkpix.json that `load` accepts
    TRANSFORMER_CLASS = SD3Transformer2DModel

    def __init__(self, transformer: SD3Transformer2DModel, cells: CellTokens, meta: dict):
        super().__init__(transformer, None, meta)
        self.cells = cells

    @classmethod
    def create(cls, size: str = "small", depth: int = 0, canvas: int = 32, target: str = "path",
               patch_context: int = 0) -> "LakeModel":
        transformer = build_transformer(size, depth, canvas, patch_context)
        meta = {"kind": KIND, "size": size, "depth": transformer.config.num_layers, "space": "pixel",
                "canvas": canvas, "target": target}
        if patch_context:
            meta["patch_context"] = patch_context
        return cls(transformer, CellTokens(transformer.inner_dim, target == "position"), meta)

    @property
    def target(self) -> str:
        return self.meta.get("target", "path")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c = self.transformer.config
        return (c.out_channels, c.sample_size, c.sample_size)  # the image only, not the map channels

    def velocity(self, x_t, t, map_x, kinds, ks=None, **joint_attention_kwargs) -> torch.Tensor:
        """x_t (B, 3, H, W), t (B,) in [0, 1], map_x (B, 3, H, W), kinds (B, 64), ks (B,) (position
        target only) -> velocity (B, 3, H, W)."""
        tokens, pooled = self.cells(kinds, ks)  # (B, 64 [+1], D), (B, D)
        return self.transformer(
            hidden_states=torch.cat([x_t, map_x], dim=1),  # (B, 6, H, W)
            encoder_hidden_states=tokens,
            pooled_projections=pooled,
            timestep=t * 1000.0,
            joint_attention_kwargs=joint_attention_kwargs or None,
            return_dict=False,
        )[0]

    @classmethod
    def load_transformer(cls, path: Path, meta: dict) -> nn.Module:
        """A widened patch embedding is not in diffusers' config: rebuild the architecture from the meta
        and load the saved weights into it (strictly); otherwise diffusers' own loader."""
        if not meta.get("patch_context"):
            return super().load_transformer(path, meta)
        transformer = build_transformer(meta["size"], meta["depth"], meta["canvas"], meta["patch_context"])
        weights = load_file(path / "transformer" / SAFETENSORS_WEIGHTS_NAME)
        transformer.load_state_dict({k: v.float() for k, v in weights.items()})
        return transformer

    def save_extra(self, path: Path, dtype: torch.dtype) -> None:
        self.save_state(self.cells, path / "cells.safetensors", dtype)

    @classmethod
    def from_parts(cls, path: Path, meta: dict, transformer: nn.Module, ae=None) -> "LakeModel":
        cells = CellTokens(transformer.inner_dim, meta.get("target") == "position")
        return cls(transformer, cls.load_state(cells, path / "cells.safetensors"), meta)
