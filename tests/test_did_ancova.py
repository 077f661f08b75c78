"""Matched ANCOVA: equals weighted least squares written out, and recovers the effect
when selection is on the recorded months (where differencing from the month before the
visit is biased by the recovery of the dip)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.did.ancova import matched_ancova
from pipeline.did.stacked import stacked_event_study

TAU = 3.0


def _stacked(seed=0, n=12000, n_districts=4, rho=0.6, tau=TAU):
    """Students selected on their recorded months; three comparison students each."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(85, 6, n)
    shock = rng.normal(0, 8, n)  # transitory shock in the month before the visit
    e = lambda: rng.normal(0, 3, n)  # noqa: E731
    lag3, lag2, lag1 = alpha + e(), alpha + e(), alpha + shock + e()
    early = {k: alpha + e() for k in (-6, -5, -4)}  # months before the recorded ones
    p = 1 / (1 + np.exp((lag1 - 68) / 3))  # referral follows the recorded month
    treat = rng.random(n) < p
    district = rng.integers(0, n_districts, n)
    t_idx = np.flatnonzero(treat)
    c_idx = np.flatnonzero(~treat)
    rows = []
    for mid, i in enumerate(t_idx):
        pool = c_idx[district[c_idx] == district[i]]
        members = [(i, "treated")] + [(j, "comparison") for j in rng.choice(pool, 3, replace=False)]
        for s, role in members:
            for k in range(-6, 7):
                if k < -3:
                    y = early[k][s]
                elif k < 0:
                    y = {-3: lag3[s], -2: lag2[s], -1: lag1[s]}[k]
                else:
                    y = alpha[s] + rho ** (k + 1) * shock[s] + rng.normal(0, 3)
                    y += tau if (role == "treated" and k >= 1) else 0.0
                rows.append((mid, f"s{s}", role, k, y, district[s], lag1[s], lag2[s], lag3[s]))
    d = pd.DataFrame(rows, columns=["match_id", "student_key", "role", "stack_event_time",
                                    "attendance_rate", "district_code", "rate_lag1",
                                    "rate_lag2", "rate_lag3"])
    d["stack_id"] = d["district_code"].astype(str)
    d["prior_year_rate"] = np.nan
    d["weight"] = 1.0
    d["ipcw"] = 1.0
    d["censored"] = False
    return d


@pytest.fixture(scope="module")
def data():
    return _stacked()


def test_recovers_the_effect_where_differences_do_not(data):
    r = matched_ancova(data, yname="attendance_rate", window=(-6, 6))
    a = r.average((1, 6))
    assert abs(a.estimate - TAU) < 4 * a.std_error and a.std_error < 0.3
    # the recorded months are the reference; the earlier months are placebo outcomes
    assert r.reference == (-3, -2, -1)
    assert r.event_time.tolist() == [-6, -5, -4, 0, 1, 2, 3, 4, 5, 6]
    pre = r.pretrend_test()
    assert pre.event_times == (-6, -5, -4) and pre.p_value > 0.001
    assert abs(r.params[0]) < 4 * r.std_errors[0]  # no effect in the visit month here
    did = stacked_event_study(data, yname="attendance_rate", cluster="student_key",
                              window=(-3, 6), average_window=(1, 6)).average((1, 6))
    assert did.estimate - TAU > 2.0  # the recovery of the dip, taken for an effect


def test_equals_weighted_least_squares_written_out(data):
    d = data[data["match_id"] < 150].copy()
    rng = np.random.default_rng(1)
    d["ipcw"] = rng.uniform(0.5, 2.0, len(d))
    r = matched_ancova(d, yname="attendance_rate", window=(1, 3), prior=None)
    base = d[d["stack_event_time"] == 0][["match_id", "student_key", "rate_lag1", "rate_lag2",
                                          "rate_lag3"]]
    x = d[d["stack_event_time"].between(1, 3)].merge(base, on=["match_id", "student_key"],
                                                     suffixes=("", "_b"))
    e = x["stack_event_time"].to_numpy()
    D = (x["role"] == "treated").to_numpy()
    cols = [(D & (e == k)).astype(float) for k in (1, 2, 3)]
    for k in (1, 2, 3):
        ek = (e == k).astype(float)
        lags = [x[f"rate_lag{j}_b"].to_numpy() for j in (1, 2, 3)]
        cols += [ek * v for v in lags] + [ek * v * v / 100 for v in lags]
    cells = pd.get_dummies(x["district_code"].astype(str) + "|" + x["stack_event_time"].astype(str),
                           dtype=float).to_numpy()
    X = np.column_stack([*cols, cells])
    w = x["weight"].to_numpy() * x["ipcw"].to_numpy()
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(X * sw[:, None], x["attendance_rate"].to_numpy() * sw, rcond=None)[0]
    np.testing.assert_allclose(r.estimate, beta[:3], rtol=1e-8, atol=1e-8)
    assert r.event_time.tolist() == [1, 2, 3]
    # CR1 by student, fixest's small-sample factor (district x month cells not nested)
    u = x["attendance_rate"].to_numpy() - X @ beta
    bread = np.linalg.pinv((X * w[:, None]).T @ X)
    g = pd.factorize(x["student_key"])[0]
    S = np.zeros((g.max() + 1, X.shape[1]))
    np.add.at(S, g, X * (w * u)[:, None])
    n, G = len(x), g.max() + 1
    K = np.linalg.matrix_rank(X)
    V = (n - 1) / (n - K) * G / (G - 1) * bread @ S.T @ S @ bread
    np.testing.assert_allclose(r.vcov, V[:3, :3], rtol=1e-6)


def test_wild_bootstrap_on_the_reduced_regression_equals_the_full_one(data):
    """Partialling out the covariates (Frisch–Waugh–Lovell) leaves the estimate, its
    CR1 error and t-statistic unchanged and the bootstrap interval nearly so."""
    from pipeline.did.fe import FixedEffects, factorize, feols
    from pipeline.did.wild import draw_weights, partial_out, wild_cluster_bootstrap

    d = data[data["match_id"] < 300]
    r = matched_ancova(d, yname="attendance_rate", window=(1, 4), prior=None,
                       wild_bootstrap=True, B=199, seed=3, average_window=(1, 4))
    tab = r.info["wild_bootstrap"]
    # the analytic CR1 standard errors are the bootstrap's
    np.testing.assert_allclose(tab["std_error"].iloc[:4], r.std_errors, rtol=1e-8)
    assert tab["term"].tolist() == [1, 2, 3, 4, "average"]
    lo, hi = r.ci_bounds
    assert np.all(lo < r.estimate) and np.all(r.estimate < hi)
    # the same test on the full regression (covariates in) with the same draws
    rng = np.random.default_rng(0)
    n, k = 4000, 6
    X = rng.normal(size=(n, k))
    y = X @ np.arange(k) + rng.normal(size=n)
    cl = rng.integers(0, 60, n)
    w = rng.uniform(0.5, 2, n)
    fe = factorize(rng.integers(0, 5, n))[0]
    f = feols(y, X, FixedEffects([fe], w), weights=w, cluster=cl, keep_tilde=True)
    draws = draw_weights(60, B=199, seed=1)
    c_full = np.zeros(k)
    c_full[[0, 1]] = 0.5
    full = wild_cluster_bootstrap(f.extra["Xt"], f.extra["yt"], cl, c_full, w=w, draws=draws,
                                  ssc=f.ssc)
    Xr, yr = partial_out(f.extra["Xt"], f.extra["yt"], w, np.array([0, 1]))
    red = wild_cluster_bootstrap(Xr, yr, cl, np.array([0.5, 0.5]), w=w, draws=draws, ssc=f.ssc)
    for a in ("estimate", "std_error", "t_stat"):
        np.testing.assert_allclose(getattr(red, a), getattr(full, a), rtol=1e-9)
    # the draws' denominators are not re-partialled: intervals agree to O(k/n)
    for a in ("ci_low", "ci_high"):
        assert abs(getattr(red, a) - getattr(full, a)) < 0.05 * full.std_error


def test_input_errors(data):
    with pytest.raises(ValueError, match="post-visit"):
        matched_ancova(data, yname="attendance_rate", window=(-6, -4))
    with pytest.raises(KeyError):
        matched_ancova(data.drop(columns="rate_lag2"), yname="attendance_rate")


def test_time_effects_follow_the_visited_students_district(data):
    """Comparison students from other districts (or who move) share their visited
    student's time effects: the estimate does not change, and it stays identified."""
    d = data[data["match_id"] < 400]
    moved = d.assign(district_code=d["district_code"].where(d["role"] == "treated", "elsewhere"))
    a = matched_ancova(d, yname="attendance_rate", window=(1, 4))
    b = matched_ancova(moved, yname="attendance_rate", window=(1, 4))
    np.testing.assert_allclose(b.estimate, a.estimate, rtol=1e-10)
    np.testing.assert_allclose(b.vcov, a.vcov, rtol=1e-8)
