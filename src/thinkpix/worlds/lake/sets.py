"""Lake evaluation sets (metadata lines) and seeded training pairs.

A metadata line (one per map, GenEval-style folder layout):
    {"tag": "lake", "prompt": "lake 5x5, 7 moves", "size": 5, "length": 7, "split": "longer",
     "map": ["S..H.", ...]}
The second target (`target` "position", for the step-by-step analysis) adds "k": the image to draw
is the map with only the agent's cell after k moves along the (canonical) shortest path painted.
`split` places the map relative to the training range (TRAIN_SIZES, lengths up to TRAIN_MAX_LENGTH):
in-range, longer (a trained size, a longer path), larger (an unseen size, a trained length) or
larger-longer (both beyond).
"""

from __future__ import annotations

import numpy as np

from ...errors import ThinkpixError
from ...spec import int_ranges
from .maps import from_text, random_map, shortest_length, shortest_path, to_text, with_path

TAG = "lake"
TRAIN_SIZES = (4, 5)  # default training range (the committed set's split labels refer to it)
TRAIN_MAX_LENGTH = 6
EVAL_SIZES = (4, 5, 6, 7, 8)


def eval_lengths(size: int) -> range:
    """Path lengths of the evaluation set for one grid size: 1 .. 2N."""
    return range(1, 2 * size + 1)


SPLITS = ("in-range", "longer", "larger", "larger-longer")


def split_of(size: int, length: int, sizes=TRAIN_SIZES, max_length: int = TRAIN_MAX_LENGTH) -> str:
    larger, longer = size > max(sizes), length > max_length
    return SPLITS[2 * larger + longer]


TARGETS = ("path", "position")


def metadata(grid: np.ndarray, k: int | None = None) -> dict:
    """The metadata line of a map (with `k`: of the position target after k moves)."""
    n, length = grid.shape[0], shortest_length(grid)
    meta = {"tag": TAG, "prompt": f"lake {n}x{n}, {length} move{'s' if length > 1 else ''}", "size": n,
            "length": length, "split": split_of(n, length), "map": to_text(grid)}
    if k is not None:
        meta.update(prompt=meta["prompt"] + f", agent after {k}", target="position", k=k)
    return meta


def map_of(meta: dict) -> np.ndarray:
    """A metadata line's map, checked: square, one start, one goal, solvable in `length` moves."""
    rows = meta.get("map") if isinstance(meta, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, str) for r in rows):
        raise ThinkpixError("not a lake map line: needs a 'map' key with a list of rows like ['S.', '.G'] "
                            f"(got keys {sorted(meta) if isinstance(meta, dict) else type(meta).__name__})")
    grid = from_text(rows)
    length = shortest_length(grid)
    if length < 1:
        raise ThinkpixError(f"map {meta['map']} has no path from start to goal")
    if "length" in meta and meta["length"] != length:
        raise ThinkpixError(f"map {meta['map']}: recorded length {meta['length']}, shortest path has {length}")
    if meta.get("target", "path") not in TARGETS:
        raise ThinkpixError(f"map {meta['map']}: unknown target {meta['target']!r}; known: {list(TARGETS)}")
    if meta.get("target") == "position" and not (isinstance(meta.get("k"), int) and 1 <= meta["k"] < length):
        raise ThinkpixError(f"map {meta['map']}: a position target needs k in 1..{length - 1}, got {meta.get('k')!r}")
    return grid


def eval_set(per_cell: int = 8, seed: int = 0, sizes=EVAL_SIZES, target: str = "path") -> list[dict]:
    """`per_cell` maps for every (size, length) pair, length 1 .. 2N, distinct maps within a pair.
    Position target: lengths from 2, and k uniform in 1..L-1 per map."""
    out = []
    for size in sizes:
        for length in eval_lengths(size):
            if target == "position" and length < 2:
                continue
            rng = np.random.default_rng([seed, size, length])
            seen: set[tuple[str, ...]] = set()
            while len(seen) < per_cell:
                grid = random_map(rng, size, length)
                key = tuple(to_text(grid))
                if key not in seen:
                    seen.add(key)
                    k = int(rng.integers(1, length)) if target == "position" else None
                    out.append(metadata(grid, k))
    return out


def parse_range(spec: str) -> list[int]:
    """'4,5' or '4-6' or '4-5,7' -> sorted distinct ints; a reversed ('8-4') or open ('4-', '-4') range
    and an empty one are refused (`thinkpix.spec.int_ranges`)."""
    return int_ranges(spec)


def training_pair(rng: np.random.Generator, sizes: list[int], lengths: list[int], random_path: bool = False,
                  target: str = "path") -> tuple[np.ndarray, np.ndarray, int]:
    """One (map, solution, k) triple, size and length uniform over the given lists (a length the size
    cannot hold is drawn again). -> map (N, N) int8, solution (N, N) int8 with the path's cells marked
    (position target: only the cell after k moves, k uniform in 1..L-1; path target: k = 0)."""
    lengths = [L for L in lengths if L >= 2] if target == "position" else lengths
    for _ in range(100):
        size, length = int(rng.choice(sizes)), int(rng.choice(lengths))
        if length <= 2 * size + 2:
            break
    grid = random_map(rng, size, length)
    path = shortest_path(grid, rng if random_path else None)
    if target == "path":
        return grid, with_path(grid, path), 0
    k = int(rng.integers(1, length))
    return grid, with_path(grid, [path[0], path[k], path[-1]]), k
