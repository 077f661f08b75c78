"""Attrition of the analytic sample and Lee (2009) bounds.

The analytic sample is the matched sample at the first visit (event time 0): every
visited student with at least one comparison student, and the comparison students. At a
later event time ``k`` a member is *retained* when the analysis uses their row at ``k``:
they still have membership that month (no exit, no move out of the state's records) and,
for a comparison student, have not been visited themselves (a censored row; the censoring
weights model it, but the row is not in the analysis). Attrition is the share not
retained; *differential* attrition the absolute difference between the visited and the
comparison students' attrition.

:func:`attrition_table` classifies each event time against the What Works Clearinghouse
attrition boundary (Standards Handbook, Version 4.1, Table II.1: the highest differential
attrition, in points, at which a sample with a given overall attrition, rounded to a
whole percent, still has *low* attrition), under the ``cautious`` boundary (the
intervention may affect attrition; the default) or the ``optimistic`` one.

:func:`lee_bounds` gives Lee's (2009) sharp bounds on the effect among students who would
be observed whatever their group: the group with the higher retention has its outcome
distribution trimmed by the share ``p = (q_hi − q_lo) / q_hi`` from above (lower bound)
or from below (upper bound). Weights (matching weights) are supported; the trimming then
removes weight ``p`` of the group's total, splitting the boundary observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.analysis.schemas import ATTRITION_COLUMNS

__all__ = [
    "ATTRITION_COLUMNS",
    "WWC_BOUNDARY",
    "LeeBounds",
    "attrition_table",
    "lee_bounds",
    "lee_bounds_matched",
    "wwc_max_differential",
]

#: WWC Standards Handbook 4.1, Table II.1: overall attrition (whole percent, 0–65) →
#: highest differential attrition (points) with low attrition; cautious boundary values
#: end at 57% (58% or more overall is high attrition whatever the differential).
_CAUTIOUS = (
    5.7, 5.8, 5.9, 5.9, 6.0, 6.1, 6.2, 6.3, 6.3, 6.3, 6.3, 6.2, 6.2, 6.1, 6.0,
    5.9, 5.9, 5.8, 5.7, 5.5, 5.4, 5.3, 5.2, 5.1, 4.9, 4.8, 4.7, 4.5, 4.4, 4.3,
    4.1, 4.0, 3.8, 3.6, 3.5, 3.3, 3.2, 3.1, 2.9, 2.8, 2.6, 2.5, 2.3, 2.1, 2.0,
    1.8, 1.6, 1.5, 1.3, 1.2, 1.0, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.0,
)  # fmt: skip
_OPTIMISTIC = (
    10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.7, 10.8, 10.9, 10.9, 10.9, 10.9,
    10.9, 10.8, 10.8, 10.7, 10.6, 10.5, 10.3, 10.2, 10.0, 9.9, 9.7, 9.5, 9.4,
    9.2, 9.0, 8.8, 8.6, 8.4, 8.2, 8.0, 7.8, 7.6, 7.4, 7.2, 7.0, 6.7, 6.5, 6.3,
    6.0, 5.8, 5.6, 5.3, 5.1, 4.9, 4.6, 4.4, 4.2, 3.9, 3.7, 3.5, 3.2, 3.0, 2.8,
    2.6, 2.3, 2.1, 1.9, 1.6, 1.4, 1.1, 0.9, 0.7, 0.5, 0.3,
)  # fmt: skip
WWC_BOUNDARY = {"cautious": _CAUTIOUS, "optimistic": _OPTIMISTIC}


def wwc_max_differential(overall_pct: float, boundary: str = "cautious") -> float:
    """Highest differential attrition (points) still *low* at ``overall_pct`` percent.

    NaN where the overall attrition is beyond the boundary (any differential is high).
    """
    if boundary not in WWC_BOUNDARY:
        raise ValueError(f"boundary must be 'cautious' or 'optimistic', not {boundary!r}")
    tab = WWC_BOUNDARY[boundary]
    o = int(np.floor(float(overall_pct) + 0.5))  # whole percent, halves up
    if o < 0 or o >= len(tab):
        return float("nan")
    return float(tab[o])


def _analytic_sample(d, match_id, unit, role, event_time) -> pd.DataFrame:
    """Rows at event time 0 of the sets whose visited and comparison students are there."""
    members = d[d[event_time] == 0].drop_duplicates([match_id, unit])
    ok = members.groupby(match_id)[role].agg(lambda r: {"treated", "comparison"} <= set(r))
    return members[members[match_id].map(ok).to_numpy(dtype=bool)]


def attrition_table(
    matched: pd.DataFrame,
    *,
    event_times: tuple[int, int] = (1, 12),
    boundary: str = "cautious",
    unit: str = "student_key",
    match_id: str = "match_id",
    role: str = "role",
    event_time: str = "stack_event_time",
    censored: str | None = "censored",
) -> pd.DataFrame:
    """Overall and differential attrition of the analytic sample per event time.

    Parameters
    ----------
    matched : DataFrame
        Stacked matched panels (``matched.parquet``): one row per matched-set member and
        month in membership.
    event_times : (int, int)
        Inclusive range of event times tabulated.
    boundary : {"cautious", "optimistic"}
        The WWC boundary the attrition is classified against.
    unit, match_id, role, event_time, censored : str
        Column names (``censored``: comparison rows at or after their own first visit;
        ``None`` to count them as retained).

    Returns
    -------
    DataFrame
        One row per event time, columns :data:`ATTRITION_COLUMNS`; rates in percent;
        ``wwc_attrition`` is ``low`` or ``high``.
    """
    if boundary not in WWC_BOUNDARY:
        raise ValueError(f"boundary must be 'cautious' or 'optimistic', not {boundary!r}")
    need = [unit, match_id, role, event_time] + ([censored] if censored else [])
    missing = [c for c in need if c not in matched.columns]
    if missing:
        raise KeyError(f"attrition_table: column(s) {missing} missing from the matched data")
    d = matched[need]
    base = _analytic_sample(d, match_id, unit, role, event_time)[[match_id, unit, role]]
    n_t = int((base[role] == "treated").sum())
    n_c = int((base[role] == "comparison").sum())
    lo, hi = int(event_times[0]), int(event_times[1])
    later = d[(d[event_time] >= lo) & (d[event_time] <= hi)]
    later = later.merge(base[[match_id, unit]], on=[match_id, unit], how="inner")
    cens = later[censored].to_numpy(dtype=bool) if censored else np.zeros(len(later), bool)
    is_t = (later[role] == "treated").to_numpy()
    k = later[event_time].to_numpy()
    ks = np.arange(lo, hi + 1)
    ret_t = np.array([np.sum(is_t & (k == e)) for e in ks])
    ret_c = np.array([np.sum(~is_t & ~cens & (k == e)) for e in ks])
    cen_c = np.array([np.sum(~is_t & cens & (k == e)) for e in ks])
    with np.errstate(invalid="ignore", divide="ignore"):
        a_t = 100.0 * (1.0 - ret_t / n_t)
        a_c = 100.0 * (1.0 - ret_c / n_c)
        overall = 100.0 * (1.0 - (ret_t + ret_c) / (n_t + n_c))
    diff = np.abs(a_t - a_c)
    maxd = np.array([wwc_max_differential(o, boundary) for o in overall])
    low = ~np.isnan(maxd) & (diff <= maxd + 1e-9)
    return pd.DataFrame(
        {
            "event_time": ks,
            "n_treated": n_t,
            "n_comparison": n_c,
            "retained_treated": ret_t,
            "retained_comparison": ret_c,
            "censored_comparison": cen_c,
            "attrition_treated": a_t,
            "attrition_comparison": a_c,
            "overall_attrition": overall,
            "differential_attrition": diff,
            "boundary": boundary,
            "max_differential": maxd,
            "wwc_attrition": np.where(low, "low", "high"),
        }
    )[list(ATTRITION_COLUMNS)]


@dataclass(frozen=True)
class LeeBounds:
    """Lee (2009) bounds on the effect among always-observed students."""

    lower: float
    upper: float
    trimmed_group: str
    trim_share: float
    retention_treated: float
    retention_comparison: float
    naive: float

    def tidy(self) -> pd.DataFrame:
        """One-row frame of the bounds and their inputs."""
        return pd.DataFrame([self.__dict__])

    def summary(self) -> str:
        """One line: bounds, trimmed group and share, the untrimmed difference."""
        return (
            f"Lee bounds [{self.lower:.3f}, {self.upper:.3f}] (trimmed {self.trim_share:.1%} "
            f"of the {self.trimmed_group} group's observed outcomes; retention "
            f"{self.retention_treated:.1%} visited, {self.retention_comparison:.1%} comparison; "
            f"untrimmed difference {self.naive:.3f})"
        )


def _trimmed_mean(y: np.ndarray, w: np.ndarray, p: float, drop_top: bool) -> float:
    """Weighted mean of ``y`` after removing weight share ``p`` from the top or bottom."""
    order = np.argsort(-y if drop_top else y, kind="stable")
    y, w = y[order], w[order]
    remove = p * w.sum()
    cum = np.cumsum(w)
    # weight each observation keeps: all of it beyond the removed mass, a part at the edge
    keep = np.clip(cum - remove, 0.0, None)
    keep = np.minimum(keep, w)
    return float(np.sum(keep * y) / np.sum(keep))


def lee_bounds(
    y: np.ndarray,
    observed: np.ndarray,
    treated: np.ndarray,
    weights: np.ndarray | None = None,
) -> LeeBounds:
    """Lee (2009) trimming bounds on the treated-minus-comparison mean difference.

    Parameters
    ----------
    y : array
        Outcome (ignored where not ``observed``).
    observed : array of bool
        Whether the outcome is observed (not attrited).
    treated : array of bool
        Group indicator.
    weights : array, optional
        Design weights (default 1).

    Returns
    -------
    LeeBounds
    """
    y = np.asarray(y, dtype=float)
    obs = np.asarray(observed, dtype=bool)
    t = np.asarray(treated, dtype=bool)
    w = np.ones(y.size) if weights is None else np.asarray(weights, dtype=float)
    if not (y.size == obs.size == t.size == w.size):
        raise ValueError("lee_bounds: y, observed, treated and weights differ in length")
    if np.any(obs & np.isnan(y)):
        raise ValueError("lee_bounds: observed outcomes must not be missing")
    groups = {}
    for name, g in (("treated", t), ("comparison", ~t)):
        if not (g & obs).any():
            raise ValueError(f"lee_bounds: no observed outcome in the {name} group")
        groups[name] = (w[g & obs].sum() / w[g].sum(), y[g & obs], w[g & obs])
    q_t, y_t, w_t = groups["treated"]
    q_c, y_c, w_c = groups["comparison"]
    m_t = float(np.sum(w_t * y_t) / w_t.sum())
    m_c = float(np.sum(w_c * y_c) / w_c.sum())
    if q_t >= q_c:
        p = (q_t - q_c) / q_t
        lower = _trimmed_mean(y_t, w_t, p, drop_top=True) - m_c
        upper = _trimmed_mean(y_t, w_t, p, drop_top=False) - m_c
        trimmed = "treated"
    else:
        p = (q_c - q_t) / q_c
        lower = m_t - _trimmed_mean(y_c, w_c, p, drop_top=False)
        upper = m_t - _trimmed_mean(y_c, w_c, p, drop_top=True)
        trimmed = "comparison"
    return LeeBounds(float(lower), float(upper), trimmed, float(p), q_t, q_c, m_t - m_c)


def lee_bounds_matched(
    matched: pd.DataFrame,
    *,
    yname: str = "attendance_rate",
    window: tuple[int, int] = (1, 6),
    unit: str = "student_key",
    match_id: str = "match_id",
    role: str = "role",
    event_time: str = "stack_event_time",
    censored: str | None = "censored",
    weight: str | None = "weight",
) -> LeeBounds:
    """Lee bounds for the headline window on the matched sample.

    Each member of the analytic sample (as in :func:`attrition_table`) has as outcome the
    mean of ``yname`` over its retained rows in ``window``, and counts as observed when it
    is retained at every event time of the window. Members are weighted by their matching
    weight. The bounds are on the raw matched difference (no covariate adjustment): read
    their width beside the headline, not their level.
    """
    need = [unit, match_id, role, event_time, yname]
    need += [c for c in (censored, weight) if c]
    missing = [c for c in need if c not in matched.columns]
    if missing:
        raise KeyError(f"lee_bounds_matched: column(s) {missing} missing from the matched data")
    d = matched[need]
    base = _analytic_sample(d, match_id, unit, role, event_time)
    lo, hi = window
    post = d[(d[event_time] >= lo) & (d[event_time] <= hi)]
    if censored:
        post = post[~post[censored].to_numpy(dtype=bool)]
    agg = post.groupby([match_id, unit])[yname].agg(["mean", "size"])
    b = base.set_index([match_id, unit])
    agg = agg.reindex(b.index)
    n_months = hi - lo + 1
    observed = agg["size"].fillna(0).to_numpy() == n_months
    y = agg["mean"].to_numpy(dtype=float)
    y = np.where(observed, y, 0.0)
    w = b[weight].to_numpy(dtype=float) if weight else None
    return lee_bounds(y, observed, (b[role] == "treated").to_numpy(), w)
