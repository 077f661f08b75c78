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

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.did import _cs_boot as boot
from pipeline.did._cs_estimators import (
    CellEstimationError,
    drdid_panel,
    reg_did_panel,
    std_ipw_did_panel,
    unconditional_did_panel,
)
from pipeline.did.results import EventStudyResult, WaldTest

__all__ = ["ATTgtResult", "AggteResult", "aggte", "att_gt", "callaway_santanna"]

_EST_METHODS = ("dr", "ipw", "reg", "unconditional")
_TINY = np.sqrt(np.finfo(float).eps) * 10


# --------------------------------------------------------------------------------------
# results objects
# --------------------------------------------------------------------------------------
@dataclass
class ATTgtResult:
    """Group-time average treatment effects ``ATT(g, t)``.

    Attributes
    ----------
    group, time, att, se
        One entry per (g, t) cell, ordered by group then time.  ``se`` is NaN for cells
        normalised to zero (universal base period) or not estimable.
    post
        1 if ``time >= group`` (post-treatment cell).
    base_time
        The base period of each cell's comparison.
    inffunc
        Influence functions, units × cells (unit order: ``unit_ids``).
    crit
        Critical value for the intervals: uniform (sup-t) with ``cband``, else normal.
    """

    group: np.ndarray
    time: np.ndarray
    att: np.ndarray
    se: np.ndarray
    post: np.ndarray
    base_time: np.ndarray
    inffunc: np.ndarray
    crit: float
    n: int
    unit_ids: np.ndarray
    unit_group: np.ndarray  # first treated period per unit (inf: never treated)
    unit_weights: np.ndarray
    cluster_codes: np.ndarray | None
    glist: np.ndarray
    tlist: np.ndarray
    params: dict[str, Any]
    n_cell: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    boot_draws: np.ndarray | None = None  # biters × cells: (1/n) Σ v ψ
    boot_draws_cohort: np.ndarray | None = None  # biters × groups: (1/n) Σ v w 1{G=g}

    def pretest(self) -> WaldTest:
        """R's Wald pre-test that every pre-treatment ATT(g, t) is zero (cells with
        ``time < group`` and a standard error), with the influence-function covariance."""
        pre = np.flatnonzero((self.group > self.time) & np.isfinite(self.se))
        if pre.size == 0:
            raise ValueError("no pre-treatment cells to test")
        v = self.vcov()[np.ix_(pre, pre)]
        b = self.att[pre]
        stat = float(b @ np.linalg.solve(v, b))
        return WaldTest(
            stat,
            int(pre.size),
            float(stats.chi2.sf(stat, pre.size)),
            tuple(int(e) for e in (self.time[pre] - self.group[pre])),
        )

    def vcov(self) -> np.ndarray:
        """Covariance of ``att`` from the influence functions (cluster-robust with a
        cluster variable); NaN rows/columns for cells without an estimate."""
        v = boot.if_vcov(self.inffunc, self.n, self.cluster_codes)
        bad = ~np.isfinite(self.att)
        v[bad, :] = np.nan
        v[:, bad] = np.nan
        return v

    @property
    def estimator(self) -> str:
        return f"callaway_santanna_{self.params['est_method']}"

    def table(self) -> pd.DataFrame:
        """The ATT(g, t) table: group, time, att, se, ci_low, ci_high, post."""
        lo = self.att - self.crit * self.se
        hi = self.att + self.crit * self.se
        return pd.DataFrame(
            {
                "group": self.group,
                "time": self.time,
                "base_time": self.base_time,
                "att": self.att,
                "se": self.se,
                "ci_low": lo,
                "ci_high": hi,
                "post": self.post,
                "n_cell": self.n_cell,
            }
        )

    def __repr__(self) -> str:  # pragma: no cover - convenience
        return f"<ATTgtResult {self.estimator}: {self.att.size} cells, {self.n} units>"


@dataclass
class AggteResult:
    """An aggregation of ATT(g, t) (R's ``AGGTEobj``)."""

    type: str
    overall_att: float
    overall_se: float
    egt: np.ndarray | None
    att_egt: np.ndarray | None
    se_egt: np.ndarray | None
    crit_val_egt: float | None
    inf_func_egt: np.ndarray | None
    inf_func_overall: np.ndarray
    vcov_egt: np.ndarray | None
    n_treated_egt: np.ndarray | None
    alp: float
    estimator: str
    params: dict[str, Any]

    def table(self) -> pd.DataFrame:
        """Effects by event time / group / period with pointwise or uniform intervals."""
        if self.egt is None:
            return pd.DataFrame(
                {
                    "estimate": [self.overall_att],
                    "se": [self.overall_se],
                    "ci_low": [self.overall_att - _z(self.alp) * self.overall_se],
                    "ci_high": [self.overall_att + _z(self.alp) * self.overall_se],
                }
            )
        c = self.crit_val_egt if self.crit_val_egt is not None else _z(self.alp)
        col = {"dynamic": "event_time", "group": "group", "calendar": "time"}[self.type]
        return pd.DataFrame(
            {
                col: self.egt,
                "estimate": self.att_egt,
                "se": self.se_egt,
                "ci_low": self.att_egt - c * self.se_egt,
                "ci_high": self.att_egt + c * self.se_egt,
                "n_treated": self.n_treated_egt,
            }
        )

    def to_event_study(self, estimator: str | None = None) -> EventStudyResult:
        """The dynamic aggregation as a :class:`~pipeline.did.results.EventStudyResult`.

        The covariance is that of the influence functions; with bootstrap standard
        errors its diagonal is rescaled to them (correlations kept).  Cells normalised to
        zero (universal base period) are flagged in ``reference``.
        """
        if self.type != "dynamic":
            raise ValueError(f"only the dynamic aggregation is an event study, not {self.type!r}")
        v = np.array(self.vcov_egt, dtype=float)
        # base-period cells (universal base): estimate exactly 0 with no sampling variance
        ref = tuple(
            int(e)
            for e, a, s in zip(self.egt, self.att_egt, self.se_egt, strict=True)
            if a == 0 and not s > 0
        )
        if np.isnan(self.att_egt).any():
            raise ValueError("aggte: NaN event-time estimates cannot form an event study")
        if self.params.get("bstrap"):
            sd = np.sqrt(np.clip(np.diag(v), 0, None))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = v / np.outer(sd, sd)
            corr = np.nan_to_num(corr)
            se_b = np.nan_to_num(self.se_egt)
            v = corr * np.outer(se_b, se_b)
            np.fill_diagonal(v, se_b**2)
        crit_u = self.crit_val_egt if self.params.get("cband") else None
        return EventStudyResult(
            estimator=estimator or self.estimator,
            event_time=np.asarray(self.egt, dtype=np.int64),
            estimate=np.nan_to_num(np.asarray(self.att_egt, dtype=float)),
            vcov=v,
            n_treated=self.n_treated_egt,
            reference=ref,
            alpha=self.alp,
            crit_uniform=crit_u,
            info={
                "overall_att (mean over event times >= 0)": self.overall_att,
                "overall_se": self.overall_se,
                **{
                    k: self.params[k]
                    for k in (
                        "est_method",
                        "control_group",
                        "base_period",
                        "anticipation",
                        "covariates",
                        "clustervars",
                        "balance_e",
                        "min_e",
                        "max_e",
                    )
                    if k in self.params
                },
            },
        )


# --------------------------------------------------------------------------------------
# input preparation
# --------------------------------------------------------------------------------------
@dataclass
class _Panel:
    ids: np.ndarray
    G: np.ndarray  # per unit, inf = never treated
    w: np.ndarray | None  # per unit, mean one (None: unweighted)
    Y: np.ndarray  # periods × units
    X: np.ndarray | None  # periods × units × k (with intercept)
    tlist: np.ndarray
    glist: np.ndarray
    cluster: np.ndarray | None
    unbalanced: bool = False


def _parse_covariates(xformla, covariates) -> list[str]:
    if xformla is not None and covariates is not None:
        raise ValueError("give either xformla or covariates, not both")
    if covariates is not None:
        return [str(c) for c in ([covariates] if isinstance(covariates, str) else covariates)]
    if xformla is None:
        return []
    rhs = str(xformla).strip()
    rhs = rhs.split("~", 1)[1] if "~" in rhs else rhs
    terms = [t.strip() for t in rhs.split("+") if t.strip()]
    terms = [t for t in terms if t != "1"]
    for t in terms:
        if not re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", t):
            raise ValueError(
                f"xformla term {t!r}: only plain column names are supported "
                "(create transformed columns in the data first)"
            )
    return terms


def _unit_constant(name: str, codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, dtype=values.dtype)
    out[codes] = values
    bad = out[codes] != values
    if values.dtype.kind == "f":
        bad &= ~(np.isnan(out[codes]) & np.isnan(values))
    if bad.any():
        raise ValueError(f"column '{name}' must be constant within unit (idname); it varies")
    return out


def _prepare(
    data: pd.DataFrame,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    covs: list[str],
    weightsname: str | None,
    clustervars: str | None,
    control_group: str,
    anticipation: int,
    allow_unbalanced: bool = False,
) -> _Panel:
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    needed = [idname, tname, gname, yname, *covs]
    extra = [c for c in (weightsname, clustervars) if c is not None]
    missing = [c for c in dict.fromkeys(needed + extra) if c not in data.columns]
    if missing:
        raise KeyError(f"att_gt: columns not in data: {missing}")
    for c in (tname, gname, yname, *covs, *([weightsname] if weightsname else [])):
        if not pd.api.types.is_numeric_dtype(data[c]):
            raise TypeError(f"att_gt: column '{c}' must be numeric (it is {data[c].dtype})")

    cols = list(dict.fromkeys(needed + extra))
    if data[gname].isna().any():
        raise ValueError(
            f"att_gt: column '{gname}' has missing values; code never-treated units as 0"
        )
    arrays = {c: data[c].to_numpy() for c in cols}
    nrow = len(data)
    keep = np.ones(nrow, dtype=bool)
    for c in cols:
        a = arrays[c]
        if a.dtype.kind in "fc":
            keep &= np.isfinite(a)
        elif a.dtype.kind == "O":
            keep &= ~pd.isna(a)
    if not keep.all():
        warnings.warn(
            f"att_gt: dropped {int((~keep).sum())} rows with missing values in {cols}",
            stacklevel=3,
        )
        arrays = {c: a[keep] for c, a in arrays.items()}

    t_raw = arrays[tname]
    codes, ids = pd.factorize(arrays[idname], sort=True)
    codes = codes.astype(np.int64, copy=False)
    n_all = ids.size
    G_all = _unit_constant(gname, codes, arrays[gname], n_all).astype(float)
    if (G_all < 0).any():
        raise ValueError(f"column '{gname}': first treated period must be >= 0 (0 = never)")

    tlist = np.unique(t_raw).astype(float)
    tpos = np.searchsorted(tlist, t_raw)
    T = tlist.size
    flat = codes * T
    flat += tpos
    dup = np.bincount(flat, minlength=n_all * T).max(initial=0) > 1
    del flat
    if dup:
        raise ValueError(
            f"att_gt: ({idname}, {tname}) is not unique: some units are observed more "
            "than once in a period"
        )
    t_all = tlist

    G_all = np.where(G_all == 0, np.inf, G_all)
    G_all = np.where(G_all > tlist.max() + anticipation, np.inf, G_all)

    unit_keep = np.ones(n_all, dtype=bool)
    glist_all = np.unique(G_all[np.isfinite(G_all)])
    drop_last_cohort_from_glist = None
    if not np.isinf(G_all).any():
        if glist_all.size == 0:
            raise ValueError(f"att_gt: no treated units ('{gname}' is 0 for every unit)")
        latest = glist_all.max()
        cutoff = latest - anticipation
        if control_group == "nevertreated":
            warnings.warn(
                "att_gt: no never-treated group; the last treated cohort "
                f"({latest:g}) is used as never treated and periods >= {cutoff:g} dropped",
                stacklevel=3,
            )
            G_all = np.where(G_all == latest, np.inf, G_all)
        else:
            drop_last_cohort_from_glist = latest
        tlist = tlist[tlist < cutoff]
        if tlist.size < 2:
            raise ValueError("att_gt: fewer than two periods before the last cohort starts")

    first = tlist[0]
    treated_first = np.isfinite(G_all) & (G_all <= first + anticipation)
    if treated_first.any():
        warnings.warn(
            f"att_gt: dropped {int(treated_first.sum())} units already treated in the first "
            f"period{' (accounting for anticipation)' if anticipation else ''}",
            stacklevel=3,
        )
        unit_keep &= ~treated_first

    # rows in kept units and kept periods (tpos indexes the periods kept, a prefix)
    T = tlist.size
    in_t = None if T == t_all.size else tpos < T
    row_keep = unit_keep[codes] if in_t is None else unit_keep[codes] & in_t
    all_rows = bool(row_keep.all())
    counts = np.bincount(codes if all_rows else codes[row_keep], minlength=n_all)
    incomplete = unit_keep & (counts < T)
    unbalanced = bool(allow_unbalanced and incomplete.any())
    if unbalanced and covs:
        raise NotImplementedError(
            "att_gt: allow_unbalanced_panel=True is implemented without covariates only"
        )
    if incomplete.any() and not unbalanced:
        warnings.warn(
            f"att_gt: {int(incomplete.sum())} units are not observed (with complete data) in "
            "every period; they are dropped to balance the panel",
            stacklevel=3,
        )
        unit_keep &= ~incomplete
        row_keep = unit_keep[codes] if in_t is None else unit_keep[codes] & in_t
        all_rows = bool(row_keep.all())
    if not unit_keep.any():
        raise ValueError("att_gt: no units left after balancing the panel")

    # re-index kept units
    new_code = np.cumsum(unit_keep) - 1
    n = int(unit_keep.sum())

    def rows(a: np.ndarray) -> np.ndarray:
        return a if all_rows else a[row_keep]

    rc = codes if n == n_all else new_code[codes]
    rc = rows(rc)
    rt = rows(tpos)
    Y = np.full((T, n), np.nan) if unbalanced else np.empty((T, n))
    Y[rt, rc] = rows(arrays[yname])
    X = None
    if covs:
        X = np.empty((T, n, len(covs) + 1))
        X[:, :, 0] = 1.0
        for j, c in enumerate(covs):
            X[rt, rc, j + 1] = rows(arrays[c])
    G = G_all[unit_keep]
    if weightsname is not None:
        wv = arrays[weightsname].astype(float)
        w_all = _unit_constant(weightsname, codes, wv, n_all)
        w = w_all[unit_keep]
        if (w < 0).any() or w.mean() <= 0:
            raise ValueError(f"column '{weightsname}': weights must be >= 0 with positive mean")
        w = w / w.mean()
    else:
        w = None  # unweighted
    cluster = None
    if clustervars is not None:
        cl_all = _unit_constant(clustervars, codes, arrays[clustervars], n_all)
        cluster = pd.factorize(cl_all[unit_keep], sort=True)[0].astype(np.int64)

    glist = np.unique(G[np.isfinite(G)])
    glist = glist[glist > tlist[0] + anticipation]
    if drop_last_cohort_from_glist is not None:
        glist = glist[glist < drop_last_cohort_from_glist]
    if glist.size == 0:
        raise ValueError(
            f"att_gt: no valid groups; '{gname}' must be the first treated period "
            "(0 if never treated)"
        )
    # small groups (R: fewer than (number of covariates + 5) units)
    req = len(covs) + 5
    sizes = {g: int(np.sum(G == g)) for g in glist}
    sizes[np.inf] = int(np.isinf(G).sum())
    small = [g for g, s in sizes.items() if 0 < s < req]
    if small:
        warnings.warn(
            f"att_gt: some groups have fewer than {req} units: "
            f"{[0 if np.isinf(g) else g for g in small]}",
            stacklevel=3,
        )
        if np.inf in small and control_group == "nevertreated":
            raise ValueError(
                "att_gt: the never-treated group is too small to serve as comparison; "
                "try control_group='notyettreated'"
            )
    return _Panel(
        ids=np.asarray(ids)[unit_keep],
        G=G,
        w=w,
        Y=Y,
        X=X,
        tlist=tlist,
        glist=glist,
        cluster=cluster,
        unbalanced=unbalanced,
    )


# --------------------------------------------------------------------------------------
# att_gt
# --------------------------------------------------------------------------------------
def _z(alp: float) -> float:
    return float(stats.norm.ppf(1 - alp / 2))


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
    covs = _parse_covariates(xformla, covariates)
    if est_method == "unconditional" and covs:
        raise ValueError("est_method='unconditional' takes no covariates")
    if isinstance(clustervars, str):
        clustervars = [clustervars]
    cl = [c for c in (clustervars or []) if c != idname]
    if len(cl) > 1:
        raise ValueError("at most one cluster variable besides idname is supported")
    cluster_col = cl[0] if cl else None

    p = _prepare(
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
    T = p.tlist.size
    tfac = 1 if base_period == "varying" else 0
    never_idx = np.flatnonzero(np.isinf(p.G))
    group_idx = {g: np.flatnonzero(p.G == g) for g in p.glist}

    estimator = {"dr": drdid_panel, "ipw": std_ipw_did_panel, "reg": reg_did_panel}.get(est_method)
    cells: list[tuple[float, float, float, int]] = []
    K = p.glist.size * (T - tfac)
    psi = np.zeros((n, K), order="F")
    att = np.full(K, np.nan)
    n_cell = np.zeros(K, dtype=np.int64)
    k = -1
    for g in p.glist:
        pre_cands = np.flatnonzero(p.tlist + anticipation < g)
        pret_g = int(pre_cands[-1])
        tr = group_idx[g]
        for ti in range(T - tfac):
            k += 1
            cur = ti + tfac
            pre = pret_g if base_period == "universal" else ti
            if g <= p.tlist[cur]:
                pre = pret_g
            cells.append((g, p.tlist[cur], p.tlist[pre], int(g <= p.tlist[cur])))
            if base_period == "universal" and pre == cur:
                att[k] = 0.0
                continue
            if control_group == "nevertreated":
                ct = never_idx
            else:
                cutoff = p.tlist[max(cur, pre)] + anticipation
                ct = np.flatnonzero(np.isinf(p.G) | ((p.G > cutoff) & (p.G != g)))
            if tr.size == 0 or ct.size == 0:
                warnings.warn(
                    f"att_gt: no treated or comparison units for group {g:g} in period "
                    f"{p.tlist[cur]:g}; ATT set to NaN",
                    stacklevel=2,
                )
                continue
            idx = np.concatenate([tr, ct])
            n1 = idx.size
            n_cell[k] = n1
            wi = None if p.w is None else p.w[idx]
            if p.unbalanced:
                a, inf = _unbalanced_cell(p.Y[cur, idx], p.Y[pre, idx], tr.size, wi)
                if not np.isfinite(a):
                    warnings.warn(
                        f"att_gt: group {g:g}, period {p.tlist[cur]:g}: a treated or "
                        "comparison group is not observed in one of the two periods; "
                        "ATT set to NaN",
                        stacklevel=2,
                    )
                    continue
                att[k] = a
                psi[idx, k] = inf * n
                continue
            dy = p.Y[cur, idx] - p.Y[pre, idx]
            try:
                if not covs:
                    a, inf = unconditional_did_panel(
                        dy, tr.size, wi, trim_controls=est_method in ("dr", "ipw")
                    )
                else:
                    D = np.zeros(n1)
                    D[: tr.size] = 1.0
                    Xc = p.X[min(pre, cur)][idx]
                    a, inf = estimator(dy, D, Xc, np.ones(n1) if wi is None else wi)
            except CellEstimationError as exc:
                warnings.warn(
                    f"att_gt: group {g:g}, period {p.tlist[cur]:g}: {exc}; ATT set to NaN",
                    stacklevel=2,
                )
                continue
            if not np.isfinite(a):
                warnings.warn(
                    f"att_gt: group {g:g}, period {p.tlist[cur]:g}: every comparison unit is "
                    "trimmed (propensity score >= 0.995); ATT set to NaN",
                    stacklevel=2,
                )
                continue
            att[k] = a
            inf *= n / n1
            psi[idx, k] = inf

    group = np.array([c[0] for c in cells], dtype=float)
    time = np.array([c[1] for c in cells], dtype=float)
    base_time = np.array([c[2] for c in cells], dtype=float)
    post = np.array([c[3] for c in cells], dtype=np.int64)

    se = boot.if_se(psi, n, p.cluster)
    se[(se <= _TINY) | ~np.isfinite(att)] = np.nan
    crit = _z(alp)
    draws = draws_cohort = None
    w_unit = np.ones(n) if p.w is None else p.w
    if bstrap or cband:
        draws, draws_cohort = boot.multiplier_draws(
            (psi, _cohort_weights(p.G, w_unit, p.glist)),
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
            crit = _checked_crit(boot.uniform_crit(draws[:, np.isfinite(se)], alp), alp)

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
    return ATTgtResult(
        group=_as_int_if_whole(group),
        time=_as_int_if_whole(time),
        att=att,
        se=se,
        post=post,
        base_time=_as_int_if_whole(base_time),
        inffunc=psi,
        crit=crit,
        n=n,
        unit_ids=p.ids,
        unit_group=p.G,
        unit_weights=w_unit,
        cluster_codes=p.cluster,
        glist=p.glist,
        tlist=p.tlist,
        params=params,
        n_cell=n_cell,
        boot_draws=draws,
        boot_draws_cohort=draws_cohort,
    )


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


def _cohort_weights(G: np.ndarray, w: np.ndarray, glist: np.ndarray) -> np.ndarray:
    """Units × groups matrix with ``w_i 1{G_i = g}`` (the weight-estimation terms)."""
    out = np.zeros((G.size, glist.size))
    for j, g in enumerate(glist):
        m = G == g
        out[m, j] = w[m]
    return out


def _as_int_if_whole(a: np.ndarray) -> np.ndarray:
    if a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    return a


def _checked_crit(c: float, alp: float) -> float:
    z = _z(alp)
    if not np.isfinite(c):
        warnings.warn(
            "uniform critical value is not finite (standard errors unavailable); "
            "reporting pointwise intervals",
            stacklevel=3,
        )
        return z
    if c < z:
        warnings.warn(
            "uniform critical value below the pointwise one; reporting pointwise intervals",
            stacklevel=3,
        )
        return z
    if c >= 7:
        warnings.warn(
            "uniform critical value >= 7: arguably too large to be reliable", stacklevel=3
        )
    return float(c)


# --------------------------------------------------------------------------------------
# aggte
# --------------------------------------------------------------------------------------
def aggte(
    result: ATTgtResult,
    type: str = "group",  # noqa: A002 - R's argument name
    *,
    balance_e: int | None = None,
    min_e: float = -np.inf,
    max_e: float = np.inf,
    na_rm: bool = False,
    bstrap: bool | None = None,
    biters: int | None = None,
    cband: bool | None = None,
    alp: float | None = None,
    seed=None,
    boot_weights: str | None = None,
) -> AggteResult:
    """Aggregate ATT(g, t) (R ``did::aggte``).

    Parameters
    ----------
    result
        Output of :func:`att_gt`.
    type
        ``"simple"`` (post-treatment cells weighted by group size), ``"dynamic"``
        (event study), ``"group"`` or ``"calendar"``.
    balance_e, min_e, max_e
        Event-time restrictions as in R (``balance_e``: only groups observed for at least
        ``balance_e`` periods after treatment; ``min_e``/``max_e``: event-time window).
    na_rm
        Drop cells whose ATT is NaN (otherwise an error, as in R).
    bstrap, biters, cband, alp, seed, boot_weights
        Inference options; ``None`` takes the value used in :func:`att_gt`.  When
        :func:`att_gt` already drew bootstrap multipliers with the same ``biters``,
        ``seed`` and ``boot_weights``, the aggregation reuses them (every aggregate is
        linear in the cell influence functions and the group-share terms).

    Notes
    -----
    Every aggregate ``θ_j`` has influence function
    ``ψ_j = Ψ[:, cells] @ W[:, j] + w · A[G, j]``: a weighted sum of the cells' influence
    functions plus, where R's ``did`` accounts for estimating the group-size weights
    (``wif``), a term in each unit's own group share.
    """
    if type not in ("simple", "dynamic", "group", "calendar"):
        raise ValueError("type must be 'simple', 'dynamic', 'group' or 'calendar'")
    prm = result.params
    bstrap = prm["bstrap"] if bstrap is None else bool(bstrap)
    biters = prm["biters"] if biters is None else int(biters)
    cband = prm["cband"] if cband is None else bool(cband)
    alp = prm["alp"] if alp is None else float(alp)
    seed = prm["seed"] if seed is None else seed
    boot_weights = prm["boot_weights"] if boot_weights is None else boot_weights

    group = np.asarray(result.group, dtype=float)
    t = np.asarray(result.time, dtype=float)
    att = result.att
    cols = np.arange(att.size)
    if np.isnan(att).any():
        if not na_rm:
            raise ValueError("aggte: some ATT(g,t) are NaN; set na_rm=True to drop them")
        cols = np.flatnonzero(~np.isnan(att))
    group, t, att = group[cols], t[cols], att[cols]
    n = result.n
    G = result.unit_group
    w = result.unit_weights
    glist = result.glist  # all groups of att_gt (shares are over all units)
    ng = glist.size
    pg_g = np.array([np.mean(w * (G == g)) for g in glist])
    gpos = np.searchsorted(glist, group)
    pg = pg_g[gpos]
    gsize = np.array([np.sum(G == g) for g in glist], dtype=np.int64)
    kc = att.size

    # each output j: estimate = att @ Wm[:, j]; influence = Ψ[:, cols] @ Wm + w·Am[G]
    w_cols: list[np.ndarray] = []
    a_cols: list[np.ndarray] = []
    est: list[float] = []

    def add(keep: np.ndarray, wif: bool) -> None:
        """Cells ``keep`` averaged with group-share weights (R's ``pg/sum(pg)``)."""
        wk = pg[keep] / pg[keep].sum()
        wv = np.zeros(kc)
        wv[keep] = wk
        theta = float(wk @ att[keep])
        av = np.zeros(ng)
        if wif:  # estimation of the shares: Σ_j w 1{G=g_j} (att_j − θ) / Σ pg
            np.add.at(av, gpos[keep], (att[keep] - theta) / pg[keep].sum())
        w_cols.append(wv)
        a_cols.append(av)
        est.append(theta)

    egt = None
    n_tr = None
    if type == "simple":
        keep = np.flatnonzero((group <= t) & (t - group <= max_e))
        if keep.size == 0:
            raise ValueError("aggte: no post-treatment cells to aggregate")
        add(keep, True)
    elif type == "group":
        keep_g = []
        for gi, g in enumerate(glist):
            kg = np.flatnonzero((group == g) & (g <= t) & (t - g <= max_e))
            if kg.size:
                add(kg, False)
                keep_g.append(gi)
        if not keep_g:
            raise ValueError("aggte: no post-treatment cells to aggregate")
        keep_g = np.array(keep_g, dtype=np.int64)
        egt, n_tr = glist[keep_g], gsize[keep_g]
        pgg = pg_g[keep_g]
        s = pgg.sum()
        att_g = np.array(est)
        theta = float(pgg @ att_g / s)
        wv = np.column_stack(w_cols) @ (pgg / s)
        av = np.column_stack(a_cols) @ (pgg / s)
        av[keep_g] += (att_g - theta) / s
        w_cols.append(wv)
        a_cols.append(av)
        est.append(theta)
    elif type == "dynamic":
        e_cell = t - group
        eseq = np.unique(e_cell)
        include = np.ones(kc, dtype=bool)
        if balance_e is not None:
            max_t, min_t = t.max(), t.min()
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - max_t + min_t)]
            include = (max_t - group) >= balance_e
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        e_list, n_list = [], []
        for e in eseq:
            ke = np.flatnonzero((e_cell == e) & include)
            if ke.size:
                add(ke, True)
                e_list.append(e)
                n_list.append(int(gsize[np.unique(gpos[ke])].sum()))
        if not e_list:
            raise ValueError("aggte: no event times left after balance_e/min_e/max_e")
        egt, n_tr = np.array(e_list), np.array(n_list, dtype=np.int64)
        pos = egt >= 0
        if pos.any():
            w_cols.append(np.column_stack(w_cols)[:, pos].mean(axis=1))
            a_cols.append(np.column_stack(a_cols)[:, pos].mean(axis=1))
            est.append(float(np.mean(np.array(est)[pos])))
        else:
            w_cols.append(np.zeros(kc))
            a_cols.append(np.zeros(ng))
            est.append(float("nan"))
    else:  # calendar
        tl = np.unique(t)
        tl = tl[tl >= group.min()]
        t_list, n_list = [], []
        for t1 in tl:
            kt = np.flatnonzero((t == t1) & (group <= t))
            if kt.size:
                add(kt, True)
                t_list.append(t1)
                n_list.append(int(gsize[np.unique(gpos[kt])].sum()))
        if not t_list:
            raise ValueError("aggte: no post-treatment cells to aggregate")
        egt, n_tr = np.array(t_list), np.array(n_list, dtype=np.int64)
        w_cols.append(np.column_stack(w_cols).mean(axis=1))
        a_cols.append(np.column_stack(a_cols).mean(axis=1))
        est.append(float(np.mean(est)))

    Wm = np.column_stack(w_cols)  # cells × outputs (last: overall)
    Am = np.column_stack(a_cols)  # groups × outputs
    psi = result.inffunc if cols.size == result.att.size else result.inffunc[:, cols]
    inf = (Wm.T @ psi.T).T  # units × outputs, column-contiguous without a copy
    for j, g in enumerate(glist):  # group-share terms: w_i · Am[G_i]
        if np.any(Am[j]):
            m = G == g
            inf[m] += w[m, None] * Am[j]
    cl = result.cluster_codes
    se_all = boot.if_se(inf, n, cl)
    se_all[(se_all <= _TINY) | ~np.isfinite(est)] = np.nan
    crit = None
    m_e = 0 if egt is None else egt.size
    if bstrap or (cband and m_e):
        if result.boot_draws is not None and (prm["biters"], prm["seed"], prm["boot_weights"]) == (
            biters,
            seed,
            boot_weights,
        ):
            dc, dg = result.boot_draws[:, cols], result.boot_draws_cohort
        else:
            dc, dg = boot.multiplier_draws(
                (psi, _cohort_weights(G, w, glist)),
                n,
                biters,
                seed,
                cl,
                boot_weights,
            )
        draws = dc @ Wm + dg @ Am
        if bstrap:
            se_all = np.where(np.isfinite(se_all), boot.boot_se(draws), np.nan)
        if cband and m_e:
            ok = np.isfinite(se_all[:-1])
            crit = _checked_crit(boot.uniform_crit(draws[:, :m_e][:, ok], alp), alp)
    if m_e and crit is None:
        crit = _z(alp)

    vc = boot.if_vcov(inf[:, :m_e], n, cl) if m_e else None
    if egt is not None:
        egt = _as_int_if_whole(np.asarray(egt, dtype=float))
    return AggteResult(
        type=type,
        overall_att=est[-1],
        overall_se=float(se_all[-1]),
        egt=egt,
        att_egt=np.array(est[:-1]) if m_e else None,
        se_egt=se_all[:-1] if m_e else None,
        crit_val_egt=crit,
        inf_func_egt=inf[:, :m_e] if m_e else None,
        inf_func_overall=inf[:, -1],
        vcov_egt=vc,
        n_treated_egt=n_tr,
        alp=alp,
        estimator=result.estimator,
        params={
            **prm,
            "bstrap": bstrap,
            "biters": biters,
            "cband": cband,
            "alp": alp,
            "seed": seed,
            "boot_weights": boot_weights,
            "balance_e": balance_e,
            "min_e": min_e,
            "max_e": max_e,
        },
    )


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
