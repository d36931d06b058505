"""Bootstrap intervals (evaluation/bootstrap.py) on data whose answer is known: they cover the true mean
about 95% of the time, have the width the normal approximation predicts, and never collapse to a point."""

import numpy as np
import pytest

from thinkpix.evaluation.bootstrap import bootstrap_mean_interval, percentile_interval, stratified_bootstrap_means


def test_interval_of_a_mean_covers_the_true_mean_at_its_level():
    rng = np.random.default_rng(0)
    p, n, trials = 0.3, 200, 300
    hits, widths = 0, []
    for seed in range(trials):
        x = (rng.random(n) < p).astype(float)  # 0/1 correctness, true accuracy p
        lo, hi = bootstrap_mean_interval(x, resamples=400, seed=seed)
        hits += lo <= p <= hi
        widths.append(hi - lo)
    assert 0.90 <= hits / trials <= 0.99  # nominal 0.95; 300 trials: +-0.025 at 2 sd
    normal = 2 * 1.96 * np.sqrt(p * (1 - p) / n)  # 0.127
    assert 0.8 * normal <= np.mean(widths) <= 1.2 * normal  # not collapsed, not inflated
    assert min(widths) > 0


def test_stratified_bootstrap_resamples_within_groups_with_replacement():
    rng = np.random.default_rng(1)
    means = [0.2, 0.5, 0.9]
    groups = [(rng.random(100) < m).astype(float) for m in means]
    boot = stratified_bootstrap_means(groups, 2000, seed=0)
    assert boot.shape == (2000,)
    assert boot.mean() == pytest.approx(np.mean([g.mean() for g in groups]), abs=0.005)
    # the spread is the one of a mean of three independent group means: sqrt(sum var_g / n_g) / 3
    sd = np.sqrt(sum(g.var() / len(g) for g in groups)) / 3
    assert boot.std() == pytest.approx(sd, rel=0.1)
    lo, hi = percentile_interval(boot)
    assert hi - lo == pytest.approx(2 * 1.96 * sd, rel=0.15)
    # a group of identical values has no spread; the others still do
    flat = stratified_bootstrap_means([np.ones(50), groups[0]], 500, seed=0)
    assert flat.std() > 0 and stratified_bootstrap_means([np.ones(50)], 500, seed=0).std() == 0


def test_intervals_are_seeded_and_paired_differences_centre_on_the_true_difference():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, 400)
    b = a + 0.1 + rng.normal(0, 0.05, 400)  # paired: the same samples, shifted by 0.1
    lo, hi = bootstrap_mean_interval(b - a, resamples=1000, seed=3)
    assert (lo, hi) == bootstrap_mean_interval(b - a, resamples=1000, seed=3)
    assert lo < 0.1 < hi and hi - lo < 0.02
