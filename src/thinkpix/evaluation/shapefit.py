"""Shape class of one object from its soft (anti-aliased, blurred) drawing.

The object's alpha map A (how far each pixel lies from the background towards the object's
colour, 0..1, see `object_alpha`) is compared with each shape drawn in the same box, and the
class is the shape that fits best. The box comes from blur-invariant features of A:

- soft extents: the sum over columns of each column's maximum is the object's width whatever
  the blur (a blurred edge loses on one side what it gains on the other), and likewise for
  rows; all three shapes fill a square box, so side = the larger extent;
- centre: the centroid of those column / row maxima (every shape is symmetric left-right, and
  the row maxima of a triangle are flat, so this is the box centre);
- cut by the border: along a cut axis the object's visible edge (where the profile crosses 0.5)
  and the side from the other axis place the box instead.

In that box each shape is drawn as the world draws it (hard, pixels covered at least half) and
anti-aliased with Gaussian blurs of sigma 0, 0.5 and 1 (`BLURS`); fit = soft IoU
sum(min(A, T)) / sum(max(A, T)). A circle's four box corners are empty at every size and blur,
a square's are full, a triangle's top corners are empty and its apex narrow: the shapes differ
where the template comparison looks (corner occupancy and the radial profile, in effect), not at
the binarised outline, which blur and small sizes wash out. Confidence = the best fit: 1.0 on
the world's own renders, about 0.85-0.95 on soft drawings, 0.3-0.6 for most shapes that are none
of the three (an L, a ring, a bar).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..worlds.shapes.templates import SHAPES, coverage, shape_mask

BLURS = (0.0, 0.5, 1.0)  # Gaussian sigmas (pixels) of the soft templates; the hard drawing is tried too
SUPERSAMPLE = 4  # sub-pixel grid of the templates
MIN_CUT_SHOWN = 0.4  # an object cut by the border is fitted as cut if at least this share of its side shows


def object_alpha(patch: np.ndarray, colour: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(h, w, 3) float pixels -> (h, w) position along background -> colour, clipped to 0..1."""
    direction = colour - background  # (3,)
    norm2 = float(direction @ direction)
    if norm2 < 1e-6:
        return np.zeros(patch.shape[:2], dtype=np.float32)
    return np.clip((patch - background) @ direction / norm2, 0.0, 1.0).astype(np.float32)


def _edge(profile: np.ndarray, from_end: bool) -> float:
    """Sub-pixel position where a 0..1 profile first rises to 0.5, scanning from the start
    (or from the end), as a coordinate in pixel units (pixel i spans [i, i + 1])."""
    p = profile[::-1] if from_end else profile
    above = np.flatnonzero(p >= 0.5)
    if not len(above):
        return float(len(p) if not from_end else 0)
    i = int(above[0])
    prev = float(p[i - 1]) if i > 0 else 0.0
    t = (0.5 - prev) / max(float(p[i]) - prev, 1e-6)  # 0..1 of the way from centre i - 1 to centre i
    pos = i - 0.5 + t  # pixel i's centre is at i + 0.5
    return float(len(p) - pos) if from_end else pos


FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}  # area / box area


def fit_boxes(alpha: np.ndarray, cut: tuple[bool, bool, bool, bool]) -> dict[str, list[tuple[float, float, float]]]:
    """Candidate boxes (x0, y0, side) of the object in `alpha` (patch coordinates), for each shape
    class it may be. Side: from the mass (sum of alpha, which blur keeps) and the shape's fill;
    position: the centre of the column / row maxima, except that a triangle's box stands on its
    base (the bottom edge; its apex fades first under blur). `cut` = the object reaches the
    (left, right, top, bottom) side of the patch where the canvas ends: then it may be cut, and a
    second box is tried, its side the larger soft extent, placed against the visible edges, unless
    less than MIN_CUT_SHOWN of it shows across the cut."""
    cols, rows = alpha.max(0), alpha.max(1)  # (w,), (h,)
    width, height = float(cols.sum()), float(rows.sum())
    mass, extent = float(alpha.sum()), max(width, height, 1.0)
    shown = min(width if cut[0] or cut[1] else extent, height if cut[2] or cut[3] else extent)
    out: dict[str, list[tuple[float, float, float]]] = {}
    for shape in SHAPES:
        out[shape] = []
        fits = [((False,) * 4, max(np.sqrt(mass / FILL[shape]), 1.0))]
        if any(cut) and shown >= MIN_CUT_SHOWN * extent:  # a sliver at the border could be any shape
            fits.append((cut, extent))
        for cut_here, side in fits:
            origin = []
            for axis, (profile, length, lo_cut, hi_cut) in enumerate(((cols, width, cut_here[0], cut_here[1]),
                                                                      (rows, height, cut_here[2], cut_here[3]))):
                if lo_cut and not hi_cut:
                    origin.append(_edge(profile, from_end=True) - side)
                elif hi_cut and not lo_cut:
                    origin.append(_edge(profile, from_end=False))
                elif axis == 1 and shape == "triangle":
                    origin.append(_edge(profile, from_end=True) - side)
                else:
                    centre = float((np.arange(len(profile)) + 0.5) @ profile) / max(length, 1e-6)
                    origin.append(centre - side / 2)
            out[shape].append((origin[0], origin[1], side))
    return out


MARGIN = 3  # pixels of blur tail kept around a template tile


@lru_cache(maxsize=8192)
def _tile(shape: str, fx: float, fy: float, side: float) -> np.ndarray:
    """(len(BLURS), n, n): the shape anti-aliased in a box of `side` whose corner sits at
    (MARGIN + fx, MARGIN + fy) of the tile, at each blur. Cached by sub-pixel phase, so every
    position of one size and phase shares it."""
    n = int(np.ceil(max(fx, fy) + side)) + 2 * MARGIN
    cover = coverage(shape, MARGIN + fx, MARGIN + fy, side, n, n, SUPERSAMPLE).astype(np.float32)
    return np.stack([ndimage.gaussian_filter(cover, sigma, mode="constant") if sigma else cover for sigma in BLURS])


def _soft(shape: str, x: float, y: float, side: float, h: int, w: int) -> np.ndarray:
    """(len(BLURS), h, w): the shape anti-aliased in the box at (x, y) of an (h, w) patch, at each blur."""
    ix, iy = int(np.floor(x)), int(np.floor(y))
    tile = _tile(shape, x - ix, y - iy, side)
    out = np.zeros((len(BLURS), h, w), dtype=np.float32)
    x0, y0 = ix - MARGIN, iy - MARGIN  # the tile's corner in the patch
    n = tile.shape[1]
    ys, xs = slice(max(y0, 0), min(y0 + n, h)), slice(max(x0, 0), min(x0 + n, w))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[:, ys, xs] = tile[:, ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return out


@lru_cache(maxsize=4096)
def _hard(shape: str, x: int, y: int, side: int, h: int, w: int) -> np.ndarray:
    """(1, h, w): the shape as the world draws it (`shape_mask`) with its box at (x, y)."""
    out = np.zeros((1, h, w), dtype=np.float32)
    mask = shape_mask(shape, side)
    ys, xs = slice(max(y, 0), min(y + side, h)), slice(max(x, 0), min(x + side, w))
    out[0, ys, xs] = mask[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
    return out


def _quarter(v: float) -> float:
    return round(v * 4) / 4  # 1/4 px: templates are cached by phase and size, and this makes them hit


def soft_iou(alpha: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """(h, w) and (n, h, w) -> (n,) sum(min) / sum(max)."""
    inter = np.minimum(alpha, templates).sum((1, 2))
    union = np.maximum(alpha, templates).sum((1, 2))
    return inter / np.maximum(union, 1e-6)


def classify_soft(alpha: np.ndarray, cut: tuple[bool, bool, bool, bool], box: tuple[int, int, int, int]
                  ) -> tuple[str, float]:
    """(h, w) alpha patch of one object (zero where other objects are), which patch sides are the
    canvas border, and the object's binarised box (x0, y0, x1, y1) in the patch -> (shape,
    confidence). The hard template sits in the binarised box: bottom-aligned (a triangle's apex
    row can be empty), or against the visible side when the object is cut by the border."""
    h, w = alpha.shape
    x0, y0, x1, y1 = box
    n = max(x1 - x0, y1 - y0)
    hx = x1 - n if cut[0] and not cut[1] else x0
    hy = y0 if cut[3] and not cut[2] else y1 - n
    hard = {shape: float(soft_iou(alpha, _hard(shape, hx, hy, n, h, w))[0]) for shape in SHAPES}
    best_shape = max(hard, key=hard.get)
    if hard[best_shape] >= 1.0:  # drawn exactly as the world draws it: nothing fits better
        return best_shape, 1.0
    boxes = fit_boxes(alpha, cut)
    best = -1.0
    for shape in SHAPES:
        score = hard[shape]
        for box in boxes[shape]:
            score = max(score, float(soft_iou(alpha, _soft(shape, *(_quarter(v) for v in box), h, w)).max()))
        if score > best:
            best_shape, best = shape, score
    return best_shape, best
