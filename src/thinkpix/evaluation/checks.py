"""Checks of the evaluator itself: ground truth must pass, controlled breaks must fail,
pixel noise and blur must not matter. Used by the tests and `benchmarks/bench_evaluator.py`.

A break edits the ground-truth object list of a scene, then renders it:
- `extra`    one more object of the counted class (counting prompts; GenEval penalises extra
             objects only there, through `exclude`);
- `missing`  one object of a named group removed (one too few, or the object gone);
- `colour`   one object of a coloured group given another colour (colors, color_attr);
- `relation` positions mirrored along the relation's axis, so "left of" becomes "right of"
             (position).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..worlds.shapes.palette import COLOR_NAMES
from ..worlds.shapes.scene import (
    DEFAULT_CANVAS, MIN_GAP_32, ObjectSpec, PlacementError, SceneObject, place, render, size_range,
)
from .truth_images import ground_truth, image_rng
from .runner import score_image

BREAKS: dict[str, tuple[str, ...]] = {
    "extra": ("counting",),
    "missing": ("single_object", "two_object", "counting", "colors", "position", "color_attr"),
    "colour": ("colors", "color_attr"),
    "relation": ("position",),
}
NOISE_SIGMA = 0.05  # on a 0..1 scale


def _groups(metadata: dict) -> list[range]:
    """Indices of each include item's objects in a ground-truth object list."""
    out, start = [], 0
    for item in metadata["include"]:
        out.append(range(start, start + int(item["count"])))
        start += int(item["count"])
    return out


def _free_spot(shape: str, color: str, objects: list[SceneObject], rng: np.random.Generator,
               canvas: int, tries: int = 2000) -> SceneObject:
    """A new object placed in free space, at least the scene's gap away from every box."""
    lo, hi = size_range(canvas)
    gap = max(1, round(MIN_GAP_32 * canvas / 32))
    for attempt in range(tries):
        size = int(rng.integers(lo, max(lo, hi - attempt * 6 // tries) + 1))  # smaller when crowded
        x, y = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
        if all(x + size + gap <= o.x or o.x + o.size + gap <= x or y + size + gap <= o.y
               or o.y + o.size + gap <= y for o in objects):
            return SceneObject(shape, color, x, y, size)
    raise PlacementError(f"no free spot for one more {shape}")


def break_scene(kind: str, metadata: dict, objects: list[SceneObject], rng: np.random.Generator,
                canvas: int = DEFAULT_CANVAS) -> list[SceneObject]:
    """A copy of `objects` broken in one controlled way (see module docstring)."""
    groups = _groups(metadata)
    objects = list(objects)
    if kind == "missing":
        g = groups[int(rng.integers(len(groups)))]
        del objects[g[int(rng.integers(len(g)))]]
        return objects
    if kind == "extra":
        color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        shape, named = metadata["include"][0]["class"], groups[-1].stop
        while True:  # a crowded scene gives up distractors (which never change the verdict) for room
            try:
                return objects + [_free_spot(shape, color, objects, rng, canvas)]
            except PlacementError:
                if len(objects) == named:  # still no room: place the same objects plus one anew
                    specs = [ObjectSpec(o.shape, o.color) for o in objects] + [ObjectSpec(shape, color)]
                    return place(specs, rng, canvas)
                objects.pop()
    if kind == "colour":
        coloured = [g for g, item in zip(groups, metadata["include"]) if "color" in item]
        g = coloured[int(rng.integers(len(coloured)))]
        i = g[int(rng.integers(len(g)))]
        others = [c for c in COLOR_NAMES if c != objects[i].color]
        o = objects[i]
        objects[i] = SceneObject(o.shape, others[int(rng.integers(len(others)))], o.x, o.y, o.size)
        return objects
    if kind == "relation":
        rel = next(item["position"][0] for item in metadata["include"] if "position" in item)
        horizontal = rel in ("left of", "right of")
        return [
            SceneObject(o.shape, o.color, canvas - o.x - o.size if horizontal else o.x,
                        o.y if horizontal else canvas - o.y - o.size, o.size)
            for o in objects
        ]
    raise ValueError(f"unknown break {kind!r}; known: {', '.join(BREAKS)}")


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """Gaussian pixel noise (sigma on a 0..1 scale), clipped and rounded back to uint8."""
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma * 255.0, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def blur(image: np.ndarray, kind: str = "gaussian") -> np.ndarray:
    """3x3 blur: 'gaussian' (binomial [1 2 1] x [1 2 1] / 16) or 'box' (mean of 3x3)."""
    f = image.astype(np.float32)
    if kind == "gaussian":
        k = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
        out = ndimage.convolve(f, k[:, :, None], mode="nearest")
    elif kind == "box":
        out = ndimage.uniform_filter(f, size=(3, 3, 1), mode="nearest")
    else:
        raise ValueError(f"unknown blur {kind!r}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _accuracy(rows: list[tuple[str, bool]]) -> dict:
    tasks: dict[str, list[bool]] = {}
    for tag, ok in rows:
        tasks.setdefault(tag, []).append(ok)
    per = {t: float(np.mean(v)) for t, v in tasks.items()}
    return {"tasks": per, "overall": float(np.mean(list(per.values()))),
            "pooled": float(np.mean([ok for _, ok in rows])), "images": len(rows)}


def must_show(metas: list[dict], images_per_prompt: int = 4, seed: int = 0,
              canvas: int = DEFAULT_CANVAS, distractors: int = 0) -> dict:
    """Every number the issue asks of the evaluator on this prompt set, in memory:
    ground truth, each perturbation, and each break's false-accept rate (per task)."""
    rows: dict[str, list[tuple[str, bool]]] = {k: [] for k in ("clean", "noise", "blur_gaussian", "blur_box")}
    broken: dict[str, list[tuple[str, bool]]] = {k: [] for k in BREAKS}
    for i, meta in enumerate(metas):
        tag = meta["tag"]
        for j in range(images_per_prompt):
            rng = image_rng(seed, i, j)
            objects = ground_truth(meta, rng, canvas, distractors)
            image = render(objects, canvas)
            variants = {"clean": image, "noise": add_noise(image, rng), "blur_gaussian": blur(image, "gaussian"),
                        "blur_box": blur(image, "box")}
            for name, img in variants.items():
                rows[name].append((tag, score_image(img, meta)["correct"]))
            for kind, tasks in BREAKS.items():
                if tag in tasks:
                    bad = render(break_scene(kind, meta, objects, rng, canvas), canvas)
                    broken[kind].append((tag, score_image(bad, meta)["correct"]))
    out = {name: _accuracy(r) for name, r in rows.items()}
    out["false_accept"] = {kind: _accuracy(r) for kind, r in broken.items()}
    return out
