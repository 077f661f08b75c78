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

__all__ = ["ByEventTimeFit", "baseline_covariates", "fit_by_event_time", "matched_ancova"]

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
    unit: str = "student_key",
    match: str = "match_id",
    event_time: str = "stack_event_time",
    treated: str = "role",
    match_weight: str | None = "weight",
    weights: str | None = "ipcw",
    censored: str | None = "censored",
    cluster: str | Sequence[str] | None = "student_key",
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
    year-to-date rate of :func:`pipeline.validation.history.recorded_history`; they do
    not change the reference period. The months the baseline covariates record (event times −1 … −L for
    ``L`` lags) are the reference: their effects are zero by construction and they are
    not estimated. Event times before them (−L−1, −L−2, …) are placebo outcomes — under
    the design, students with the same recorded months did not differ earlier either — and
    make the pre-trend test and the relative-magnitude sensitivity; event time 0 is the
    visit month.

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
         *base_cols, *cl_cols],
        where,
    )
    refs = tuple(range(-len(lags), 0))
    lo, hi = int(window[0]), int(window[1])
    if hi < 0 or lo > hi:
        raise ValueError(f"{where}: window {window} must include post-visit event times")
    d, w = _rows(data, yname=yname, fe=fe, lags=lags, base_cols=base_cols, unit=unit,
                 match=match, event_time=event_time, treated=treated,
                 wcols=(match_weight, weights), censored=censored, cl_cols=cl_cols,
                 window=(lo, hi), refs=refs, where=where)  # fmt: skip
    y = pd.to_numeric(d[yname], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: outcome {yname!r} has missing values in rows used")
    D = (d[treated].astype(str) == "treated").to_numpy()
    if not D.any() or D.all():
        raise ValueError(f"{where}: need both treated and comparison rows")
    e = d[event_time].to_numpy(dtype=np.int64)
    cov = baseline_covariates(d, lags, [*([prior] if prior else []), *extra])
    cells = factorize(d[event_time]) if fe is None else factorize(d["_fe"], d[event_time])
    cl = cluster_codes(d, cluster)
    r = fit_by_event_time(y, D, e, cov, cells, w, cl, keep_partialled=wild_bootstrap)
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
    }
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
    )
    if wild_bootstrap:
        add_wild_bootstrap(res, r.Xr, r.yr, cl, w=w, ssc=r.ssc, average_window=average_window,
                           B=B, seed=seed, weights=bootstrap_weights, alpha=alpha, where=where)
    return res


def _rows(data, *, yname, fe, lags, base_cols, unit, match, event_time, treated, wcols,
          censored, cl_cols, window, refs, where) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows the regression uses (baseline covariates and the visited student's ``fe``
    of each matched set merged on) and their weights (matching × censoring)."""
    et = pd.to_numeric(data[event_time], errors="coerce")
    base = data.loc[et == 0, [match, unit, *base_cols]]
    if base.duplicated([match, unit]).any():
        raise ValueError(f"{where}: more than one event-time-0 row per student and match")
    base = base.rename(columns={c: f"_b_{c}" for c in base_cols})
    if fe is not None:  # the visited student's value at the first visit, per matched set
        at0 = data.loc[(et == 0).to_numpy() & (data[treated].astype(str) == "treated").to_numpy()]
        cell = at0.drop_duplicates(match).set_index(match, drop=False)[fe]
        base["_fe"] = base[match].map(cell)
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
    if fe is not None:
        keep &= d["_fe"].notna().to_numpy()
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

    Returns
    -------
    ByEventTimeFit
    """
    codes, L = cells
    n = y.size
    Z = sweep(codes, L, w, np.column_stack([y, D.astype(float), cov]))
    evs = set(np.unique(e[D]).tolist())
    ks = np.unique(e)
    g, G = (np.arange(n), n) if cl is None else _clusters(cl)
    events, coef, infl = [], [], []
    K = 0
    Xr = np.zeros((n, len(evs))) if keep_partialled else None
    yr = np.empty(n) if keep_partialled else None
    for k in ks:
        idx = np.flatnonzero(e == k)
        cols = [1] if int(k) in evs else []
        cols += [2 + j for j in range(cov.shape[1]) if _varies(cov[idx, j], idx.size == n)]
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
            infl.append((idx, wk * u * (Xk @ bread[:, 0])))
    Psi = np.zeros((G, len(events)))
    for j, (idx, a) in enumerate(infl):
        Psi[:, j] = np.bincount(g[idx], weights=a, minlength=G)
    nested = cl is not None and np.unique(codes * G + g).size == L
    df_k = K + (1 if nested else L)
    factor = (n - 1) / (n - df_k) * G / (G - 1) if cl is not None else n / (n - df_k)
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
    )


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
