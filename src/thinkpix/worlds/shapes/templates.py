"""Shape templates: boolean masks of each shape class at a given pixel size."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
_SUPERSAMPLE = 8  # coverage is estimated on an 8x8 sub-pixel grid, pixel on if >= half covered


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """u, v in [0, 1] (x right, y down) -> bool inside the unit-box shape."""
    if shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if shape == "square":
        return np.ones_like(u, dtype=bool)
    if shape == "triangle":  # apex at top centre, base along the bottom edge
        return np.abs(u - 0.5) <= 0.5 * v
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def coverage(shape: str, x: float, y: float, size: float, height: int, width: int | None = None,
             supersample: int = 8, rounding: float = 0.0) -> np.ndarray:
    """Anti-aliased drawing: the share of each pixel of a (height, width) grid (width defaults
    to height) covered by `shape` in the box of side `size` (float) whose top-left corner is at
    (x, y) (floats, pixel units; the box may reach past the grid), estimated on a
    supersample x supersample sub-pixel grid per pixel. `rounding` > 0 rounds a square's corners
    with quarter circles of that radius (a share of the side)."""
    width = height if width is None else width
    step = (np.arange(supersample) + 0.5) / supersample  # (S,) sub-pixel centres
    ys = ((np.arange(height)[:, None] + step).ravel() - y) / size  # (height * S,)
    xs = ((np.arange(width)[:, None] + step).ravel() - x) / size  # (width * S,)
    v, u = ys[:, None], xs[None, :]  # broadcast to (height * S, width * S)
    inside = _inside(shape, u, v) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    if shape == "square" and rounding > 0:
        du, dv = np.maximum(np.abs(u - 0.5) - (0.5 - rounding), 0), np.maximum(np.abs(v - 0.5) - (0.5 - rounding), 0)
        inside = inside & (du**2 + dv**2 <= rounding**2)
    return inside.reshape(height, supersample, width, supersample).mean(axis=(1, 3))


@lru_cache(maxsize=None)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """(size, size) bool mask of `shape` filling a size x size box. Cached; do not modify."""
    if size < 1:
        raise ValueError(f"shape size must be >= 1, got {size}")
    n = size * _SUPERSAMPLE
    centres = (np.arange(n) + 0.5) / n  # (n,)
    v, u = np.meshgrid(centres, centres, indexing="ij")  # (n, n) each
    cover = _inside(shape, u, v).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))
    mask = cover >= 0.5
    mask.setflags(write=False)
    return mask
