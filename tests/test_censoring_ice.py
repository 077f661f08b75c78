"""Iterated conditional expectations for censored comparison rows (pipeline/censoring_ice.py)."""

import numpy as np
import pandas as pd
import pytest

from pipeline.censoring_ice import ice_impute


def _stack(n=400, seed=0):
    """Comparison units with event times 0..3 whose untreated attendance follows an exact
    linear recursion in the previous months, and treated units; some comparison units are
    censored from event time 1, 2 or 3 on, *depending on their history* (low attendance is
    censored more): dropping them would bias the comparison mean."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n):
        l3, l2, l1 = rng.uniform(50, 100, 3)
        prior = rng.uniform(60, 100)
        hist = [l3, l2, l1]
        ys = {}
        for k in range(0, 4):
            y = 10 + 0.6 * hist[-1] + 0.2 * hist[-2] + 0.05 * prior
            ys[k] = (y, hist[-1], hist[-2], hist[-3])
            hist.append(y)
        c = None
        for k in (1, 2, 3):
            if ys[k][1] < 72 and rng.random() < 0.5:  # referral after a low month
                c = k
                break
        for k, (y, a, b, d) in ys.items():
            rows.append({"match_id": u, "student_key": f"s{u}", "role": "comparison",
                         "stack_event_time": k, "truth": y, "attendance_rate": y + 40 * (c is not None and k >= c),
                         "rate_lag1": a, "rate_lag2": b, "rate_lag3": d, "prior_year_rate": prior,
                         "censored": c is not None and k >= c, "weight": 1.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_exact_recursion_is_recovered_for_every_censored_row():
    df = _stack()
    cen = df["censored"].to_numpy()
    assert 0.1 < cen.mean() < 0.5
    out, diag = ice_impute(df, "attendance_rate")
    np.testing.assert_allclose(out.loc[cen, "attendance_rate"], df.loc[cen, "truth"], atol=1e-6)
    # uncensored rows untouched, nothing left censored, no weights needed
    np.testing.assert_array_equal(out.loc[~cen, "attendance_rate"], df.loc[~cen, "attendance_rate"])
    assert not out["censored"].any() and (out["ipcw"] == 1).all()
    assert diag["imputed"].sum() == cen.sum()
    # dropping the censored rows would leave the comparison group healthier than it is
    k3 = df["stack_event_time"] == 3
    assert df.loc[k3 & ~cen, "truth"].mean() > df.loc[k3, "truth"].mean() + 0.5


def test_treated_rows_and_event_time_zero_are_left_alone():
    df = _stack(n=100)
    t = df[df["match_id"] < 10].assign(role="treated", censored=False, attendance_rate=1.0)
    both = pd.concat([df[df["match_id"] >= 10], t], ignore_index=True)
    out, _ = ice_impute(both, "attendance_rate")
    assert (out.loc[out["role"] == "treated", "attendance_rate"] == 1.0).all()


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="rate_lag3"):
        ice_impute(_stack(n=20).drop(columns="rate_lag3"), "attendance_rate")


def _noisy_stack(n, seed):
    """As ``_stack`` but each month carries a shock, and referral follows the noisy month
    before: survivors at event time 3 are selected on shocks at 1 and 2."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(50, 100, (n, 3))
    prior = rng.uniform(60, 100, n)
    hist = [start[:, 0], start[:, 1], start[:, 2]]
    cols = {}
    c = np.full(n, 99)
    for k in range(0, 4):
        y = 10 + 0.6 * hist[-1] + 0.2 * hist[-2] + 0.05 * prior + rng.normal(0, 6, n)
        cols[k] = (y, hist[-1], hist[-2], hist[-3])
        if k >= 1:
            p = 1 / (1 + np.exp((hist[-1] - 70) / 3))  # referral after a low month
            c = np.where((c == 99) & (rng.random(n) < p), k, c)
        hist.append(y)
    frames = []
    for k, (y, a, b, d) in cols.items():
        frames.append(pd.DataFrame({
            "match_id": np.arange(n), "student_key": [f"s{i}" for i in range(n)],
            "role": "comparison", "stack_event_time": k, "truth": y,
            "attendance_rate": np.where(c <= k, y + 40, y), "rate_lag1": a, "rate_lag2": b,
            "rate_lag3": d, "prior_year_rate": prior, "censored": c <= k, "weight": 1.0}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_selection_on_later_months_is_handled_by_the_iteration():
    """With shocks, the untreated attendance of rows censored at event time 1 and seen at 3
    depends on months 1 and 2, on which the survivors are selected. The iterated
    regressions average over those months correctly; one regression of month 3 on the
    history before censoring, fitted on the survivors, does not."""
    df = _noisy_stack(40_000, 1)
    out, _ = ice_impute(df, "attendance_rate")
    k3 = (df["stack_event_time"] == 3).to_numpy()
    c1 = df.groupby("match_id")["censored"].transform(
        lambda s: bool(s.to_numpy()[1])).to_numpy()  # fmt: skip
    sel = k3 & c1
    assert sel.sum() > 2000
    err = out.loc[sel, "attendance_rate"].to_numpy() - df.loc[sel, "truth"].to_numpy()
    assert abs(err.mean()) < 0.5  # seeds 1-4 give -0.17, -0.20, -0.32, +0.15
    # the one-step shortcut: month 3 on the history at event time 1, survivors to 3 only
    r1 = df[df["stack_event_time"] == 1].set_index("match_id")
    r3 = df[df["stack_event_time"] == 3].set_index("match_id")
    live = ~r3["censored"]
    X = np.column_stack([np.ones(len(r1)), r1[["rate_lag1", "rate_lag2", "rate_lag3",
                                               "prior_year_rate"]].to_numpy()])  # fmt: skip
    b = np.linalg.lstsq(X[live.to_numpy()], r3.loc[live, "truth"].to_numpy(), rcond=None)[0]
    cen1 = r1["censored"].to_numpy()
    short = X[cen1] @ b - r3["truth"].to_numpy()[cen1]
    assert short.mean() > 1.0  # the shortcut leaves the survivors' selection in


def test_adjust_for_censoring_dispatches_and_names_a_bad_method():
    """``impute`` is :func:`ice_impute`, its diagnostics in the censoring diagnostics'
    columns (the weights' branch needs a full stacked panel:
    tests/test_estimands.py::test_itt_with_imputation_is_the_imputed_design)."""
    from pipeline.analysis.schemas import CENSORING_DIAGNOSTICS_COLUMNS
    from pipeline.censoring_ice import adjust_for_censoring

    df = _stack(n=200)
    m, diag = adjust_for_censoring(df, "attendance_rate", "impute")
    expect, expect_diag = ice_impute(df, "attendance_rate")
    pd.testing.assert_frame_equal(m, expect)
    assert list(diag.columns) == CENSORING_DIAGNOSTICS_COLUMNS
    np.testing.assert_array_equal(diag["imputed_rows"], expect_diag["imputed"])
    np.testing.assert_allclose(diag["mean_imputed"], expect_diag["mean_imputed"])
    np.testing.assert_array_equal(diag["comparison_rows"], expect_diag["comparison_rows"])
    # every row visited later is imputed; the weights' columns stay empty
    np.testing.assert_array_equal(diag["censored_rows"], diag["imputed_rows"])
    assert diag[["effective_sample_size", "max_weight", "censoring_events"]].isna().all().all()
    with pytest.raises(ValueError, match="'weights', 'impute'.*'oracle'"):
        adjust_for_censoring(df, "attendance_rate", "oracle")


def test_an_outcome_other_than_the_rate_chains_on_the_rate_history():
    """Imputing another outcome (as chronic absence is imputed beside attendance): the chain
    evaluates each month's model at the history through that month, which is the rate the
    lags record, not the outcome. With an outcome affine in the rate the imputation is the
    same affine function of the true rate; chaining on the outcome itself is not."""
    df = _stack()
    df["other"] = 2.0 * df["attendance_rate"] + 3.0
    cen = df["censored"].to_numpy()
    out, _ = ice_impute(df, "other", history="attendance_rate")
    np.testing.assert_allclose(out.loc[cen, "other"], 2.0 * df.loc[cen, "truth"] + 3.0, atol=1e-6)
    wrong, _ = ice_impute(df, "other")  # the outcome's own values as the history
    later = cen & (df["stack_event_time"] >= 2).to_numpy()
    assert np.abs(wrong.loc[later, "other"] - (2.0 * df.loc[later, "truth"] + 3.0)).max() > 1.0
    with pytest.raises(KeyError, match="'nope'"):
        ice_impute(df, "other", history="nope")
