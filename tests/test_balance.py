"""Closed-form tests of the balance statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import balance as bal


def test_smd_uses_treated_sd():
    x = np.array([1.0, 2.0, 3.0, 2.0, 4.0])
    t = np.array([1, 1, 1, 0, 0])
    # mean_t 2, mean_c 3, sd_t = 1
    assert bal.smd(x, t) == pytest.approx(-1.0)
    # weights move only the means: comparison mean (2*1 + 4*3)/4 = 3.5
    w = np.array([1, 1, 1, 1, 3.0])
    assert bal.smd(x, t, w) == pytest.approx(-1.5)
    # explicit denominator
    assert bal.smd(x, t, sd=2.0) == pytest.approx(-0.5)


def test_binary_sd_is_sqrt_p_one_minus_p():
    x = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=float)
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    # p_t = 0.5 (sd 0.5), p_c = 0.5 ... make them differ:
    x[4:] = [1, 1, 1, 0]
    assert bal.smd(x, t) == pytest.approx((0.5 - 0.75) / 0.5)
    assert bal.weighted_var(x[:4]) == pytest.approx(0.25)


def test_weighted_variance_closed_form():
    x = np.array([0.0, 1.0, 3.0])
    w = np.array([1.0, 1.0, 2.0])
    # m = 7/4; sum w (x-m)^2 = 6.75; denominator 4 - 6/4 = 2.5
    assert bal.weighted_var(x, w, binary=False) == pytest.approx(2.7)
    assert bal.weighted_var(x, None, binary=False) == pytest.approx(np.var(x, ddof=1))


def test_variance_ratio():
    x = np.array([1.0, 2.0, 3.0, 3.0, 5.0, 7.0])
    t = np.array([1, 1, 1, 0, 0, 0])
    assert bal.variance_ratio(x, t) == pytest.approx(1.0 / 4.0)


def test_hedges_g_closed_form():
    x = np.array([1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0])
    t = np.array([1, 1, 1, 0, 0, 0, 0])
    sp = np.sqrt((2 * 1.0 + 3 * (5.0 / 3.0)) / 5)
    omega = 1 - 3 / (4 * 7 - 9)
    assert bal.hedges_g(x, t) == pytest.approx(omega * (2.0 - 4.5) / sp)
    assert bal.wwc_effect_size(x, t) == pytest.approx(bal.hedges_g(x, t))


def test_cox_index_closed_form():
    x = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    omega = 1 - 3 / (4 * 8 - 9)
    expected = omega * (np.log(0.5 / 0.5) - np.log(0.25 / 0.75)) / 1.65
    assert bal.cox_index(x, t) == pytest.approx(expected)
    assert bal.wwc_effect_size(x, t) == pytest.approx(expected)


def test_cox_index_weighted():
    x = np.array([1, 0, 1, 0, 0], dtype=float)
    t = np.array([1, 1, 0, 0, 0])
    w = np.array([1, 1, 2, 1, 1], dtype=float)  # p_c = 2/4
    omega = 1 - 3 / (4 * 5 - 9)
    assert bal.cox_index(x, t, w) == pytest.approx(omega * 0.0)
    w2 = np.array([1, 1, 1, 2, 1], dtype=float)  # p_c = 1/4
    assert bal.cox_index(x, t, w2) == pytest.approx(omega * np.log(3) / 1.65)


@pytest.mark.parametrize(
    ("es", "cls"),
    [
        (0.0, "meets"),
        (0.05, "meets"),
        (-0.05, "meets"),
        (0.0501, "adjust"),
        (0.25, "adjust"),
        (-0.2, "adjust"),
        (0.2501, "fails"),
        (-1.0, "fails"),
        (np.nan, ""),
    ],
)
def test_wwc_class(es, cls):
    assert bal.wwc_class(es) == cls


def test_balance_table_zero_weights_equal_subset():
    rng = np.random.default_rng(3)
    n = 200
    X = pd.DataFrame({"a": rng.normal(size=n), "b": (rng.random(n) < 0.4).astype(float)})
    t = rng.random(n) < 0.3
    w = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.5, 2, n))
    w[t] = np.where(w[t] > 0, 1.0, 0.0)
    full = bal.balance_table(X, t, weights_after=w)
    keep = w > 0
    sub = bal.balance_table(X, t, X.loc[keep], t[keep], w[keep])
    pd.testing.assert_frame_equal(full, sub)
    assert list(full.columns[:4]) == [
        "covariate",
        "smd_before",
        "smd_after",
        "variance_ratio_after",
    ]
    assert full.set_index("covariate").loc["b", "type"] == "binary"
    assert np.isnan(full.set_index("covariate").loc["b", "variance_ratio_after"])
    # the after-SMD denominator is the unmatched treated SD
    sd_t = X["a"][t].std(ddof=1)
    diff = np.average(X["a"][t], weights=w[t]) - np.average(X["a"][~t], weights=w[~t])
    assert full.loc[0, "smd_after"] == pytest.approx(diff / sd_t)


def test_balance_table_agrees_with_single_statistics():
    rng = np.random.default_rng(11)
    n = 300
    X = pd.DataFrame({"a": rng.gamma(2, 1, n), "b": (rng.random(n) < 0.3).astype(float)})
    t = rng.random(n) < 0.4
    w = rng.uniform(0, 2, n) * (rng.random(n) < 0.7)
    tab = bal.balance_table(X, t, weights_after=w).set_index("covariate")
    keep = w > 0
    for col in X:
        x = X[col].to_numpy()
        sd_t = np.sqrt(bal.weighted_var(x[t]))
        assert tab.loc[col, "smd_before"] == pytest.approx(bal.smd(x, t))
        assert tab.loc[col, "smd_after"] == pytest.approx(bal.smd(x, t, w, sd=sd_t))
        assert tab.loc[col, "wwc_effect_size_before"] == pytest.approx(bal.wwc_effect_size(x, t))
        assert tab.loc[col, "wwc_effect_size_after"] == pytest.approx(
            bal.wwc_effect_size(x[keep], t[keep], w[keep])
        )
    assert tab.loc["a", "variance_ratio_after"] == pytest.approx(
        bal.variance_ratio(X["a"].to_numpy()[keep], t[keep], w[keep])
    )
