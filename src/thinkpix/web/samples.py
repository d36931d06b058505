"""Sampling for the page: one place that sets the latent steps on a shared model and draws samples."""

from __future__ import annotations

import numpy as np


def sample(model, conditions: list, seed: int, steps: int, guidance: float, think: int | None = None) -> np.ndarray:
    """Images (N, H, W, 3) uint8 for prompts or class labels; `think` sets RSR's latent steps first
    (None: leave the model as it is). The caller holds the service lock."""
    from ..integrations.attach import set_latent_steps
    from ..sampling import generate_images

    if think is not None:
        set_latent_steps(model.transformer, think)
    return generate_images(model, conditions, seed=seed, steps=steps, guidance=guidance).numpy()


def judged(image: np.ndarray, metadata: dict | None) -> dict:
    """The evaluator on one text-to-image sample: {'correct' (None without metadata), 'reason',
    'details' ([shape, colour, confidence, box] per detection), 'threshold'}."""
    from ..evaluation.detect import THRESHOLD, detect_all
    from ..evaluation.geneval import threshold_for
    from ..evaluation.runner import score_image

    if metadata is None:
        found = sorted(detect_all(image), key=lambda d: -d.confidence)
        details = [[d.shape, d.color, round(d.confidence, 3), list(d.box)] for d in found]
        return {"correct": None, "reason": "", "details": details, "threshold": THRESHOLD}
    return score_image(image, metadata) | {"threshold": threshold_for(metadata)}


def verdict_word(correct: bool | None) -> str:
    return {True: "correct", False: "wrong", None: "no verdict"}[correct]


def detections_text(details: list, threshold: float) -> str:
    counted = [f"{c} {s} ({p:.2f})" for s, c, p, _ in details if p > threshold]
    weak = [f"{c} {s} ({p:.2f})" for s, c, p, _ in details if p <= threshold]
    out = ", ".join(counted) or "nothing"
    return out + (f"; below threshold: {', '.join(weak)}" if weak else "")
