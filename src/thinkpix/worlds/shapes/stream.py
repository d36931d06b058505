"""Seeded infinite stream of (prompt, image) training pairs covering the six GenEval tasks
plus free multi-object scenes described in full (counts and colours)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from .palette import COLOR_NAMES
from .prompts import TASKS, describe_objects, random_metadata
from .scene import DEFAULT_CANVAS, ObjectSpec, place, render, scene_from_metadata
from .templates import SHAPES

FREE_SCENE = "free"
DEFAULT_MIX: dict[str, float] = {task: 1.0 for task in TASKS} | {FREE_SCENE: 2.0}


def parse_mix(spec: str) -> dict[str, float] | None:
    """'position=2,counting=2,free=1' -> {'position': 2.0, ...}; '' -> None (the default mix)."""
    if not spec:
        return None
    mix = {}
    for part in spec.split(","):
        name, _, weight = part.partition("=")
        mix[name.strip()] = float(weight) if weight else 1.0
    return mix


def free_scene(rng: np.random.Generator, canvas: int) -> tuple[str, list]:
    """1-4 groups of same-colour same-shape objects (<= 5 objects), captioned exactly."""
    groups: Counter = Counter()
    for _ in range(int(rng.integers(1, 5))):
        groups[(COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))], SHAPES[int(rng.integers(len(SHAPES)))])] += 1
    specs = [ObjectSpec(shape, color) for (color, shape), n in groups.items() for _ in range(n)]
    prompt = describe_objects([(n, color, shape) for (color, shape), n in groups.items()])
    return prompt, place(specs, rng, canvas)


class TrainingStream:
    """Infinite, seeded: the same seed gives the same sequence of pairs."""

    def __init__(self, seed: int = 0, canvas: int = DEFAULT_CANVAS, mix: dict[str, float] | None = None):
        self.rng = np.random.default_rng(seed)
        self.canvas = canvas
        mix = mix or DEFAULT_MIX
        unknown = set(mix) - set(DEFAULT_MIX)
        if unknown:
            raise ValueError(f"unknown task(s) in mix: {sorted(unknown)}")
        self.kinds = list(mix)
        weights = np.array([mix[k] for k in self.kinds], dtype=np.float64)
        self.probs = weights / weights.sum()

    def sample(self) -> tuple[str, np.ndarray]:
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.probs))]
        if kind == FREE_SCENE:
            prompt, objects = free_scene(self.rng, self.canvas)
        else:
            meta = random_metadata(kind, self.rng)
            prompt, objects = meta["prompt"], scene_from_metadata(meta, self.rng, self.canvas)
        return prompt, render(objects, self.canvas)

    def batch(self, n: int) -> tuple[list[str], np.ndarray]:
        """n pairs -> (prompts, (n, H, W, 3) uint8)."""
        pairs = [self.sample() for _ in range(n)]
        return [p for p, _ in pairs], np.stack([im for _, im in pairs])

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        while True:
            yield self.sample()
