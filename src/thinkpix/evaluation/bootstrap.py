"""Bootstrap intervals of means, one implementation for every score's interval: the GenEval-style
overall (prompts resampled within each task), class accuracy, and paired differences between arms.
"""

from __future__ import annotations

import numpy as np


def stratified_bootstrap_means(groups: list[np.ndarray], resamples: int, seed: int = 0) -> np.ndarray:
    """The mean over groups of each group's mean, with every group's rows resampled (with
    replacement) within the group -> (resamples,). One group: the plain bootstrap of a mean."""
    rng = np.random.default_rng(seed)
    return np.mean([g[rng.integers(len(g), size=(resamples, len(g)))].mean(1) for g in groups], axis=0)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_mean_interval(values, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (e.g. 0/1 correctness, or paired differences)."""
    return percentile_interval(stratified_bootstrap_means([np.asarray(values, dtype=np.float64)], resamples, seed), level)
