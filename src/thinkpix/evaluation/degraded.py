"""Degraded renders: images with known truth that look like generated ones.

The evaluator is exact on clean renders, but models draw soft, anti-aliased, slightly blurred
objects, often smaller or larger than the world's sizes, sometimes touching or cut by the border,
with colours off the palette. `draw` renders objects that way, from a seeded generator:

- objects at real-valued positions and sizes (anti-aliased: each pixel's covered share, 8x8
  sub-pixel grid, `worlds.shapes.templates.coverage`), sizes 5..14 px on 32x32 (the world draws 7..12);
- each object's colour = its palette colour, shifted per channel (N(0, 10)), sometimes mixed
  with another palette colour (up to 20%: "muddy" colours), composited over the background in
  drawing order;
- half the squares with rounded corners (radius up to a quarter of the side: still squares);
- a Gaussian blur of sigma 0..0.6 px, then pixel noise sigma 0..0.03 (0..1 scale), and a
  background shifted by up to 4 per channel.

Sets (`single_objects`, `scenes`, `touching_pairs`, `garbage`) give per-shape, per-size
confusion, per-task verdicts against the truth, splitting of touching same-colour objects, and
refusal of images without objects. The truth of a scene is the objects as drawn: their shapes,
colours and visible boxes, judged by GenEval's rules (`truth_verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..worlds.shapes.palette import BACKGROUND, COLOR_NAMES, COLORS
from ..worlds.shapes.templates import SHAPES, coverage

SIZES_32 = (5.0, 14.0)  # object side range (pixels on 32x32): the world's 7..12 and beyond
SIZE_BINS_32 = ((5, 7), (7, 9), (9, 11), (11, 13), (13, 14.01))  # [lo, hi) for the confusion tables
BLUR = (0.0, 0.6)  # Gaussian sigma, pixels (generated objects fit 0-0.5 best, docs/evaluation.md)
NOISE = (0.0, 0.03)  # pixel noise sigma, 0..1 scale
COLOUR_SHIFT = 10.0  # per-channel sigma of each object's colour shift (0..255)
MUDDY_PROB, MUDDY_MAX = 0.3, 0.2  # share of objects mixed with another palette colour, and how much
COLOUR_MARGIN = 0.7  # a drawn colour is at most 0.7x as far from its own palette colour as from any other
BG_SHIFT = 4  # background shift per channel, at most
ROUNDED_PROB, MAX_ROUNDING = 0.5, 0.25  # squares drawn with rounded corners (radius up to a quarter side)
MIN_VISIBLE = 0.6  # an object cut by the border keeps at least this share of its area


@dataclass(frozen=True)
class DrawnObject:
    shape: str
    color: str
    x: float  # left edge of the box (may be < 0: cut by the border)
    y: float
    size: float
    mix: tuple[str, float] = ("", 0.0)  # (other palette colour, its share) for muddy colours
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # per-channel colour shift
    rounding: float = 0.0  # a square's corner radius, share of the side

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.size, self.y + self.size)

    def rgb(self) -> np.ndarray:
        col = np.array(COLORS[self.color], dtype=np.float32)
        if self.mix[1] > 0:
            col = (1 - self.mix[1]) * col + self.mix[1] * np.array(COLORS[self.mix[0]], dtype=np.float32)
        return np.clip(col + np.array(self.shift, dtype=np.float32), 0, 255)


@dataclass(frozen=True)
class Degradation:
    blur: float = 0.0
    noise: float = 0.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # shift per channel


@dataclass
class Drawn:
    """One degraded image and its truth."""

    image: np.ndarray  # (H, W, 3) uint8
    objects: list[DrawnObject]
    degradation: Degradation
    coverage: list[np.ndarray] = field(repr=False, default_factory=list)  # per object, (H, W) visible share

    def visible_boxes(self, threshold: float = 0.5) -> list[tuple[int, int, int, int] | None]:
        """Each object's box as its pixels covered at least `threshold` (after the objects drawn
        over it) span it, None when nothing of it shows."""
        out = []
        for cov in self.coverage:
            rows, cols = np.flatnonzero((cov >= threshold).any(1)), np.flatnonzero((cov >= threshold).any(0))
            out.append((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if len(rows) else None)
        return out


def random_look(rng: np.random.Generator, shape: str, color: str, x: float, y: float, size: float) -> DrawnObject:
    """An object with a random colour shift and, sometimes, a muddy mix, redrawn until its colour
    is unambiguous: at most COLOUR_MARGIN times as far from its own palette colour as from any
    other (colours half-way between two are measured apart, not here)."""
    palette = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.float32)  # (K, 3)
    while True:
        shift = tuple(float(v) for v in rng.normal(0.0, COLOUR_SHIFT, 3))
        mix = ("", 0.0)
        if rng.random() < MUDDY_PROB:
            other = [c for c in COLOR_NAMES if c != color]
            mix = (other[int(rng.integers(len(other)))], float(rng.uniform(0.0, MUDDY_MAX)))
        rounding = float(rng.uniform(0.0, MAX_ROUNDING)) if shape == "square" and rng.random() < ROUNDED_PROB else 0.0
        obj = DrawnObject(shape, color, x, y, size, mix, shift, rounding)
        dist = np.linalg.norm(palette - obj.rgb(), axis=1)  # (K,)
        own = COLOR_NAMES.index(color)
        if dist[own] <= COLOUR_MARGIN * np.delete(dist, own).min():
            return obj


def random_degradation(rng: np.random.Generator) -> Degradation:
    return Degradation(float(rng.uniform(*BLUR)), float(rng.uniform(*NOISE)),
                       tuple(float(v) for v in rng.uniform(-BG_SHIFT, BG_SHIFT, 3)))


def draw(objects: list[DrawnObject], degradation: Degradation, rng: np.random.Generator,
         canvas: int = 32) -> Drawn:
    """Render `objects` (later ones on top) anti-aliased, then blur, then noise -> `Drawn`."""
    image = np.empty((canvas, canvas, 3), dtype=np.float32)
    image[:] = np.array(BACKGROUND, dtype=np.float32) + np.array(degradation.background, dtype=np.float32)
    covers = []
    for obj in objects:
        a = coverage(obj.shape, obj.x, obj.y, obj.size, canvas, rounding=obj.rounding)  # (H, W)
        covers = [c * (1 - a) for c in covers] + [a]  # what each object still shows
        image = image * (1 - a[..., None]) + obj.rgb() * a[..., None]
    if degradation.blur > 0:
        image = ndimage.gaussian_filter(image, sigma=(degradation.blur, degradation.blur, 0), mode="nearest")
        covers = [ndimage.gaussian_filter(c, degradation.blur, mode="constant") for c in covers]
    if degradation.noise > 0:
        image = image + rng.normal(0.0, degradation.noise * 255.0, image.shape)
    return Drawn(np.clip(np.rint(image), 0, 255).astype(np.uint8), list(objects), degradation, covers)


def scale_sizes(canvas: int) -> tuple[float, float]:
    return SIZES_32[0] * canvas / 32, SIZES_32[1] * canvas / 32


def random_position(rng: np.random.Generator, size: float, canvas: int, cut_prob: float = 0.15) -> tuple[float, float]:
    """Top-left corner for a box of `size`: inside the canvas, or (with `cut_prob`) reaching past one
    border while keeping at least MIN_VISIBLE of the box on the canvas."""
    x, y = (float(v) for v in rng.uniform(0, canvas - size, 2))
    if rng.random() < cut_prob:
        cut = float(rng.uniform(0.05, 1 - MIN_VISIBLE)) * size
        side = int(rng.integers(4))
        if side == 0:
            x = -cut
        elif side == 1:
            x = canvas - size + cut
        elif side == 2:
            y = -cut
        else:
            y = canvas - size + cut
    return x, y


# --- the sets ---------------------------------------------------------------------------------

def single_objects(n: int, seed: int, canvas: int = 32, cut_prob: float = 0.15) -> list[Drawn]:
    """`n` images of one object each: shapes in turn, random size, colour, position (a share
    `cut_prob` cut by the border) and degradation."""
    rng = np.random.default_rng([seed, 1])
    lo, hi = scale_sizes(canvas)
    out = []
    for i in range(n):
        size = float(rng.uniform(lo, hi))
        x, y = random_position(rng, size, canvas, cut_prob)
        obj = random_look(rng, SHAPES[i % len(SHAPES)], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))], x, y, size)
        out.append(draw([obj], random_degradation(rng), rng, canvas))
    return out


def touching_pairs(n: int, seed: int, canvas: int = 32) -> list[Drawn]:
    """`n` images of two objects of one colour touching (gap -0.5..0.5 px) side by side, one above
    the other, or corner to corner; random shapes and sizes (6..12 px on 32x32)."""
    rng = np.random.default_rng([seed, 2])
    out = []
    for _ in range(n):
        a, b = (float(v) * canvas / 32 for v in rng.uniform(6, 12, 2))
        gap = float(rng.uniform(-0.5, 0.5))
        direction = int(rng.integers(3))  # 0 side by side, 1 above/below, 2 diagonal
        dx = a + gap if direction != 1 else float(rng.uniform(-0.3, 0.3)) * a
        dy = a + gap if direction != 0 else float(rng.uniform(-0.3, 0.3)) * a
        x0 = float(rng.uniform(-min(0.0, dx), canvas - max(a, dx + b)))  # the pair inside the canvas
        y0 = float(rng.uniform(-min(0.0, dy), canvas - max(a, dy + b)))
        color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        shapes = [SHAPES[int(i)] for i in rng.integers(len(SHAPES), size=2)]
        objs = [random_look(rng, shapes[0], color, x0, y0, a), random_look(rng, shapes[1], color, x0 + dx, y0 + dy, b)]
        out.append(draw(objs, random_degradation(rng), rng, canvas))
    return out


GARBAGE_KINDS = ("uniform_noise", "colour_noise", "flat_palette", "flat_random", "giant_blob")


def garbage(n: int, seed: int, canvas: int = 32) -> list[tuple[str, np.ndarray]]:
    """`n` images that show no object, kinds in turn: uniform noise, Gaussian noise (sigma 0.1-0.4)
    around a random colour, a flat palette colour, a flat random colour, and one shape too large
    to be an object (side 0.8-1.5 x the canvas, its box over at least 3/4 of the canvas each way)."""
    rng = np.random.default_rng([seed, 3])
    out = []
    for i in range(n):
        kind = GARBAGE_KINDS[i % len(GARBAGE_KINDS)]
        if kind == "uniform_noise":
            img = rng.integers(0, 256, (canvas, canvas, 3))
        elif kind == "colour_noise":
            img = rng.uniform(0, 255, 3) + rng.normal(0, float(rng.uniform(0.1, 0.4)) * 255, (canvas, canvas, 3))
        elif kind == "flat_palette":
            img = np.broadcast_to(np.array(COLORS[COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]]), (canvas, canvas, 3))
        elif kind == "flat_random":
            img = np.broadcast_to(rng.uniform(0, 255, 3), (canvas, canvas, 3))
        else:  # its box covers at least 3/4 of the canvas each way
            size = float(rng.uniform(0.8, 1.5)) * canvas
            x, y = (float(v) for v in rng.uniform(0.75 * canvas - size, 0.25 * canvas, 2))
            obj = random_look(rng, SHAPES[int(rng.integers(len(SHAPES)))], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))],
                              x, y, size)
            img = draw([obj], random_degradation(rng), rng, canvas).image
        out.append((kind, np.clip(np.rint(img), 0, 255).astype(np.uint8)))
    return out


def from_scene(objects, rng: np.random.Generator, canvas: int = 32, jitter: float = 0.25) -> list[DrawnObject]:
    """World scene objects -> drawn objects: each side scaled by 1 +- `jitter` about its centre
    and shifted up to half a pixel, with a random look."""
    out = []
    for o in objects:
        size = o.size * float(rng.uniform(1 - jitter, 1 + jitter * 0.6))
        cx, cy = (o.x + o.size / 2 + float(rng.uniform(-0.5, 0.5)), o.y + o.size / 2 + float(rng.uniform(-0.5, 0.5)))
        out.append(random_look(rng, o.shape, o.color, cx - size / 2, cy - size / 2, size))
    return out
