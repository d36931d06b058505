"""Controlled breaks of a ground-truth lake solution, for the evaluator's must-show numbers.

Each takes the map and its canonical shortest path and returns a broken solution grid (kinds), or None
when the break does not exist for this map (it is then left out of that break's rate, and counted):
- `off_path`: one inner path cell moved to a frozen neighbour off the path (1-move maps: one frozen
  cell next to the start painted, an extra cell);
- `through_hole`: a hole cell painted as path (one next to the path when there is one);
- `gap`: one inner path cell erased (maps of 2 or more moves).
"""

from __future__ import annotations

import numpy as np

from .maps import FROZEN, HOLE, PATH, neighbours, shortest_path, with_path

BREAKS = ("off_path", "through_hole", "gap")


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))] if items else None


def break_solution(kind: str, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    path = shortest_path(grid)
    solution = with_path(grid, path)
    inner, n = path[1:-1], grid.shape[0]
    if kind == "off_path":
        moves = [(cell, nb) for cell in (inner or path[:1]) for nb in neighbours(cell, n) if solution[nb] == FROZEN]
        move = _pick(rng, moves)
        if move is None:
            return None
        if inner:
            solution[move[0]] = FROZEN
        solution[move[1]] = PATH
        return solution
    if kind == "through_hole":
        near = [nb for cell in path for nb in neighbours(cell, n) if grid[nb] == HOLE]
        hole = _pick(rng, near) or _pick(rng, [tuple(c) for c in np.argwhere(grid == HOLE)])
        if hole is None:
            return None
        solution[tuple(hole)] = PATH
        return solution
    if kind == "gap":
        cell = _pick(rng, inner)
        if cell is None:
            return None
        solution[cell] = FROZEN
        return solution
    raise ValueError(f"unknown break {kind!r}; known: {BREAKS}")
