"""Cinelli–Hazlett omitted-variable sensitivity: R sensemakr's Darfur example, PySensemakr
on the same regressions (unweighted and weighted), and closed-form invariants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.sensitivity.ovb import (
    adjusted_estimate,
    adjusted_se,
    ovb_contour_grid,
    ovb_sensitivity,
    robustness_value,
)

FIX = Path(__file__).parent / "fixtures"
COVS = ["age", "farmer_dar", "herder_dar", "pastvoted", "hhsize_darfur", "female"]


@pytest.fixture(scope="module")
def darfur():
    return pd.read_csv(FIX / "darfur.csv")


@pytest.fixture(scope="module")
def darfur_res(darfur):
    return ovb_sensitivity(darfur, outcome="peacefactor", treatment="directlyharmed",
                           covariates=COVS, fe="village", benchmarks=["female"], kd=[1, 2, 3])


def test_darfur_matches_r_sensemakr(darfur_res):
    ref = json.loads((FIX / "sensemakr_darfur.json").read_text())
    r = darfur_res
    assert r.dof == ref["dof"]
    assert r.estimate == pytest.approx(ref["estimate"], abs=1e-8)
    assert r.std_error == pytest.approx(ref["se"], abs=1e-8)
    assert r.r2yd_x == pytest.approx(ref["r2yd_x"], abs=1e-7)
    assert r.rv_q == pytest.approx(ref["rv_q"], abs=1e-7)
    assert r.rv_qa == pytest.approx(ref["rv_qa"], abs=1e-7)
    b, rb = r.bounds, ref["bounds"]
    for ours, theirs in [("r2dz_x", "r2dz_x"), ("r2yz_dx", "r2yz_dx"),
                         ("adjusted_estimate", "adjusted_estimate"), ("adjusted_se", "adjusted_se"),
                         ("adjusted_t", "adjusted_t"), ("adjusted_ci_low", "adjusted_lower_CI"),
                         ("adjusted_ci_high", "adjusted_upper_CI")]:
        np.testing.assert_allclose(b[ours], rb[theirs], atol=1e-7, err_msg=ours)
    assert list(b["label"]) == ["1x female", "2x female", "3x female"]


@pytest.fixture
def smkr(monkeypatch):
    """PySensemakr, with a pandas-3 shim: its ``partial_r2`` reads ``Series[0]`` (a label
    lookup under pandas 3); the shim hands it the same values as a NumPy array."""
    smkr = pytest.importorskip("sensemakr")
    from sensemakr import sensitivity_statistics as ss

    orig = ss.model_helper

    def helper(model, covariates=None):
        out = orig(model, covariates)
        out["t_statistics"] = np.asarray(out["t_statistics"], dtype=float)
        return out

    monkeypatch.setattr(ss, "model_helper", helper)
    return smkr


def _dummies(df, fe):
    return pd.get_dummies(df[fe], prefix="fe", drop_first=True, dtype=float)


@pytest.mark.slow  # PySensemakr refits the 486-village model with pandas dummies (~30 s)
def test_darfur_matches_pysensemakr_same_regression(darfur, darfur_res, smkr):
    sm = pytest.importorskip("statsmodels.api")
    X = pd.concat([darfur[["directlyharmed", *COVS]], _dummies(darfur, "village")], axis=1)
    fit = sm.OLS(darfur["peacefactor"], sm.add_constant(X)).fit()
    s = smkr.Sensemakr(model=fit, treatment="directlyharmed", benchmark_covariates="female",
                       kd=[1, 2, 3])
    st = s.sensitivity_stats
    r = darfur_res
    assert r.dof == s.dof
    for ours, theirs in [(r.estimate, st["estimate"]), (r.std_error, st["se"]),
                         (r.r2yd_x, st["r2yd_x"]), (r.rv_q, st["rv_q"]), (r.rv_qa, st["rv_qa"])]:
        assert ours == pytest.approx(float(theirs), abs=1e-4)
    for col in ["r2dz_x", "r2yz_dx", "adjusted_estimate", "adjusted_se", "adjusted_t"]:
        np.testing.assert_allclose(r.bounds[col], s.bounds[col], atol=1e-4, err_msg=col)
    lo = np.minimum(s.bounds["adjusted_lower_CI"], s.bounds["adjusted_upper_CI"])
    np.testing.assert_allclose(r.bounds["adjusted_ci_low"], lo, atol=1e-4)


def _weighted_world(seed=3, n=900):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    x1 = rng.normal(size=n) + 0.3 * g / 12
    x2 = rng.normal(size=n)
    d = (0.8 * x1 - 0.4 * x2 + rng.normal(size=n) > 0).astype(float)
    y = 2.0 * d + 1.5 * x1 + 0.5 * x2 + 0.1 * g + rng.normal(size=n) * 3
    w = rng.uniform(0.2, 3.0, n)
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "g": g, "w": w})


def test_weighted_fe_regression_matches_pysensemakr(smkr):
    """The primary's kind of regression: weights and absorbed fixed effects.

    PySensemakr takes the outcome model (statsmodels WLS with dummies) for the statistics;
    its benchmark step refits the treatment model *unweighted* (sm.OLS on the exog), so the
    benchmark's partial R² with the treatment is passed from a statsmodels WLS fit instead.
    """
    sm = pytest.importorskip("statsmodels.api")
    df = _weighted_world()
    r = ovb_sensitivity(df, outcome="y", treatment="d", covariates=["x1", "x2"], weights="w",
                        fe="g", benchmarks=["x1"], kd=[1, 2])
    X = sm.add_constant(pd.concat([df[["d", "x1", "x2"]], _dummies(df, "g")], axis=1))
    fit = sm.WLS(df["y"], X, weights=df["w"]).fit()
    tfit = sm.WLS(df["d"], X.drop(columns="d"), weights=df["w"]).fit()
    r2dxj = float(tfit.tvalues["x1"] ** 2 / (tfit.tvalues["x1"] ** 2 + tfit.df_resid))
    r2yxj = float(fit.tvalues["x1"] ** 2 / (fit.tvalues["x1"] ** 2 + fit.df_resid))
    s = smkr.Sensemakr(estimate=float(fit.params["d"]), se=float(fit.bse["d"]),
                       dof=int(fit.df_resid), treatment="d", benchmark_covariates="x1",
                       r2dxj_x=r2dxj, r2yxj_dx=r2yxj, kd=[1, 2])
    st = s.sensitivity_stats
    assert r.dof == fit.df_resid
    for ours, theirs in [(r.estimate, st["estimate"]), (r.std_error, st["se"]),
                         (r.r2yd_x, st["r2yd_x"]), (r.rv_q, st["rv_q"]), (r.rv_qa, st["rv_qa"])]:
        assert ours == pytest.approx(float(theirs), abs=1e-4)
    assert r.benchmarks.loc[0, "r2dxj_x"] == pytest.approx(r2dxj, abs=1e-8)
    for col in ["r2dz_x", "r2yz_dx", "adjusted_estimate", "adjusted_se", "adjusted_t"]:
        np.testing.assert_allclose(r.bounds[col], s.bounds[col], atol=1e-4, err_msg=col)


def test_robustness_value_is_where_the_estimate_vanishes(darfur_res):
    r = darfur_res
    assert adjusted_estimate(r.rv_q, r.rv_q, r.estimate, r.std_error, r.dof) == pytest.approx(
        0.0, abs=1e-12)
    # at RV_{q,α} the adjusted t equals the critical value with dof − 1 (sensemakr's test)
    from scipy import stats
    a = r.rv_qa
    t_adj = adjusted_estimate(a, a, r.estimate, r.std_error, r.dof) / adjusted_se(
        a, a, r.std_error, r.dof)
    assert t_adj == pytest.approx(stats.t.ppf(0.975, r.dof - 1), rel=1e-9)
    assert robustness_value(0.0, 100) == 0.0
    assert robustness_value(1.0, 100, alpha=0.05) == 0.0  # not significant: nothing to explain


def test_contour_grid_and_errors(darfur_res):
    g = darfur_res.contour(lim=0.3, n=11)
    assert len(g) == 121
    at0 = g[(g.r2dz_x == 0) & (g.r2yz_dx == 0)]["value"].item()
    assert at0 == pytest.approx(darfur_res.estimate)
    # monotone: stronger confounders move the estimate further down
    assert g.groupby("r2dz_x")["value"].apply(lambda v: v.is_monotonic_decreasing).all()
    assert ovb_contour_grid(1.0, 0.1, 100, what="t", n=3).shape == (9, 3)
    with pytest.raises(ValueError, match="missing columns"):
        ovb_sensitivity(pd.DataFrame({"y": [1.0]}), outcome="y", treatment="d", covariates=[])
    with pytest.raises(ValueError, match="not covariates"):
        ovb_sensitivity(_weighted_world(), outcome="y", treatment="d", covariates=["x1"],
                        benchmarks=["x2"])
