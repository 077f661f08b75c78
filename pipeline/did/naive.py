"""Naive before/after comparison on treated units only.

The number a reader without a comparison group would compute: the mean outcome of the
treated units at each event time minus their mean at the reference event time.  It is
the coefficient of event-time dummies in a regression on the treated units' rows with an
intercept (the reference event time omitted), with cluster-robust (CR1) standard errors.
It attributes every secular change (seasonality, maturation, regression to the mean after
a bad month that triggered the visit) to the program and is reported only as a foil.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.did.fe import as_tuple, cluster_codes, dummies, feols, panel_arrays, window_rel
from pipeline.did.results import EventStudyResult
from pipeline.did.twfe import _units_per_event

__all__ = ["naive_before_after"]


def naive_before_after(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    window: tuple[int, int] | None = (-6, 12),
    ref: int | Sequence[int] = -1,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    alpha: float = 0.05,
) -> EventStudyResult:
    """Event-time means of the treated units minus their mean at the reference period.

    Parameters
    ----------
    data
        Long panel; only rows of ever-treated units (finite ``gname``) are used.
    yname, tname, idname, gname
        Outcome, period, unit and first-treated-period columns.
    window
        Event times ``(lo, hi)`` to report (rows outside are dropped); ``None``: all.
    ref
        Reference event time(s); their pooled mean is subtracted.
    cluster
        Cluster column(s) (default ``idname``).
    weights
        Optional observation-weight column (weighted means).

    Returns
    -------
    EventStudyResult
        Estimator ``"naive"``; ``df`` = clusters − 1.
    """
    where = "naive_before_after"
    a = panel_arrays(
        data, yname=yname, tname=tname, idname=idname, gname=gname, weights=weights, where=where
    )
    refs = as_tuple(ref)
    rel, keep = window_rel(a["rel"], window, False)
    keep &= np.isfinite(a["rel"]) & (a["w"] > 0)
    if not keep.any():
        raise ValueError(f"{where}: no treated-unit rows in the window")
    rel = rel[keep]
    if not np.isin(rel, refs).any():
        raise ValueError(f"{where}: no rows at the reference event time(s) {refs}")
    evs = sorted(int(e) for e in np.unique(rel) if int(e) not in refs)
    X = sp.hstack(
        [sp.csr_matrix(np.ones((rel.size, 1))), dummies(rel, np.ones(rel.size, bool), evs)],
        format="csr",
    )
    cl = cluster_codes(data.loc[keep], idname if cluster is None else cluster)
    r = feols(a["y"][keep], X, None, weights=a["w"][keep], cluster=cl, names=["(intercept)", *evs])
    j = [i for i, nm in enumerate(r.names) if nm != "(intercept)"]
    events = [r.names[i] for i in j]
    return EventStudyResult(
        estimator="naive",
        event_time=np.asarray(events),
        estimate=r.coef[j],
        vcov=r.vcov[np.ix_(j, j)],
        n_treated=_units_per_event(a["ids"][keep], rel, events),
        reference=refs,
        df=float(r.n_clusters - 1),
        alpha=alpha,
        info={"n_obs": r.n, "n_clusters": r.n_clusters, "reference_mean": float(r.coef[0])},
    )
