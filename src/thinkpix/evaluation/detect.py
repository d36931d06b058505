"""Exact object detector for the shapes world (stands in for GenEval's Mask2Former).

1. Quantise: every pixel gets the nearest palette entry, where a colour also stands for its
   blends with the background (see `quantise`); 0 = background.
2. Foreground pixels form 8-connected components; components smaller than `min_area` (10 px
   on 32x32, scaled with the canvas area) are dropped.
3. A component made of several colours that each form well-shaped pieces (two touching
   objects of different colours) is split into those pieces; otherwise it is one object whose
   colour is the majority colour of its interior (its pixels after a 1-px erosion, or all of
   them when the erosion leaves none).
4. Shape class = the template (`shape_mask`, plain or softened as by a 3x3 blur) with the best
   IoU against the component, over template sides box-side-1..+1 and every alignment of the
   two boxes, so a non-square component fits badly. Confidence = that best IoU.

Output follows GenEval's detector: `{class: [Detection, ...]}`, each list sorted by
confidence (highest first), at most MAX_OBJECTS per class.

Thresholds. GenEval keeps detections scoring > 0.3 (THRESHOLD) and, for counting prompts,
> 0.9 (COUNTING_THRESHOLD): "plausibly an object" and "clearly an object". On our confidence
(template IoU) true objects score 1.0 clean and under sigma-0.05 noise, >= 0.93 under a 3x3
Gaussian blur and >= 0.78 under a 3x3 box blur; two touching same-colour objects merged into
one blob score 0.41-0.68 (median 0.56), and a 2:1 rectangle or a triangle inside its square
box 0.5, i.e. no shape evidence. So GenEval's 0.3 maps to IoU 0.6 and its 0.9 to IoU 0.75;
THRESHOLD and COUNTING_THRESHOLD below are these IoU values. (A linear map of GenEval's scale
onto [0.5, 1] would demand IoU 0.95 for counting and reject blurred but countable objects.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..worlds.palette import COLOR_NAMES, PALETTE_ARRAY
from ..worlds.shapes import SHAPES, shape_mask

# GenEval's constants (evaluate_images.py) and their values on our confidence (template IoU).
GENEVAL_THRESHOLD, GENEVAL_COUNTING_THRESHOLD = 0.3, 0.9
THRESHOLD = 0.6  # GenEval's 0.3: plausibly an object
COUNTING_THRESHOLD = 0.75  # GenEval's 0.9 for counting prompts: clearly an object
MAX_OBJECTS = 16  # per class, as GenEval
MIN_AREA_32 = 10  # minimum component area in pixels on a 32x32 canvas
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive end, like SceneObject.box
    mask: np.ndarray  # (y1 - y0, x1 - x0) bool: the component inside its box
    color: str
    confidence: float  # best template IoU in [0, 1]
    shape: str

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def min_area_for(canvas: int) -> int:
    return max(1, round(MIN_AREA_32 * (canvas / 32) ** 2))


_BG = PALETTE_ARRAY[0]
_DIRS = PALETTE_ARRAY[1:] - _BG  # (K, 3): background -> colour
_DIRS_N2 = (_DIRS**2).sum(-1)  # (K,)


def quantise(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float in 0..255 -> (H, W) int palette index (0 = background).

    Nearest palette entry where each colour stands for its blends with the background: a
    pixel takes the colour whose segment background->colour passes closest, and is
    foreground when it lies at least half-way along that segment. On pure palette pixels this
    is the nearest-palette rule; on blurred or anti-aliased edges it keeps the object's own
    colour instead of a neighbouring palette colour (white at 60% would be nearest to purple).
    """
    d = np.asarray(image, dtype=np.float32)[..., :3] - _BG  # (H, W, 3)
    alpha = np.clip(d @ _DIRS.T / _DIRS_N2, 0.0, 1.0)  # (H, W, K): position along each segment
    resid = ((d[..., None, :] - alpha[..., None] * _DIRS) ** 2).sum(-1)  # (H, W, K)
    best = resid.argmin(-1)  # (H, W)
    fg = np.take_along_axis(alpha, best[..., None], -1)[..., 0] >= 0.5
    return np.where(fg, best + 1, 0)


def _tight(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@lru_cache(maxsize=None)
def _templates(shape: str, size: int) -> tuple[np.ndarray, ...]:
    """`shape_mask` and its softened version, each cropped to its own tight box. Softened =
    what survives a 3x3 box blur and re-quantisation (pixels covered > 1/2 of their 3x3
    neighbourhood): corners and apexes rounded, as in blurry or anti-aliased drawings."""
    mask = shape_mask(shape, size)
    cover = ndimage.uniform_filter(np.pad(mask, 1).astype(np.float32), 3, mode="constant")[1:-1, 1:-1]
    soft = cover > 0.5
    return (_tight(mask), _tight(soft)) if soft.any() else (_tight(mask),)


def _best_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Best IoU of two tight masks over alignments where one box lies inside the other on
    each axis (the smaller side slides along the larger)."""
    (ha, wa), (hb, wb) = a.shape, b.shape
    h, w = max(ha, hb), max(wa, wb)
    area = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    best = 0.0
    for dy in range(h - min(ha, hb) + 1):
        ya, yb = (0, dy) if ha >= hb else (dy, 0)
        oy0, oy1 = max(ya, yb), min(ya + ha, yb + hb)
        for dx in range(w - min(wa, wb) + 1):
            xa, xb = (0, dx) if wa >= wb else (dx, 0)
            ox0, ox1 = max(xa, xb), min(xa + wa, xb + wb)
            sub_a = a[oy0 - ya : oy1 - ya, ox0 - xa : ox1 - xa]
            sub_b = b[oy0 - yb : oy1 - yb, ox0 - xb : ox1 - xb]
            inter = int(np.count_nonzero(sub_a & sub_b))
            best = max(best, inter / (area - inter))
    return best


def classify(mask: np.ndarray) -> tuple[str, float]:
    """Tight (h, w) component mask -> (shape class, best IoU over shapes/sizes/alignments)."""
    side = max(mask.shape)
    best_shape, best = SHAPES[0], -1.0
    for shape in SHAPES:
        for size in (side - 1, side, side + 1):
            for template in _templates(shape, size) if size >= 1 else ():
                iou = _best_iou(mask, template)
                if iou > best:
                    best_shape, best = shape, iou
    return best_shape, best


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


def _detection(rows: slice, cols: slice, piece: np.ndarray, colours: np.ndarray) -> Detection:
    """colours: palette indices of the component's box (same shape as piece)."""
    shape, iou = classify(piece)
    core = ndimage.binary_erosion(piece, structure=_EIGHT, border_value=0)
    counts = np.bincount(colours[core if core.any() else piece], minlength=len(COLOR_NAMES) + 1)
    counts[0] = 0
    color = COLOR_NAMES[int(counts.argmax()) - 1]
    box = (cols.start, rows.start, cols.stop, rows.stop)
    return Detection(box, piece, color, float(iou), shape)


def detect_all(image: np.ndarray, min_area: int | None = None) -> list[Detection]:
    """Every object in the image (no confidence threshold), in no particular order."""
    labels = quantise(image)
    min_area = min_area or min_area_for(labels.shape[0])
    found: list[Detection] = []
    for rows, cols, piece in _components(labels > 0, min_area):
        colours = labels[rows, cols]
        whole = _detection(rows, cols, piece, colours)
        present = [c for c in np.unique(colours[piece]) if (colours[piece] == c).sum() >= min_area]
        if len(present) > 1:  # maybe touching objects of different colours: try splitting by colour
            parts = [
                _detection(slice(rows.start + r.start, rows.start + r.stop),
                           slice(cols.start + c.start, cols.start + c.stop), p, colours[r, c])
                for colour in present
                for r, c, p in _components(piece & (colours == colour), min_area)
            ]
            if len(parts) > 1 and min(p.confidence for p in parts) > whole.confidence:
                found += parts
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
