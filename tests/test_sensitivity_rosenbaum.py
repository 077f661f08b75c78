"""Rosenbaum's M-test sensitivity analysis (R sensitivitymv::senmv): hand-computed scores
and bounds, brute-force checks of the separable maximisation, and documented identities."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.sensitivity.rosenbaum import (
    _separable,
    gamma_breakdown,
    matched_sets_matrix,
    mscores,
    senmv,
)


def test_hand_computed_set():
    # one set, treated 3, controls 1 and 2, no trimming (trim = Inf):
    # treated (3-1)+(3-2) = 3 -> /3 = 1; control 1: (1-3)+(1-2) = -3 -> -1; control 2: 0
    ms = mscores(np.array([[3.0, 1.0, 2.0]]), trim=np.inf)
    np.testing.assert_allclose(ms, [[1.0, -1.0, 0.0]])
    # Γ = 2, sorted scores (-1, 0, 1): a = 1: (-1 + 2·1) / 5 = 0.2; a = 2: (-1 + 0 + 2) / 4
    # = 0.25 (the maximum), variance (1 + 0 + 2·1) / 4 − 0.25² = 0.6875
    t, e, v = _separable(ms, 2.0)
    assert (t, e, v) == pytest.approx((1.0, 0.25, 0.6875))
    r = senmv(np.array([[3.0, 1.0, 2.0]]), 2.0, trim=np.inf)
    assert r.deviate == pytest.approx(0.75 / np.sqrt(0.6875))
    assert r.pval == pytest.approx(stats.norm.sf(0.75 / np.sqrt(0.6875)))


def test_permutational_t_statistic_is_mean_difference():
    """senmv's documentation: with trim = Inf and TonT the statistic is the mean over
    matched sets of treated minus mean-control response (mercury example's identity)."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 3)) + np.array([0.5, 0, 0])
    y[::5, 2] = np.nan  # some sets with one control
    r = senmv(y, 3.0, trim=np.inf, TonT=True)
    expected = np.mean(y[:, 0] - np.nanmean(y[:, 1:], axis=1))
    assert r.statistic == pytest.approx(expected)


def test_gamma_one_is_the_randomization_test():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 4))
    ms = mscores(y)
    t, e, v = _separable(ms, 1.0)
    assert e == pytest.approx(ms.mean(axis=1).sum())
    assert v == pytest.approx(((ms**2).mean(axis=1) - ms.mean(axis=1) ** 2).sum())


@pytest.mark.parametrize("gamma", [1.5, 3.0])
def test_separable_max_is_max_over_all_binary_u(gamma):
    """The separable bound's per-set expectation is the maximum over every unobserved
    covariate u ∈ {0,1}^m (Rosenbaum's model; the extremes are binary), not only the
    sorted thresholds it searches."""
    rng = np.random.default_rng(2)
    ms = mscores(rng.normal(size=(6, 5)))
    for row in ms:
        best = -np.inf
        for u in itertools.product([0, 1], repeat=row.size):
            if len(set(u)) == 1:
                continue
            w = gamma ** np.array(u)
            best = max(best, float(w @ row / w.sum()))
        _, e, _ = _separable(row[None, :], gamma)
        assert e == pytest.approx(best)


def test_scale_invariance_and_monotonicity():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(200, 4)) + np.array([0.6, 0, 0, 0])
    a, b = senmv(y, 2.0), senmv(10 * y + 3, 2.0)
    assert a.deviate == pytest.approx(b.deviate)
    ps = [senmv(y, g).pval for g in (1.0, 1.5, 2.0, 3.0)]
    assert all(np.diff(ps) > 0)
    g = gamma_breakdown(y, 0.05)
    assert g > 1
    assert senmv(y, g).pval == pytest.approx(0.05, abs=1e-8)
    # no effect: significance is not reached even at Γ = 1
    assert gamma_breakdown(rng.normal(size=(200, 4)) - np.array([0.3, 0, 0, 0])) == 1.0


def test_matched_sets_matrix():
    df = pd.DataFrame({
        "match_id": [1, 1, 1, 2, 2, 3, 3, 3, 3],
        "role": ["comparison", "treated", "comparison", "treated", "comparison",
                 "comparison", "comparison", "treated", "comparison"],
        "y": [1.0, 5.0, 2.0, 4.0, np.nan, 0.0, 1.0, 3.0, 2.0],
    })
    m = matched_sets_matrix(df, outcome="y")
    # set 2 has no control with an outcome: dropped
    np.testing.assert_allclose(m[0], [5.0, 1.0, 2.0, np.nan])
    np.testing.assert_allclose(m[1], [3.0, 0.0, 1.0, 2.0])
    assert m.shape == (2, 4)
