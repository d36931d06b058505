"""The lake world (FrozenLake-style navigation): seeded solvable maps with exact shortest path lengths,
32x32 renders with one colour per cell kind, evaluation sets split by path length and grid size, and
seeded (map, solution) training pairs. See docs/lake.md."""

from .maps import FROZEN, GOAL, HOLE, OUTSIDE, PATH, START, from_text, random_map, shortest_length, shortest_path, \
    to_text, with_path
from .render import LAKE_COLORS, read_cells, render
from .sets import TAG, eval_set, map_of, metadata, training_pair

__all__ = [
    "FROZEN", "GOAL", "HOLE", "LAKE_COLORS", "OUTSIDE", "PATH", "START", "TAG", "eval_set", "from_text", "map_of",
    "metadata", "random_map", "read_cells", "render", "shortest_length", "shortest_path", "to_text", "training_pair",
    "with_path",
]
