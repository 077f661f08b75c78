"""Intent to treat at the first *attempted* visit, and the effect on families reached.

The headline design matches each student at the month of the first *completed* visit.
Whether a family is reached is not random: if reachable families are those whose
attendance would have recovered anyway, the completed-visit design mistakes reachability
for an effect, and nothing in the data flags it. The month a student is first *referred
and attempted* does not depend on whether the family answered. This module makes the
first attempt the event:

* :func:`attempt_panel` rewrites the panel so that ``first_visit_school_month`` is the
  effective school month of the student's first visit of either outcome (``completed``
  or ``attempted``; data contract, ``home_visits.outcome``), keeping the completed
  visit's month as ``first_completed_school_month``. The panel does not carry visit
  dates, only ``visits_completed_to_date`` and ``visits_attempted_to_date``; the first
  attempt is the first panel row where either count is positive. It is *exact* when the
  student was in membership the month before that row (or the completed-visit month says
  so); otherwise the attempt fell in a month without membership (or before the panel)
  and is known only to lie in the gap — such students are never matched as attempted
  (:func:`itt_design` drops their sets) and, as comparison students, are censored from
  that row on, which is exact for the rows the analysis uses.
* :func:`itt_design` runs the whole matched design on that panel: students matched at
  their first attempt, reached or not, to students not yet attempted; comparison rows
  censored at the comparison student's own first attempt (the stage then imputes their
  later attendance or weights the others, ``estimate.estimands.itt_censoring``,
  :func:`pipeline.censoring_ice.adjust_for_censoring`); the primary estimator on top. Its window average is the **intent-to-treat effect**.
* :func:`bloom` divides the ITT by the share of attempted students reached by each
  event time (Bloom 1984): the **effect on families reached**, under the assumption that
  an attempt without contact changes nothing (exclusion), with a delta-method standard
  error (the design bootstrap, :mod:`pipeline.design_bootstrap`, gives one that also
  carries the share's covariance with the ITT).

The completed-visit effect stays the headline, with its reachability caveat: it is
unbiased only if, among students with the same recorded attendance, being reached is
unrelated to what their attendance would have been.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels

__all__ = ["BloomEffect", "ITTDesign", "attempt_panel", "bloom", "itt_design", "reach_shares"]

_COUNTS = ("visits_completed_to_date", "visits_attempted_to_date")


def attempt_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel with the first *attempted* visit as the event (see module docstring).

    Adds ``first_completed_school_month`` (the original ``first_visit_school_month``) and
    ``attempt_month_exact`` (bool per row, constant within student); replaces
    ``first_visit_school_month`` and ``event_time`` by the first attempt's.
    """
    need = ["student_key", "school_month", "first_visit_school_month", "event_time", *_COUNTS]
    missing = [c for c in need if c not in panel.columns]
    if missing:
        raise KeyError(f"attempt_panel: panel column(s) {missing} missing")
    key = panel["student_key"].to_numpy()
    sm = panel["school_month"].to_numpy(dtype=np.int64)
    if len(sm) > 1:
        same = key[1:] == key[:-1]
        if np.any(same & (sm[1:] <= sm[:-1])):
            raise ValueError("attempt_panel: panel not sorted by student_key, school_month")
    any_visit = np.zeros(len(panel), dtype=bool)
    for c in _COUNTS:
        any_visit |= panel[c].fillna(0).to_numpy(dtype=np.int64) > 0
    codes, _ = pd.factorize(key)
    n_students = int(codes.max()) + 1 if len(codes) else 0
    # first row with a visit to date, per student, and whether the row before it is the
    # month before (then the first attempt is in this row's month exactly)
    pos = np.flatnonzero(any_visit)
    first_pos = np.full(n_students, -1, dtype=np.int64)
    if pos.size:
        c_pos = codes[pos]
        u, i = np.unique(c_pos, return_index=True)
        first_pos[u] = pos[i]
    has = first_pos >= 0
    fp = first_pos[has]
    derived = np.full(n_students, np.nan)
    derived[has] = sm[fp]
    prev_ok = np.zeros(n_students, dtype=bool)
    prev = fp - 1
    ok = prev >= 0
    ok[ok] = (codes[prev[ok]] == codes[fp[ok]]) & (sm[prev[ok]] == sm[fp[ok]] - 1)
    prev_ok[np.flatnonzero(has)] = ok
    fv = panel["first_visit_school_month"].astype("float64").to_numpy()
    fv_student = np.full(n_students, np.nan)
    seen = ~np.isnan(fv)
    fv_student[codes[seen]] = fv[seen]
    # a completed visit in a month without membership: the attempt is at or before it
    earlier = ~np.isnan(fv_student) & (np.isnan(derived) | (fv_student < derived))
    first_attempt = np.where(earlier, fv_student, derived)
    exact = prev_ok & ~earlier
    # a completed visit in the derived month itself pins the attempt month too
    exact |= ~np.isnan(fv_student) & (fv_student == derived)
    out = panel.copy()
    out["first_completed_school_month"] = panel["first_visit_school_month"]
    fa = first_attempt[codes]
    out["first_visit_school_month"] = pd.array(fa, dtype="Float64")
    out["event_time"] = pd.Series(sm - fa, index=panel.index).astype(panel["event_time"].dtype)
    out["attempt_month_exact"] = np.where(np.isnan(fa), True, exact[codes])
    return out


def reach_shares(
    matched: pd.DataFrame,
    *,
    window: tuple[int, int] = (1, 6),
    role: str = "role",
    event_time: str = "stack_event_time",
    completed: str = "first_completed_school_month",
) -> pd.DataFrame:
    """Share of the attempted (treated) students reached by each event time.

    A treated row at event time ``k`` is *reached* when the student's first completed
    visit is at or before that row's school month. Returns ``event_time, n_treated,
    n_reached, share_reached`` for ``k`` in ``window``.
    """
    t = matched[(matched[role] == "treated").to_numpy()]
    k = t[event_time].to_numpy()
    t = t[(k >= window[0]) & (k <= window[1])]
    fc = t[completed].astype("float64").to_numpy()
    reached = ~np.isnan(fc) & (fc <= t["school_month"].to_numpy(dtype=float))
    g = pd.DataFrame({"event_time": t[event_time].to_numpy(), "r": reached.astype(int)})
    out = g.groupby("event_time")["r"].agg(n_treated="size", n_reached="sum").reset_index()
    out["share_reached"] = out["n_reached"] / out["n_treated"]
    return out


@dataclass(frozen=True)
class BloomEffect:
    """The effect on families reached: ITT ÷ share reached (Bloom 1984)."""

    itt: float
    itt_std_error: float
    share_reached: float
    share_std_error: float
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    alpha: float

    def tidy(self) -> pd.DataFrame:
        """One-row frame of the effect and its inputs."""
        return pd.DataFrame([self.__dict__])

    def summary(self) -> str:
        """One line for logs and the report's appendix."""
        return (
            f"effect on families reached {self.estimate:.3f} (SE {self.std_error:.3f}, "
            f"{100 * (1 - self.alpha):.0f}% CI {self.ci_low:.3f} to {self.ci_high:.3f}) = "
            f"ITT {self.itt:.3f} / share reached {self.share_reached:.3f}; assumes an attempt "
            f"without contact changes nothing"
        )


def bloom(
    itt: float,
    itt_se: float,
    shares: pd.DataFrame,
    *,
    alpha: float = 0.05,
    cov: float = 0.0,
) -> BloomEffect:
    """Bloom's adjustment of a window-average ITT by the mean share reached.

    ``shares`` is :func:`reach_shares` over the ITT's window; the share is the equal-weight
    mean over its event times (as the ITT's window average is). Delta method:
    ``Var(I/r) ≈ Var(I)/r² + I² Var(r)/r⁴ − 2 I Cov(I, r)/r³``, with ``Var(r)`` the binomial
    variance of the shares (students as independent) and ``cov`` the ITT–share
    covariance (0 unless a bootstrap supplies it).
    """
    s = shares["share_reached"].to_numpy(dtype=float)
    n = shares["n_treated"].to_numpy(dtype=float)
    if s.size == 0:
        raise ValueError("bloom: no treated rows in the window")
    r = float(s.mean())
    if not r > 0:
        raise ValueError(
            "bloom: nobody reached in the window; the effect on the reached is undefined"
        )
    var_r = float(np.sum(s * (1 - s) / n) / s.size**2)
    var = itt_se**2 / r**2 + itt**2 * var_r / r**4 - 2 * itt * cov / r**3
    se = float(np.sqrt(max(var, 0.0)))
    est = itt / r
    z = float(stats.norm.ppf(1 - alpha / 2))
    return BloomEffect(
        itt, itt_se, r, float(np.sqrt(var_r)), est, se, est - z * se, est + z * se, alpha
    )


@dataclass
class ITTDesign:
    """The matched design at the first attempt: matched stacks and the matching result."""

    panel: pd.DataFrame
    matched: pd.DataFrame
    match: object
    n_dropped_inexact: int


def itt_design(panel: pd.DataFrame, spec: RiskSetSpec | None = None) -> ITTDesign:
    """Risk-set matching at the first attempt and the stacked panels (no estimate yet).

    Matched sets whose attempted student's first-attempt month is not exact are dropped.
    The stacks carry ``first_completed_school_month`` for :func:`reach_shares`; their
    ``censored`` flags and ``first_visit_school_month`` refer to the first attempt, so the
    censoring weights (:func:`pipeline.censoring.ipcw_weights`) model the comparison
    students' own first attempts.
    """
    spec = RiskSetSpec() if spec is None else spec
    ap = attempt_panel(panel)
    res = riskset_match(ap, spec)
    m = res.matches
    inexact = set(ap.loc[~ap["attempt_month_exact"].to_numpy(dtype=bool), "student_key"])
    bad_sets = m.loc[(m["role"] == "treated") & m["student_key"].isin(inexact), "match_id"]
    m = m[~m["match_id"].isin(set(bad_sets))]
    stacked = stack_panels(ap, m, spec.window)
    return ITTDesign(ap, stacked, res, int(bad_sets.nunique()))
