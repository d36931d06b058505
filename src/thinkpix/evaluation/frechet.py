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


def _stratified_subset(strata: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Row indices: `fraction` of every stratum's rows (at least one), drawn without replacement."""
    rows = []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        rows.append(rng.permutation(members)[: max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(rows))


def subsample_frechet(feature_sets: list[np.ndarray], reference: np.ndarray, strata: np.ndarray,
                      reference_strata: np.ndarray, resamples: int = 200, fraction: float = 0.5,
                      seed: int = 0) -> np.ndarray:
    """Distances of subsets drawn WITHOUT replacement and stratified (the same `fraction` of every
    stratum, e.g. of every class) -> (resamples, len(feature_sets)).

    Why not the plain bootstrap: resampling with replacement repeats points, and unstratified
    resampling makes the class counts random where the design fixes them (every arm and the held-out
    renders have exactly n / 24 images per class). Both inflate the distance far beyond its sampling
    error: on the class track's features, unstratified half-sets of two held-out sets are 1.18 apart
    where the full sets are 0.10 apart. Every resample draws one row subset shared by all
    `feature_sets` (paired: row i of each set comes from the same class and noise seed) and its own
    subset of the reference."""
    n = len(feature_sets[0])
    if any(len(f) != n for f in feature_sets) or len(strata) != n or len(reference_strata) != len(reference):
        raise ValueError("paired feature sets, their strata and the reference's strata must have matching lengths")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    strata, reference_strata = np.asarray(strata), np.asarray(reference_strata)
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(feature_sets)))
    for r in range(resamples):
        rows, ref_rows = _stratified_subset(strata, fraction, rng), _stratified_subset(reference_strata, fraction, rng)
        ref = feature_statistics(reference[ref_rows])
        out[r] = [frechet_distance(*feature_statistics(f[rows]), *ref) for f in feature_sets]
    return out


def subsample_interval(estimate: float, values: np.ndarray, fraction: float = 0.5,
                       level: float = 0.95) -> tuple[float, float]:
    """Interval for a full-sample statistic from its values on subsets of `fraction` of the rows
    drawn without replacement (delete-d jackknife / subsampling, see `subsample_frechet`). The spread of a subset statistic
    around the full one has variance sigma^2 (1/m - 1/n) = sigma^2 / n * (1 - f) / f, so it is
    rescaled by sqrt(f / (1 - f)) (1 at f = 1/2); it is taken around the subsets' own mean, which
    removes their extra finite-sample bias (the distance's bias grows as the sample shrinks):

        [d - s (q_hi - mean), d - s (q_lo - mean)],  s = sqrt(f / (1 - f))
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    scale = np.sqrt(fraction / (1 - fraction))
    return float(estimate - scale * (hi - v.mean())), float(estimate - scale * (lo - v.mean()))
