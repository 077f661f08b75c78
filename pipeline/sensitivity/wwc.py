"""What Works Clearinghouse evidence standards for a matched comparison-group design.

Encodes, from the WWC *Procedures and Standards Handbook, version 5.0* (2022):

* **Attrition** (chapter on randomized controlled trials): overall attrition (share of
  the sample at assignment missing from the analytic sample) and differential attrition
  (absolute difference of the two groups' rates) against the boundary of the largest
  differential attrition still counted as low, for overall attrition 0–65 % under the
  *cautious* and *optimistic* assumptions. The values in :data:`ATTRITION_BOUNDARY`
  (percentage points; under the cautious assumption overall attrition of 58 % or more is
  high for any differential) are the Standards Handbook v4.1 Table II.1 boundary, which
  v5.0's attrition standard uses; they were transcribed from a public implementation of
  that table and spot-checked against it, not re-read from the v5.0 PDF — check them
  against the handbook before publication.
* **Baseline equivalence** on the analytic sample (v5.0, the group-design standards'
  section on baseline equivalence; the thresholds are unchanged from v4.1):
  ``|g| ≤ 0.05`` satisfies the standard; ``0.05 < |g| ≤ 0.25`` satisfies it only with
  statistical adjustment for that characteristic in the impact model; ``|g| > 0.25``
  fails (Hedges' g for continuous characteristics, the Cox index for dichotomous ones).
  Equivalence is required on the characteristics the review protocol names — for
  attendance outcomes a pre-intervention measure of attendance
  (:data:`pipeline.sensitivity.config.WWC_REQUIRED_MEASURES`); other characteristics are
  reported but do not enter the rating.  Where the extract holds several measures of the
  required characteristic (the recent months, the prior-year rate, the prior-year tier),
  every one is checked and one that fails at any reported event time fails the
  requirement: the handbook applies a failure of one baseline measure to every finding
  in its domain (the conservative reading; WWC group-design training, module 7, part 3,
  "how non-equivalence in one baseline measure affects outcomes in the same domain").
  A measure the impact model does not include needs ``|g| ≤ 0.05``.
* **Rating**: a quasi-experimental design (such as this matched comparison) can at most
  *Meet WWC Standards With Reservations*, and only when baseline equivalence is
  established on the analytic sample for every required measure; otherwise it *Does Not
  Meet WWC Standards*.  An RCT with low attrition can *Meet WWC Standards Without
  Reservations*; a high-attrition RCT is reviewed as a quasi-experiment. Attrition is
  reported here for a quasi-experimental design as information; it does not enter its
  rating.

The section citations were checked against public summaries of v5.0 (the thresholds,
the Cox index for dichotomous characteristics, the analytic-sample requirement), not
re-read from the v5.0 PDF on this machine; the attrition boundary likewise (above).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["ATTRITION_BOUNDARY", "attrition_row", "baseline_equivalence", "wwc_rating",
           "wwc_table"]

_CAUTIOUS = [
    5.7, 5.8, 5.9, 5.9, 6.0, 6.1, 6.2, 6.3, 6.3, 6.3, 6.3, 6.2, 6.2, 6.1, 6.0,
    5.9, 5.9, 5.8, 5.7, 5.5, 5.4, 5.3, 5.2, 5.1, 4.9, 4.8, 4.7, 4.5, 4.4, 4.3,
    4.1, 4.0, 3.8, 3.6, 3.5, 3.3, 3.2, 3.1, 2.9, 2.8, 2.6, 2.5, 2.3, 2.1, 2.0,
    1.8, 1.6, 1.5, 1.3, 1.2, 1.0, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.0,
    *([np.nan] * 8),
]
_OPTIMISTIC = [
    10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.7, 10.8, 10.9, 10.9, 10.9, 10.9,
    10.9, 10.8, 10.8, 10.7, 10.6, 10.5, 10.3, 10.2, 10.0, 9.9, 9.7, 9.5, 9.4,
    9.2, 9.0, 8.8, 8.6, 8.4, 8.2, 8.0, 7.8, 7.6, 7.4, 7.2, 7.0, 6.7, 6.5, 6.3,
    6.0, 5.8, 5.6, 5.3, 5.1, 4.9, 4.6, 4.4, 4.2, 3.9, 3.7, 3.5, 3.2, 3.0, 2.8,
    2.6, 2.3, 2.1, 1.9, 1.6, 1.4, 1.1, 0.9, 0.7, 0.5, 0.3,
]
#: Largest differential attrition (percentage points) with low attrition, by overall
#: attrition 0–65 % (rows), under each assumption (WWC Standards Handbook v4.1 Table
#: II.1, kept in v5.0).
ATTRITION_BOUNDARY = pd.DataFrame(
    {"overall_pct": np.arange(66), "cautious": _CAUTIOUS, "optimistic": _OPTIMISTIC}
).set_index("overall_pct")

EQUIV_SATISFIED = 0.05
EQUIV_ADJUST = 0.25


def attrition_row(n_assigned_t: int, n_analytic_t: int, n_assigned_c: int, n_analytic_c: int,
                  boundary: str = "cautious") -> dict:
    """Overall and differential attrition and whether it is low under ``boundary``."""
    if boundary not in ("cautious", "optimistic"):
        raise ValueError("attrition_row: boundary must be 'cautious' or 'optimistic'")
    for a, k in ((n_assigned_t, n_analytic_t), (n_assigned_c, n_analytic_c)):
        if a <= 0 or k < 0 or k > a:
            raise ValueError(f"attrition_row: analytic count {k} must be in [0, {a}]")
    at = 1 - n_analytic_t / n_assigned_t
    ac = 1 - n_analytic_c / n_assigned_c
    overall = 1 - (n_analytic_t + n_analytic_c) / (n_assigned_t + n_assigned_c)
    diff = abs(at - ac)
    pct = int(round(overall * 100))
    limit = ATTRITION_BOUNDARY[boundary].get(pct, np.nan) if pct <= 65 else np.nan
    low = bool(np.isfinite(limit) and diff * 100 <= limit + 1e-9)
    return {
        "attrition_treated": at, "attrition_comparison": ac, "overall_attrition": overall,
        "differential_attrition": diff, "boundary": boundary,
        "max_differential": limit / 100 if np.isfinite(limit) else np.nan,
        "attrition_level": "low" if low else "high",
    }


def baseline_equivalence(g: float, adjusted: bool) -> tuple[str, str]:
    """WWC baseline-equivalence category and reason for one characteristic's ``g``."""
    a = abs(g)
    if not np.isfinite(a):
        return "not assessed", "effect size not computable"
    if a <= EQUIV_SATISFIED:
        return "satisfied", f"|g| = {a:.3f} <= {EQUIV_SATISFIED}"
    if a <= EQUIV_ADJUST:
        if adjusted:
            return "satisfied with adjustment", (
                f"|g| = {a:.3f} in ({EQUIV_SATISFIED}, {EQUIV_ADJUST}] and the impact model "
                "adjusts for it")
        return "requires adjustment", (
            f"|g| = {a:.3f} in ({EQUIV_SATISFIED}, {EQUIV_ADJUST}] and the impact model does "
            "not adjust for it")
    return "not satisfied", f"|g| = {a:.3f} > {EQUIV_ADJUST}"


def wwc_rating(design: str, equivalence: Iterable[str], attrition_level: str | None) -> tuple[str, str]:
    """The rating the evidence would earn and its reason.

    Parameters
    ----------
    design
        ``"qed"`` (quasi-experimental, e.g. matched comparison) or ``"rct"``.
    equivalence
        Baseline-equivalence categories of every *required* measure at every reported
        event time (other characteristics do not enter the rating).
    attrition_level
        ``"low"`` or ``"high"`` (RCTs), ignored for a quasi-experimental design.
    """
    eq = list(equivalence)
    bad = [e for e in eq if e in ("not satisfied", "requires adjustment", "not assessed")]
    if design == "rct" and attrition_level == "low":
        return ("Meets WWC Standards Without Reservations",
                "randomized design with low attrition")
    why = ("quasi-experimental design" if design == "qed"
           else "randomized design with high attrition, reviewed as a quasi-experiment")
    if not eq:
        return "Does Not Meet WWC Standards", f"{why}; baseline equivalence not assessed"
    if bad:
        counts = ", ".join(f"{bad.count(c)} {c}" for c in sorted(set(bad)))
        return ("Does Not Meet WWC Standards",
                f"{why}; baseline equivalence on the required pre-intervention attendance "
                f"measures not established on the analytic sample ({len(bad)} of {len(eq)} "
                f"comparisons: {counts}); one failing measure fails every finding in the "
                "domain")
    return ("Meets WWC Standards With Reservations",
            f"{why}; baseline equivalence established on the analytic sample for all "
            f"{len(eq)} comparisons of the required pre-intervention attendance measures "
            "(the highest rating a quasi-experiment can earn)")


def wwc_table(equivalence: pd.DataFrame, attrition: dict | None, design: str = "qed") -> pd.DataFrame:
    """The WWC standards table: one row per equivalence check plus attrition and rating rows.

    ``equivalence`` has columns ``event_time, characteristic, g, adjusted`` and optionally
    ``required`` (default: every row is a required measure).  Returns columns ``item,
    event_time, characteristic, value, category, reason, required``; the rating rests on
    the required rows only.
    """
    need = {"event_time", "characteristic", "g", "adjusted"}
    if not need <= set(equivalence.columns):
        raise ValueError(f"wwc_table: equivalence needs columns {sorted(need)}")
    req = (equivalence["required"].astype(bool) if "required" in equivalence.columns
           else pd.Series(True, index=equivalence.index))
    rows = []
    for r, q in zip(equivalence.itertuples(), req, strict=True):
        cat, why = baseline_equivalence(float(r.g), bool(r.adjusted))
        rows.append({"item": "baseline equivalence", "event_time": r.event_time,
                     "characteristic": r.characteristic, "value": float(r.g),
                     "category": cat, "reason": why, "required": bool(q)})
    if attrition is not None:
        for k in ("overall_attrition", "differential_attrition"):
            rows.append({"item": k.replace("_", " "), "event_time": np.nan,
                         "characteristic": "", "value": attrition[k],
                         "category": attrition["attrition_level"],
                         "reason": f"{attrition['boundary']} boundary: at most "
                                   f"{attrition['max_differential']:.3f} differential",
                         "required": False})
    rating, reason = wwc_rating(design, [r["category"] for r in rows
                                         if r["item"] == "baseline equivalence" and r["required"]],
                                None if attrition is None else attrition["attrition_level"])
    rows.append({"item": "rating", "event_time": np.nan, "characteristic": "",
                 "value": np.nan, "category": rating, "reason": reason, "required": False})
    return pd.DataFrame(rows, columns=["item", "event_time", "characteristic", "value",
                                       "category", "reason", "required"])
