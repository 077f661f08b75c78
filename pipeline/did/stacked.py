"""Matched stacked event study — the matched differences design.

(The primary design until the simulation study; now reported beside the matched ANCOVA,
:mod:`pipeline.did.ancova`, which ``estimate.design`` selects by default.)

On the stacked output of the matching stage (``docs/interfaces.md``, section ``match``)
each stack is one treated student's matched set followed in event time relative to the
treated student's first visit.  The regression

    y_ise = α_{is} + λ_{s,e} + Σ_{e ∉ ref} β_e · D_is · 1[e_ise = e] + ε_ise

has unit-by-stack effects ``α_{is}``, stack-by-event-time effects ``λ_{s,e}`` (so
comparisons are only ever made within a stack, at the same calendar month) and
treated × event-time indicators; it is weighted by the matching weight (times an optional
extra weight column such as inverse-probability-of-censoring weights).  Comparison rows
at or after the comparison student's own first visit (``censored``) are dropped by
default.  Effects are relative to the reference window (default event time −1).

Standard errors are cluster-robust (CR1, fixest conventions; clusters = schools by
default).  Because program districts are few, ``wild_bootstrap=True`` adds a restricted
wild cluster bootstrap (Webb weights) giving p-values and test-inversion intervals for
each event-time coefficient and for the window average (:mod:`pipeline.did.wild`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.did.fe import (
    FixedEffects,
    as_tuple,
    cluster_codes,
    dummies,
    factorize,
    feols,
    require_columns,
    window_rel,
)
from pipeline.did.results import EventStudyResult
from pipeline.did.wild import add_wild_bootstrap

__all__ = ["stacked_event_study"]


def _treated_flag(col: pd.Series, name: str) -> np.ndarray:
    if col.dtype == bool or str(col.dtype) == "boolean":
        if col.isna().any():
            raise ValueError(f"stacked_event_study: treated column {name!r} has missing values")
        return col.to_numpy(dtype=bool)
    vals = col.astype("string")
    ok = vals.isin(["treated", "comparison"])
    if not ok.all():
        bad = sorted(set(vals[~ok].fillna("<NA>").tolist()))[:5]
        raise ValueError(
            f"stacked_event_study: column {name!r} must be boolean or "
            f"'treated'/'comparison' (found {bad})"
        )
    return (vals == "treated").to_numpy(dtype=bool)


def stacked_event_study(
    data: pd.DataFrame,
    *,
    yname: str,
    unit: str = "student_key",
    stack: str = "stack_id",
    match: str | None = "match_id",
    event_time: str = "stack_event_time",
    treated: str = "role",
    cluster: str | Sequence[str] | None = "school_code",
    match_weight: str | None = "weight",
    weights: str | None = None,
    censored: str | None = "censored",
    drop_censored: bool = True,
    ref: int | Sequence[int] = (-1,),
    window: tuple[int, int] | None = (-6, 12),
    bin_endpoints: bool = False,
    average_window: tuple[int, int] | None = (1, 6),
    wild_bootstrap: bool = False,
    B: int = 999,
    seed: int | None = None,
    bootstrap_weights: str = "webb",
    k_fixef: str = "nonnested",
    alpha: float = 0.05,
) -> EventStudyResult:
    """Stacked event study with unit-by-stack and stack-by-event-time fixed effects.

    Parameters
    ----------
    data
        Stacked panel (one row per unit, stack and event time).
    yname
        Outcome column.
    unit, stack, match, event_time
        Unit id, stack id, matched-set id and event-time columns.  The unit fixed effects
        are unit-by-matched-set (unit-by-stack if ``match`` is ``None``); the time
        effects are stack-by-event-time.
    treated
        Role column (``"treated"``/``"comparison"``) or a boolean column.
    cluster
        Cluster column(s) for CR1 errors and the wild bootstrap (default
        ``"school_code"``; ``None``: heteroskedasticity-robust HC1).
    match_weight
        Matching-weight column (``None``: 1).
    weights
        Optional extra weight column multiplied into the matching weight (e.g.
        inverse-probability-of-censoring weights).
    censored, drop_censored
        Rows with ``censored == True`` are dropped when ``drop_censored``.
    ref
        Reference event time(s) (omitted; effects are relative to them).
    window, bin_endpoints
        Event times to estimate.  Rows outside the window are dropped, unless
        ``bin_endpoints``: then they stay and the treated indicators beyond the window
        are pooled into the end bins (the stack-by-event-time effects keep the exact
        event time).  ``None``: all event times.
    average_window
        Window of the bootstrap-tested average (``EventStudyResult.average`` gives the
        analytic one for any window).
    wild_bootstrap, B, seed, bootstrap_weights
        Restricted wild cluster bootstrap (Webb weights by default) for every event-time
        coefficient and the window average; p-values and test-inversion intervals.
    k_fixef
        Small-sample correction convention (see :func:`pipeline.did.fe.feols`).

    Returns
    -------
    EventStudyResult
        Estimator ``"matched_stacked"``; ``df`` = clusters − 1.  With the bootstrap,
        ``ci_bounds``/``p_values`` are the bootstrap ones, ``info["wild_bootstrap"]``
        holds the table (including the row ``"average"``) and
        ``info["wild_bootstrap_average"]`` the window average as a plain dict.
    """
    where = "stacked_event_study"
    cols = [yname, unit, stack, match, event_time, treated, match_weight, weights]
    cols += [censored] if (censored is not None and drop_censored) else []
    cols += [cluster] if isinstance(cluster, str) else list(cluster or [])
    require_columns(data, cols, where)
    keep = np.ones(len(data), dtype=bool)
    info: dict = {}
    if censored is not None and drop_censored:
        cen = data[censored]
        if cen.isna().any():
            raise ValueError(f"{where}: column {censored!r} has missing values")
        keep &= ~cen.to_numpy(dtype=bool)
        info["dropped_censored_rows"] = int((~keep).sum())
    y = pd.to_numeric(data[yname], errors="coerce").to_numpy(dtype=float)
    if (~np.isfinite(y[keep])).any():
        raise ValueError(
            f"{where}: outcome {yname!r} has {int((~np.isfinite(y[keep])).sum())}"
            f" missing values in rows used; drop them first"
        )
    et = pd.to_numeric(data[event_time], errors="coerce").to_numpy(dtype=float)
    if np.isnan(et).any():
        raise ValueError(f"{where}: event-time column {event_time!r} has missing values")
    w = np.ones(len(data))
    for wc in (match_weight, weights):
        if wc is not None:
            v = pd.to_numeric(data[wc], errors="coerce").to_numpy(dtype=float)
            if not np.all(np.isfinite(v[keep])) or np.any(v[keep] < 0):
                raise ValueError(f"{where}: weight column {wc!r} must be finite and >= 0")
            w = w * v
    keep &= w > 0
    D = _treated_flag(data[treated], treated)
    refs = as_tuple(ref)
    et_b, wkeep = window_rel(et, window, bin_endpoints)
    keep &= wkeep
    d = data.loc[keep]
    y, w, D, et, et_b = y[keep], w[keep], D[keep], et[keep], et_b[keep]
    if not D.any() or D.all():
        raise ValueError(f"{where}: need both treated and comparison rows")
    lo_hi = sorted(int(e) for e in np.unique(et_b[D]))
    evs = [e for e in lo_hi if e not in refs]
    if not np.isin(et_b[D], refs).any():
        raise ValueError(f"{where}: no treated rows at the reference event time(s) {refs}")
    X = dummies(et_b, D, evs)
    us = factorize(d[unit], d[stack] if match is None else d[match])[0]
    se_ = factorize(d[stack], et)[0]
    fe = FixedEffects([us, se_], w)
    cl = cluster_codes(d, cluster)
    r = feols(
        y, X, fe, weights=w, cluster=cl, names=evs, k_fixef=k_fixef, keep_tilde=wild_bootstrap
    )
    events = np.asarray(r.names, dtype=np.int64)
    pairs = pd.DataFrame({"u": us[D], "e": et_b[D].astype(np.int64)}).drop_duplicates()
    cnt = pairs.groupby("e")["u"].size()
    n_tr = np.array([int(cnt.get(int(e), 0)) for e in events], dtype=np.int64)
    info.update(
        {
            "n_obs": r.n,
            "n_clusters": r.n_clusters,
            "ssc": r.ssc,
            "df_k": r.df_k,
            "n_stacks": int(np.unique(factorize(d[stack])[0]).size),
            "dropped_terms": r.dropped,
            "window": window,
            "bin_endpoints": bin_endpoints,
            "unit_fe": f"{unit} x {match or stack}",
            "time_fe": f"{stack} x {event_time}",
        }
    )
    res = EventStudyResult(
        estimator="matched_stacked",
        event_time=events,
        estimate=r.coef,
        vcov=r.vcov,
        n_treated=n_tr,
        reference=refs,
        df=float(r.n_clusters - 1) if r.n_clusters else None,
        alpha=alpha,
        info=info,
    )
    if wild_bootstrap:
        add_wild_bootstrap(res, r.extra["Xt"], r.extra["yt"], cl, w=w, ssc=r.ssc,
                           average_window=average_window, B=B, seed=seed,
                           weights=bootstrap_weights, alpha=alpha, where=where)
    return res
