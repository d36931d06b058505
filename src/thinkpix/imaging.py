"""Image grids and PNG output."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def grid_bytes(n: int, side: int, cols: int = 8, pad: int = 2, upscale: int = 1) -> int:
    """Bytes `grid` allocates for n side x side images: the upscaled copies plus the grid itself."""
    cols = min(cols, n)
    rows = -(-n // cols)
    big = side * upscale
    return n * big * big * 3 + (rows * (big + pad) + pad) * (cols * (big + pad) + pad) * 3


def grid(images, cols: int = 8, pad: int = 2, upscale: int = 1, pad_value: int = 60) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) uint8 image."""
    images = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n, h, w, _ = images.shape
    cols = min(cols, n)
    rows = -(-n // cols)
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
        h, w = h * upscale, w * upscale
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write a PNG under a temporary name, then rename it: a killed process never leaves half an image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    from .files import writing

    with writing(path, tmp):  # a full disk: one line naming the file, no temporary file left
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    return path
