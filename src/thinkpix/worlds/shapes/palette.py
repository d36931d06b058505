"""The shapes world's colours: GenEval colour words that stand out on a dark background.

This table is the single source of truth for colours (renderer, evaluator, docs).
"""

from __future__ import annotations

import numpy as np

# name -> RGB (0..255). Chosen pairwise far apart (min RGB distance ~100) and far from the background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (255, 150, 20),
    "yellow": (240, 235, 50),
    "green": (40, 200, 70),
    "blue": (40, 90, 250),
    "purple": (160, 60, 220),
    "pink": (255, 130, 210),
    "white": (245, 245, 245),
}
BACKGROUND: tuple[int, int, int] = (16, 16, 20)
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

# (K+1, 3) float array: row 0 is the background, rows 1..K follow COLOR_NAMES.
PALETTE_ARRAY = np.array([BACKGROUND, *COLORS.values()], dtype=np.float32)
