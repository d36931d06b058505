"""The Fréchet distance between two sets of features (FID's formula, Heusel et al. 2017), each set
summarised as a Gaussian with its mean and covariance:

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

The matrix square root is scipy.linalg.sqrtm, with the usual fixes of FID implementations: a small
ridge on both covariances when the product is singular, and the real part of the result (tiny
imaginary parts are round-off). Which features: see `thinkpix.models.features`.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

RIDGE = 1e-6  # added to both diagonals when the product's square root is not finite
IMAGINARY_TOLERANCE = 1e-3  # largest imaginary diagonal entry accepted as round-off


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> mean (D,), covariance (D, D) (unbiased, N - 1)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance (squared, as FID reports it) between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shapes differ: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    covmean = linalg.sqrtm(sigma1 @ sigma2)  # (D, D)
    if not np.isfinite(covmean).all():
        ridge = np.eye(len(sigma1)) * RIDGE
        covmean = linalg.sqrtm((sigma1 + ridge) @ (sigma2 + ridge))
    if np.iscomplexobj(covmean):
        if np.abs(np.diagonal(covmean).imag).max() > IMAGINARY_TOLERANCE:
            raise ValueError(f"matrix square root has a large imaginary part "
                             f"({np.abs(np.diagonal(covmean).imag).max():.3g})")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_between(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two feature sets (N_a, D) and (N_b, D)."""
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def bootstrap_frechet(feature_sets: list[np.ndarray], reference: np.ndarray, resamples: int = 200,
                      seed: int = 0) -> np.ndarray:
    """Distances of resampled sets to the resampled reference -> (resamples, len(feature_sets)).
    Every resample draws one set of row indices shared by all `feature_sets` (paired: row i of each
    set comes from the same class and noise seed) and its own indices for the reference."""
    n = len(feature_sets[0])
    if any(len(f) != n for f in feature_sets):
        raise ValueError("paired feature sets must have the same length")
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(feature_sets)))
    for r in range(resamples):
        rows, ref_rows = rng.integers(n, size=n), rng.integers(len(reference), size=len(reference))
        ref = feature_statistics(reference[ref_rows])
        out[r] = [frechet_distance(*feature_statistics(f[rows]), *ref) for f in feature_sets]
    return out


def basic_interval(estimate: float, values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval [2 d - q_hi, 2 d - q_lo]. The distance of finite
    samples is biased upwards and resampling (which repeats points) adds that bias again, so plain
    percentiles sit above the estimate; the basic interval corrects this to first order."""
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(2 * estimate - hi), float(2 * estimate - lo)
