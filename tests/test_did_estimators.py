"""Tests of the event-study estimators other than Callaway–Sant'Anna.

Reference values:
* R ``did2s`` README (df_het, first stage ``~ 0 | state + year``): 2.152215 (SE 0.047607).
* pyfixest 0.60 (fixest conventions) frozen by ``benchmarks/make_fe_fixtures.py`` into
  ``tests/fixtures/fe_*.csv``: TWFE with absorbed effects and CRV1, did2s, and the
  saturated (Sun–Abraham) event study with its period aggregation.
* Direct explicit-dummy regressions (statsmodels) on the same data.
* Simulated staggered panels with known dynamic, heterogeneous effects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import statsmodels.api as sm

from pipeline.did.fe import FixedEffects, factorize, feols
from pipeline.did.imputation import imputation
from pipeline.did.naive import naive_before_after
from pipeline.did.stacked import stacked_event_study
from pipeline.did.sunab import sun_abraham
from pipeline.did.twfe import twfe_event_study
from pipeline.did.wild import WEBB_POINTS, draw_weights, prepare_fit, wild_cluster_bootstrap

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def df_het() -> pd.DataFrame:
    return pd.read_csv(FIX / "df_het.csv")


# -- simulated data ---------------------------------------------------------------------------
def staggered_panel(n_units=600, T=12, seed=0, cohorts=(4, 6, 9), never_share=0.3, dynamic=True):
    """Balanced staggered panel with dynamic effects that differ by cohort.

    Effect of cohort g at event time e ≥ 0: ``(1 + 0.5 e) · (g − 3)`` (dynamic) or
    2 (constant).  Returns the panel and the true effect per event time averaged over the
    treated observations at that event time.
    """
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), T)
    time = np.tile(np.arange(1, T + 1), n_units)
    g_unit = rng.choice(np.array(cohorts, dtype=float), size=n_units)
    g_unit[rng.random(n_units) < never_share] = 0.0
    g = g_unit[unit]
    alpha = rng.normal(size=n_units)[unit] + 0.5 * g / 10
    lam = np.sin(time / 2.0) + 0.1 * time
    rel = np.where(g > 0, time - g, np.nan)
    post = (g > 0) & (rel >= 0)
    if dynamic:
        te = np.where(post, (1 + 0.5 * np.nan_to_num(rel)) * (g - 3), 0.0)
    else:
        te = np.where(post, 2.0, 0.0)
    state = unit % 25
    y = alpha + lam + te + rng.normal(scale=0.5, size=unit.size)
    df = pd.DataFrame({"unit": unit, "time": time, "g": g, "y": y, "te": te, "state": state})
    truth = df.loc[post].assign(e=rel[post].astype(int)).groupby("e")["te"].mean()
    return df, truth


def stacked_data(n_stacks=25, k=3, pre=4, post=6, seed=1, n_schools=12, effect=0.0):
    """Stacked matched data: each stack one treated unit and k comparisons (reused)."""
    rng = np.random.default_rng(seed)
    rows = []
    pool = np.arange(1000, 1000 + 60)
    school = {}
    for s in range(n_stacks):
        t_unit = s
        comps = rng.choice(pool, size=k, replace=False)
        cal0 = int(rng.integers(5, 20))
        for u, role in [(t_unit, "treated")] + [(int(c), "comparison") for c in comps]:
            school.setdefault(u, int(rng.integers(0, n_schools)))
            a = rng.normal()
            cens_at = (
                int(rng.integers(0, post + 6))
                if (role == "comparison" and rng.random() < 0.2)
                else 99
            )
            for e in range(-pre, post + 1):
                cal = cal0 + e
                yv = a + 0.2 * np.sin(cal) + 0.05 * s + rng.normal(scale=0.7)
                if role == "treated" and e >= 0:
                    yv += effect
                rows.append(
                    {
                        "student_key": f"u{u}",
                        "match_id": s,
                        "stack_id": s % 7,
                        "role": role,
                        "stack_event_time": e,
                        "y": yv,
                        "weight": 1.0 if role == "treated" else 1.0 / k * (1 + 0.5 * (u % 2)),
                        "censored": e >= cens_at,
                        "school_code": f"s{school[u]}",
                        "ipcw": 1.0 + 0.1 * ((u + e) % 3),
                    }
                )
    return pd.DataFrame(rows)


def explicit_ols(y, X, fe_cols, w, groups):
    """statsmodels WLS with explicit fixed-effect dummies and CR1 clustering."""
    D = [
        pd.get_dummies(pd.Series(c).astype(str), drop_first=i > 0, dtype=float).to_numpy()
        for i, c in enumerate(fe_cols)
    ]
    Z = np.column_stack([X] + D)
    # drop collinear dummy columns (keeps the regressors, which come first)
    q, r = np.linalg.qr(Z)
    keep = np.flatnonzero(np.abs(np.diag(r)) > 1e-9 * np.abs(np.diag(r)).max())
    Z = Z[:, keep]
    m = sm.WLS(y, Z, weights=w).fit(cov_type="cluster", cov_kwds={"groups": groups})
    kx = X.shape[1]
    return m.params[:kx], np.asarray(m.cov_params())[:kx, :kx], Z.shape[1]


# -- fixed-effects engine -------------------------------------------------------------------
def test_fe_direct_and_alternating_projections_agree():
    rng = np.random.default_rng(3)
    n = 3000
    a = rng.integers(0, 150, n)
    b = rng.integers(0, 40, n)
    c = rng.integers(0, 7, n)
    w = rng.uniform(0.5, 2, n)
    Z = rng.normal(size=(n, 3))
    fe2 = FixedEffects([a, b], w)
    fe2ap = FixedEffects([a, b], w, method="ap", tol=1e-14)
    r1, r2 = fe2.demean(Z), fe2ap.demean(Z)
    assert np.abs(r1 - r2).max() < 1e-9
    # residuals are weighted-orthogonal to every fixed-effect level
    for codes in (a, b):
        for j in range(3):
            assert np.abs(np.bincount(codes, weights=w * r1[:, j])).max() < 1e-9
    # three fixed effects: compare to explicit dummies
    fe3 = FixedEffects([a, b, c], w)
    D = np.column_stack([np.eye(150)[a], np.eye(40)[b][:, 1:], np.eye(7)[c][:, 1:]])
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(D * sw[:, None], Z * sw[:, None], rcond=None)[0]
    assert np.abs(fe3.demean(Z) - (Z - D @ coef)).max() < 1e-8
    assert fe2.rank == 150 + 40 - 1


def test_fe_sparse_schur_path_and_disconnected_components():
    # > 400 levels in the smaller fixed effect: sparse LU of the Schur complement;
    # two disconnected blocks of levels: one level pinned per component
    rng = np.random.default_rng(8)
    n = 40000
    half = rng.random(n) < 0.5
    a = np.where(half, rng.integers(0, 4000, n), 4000 + rng.integers(0, 4000, n))
    b = np.where(half, rng.integers(0, 1800, n), 1800 + rng.integers(0, 1800, n))
    a = factorize(a)[0]
    b = factorize(b)[0]
    w = rng.uniform(0.5, 2, n)
    z = rng.normal(size=(n, 2))
    fe = FixedEffects([a, b], w)
    assert fe.n_components >= 2 and not fe._dense
    r = fe.demean(z)
    r_ap = FixedEffects([a, b], w, method="ap", tol=1e-13).demean(z)
    assert np.abs(r - r_ap).max() < 1e-7
    for codes in (a, b):
        assert np.abs(np.bincount(codes, weights=w * r[:, 0])).max() < 1e-8


@pytest.mark.parametrize("cluster", ["state", "year"])
def test_feols_matches_pyfixest_crv1(df_het, cluster):
    ref = pd.read_csv(FIX / "fe_twfe.csv")
    ref = ref[ref.cluster == cluster].set_index("event_time")
    rel = df_het["rel_year"].replace(-np.inf, -1000).astype(int).to_numpy()
    evs = sorted(set(rel.tolist()) - {-1, -1000})
    X = sp.csr_matrix(np.column_stack([(rel == e).astype(float) for e in evs]))
    fe = FixedEffects([factorize(df_het.unit)[0], factorize(df_het.year)[0]])
    r = feols(df_het.dep_var.to_numpy(), X, fe, cluster=factorize(df_het[cluster])[0], names=evs)
    np.testing.assert_allclose(r.coef, ref.loc[evs, "estimate"], atol=1e-9)
    np.testing.assert_allclose(r.std_errors, ref.loc[evs, "std_error"], rtol=1e-8)


# -- TWFE ----------------------------------------------------------------------------------------
def test_twfe_matches_pyfixest_and_explicit_dummies(df_het):
    res = twfe_event_study(
        df_het, yname="dep_var", tname="year", idname="unit", gname="g", cluster="state"
    )
    ref = pd.read_csv(FIX / "fe_twfe.csv")
    ref = ref[ref.cluster == "state"].set_index("event_time").loc[res.event_time]
    np.testing.assert_allclose(res.estimate, ref["estimate"], atol=1e-9)
    np.testing.assert_allclose(res.std_errors, ref["std_error"], rtol=1e-8)
    # explicit dummy regression (statsmodels) on a small simulated panel
    df, _ = staggered_panel(n_units=120, T=8, cohorts=(3, 5), seed=4)
    r = twfe_event_study(
        df, yname="y", tname="time", idname="unit", gname="g", cluster="state", k_fixef="full"
    )
    rel = np.where(df.g > 0, df.time - df.g, np.nan)
    X = np.column_stack([(rel == e).astype(float) for e in r.event_time])
    b, V, K = explicit_ols(
        df.y.to_numpy(), X, [df.unit, df.time], np.ones(len(df)), df.state.to_numpy()
    )
    np.testing.assert_allclose(r.estimate, b, atol=1e-9)
    n, G = len(df), df.state.nunique()
    sm_factor = (n - 1) / (n - K) * G / (G - 1)  # statsmodels: K = rank of explicit design
    np.testing.assert_allclose(r.vcov / r.info["ssc"], V / sm_factor, rtol=1e-7, atol=1e-14)
    # fixest-style K with one FE nested... here 'full': K = k + (units + periods − 1)
    assert r.info["df_k"] == K


def test_twfe_matches_linearmodels_panelols():
    from linearmodels.panel import PanelOLS

    df, _ = staggered_panel(n_units=120, T=8, cohorts=(3, 5), seed=4)
    r = twfe_event_study(df, yname="y", tname="time", idname="unit", gname="g", cluster="unit")
    rel = np.where(df.g > 0, df.time - df.g, np.nan)
    X = pd.DataFrame({f"e{e}": (rel == e).astype(float) for e in r.event_time})
    X.index = pd.MultiIndex.from_arrays([df.unit, df.time])
    m = PanelOLS(
        pd.Series(df.y.to_numpy(), index=X.index), X, entity_effects=True, time_effects=True
    ).fit(cov_type="clustered", cluster_entity=True)
    np.testing.assert_allclose(r.estimate, m.params.to_numpy(), atol=1e-10)
    # linearmodels (debiased=False) scales the clustered meat by n / (n - K), K counting
    # the absorbed effects (units + periods - 1); fixest/CR1: G/(G-1) (n-1)/(n-K_nested)
    n, k = len(df), r.event_time.size
    lm_factor = n / (n - (k + 120 + 8 - 1))
    np.testing.assert_allclose(
        r.std_errors.to_numpy() ** 2 / r.info["ssc"],
        m.std_errors.to_numpy() ** 2 / lm_factor,
        rtol=1e-9,
    )


def test_twfe_window_and_binning():
    df, _ = staggered_panel(n_units=200, T=12, seed=5)
    r = twfe_event_study(
        df, yname="y", tname="time", idname="unit", gname="g", window=(-3, 4), bin_endpoints=True
    )
    assert r.event_time.tolist() == [-3, -2, 0, 1, 2, 3, 4]
    r2 = twfe_event_study(
        df, yname="y", tname="time", idname="unit", gname="g", window=(-3, 4), bin_endpoints=False
    )
    assert r2.event_time.tolist() == [-3, -2, 0, 1, 2, 3, 4]
    assert r2.info["n_obs"] < r.info["n_obs"] == len(df)
    assert not np.allclose(r.estimate, r2.estimate)


# -- Sun & Abraham -------------------------------------------------------------------------------
def test_sun_abraham_matches_pyfixest_saturated(df_het):
    res = sun_abraham(
        df_het, yname="dep_var", tname="year", idname="unit", gname="g", cluster="state"
    )
    agg = pd.read_csv(FIX / "fe_sunab_agg.csv").set_index("event_time")
    assert res.event_time.tolist() == agg.index.tolist()
    np.testing.assert_allclose(res.estimate, agg["estimate"], atol=1e-9)
    np.testing.assert_allclose(res.std_errors, agg["std_error"], rtol=1e-8)
    coefs = pd.read_csv(FIX / "fe_sunab_coefs.csv").set_index(["cohort", "event_time"])
    mine = res.info["cohort_effects"].set_index(["cohort", "event_time"]).loc[coefs.index]
    np.testing.assert_allclose(mine["estimate"], coefs["estimate"], atol=1e-9)
    np.testing.assert_allclose(mine["std_error"], coefs["std_error"], rtol=1e-8)
    # aggregation weights sum to one at every event time
    s = res.info["cohort_effects"].groupby("event_time")["weight"].sum()
    np.testing.assert_allclose(s, 1.0)
    wt = res.pretrend_test()
    assert wt.df == int((res.event_time < -1).sum()) and 0 <= wt.p_value <= 1


def test_sun_abraham_lastcohort_control():
    df, truth = staggered_panel(n_units=900, T=12, never_share=0.0, seed=6)
    r = sun_abraham(df, yname="y", tname="time", idname="unit", gname="g", control="lastcohort")
    assert r.info["control_cohort"] == 9
    with pytest.raises(ValueError, match="no never-treated"):
        sun_abraham(df, yname="y", tname="time", idname="unit", gname="g")
    # only cohorts 4 and 6 remain treated, periods < 9: effects at e = 0..4 identified
    cohorts = r.info["cohort_effects"]
    assert set(cohorts["cohort"]) == {4, 6}
    sel = (df.g.isin([4, 6])) & (df.time < 9) & (df.time >= df.g)
    tr = df[sel].assign(e=lambda x: (x.time - x.g).astype(int)).groupby("e")["te"].mean()
    est = r.params.loc[tr.index]
    se = r.std_errors.loc[tr.index]
    assert np.all(np.abs(est - tr) < 4.5 * se)


# -- imputation (BJS / did2s) ---------------------------------------------------------------------
def test_imputation_static_matches_r_did2s(df_het):
    # R: did2s(df_het, "dep_var", ~ 0 | state + year, ~ i(treat, ref = FALSE), "treat",
    #          cluster_var = "state") -> 2.152215 (0.047607)
    r = imputation(
        df_het,
        yname="dep_var",
        tname="year",
        idname="unit",
        gname="g",
        cluster="state",
        fe=("state", "year"),
        static=True,
    )
    assert abs(r.estimate[0] - 2.152215) < 1e-5
    assert abs(r.std_errors.iloc[0] - 0.047607) < 1e-5
    # exact first stage: compare with an explicit least-squares imputation
    u0 = ~df_het.treat.to_numpy()
    D = np.column_stack(
        [
            pd.get_dummies(df_het.state, dtype=float).to_numpy(),
            pd.get_dummies(df_het.year, dtype=float).to_numpy()[:, 1:],
        ]
    )
    coef = np.linalg.lstsq(D[u0], df_het.dep_var.to_numpy()[u0], rcond=None)[0]
    tau = (df_het.dep_var.to_numpy() - D @ coef)[~u0].mean()
    assert abs(r.estimate[0] - tau) < 1e-10


def test_imputation_event_study_matches_pyfixest_did2s(df_het):
    ref = pd.read_csv(FIX / "fe_did2s.csv")
    r = imputation(
        df_het,
        yname="dep_var",
        tname="year",
        idname="unit",
        gname="g",
        cluster="state",
        static=True,
    )
    st = ref[ref.term == "static unit"].iloc[0]
    # pyfixest demeans iteratively (tolerance 1e-8-ish): agreement to ~1e-7
    assert abs(r.estimate[0] - st.estimate) < 1e-6
    assert abs(r.std_errors.iloc[0] - st.std_error) < 1e-7
    r = imputation(df_het, yname="dep_var", tname="year", idname="unit", gname="g", cluster="state")
    ev = ref[ref.term == "event"].set_index("event_time").loc[r.event_time]
    np.testing.assert_allclose(r.estimate, ev["estimate"], atol=1e-6)
    np.testing.assert_allclose(r.std_errors, ev["std_error"], atol=1e-7)
    assert -1 not in r.event_time.tolist()
    assert r.pretrend_test().df == int((r.event_time < 0).sum())


def test_imputation_horizons_and_pretrends_options():
    df, _ = staggered_panel(n_units=300, T=12, seed=7)
    r = imputation(df, yname="y", tname="time", idname="unit", gname="g", horizons=3, pretrends=2)
    assert r.event_time.tolist() == [-2, 0, 1, 2, 3]
    r2 = imputation(
        df, yname="y", tname="time", idname="unit", gname="g", horizons=3, pretrends=False
    )
    # treated observations are not in the first stage: horizon estimates are unchanged
    np.testing.assert_allclose(r2.estimate, r.estimate[1:], atol=1e-12)


# -- simulated truth: SA and imputation unbiased, TWFE biased -------------------------------------
def test_heterogeneous_dynamic_effects_truth_recovered():
    df, truth = staggered_panel(n_units=1500, T=12, seed=11)
    kw = dict(yname="y", tname="time", idname="unit", gname="g")
    sa = sun_abraham(df, **kw)
    im = imputation(df, **kw)
    tw = twfe_event_study(df, **kw)
    es = truth.index[truth.index <= 5]
    for r in (sa, im):
        est, se = r.params.loc[es], r.std_errors.loc[es]
        assert np.all(np.abs(est - truth.loc[es]) < 4 * se), r.estimator
        pre = r.params[r.params.index < -1]
        assert np.all(np.abs(pre) < 4 * r.std_errors[pre.index])
    # TWFE: contaminated, far from the truth at several horizons
    err = (tw.params.loc[es] - truth.loc[es]).abs() / tw.std_errors.loc[es]
    assert (err > 5).sum() >= 3
    # with a constant effect all three agree with the truth
    df, truth = staggered_panel(n_units=800, T=12, seed=12, dynamic=False)
    for fn in (sun_abraham, imputation, twfe_event_study):
        r = fn(df, **kw)
        avg = r.average((0, 5))
        assert abs(avg.estimate - 2.0) < 4 * avg.std_error, fn.__name__


# -- naive ------------------------------------------------------------------------------------------
def test_naive_before_after_is_mean_difference():
    df, _ = staggered_panel(n_units=300, T=12, seed=8)
    r = naive_before_after(
        df, yname="y", tname="time", idname="unit", gname="g", window=(-3, 4), cluster="state"
    )
    tr = df[df.g > 0].assign(e=lambda x: x.time - x.g)
    tr = tr[(tr.e >= -3) & (tr.e <= 4)]
    m = tr.groupby("e")["y"].mean()
    np.testing.assert_allclose(r.params.to_numpy(), (m.drop(-1) - m.loc[-1]).to_numpy(), atol=1e-10)
    X = sm.add_constant(pd.get_dummies(tr.e, dtype=float).drop(columns=-1).to_numpy())
    f = sm.OLS(tr.y.to_numpy(), X).fit(cov_type="cluster", cov_kwds={"groups": tr.state.to_numpy()})
    np.testing.assert_allclose(r.std_errors.to_numpy(), f.bse[1:], rtol=1e-9)


# -- stacked ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("window,binned", [((-4, 6), False), ((-3, 4), False), ((-2, 3), True)])
def test_stacked_matches_explicit_dummy_regression(window, binned):
    d = stacked_data(n_stacks=12)
    r = stacked_event_study(
        d, yname="y", weights="ipcw", window=window, bin_endpoints=binned, k_fixef="full"
    )
    dd = d[~d.censored]
    if not binned:
        dd = dd[dd.stack_event_time.between(*window)]
    et = dd.stack_event_time.to_numpy()
    et_b = np.clip(et, *window)
    tr = (dd.role == "treated").to_numpy()
    X = np.column_stack([(tr & (et_b == e)).astype(float) for e in r.event_time])
    assert r.event_time.tolist() == [e for e in range(window[0], window[1] + 1) if e != -1]
    w = (dd.weight * dd.ipcw).to_numpy()
    us = dd.student_key + "|" + dd.match_id.astype(str)
    se_ = dd.stack_id.astype(str) + "|" + dd.stack_event_time.astype(str)
    b, V, K = explicit_ols(dd.y.to_numpy(), X, [us, se_], w, dd.school_code.to_numpy())
    np.testing.assert_allclose(r.estimate, b, atol=1e-8)
    n, G = len(dd), dd.school_code.nunique()
    sm_factor = (n - 1) / (n - K) * G / (G - 1)
    np.testing.assert_allclose(r.vcov / r.info["ssc"], V / sm_factor, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(
        r.std_errors.to_numpy() ** 2 / r.info["ssc"], np.diag(V) / sm_factor, rtol=1e-8
    )
    assert r.info["dropped_censored_rows"] == int(d.censored.sum())
    assert r.reference == (-1,) and -1 not in r.event_time.tolist()
    avg = r.average((1, 3))
    assert abs(avg.estimate - b[(r.event_time >= 1) & (r.event_time <= 3)].mean()) < 1e-10


def test_stacked_options_and_errors():
    d = stacked_data(seed=2)
    r = stacked_event_study(d, yname="y", window=(-2, 3), bin_endpoints=True)
    assert r.event_time.tolist() == [-2, 0, 1, 2, 3]
    assert r.info["n_obs"] == int((~d.censored).sum())
    r2 = stacked_event_study(d, yname="y", window=None, ref=(-2, -1))
    assert r2.event_time.min() == -4 and -2 not in r2.event_time.tolist()
    d2 = d.assign(role=d.role.eq("treated"))
    r3 = stacked_event_study(d2, yname="y", window=None)
    r4 = stacked_event_study(d, yname="y", window=None)
    np.testing.assert_allclose(r3.estimate, r4.estimate)
    with pytest.raises(KeyError, match="school_code"):
        stacked_event_study(d.drop(columns="school_code"), yname="y")
    with pytest.raises(ValueError, match="role"):
        stacked_event_study(d.assign(role="x"), yname="y")


# -- wild cluster bootstrap -----------------------------------------------------------------------
def test_webb_weights_values():
    assert sorted(WEBB_POINTS.tolist()) == pytest.approx(
        [-np.sqrt(1.5), -1, -np.sqrt(0.5), np.sqrt(0.5), 1, np.sqrt(1.5)]
    )
    v = draw_weights(10, B=6000, seed=1)
    assert set(np.round(np.unique(v), 12)) == set(np.round(WEBB_POINTS, 12))
    assert abs(v.mean()) < 0.03 and abs(v.var() - 1) < 0.03


def _brute_force_t(Xt, yt, w, cl, c, v, theta):
    """Re-estimate explicitly in each replication (reference for the closed form)."""
    A = np.linalg.inv(Xt.T @ (w[:, None] * Xt))
    b = A @ Xt.T @ (w * yt)
    br = b - A @ c * (c @ b - theta) / (c @ A @ c)
    ur = yt - Xt @ br
    out = []
    for vb in v:
        ys = Xt @ br + ur * vb[cl]
        bs = A @ Xt.T @ (w * ys)
        us = ys - Xt @ bs
        S = np.array([Xt[cl == g].T @ (w * us)[cl == g] for g in range(cl.max() + 1)])
        var = c @ A @ (S.T @ S) @ A @ c
        out.append((c @ bs - theta) / np.sqrt(var))
    return np.array(out)


def test_wild_bootstrap_closed_form_matches_brute_force():
    rng = np.random.default_rng(0)
    n, G = 400, 9
    cl = rng.integers(0, G, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    w = rng.uniform(0.5, 1.5, n)
    y = X @ np.array([1.0, 0.3, 0.0]) + rng.normal(size=n) + rng.normal(size=G)[cl]
    c = np.array([0.0, 1.0, 0.5])
    v = draw_weights(G, B=50, seed=3)
    from pipeline.did.wild import _WCR

    h = _WCR(X, y, w, cl, c, 1.0)
    for theta in (0.0, 0.7):
        _, tb = h.tstats(theta, v)
        np.testing.assert_allclose(tb, _brute_force_t(X, y, w, cl, c, v, theta), rtol=1e-9)
    res = wild_cluster_bootstrap(X, y, cl, c, w=w, B=999, seed=5)
    assert res.ci_low < res.estimate < res.ci_high
    # the interval bounds are where the bootstrap p-value crosses alpha
    draws = draw_weights(G, B=999, seed=5)
    hi_in = wild_cluster_bootstrap(
        X, y, cl, c, w=w, draws=draws, theta0=res.ci_high - 1e-6, ci=False
    ).p_value
    hi_out = wild_cluster_bootstrap(
        X, y, cl, c, w=w, draws=draws, theta0=res.ci_high + 1e-6, ci=False
    ).p_value
    assert hi_in >= 0.05 - 1e-9 and hi_out <= 0.05 + 1e-9
    # same seed, same answer; sharing the least-squares pieces changes nothing
    again = wild_cluster_bootstrap(X, y, cl, c, w=w, B=999, seed=5)
    assert again == res
    shared = wild_cluster_bootstrap(
        X, y, cl, c, w=w, B=999, seed=5, fit=prepare_fit(X, y, cl, w=w)
    )
    assert shared == res


def test_wild_bootstrap_pvalue_roughly_uniform_under_null():
    rng = np.random.default_rng(42)
    n, G, reps = 240, 12, 300
    cl = np.repeat(np.arange(G), n // G)
    p = []
    for _ in range(reps):
        x = rng.normal(size=n) + rng.normal(size=G)[cl]
        X = np.column_stack([np.ones(n), x])
        y = 1.0 + rng.normal(size=n) + rng.normal(size=G)[cl]  # true slope 0
        p.append(
            wild_cluster_bootstrap(
                X, y, cl, np.array([0.0, 1.0]), B=199, seed=int(rng.integers(1 << 31)), ci=False
            ).p_value
        )
    p = np.array(p)
    # rejection rates near nominal (binomial sd at 300 reps ~ 0.013 at 5%, 0.017 at 10%)
    assert 0.01 <= (p <= 0.05).mean() <= 0.10
    assert 0.05 <= (p <= 0.10).mean() <= 0.17
    assert 0.4 <= np.mean(p) <= 0.6


def test_stacked_wild_bootstrap_outputs():
    d = stacked_data(seed=9, effect=1.0)
    r = stacked_event_study(
        d, yname="y", window=(-4, 6), cluster="school_code", wild_bootstrap=True, B=399, seed=1
    )
    tab = r.info["wild_bootstrap"]
    assert tab["term"].tolist()[-1] == "average"
    ci = r.conf_int()
    assert np.all((ci["ci_low"] < r.estimate) & (r.estimate < ci["ci_high"]))
    np.testing.assert_allclose(tab["estimate"].iloc[:-1], r.estimate, atol=1e-10)
    np.testing.assert_allclose(tab["std_error"].iloc[:-1], r.std_errors, rtol=1e-8)
    avg = tab.set_index("term").loc["average"]
    assert abs(avg["estimate"] - r.average((1, 6)).estimate) < 1e-10
    assert avg["p_value"] < 0.05  # true effect 1.0 over 1..6
    wa = r.info["wild_bootstrap_average"]
    assert wa["window"] == [1, 6] and wa["p_value"] == avg["p_value"]
    assert wa["ci_low"] < wa["estimate"] < wa["ci_high"]
    r2 = stacked_event_study(
        d, yname="y", window=(-4, 6), cluster="school_code", wild_bootstrap=True, B=399, seed=1
    )
    pd.testing.assert_frame_equal(tab, r2.info["wild_bootstrap"])


def test_panel_input_errors():
    df, _ = staggered_panel(n_units=50, T=6, seed=3)
    kw = dict(yname="y", tname="time", idname="unit", gname="g")
    with pytest.raises(KeyError, match="nope"):
        twfe_event_study(df, **{**kw, "yname": "nope"})
    bad = df.copy()
    bad.loc[bad.index[0], "g"] = 99
    with pytest.raises(ValueError, match="varies within unit"):
        sun_abraham(bad, **kw)
    with pytest.raises(ValueError, match="duplicate"):
        imputation(pd.concat([df, df.iloc[:1]]), **kw)
    bad = df.copy()
    bad.loc[bad.index[3], "y"] = np.nan
    with pytest.raises(ValueError, match="missing"):
        naive_before_after(bad, **kw)


def test_stacked_unit_by_stack_effects_and_pretrend_test():
    d = stacked_data(seed=4)
    # a comparison student in two matched sets of the same stack; unbalance one copy so
    # that pooling its two unit effects (unit x stack) changes the stack-time effects
    first = (
        d[d.stack_event_time == 0]
        .groupby(["student_key", "stack_id"])
        .match_id.agg(["nunique", "min"])
    )
    u, s = first[first["nunique"] > 1].index[0]
    m = first.loc[(u, s), "min"]
    drop = (d.student_key == u) & (d.match_id == m) & (d.stack_event_time >= 4)
    d = d[~drop]
    r = stacked_event_study(d, yname="y", match=None, window=(-4, 6))
    assert r.info["unit_fe"] == "student_key x stack_id"
    r2 = stacked_event_study(d, yname="y", window=(-4, 6))
    assert r2.info["unit_fe"] == "student_key x match_id"
    assert not np.allclose(r.estimate, r2.estimate)
    wt = r2.pretrend_test()
    assert wt.event_times == (-4, -3, -2) and wt.df == 3 and 0 <= wt.p_value <= 1
    assert (r2.n_treated == 25).all()


def test_pretrend_test_small_sample_f_with_clusters():
    """With cluster-robust errors (df = clusters − 1) the joint pre-trend test is the
    Hotelling-type F: one restriction gives exactly the two-sided t test on G − 1 degrees
    of freedom; two give F = W (G − q) / (q (G − 1)) on (q, G − q); without clusters χ²."""
    from scipy import stats

    from pipeline.did.results import EventStudyResult

    est, var = [0.5, 0.2, 0.0, 1.0], np.diag([0.04, 0.09, 0.0, 0.25])
    r = EventStudyResult("x", [-4, -3, 0, 1], est, var, reference=(-1,), df=9.0)
    one = r.pretrend_test([-4])
    assert one.clusters == 10 and one.statistic == pytest.approx(6.25)
    assert one.p_value == pytest.approx(2 * stats.t.sf(0.5 / 0.2, 9), rel=1e-12)
    two = r.pretrend_test()
    w = 0.5**2 / 0.04 + 0.2**2 / 0.09
    f = w * (10 - 2) / (2 * 9)
    assert two.f_statistic == pytest.approx(f) and two.p_value == pytest.approx(stats.f.sf(f, 2, 8))
    assert two.p_value > stats.chi2.sf(w, 2)  # more conservative than the χ² reference
    no = EventStudyResult("x", [-4, -3, 0, 1], est, var, reference=(-1,)).pretrend_test()
    assert no.clusters is None and no.p_value == pytest.approx(stats.chi2.sf(w, 2))
    assert "chi2(2)" in str(no) and "F(2, 8)" in str(two)
