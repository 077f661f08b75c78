"""Imputation event study (Borusyak, Jaravel & Spiess 2024; Gardner's two-stage DiD).

1. Fit ``y_it = α_i + λ_t + ε_it`` (weighted) on the untreated observations only: the
   never-treated and the not-yet-treated periods of eventually-treated units.
2. Impute ``Ŷ_it(0) = α̂_i + λ̂_t`` for every observation; ``ỹ_it = y_it − Ŷ_it(0)``.
3. The effect at horizon ``e`` is the (weighted) mean of ``ỹ`` over treated observations
   with ``t − G_i = e`` — BJS's imputation estimator with equal weights per observation,
   numerically the second stage ``ỹ ~ 0 + Σ_e 1[t − G_i = e]`` of Gardner's did2s.

Pre-period coefficients (``pretrends``) follow did2s: lead dummies for the untreated
observations of eventually-treated units in the second stage (the mean first-stage
residual at each lead; event time −1 is the omitted reference).  This is *not* BJS's own
pre-trend test (which re-fits step 1 with lead dummies).

Standard errors are Gardner's two-stage GMM sandwich, exactly as R ``did2s`` (and
pyfixest's ``did2s``) compute them, without small-sample correction::

    V = (X₂'WX₂)⁻¹ Σ_g ψ_g ψ_gᵀ (X₂'WX₂)⁻¹,
    ψ_g = Σ_{i∈g} w_i x₂ᵢ ũ₂ᵢ − Γᵀ Σ_{i∈g, untreated} w_i x₁ᵢ ũ₁ᵢ,
    Γ = (X₁₀'WX₁₀)⁻¹ X₁'WX₂,

with ``X₁`` the first-stage fixed-effect dummies (``X₁₀``: zeroed on treated rows) and
``ũ₁``, ``ũ₂`` the first- and second-stage residuals.  ``Γ`` is computed in coefficient
space with :class:`pipeline.did.fe.FixedEffects` — no dummy matrix is formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.did.fe import (
    FixedEffects,
    cluster_codes,
    dummies,
    factorize,
    panel_arrays,
    require_columns,
)
from pipeline.did.results import EventStudyResult

__all__ = ["imputation"]


def _as_events(spec, available: np.ndarray, sign: int) -> list[int]:
    avail = sorted(int(e) for e in available)
    if spec is None or spec is True:
        return avail
    if spec is False:
        return []
    if np.isscalar(spec):
        k = int(spec)
        want = range(0, k + 1) if sign > 0 else range(-k, -1)
        return [e for e in want if e in set(avail)]
    return sorted(int(e) for e in spec if int(e) in set(avail))


def imputation(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    cluster: str | Sequence[str] | None = None,
    horizons: int | Sequence[int] | None = None,
    pretrends: bool | int | Sequence[int] | None = True,
    fe: Sequence[str] | None = None,
    weights: str | None = None,
    static: bool = False,
    alpha: float = 0.05,
) -> EventStudyResult:
    """Imputation (BJS / did2s) event study with did2s's GMM standard errors.

    Parameters
    ----------
    data
        Long panel, one row per unit and period.
    yname, tname, idname, gname
        Outcome, integer period, unit and first-treated-period (``0``/missing/inf =
        never treated) columns.
    cluster
        Cluster column(s) (default ``idname``).
    horizons
        Post-treatment event times to estimate: ``None`` all, an int ``H`` for
        ``0…H``, or a sequence.  Treated observations at other horizons are not used.
    pretrends
        Lead coefficients: ``True`` all available leads except −1, an int ``K`` for
        ``−K…−2``, a sequence, or ``False``/``None`` for none.
    fe
        First-stage fixed-effect columns (default ``(idname, tname)``; R did2s's README
        example uses ``("state", "year")``).
    weights
        Optional observation-weight column.
    static
        If true, estimate a single pooled effect over the chosen horizons (reported at
        event time 0; the did2s ``~ i(treat)`` specification) and no leads.

    Returns
    -------
    EventStudyResult
        Estimator ``"imputation"``; normal critical values (as did2s).
    """
    where = "imputation"
    a = panel_arrays(
        data, yname=yname, tname=tname, idname=idname, gname=gname, weights=weights, where=where
    )
    fe_cols = [idname, tname] if fe is None else list(fe)
    require_columns(data, fe_cols, where)
    y, w, rel, treated = a["y"], a["w"], a["rel"], a["treated"]
    keep = w > 0
    codes_full = [factorize(data[c])[0] for c in fe_cols]
    untreated = keep & ~treated
    if not untreated.any():
        raise ValueError(f"{where}: no untreated observations for the first stage")
    # levels seen among untreated rows; treated rows with unseen levels cannot be imputed
    remap, ok = [], keep.copy()
    for c in codes_full:
        seen = np.zeros(int(c.max()) + 1, dtype=bool)
        seen[c[untreated]] = True
        m = np.cumsum(seen) - 1
        remap.append(np.where(seen[c], m[c], -1))
        ok &= seen[c]
    n_unimputable = int((keep & ~ok).sum())
    keep = ok
    d = data.loc[keep]
    y, w, rel, treated = y[keep], w[keep], rel[keep], treated[keep]
    codes = [c[keep] for c in remap]
    ids = a["ids"][keep]
    u0 = ~treated
    fe0 = FixedEffects([c[u0] for c in codes], w[u0])
    gam = fe0.solve(fe0.rhs(y[u0]))
    yhat = sum(gm[c, 0] for gm, c in zip(gam, codes, strict=True))
    ytil = y - yhat  # first-stage residuals on untreated rows, effects on treated rows
    # second-stage design
    post = sorted(set(np.unique(rel[treated]).astype(int).tolist()))
    pre_av = sorted(set(np.unique(rel[u0 & np.isfinite(rel)]).astype(int).tolist()) - {-1})
    hz = _as_events(horizons, np.asarray(post), +1)
    if not hz:
        raise ValueError(f"{where}: no treated observations at the requested horizons")
    if static:
        leads: list[int] = []
        X2 = sp.csr_matrix((treated & np.isin(rel, hz)).astype(float)[:, None])
        events = [0]
    else:
        leads = _as_events(pretrends, np.asarray(pre_av), -1)
        events = leads + hz
        X2 = sp.hstack([dummies(rel, u0, leads), dummies(rel, treated, hz)], format="csr")
    k = X2.shape[1]
    XtWX = np.asarray((X2.T @ sp.diags(w) @ X2).todense())
    XtWy = X2.T @ (w * ytil)
    if np.any(np.diag(XtWX) <= 0):
        raise ValueError(f"{where}: an event time has no observations")
    bread = np.linalg.inv(XtWX)
    beta = bread @ XtWy
    u2 = ytil - X2 @ beta
    # Γ = (X10'WX10)^-1 X1'WX2, then correction term per untreated row: (X1 Γ)_i
    B = []
    WX2 = sp.diags(w) @ X2
    for c, L in zip(codes, fe0.levels, strict=True):
        oh = sp.csr_matrix((np.ones(c.size), (c, np.arange(c.size))), shape=(L, c.size))
        B.append(np.asarray((oh @ WX2).todense()))
    Gam = fe0.solve(B)
    cl = cluster_codes(d, idname if cluster is None else cluster)
    cl = pd.factorize(cl)[0]
    G = int(cl.max()) + 1
    n = y.size
    S2 = sp.csr_matrix((w * u2, (cl, np.arange(n))), shape=(G, n)) @ X2
    S2 = np.asarray(S2.todense()) if sp.issparse(S2) else np.asarray(S2)
    # Σ_{i∈g, untreated} w_i ũ1_i (X1 Γ)_i = Σ_f [Σ_{i∈g, level l} w_i ũ1_i] Γ_f[l]
    cl0 = cl[u0]
    e1 = w[u0] * ytil[u0]
    S1 = np.zeros((G, k))
    for c0, L, gm in zip(fe0.codes, fe0.levels, Gam, strict=True):
        CL = sp.csr_matrix((e1, (cl0, c0)), shape=(G, L))
        CL.sum_duplicates()
        S1 += CL @ gm
    psi = S2 - S1
    V = bread @ (psi.T @ psi) @ bread
    V = (V + V.T) / 2
    n_tr = np.array(
        [np.unique(ids[(rel == e) & (treated if e >= 0 else u0)]).size for e in events],
        dtype=np.int64,
    )
    if static:
        n_tr = np.array([np.unique(ids[treated & np.isin(rel, hz)]).size], dtype=np.int64)
    return EventStudyResult(
        estimator="imputation",
        event_time=np.asarray(events),
        estimate=beta,
        vcov=V,
        n_treated=n_tr,
        reference=() if static else (-1,),
        df=None,
        alpha=alpha,
        info={
            "n_obs": int(n),
            "n_untreated_obs": int(u0.sum()),
            "n_clusters": G,
            "first_stage_fe": fe_cols,
            "dropped_unimputable_obs": n_unimputable,
            "static": static,
        },
    )
