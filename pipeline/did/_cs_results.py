"""Results objects of :mod:`pipeline.did.cs`: ``ATT(g, t)`` and its aggregations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.did import _cs_boot as boot
from pipeline.did._cs_boot import normal_crit as _z
from pipeline.did.results import EventStudyResult, WaldTest

__all__ = ["ATTgtResult", "AggteResult", "as_int_if_whole"]


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



def as_int_if_whole(a: np.ndarray) -> np.ndarray:
    """``a`` as integers when every value is a whole number (periods, groups)."""
    if a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    return a
