"""The lake map as the page edits it: text rows ('S.H.,..H.,....,H..G'), a clickable board picture,
and the edits a click makes (toggle ice / hole, move the start or the goal)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ThinkpixError
from ..worlds.lake import FROZEN, GOAL, HOLE, LAKE_COLORS, START, from_text, random_map, to_text
from ..worlds.lake.maps import MAX_SIZE, MIN_SIZE
from .drawing import load_font

BOARD_CELL = 48  # pixels per cell of the board picture
MODES = ("ice / hole", "start", "goal")


def parse(text: str) -> np.ndarray:
    """Rows separated by commas or new lines -> (N, N) map (a `ThinkpixError` naming what is wrong)."""
    rows = [r.strip() for r in str(text).replace("\n", ",").split(",") if r.strip()]
    if not rows:
        raise ThinkpixError("the map is empty: give rows such as 'S.H.,..H.,....,H..G'")
    return from_text(rows)


def as_text(grid: np.ndarray) -> str:
    return ",".join(to_text(grid))


def random_text(size: int, length: int, seed: int) -> str:
    """A random solvable map with a shortest path of `length` moves, as text."""
    from ..validation import integer, seed as check_seed

    size = integer(size, "map size", MIN_SIZE, MAX_SIZE)
    length = integer(length, "path length", 1, 2 * size - 2)
    return as_text(random_map(np.random.default_rng(check_seed(seed, "map seed")), size, length))


def board(grid: np.ndarray, cell: int = BOARD_CELL) -> np.ndarray:
    """(N, N) map -> (N * cell, N * cell, 3) picture with grid lines and S / G letters."""
    n = grid.shape[0]
    image = Image.new("RGB", (n * cell, n * cell))
    draw, font = ImageDraw.Draw(image), load_font(cell // 2)
    for r in range(n):
        for c in range(n):
            kind = int(grid[r, c])
            box = (c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1)
            draw.rectangle(box, fill=LAKE_COLORS[kind], outline=(90, 90, 90))
            if kind in (START, GOAL):
                draw.text((box[0] + cell // 3, box[1] + cell // 5), "S" if kind == START else "G", fill=(0, 0, 0),
                          font=font)
    return np.asarray(image)


def click(text: str, x: int, y: int, mode: str, cell: int = BOARD_CELL) -> str:
    """The map after a click at pixel (x, y) of its board: 'ice / hole' toggles a frozen cell and a hole,
    'start' / 'goal' move the start / goal there. A click on the start or goal in 'ice / hole' mode, or
    outside the board, is refused with a message."""
    grid = parse(text)
    n = grid.shape[0]
    r, c = int(y) // cell, int(x) // cell
    if not (0 <= r < n and 0 <= c < n):
        raise ThinkpixError(f"click ({x}, {y}) is outside the {n}x{n} board")
    kind = int(grid[r, c])
    if mode == "ice / hole":
        if kind in (START, GOAL):
            raise ThinkpixError("that cell is the start or the goal: choose 'start' or 'goal' to move them")
        grid[r, c] = HOLE if kind == FROZEN else FROZEN
    elif mode in ("start", "goal"):
        mine, other = (START, GOAL) if mode == "start" else (GOAL, START)
        if kind == other:
            raise ThinkpixError(f"the start and the goal cannot share cell ({r}, {c})")
        grid[grid == mine] = FROZEN
        grid[r, c] = mine
    else:
        raise ThinkpixError(f"unknown click mode {mode!r}; one of {', '.join(MODES)}")
    return as_text(grid)
