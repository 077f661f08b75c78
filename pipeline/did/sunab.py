"""Sun & Abraham (2021) interaction-weighted event study.

The saturated regression

    y_it = α_i + λ_t + Σ_{g} Σ_{e ∉ ref} δ_{g,e} 1[G_i = g] 1[t − g = e] + ε_it

with a clean control cohort (never treated, or the last-treated cohort) identifies
cohort-specific effects δ_{g,e} free of the contamination that biases the pooled TWFE
event study.  They are aggregated to event times with weights equal to each cohort's
share of the treated observations at that event time (as ``fixest::sunab`` /
``aggregate(..., agg = "period")`` and pyfixest's saturated event study do), and the
covariance of the aggregates is ``W V Wᵀ`` (delta method with fixed weights).

Cohort indicators × relative-time indicators are mutually exclusive per row, so the
design is one sparse column block; unit and period effects are absorbed
(:mod:`pipeline.did.fe`), so large panels need no dense dummy matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.did.fe import (
    FixedEffects,
    as_tuple,
    cluster_codes,
    factorize,
    feols,
    panel_arrays,
    window_rel,
)
from pipeline.did.results import EventStudyResult

__all__ = ["sun_abraham"]


def sun_abraham(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    control: str = "never",
    cluster: str | Sequence[str] | None = None,
    ref: int | Sequence[int] = -1,
    window: tuple[int, int] | None = None,
    bin_endpoints: bool = False,
    weights: str | None = None,
    k_fixef: str = "nonnested",
    alpha: float = 0.05,
) -> EventStudyResult:
    """Interaction-weighted event study (Sun & Abraham 2021).

    Parameters
    ----------
    data
        Long panel, one row per unit and period.
    yname, tname, idname, gname
        Outcome, integer period, unit and first-treated-period (``0``/missing/inf =
        never treated) columns.
    control
        ``"never"``: never-treated units are the control cohort (error if there are
        none).  ``"lastcohort"``: the last-treated cohort is the control; never-treated
        units and all periods from the last cohort's first treated period on are dropped.
    cluster
        Cluster column(s) for CR1 standard errors (default ``idname``).
    ref
        Omitted relative period(s) of every cohort (default −1).
    window, bin_endpoints
        Relative periods to estimate; beyond the window rows are dropped, or pooled into
        the end bins if ``bin_endpoints``.
    weights
        Optional observation-weight column (also used for the cohort shares).
    k_fixef
        Small-sample correction convention (see :func:`pipeline.did.fe.feols`).

    Returns
    -------
    EventStudyResult
        Estimator ``"sun_abraham"``, event-time aggregates; ``info["cohort_effects"]`` is
        the table of cohort × relative-time coefficients with their standard errors and
        aggregation weights.
    """
    where = "sun_abraham"
    a = panel_arrays(
        data, yname=yname, tname=tname, idname=idname, gname=gname, weights=weights, where=where
    )
    refs = as_tuple(ref)
    g, t = a["g"], a["t"]
    keep = a["w"] > 0
    info: dict = {}
    if control == "never":
        if not np.isinf(g).any():
            raise ValueError(
                f"{where}: control='never' but no never-treated units "
                f"({gname} is 0/missing/inf for none); use control='lastcohort'"
            )
    elif control == "lastcohort":
        fin = np.isfinite(g)
        if not fin.any():
            raise ValueError(f"{where}: no treated cohorts")
        g_last = float(g[fin].max())
        keep &= fin & (t < g_last)
        g = np.where(g == g_last, np.inf, g)
        info["control_cohort"] = int(g_last)
    else:
        raise ValueError(f"{where}: control must be 'never' or 'lastcohort', not {control!r}")
    # cohorts with no pre-period in the sample (always treated) cannot be identified
    tmin = t[keep].min()
    always = np.isfinite(g) & (g <= tmin)
    if (always & keep).any():
        info["dropped_always_treated_units"] = int(np.unique(a["ids"][always & keep]).size)
        keep &= ~always
    rel = np.where(np.isfinite(g), t - g, np.nan)
    rel, wkeep = window_rel(rel, window, bin_endpoints)
    keep &= wkeep
    d = data.loc[keep]
    y, w, t, ids, g, rel = (a["y"][keep], a["w"][keep], t[keep], a["ids"][keep], g[keep], rel[keep])
    # one sparse column per (cohort, relative period) cell
    act = np.isfinite(rel) & ~np.isin(rel, refs)
    ga, ea = g[act].astype(np.int64), rel[act].astype(np.int64)
    e0 = int(ea.min()) if ea.size else 0
    span = int(ea.max()) - e0 + 1 if ea.size else 1
    cell_code, cell_key = pd.factorize((ga * span) + (ea - e0), sort=True)
    cell_key = np.asarray(cell_key, dtype=np.int64)
    cell_g, cell_e = cell_key // span, cell_key % span + e0
    if cell_g.size == 0:
        raise ValueError(f"{where}: no cohort x relative-period cells to estimate")
    rows = np.flatnonzero(act)
    X = sp.csr_matrix((np.ones(rows.size), (rows, cell_code)), shape=(y.size, cell_g.size))
    fe = FixedEffects([factorize(ids)[0], factorize(t)[0]], w)
    cl = cluster_codes(d, idname if cluster is None else cluster)
    names = list(range(cell_g.size))
    r = feols(y, X, fe, weights=w, cluster=cl, names=names, k_fixef=k_fixef)
    kept = np.asarray(r.names, dtype=np.int64)
    # cohort shares at each relative period, over the cells that were estimated
    mass = np.bincount(cell_code, weights=w[rows], minlength=cell_g.size)[kept]
    units = pd.DataFrame({"u": ids[rows], "c": cell_code}).drop_duplicates()
    n_units = units.groupby("c")["u"].size().reindex(kept, fill_value=0).to_numpy()
    ek = cell_e[kept]
    events = np.unique(ek)
    W = np.zeros((events.size, kept.size))
    for i, e in enumerate(events):
        m = ek == e
        W[i, m] = mass[m] / mass[m].sum()
    est = W @ r.coef
    V = W @ r.vcov @ W.T
    n_tr = np.array([int(n_units[ek == e].sum()) for e in events], dtype=np.int64)
    cohort_tab = pd.DataFrame(
        {
            "cohort": cell_g[kept],
            "event_time": ek,
            "estimate": r.coef,
            "std_error": r.std_errors,
            "weight": W.sum(axis=0),
            "n_units": n_units,
        }
    )
    info.update(
        {
            "n_obs": r.n,
            "n_clusters": r.n_clusters,
            "ssc": r.ssc,
            "df_k": r.df_k,
            "control": control,
            "n_cells": int(kept.size),
            "dropped_cells": len(r.dropped),
            "cohort_effects": cohort_tab,
        }
    )
    return EventStudyResult(
        estimator="sun_abraham",
        event_time=events,
        estimate=est,
        vcov=V,
        n_treated=n_tr,
        reference=refs,
        df=float(r.n_clusters - 1),
        alpha=alpha,
        info=info,
    )
