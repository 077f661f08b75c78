"""Inverse-probability-of-censoring weights for comparison students visited later.

In the matched design a comparison student is one who had *not yet* been reached at
their treated student's first-visit month ``m``.  Some of them are reached later — and,
since referral follows recorded attendance, they are reached *because* their attendance
dipped.  From their own first visit on, their rows no longer show untreated attendance:

* keeping them mixes the program's effect into the comparison group (bias toward zero);
* dropping them from then on leaves the comparison group healthier than it should be,
  because the students who drop out are exactly the ones whose attendance fell.

The correction implemented here: a comparison row is *censored* at and after the
student's own first completed visit (``censored`` in ``matched.parquet``) and dropped;
every uncensored comparison row at stack event time ``k ≥ 1`` is weighted by the inverse
of the estimated probability of having remained unvisited through ``k``,

``W[j, k] = Π_{l=1..k} (1 − h0[l]) / (1 − h[j, l])``,

where ``h[j, l]`` is a discrete-time hazard of being first reached at event time ``l``
given the recorded attendance history (the three previous school months' rates, their
squares, missing-lag indicators and the calendar month), fitted by logistic regression on
the comparison rows at risk, and ``h0[l]`` is the marginal hazard at ``l`` (stabilized
weights).  Because referral lists are built from recorded attendance, censoring is
explained by the modelled history and the weighted comparison rows stand for the whole
comparison group as if nobody had been visited.  Treated rows and rows before event time
1 get weight 1.  Weights can be truncated at a quantile (``truncate``) to limit variance;
the default is no truncation, since truncation reintroduces part of the bias the weights
remove (``tests/test_censoring.py`` shows both).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

DEFAULT_HISTORY = ("rate_lag1", "rate_lag2", "rate_lag3")


@dataclass
class CensoringModel:
    """The fitted hazard model and a summary of the weights."""

    n_at_risk: int
    n_events: int
    coef: pd.Series
    weight_summary: dict


def _design(df: pd.DataFrame, history: Sequence[str], categorical: Sequence[str]) -> np.ndarray:
    cols = []
    for h in history:
        x = df[h].to_numpy(dtype=float)
        miss = np.isnan(x)
        x = np.where(miss, 0.0, (x - 90.0) / 10.0)
        cols += [x, x**2, miss.astype(float)]
    X = np.column_stack(cols) if cols else np.empty((len(df), 0))
    for c in categorical:
        d = pd.get_dummies(df[c].astype(str), drop_first=True, dtype=float)
        X = np.column_stack([X, d.to_numpy()])
    return X


def ipcw_weights(
    stacked: pd.DataFrame,
    *,
    unit: str = "student_key",
    match_id: str = "match_id",
    role: str = "role",
    event_time: str = "stack_event_time",
    school_month: str = "school_month",
    own_first: str = "first_visit_school_month",
    history: Sequence[str] = DEFAULT_HISTORY,
    categorical: Sequence[str] = ("month",),
    stabilize: bool = True,
    truncate: float | None = None,
) -> tuple[pd.Series, CensoringModel]:
    """Censoring weights for the rows of stacked matched data.

    Returns a weight per row (index aligned with ``stacked``): 0 for censored comparison
    rows, 1 for treated rows and rows before event time 1, and the stabilized inverse
    probability of remaining unvisited for the other comparison rows.
    """
    for c in (unit, match_id, role, event_time, school_month, own_first, *history, *categorical):
        if c not in stacked.columns:
            raise KeyError(f"ipcw_weights: column '{c}' missing from the stacked data")
    df = stacked[
        [unit, match_id, role, event_time, school_month, own_first, *history, *categorical]
    ].copy()
    comp = (df[role] == "comparison").to_numpy()
    k = df[event_time].to_numpy()
    first = df[own_first].to_numpy(dtype=float)
    sm = df[school_month].to_numpy(dtype=float)
    censored = comp & ~np.isnan(first) & (first <= sm)
    event = comp & ~np.isnan(first) & (first == sm) & (k >= 1)
    at_risk = comp & (k >= 1) & (~censored | event)
    w = np.ones(len(df))
    w[censored] = 0.0
    risk = df.loc[at_risk]
    y = event[at_risk].astype(int)
    n_events = int(y.sum())
    if n_events == 0 or n_events == y.size:
        model = CensoringModel(
            int(y.size),
            n_events,
            pd.Series(dtype=float),
            {"note": "no censoring events: all weights 1"},
        )
        return pd.Series(w, index=stacked.index, name="ipcw"), model
    X = _design(risk, history, categorical)
    names = [f"{h}{s}" for h in history for s in ("", "_sq", "_missing")]
    varies = X.std(axis=0) > 0  # e.g. a missing-lag indicator that is always 0
    names = [n for n, v in zip(names, varies[: len(names)], strict=True) if v]
    X = X[:, varies]
    lr = LogisticRegression(C=1e6, solver="newton-cholesky", max_iter=200, tol=1e-8)
    with warnings.catch_warnings():
        # sklearn may fall back from Newton to lbfgs on nearly separable designs; the
        # fallback's result is used; non-finite fitted probabilities stop the stage below
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(X, y)
    h = lr.predict_proba(X)[:, 1]
    if not np.all(np.isfinite(h)):
        raise RuntimeError("ipcw_weights: the censoring model gave non-finite probabilities")
    # marginal hazard by event time for stabilization
    kk = k[at_risk]
    h0 = pd.Series(y).groupby(kk).mean()
    num = 1.0 - h0.reindex(kk).to_numpy() if stabilize else np.ones(kk.size)
    ratio = np.where(event[at_risk], 1.0, num / np.clip(1.0 - h, 1e-6, None))
    # cumulative product over each comparison's rows in its stack, in event-time order
    key = pd.DataFrame(
        {
            "m": risk[match_id].to_numpy(),
            "u": risk[unit].to_numpy(),
            "k": kk,
            "r": ratio,
            "pos": np.flatnonzero(at_risk),
        }
    )
    key = key.sort_values(["m", "u", "k"], kind="stable")
    key["W"] = key.groupby(["m", "u"], sort=False)["r"].cumprod()
    W = key["W"].to_numpy()
    if truncate is not None and W.size:
        cap = np.quantile(W, truncate)
        W = np.minimum(W, cap)
    w[key["pos"].to_numpy()] = W
    w[censored] = 0.0
    live = w[at_risk & ~censored]
    summary = {
        "rows_at_risk": int(at_risk.sum()),
        "censoring_events": n_events,
        "censored_rows": int(censored.sum()),
        "weight_mean": float(live.mean()) if live.size else float("nan"),
        "weight_max": float(live.max()) if live.size else float("nan"),
    }
    coef = pd.Series(lr.coef_[0][: len(names)], index=names)
    return pd.Series(w, index=stacked.index, name="ipcw"), CensoringModel(
        int(y.size), n_events, coef, summary
    )
