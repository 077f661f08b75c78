"""Matched ANCOVA — the primary design: attendance levels adjusted for the months before.

Where referral follows recorded attendance, the comparison that identifies the effect is
unconfoundedness given those months, not parallel trends: a visited student and a
comparison student with the same recorded months at the first visit are expected to
attend alike afterwards, but their *changes* from the month before differ whenever the
match on those months is imperfect (the dip recovers by a share of its depth). This
estimator regresses the outcome at each event time ``k`` on

* the treated indicator at ``k`` (the effect ``β_k``),
* per event time, the recorded months at the first visit (``rate_lag1``–``rate_lag3`` as
  of event time 0, i.e. event times −1 to −3, their squares) and the prior-year rate
  (with a missing indicator),
* fixed effects for ``fe`` × event time, where ``fe`` is read from the visited student's
  row at the first visit and holds for the whole matched set (``district_code`` by
  default: the matching district, also when comparison students come from other
  districts or move; the censoring weights are then normalised over a district's
  comparison students, not within a matched set of three or four),

with weights = matching weight × censoring weight and errors clustered by student.
The months the covariates record are the reference period (their "effects" are zero by
construction); earlier months (event times −4, −5, …) are placebo outcomes that make the
pre-trend test: under the design, students with the same recorded months did not differ
before them either. The simulation study (:mod:`pipeline.validate`,
``benchmarks/diagnose_design.py``) is the evidence for it: it removes the bias that
propensity-score matching leaves on the recorded months, and the censoring weights then
undo the drop of later-visited comparison students.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.did.fe import _independent_columns, cluster_codes, factorize, require_columns
from pipeline.did.results import EventStudyResult
from pipeline.did.wild import add_wild_bootstrap
from pipeline.did.within import sweep

__all__ = [
    "BellMcCaffreyDF",
    "ByEventTimeFit",
    "baseline_covariates",
    "fit_by_event_time",
    "matched_ancova",
]

LAGS = ("rate_lag1", "rate_lag2", "rate_lag3")


def matched_ancova(
    data: pd.DataFrame,
    *,
    yname: str,
    window: tuple[int, int] = (-6, 12),
    fe: str | None = "district_code",
    lags: Sequence[str] = LAGS,
    prior: str | None = "prior_year_rate",
    extra: Sequence[str] = (),
    extra_refs: Sequence[int] = (),
    unit: str = "student_key",
    match: str = "match_id",
    event_time: str = "stack_event_time",
    treated: str = "role",
    match_weight: str | None = "weight",
    weights: str | None = "ipcw",
    censored: str | None = "censored",
    cluster: str | Sequence[str] | None = "student_key",
    effect_strata: str | None = None,
    vcov_type: str = "CR1",
    average_window: tuple[int, int] | None = (1, 6),
    wild_bootstrap: bool = False,
    B: int = 999,
    seed: int | None = None,
    bootstrap_weights: str = "webb",
    alpha: float = 0.05,
) -> EventStudyResult:
    """Matched ANCOVA event study over the event times in ``window`` (inclusive).

    ``data`` is the stacked matched panel (``matched.parquet`` with outcomes and the
    ``ipcw`` column). ``extra`` names further baseline covariates read at event time 0
    (like ``prior``: linear, with a missing indicator, by event time), e.g. the
    year-to-date rate of :func:`pipeline.history.recorded_history`. The months the
    baseline covariates record (event times −1 … −L for ``L`` lags, and ``extra_refs``:
    event times an ``extra`` covariate is the outcome of, such as −4 for the rate four
    months before) are the reference: their effects are zero by construction and they are
    not estimated. Other event times before the visit are placebo outcomes — under
    the design, students with the same recorded months did not differ earlier either — and
    make the pre-trend test and the relative-magnitude sensitivity; event time 0 is the
    visit month.

    With ``effect_strata`` (e.g. ``"grade_band"``, read like ``fe`` from the visited
    student's row at the first visit, so constant within a matched set) the effect is
    estimated within each stratum and averaged over the visited students' mix of strata at
    each event time (Lin 2013's interacted regression: the treated indicator interacted
    with the strata, centred at the visited students' weighted shares; time effects per
    ``fe`` × stratum × event time).  The standard error is then conditional on that mix:
    effects that differ between strata — as they do between grade bands, and so between
    schools, which serve one band each — no longer count as noise between clusters, which
    made school-clustered errors conservative (Abadie, Athey, Imbens & Wooldridge 2023).

    ``vcov_type="CR2"`` replaces the CR1 cluster-robust covariance by Bell and McCaffrey's
    bias-reduced one (:func:`fit_by_event_time`), and the t quantiles of the event times'
    and the window average's intervals use their Satterthwaite degrees of freedom
    (:class:`BellMcCaffreyDF`; up to :data:`BM_MAX_CLUSTERS` clusters) instead of
    clusters − 1; the pre-trend test keeps clusters − 1.

    With ``wild_bootstrap`` a restricted wild cluster bootstrap (Webb weights; the
    covariates and fixed effects partialled out, :func:`pipeline.did.wild.partial_out`)
    gives p-values and test-inversion intervals for every event time and the average over
    ``average_window``, as :func:`pipeline.did.stacked.stacked_event_study` does.

    Returns an :class:`EventStudyResult` named ``"matched_ancova"`` with ``df`` =
    clusters − 1.
    """
    where = "matched_ancova"
    base_cols = [*lags, *([prior] if prior else []), *extra]
    cl_cols = [cluster] if isinstance(cluster, str) else list(cluster or [])
    require_columns(
        data,
        [yname, unit, match, event_time, treated, match_weight, weights, censored, fe,
         effect_strata, *base_cols, *cl_cols],
        where,
    )
    refs = tuple(sorted(set(range(-len(lags), 0)) | {int(k) for k in extra_refs}))
    if any(k >= 0 for k in refs):
        raise ValueError(f"{where}: extra_refs must be event times before the visit")
    lo, hi = int(window[0]), int(window[1])
    if hi < 0 or lo > hi:
        raise ValueError(f"{where}: window {window} must include post-visit event times")
    d, w = _rows(data, yname=yname, fe=fe, lags=lags, base_cols=base_cols, unit=unit,
                 match=match, event_time=event_time, treated=treated,
                 wcols=(match_weight, weights), censored=censored, cl_cols=cl_cols,
                 window=(lo, hi), refs=refs, where=where, strata=effect_strata)  # fmt: skip
    y = pd.to_numeric(d[yname], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: outcome {yname!r} has missing values in rows used")
    D = (d[treated].astype(str) == "treated").to_numpy()
    if not D.any() or D.all():
        raise ValueError(f"{where}: need both treated and comparison rows")
    e = d[event_time].to_numpy(dtype=np.int64)
    cov = baseline_covariates(d, lags, [*([prior] if prior else []), *extra])
    keys = ([] if fe is None else [d["_fe"]]) + ([] if effect_strata is None else [d["_st"]])
    cells = factorize(*keys, d[event_time])
    cl = cluster_codes(d, cluster)
    strata = None
    if effect_strata is not None:
        codes = pd.factorize(d["_st"].astype(str), sort=True)[0]
        strata = (codes[:, None] == np.arange(1, codes.max() + 1)[None, :]).astype(float)
    r = fit_by_event_time(
        y, D, e, cov, cells, w, cl, keep_partialled=wild_bootstrap, strata=strata,
        vcov_type=vcov_type,
    )  # fmt: skip
    events = r.events
    n_tr = pd.Series(d[unit].to_numpy()[D]).groupby(e[D]).nunique()
    info: dict = {
        "n_obs": r.n,
        "n_clusters": r.n_clusters,
        "fixed_effects": f"{fe} (visited student's, at the first visit) x event time"
        if fe
        else "event time",
        "covariates": f"{', '.join(base_cols)} at event time 0 (lags squared), by event time",
        "reference": "event times recorded by the covariates",
        "vcov_type": vcov_type,
    }
    if effect_strata is not None:
        info["effect_strata"] = (
            f"effects by {effect_strata}, averaged over the visited students' mix at each "
            "event time"
        )
    res = EventStudyResult(
        estimator="matched_ancova",
        event_time=events,
        estimate=r.coef,
        vcov=r.vcov,
        n_treated=np.array([int(n_tr.get(v, 0)) for v in events], dtype=np.int64),
        reference=refs,
        df=float(r.n_clusters - 1) if r.n_clusters else None,
        alpha=alpha,
        info=info,
        df_contrast=r.bm_df,
    )
    if wild_bootstrap:
        add_wild_bootstrap(res, r.Xr, r.yr, cl, w=w, ssc=r.ssc, average_window=average_window,
                           B=B, seed=seed, weights=bootstrap_weights, alpha=alpha, where=where)
    return res


def _rows(data, *, yname, fe, lags, base_cols, unit, match, event_time, treated, wcols,
          censored, cl_cols, window, refs, where, strata=None) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows the regression uses (baseline covariates and the visited student's ``fe``
    and ``strata`` of each matched set merged on) and their weights (matching × censoring)."""
    et = pd.to_numeric(data[event_time], errors="coerce")
    base = data.loc[et == 0, [match, unit, *base_cols]]
    if base.duplicated([match, unit]).any():
        raise ValueError(f"{where}: more than one event-time-0 row per student and match")
    base = base.rename(columns={c: f"_b_{c}" for c in base_cols})
    at0 = data.loc[(et == 0).to_numpy() & (data[treated].astype(str) == "treated").to_numpy()]
    at0 = at0.drop_duplicates(match).set_index(match, drop=False)
    # the visited student's values at the first visit, per matched set
    for col, name in ((fe, "_fe"), (strata, "_st")):
        if col is not None:
            base[name] = base[match].map(at0[col])
    rows = et.between(*window) & ~et.isin(refs)
    need = [yname, unit, match, event_time, treated, *wcols, censored, *cl_cols]
    need = list(dict.fromkeys(c for c in need if c is not None))
    d = data.loc[rows, need].merge(base, on=[match, unit], how="inner")
    if censored is not None:
        d = d[~d[censored].astype(bool).to_numpy()]
    w = np.ones(len(d))
    for wc in wcols:
        if wc is not None:
            w = w * pd.to_numeric(d[wc], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"{where}: weights must be finite and >= 0")
    keep = w > 0
    lagv = d[[f"_b_{c}" for c in lags]].to_numpy(dtype=float)
    keep &= np.isfinite(lagv).all(axis=1)
    for col, name in ((fe, "_fe"), (strata, "_st")):
        if col is not None:
            keep &= d[name].notna().to_numpy()
    return d[keep], w[keep]


def baseline_covariates(d: pd.DataFrame, lags: Sequence[str], linear: Sequence[str]) -> np.ndarray:
    """The ANCOVA's baseline covariates (``n × p``) from the merged ``_b_*`` columns.

    The lags, their squares / 100, then each of ``linear`` (prior-year rate, extras) with
    missing values set to 0 and a missing indicator.
    """
    cov = [d[f"_b_{c}"].to_numpy(dtype=float) for c in lags]
    cov += [x * x / 100.0 for x in cov[: len(lags)]]
    for c in linear:
        p = d[f"_b_{c}"].to_numpy(dtype=float)
        cov += [np.where(np.isnan(p), 0.0, p), np.isnan(p).astype(float)]
    return np.column_stack(cov) if cov else np.empty((len(d), 0))


#: Bell-McCaffrey degrees of freedom are computed up to this many clusters (a ``G × G``
#: matrix per event time); with more, the t quantile keeps clusters − 1 (it is then large).
BM_MAX_CLUSTERS = 3000


class BellMcCaffreyDF:
    """Bell and McCaffrey's (2002) Satterthwaite degrees of freedom of a CR2 contrast.

    Under the working model of independent, homoskedastic errors the CR2 variance of a
    contrast ``c'β`` of the treated coefficients is a quadratic form ``ε' Q ε``; its
    degrees of freedom are ``(tr Q)² / tr Q²`` (Imbens and Kolesár 2016, eq. 8; Pustejovsky
    and Tipton 2018).  The event times' regressions share no rows, so the ``G × G`` Gram
    matrix of ``Q`` is ``Σ_k c_k² T_k`` with ``T_k`` from :func:`_cr2_residuals`.

    Parameters
    ----------
    events
        The event times of the treated coefficients (the order of ``grams``).
    grams
        ``T_k`` stacked (``len(events) × G × G``).
    """

    def __init__(self, events: np.ndarray, grams: np.ndarray):
        self.events = np.asarray(events, dtype=np.int64)
        self.grams = np.asarray(grams, dtype=float)

    def __call__(self, weights: np.ndarray) -> float:
        """The degrees of freedom of ``Σ_k weights[k] β_k`` (``weights`` over ``events``)."""
        c2 = np.asarray(weights, dtype=float) ** 2
        Q = np.tensordot(c2, self.grams, axes=1)
        den = float(np.sum(Q * Q))
        return float(np.trace(Q) ** 2 / den) if den > 0 else float("nan")


@dataclass
class ByEventTimeFit:
    """The treated coefficients of the ANCOVA fitted one event time at a time.

    Attributes
    ----------
    events, coef, vcov
        Event times whose treated coefficient is estimated, the coefficients and their
        cluster-robust covariance (across event times too).
    n, n_clusters, df_k, ssc
        Rows, clusters (``None`` without clusters), the ``K`` of the small-sample
        correction (regressors of every event time plus the fixed-effect cells) and the
        correction factor.
    Xr, yr
        With ``keep_partialled``: the treated columns and the outcome with the fixed
        effects and the covariates partialled out (``n × len(events)`` and ``n``), for
        the wild cluster bootstrap (:func:`pipeline.did.wild.add_wild_bootstrap`).
    """

    events: np.ndarray
    coef: np.ndarray
    vcov: np.ndarray
    n: int
    n_clusters: int | None
    df_k: int
    ssc: float
    Xr: np.ndarray | None = None
    yr: np.ndarray | None = None
    bm_df: BellMcCaffreyDF | None = None


def fit_by_event_time(
    y: np.ndarray,
    D: np.ndarray,
    e: np.ndarray,
    cov: np.ndarray,
    cells: tuple[np.ndarray, int],
    w: np.ndarray,
    cl: np.ndarray | None,
    *,
    keep_partialled: bool = False,
    strata: np.ndarray | None = None,
    vcov_type: str = "CR1",
) -> ByEventTimeFit:
    """The fully interacted ANCOVA as one weighted regression per event time.

    The pooled model regresses ``y`` on ``D × 1[e = k]`` (for event times with treated
    rows), ``cov × 1[e = k]`` and fixed-effect cells nested in event time. Its normal
    equations are block diagonal by event time, so each block is solved on its own rows
    with the cells swept out (Frisch–Waugh–Lovell, :func:`pipeline.did.within.sweep`).
    Columns are kept, dropped for collinearity and counted exactly as
    :func:`pipeline.did.fe.feols` does on the pooled design; the cluster-robust (CR1)
    covariance of the treated coefficients across event times comes from each cluster's
    influence on them (``bread_k · score_gk``), with fixest's small-sample factor
    ``(n−1)/(n−K) · G/(G−1)`` (``K`` = kept regressors + cells, less the cells when they
    are nested in the clusters, as ``feols(k_fixef="nonnested")``); without clusters the
    HC1 factor ``n/(n−K)``.

    Parameters
    ----------
    y, D, e : ndarray
        Outcome, treated indicator, event time (``n`` each).
    cov : ndarray
        Baseline covariates (``n × p``), interacted with event time.
    cells : (ndarray, int)
        Fixed-effect cell codes (nested in event time) and their number.
    w : ndarray
        Positive weights.
    cl : ndarray or None
        Cluster codes (``None``: heteroskedasticity-robust errors).
    keep_partialled : bool
        Also return the partialled-out treated columns and outcome.
    strata : ndarray or None
        Indicators of effect strata (``n × (S − 1)``, the first stratum left out; the
        cells must nest the strata).  The treated indicator is then also interacted with
        them, centred at the treated rows' weighted means at each event time, so its
        coefficient is the average of the strata's effects over the treated mix, and its
        standard error holds that mix fixed (Lin 2013).
    vcov_type : {"CR1", "CR2"}
        ``"CR1"``: the cluster-robust covariance with fixest's small-sample factor.
        ``"CR2"``: Bell and McCaffrey's (2002) bias-reduced covariance: each cluster's
        weighted residuals are multiplied by ``(I − H_gg)^{-1/2}`` (``H_gg``: the
        cluster's block of the hat matrix, fixed-effect cells included; block diagonal
        by event time, so computed event time by event time from its low-rank factors),
        no further factor.  With few clusters that each hold a large share of their
        fixed-effect cells (a few schools per district), CR1 is biased downwards and CR2
        nearly unbiased (Imbens and Kolesár 2016; Pustejovsky and Tipton 2018).  Without
        clusters ``"CR2"`` is HC2.

    Returns
    -------
    ByEventTimeFit
    """
    if vcov_type not in ("CR1", "CR2"):
        raise ValueError(f"fit_by_event_time: vcov_type must be 'CR1' or 'CR2', not {vcov_type!r}")
    codes, L = cells
    n = y.size
    inter = _centred_interactions(D, e, w, strata)
    q = inter.shape[1]
    Z = sweep(codes, L, w, np.column_stack([y, D.astype(float), inter, cov]))
    evs = set(np.unique(e[D]).tolist())
    ks = np.unique(e)
    g, G = (np.arange(n), n) if cl is None else _clusters(cl)
    events, coef, infl, grams = [], [], [], []
    K = 0
    Xr = np.zeros((n, len(evs))) if keep_partialled else None
    yr = np.empty(n) if keep_partialled else None
    for k in ks:
        idx = np.flatnonzero(e == k)
        cols = [1] if int(k) in evs else []
        if cols:
            cols += [2 + j for j in range(q) if np.ptp(inter[idx, j]) > 0]
        cols += [2 + q + j for j in range(cov.shape[1]) if _varies(cov[idx, j], idx.size == n)]
        Zk, wk = Z[idx], w[idx]
        Xk = Zk[:, cols]
        M = Xk.T @ (wk[:, None] * Xk)
        keep = _independent_columns(M)
        K += keep.size
        Xk, M = Xk[:, keep], M[np.ix_(keep, keep)]
        bread = np.linalg.inv(M)
        bread = (bread + bread.T) / 2
        beta = bread @ (Xk.T @ (wk * Zk[:, 0]))
        has_d = bool(cols) and cols[0] == 1 and keep.size > 0 and int(keep[0]) == 0
        if keep_partialled:
            _partial(Xr, yr, idx, Zk[:, 0], Xk, wk, has_d, len(events))
        if has_d:
            u = Zk[:, 0] - Xk @ beta
            events.append(int(k))
            coef.append(beta[0])
            if vcov_type == "CR2":
                sw = np.sqrt(wk)
                adj, T = _cr2_residuals(sw * u, sw, Xk, bread, codes[idx], g[idx],
                                        G if 0 < G <= BM_MAX_CLUSTERS else None)  # fmt: skip
                infl.append((idx, sw * adj * (Xk @ bread[:, 0])))
                grams.append(T)
            else:
                infl.append((idx, wk * u * (Xk @ bread[:, 0])))
    Psi = np.zeros((G, len(events)))
    for j, (idx, a) in enumerate(infl):
        Psi[:, j] = np.bincount(g[idx], weights=a, minlength=G)
    nested = cl is not None and np.unique(codes * G + g).size == L
    df_k = K + (1 if nested else L)
    factor = (n - 1) / (n - df_k) * G / (G - 1) if cl is not None else n / (n - df_k)
    bm = None
    if vcov_type == "CR2":
        factor = 1.0
        if cl is not None and grams and all(t is not None for t in grams):
            bm = BellMcCaffreyDF(np.asarray(events, dtype=np.int64), np.stack(grams))
    V = factor * (Psi.T @ Psi)
    return ByEventTimeFit(
        events=np.asarray(events, dtype=np.int64),
        coef=np.asarray(coef, dtype=float),
        vcov=(V + V.T) / 2,
        n=n,
        n_clusters=G if cl is not None else None,
        df_k=int(df_k),
        ssc=float(factor),
        Xr=None if Xr is None else Xr[:, : len(events)],
        yr=yr,
        bm_df=bm,
    )


def _cr2_residuals(
    e: np.ndarray,
    sw: np.ndarray,
    X: np.ndarray,
    bread: np.ndarray,
    cells: np.ndarray,
    clusters: np.ndarray,
    n_clusters: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(I − H_gg)^{-1/2} e_g`` for every cluster ``g`` of one event time's rows, and
    (with ``n_clusters``) this event time's part of Bell and McCaffrey's degrees of
    freedom: the ``G × G`` matrix ``T[g, h] = s_g' (I − H) s_h`` with
    ``s_g = (I − H_gg)^{-1/2} √w_g X_g bread[:, 0]`` (the treated coefficient's; see
    :class:`BellMcCaffreyDF`).

    ``e``: the weighted residuals ``√w·u``; ``X``: the regressors with the cells swept
    out; ``bread``: ``(X'WX)^{-1}``.  The hat matrix of the regression on the cells and
    ``X`` is ``P + (√w X) bread (√w X)'`` with ``P`` the weighted projection on the cells
    (``√w_i √w_j / Σ_c w`` within a cell), so a cluster's block is ``U U'`` with ``U`` its
    rows of ``[√w 1_c / √(Σ_c w) per cell, √w X bread^{1/2}]``, and
    ``(I − U U')^{-1/2} = I + U V diag(((1 − s)^{-1/2} − 1) / s) V' U'`` from the
    eigen-decomposition ``U'U = V diag(s) V'`` (``s``: the block's leverages, below 1;
    clipped at ``1 − 1e-8``).
    """
    vals, vecs = np.linalg.eigh((bread + bread.T) / 2)
    half = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    XW = sw[:, None] * X
    UX = XW @ half
    cell_codes_, cell_inv = np.unique(cells, return_inverse=True)
    cell_sum = np.bincount(cell_inv, weights=sw**2)
    fe_col = sw / np.sqrt(cell_sum[cell_inv])
    both = np.column_stack([e, XW @ bread[:, 0]])  # residuals and the coefficient's t
    out = np.empty_like(both)
    order = np.argsort(clusters, kind="stable")
    bounds = np.flatnonzero(np.diff(clusters[order])) + 1
    for ix in np.split(order, bounds):
        c_codes, c_pos = np.unique(cell_inv[ix], return_inverse=True)
        E = np.zeros((ix.size, c_codes.size))
        E[np.arange(ix.size), c_pos] = fe_col[ix]
        U = np.column_stack([E, UX[ix]])
        s, V = np.linalg.eigh(U.T @ U)
        s = np.clip(s, 0.0, 1.0 - 1e-8)
        f = np.where(s > 1e-12, (1.0 / np.sqrt(1.0 - s) - 1.0) / np.where(s > 1e-12, s, 1.0), 0.5)
        out[ix] = both[ix] + U @ (V @ (f[:, None] * (V.T @ (U.T @ both[ix]))))
    if n_clusters is None:
        return out[:, 0], None
    # T = diag(s_g's_g) − V bread V' − F diag(1 / Σ_c w) F' (V: X's weighted sums of s per
    # cluster, F: the cells' weighted sums of s per cluster)
    s_vec = out[:, 1]
    ss = np.bincount(clusters, weights=s_vec**2, minlength=n_clusters)
    Vg = np.zeros((n_clusters, X.shape[1]))
    np.add.at(Vg, clusters, XW * s_vec[:, None])
    Fg = np.zeros((n_clusters, cell_codes_.size))
    np.add.at(Fg, (clusters, cell_inv), sw * s_vec)
    T = np.diag(ss) - Vg @ bread @ Vg.T - (Fg / cell_sum) @ Fg.T
    return out[:, 0], (T + T.T) / 2


def _centred_interactions(
    D: np.ndarray, e: np.ndarray, w: np.ndarray, strata: np.ndarray | None
) -> np.ndarray:
    """``D × (strata − their weighted mean over the treated rows of the same event time)``."""
    if strata is None or strata.shape[1] == 0:
        return np.empty((D.size, 0))
    out = np.zeros_like(strata, dtype=float)
    for k in np.unique(e[D]):
        t = np.flatnonzero(D & (e == k))
        mean = np.average(strata[t], axis=0, weights=w[t])
        out[t] = strata[t] - mean
    return out


def _clusters(cl: np.ndarray) -> tuple[np.ndarray, int]:
    g = pd.factorize(np.asarray(cl, dtype=np.int64))[0]
    return g, int(g.max()) + 1


def _varies(x: np.ndarray, all_rows: bool) -> bool:
    """Whether the pooled column ``x × 1[e = k]`` has a positive standard deviation."""
    return bool(np.std(x) > 0) if all_rows else bool(np.any(x != 0))


def _partial(Xr, yr, idx, yt, Xk, wk, has_d, j) -> None:
    """Rows ``idx`` of the treated column ``j`` and the outcome with the event time's
    covariates partialled out (:func:`pipeline.did.wild.partial_out`, one block)."""
    other = Xk[:, 1:] if has_d else Xk
    left = np.column_stack([Xk[:, :1], yt]) if has_d else yt[:, None]
    if other.shape[1]:
        ZW = other * wk[:, None]
        c = np.linalg.lstsq(ZW.T @ other, ZW.T @ left, rcond=None)[0]
        left = left - other @ c
    if has_d:
        Xr[idx, j] = left[:, 0]
    yr[idx] = left[:, -1]
