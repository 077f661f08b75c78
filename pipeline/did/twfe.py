"""Two-way fixed-effects (TWFE) dynamic event study — the conventional, biased baseline.

``y_it = α_i + λ_t + Σ_{e ∉ ref} β_e 1[t − G_i = e] + ε_it`` estimated by weighted least
squares with unit and period effects absorbed (:mod:`pipeline.did.fe`) and cluster-robust
(CR1, fixest conventions) standard errors.  Never-treated units have no event-time
dummies.  Under staggered adoption with heterogeneous effects the β_e are contaminated by
other periods' effects (Sun & Abraham 2021; Goodman-Bacon 2021); this estimator is
reported as the number a conventional analysis would produce, not as an effect estimate.
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
    panel_arrays,
    window_rel,
)
from pipeline.did.results import EventStudyResult

__all__ = ["twfe_event_study"]


def twfe_event_study(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    cluster: str | Sequence[str] | None = None,
    ref: int | Sequence[int] = -1,
    window: tuple[int, int] | None = None,
    bin_endpoints: bool = False,
    weights: str | None = None,
    k_fixef: str = "nonnested",
    alpha: float = 0.05,
) -> EventStudyResult:
    """Dynamic TWFE event study with unit and period fixed effects.

    Parameters
    ----------
    data
        Long panel, one row per unit and period.
    yname, tname, idname, gname
        Outcome, integer period, unit id, and first treated period (``0``/missing/inf =
        never treated) columns.
    cluster
        Cluster column(s) for CR1 standard errors (default: ``idname``).
    ref
        Omitted reference event time(s).
    window
        ``(lo, hi)`` event times to estimate; see ``bin_endpoints``.  ``None``: all.
    bin_endpoints
        If true, event times beyond the window are pooled into the end bins; otherwise
        the rows of treated units outside the window are dropped.
    weights
        Optional observation-weight column.
    k_fixef
        Small-sample correction convention (see :func:`pipeline.did.fe.feols`).

    Returns
    -------
    EventStudyResult
        Estimator ``"twfe"``; ``df`` = clusters − 1.
    """
    where = "twfe_event_study"
    a = panel_arrays(
        data, yname=yname, tname=tname, idname=idname, gname=gname, weights=weights, where=where
    )
    refs = as_tuple(ref)
    rel, keep = window_rel(a["rel"], window, bin_endpoints)
    keep &= a["w"] > 0
    d = data.loc[keep]
    rel = rel[keep]
    y, w, t, ids = a["y"][keep], a["w"][keep], a["t"][keep], a["ids"][keep]
    evs = sorted(int(e) for e in np.unique(rel[np.isfinite(rel)]) if int(e) not in refs)
    if not evs:
        raise ValueError(f"{where}: no event times to estimate")
    X = dummies(rel, np.isfinite(rel), evs)
    fe = FixedEffects([factorize(ids)[0], factorize(t)[0]], w)
    cl = cluster_codes(d, idname if cluster is None else cluster)
    r = feols(y, X, fe, weights=w, cluster=cl, names=evs, k_fixef=k_fixef)
    n_tr = _units_per_event(ids, rel, r.names)
    return EventStudyResult(
        estimator="twfe",
        event_time=np.asarray(r.names),
        estimate=r.coef,
        vcov=r.vcov,
        n_treated=n_tr,
        reference=refs,
        df=float(r.n_clusters - 1),
        alpha=alpha,
        info={
            "n_obs": r.n,
            "n_clusters": r.n_clusters,
            "ssc": r.ssc,
            "df_k": r.df_k,
            "dropped": r.dropped,
            "window": window,
            "bin_endpoints": bin_endpoints,
        },
    )


def _units_per_event(ids: np.ndarray, rel: np.ndarray, events: Sequence[int]) -> np.ndarray:
    fin = np.isfinite(rel)
    s = pd.DataFrame({"u": ids[fin], "e": rel[fin].astype(np.int64)})
    counts = s.drop_duplicates().groupby("e")["u"].size()
    return np.array([int(counts.get(int(e), 0)) for e in events], dtype=np.int64)
