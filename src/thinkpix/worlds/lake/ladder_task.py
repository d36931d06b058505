"""The recursion ladder's task: lake maps in, "is this cell on a shortest path?" out, one token per cell.

A map of size n (n x n cells) sits in the top-left corner of a fixed 8 x 8 canvas (the largest lake),
so every split shares one set of cell positions and a model trained on small maps meets larger ones
at positions it has seen. Input: a one-hot of the cell kind per canvas cell (outside, frozen, hole,
start, goal) -> (B, 5, 8, 8). Target: 1 where the cell lies on *some* shortest start -> goal path
(BFS distance from the start plus distance to the goal equals the shortest length), so every shortest
path is covered and the label is unique. A map counts as solved when every cell inside it is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .maps import GOAL, MAX_SIZE, START, distances, find, random_map

CANVAS = MAX_SIZE  # 8: every map is drawn on an 8 x 8 canvas
KINDS = 5  # outside, frozen, hole, start, goal (the cell-kind codes of `maps`, PATH excluded)
TRAIN_SIZES, TRAIN_LENGTHS = (4, 5), tuple(range(1, 7))


@dataclass(frozen=True)
class Split:
    """A named set of maps: every (size, length) cell gets `per_cell` maps."""

    name: str
    sizes: tuple[int, ...]
    lengths: tuple[int, ...]
    per_cell: int


# Held-out splits: the training range, then larger maps with in-range and with longer paths.
SPLITS = (
    Split("in-range", TRAIN_SIZES, TRAIN_LENGTHS, 50),  # 600 maps; the criterion reads lengths 4-6
    Split("larger", (6, 7, 8), (4, 5, 6), 30),  # 270 maps: more cells, in-range path lengths
    Split("longer", (6, 7, 8), (7, 8, 9, 10), 25),  # 300 maps: paths beyond the training range
)
TEST_SEED, VALIDATION_SEED = 1_000_003, 2_000_003  # fixed; training streams use the run's seed


def on_shortest_path(grid: np.ndarray) -> np.ndarray:
    """(n, n) bool: the cells of some shortest start -> goal path (start and goal included)."""
    from_start, from_goal = distances(grid, find(grid, START)), distances(grid, find(grid, GOAL))
    length = from_start[find(grid, GOAL)]
    return (from_start >= 0) & (from_goal >= 0) & (from_start + from_goal == length)


def path_length(grid: np.ndarray) -> int:
    return int(distances(grid, find(grid, START))[find(grid, GOAL)])


def encode(grids: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maps -> inputs (B, 5, 8, 8) one-hot kinds, targets (B, 8, 8) float, inside-map mask (B, 8, 8) bool."""
    B = len(grids)
    kinds = np.zeros((B, CANVAS, CANVAS), dtype=np.int64)  # 0 = outside the map
    target = np.zeros((B, CANVAS, CANVAS), dtype=np.float32)
    mask = np.zeros((B, CANVAS, CANVAS), dtype=bool)
    for i, grid in enumerate(grids):
        n = grid.shape[0]
        kinds[i, :n, :n] = grid
        target[i, :n, :n] = on_shortest_path(grid)
        mask[i, :n, :n] = True
    onehot = torch.nn.functional.one_hot(torch.from_numpy(kinds), KINDS)  # (B, 8, 8, 5)
    return onehot.permute(0, 3, 1, 2).float(), torch.from_numpy(target), torch.from_numpy(mask)


def training_maps(rng: np.random.Generator, count: int, sizes=TRAIN_SIZES, lengths=TRAIN_LENGTHS) -> list[np.ndarray]:
    """`count` fresh maps, size and shortest-path length drawn uniformly from the training range."""
    return [random_map(rng, int(rng.choice(sizes)), int(rng.choice(lengths))) for _ in range(count)]


def split_maps(split: Split, seed: int) -> list[np.ndarray]:
    """The maps of one held-out split, in (size, length) order; the same for every arm and run."""
    rng = np.random.default_rng([seed, sum(map(ord, split.name))])
    return [random_map(rng, n, L) for n in split.sizes for L in split.lengths for _ in range(split.per_cell)]


def solved(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every cell inside the map is on the right side of 0. logits, target, mask: (B, 8, 8)."""
    wrong = ((logits > 0).float() != target) & mask
    return ~wrong.flatten(1).any(1)


def cell_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the cells inside each map."""
    per_cell = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (per_cell * mask).sum() / mask.sum()


__all__ = ["CANVAS", "KINDS", "SPLITS", "Split", "encode", "on_shortest_path", "path_length", "training_maps",
           "split_maps", "solved", "cell_loss"]
