"""Object detector for the shapes world (stands in for GenEval's Mask2Former).

1. Quantise: every pixel gets the nearest palette entry, where a colour also stands for its
   blends with the background (see `quantise`); 0 = background.
2. Foreground pixels form 8-connected components; components smaller than `min_area` (10 px
   on 32x32, scaled with the canvas area) are dropped.
3. Refusals: a component wider or taller than MAX_SIDE (20 px on 32x32; the world draws 7..12,
   the models up to ~16), whose interior colours spread like noise (MAX_SPREAD) or whose
   surround's mean colour is not the world's background (MAX_SURROUND: drawn on coloured noise)
   is no object:
   it is kept with confidence 0, so it never passes a threshold but still counts as something
   drawn where every component counts (class accuracy).
4. Colour = the palette colour nearest to the mean of the component's interior (its pixels
   after a 1-px erosion), each colour standing for its shades from MIN_SHADE to full.
5. Shape and confidence from the soft drawing (`shapefit.classify_soft`): the object's alpha
   map is compared with each shape drawn in a box fitted from blur-invariant features; the best
   fit (soft IoU) is the confidence: 1.0 for the world's own renders.
6. Touching objects: a component of several colours is split by colour when every piece fits
   better than the whole; a one-colour component that fits worse than SPLIT_BELOW (or is too
   large) is split when the shapes say two: cores left by erosion, or straight cuts across an
   elongated one, kept when every part fits SPLIT_MARGIN better than the whole and above
   THRESHOLD.

Output follows GenEval's detector: `{class: [Detection, ...]}`, each list sorted by
confidence (highest first), at most MAX_OBJECTS per class.

Thresholds. GenEval keeps detections scoring > 0.3 (THRESHOLD) and, for counting prompts,
> 0.9 (COUNTING_THRESHOLD): "plausibly an object" and "clearly an object". Our confidence is a
shape fit, not a detector score, so each keeps its meaning, not its number, calibrated on the
degraded renders (`degraded.py`, seeds 1-2; docs/evaluation.md has the measurement): true objects
score 1.0 clean, >= 0.81 soft and small (5th percentile 0.85-0.95 by shape and size); the parts
of two touching objects split apart >= 0.68 (1st percentile 0.77); a shape that is none of the
three (a 2:1 rectangle, a triangle in its square box) about 0.5. GenEval's 0.3 -> 0.6 and its
0.9 -> 0.7 here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..worlds.shapes.palette import COLOR_NAMES, PALETTE_ARRAY
from ..worlds.shapes.templates import SHAPES
from .shapefit import classify_soft, object_alpha

# GenEval's constants (evaluate_images.py) and their values on our confidence (shape fit).
GENEVAL_THRESHOLD, GENEVAL_COUNTING_THRESHOLD = 0.3, 0.9
THRESHOLD = 0.6  # GenEval's 0.3: plausibly an object
COUNTING_THRESHOLD = 0.7  # GenEval's 0.9 for counting prompts: clearly an object
MAX_OBJECTS = 16  # per class, as GenEval
MIN_AREA_32 = 10  # minimum component area in pixels on a 32x32 canvas
MAX_SIDE_32 = 20  # a component wider or taller than this (32x32; the world draws 7..12) is no object
MAX_SPREAD = 0.5  # interior colour spread (mean distance from its mean / distance from the background)
MAX_SURROUND = 30.0  # RGB distance of the mean colour around an object from the world's background
MIN_SHADE = 0.9  # an object's colour is a palette colour at 90-100% of its strength
ALPHA_FLOOR = 0.05  # alpha below this is background noise
PAD = 2  # pixels around a component's box where its soft edge is read
SPLIT_BELOW = 0.9  # a one-colour component fitting worse than this may be two touching objects
SPLIT_ASPECT = 1.4  # ... and if this elongated, straight cuts across it are tried too
MAX_PART_32 = 16  # ... into parts no wider or taller than this (the models draw up to ~16 px)
SPLIT_MARGIN = 0.05  # a split must fit every part this much better than the whole
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive end, like SceneObject.box
    mask: np.ndarray  # (y1 - y0, x1 - x0) bool: the component inside its box
    color: str
    confidence: float  # shape fit (soft IoU) in [0, 1]; 0 for refused components
    shape: str

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def min_area_for(canvas: int) -> int:
    return max(1, round(MIN_AREA_32 * (canvas / 32) ** 2))


def max_side_for(canvas: int) -> int:
    return round(MAX_SIDE_32 * canvas / 32)


_BG = PALETTE_ARRAY[0]
_DIRS = PALETTE_ARRAY[1:] - _BG  # (K, 3): background -> colour
_DIRS_N2 = (_DIRS**2).sum(-1)  # (K,)


def quantise(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float in 0..255 -> (H, W) int palette index (0 = background).

    Nearest palette entry where each colour stands for its blends with the background: among
    the colours whose segment background->colour the pixel lies at least half-way along, it
    takes the one whose segment passes closest, and it is foreground when that colour explains
    it better than the background does. On pure palette pixels this is the nearest-palette
    rule; on blurred or anti-aliased edges it keeps the object's own colour instead of a
    neighbouring palette colour (white at 60% would be nearest to purple); a muddy colour
    (green with some pink) stays foreground instead of passing for faint white.
    """
    d = np.asarray(image, dtype=np.float32)[..., :3] - _BG  # (H, W, 3)
    alpha = np.clip(d @ _DIRS.T / _DIRS_N2, 0.0, 1.0)  # (H, W, K): position along each segment
    resid = ((d[..., None, :] - alpha[..., None] * _DIRS) ** 2).sum(-1)  # (H, W, K)
    resid = np.where(alpha >= 0.5, resid, np.inf)
    best = resid.argmin(-1)  # (H, W)
    fg = np.take_along_axis(resid, best[..., None], -1)[..., 0] < (d**2).sum(-1)
    return np.where(fg, best + 1, 0)


def colour_index(rgb: np.ndarray) -> int:
    """Index into COLOR_NAMES of the palette colour nearest to an object's mean interior colour,
    each colour standing for its shades from MIN_SHADE to full (interiors are solid; a darker
    shade of a light colour must not win over a muddy version of a darker one)."""
    d = np.asarray(rgb, dtype=np.float32) - _BG  # (3,)
    alpha = np.clip(_DIRS @ d / _DIRS_N2, MIN_SHADE, 1.0)  # (K,)
    return int(((d[None] - alpha[:, None] * _DIRS) ** 2).sum(-1).argmin())


def _components(mask: np.ndarray, min_area: int) -> list[tuple[slice, slice, np.ndarray]]:
    """8-connected components of a bool mask with at least `min_area` pixels:
    (row slice, col slice, tight bool mask)."""
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    out = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is not None:
            piece = labels[sl] == i
            if np.count_nonzero(piece) >= min_area:
                out.append((sl[0], sl[1], piece))
    return out


class _Image:
    """One image's pixels, palette labels and foreground, shared by its components."""

    def __init__(self, image: np.ndarray, min_area: int | None):
        self.pixels = np.asarray(image, dtype=np.float32)[..., :3]  # (H, W, 3)
        self.labels = quantise(self.pixels)  # (H, W)
        self.size = self.labels.shape[0]
        self.min_area = min_area or min_area_for(self.size)
        self.max_side = max_side_for(self.size)
        self.max_part = round(MAX_PART_32 * self.size / 32)

    def detection(self, rows: slice, cols: slice, piece: np.ndarray) -> Detection:
        """A component (tight bool mask `piece` at rows x cols) -> Detection."""
        inner, solid = self.interior(rows, cols, piece)  # (n, 3)
        mean = inner.mean(0)  # (3,) the object's own colour, shifts and all
        k = colour_index(mean)
        box = (cols.start, rows.start, cols.stop, rows.stop)
        if max(piece.shape) > self.max_side or (solid and self.noisy(inner)):  # a fill, a giant blob, noise
            return Detection(box, piece, COLOR_NAMES[k], 0.0, SHAPES[0])
        alpha, cut, patch_box, surround = self._alpha(rows, cols, piece, mean)
        if surround > MAX_SURROUND:  # drawn on noise, not on the world's background
            return Detection(box, piece, COLOR_NAMES[k], 0.0, SHAPES[0])
        shape, confidence = classify_soft(alpha, cut, patch_box)
        return Detection(box, piece, COLOR_NAMES[k], confidence, shape)

    def interior(self, rows: slice, cols: slice, piece: np.ndarray) -> tuple[np.ndarray, bool]:
        """(n, 3) pixels of the component after a 1-px erosion (all of them if none is left), and
        whether any was left (a component too small to have an interior cannot look noisy)."""
        core = ndimage.binary_erosion(piece, structure=_EIGHT, border_value=0)
        return self.pixels[rows, cols][core if core.any() else piece], bool(core.any())

    @staticmethod
    def noisy(inner: np.ndarray) -> bool:
        """Whether interior colours spread more than MAX_SPREAD x their distance from the
        background (noise, not a drawn object)."""
        mean = inner.mean(0)
        spread = float(np.linalg.norm(inner - mean, axis=1).mean())
        return spread > MAX_SPREAD * max(float(np.linalg.norm(mean - _BG)), 1.0)

    def _alpha(self, rows: slice, cols: slice, piece: np.ndarray, colour: np.ndarray):
        """The object's alpha patch (its box padded by PAD, other objects' pixels zeroed), which
        sides of the patch are the canvas border (left, right, top, bottom), the component's box
        in the patch, and how far the mean colour of its surround (background pixels of the patch
        not next to it) lies from the background colour (pixel noise averages out, a coloured
        ground does not)."""
        n = self.size
        r0, r1 = max(rows.start - PAD, 0), min(rows.stop + PAD, n)
        c0, c1 = max(cols.start - PAD, 0), min(cols.stop + PAD, n)
        alpha = object_alpha(self.pixels[r0:r1, c0:c1], colour, _BG)  # (h, w)
        own = np.zeros(alpha.shape, dtype=bool)
        own[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = piece
        labels = self.labels[r0:r1, c0:c1]
        alpha[((labels > 0) & ~own) | (alpha < ALPHA_FLOOR)] = 0.0
        ring = (labels == 0) & ~ndimage.binary_dilation(own, structure=_EIGHT)
        surround = float(np.linalg.norm(self.pixels[r0:r1, c0:c1][ring].mean(0) - _BG)) if ring.any() else 0.0
        cut = (cols.start == 0, cols.stop == n, rows.start == 0, rows.stop == n)
        return alpha, cut, (cols.start - c0, rows.start - r0, cols.stop - c0, rows.stop - r0), surround

    def pieces(self, rows: slice, cols: slice, piece: np.ndarray, mask: np.ndarray) -> list[Detection]:
        """Detections of the components of `piece & mask` (mask in the piece's box)."""
        return [self.detection(slice(rows.start + r.start, rows.start + r.stop),
                               slice(cols.start + c.start, cols.start + c.stop), p)
                for r, c, p in _components(piece & mask, self.min_area)]


def _cuts(piece: np.ndarray) -> list[np.ndarray]:
    """Ways to split one same-colour component into two objects, as (h, w) int part labels:
    cores (the component eroded until it falls apart, every pixel given to its nearest core),
    and, for an elongated component, straight cuts across its long axis near the middle."""
    out = []
    eroded = piece
    for _ in range(3):
        eroded = ndimage.binary_erosion(eroded, structure=_EIGHT, border_value=0)
        cores, n = ndimage.label(eroded, structure=_EIGHT)
        if n >= 2:
            _, (iy, ix) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
            out.append(np.where(piece, cores[iy, ix], 0))
            break
        if n == 0:
            break
    h, w = piece.shape
    if max(h, w) >= SPLIT_ASPECT * min(h, w):
        axis_len = max(h, w)
        for k in range(axis_len // 3, axis_len - axis_len // 3 + 1):
            part = np.zeros(piece.shape, dtype=np.int32)
            if w >= h:
                part[:, :k], part[:, k:] = 1, 2
            else:
                part[:k], part[k:] = 1, 2
            out.append(np.where(piece, part, 0))
    return out


def detect_all(image: np.ndarray, min_area: int | None = None) -> list[Detection]:
    """Every object in the image (no confidence threshold), in no particular order. Refused
    components (noise, flat fills, giant blobs) are kept with confidence 0."""
    img = _Image(image, min_area)
    found: list[Detection] = []
    for rows, cols, piece in _components(img.labels > 0, img.min_area):
        colours = img.labels[rows, cols]
        whole = img.detection(rows, cols, piece)
        present = [c for c in np.unique(colours[piece]) if (colours[piece] == c).sum() >= img.min_area]
        if len(present) > 1:  # maybe touching objects of different colours: try splitting by colour
            parts = [d for c in present for d in img.pieces(rows, cols, piece, colours == c)]
            if len(parts) > 1 and min(p.confidence for p in parts) > whole.confidence:
                found += parts
                continue
        splittable = piece.sum() >= 2 * img.min_area and not img.noisy(img.interior(rows, cols, piece)[0])
        if whole.confidence < SPLIT_BELOW and splittable:
            best: list[Detection] = []
            for labels in _cuts(piece):  # maybe touching objects of one colour: split where shapes say two
                parts = [d for i in range(1, int(labels.max()) + 1) for d in img.pieces(rows, cols, piece, labels == i)]
                if len(parts) < 2 or max(max(p.mask.shape) for p in parts) > img.max_part:
                    continue  # a giant blob cut in pieces is still no object
                if not best or min(p.confidence for p in parts) > min(p.confidence for p in best):
                    best = parts
            if best and min(p.confidence for p in best) > max(whole.confidence + SPLIT_MARGIN, THRESHOLD):
                found += best
                continue
        found.append(whole)
    return found


def group(detections: list[Detection], threshold: float, max_objects: int = MAX_OBJECTS) -> dict[str, list[Detection]]:
    """GenEval's per-class list: confidence > threshold, sorted, at most `max_objects`."""
    out: dict[str, list[Detection]] = {}
    for det in sorted(detections, key=lambda d: -d.confidence):
        if det.confidence > threshold and len(out.setdefault(det.shape, [])) < max_objects:
            out[det.shape].append(det)
    return {k: v for k, v in out.items() if v}


def detect(image: np.ndarray, threshold: float = THRESHOLD, min_area: int | None = None) -> dict[str, list[Detection]]:
    """GenEval-like detections: {class: [Detection, ...]} sorted by confidence."""
    return group(detect_all(image, min_area), threshold)
