"""Scenes of the shapes world: objects, placement under constraints, rendering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import relative_position
from .palette import BACKGROUND, COLORS
from .templates import SHAPES, shape_mask

DEFAULT_CANVAS = 32
SIZE_RANGE_32 = (7, 12)  # object box side in pixels on the 32x32 canvas; scales with the canvas
MIN_GAP_32 = 2  # minimum empty pixels between two object boxes
MAX_TRIES = 400


class PlacementError(RuntimeError):
    """The requested objects/relations could not be placed on the canvas."""


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    x: int  # left column of the box
    y: int  # top row of the box
    size: int  # box side in pixels

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), exclusive end, as GenEval's boxes."""
        return (self.x, self.y, self.x + self.size, self.y + self.size)


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    color: str


def size_range(canvas: int) -> tuple[int, int]:
    scale = canvas / 32
    return round(SIZE_RANGE_32[0] * scale), round(SIZE_RANGE_32[1] * scale)


def render(objects: list[SceneObject], canvas: int = DEFAULT_CANVAS) -> np.ndarray:
    """Draw objects (later ones on top) -> (canvas, canvas, 3) uint8 image."""
    image = np.empty((canvas, canvas, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for obj in objects:
        if obj.shape not in SHAPES:
            raise ValueError(f"unknown shape {obj.shape!r}")
        if obj.color not in COLORS:
            raise ValueError(f"unknown colour {obj.color!r}")
        mask = shape_mask(obj.shape, obj.size)
        region = image[obj.y : obj.y + obj.size, obj.x : obj.x + obj.size]  # (s, s, 3) view
        region[mask] = COLORS[obj.color]
    return image


def _apart(a: tuple, b: tuple, gap: int) -> bool:
    """Boxes a, b (x0, y0, x1, y1) separated by at least `gap` empty pixels on some axis."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def place(
    specs: list[ObjectSpec],
    rng: np.random.Generator,
    canvas: int = DEFAULT_CANVAS,
    relations: list[tuple[int, str, int]] = (),
) -> list[SceneObject]:
    """Place objects without overlap (min gap) so that every (i, relation, j) holds exactly:
    GenEval's rule gives object i relative to object j the single relation `relation`."""
    lo, hi = size_range(canvas)
    gap = max(1, round(MIN_GAP_32 * canvas / 32))
    for attempt in range(MAX_TRIES):
        shrink = attempt // (MAX_TRIES // 4)  # crowded scenes: allow smaller objects after failures
        top = max(lo, hi - 2 * shrink)
        placed: list[SceneObject] = []
        for spec in specs:
            for _ in range(50):
                size = int(rng.integers(lo, top + 1))
                x = int(rng.integers(0, canvas - size + 1))
                y = int(rng.integers(0, canvas - size + 1))
                cand = SceneObject(spec.shape, spec.color, x, y, size)
                if all(_apart(cand.box, other.box, gap) for other in placed):
                    placed.append(cand)
                    break
            else:
                break
        if len(placed) == len(specs) and all(
            relative_position(placed[i].box, placed[j].box) == {rel} for i, rel, j in relations
        ):
            return placed
    raise PlacementError(f"could not place {len(specs)} objects with relations {list(relations)}")


def _choice(rng: np.random.Generator, options, exclude=()) -> str:
    pool = [o for o in options if o not in exclude]
    return pool[int(rng.integers(len(pool)))]


def scene_from_metadata(
    metadata: dict,
    rng: np.random.Generator,
    canvas: int = DEFAULT_CANVAS,
    distractors: int = 0,
) -> list[SceneObject]:
    """A scene that satisfies GenEval metadata (ground truth). Unnamed colours are random.
    `distractors` extra objects use only shape classes the metadata does not name, so they
    cannot change GenEval's verdict."""
    specs: list[ObjectSpec] = []
    groups: list[list[int]] = []  # include item -> indices of its objects in specs
    for item in metadata["include"]:
        idx = []
        for _ in range(int(item["count"])):
            idx.append(len(specs))
            specs.append(ObjectSpec(item["class"], item.get("color") or _choice(rng, COLORS)))
        groups.append(idx)
    relations = []
    for g, item in enumerate(metadata["include"]):
        if "position" in item:
            rel, target = item["position"]
            relations += [(i, rel, j) for i in groups[g] for j in groups[int(target)]]
    named = {item["class"] for item in metadata["include"]} | {
        item["class"] for item in metadata.get("exclude", [])
    }
    free_shapes = [s for s in SHAPES if s not in named]
    if free_shapes:
        for _ in range(distractors):
            specs.append(ObjectSpec(_choice(rng, free_shapes), _choice(rng, COLORS)))
    return place(specs, rng, canvas, relations)
