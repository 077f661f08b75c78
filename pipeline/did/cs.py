"""Callaway & Sant'Anna (2021) group-time average treatment effects and aggregations.

A numpy implementation of R's ``did`` package (``att_gt`` and ``aggte``) for panel data,
built for large balanced panels: the outcome is held as a wide periods × units matrix,
every 2×2 comparison works on index vectors into it, influence functions are one dense
units × cells matrix, and the multiplier bootstrap is a chunked matrix product.

Usage (the arguments are those of R's ``did``)::

    res = att_gt(df, yname="lemp", tname="year", idname="countyreal", gname="first.treat")
    res.table()                         # group, time, att, se, ci_low, ci_high, post
    es = aggte(res, type="dynamic")     # event study (also "simple", "group", "calendar")
    es.to_event_study()                 # pipeline.did.results.EventStudyResult
    callaway_santanna(df, yname=..., tname=..., idname=..., gname=...)  # both in one call

Conventions and behaviour (R's ``did`` 2.x unless said otherwise)
-----------------------------------------------------------------
* ``gname`` is the first treated period, ``0`` for never-treated units.  Units whose
  ``gname`` exceeds the last period (plus ``anticipation``) are treated as never treated;
  units treated in the first period (plus ``anticipation``) are dropped with a warning.
  Without never-treated units, the periods from the last cohort's start (minus
  ``anticipation``) on are dropped and, for ``control_group="nevertreated"``, the last
  cohort becomes the comparison group (as in R).
* Time periods are the sorted unique values of ``tname``; they need not be consecutive.
  ``base_period="varying"`` compares each pre-treatment period with the period before it;
  ``"universal"`` uses the period ``g − anticipation − 1`` (the last period before it)
  as base for every cell, whose own cell is reported as 0 with no standard error.
* ``control_group="notyettreated"`` uses never-treated units plus units first treated
  after ``max(t, base) + anticipation`` (excluding the cell's own cohort).
* Covariates (``covariates=[...]`` or ``xformla="~ x1 + x2"``, plain column names only;
  an intercept is added) enter the 2×2 estimators with their values in the earlier of
  the two periods of the cell.  ``est_method`` is ``"dr"`` (``DRDID::drdid_panel``),
  ``"ipw"`` (``std_ipw_did_panel``), ``"reg"`` (``reg_did_panel``) or
  ``"unconditional"`` (no covariates; identical to the other three without covariates).
* Standard errors come from the influence functions: ``se = sqrt(Σ ψ²) / n``.  With
  ``clustervars`` (a column constant within unit) the influence functions are summed
  within clusters first — analytically as well as in the bootstrap (R's ``did`` only
  clusters the bootstrap; its bootstrap converges to these analytic values).
* ``bstrap=True`` runs the multiplier bootstrap (Rademacher multipliers, as R's
  ``did`` via ``BMisc``; ``boot_weights="mammen"`` for Mammen's) and reports its
  IQR-based standard errors; ``cband=True`` adds the sup-t critical value for uniform
  bands (it runs the bootstrap even when ``bstrap=False``).  Results are deterministic
  given ``seed``.
* Unbalanced panels: by default units not observed (with non-missing values) in every
  period are dropped with a warning, as R's ``did`` does.  ``allow_unbalanced_panel=True``
  keeps them and estimates every cell as R does then (repeated-cross-section 2×2
  estimator on the observations of the two periods, influence functions summed within
  unit) — implemented without covariates only (with covariates it raises
  ``NotImplementedError``).  ``panel=False`` (true repeated cross-sections) is not
  implemented.
* Sampling weights (``weightsname``) must be constant within unit; they are normalised
  to mean one.
* Aggregations compare calendar times (``t − g``) wherever R compares positions in the
  list of periods (``max_e`` in ``"simple"`` and ``"group"``); with consecutive periods
  the two coincide.
"""


from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.did import _cs_boot as boot
from pipeline.did._cs_aggregate import aggte
from pipeline.did._cs_boot import checked_crit, cohort_weights, normal_crit
from pipeline.did._cs_estimators import (
    CellEstimationError,
    drdid_panel,
    reg_did_panel,
    std_ipw_did_panel,
    unconditional_did_panel,
)
from pipeline.did._cs_prepare import _Panel, parse_covariates, prepare
from pipeline.did._cs_results import AggteResult, ATTgtResult, as_int_if_whole
from pipeline.did.results import EventStudyResult

__all__ = ["ATTgtResult", "AggteResult", "aggte", "att_gt", "callaway_santanna"]

_EST_METHODS = ("dr", "ipw", "reg", "unconditional")
_TINY = boot._TINY


# --------------------------------------------------------------------------------------
# att_gt: estimation of every (g, t) cell
# --------------------------------------------------------------------------------------
def att_gt(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    xformla: str | None = None,
    covariates: list[str] | str | None = None,
    control_group: str = "nevertreated",
    est_method: str = "dr",
    anticipation: int = 0,
    base_period: str = "varying",
    panel: bool = True,
    allow_unbalanced_panel: bool = False,
    weightsname: str | None = None,
    clustervars: str | list[str] | None = None,
    bstrap: bool = False,
    biters: int = 999,
    cband: bool = False,
    alp: float = 0.05,
    seed=None,
    boot_weights: str = "rademacher",
) -> ATTgtResult:
    """Group-time average treatment effects (Callaway & Sant'Anna 2021; R ``did::att_gt``).

    Parameters
    ----------
    data
        Long panel: one row per unit and period.
    yname, tname, idname, gname
        Outcome, period (numeric), unit id and first-treated period (0 = never treated).
    xformla, covariates
        Covariates as an R-style formula of plain column names (``"~ x1 + x2"``) or a
        list of column names.
    control_group
        ``"nevertreated"`` or ``"notyettreated"``.
    est_method
        ``"dr"``, ``"ipw"``, ``"reg"`` or ``"unconditional"`` (no covariates).
    anticipation
        Number of periods of anticipation.
    base_period
        ``"varying"`` or ``"universal"``.
    panel, allow_unbalanced_panel
        Only ``panel=True`` is implemented; ``allow_unbalanced_panel=True`` keeps units
        missing in some periods (R's repeated-cross-section path; no covariates).
    weightsname
        Sampling weights, constant within unit.
    clustervars
        A column constant within unit to cluster on (``idname`` may be listed too and is
        ignored, as in R).
    bstrap, biters, boot_weights, seed
        Multiplier bootstrap for standard errors.
    cband, alp
        Uniform confidence bands (sup-t over cells) at level ``1 − alp``.

    Returns
    -------
    ATTgtResult
    """
    cluster_col = _checked_args(
        panel, control_group, base_period, est_method, anticipation, alp, clustervars, idname
    )
    covs = parse_covariates(xformla, covariates)
    if est_method == "unconditional" and covs:
        raise ValueError("est_method='unconditional' takes no covariates")

    p = prepare(
        data,
        yname,
        tname,
        idname,
        gname,
        covs,
        weightsname,
        cluster_col,
        control_group,
        int(anticipation),
        allow_unbalanced_panel,
    )
    n = p.G.size
    cells = _Cells(p, control_group, base_period, int(anticipation), est_method, covs)
    cells.estimate()

    se = boot.if_se(cells.psi, n, p.cluster)
    se[(se <= _TINY) | ~np.isfinite(cells.att)] = np.nan
    crit = normal_crit(alp)
    draws = draws_cohort = None
    w_unit = np.ones(n) if p.w is None else p.w
    if bstrap or cband:
        draws, draws_cohort = boot.multiplier_draws(
            (cells.psi, cohort_weights(p.G, w_unit, p.glist)),
            n,
            biters,
            seed,
            p.cluster,
            boot_weights,
        )
        if bstrap:
            bse = boot.boot_se(draws)
            se = np.where(np.isfinite(se), bse, np.nan)
        if cband:
            crit = checked_crit(boot.uniform_crit(draws[:, np.isfinite(se)], alp), alp)

    params = dict(
        yname=yname,
        tname=tname,
        idname=idname,
        gname=gname,
        covariates=covs,
        control_group=control_group,
        est_method=est_method,
        anticipation=int(anticipation),
        base_period=base_period,
        weightsname=weightsname,
        clustervars=cluster_col,
        bstrap=bool(bstrap),
        biters=int(biters),
        cband=bool(cband),
        alp=float(alp),
        seed=seed,
        boot_weights=boot_weights,
    )
    info = np.array(cells.cells, dtype=float).reshape(-1, 4)
    return ATTgtResult(
        group=as_int_if_whole(info[:, 0]),
        time=as_int_if_whole(info[:, 1]),
        att=cells.att,
        se=se,
        post=info[:, 3].astype(np.int64),
        base_time=as_int_if_whole(info[:, 2]),
        inffunc=cells.psi,
        crit=crit,
        n=n,
        unit_ids=p.ids,
        unit_group=p.G,
        unit_weights=w_unit,
        cluster_codes=p.cluster,
        glist=p.glist,
        tlist=p.tlist,
        params=params,
        n_cell=cells.n_cell,
        boot_draws=draws,
        boot_draws_cohort=draws_cohort,
    )


def _checked_args(
    panel, control_group, base_period, est_method, anticipation, alp, clustervars, idname
) -> str | None:
    """Check att_gt's options; the cluster column besides ``idname`` (or None)."""
    if not panel:
        raise NotImplementedError(
            "att_gt: repeated cross-sections (panel=False) are not implemented; for an "
            "unbalanced panel use allow_unbalanced_panel=True"
        )
    if control_group not in ("nevertreated", "notyettreated"):
        raise ValueError("control_group must be 'nevertreated' or 'notyettreated'")
    if base_period not in ("varying", "universal"):
        raise ValueError("base_period must be 'varying' or 'universal'")
    if est_method not in _EST_METHODS:
        raise ValueError(f"est_method must be one of {_EST_METHODS}")
    if int(anticipation) != anticipation or anticipation < 0:
        raise ValueError("anticipation must be a non-negative integer")
    if not 0 < alp < 1:
        raise ValueError("alp must be in (0, 1)")
    if isinstance(clustervars, str):
        clustervars = [clustervars]
    cl = [c for c in (clustervars or []) if c != idname]
    if len(cl) > 1:
        raise ValueError("at most one cluster variable besides idname is supported")
    return cl[0] if cl else None


class _Cells:
    """The (g, t) cells of att_gt: their 2×2 comparisons, estimates and influence
    functions (units × cells)."""

    def __init__(
        self,
        p: _Panel,
        control_group: str,
        base_period: str,
        anticipation: int,
        est_method: str,
        covs: list[str],
    ):
        self.p = p
        self.control_group = control_group
        self.base_period = base_period
        self.anticipation = anticipation
        self.est_method = est_method
        self.covs = covs
        self.estimator = {
            "dr": drdid_panel, "ipw": std_ipw_did_panel, "reg": reg_did_panel
        }.get(est_method)
        self.tfac = 1 if base_period == "varying" else 0
        self.n = p.G.size
        K = p.glist.size * (p.tlist.size - self.tfac)
        self.psi = np.zeros((self.n, K), order="F")
        self.att = np.full(K, np.nan)
        self.n_cell = np.zeros(K, dtype=np.int64)
        self.cells: list[tuple[float, float, float, int]] = []
        self.never_idx = np.flatnonzero(np.isinf(p.G))

    def estimate(self) -> None:
        p = self.p
        k = -1
        for g in p.glist:
            pre_cands = np.flatnonzero(p.tlist + self.anticipation < g)
            pret_g = int(pre_cands[-1])
            tr = np.flatnonzero(p.G == g)
            for ti in range(p.tlist.size - self.tfac):
                k += 1
                cur = ti + self.tfac
                pre = pret_g if self.base_period == "universal" else ti
                if g <= p.tlist[cur]:
                    pre = pret_g
                self.cells.append((g, p.tlist[cur], p.tlist[pre], int(g <= p.tlist[cur])))
                if self.base_period == "universal" and pre == cur:
                    self.att[k] = 0.0
                    continue
                self._cell(k, g, cur, pre, tr)

    def _comparison(self, g: float, cur: int, pre: int) -> np.ndarray:
        p = self.p
        if self.control_group == "nevertreated":
            return self.never_idx
        cutoff = p.tlist[max(cur, pre)] + self.anticipation
        return np.flatnonzero(np.isinf(p.G) | ((p.G > cutoff) & (p.G != g)))

    def _cell(self, k: int, g: float, cur: int, pre: int, tr: np.ndarray) -> None:
        p = self.p
        ct = self._comparison(g, cur, pre)
        where = f"att_gt: group {g:g}, period {p.tlist[cur]:g}"
        if tr.size == 0 or ct.size == 0:
            warnings.warn(
                f"att_gt: no treated or comparison units for group {g:g} in period "
                f"{p.tlist[cur]:g}; ATT set to NaN",
                stacklevel=4,
            )
            return
        idx = np.concatenate([tr, ct])
        n1 = idx.size
        self.n_cell[k] = n1
        wi = None if p.w is None else p.w[idx]
        if p.unbalanced:
            a, inf = _unbalanced_cell(p.Y[cur, idx], p.Y[pre, idx], tr.size, wi)
            if not np.isfinite(a):
                warnings.warn(
                    f"{where}: a treated or comparison group is not observed in one of "
                    "the two periods; ATT set to NaN",
                    stacklevel=4,
                )
                return
            self.att[k] = a
            self.psi[idx, k] = inf * self.n
            return
        dy = p.Y[cur, idx] - p.Y[pre, idx]
        try:
            if not self.covs:
                a, inf = unconditional_did_panel(
                    dy, tr.size, wi, trim_controls=self.est_method in ("dr", "ipw")
                )
            else:
                D = np.zeros(n1)
                D[: tr.size] = 1.0
                Xc = p.X[min(pre, cur)][idx]
                a, inf = self.estimator(dy, D, Xc, np.ones(n1) if wi is None else wi)
        except CellEstimationError as exc:
            warnings.warn(f"{where}: {exc}; ATT set to NaN", stacklevel=4)
            return
        if not np.isfinite(a):
            warnings.warn(
                f"{where}: every comparison unit is trimmed (propensity score >= 0.995); "
                "ATT set to NaN",
                stacklevel=4,
            )
            return
        self.att[k] = a
        inf *= self.n / n1
        self.psi[idx, k] = inf


def _unbalanced_cell(y1: np.ndarray, y0: np.ndarray, n_treated: int, w: np.ndarray | None):
    """2×2 cell of an unbalanced panel: R's repeated-cross-section path without covariates.

    Every observed (unit, period) is an observation; the estimate is the difference in
    differences of the four (weighted) cell means, whose influence function is
    ``s w (Y − Ȳ_dt) / W_dt`` per observation (``s = ±1``).  As R's ``did``
    (``allow_unbalanced_panel=True``) does, observation influence functions are summed
    within unit; the caller scales them by the number of units.
    """
    m = y1.shape[0]
    wv = np.ones(m) if w is None else w
    inf = np.zeros(m)
    total = 0.0
    treated = np.zeros(m, dtype=bool)
    treated[:n_treated] = True
    for y, sign_t in ((y1, 1.0), (y0, -1.0)):
        obs = ~np.isnan(y)
        for grp, sign_d in ((treated, 1.0), (~treated, -1.0)):
            c = obs & grp
            wc = wv[c].sum()
            if not c.any() or wc <= 0:
                return float("nan"), inf
            mean = float(wv[c] @ y[c]) / wc
            total += sign_t * sign_d * mean
            inf[c] += sign_t * sign_d * wv[c] * (y[c] - mean) / wc
    return total, inf


def callaway_santanna(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    balance_e: int | None = None,
    min_e: float = -np.inf,
    max_e: float = np.inf,
    estimator: str | None = None,
    **att_gt_kwargs,
) -> EventStudyResult:
    """Callaway & Sant'Anna event study in one call: :func:`att_gt`, then
    ``aggte(type="dynamic")``, returned as an :class:`EventStudyResult`.

    ``att_gt_kwargs`` are passed to :func:`att_gt` (``control_group``, ``est_method``,
    ``covariates``, ``anticipation``, ``base_period``, ``clustervars``, ``bstrap``,
    ``biters``, ``cband``, ``alp``, ``seed``, ...); ``estimator`` overrides the name
    (default ``"callaway_santanna_<est_method>"``).
    """
    res = att_gt(data, yname=yname, tname=tname, idname=idname, gname=gname, **att_gt_kwargs)
    dyn = aggte(res, "dynamic", balance_e=balance_e, min_e=min_e, max_e=max_e)
    es = dyn.to_event_study(estimator)
    es.info["n_units"] = res.n
    return es
