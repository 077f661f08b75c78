"""Untreated attendance of censored comparison rows by iterated conditional expectations.

The alternative to the censoring weights of :mod:`pipeline.censoring`. A comparison student
reached (or, for the intent to treat, attempted) at stack event time ``c`` no longer shows
untreated attendance from ``c`` on. Instead of dropping those rows and weighting up the
students who resemble them, each censored row at event time ``k ≥ c`` gets a prediction of
its untreated attendance from the history recorded before ``c``, by the sequential
regression (iterated conditional expectations) form of the g-formula (Robins 1986; Bang &
Robins 2005):

* for the target event time ``k``: regress ``Y_k`` on the history before ``k`` (the rates of
  the three previous school months, the prior-year rate, missing flags) among the comparison
  rows uncensored at ``k``; the prediction is ``Q_k``;
* for ``l = k − 1, …, 1``: regress ``Q_{l+1}``, evaluated at the history through ``l``
  (``Y_l`` and the two months before it), on the history before ``l`` among the rows
  uncensored at ``l``; the prediction is ``Q_l``;
* a comparison row censored at ``c`` gets ``Q_c`` at its own history before ``c``.

Under the assumption the weights also make — referral depends on recorded history — and a
correct outcome model, ``Q_c`` is the expected untreated attendance at ``k`` of a student
with that history, averaged over the later referrals of students like them, so no
weights are needed and the lowest-attendance students, whom referral reaches almost
surely, are predicted rather than left out (``benchmarks/diagnose_censoring.py`` compares
both with the generator's untreated outcomes). The regressions are linear and fitted by
event time on all comparison rows (one per matched set and student), with the matching
weights. Treated rows and rows before event time 1 are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.analysis.schemas import CENSORING_DIAGNOSTICS_COLUMNS
from pipeline.censoring import censoring_counts, ipcw_weights

#: The history a regression conditions on: the three previous months' rates.
LAGS = ("rate_lag1", "rate_lag2", "rate_lag3")
#: How a design handles comparison students visited (or attempted) later: ``weights``,
#: the censoring weights of :mod:`pipeline.censoring`; ``impute``, :func:`ice_impute`.
CENSORING_METHODS = ("weights", "impute")


def _features(lags: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Intercept, each lag (0 where missing) with a missing flag, the prior-year rate the
    same. (Squares were tried: they extrapolate worse into the low-attendance rows that
    referral censors, ``benchmarks/diagnose_censoring.py``.)"""
    cols = [np.ones(len(prior))]
    for x in (*lags.T, prior):
        miss = np.isnan(x)
        cols += [np.where(miss, 0.0, x), miss.astype(float)]
    return np.column_stack(cols)


def _fit(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    return beta


def ice_impute(
    stacked: pd.DataFrame,
    yname: str,
    *,
    role: str = "role",
    event_time: str = "stack_event_time",
    censored: str = "censored",
    match_weight: str | None = "weight",
    prior: str = "prior_year_rate",
    lags: Sequence[str] = LAGS,
    max_event_time: int | None = None,
    history: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stacked rows with censored comparison outcomes imputed.

    Parameters
    ----------
    stacked : DataFrame
        Stacked matched panels with ``yname``, ``censored``, the lag columns and
        ``prior`` (``matched.parquet`` with outcomes).
    yname : str
        The outcome to impute (e.g. ``attendance_rate``).
    max_event_time : int, optional
        Impute event times up to this one (default: the largest in the data).
    history : str, optional
        The rate whose value in a month joins the recorded history from the next month
        on, as ``lags`` hold it (default: ``yname``). For an outcome that is not that rate
        (e.g. the chronic-absence flag ``chronic_pp``) pass the rate the lags are of
        (``attendance_rate``): the chain evaluates each month's model at the history
        through that month, which must be what the next month's lags record.

    Returns
    -------
    (DataFrame, DataFrame)
        The rows, with the censored comparison rows' ``yname`` replaced by their
        prediction, ``censored`` set to False for them and an ``ipcw`` column of 1 (so
        that estimators that read the weights use none); and per event time the comparison
        rows, the rows imputed and the mean imputed value.

    Raises
    ------
    KeyError
        A column the imputation needs is missing.
    ValueError
        An event time has no uncensored comparison row to learn from.
    """
    history = yname if history is None else history
    need = [role, event_time, censored, yname, history, prior, *lags]
    missing = [c for c in need if c not in stacked.columns]
    if missing:
        raise KeyError(f"ice_impute: column(s) {missing} missing from the stacked data")
    comp = (stacked[role] == "comparison").to_numpy()
    et = stacked[event_time].to_numpy()
    cen = stacked[censored].to_numpy(dtype=bool) & comp
    y = stacked[yname].to_numpy(dtype=float)
    L = stacked[list(lags)].to_numpy(dtype=float)
    pr = stacked[prior].to_numpy(dtype=float)
    w = (
        stacked[match_weight].to_numpy(dtype=float)
        if match_weight and match_weight in stacked.columns
        else np.ones(len(stacked))
    )
    before = _features(L, pr)  # history before the row's month
    # history through the row's month: its own outcome and the two months before it
    h = y if history == yname else stacked[history].to_numpy(dtype=float)
    through = _features(np.column_stack([h, L[:, 0], L[:, 1]]), pr)
    rows = {int(k): np.flatnonzero(comp & (et == k)) for k in np.unique(et[comp]) if k >= 1}
    kmax = max(rows) if rows else 0
    if max_event_time is not None:
        kmax = min(kmax, int(max_event_time))
    c_row = _first_censored_rows(stacked, cen, et)
    out_y = y.copy()
    imputed_rows = np.zeros(len(stacked), dtype=bool)
    diag = []

    def live_at(j: int) -> tuple[np.ndarray, np.ndarray] | None:
        idx = rows.get(j)
        if idx is None:
            return None
        live = idx[~cen[idx]]
        return live, w[live]

    for k in range(1, kmax + 1):
        if k not in rows:
            continue
        target = rows[k][cen[rows[k]]]
        if target.size == 0:
            diag.append({"event_time": k, "comparison_rows": int(rows[k].size), "imputed": 0,
                         "mean_imputed": np.nan})  # fmt: skip
            continue
        # Q_j for j = k, k−1, …, 1 (a row censored at k was censored from some c ≤ k on,
        # and gets Q_c: predict_censored)
        q_at = chain_models(k, live_at, y, before, through, "ice_impute")
        imputed = predict_censored(c_row[target], et[c_row[target]], before, q_at)
        out_y[target] = imputed
        imputed_rows[target] = True
        diag.append({"event_time": k, "comparison_rows": int(rows[k].size),
                     "imputed": int(target.size), "mean_imputed": float(np.mean(imputed))})  # fmt: skip
    out = stacked.copy()
    out[yname] = out_y
    # rows left censored (beyond max_event_time) keep the flag, so estimators drop them
    out[censored] = stacked[censored].to_numpy(dtype=bool) & ~imputed_rows
    out["ipcw"] = 1.0
    return out, pd.DataFrame(diag)


def chain_models(
    k: int,
    live_at,
    y: np.ndarray,
    before: np.ndarray,
    through: np.ndarray,
    who: str,
) -> dict[int, np.ndarray]:
    """The chain's models ``Q_j`` for ``j = k, k − 1, …, 1`` (the module docstring).

    ``live_at(j)`` gives the uncensored comparison rows at event time ``j`` — positions
    into ``y``, ``before`` and ``through`` — and their weights, or ``None`` when event
    time ``j`` has no comparison row (the chain skips it). Shared by :func:`ice_impute`
    (rows of the stacks) and the design bootstrap's draws (rows of the panel, weights of
    the draw's members, :class:`pipeline.design_bootstrap.DesignBootstrap`).

    Raises
    ------
    ValueError
        Some event time has fewer usable rows than the model has coefficients (``who``
        names the caller).
    """
    beta = None
    q_at: dict[int, np.ndarray] = {}
    for j in range(k, 0, -1):
        got = live_at(j)
        if got is None:
            continue
        live, wl = got
        if j == k:
            resp = y[live]
            ok = ~np.isnan(resp)
        else:  # Q_{j+1} at the history through j
            resp = through[live] @ beta
            ok = np.isfinite(resp) & ~np.isnan(y[live])
        if ok.sum() < before.shape[1]:
            raise ValueError(
                f"{who}: event time {j} has too few uncensored comparison rows "
                f"to predict event time {k}"
            )
        beta = _fit(before[live[ok]], resp[ok], wl[ok])
        q_at[j] = beta
    return q_at


def _first_censored_rows(stacked: pd.DataFrame, cen: np.ndarray, et: np.ndarray) -> np.ndarray:
    """For each censored row, the row of its unit's (matched set and student's) first
    censored event time; -1 for the other rows."""
    codes = pd.factorize(
        pd.MultiIndex.from_arrays(
            [stacked["match_id"].to_numpy(), stacked["student_key"].to_numpy()]
        )
    )[0]
    cen_rows = np.flatnonzero(cen & (et >= 1))
    cr = cen_rows[np.lexsort((et[cen_rows], codes[cen_rows]))]
    first = np.ones(cr.size, dtype=bool)
    first[1:] = codes[cr[1:]] != codes[cr[:-1]]
    out = np.full(len(stacked), -1, dtype=np.int64)
    out[cen_rows] = pd.Series(cr[first], index=codes[cr[first]]).reindex(codes[cen_rows])
    return out


def predict_censored(
    c_rows: np.ndarray, cs: np.ndarray, before: np.ndarray, q_at: dict
) -> np.ndarray:
    """Each target row's prediction: the model ``Q_c`` of its unit's first censored event
    time ``c`` (``cs``), at the history before ``c`` (``c_rows``: the unit's row at ``c``,
    a position into ``before``)."""
    out = np.empty(c_rows.size)
    for c in np.unique(cs):
        # a chain with no model at c (no comparison row there): the nearest later one
        beta = q_at.get(int(c))
        if beta is None:
            beta = q_at[min(j for j in q_at if j >= c)]
        sel = cs == c
        out[sel] = before[c_rows[sel]] @ beta
    return out


def imputation_diagnostics(stacked: pd.DataFrame, imputed: pd.DataFrame) -> pd.DataFrame:
    """The imputation's diagnostics in the censoring diagnostics' columns.

    Per event time ≥ 1: the comparison rows, those visited later (censored), the later
    first visits in that month (when the rows carry the first visit's month), and from
    :func:`ice_impute`'s table (``imputed``) the rows imputed and their mean imputed
    value; the weights' columns (effective rows, largest and truncated weights) are left
    empty.
    """
    comp = (stacked["role"] == "comparison").to_numpy()
    et = stacked["stack_event_time"].to_numpy()
    event = None
    if {"first_visit_school_month", "school_month"} <= set(stacked.columns):
        fv = stacked["first_visit_school_month"].astype("float64").to_numpy()
        event = fv == stacked["school_month"].astype("float64").to_numpy()
    cen = stacked["censored"].to_numpy(dtype=bool)
    out = censoring_counts(et, comp, cen, event).reset_index()
    if len(imputed):
        im = imputed.set_index("event_time")
        out["imputed_rows"] = out["event_time"].map(im["imputed"]).fillna(0).astype(int)
        out["mean_imputed"] = out["event_time"].map(im["mean_imputed"])
    else:
        out["imputed_rows"] = 0
    return out.reindex(columns=CENSORING_DIAGNOSTICS_COLUMNS)


def adjust_for_censoring(
    stacked: pd.DataFrame,
    yname: str,
    method: str,
    *,
    truncate: tuple[float, float] | None = None,
    history: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stacked rows ready for the estimators, censoring handled by ``method``.

    Parameters
    ----------
    stacked : DataFrame
        Stacked matched panels with outcomes (see :func:`ice_impute`).
    yname : str
        The outcome (imputed under ``impute``; the weights do not depend on it).
    method : {"weights", "impute"}
        ``weights``: censored comparison rows are dropped by the estimators and the others
        weighted by :func:`pipeline.censoring.ipcw_weights` (``truncate`` applies);
        ``impute``: their untreated outcome is predicted by :func:`ice_impute` and no
        weights are used.
    history : str, optional
        Under ``impute``, the rate the chain's history is of (:func:`ice_impute`; default
        ``yname``).

    Returns
    -------
    (DataFrame, DataFrame)
        The rows with an ``ipcw`` column, and per event time the weights' diagnostics
        (:attr:`pipeline.censoring.CensoringModel.diagnostics`) or the imputation's
        (:func:`imputation_diagnostics`), in the same columns.

    Raises
    ------
    ValueError
        ``method`` is not one of :data:`CENSORING_METHODS`.
    """
    if method == "weights":
        w, model = ipcw_weights(stacked, truncate=truncate)
        return stacked.assign(ipcw=w.to_numpy()), model.diagnostics
    if method == "impute":
        out, diag = ice_impute(stacked, yname, history=history)
        return out, imputation_diagnostics(stacked, diag)
    raise ValueError(f"censoring method must be one of {list(CENSORING_METHODS)}, not {method!r}")
