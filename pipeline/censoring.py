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
squares, missing-lag indicators), the prior-year rate (with a missing indicator), the
calendar month, the district and the grade band, fitted by logistic regression on the
comparison rows at risk, and ``h0[l]`` is the marginal hazard at ``l`` (stabilized
weights).  Because referral lists are built from recorded attendance, censoring is
explained by the modelled history and the weighted comparison rows stand for the whole
comparison group as if nobody had been visited.  Treated rows and rows before event time
1 get weight 1.  Weights may be truncated at quantiles of the uncensored weights
(``truncate``: ``None``, the default, for none; e.g. ``(0.01, 0.99)``): truncation limits
the variance a few extreme weights add and reintroduces a little of the bias the weights
remove (``tests/test_censoring.py`` shows both).  :attr:`CensoringModel.diagnostics` has,
per event time, the comparison rows at risk, the censored rows, the effective sample size
``(Σw)²/Σw²`` of the uncensored comparison rows (censoring × matching weight) and the
largest weight — the table the report shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.analysis.schemas import CENSORING_DIAGNOSTICS_COLUMNS
from pipeline.matching.propensity import _logistic_newton

DEFAULT_HISTORY = ("rate_lag1", "rate_lag2", "rate_lag3")
DEFAULT_CATEGORICAL = ("month", "district_code", "grade_band")
#: No truncation: at the study's sizes truncating at the 1st and 99th percentiles biased the
#: primary by about −0.2 points in the default world (``truncate=(0.01, 0.99)`` is the option).
DEFAULT_TRUNCATE = None
DIAGNOSTIC_COLUMNS = CENSORING_DIAGNOSTICS_COLUMNS
#: The hazard's ridge, as scikit-learn's ``C`` (``‖β‖²/2C``, intercept unpenalized): all
#: but unpenalized; it keeps a never-visited district's coefficient finite.
HAZARD_C = 1e6
#: Newton's stopping rule: no coefficient moves more than this, or no component of the
#: mean-loss gradient exceeds it (:func:`pipeline.matching.propensity._logistic_newton`).
HAZARD_TOL = 1e-10
HAZARD_MAX_STEPS = 100


@dataclass
class CensoringModel:
    """The fitted hazard model and a summary of the weights."""

    n_at_risk: int
    n_events: int
    coef: pd.Series
    weight_summary: dict
    diagnostics: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(DIAGNOSTIC_COLUMNS))
    )


def _design(
    df: pd.DataFrame, history: Sequence[str], categorical: Sequence[str], prior: str | None = None
) -> tuple[np.ndarray, sp.csr_matrix]:
    """The hazard's numeric columns (dense) and its categorical dummies (sparse; first
    level in sorted order dropped, as ``pd.get_dummies(drop_first=True)``)."""
    cols = []
    for h in (*history, *([prior] if prior else [])):
        x = df[h].to_numpy(dtype=float)
        miss = np.isnan(x)
        x = np.where(miss, 0.0, (x - 90.0) / 10.0)
        cols += [x, x**2, miss.astype(float)]
    X = np.column_stack(cols) if cols else np.empty((len(df), 0))
    blocks = []
    for c in categorical:
        codes, levels = pd.factorize(df[c].astype(str), sort=True)
        rows = np.flatnonzero(codes > 0)
        blocks.append(sp.csr_matrix((np.ones(rows.size), (rows, codes[rows] - 1)),
                                    shape=(len(df), max(len(levels) - 1, 0))))  # fmt: skip
    dummies = sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((len(df), 0))
    return X, dummies


def fit_hazard(X: np.ndarray, dummies: sp.csr_matrix, y: np.ndarray) -> np.ndarray:
    """The censoring hazard's logistic regression: intercept, then the columns of ``X``
    and ``dummies``; returns the coefficients in that order.

    The objective is scikit-learn's ``LogisticRegression(C=1e6)`` (the ridge ``‖β‖²/2C``
    on every coefficient but the intercept), minimised by the damped Newton solver the
    propensity model uses (:func:`pipeline.matching.propensity._logistic_newton`) on a
    sparse design, so the Hessian costs the dummies' nonzeros rather than rows × columns².
    """
    Z = sp.hstack([sp.csr_matrix(np.ones((len(y), 1))), sp.csr_matrix(X), dummies],
                  format="csr")  # fmt: skip
    yv = np.asarray(y, dtype=float)
    b0 = np.zeros(Z.shape[1])
    b0[0] = np.log(yv.mean() / (1.0 - yv.mean()))
    return _logistic_newton(Z, yv, np.ones(yv.size), b0, HAZARD_MAX_STEPS, tol=HAZARD_TOL,
                            l2=1.0 / HAZARD_C)  # fmt: skip


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
    prior: str | None = "prior_year_rate",
    categorical: Sequence[str] = DEFAULT_CATEGORICAL,
    match_weight: str | None = "weight",
    stabilize: bool = True,
    truncate: float | tuple[float, float] | None = DEFAULT_TRUNCATE,
) -> tuple[pd.Series, CensoringModel]:
    """Censoring weights for the rows of stacked matched data.

    Parameters
    ----------
    stacked : DataFrame
        Stacked matched panels (``matched.parquet``).
    unit, match_id, role, event_time, school_month, own_first : str
        Columns: student, matched set, ``treated``/``comparison``, event time in the
        stack, school month, the student's own first (completed) visit month.
    history : sequence of str
        Recent months' rates in the hazard (each with its square and a missing flag).
    prior : str or None
        Prior-year rate in the hazard (with its square and a missing flag).
    categorical : sequence of str
        Categorical columns of the hazard (dummies): calendar month, district, grade band.
    match_weight : str or None
        Matching weight column used in the diagnostics' effective sample size (ignored
        when absent).
    stabilize : bool
        Multiply by the marginal probability of remaining unvisited.
    truncate : float, (float, float) or None
        Quantiles of the uncensored comparison weights at which they are truncated: a pair
        ``(low, high)``, or one upper quantile; ``None``: no truncation.

    Returns
    -------
    (Series, CensoringModel)
        A weight per row (index aligned with ``stacked``): 0 for censored comparison
        rows, 1 for treated rows and rows before event time 1, and the stabilized inverse
        probability of remaining unvisited for the other comparison rows; and the fitted
        model with its per-event-time diagnostics.
    """
    need = [unit, match_id, role, event_time, school_month, own_first, *history, *categorical]
    if prior:
        need.append(prior)
    for c in need:
        if c not in stacked.columns:
            raise KeyError(f"ipcw_weights: column '{c}' missing from the stacked data")
    lo_q, hi_q = _truncation(truncate)
    df = stacked[list(dict.fromkeys(need))]
    comp = (df[role] == "comparison").to_numpy()
    k = df[event_time].to_numpy()
    first = df[own_first].to_numpy(dtype=float, na_value=np.nan)
    sm = df[school_month].to_numpy(dtype=float)
    censored, event, at_risk = risk_sets(comp, k, first, sm)
    w = np.ones(len(df))
    w[censored] = 0.0
    mw = (
        stacked[match_weight].to_numpy(dtype=float)
        if match_weight and match_weight in stacked.columns
        else np.ones(len(df))
    )
    risk = df.loc[at_risk]
    y = event[at_risk].astype(int)
    n_events = int(y.sum())
    if n_events == 0 or n_events == y.size:
        model = CensoringModel(
            int(y.size),
            n_events,
            pd.Series(dtype=float),
            {"note": "no censoring events: all weights 1"},
            _diagnostics(k, comp, censored, event, w, mw, np.zeros(len(df), dtype=bool)),
        )
        return pd.Series(w, index=stacked.index, name="ipcw"), model
    X, dummies = _design(risk, history, categorical, prior)
    names = [
        f"{h}{s}" for h in (*history, *([prior] if prior else [])) for s in ("", "_sq", "_missing")
    ]
    varies = X.std(axis=0) > 0  # e.g. a missing-lag indicator that is always 0
    names = [n for n, v in zip(names, varies, strict=True) if v]
    X = X[:, varies]
    beta = fit_hazard(X, dummies, y)
    h = hazard_probabilities(beta, X, dummies)
    if not np.all(np.isfinite(h)):
        raise RuntimeError("ipcw_weights: the censoring model gave non-finite probabilities")
    W = cumulative_weights(
        risk[match_id].to_numpy(), risk[unit].to_numpy(), k[at_risk], y.astype(bool), h,
        stabilize,
    )  # fmt: skip
    pos = np.flatnonzero(at_risk)
    trunc = np.zeros(len(df), dtype=bool)
    live_pos = ~censored[pos]
    if W.size and live_pos.any() and (lo_q is not None or hi_q is not None):
        lw = W[live_pos]
        lo = np.quantile(lw, lo_q) if lo_q is not None else -np.inf
        hi = np.quantile(lw, hi_q) if hi_q is not None else np.inf
        trunc[pos] = live_pos & ((W < lo) | (W > hi))
        W = np.clip(W, lo, hi)
    w[pos] = W
    w[censored] = 0.0
    live = w[at_risk & ~censored]
    summary = {
        "rows_at_risk": int(at_risk.sum()),
        "censoring_events": n_events,
        "censored_rows": int(censored.sum()),
        "weight_mean": float(live.mean()) if live.size else float("nan"),
        "weight_max": float(live.max()) if live.size else float("nan"),
        "truncate": [lo_q, hi_q],
        "truncated_rows": int(trunc.sum()),
    }
    coef = pd.Series(beta[1 : 1 + len(names)], index=names)
    return pd.Series(w, index=stacked.index, name="ipcw"), CensoringModel(
        int(y.size), n_events, coef, summary, _diagnostics(k, comp, censored, event, w, mw, trunc)
    )


def risk_sets(
    comp: np.ndarray, k: np.ndarray, first: np.ndarray, sm: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks over stacked rows: comparison rows censored (at or after the student's own
    first visit ``first``, NaN for none), censoring events (the row of that month, at event
    time ``k ≥ 1``) and rows at risk of one (comparison rows at ``k ≥ 1`` not yet censored,
    or censored there). ``sm``: each row's school month."""
    censored = comp & ~np.isnan(first) & (first <= sm)
    event = comp & ~np.isnan(first) & (first == sm) & (k >= 1)
    at_risk = comp & (k >= 1) & (~censored | event)
    return censored, event, at_risk


def hazard_probabilities(beta: np.ndarray, X: np.ndarray, dummies: sp.csr_matrix) -> np.ndarray:
    """The hazard's probabilities from :func:`fit_hazard`'s coefficients (intercept, ``X``'s
    columns, then the dummies')."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-(beta[0] + X @ beta[1 : 1 + X.shape[1]]
                                     + dummies @ beta[1 + X.shape[1]:])))  # fmt: skip


def cumulative_weights(
    match_id: np.ndarray,
    unit: np.ndarray,
    k: np.ndarray,
    event: np.ndarray,
    h: np.ndarray,
    stabilize: bool = True,
) -> np.ndarray:
    """The censoring weight of each row at risk (the arguments are those rows', in any
    order; the weights come back in the same order): ``Π_{l ≤ k} (1 − h0[l]) / (1 − h[l])``
    over the comparison's rows in its stack up to its event time ``k``, a factor of 1 at an
    event row; ``h0`` is the share of events at each event time (1 without ``stabilize``)."""
    h0 = pd.Series(event.astype(int)).groupby(k).mean()
    num = 1.0 - h0.reindex(k).to_numpy() if stabilize else np.ones(k.size)
    ratio = np.where(event, 1.0, num / np.clip(1.0 - h, 1e-6, None))
    key = pd.DataFrame({"m": match_id, "u": unit, "k": k, "r": ratio})
    key = key.sort_values(["m", "u", "k"], kind="stable")
    W = np.empty(k.size)
    W[key.index.to_numpy()] = key.groupby(["m", "u"], sort=False)["r"].cumprod().to_numpy()
    return W


def _truncation(truncate) -> tuple[float | None, float | None]:
    if truncate is None:
        return None, None
    if np.isscalar(truncate):
        lo, hi = None, float(truncate)
    else:
        lo, hi = (None if v is None else float(v) for v in truncate)
    for v in (lo, hi):
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(
                f"ipcw_weights: truncate quantiles must lie in [0, 1], not {truncate!r}"
            )
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"ipcw_weights: truncate needs low < high, not {truncate!r}")
    return lo, hi


def censoring_counts(
    k: np.ndarray, comp: np.ndarray, censored: np.ndarray, event: np.ndarray | None = None
) -> pd.DataFrame:
    """Per event time ≥ 1 (the index, ``event_time``): the comparison rows, those censored
    (visited later) and, given ``event``, the censoring events (later first visits in the
    row's month) — the counts both methods' diagnostics start from (:func:`_diagnostics`,
    :func:`pipeline.censoring_ice.imputation_diagnostics`)."""
    sel = comp & (k >= 1)
    d = pd.DataFrame(
        {
            "event_time": k[sel].astype(int),
            "comparison_rows": 1,
            "censored_rows": censored[sel].astype(int),
        }
    )
    if event is not None:
        d["censoring_events"] = event[sel].astype(int)
    return d.groupby("event_time").sum()


def _diagnostics(k, comp, censored, event, w, mw, trunc) -> pd.DataFrame:
    """Per event time ≥ 1: comparison rows, censored rows, ESS and largest weight."""
    out = censoring_counts(k, comp, censored, event)
    sel = comp & (k >= 1)
    d = pd.DataFrame(
        {
            "event_time": k[sel].astype(int),
            "w": np.where(censored[sel], 0.0, w[sel]),
            "tw": np.where(censored[sel], 0.0, w[sel] * mw[sel]),
            "truncated_rows": trunc[sel].astype(int),
        }
    )
    d["tw2"] = d["tw"] ** 2
    g = d.groupby("event_time")
    out["truncated_rows"] = g["truncated_rows"].sum()
    s1, s2 = g["tw"].sum(), g["tw2"].sum()
    out["effective_sample_size"] = np.where(s2 > 0, s1**2 / s2.where(s2 > 0, 1.0), 0.0)
    out["max_weight"] = g["w"].max()
    # the imputation's columns (pipeline/censoring_ice.py) are left empty
    return out.reset_index().reindex(columns=list(DIAGNOSTIC_COLUMNS))
