"""IPCW for comparison students visited later: the weighted survivors stand for everyone."""

import numpy as np
import pandas as pd
import pytest

from pipeline.censoring import ipcw_weights


def _simulate(n=6000, K=8, seed=0):
    """Comparison students whose untreated attendance follows an AR(1) around their own
    level; each month a student is referred with a probability that rises steeply when
    last month's recorded rate was low (selection on a recorded dip)."""
    rng = np.random.default_rng(seed)
    level = rng.normal(90, 4, n)
    u = rng.normal(0, 4, n)
    rows = []
    rates = np.empty((n, K + 4))
    for t in range(K + 4):
        u = 0.6 * u + rng.normal(0, 4, n)
        rates[:, t] = np.clip(level + u, 0, 100)
    first = np.full(n, np.nan)
    for t in range(4, K + 4):
        k = t - 3  # event times 1..K
        alive = np.isnan(first)
        h = 1 / (1 + np.exp(-(-3.6 - 0.25 * (rates[:, t - 1] - 90))))
        hit = alive & (rng.random(n) < h)
        first[hit] = 200 + t
        rows.append(
            pd.DataFrame(
                {
                    "student_key": np.arange(n),
                    "match_id": np.arange(n),
                    "role": "comparison",
                    "stack_event_time": k,
                    "school_month": 200 + t,
                    "first_visit_school_month": first,
                    "rate_lag1": rates[:, t - 1],
                    "rate_lag2": rates[:, t - 2],
                    "rate_lag3": rates[:, t - 3],
                    "month": str(t),
                    "y0": rates[:, t],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_ipcw_recovers_the_uncensored_mean():
    df = _simulate()
    truth = df.groupby("stack_event_time")["y0"].mean()  # everyone, as if never visited
    w, model = ipcw_weights(df, categorical=(), prior=None, truncate=None)
    assert model.n_events > 500
    keep = w > 0
    naive = df[keep].groupby("stack_event_time")["y0"].mean()
    weighted = (df["y0"] * w)[keep].groupby(df["stack_event_time"][keep]).sum() / w[keep].groupby(
        df["stack_event_time"][keep]
    ).sum()
    late = truth.index >= 4
    # dropping visited students leaves a healthier comparison group ...
    assert (naive - truth)[late].min() > 0.8
    # ... and the weights undo it
    assert (weighted - truth).abs()[late].mean() < 0.3
    assert (weighted - truth).abs()[late].max() < 0.5
    # truncating the weights brings part of the bias back
    wt, _ = ipcw_weights(df, categorical=(), prior=None, truncate=0.99)
    trunc = (df["y0"] * wt)[keep].groupby(df["stack_event_time"][keep]).sum() / wt[keep].groupby(
        df["stack_event_time"][keep]
    ).sum()
    assert (trunc - truth)[late].mean() > (weighted - truth)[late].mean()


def test_censored_rows_get_zero_and_treated_one():
    df = _simulate(n=500, K=3)
    treated = df.iloc[:5].assign(role="treated")
    df = pd.concat([df, treated], ignore_index=True)
    w, _ = ipcw_weights(df, categorical=(), prior=None)
    cens = (df["role"] == "comparison") & (df["first_visit_school_month"] <= df["school_month"])
    assert (w[cens] == 0).all()
    assert (w[df["role"] == "treated"] == 1).all()
    assert (w[~cens & (df["role"] == "comparison")] > 0).all()


def _weighted_means(df, w):
    keep = w > 0
    num = (df["y0"] * w)[keep].groupby(df["stack_event_time"][keep]).sum()
    return num / w[keep].groupby(df["stack_event_time"][keep]).sum()


def test_hazard_needs_grade_band_and_prior_year_when_censoring_depends_on_them():
    """Referral depends on the grade band and the prior year, which also shift the outcome
    but not the recent months: weights on the recent months alone leave the bias, the
    default hazard (district, grade band, prior year) removes it."""
    rng = np.random.default_rng(3)
    df = _simulate(n=8000, K=6, seed=3)
    n = df["student_key"].max() + 1
    hs = rng.random(n) < 0.5
    prior = rng.normal(90, 5, n)
    s = df["student_key"].to_numpy()
    # re-draw the referral: hazard from grade band and prior year only
    first = np.full(n, np.nan)
    for k in range(1, 7):
        alive = np.isnan(first)
        h = 1 / (1 + np.exp(-(-3.0 + 1.5 * hs - 0.2 * (prior - 90))))
        first[alive & (rng.random(n) < h)] = 203 + k
    df["first_visit_school_month"] = first[s]
    df["grade_band"] = np.where(hs[s], "6-12", "PK-5")
    df["district_code"] = "D1"
    df["prior_year_rate"] = prior[s]
    df["y0"] = df["y0"] - 6.0 * hs[s] + 0.8 * (prior[s] - 90)
    truth = df.groupby("stack_event_time")["y0"].mean()
    late = truth.index >= 3
    w_lags, _ = ipcw_weights(df, categorical=(), prior=None, truncate=None)
    w_full, model = ipcw_weights(df, categorical=("grade_band",), truncate=None)
    bias_lags = (_weighted_means(df, w_lags) - truth)[late].abs().mean()
    bias_full = (_weighted_means(df, w_full) - truth)[late].abs().mean()
    assert bias_lags > 1.0
    assert bias_full < 0.3
    assert "prior_year_rate" in model.coef.index


def test_truncation_at_quantiles_and_diagnostics():
    df = _simulate(n=3000, K=6, seed=5)
    w0, m0 = ipcw_weights(df, categorical=(), prior=None, truncate=None)
    w1, m1 = ipcw_weights(df, categorical=(), prior=None, truncate=(0.05, 0.95))
    comp_live = w0 > 0
    comp_live &= df["stack_event_time"] >= 1
    lo, hi = np.quantile(w0[comp_live], [0.05, 0.95])
    assert np.allclose(w1[comp_live], np.clip(w0[comp_live], lo, hi))
    assert (w1[w0 == 0] == 0).all()
    n_trunc = int(((w0[comp_live] < lo) | (w0[comp_live] > hi)).sum())
    assert m1.weight_summary["truncated_rows"] == n_trunc
    assert m1.diagnostics["truncated_rows"].sum() == n_trunc
    # diagnostics by hand: ESS = (sum w)^2 / sum w^2 of the uncensored rows, largest weight
    d = m0.diagnostics.set_index("event_time")
    for k, grp in df.assign(w=w0).groupby("stack_event_time"):
        live = grp["w"][grp["w"] > 0]
        assert d.loc[k, "effective_sample_size"] == pytest.approx(live.sum() ** 2 / (live**2).sum())
        assert d.loc[k, "max_weight"] == pytest.approx(live.max())
        assert d.loc[k, "comparison_rows"] == len(grp)
        assert d.loc[k, "censored_rows"] == int((grp["w"] == 0).sum())
    # weights that vary lower the ESS below the count of uncensored rows
    assert (d["effective_sample_size"] < d["comparison_rows"] - d["censored_rows"]).all()


def test_truncate_rejects_bad_quantiles():
    df = _simulate(n=200, K=2)
    with pytest.raises(ValueError, match="truncate"):
        ipcw_weights(df, categorical=(), prior=None, truncate=(0.9, 0.1))
    with pytest.raises(ValueError, match="truncate"):
        ipcw_weights(df, categorical=(), prior=None, truncate=1.5)
    with pytest.raises(KeyError, match="prior_year_rate"):
        ipcw_weights(df, categorical=())


def _sklearn_hazard(X, dummies, y):
    """The hazard as the stage fitted it before: scikit-learn, C = 1e6, on the dense
    design with pandas' dummies (the reference for the Newton fit)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    Xd = np.column_stack([X, dummies.toarray()])
    lr = LogisticRegression(C=1e6, solver="newton-cholesky", max_iter=200, tol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(Xd, y)
    return np.r_[lr.intercept_, lr.coef_[0]]


def _with_categories(seed=4):
    df = _simulate(n=4000, K=8, seed=seed)
    rng = np.random.default_rng(seed)
    n = df["student_key"].max() + 1
    df["district_code"] = np.array([f"D{i:02d}" for i in rng.integers(0, 12, n)])[
        df["student_key"]
    ]
    df["grade_band"] = np.where(rng.random(n) < 0.4, "6-12", "PK-5")[df["student_key"]]
    df["prior_year_rate"] = np.where(rng.random(n) < 0.15, np.nan, rng.normal(90, 5, n))[
        df["student_key"]
    ]
    return df


def test_design_dummies_are_pandas_get_dummies():
    import pipeline.censoring as cz

    df = _with_categories()
    X, dummies = cz._design(df, cz.DEFAULT_HISTORY, cz.DEFAULT_CATEGORICAL, "prior_year_rate")
    ref = pd.concat([pd.get_dummies(df[c].astype(str), drop_first=True, dtype=float)
                     for c in cz.DEFAULT_CATEGORICAL], axis=1).to_numpy()  # fmt: skip
    np.testing.assert_array_equal(dummies.toarray(), ref)
    assert X.shape == (len(df), 12)


def test_newton_hazard_gives_the_scikit_learn_weights(monkeypatch):
    """Same objective (C = 1e6 ridge, intercept free) as the scikit-learn fit the stage
    used: coefficients agree closely and the weights within 1e-6."""
    import pipeline.censoring as cz

    df = _with_categories()
    w_new, m_new = ipcw_weights(df, truncate=None)
    monkeypatch.setattr(cz, "fit_hazard", _sklearn_hazard)
    w_ref, m_ref = ipcw_weights(df, truncate=None)
    assert m_ref.n_events == m_new.n_events > 300
    assert np.abs(w_new.to_numpy() - w_ref.to_numpy()).max() < 1e-6
    assert (w_new.to_numpy() > 1.0).any() and (w_new.to_numpy() == 0).any()  # not trivial
    np.testing.assert_allclose(m_new.coef.to_numpy(), m_ref.coef.to_numpy(), atol=1e-5)
    pd.testing.assert_frame_equal(m_new.diagnostics, m_ref.diagnostics, atol=1e-6)
