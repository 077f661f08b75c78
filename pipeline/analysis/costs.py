"""Cost-effectiveness of the program (the ingredients method; Levin & McEwan).

The program's cost ``C`` (a total for the period it covers, or built from its ingredients:
visit attempts and completed visits times their unit costs, plus any fixed cost) is set
against what the evaluation estimates:

* **cost per student reached** ``C / N``;
* **cost per additional day attended**: a visited student gains ``θ/100 · d · m`` days
  over the headline window, where ``θ`` is the primary design's average effect on the
  attendance rate (points) over the window's ``m`` school months and ``d`` is the number
  of school days in a school month; the cost per day is ``(C / N) / (θ/100 · d · m)``.
  Days gained after the window are not counted, so the figure errs on the high side;
* **cost per student-month of chronic absence averted** (the monthly flag, not the
  state's yearly measure): the primary design's average effect on the chronic-absence
  indicator ``θ_c`` (points, negative when absence falls) is the reduction in the
  probability that a visited student is chronically absent in a school month of the
  window, so a student is spared ``-θ_c/100 · m`` chronically absent months over the
  window's ``m`` months (counted over the same months as the days); the cost per month
  averted is ``(C / N) / (-θ_c/100 · m)``.

Intervals.  The costs are assumptions, not estimates, so each cost per unit is
``K / θ`` with ``K`` known and ``θ`` the estimate.  ``K / θ`` is monotone in ``θ`` on
either side of zero, so when the effect's confidence interval ``[lo, hi]`` excludes zero
the interval ``[K / hi, K / lo]`` has exactly the effect interval's coverage (Fieller's
interval for a ratio whose numerator is known; the delta method's symmetric interval is
not, and is badly wrong near zero).  When the effect's interval includes zero, the
program may have gained nothing and the cost per unit is unbounded: the interval is
``[K / hi, ∞)`` and flagged ``bounded = False``.  When the estimate itself shows no gain,
no cost per unit is reported.  :func:`ratio_interval` does this;
``tests/test_costs.py`` checks it against simulation from the estimate's sampling
distribution and the arithmetic against a hand-computed case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns of ``reports/tables/cost_effectiveness.csv``.
COST_COLUMNS = [
    "measure",
    "unit",
    "total_cost",
    "students_reached",
    "units_per_student",
    "units_ci_low",
    "units_ci_high",
    "cost_per_unit",
    "ci_low",
    "ci_high",
    "bounded",
    "note",
]
#: Columns of ``reports/tables/cost_sensitivity.csv``.
SENSITIVITY_COLUMNS = ["scenario", "cost_multiplier", *COST_COLUMNS]
#: The three measures, in the order the table lists them.
MEASURES = {
    "per_student": "student reached",
    "per_day": "additional day attended",
    "per_chronic_case": "student-month of chronic absence averted",
}
ILLUSTRATIVE_NOTE = (
    "illustrative: the default costs are the program's public figures set against "
    "effects estimated on a synthetic extract"
)


@dataclass(frozen=True)
class CostConfig:
    """The ``costs`` section of ``params.yaml``.

    Attributes
    ----------
    total_cost
        Dollars spent over ``period`` (with per-visit costs: a fixed cost added to them).
    period
        The period ``total_cost`` covers (text, for the report).
    students_reached
        Students the cost covers; ``None``: the extract's visited students.
    cost_per_attempt, cost_per_completed_visit
        Optional ingredient costs (dollars); when either is set the program cost is
        ``total_cost`` plus the extract's visit attempts without contact and completed
        visits times these, and ``students_reached`` must be ``None``.
    school_days_per_month
        School days in a school month (180 days over 10 months by default).
    cost_multipliers, students_reached_alternatives
        The sensitivity table's grid over cost assumptions.
    """

    total_cost: float = 10_700_000.0
    period: str = "LEAP's first phase (April 2021 onward)"
    students_reached: int | None = 8700
    cost_per_attempt: float | None = None
    cost_per_completed_visit: float | None = None
    school_days_per_month: float = 18.0
    cost_multipliers: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    students_reached_alternatives: tuple[int, ...] = field(default=(8600, 9000))

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> CostConfig:
        """Build from the ``costs`` section; unknown keys are an error naming them."""
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(p) - known)
        if bad:
            raise KeyError(f"params.yaml costs: unknown key(s) {', '.join(bad)}")
        kw = dict(p)
        for k in ("cost_multipliers", "students_reached_alternatives"):
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        cfg = cls(**kw)
        cfg.check()
        return cfg

    @property
    def ingredients(self) -> bool:
        """Whether the cost is built from per-visit ingredient costs."""
        return self.cost_per_attempt is not None or self.cost_per_completed_visit is not None

    def check(self) -> None:
        """Raise ``ValueError`` naming the key when a setting breaks its rule."""
        if not self.total_cost >= 0:
            raise ValueError("params.yaml costs.total_cost: must be >= 0")
        for k in ("cost_per_attempt", "cost_per_completed_visit"):
            v = getattr(self, k)
            if v is not None and not v >= 0:
                raise ValueError(f"params.yaml costs.{k}: must be >= 0 or null")
        if self.students_reached is not None and not self.students_reached > 0:
            raise ValueError("params.yaml costs.students_reached: must be > 0 or null")
        if self.ingredients and self.students_reached is not None:
            raise ValueError(
                "params.yaml costs.students_reached: must be null when per-visit costs are "
                "set (the visits counted and the students reached both come from the extract)"
            )
        if not self.school_days_per_month > 0:
            raise ValueError("params.yaml costs.school_days_per_month: must be > 0")
        if any(not m > 0 for m in self.cost_multipliers):
            raise ValueError("params.yaml costs.cost_multipliers: must all be > 0")


@dataclass(frozen=True)
class Effect:
    """An estimated average effect (points) with its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Effect:
        """From a metrics entry with ``estimate``, ``ci_low`` and ``ci_high``."""
        return cls(float(d["estimate"]), float(d["ci_low"]), float(d["ci_high"]))


def program_cost(cfg: CostConfig, attempts: int = 0, completed: int = 0) -> float:
    """The program's cost: ``total_cost`` plus any ingredient costs of the visits.

    Parameters
    ----------
    cfg
        The cost assumptions.
    attempts, completed
        Visit attempts without contact and completed visits in the extract (used only
        when ``cfg`` sets per-visit costs).

    Returns
    -------
    float
        Dollars.
    """
    cost = float(cfg.total_cost)
    if cfg.cost_per_attempt is not None:
        cost += cfg.cost_per_attempt * attempts
    if cfg.cost_per_completed_visit is not None:
        cost += cfg.cost_per_completed_visit * completed
    return cost


def ratio_interval(k: float, effect: Effect) -> tuple[float, float, float, bool, str]:
    """``k / θ`` with the interval obtained by inverting the effect's interval.

    Parameters
    ----------
    k
        The known numerator (dollars per student divided by units per point of effect).
    effect
        The effect, oriented so that a gain is positive, with its interval.

    Returns
    -------
    tuple
        ``(point, ci_low, ci_high, bounded, note)``; ``point`` is NaN when the estimate
        shows no gain, ``ci_high`` is ``inf`` when the effect's interval reaches zero.
    """
    est, lo, hi = effect.estimate, effect.ci_low, effect.ci_high
    if not est > 0:
        return (math.nan, math.nan, math.nan, False, "no estimated gain: cost per unit undefined")
    if lo > 0:
        return (k / est, k / hi, k / lo, True, "")
    return (
        k / est,
        k / hi,
        math.inf,
        False,
        "the effect's interval includes zero: the cost per unit is unbounded above",
    )


def cost_effectiveness(
    cfg: CostConfig,
    attendance: Effect,
    chronic: Effect,
    att_months: int,
    students_reached: int,
    total_cost: float,
) -> pd.DataFrame:
    """The cost-effectiveness table (:data:`COST_COLUMNS`), one row per measure.

    Parameters
    ----------
    cfg
        The cost assumptions (school days per month).
    attendance
        The average effect on the attendance rate (points) over the headline window.
    chronic
        The average effect on the chronic-absence indicator (points; negative = fewer).
    att_months
        School months in the headline window.
    students_reached
        Students the cost covers.
    total_cost
        The program's cost (:func:`program_cost`).

    Returns
    -------
    pandas.DataFrame
        Measures, units gained per student with their interval, cost per unit with its
        interval, whether it is bounded and a note.
    """
    if not students_reached > 0:
        raise ValueError("cost_effectiveness: students_reached must be > 0")
    if not att_months > 0:
        raise ValueError("cost_effectiveness: att_months must be > 0")
    per_student = total_cost / students_reached
    days_per_point = cfg.school_days_per_month * att_months / 100.0
    # Units gained per student, oriented so that a gain is positive.
    units = {
        "per_day": Effect(
            attendance.estimate * days_per_point,
            attendance.ci_low * days_per_point,
            attendance.ci_high * days_per_point,
        ),
        # months of chronic absence averted over the window, as days are counted over it
        "per_chronic_case": Effect(
            -chronic.estimate * att_months / 100.0,
            -chronic.ci_high * att_months / 100.0,
            -chronic.ci_low * att_months / 100.0,
        ),
    }
    rows = [
        {
            "measure": "per_student",
            "unit": MEASURES["per_student"],
            "units_per_student": 1.0,
            "units_ci_low": 1.0,
            "units_ci_high": 1.0,
            "cost_per_unit": per_student,
            "ci_low": per_student,
            "ci_high": per_student,
            "bounded": True,
            "note": "no sampling uncertainty: cost and count are both taken as known",
        }
    ]
    for m, u in units.items():
        point, lo, hi, bounded, note = ratio_interval(per_student, u)
        rows.append(
            {
                "measure": m,
                "unit": MEASURES[m],
                "units_per_student": u.estimate,
                "units_ci_low": u.ci_low,
                "units_ci_high": u.ci_high,
                "cost_per_unit": point,
                "ci_low": lo,
                "ci_high": hi,
                "bounded": bounded,
                "note": note,
            }
        )
    out = pd.DataFrame(rows)
    out["total_cost"] = float(total_cost)
    out["students_reached"] = int(students_reached)
    return out[COST_COLUMNS]


def cost_sensitivity(
    cfg: CostConfig,
    attendance: Effect,
    chronic: Effect,
    att_months: int,
    students_reached: int,
    total_cost: float,
) -> pd.DataFrame:
    """The cost-effectiveness table over the grid of cost assumptions.

    One block per cost multiplier (the program's cost times it) and one per alternative
    count of students reached (at the base cost); columns :data:`SENSITIVITY_COLUMNS`.
    Arguments as for :func:`cost_effectiveness`.
    """
    frames = []
    for mult in cfg.cost_multipliers:
        t = cost_effectiveness(
            cfg, attendance, chronic, att_months, students_reached, total_cost * mult
        )
        frames.append(t.assign(scenario=f"cost × {mult:g}", cost_multiplier=mult))
    if not cfg.ingredients:
        for n in cfg.students_reached_alternatives:
            t = cost_effectiveness(cfg, attendance, chronic, att_months, int(n), total_cost)
            frames.append(t.assign(scenario=f"{int(n):,} students reached", cost_multiplier=1.0))
    return pd.concat(frames, ignore_index=True)[SENSITIVITY_COLUMNS]


def visit_counts(home_visits: str | Path) -> tuple[int, int, int]:
    """Attempts without contact, completed visits and visited students in an extract.

    Parameters
    ----------
    home_visits
        The ingest stage's ``home_visits.parquet``.

    Returns
    -------
    tuple of int
        ``(attempts, completed, students with a completed visit)``.
    """
    hv = pd.read_parquet(home_visits, columns=["student_key", "outcome"])
    done = hv["outcome"] == "completed"
    return (
        int((hv["outcome"] == "attempted").sum()),
        int(done.sum()),
        int(hv.loc[done, "student_key"].nunique()),
    )


def run_costs(
    cfg: CostConfig,
    metrics: dict[str, Any],
    visited_students: int,
    attempts: int = 0,
    completed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Both cost tables from the estimate stage's metrics.

    Parameters
    ----------
    cfg
        The cost assumptions.
    metrics
        ``reports/metrics.json`` (``att``, ``att_chronic``, ``att_window``).
    visited_students
        Students with a completed visit in the extract (used when
        ``cfg.students_reached`` is ``None``).
    attempts, completed
        The extract's visit counts, for ingredient costs.

    Returns
    -------
    dict
        ``cost_effectiveness`` and ``cost_sensitivity`` data frames.
    """
    for k in ("att", "att_chronic", "att_window"):
        if k not in metrics:
            raise KeyError(f"reports/metrics.json: missing {k!r} (run the estimate stage)")
    w = metrics["att_window"]
    months = int(w[1]) - int(w[0]) + 1
    n = cfg.students_reached if cfg.students_reached is not None else visited_students
    cost = program_cost(cfg, attempts, completed)
    args = (
        cfg,
        Effect.from_dict(metrics["att"]),
        Effect.from_dict(metrics["att_chronic"]),
        months,
        n,
        cost,
    )
    return {
        "cost_effectiveness": cost_effectiveness(*args),
        "cost_sensitivity": cost_sensitivity(*args),
    }
