"""Class accuracy of the class-conditional track, from the exact detector.

An image of class "red circle" is correct when the detector finds exactly one object in it (every
8-connected component of at least the minimum area counts, whatever its confidence) and that
object is a red circle: its colour is red and its shape is circle with template IoU above
THRESHOLD (GenEval's "plausibly an object"). A correct object plus a stray blob, two objects, no
object, a blob of no recognisable shape, or the wrong colour or shape are all wrong.
"""

from __future__ import annotations

import numpy as np

from ...evaluation.bootstrap import bootstrap_mean_interval
from ...evaluation.detect import THRESHOLD, detect_all
from .sets import CLASS_PARTS, CLASSES

BOOTSTRAP = 1000  # resamples for the accuracy's interval


def judge(image: np.ndarray, label: int) -> tuple[bool, str]:
    """(H, W, 3) uint8 image, class label -> (correct, reason)."""
    color, shape = CLASS_PARTS[label]
    found = detect_all(image)
    if len(found) != 1:
        return False, f"{len(found)} objects"
    d = found[0]
    if d.confidence <= THRESHOLD:
        return False, f"no clear shape (best: {d.shape}, IoU {d.confidence:.2f})"
    if (d.color, d.shape) != (color, shape):
        return False, f"found a {d.color} {d.shape}"
    return True, "ok"


def class_accuracy(images, labels, seed: int = 0) -> dict:
    """(N, H, W, 3) uint8 images and their intended labels (N,) -> {'accuracy', 'ci95', 'n',
    'per_class' (name -> accuracy over that class's images), 'correct' (N,) bool list}."""
    images, labels = np.asarray(images), np.asarray(labels)
    correct = np.array([judge(im, int(y))[0] for im, y in zip(images, labels)], dtype=bool)
    per_class = {CLASSES[k]: float(correct[labels == k].mean()) for k in sorted(set(labels.tolist()))}
    return {"accuracy": float(correct.mean()), "ci95": list(bootstrap_mean_interval(correct, BOOTSTRAP, seed=seed)),
            "n": int(len(correct)), "per_class": per_class, "correct": correct.tolist()}
