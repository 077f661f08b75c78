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

import numpy as np
import pandas as pd

from pipeline.did.fe import FixedEffects, cluster_codes, factorize, feols, require_columns
from pipeline.did.results import EventStudyResult
from pipeline.did.wild import add_wild_bootstrap, partial_out

__all__ = ["matched_ancova"]

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
    et = pd.to_numeric(data[event_time], errors="coerce")
    base = data.loc[et == 0, [match, unit, *base_cols]]
    if base.duplicated([match, unit]).any():
        raise ValueError(f"{where}: more than one event-time-0 row per student and match")
    base = base.rename(columns={c: f"_b_{c}" for c in base_cols})
    if fe is not None:  # the visited student's value at the first visit, per matched set
        at0 = data.loc[(et == 0).to_numpy() & (data[treated].astype(str) == "treated").to_numpy()]
        cell = at0.drop_duplicates(match).set_index(match, drop=False)[fe]
        base["_fe"] = base[match].map(cell)
    rows = et.between(lo, hi) & ~et.isin(refs)
    d = data.loc[rows].merge(base, on=[match, unit], how="inner")
    if censored is not None:
        d = d[~d[censored].astype(bool).to_numpy()]
    w = np.ones(len(d))
    for wc in (match_weight, weights):
        if wc is not None:
            w = w * pd.to_numeric(d[wc], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"{where}: weights must be finite and >= 0")
    keep = w > 0
    lagv = d[[f"_b_{c}" for c in lags]].to_numpy(dtype=float)
    keep &= np.isfinite(lagv).all(axis=1)
    if fe is not None:
        keep &= d["_fe"].notna().to_numpy()
    d, w = d[keep], w[keep]
    y = pd.to_numeric(d[yname], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: outcome {yname!r} has missing values in rows used")
    D = (d[treated].astype(str) == "treated").to_numpy()
    if not D.any() or D.all():
        raise ValueError(f"{where}: need both treated and comparison rows")
    e = d[event_time].to_numpy(dtype=np.int64)
    evs = sorted(int(k) for k in np.unique(e[D]))
    cols = [(D & (e == k)).astype(float) for k in evs]
    cov = [d[f"_b_{c}"].to_numpy(dtype=float) for c in lags]
    cov += [x * x / 100.0 for x in cov[: len(lags)]]
    for c in [*([prior] if prior else []), *extra]:
        p = d[f"_b_{c}"].to_numpy(dtype=float)
        cov += [np.where(np.isnan(p), 0.0, p), np.isnan(p).astype(float)]
    for k in sorted(np.unique(e)):
        ek = (e == k).astype(float)
        cols += [ek * x for x in cov]
    X = np.column_stack(cols)
    X = X[:, np.r_[np.ones(len(evs), bool), X[:, len(evs):].std(axis=0) > 0]]
    codes = factorize(d[event_time]) if fe is None else factorize(d["_fe"], d[event_time])
    cl = cluster_codes(d, cluster)
    r = feols(y, X, FixedEffects([codes[0]], w), weights=w, cluster=cl,
              names=[*evs, *[f"x{i}" for i in range(X.shape[1] - len(evs))]],
              keep_tilde=wild_bootstrap)
    pos = [i for i, nm in enumerate(r.names) if nm in evs]
    events = np.asarray([r.names[i] for i in pos], dtype=np.int64)
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
        estimate=np.asarray(r.coef[pos]),
        vcov=np.asarray(r.vcov[np.ix_(pos, pos)]),
        n_treated=np.array([int(n_tr.get(v, 0)) for v in events], dtype=np.int64),
        reference=refs,
        df=float(r.n_clusters - 1) if r.n_clusters else None,
        alpha=alpha,
        info=info,
    )
    if wild_bootstrap:
        Xr, yr = partial_out(r.extra["Xt"], r.extra["yt"], w, np.asarray(pos))
        add_wild_bootstrap(res, Xr, yr, cl, w=w, ssc=r.ssc, average_window=average_window,
                           B=B, seed=seed, weights=bootstrap_weights, alpha=alpha, where=where)
    return res
