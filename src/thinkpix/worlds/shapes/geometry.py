"""GenEval's relative-position rule, shared by the scene sampler and the evaluator.

A box is (x0, y0, x1, y1) in pixels, y growing downwards.
"""

from __future__ import annotations

import numpy as np

POSITION_THRESHOLD = 0.1  # margin: 0.1 x (summed box sizes), as in GenEval
DIRECTION_CUTOFF = 0.5
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")


def relative_position(box_a, box_b) -> set[str]:
    """Relations of A relative to B (a subset of RELATIONS), GenEval's rule exactly."""
    boxes = np.array([box_a, box_b], dtype=np.float64)[:, :4].reshape(2, 2, 2)  # (obj, corner, xy)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -DIRECTION_CUTOFF:
        relations.add("left of")
    if dx > DIRECTION_CUTOFF:
        relations.add("right of")
    if dy < -DIRECTION_CUTOFF:
        relations.add("above")
    if dy > DIRECTION_CUTOFF:
        relations.add("below")
    return relations


OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
