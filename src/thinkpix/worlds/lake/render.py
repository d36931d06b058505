"""Lake images: one colour per cell kind, each cell a fixed block of pixels.

Layout (every grid size alike): the canvas is divided into 8 x 8 blocks of canvas/8 pixels (4 x 4 on
the 32x32 canvas, so one 4x4 patch of the MMDiT is exactly one cell); an N x N map fills the top-left
N x N blocks and the other blocks are OUTSIDE (black). Cell (r, c) is therefore always at the same
pixels, whatever N, and a 6x6 map is a larger piece of the same picture as a 4x4 one.

Reading back: the mean colour of each block's central half (2x2 pixels on 32x32) is assigned to the
nearest palette colour.
"""

from __future__ import annotations

import numpy as np

from .maps import FROZEN, GOAL, HOLE, MAX_SIZE, OUTSIDE, PATH, START

# kind -> RGB; pairwise at least ~150 apart so a blurred or noisy sample is still read right.
LAKE_COLORS: dict[int, tuple[int, int, int]] = {
    OUTSIDE: (0, 0, 0),
    FROZEN: (200, 225, 255),  # ice
    HOLE: (20, 60, 170),  # open water
    START: (30, 200, 60),
    GOAL: (250, 215, 0),
    PATH: (230, 30, 30),
}
PALETTE = np.array([LAKE_COLORS[k] for k in range(len(LAKE_COLORS))], dtype=np.float32)  # (6, 3)
CELLS = MAX_SIZE  # blocks per canvas side


def cell_pixels(canvas: int) -> int:
    if canvas % CELLS:
        raise ValueError(f"canvas {canvas} is not a multiple of {CELLS}")
    return canvas // CELLS


def canvas_kinds(grid: np.ndarray) -> np.ndarray:
    """(N, N) kinds -> (8, 8) kinds of the whole canvas (OUTSIDE beyond the map)."""
    n = grid.shape[0]
    out = np.full((CELLS, CELLS), OUTSIDE, dtype=np.int8)
    out[:n, :n] = grid
    return out


def render(grid: np.ndarray, canvas: int = 32) -> np.ndarray:
    """(N, N) kinds (a map, or a map with its path) -> (canvas, canvas, 3) uint8."""
    px = cell_pixels(canvas)
    kinds = canvas_kinds(grid).repeat(px, 0).repeat(px, 1)  # (canvas, canvas)
    return PALETTE[kinds].astype(np.uint8)


def read_cells(image: np.ndarray, size: int) -> np.ndarray:
    """(H, H, 3) image -> (size, size) kinds: each block's central mean colour, nearest palette entry."""
    px = cell_pixels(image.shape[0])
    lo, hi = px // 4, px - px // 4  # the central half of a block
    blocks = image.astype(np.float32).reshape(CELLS, px, CELLS, px, 3)[:size, lo:hi, :size, lo:hi]
    means = blocks.mean(axis=(1, 3))  # (size, size, 3)
    d = ((means[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1)  # (size, size, 6)
    return d.argmin(-1).astype(np.int8)
