"""The matched ANCOVA fitted one event time at a time equals the pooled dense regression.

The reference is the implementation the stage used before (kept here, private): one
weighted regression on a dense design of treated × event-time and covariate × event-time
columns with the fixed-effect cells absorbed by :func:`pipeline.did.fe.feols`. The fast
path (:func:`pipeline.did.ancova.fit_by_event_time`) must give the same estimates,
standard errors, covariance across event times (which the window average, the pre-trend
test and the wild bootstrap use), small-sample factor and partialled-out columns.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.did.ancova import (
    LAGS,
    _rows,
    baseline_covariates,
    fit_by_event_time,
    matched_ancova,
)
from pipeline.did.fe import FixedEffects, cluster_codes, factorize, feols
from pipeline.did.wild import partial_out
from tests.test_did_ancova import _stacked


def _dense_reference(y, D, e, cov, cells, w, cl):
    """The pooled regression as the stage ran it before (dense design, feols)."""
    evs = sorted(int(k) for k in np.unique(e[D]))
    cols = [(D & (e == k)).astype(float) for k in evs]
    for k in sorted(np.unique(e)):
        ek = (e == k).astype(float)
        cols += [ek * cov[:, j] for j in range(cov.shape[1])]
    X = np.column_stack(cols)
    X = X[:, np.r_[np.ones(len(evs), bool), X[:, len(evs):].std(axis=0) > 0]]
    names = [*evs, *[f"x{i}" for i in range(X.shape[1] - len(evs))]]
    r = feols(y, X, FixedEffects([cells[0]], w), weights=w, cluster=cl, names=names,
              keep_tilde=True)  # fmt: skip
    pos = [i for i, nm in enumerate(r.names) if nm in evs]
    Xr, yr = partial_out(r.extra["Xt"], r.extra["yt"], w, np.asarray(pos))
    return {
        "events": np.asarray([r.names[i] for i in pos]),
        "coef": r.coef[pos],
        "vcov": r.vcov[np.ix_(pos, pos)],
        "ssc": r.ssc,
        "df_k": r.df_k,
        "n_clusters": r.n_clusters,
        "Xr": Xr,
        "yr": yr,
    }


def _prepared(d, *, fe="district_code", cluster="student_key", prior="prior_year_rate",
              extra=(), window=(-6, 6)):  # fmt: skip
    """The arrays matched_ancova regresses (its own row selection)."""
    base_cols = [*LAGS, *([prior] if prior else []), *extra]
    cl_cols = [cluster] if cluster else []
    rows, w = _rows(d, yname="attendance_rate", fe=fe, lags=LAGS, base_cols=base_cols,
                    unit="student_key", match="match_id", event_time="stack_event_time",
                    treated="role", wcols=("weight", "ipcw"), censored="censored",
                    cl_cols=cl_cols, window=window, refs=(-3, -2, -1),
                    where="test")  # fmt: skip
    y = rows["attendance_rate"].to_numpy(float)
    D = (rows["role"] == "treated").to_numpy()
    e = rows["stack_event_time"].to_numpy(np.int64)
    cov = baseline_covariates(rows, LAGS, [*([prior] if prior else []), *extra])
    cells = (factorize(rows["stack_event_time"]) if fe is None
             else factorize(rows["_fe"], rows["stack_event_time"]))  # fmt: skip
    cl = cluster_codes(rows, cluster)
    return y, D, e, cov, cells, w, cl


@pytest.fixture(scope="module")
def messy():
    """Weights, censored rows, a partly missing prior-year rate, a covariate collinear
    with another and one that is zero in some event times."""
    d = _stacked(seed=7, n=5000)
    d = d[d["match_id"] < 250].copy()
    rng = np.random.default_rng(11)
    d["ipcw"] = np.where(d["role"] == "comparison", rng.uniform(0.4, 3.0, len(d)), 1.0)
    d["weight"] = np.where(d["role"] == "comparison", rng.choice([1 / 3, 0.5, 1.0], len(d)), 1.0)
    d["censored"] = (d["role"] == "comparison") & (rng.random(len(d)) < 0.08) & (
        d["stack_event_time"] > 0
    )
    d["prior_year_rate"] = np.where(rng.random(len(d)) < 0.2, np.nan,
                                    d["rate_lag2"] + rng.normal(0, 2, len(d)))  # fmt: skip
    at0 = d.groupby(["match_id", "student_key"])["prior_year_rate"].transform("first")
    d["prior_year_rate"] = at0  # one value per student and stack
    d["lag1_copy"] = d["rate_lag1"]  # collinear: dropped like the pooled design drops it
    d["tiny_district"] = d["district_code"].astype(str)
    return d


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"fe": None},
        {"cluster": None},
        {"cluster": "district_code"},  # cells nested in the clusters: K counts them once
        {"extra": ("lag1_copy",)},
        {"prior": None, "window": (2, 4)},
    ],
    ids=["default", "no-fe", "hc1", "nested", "collinear", "post-only"],
)
def test_by_event_time_equals_the_pooled_dense_regression(messy, kw):
    y, D, e, cov, cells, w, cl = _prepared(messy, **kw)
    ref = _dense_reference(y, D, e, cov, cells, w, cl)
    new = fit_by_event_time(y, D, e, cov, cells, w, cl, keep_partialled=True)
    np.testing.assert_array_equal(new.events, ref["events"])
    np.testing.assert_allclose(new.coef, ref["coef"], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(new.vcov, ref["vcov"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(new.vcov)), np.sqrt(np.diag(ref["vcov"])),
                               rtol=1e-8)  # fmt: skip
    assert new.df_k == ref["df_k"] and new.n_clusters == ref["n_clusters"]
    assert new.ssc == pytest.approx(ref["ssc"], rel=1e-14)
    np.testing.assert_allclose(new.Xr, ref["Xr"], atol=1e-8)
    np.testing.assert_allclose(new.yr, ref["yr"], atol=1e-8)
    # the covariance across event times is not block diagonal (the same students)
    if len(new.events) > 1 and kw.get("cluster", "student_key") is not None:
        assert np.abs(new.vcov[0, 1]) > 1e-6


def test_matched_ancova_results_equal_the_reference_including_the_wild_bootstrap(messy):
    r = matched_ancova(messy, yname="attendance_rate", window=(-6, 6), wild_bootstrap=True,
                       B=99, seed=5, average_window=(1, 6))  # fmt: skip
    y, D, e, cov, cells, w, cl = _prepared(messy)
    ref = _dense_reference(y, D, e, cov, cells, w, cl)
    np.testing.assert_allclose(r.estimate, ref["coef"], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(r.vcov, ref["vcov"], rtol=1e-8, atol=1e-10)
    from pipeline.did.results import EventStudyResult
    from pipeline.did.wild import add_wild_bootstrap

    old = EventStudyResult("matched_ancova", ref["events"], ref["coef"], ref["vcov"])
    add_wild_bootstrap(old, ref["Xr"], ref["yr"], cl, w=w, ssc=ref["ssc"],
                       average_window=(1, 6), B=99, seed=5)  # fmt: skip
    a, b = r.info["wild_bootstrap"], old.info["wild_bootstrap"]
    assert a["term"].tolist() == b["term"].tolist()
    for c in ("estimate", "std_error", "t_stat", "p_value", "ci_low", "ci_high"):
        np.testing.assert_allclose(a[c].to_numpy(float), b[c].to_numpy(float), rtol=1e-7,
                                   atol=1e-8, err_msg=c)  # fmt: skip
    # the window average and the pre-trend test use the covariance across event times
    avg = r.average((1, 6))
    m = (ref["events"] >= 1) & (ref["events"] <= 6)
    c = m / m.sum()
    assert avg.std_error == pytest.approx(float(np.sqrt(c @ ref["vcov"] @ c)), rel=1e-8)


def test_a_district_whose_cells_hold_only_treated_rows_drops_the_treated_column():
    """If an event time's treated column is collinear with its cells (no comparison row
    left in any cell), that event time is not estimated, as in the pooled regression."""
    d = _stacked(seed=3, n=3000)
    d = d[d["match_id"] < 120].copy()
    gone = (d["role"] == "comparison") & (d["stack_event_time"] == 2)
    d.loc[gone, "censored"] = True
    y, D, e, cov, cells, w, cl = _prepared(d)
    ref = _dense_reference(y, D, e, cov, cells, w, cl)
    new = fit_by_event_time(y, D, e, cov, cells, w, cl)
    assert 2 not in new.events.tolist() and new.events.tolist() == ref["events"].tolist()
    np.testing.assert_allclose(new.coef, ref["coef"], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(new.vcov, ref["vcov"], rtol=1e-8, atol=1e-10)
    assert new.df_k == ref["df_k"]
