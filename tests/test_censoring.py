"""IPCW for comparison students visited later: the weighted survivors stand for everyone."""

import numpy as np
import pandas as pd

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
    w, model = ipcw_weights(df, categorical=())
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
    wt, _ = ipcw_weights(df, categorical=(), truncate=0.99)
    trunc = (df["y0"] * wt)[keep].groupby(df["stack_event_time"][keep]).sum() / wt[keep].groupby(
        df["stack_event_time"][keep]
    ).sum()
    assert (trunc - truth)[late].mean() > (weighted - truth)[late].mean()


def test_censored_rows_get_zero_and_treated_one():
    df = _simulate(n=500, K=3)
    treated = df.iloc[:5].assign(role="treated")
    df = pd.concat([df, treated], ignore_index=True)
    w, _ = ipcw_weights(df, categorical=())
    cens = (df["role"] == "comparison") & (df["first_visit_school_month"] <= df["school_month"])
    assert (w[cens] == 0).all()
    assert (w[df["role"] == "treated"] == 1).all()
    assert (w[~cens & (df["role"] == "comparison")] > 0).all()
