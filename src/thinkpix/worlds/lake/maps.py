"""Lake maps: N x N grids of frozen cells and holes with a start and a goal, always solvable.

A map is a (N, N) int8 array of cell kinds (FROZEN, HOLE, START, GOAL). Its text form is one string
per row: '.' frozen, 'H' hole, 'S' start, 'G' goal (and '*' for a drawn path cell in a solution).
Moves are the four axis-aligned steps; the length of a path is its number of moves, so a path of
length L visits L + 1 cells (start and goal included) and paints L - 1 cells between them.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ...errors import ThinkpixError

OUTSIDE, FROZEN, HOLE, START, GOAL, PATH = 0, 1, 2, 3, 4, 5  # cell kinds (OUTSIDE: canvas padding)
KIND_NAMES = ("outside", "frozen", "hole", "start", "goal", "path")
CHARS = {FROZEN: ".", HOLE: "H", START: "S", GOAL: "G", PATH: "*"}
MOVES = ((-1, 0), (0, -1), (1, 0), (0, 1))  # up, left, down, right: the canonical path's preference
MIN_SIZE, MAX_SIZE = 2, 8  # 8 cells across the 32x32 canvas at 4 pixels per cell


def to_text(grid: np.ndarray) -> list[str]:
    return ["".join(CHARS[int(k)] for k in row) for row in grid]


def from_text(rows: list[str]) -> np.ndarray:
    """Rows of '.', 'H', 'S', 'G' -> (N, N) int8; a ThinkpixError unless square with one S and one G."""
    lookup = {c: k for k, c in CHARS.items() if k != PATH}
    n = len(rows)
    if not MIN_SIZE <= n <= MAX_SIZE or any(len(r) != n for r in rows):
        raise ThinkpixError(f"a lake map must be square, {MIN_SIZE}..{MAX_SIZE} cells a side, got rows {rows!r}")
    bad = sorted({c for r in rows for c in r} - set(lookup))
    if bad:
        raise ThinkpixError(f"unknown map character(s) {bad}; use '.' frozen, 'H' hole, 'S' start, 'G' goal")
    grid = np.array([[lookup[c] for c in r] for r in rows], dtype=np.int8)
    if (grid == START).sum() != 1 or (grid == GOAL).sum() != 1:
        raise ThinkpixError(f"a lake map needs exactly one 'S' and one 'G', got rows {rows!r}")
    return grid


def find(grid: np.ndarray, kind: int) -> tuple[int, int]:
    r, c = np.argwhere(grid == kind)[0]
    return int(r), int(c)


def neighbours(cell: tuple[int, int], n: int):
    r, c = cell
    for dr, dc in MOVES:
        if 0 <= r + dr < n and 0 <= c + dc < n:
            yield r + dr, c + dc


def distances(grid: np.ndarray, source: tuple[int, int], allowed: np.ndarray | None = None) -> np.ndarray:
    """Breadth-first move counts from `source` over non-hole cells (or over `allowed` (N, N) bool);
    -1 where unreachable. -> (N, N) int."""
    n = grid.shape[0]
    walkable = grid != HOLE if allowed is None else allowed
    dist = np.full((n, n), -1, dtype=np.int64)
    dist[source] = 0
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        for nb in neighbours(cell, n):
            if walkable[nb] and dist[nb] < 0:
                dist[nb] = dist[cell] + 1
                queue.append(nb)
    return dist


def shortest_length(grid: np.ndarray) -> int:
    """Moves on a shortest start -> goal path avoiding holes; -1 if the goal is unreachable."""
    return int(distances(grid, find(grid, START))[find(grid, GOAL)])


def shortest_path(grid: np.ndarray, rng: np.random.Generator | None = None) -> list[tuple[int, int]]:
    """Cells of one shortest path, start first and goal last. Walking back from the goal, each step
    takes the first neighbour one move closer to the start in the order up, left, down, right (the
    canonical path), or a uniformly random one when `rng` is given."""
    dist = distances(grid, find(grid, START))
    cell = find(grid, GOAL)
    if dist[cell] < 0:
        raise ThinkpixError("the goal cannot be reached from the start")
    path = [cell]
    while dist[cell] > 0:
        options = [nb for nb in neighbours(cell, grid.shape[0]) if dist[nb] == dist[cell] - 1]
        cell = options[int(rng.integers(len(options)))] if rng is not None else options[0]
        path.append(cell)
    return path[::-1]


def positions_after(grid: np.ndarray, k: int) -> np.ndarray:
    """(N, N) bool: the cells where an agent can stand after k moves along some shortest path
    (k moves from the start and L - k from the goal)."""
    from_start, from_goal = distances(grid, find(grid, START)), distances(grid, find(grid, GOAL))
    length = int(from_start[find(grid, GOAL)])
    return (from_start == k) & (from_goal == length - k)


def with_path(grid: np.ndarray, path: list[tuple[int, int]]) -> np.ndarray:
    """The map with the path's inner cells (all but start and goal) marked PATH."""
    out = grid.copy()
    for cell in path[1:-1]:
        out[cell] = PATH
    return out


def random_map(rng: np.random.Generator, size: int, length: int, hole_rate: float | None = None,
               tries: int = 1000) -> np.ndarray:
    """A size x size map whose shortest start -> goal path has exactly `length` moves. Holes fall with
    probability `hole_rate` (default: uniform in 0.1..0.4 per map); the start is a random frozen cell
    and the goal a random cell at BFS distance `length` from it, so the map is solvable by construction."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ThinkpixError(f"lake size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    if length < 1:
        raise ThinkpixError(f"path length must be >= 1, got {length}")
    for _ in range(tries):
        rate = float(rng.uniform(0.1, 0.4)) if hole_rate is None else hole_rate
        grid = np.where(rng.random((size, size)) < rate, HOLE, FROZEN).astype(np.int8)
        free = np.argwhere(grid == FROZEN)
        if len(free) < 2:
            continue
        start = tuple(int(x) for x in free[rng.integers(len(free))])
        goals = np.argwhere(distances(grid, start) == length)
        if len(goals) == 0:
            continue
        grid[start] = START
        grid[tuple(goals[rng.integers(len(goals))])] = GOAL
        return grid
    raise ThinkpixError(f"no {size}x{size} map with a shortest path of {length} moves found in {tries} tries")
