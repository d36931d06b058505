"""The class-conditional shapes world (the DiT track): one object per image, class = colour x shape.

Classes are every (colour, shape) pair in a fixed order, colours outer (palette order), shapes
inner: 0 "red circle", 1 "red square", 2 "red triangle", 3 "orange circle", ... 23 "white
triangle" (8 colours x 3 shapes = 24). The object has a random side in the world's size range
(7..12 px on the 32x32 canvas) at a uniformly random position fully on the canvas, drawn by the
world's renderer on its background.

Splits are by seed. Training draws sample j of step s from the key (seed, s, j)
(`thinkpix.training.data.sample_seed`); held-out renders (`heldout_set`) from the key
(HELDOUT_KEY, seed, i), a key training never uses. The image space is finite (about 80k distinct
renders on 32x32: 3,331 placements x 24 classes), so "held-out" means independent draws, not
images a long training run can never have seen.
"""

from __future__ import annotations

import numpy as np

from ...errors import ThinkpixError
from ..shapes.palette import COLOR_NAMES
from ..shapes.scene import DEFAULT_CANVAS, SceneObject, render, size_range
from ..shapes.templates import SHAPES

CLASS_PARTS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOR_NAMES for s in SHAPES)  # (colour, shape)
CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for c, s in CLASS_PARTS)
HELDOUT_KEY = 0x4E1D  # first entry of a held-out sample's seed key


def class_index(name: str, classes: tuple[str, ...] | list[str] = CLASSES) -> int:
    """'red circle' -> 0; a `ThinkpixError` listing the known classes for an unknown name."""
    key = " ".join(name.lower().split())
    if key not in classes:
        raise ThinkpixError(f"unknown class {name!r}; known: {', '.join(classes)}")
    return list(classes).index(key)


def random_object(label: int, rng: np.random.Generator, canvas: int = DEFAULT_CANVAS) -> SceneObject:
    """The one object of class `label`, random side in the world's size range, random position."""
    color, shape = CLASS_PARTS[label]
    lo, hi = size_range(canvas)
    size = int(rng.integers(lo, hi + 1))
    x, y = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
    return SceneObject(shape, color, x, y, size)


def class_weights(mix: dict[str, float] | None) -> np.ndarray | None:
    """{'circle': 3} -> (24,) class probabilities: a class's weight is its colour's weight times its
    shape's (1 where unnamed), normalised; None -> None (uniform). Unknown names: a ThinkpixError."""
    if not mix:
        return None
    known = set(COLOR_NAMES) | set(SHAPES)
    unknown = sorted(set(mix) - known)
    if unknown:
        raise ThinkpixError(f"class mix: unknown name(s) {unknown}; a class mix weights colours "
                            f"({', '.join(COLOR_NAMES)}) and shapes ({', '.join(SHAPES)})")
    w = np.array([mix.get(c, 1.0) * mix.get(s, 1.0) for c, s in CLASS_PARTS], dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ThinkpixError(f"class mix: weights must be >= 0 with a positive total, got {mix}")
    return w / w.sum()


def class_sample(rng: np.random.Generator, canvas: int = DEFAULT_CANVAS, label: int | None = None,
                 weights: np.ndarray | None = None):
    """-> (label, (canvas, canvas, 3) uint8 image). The label is drawn uniformly, or from the class
    probabilities `weights` (see `class_weights`), unless given."""
    if label is None:
        label = int(rng.integers(len(CLASSES))) if weights is None else int(rng.choice(len(CLASSES), p=weights))
    return label, render([random_object(label, rng, canvas)], canvas)


def heldout_set(n: int, seed: int = 0, canvas: int = DEFAULT_CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """`n` held-out renders, classes balanced (image i has class i mod 24) -> labels (n,) int64,
    images (n, canvas, canvas, 3) uint8. Image i depends only on (seed, i)."""
    labels = np.arange(n) % len(CLASSES)
    images = [class_sample(np.random.default_rng([HELDOUT_KEY, seed, i]), canvas, int(labels[i]))[1] for i in range(n)]
    return labels.astype(np.int64), np.stack(images) if images else np.zeros((0, canvas, canvas, 3), np.uint8)
