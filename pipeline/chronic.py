"""Chronic absence as the state defines it: a yearly measure per student.

Connecticut counts a student as *chronically absent* in a school year when they were
absent 10% or more of the days they were enrolled that year, for any reason, over all
their schools; Pre-K is excluded (``../shared/background.md``). The panel's monthly
``chronic`` flag (a month's rate at or below 90%) is a different, noisier measure — a
student can be flagged in some months and not be chronically absent over the year — and
is labelled as *not the state's measure* wherever it is shown.

:func:`chronic_absence_yearly` sums a student's membership and absence over the school
year's months from the panel (all schools; the panel's months already add up the
student's schools), leaves out the months the student was in Pre-K, and keeps the
student-years with at least ``min_enrolled_days`` days enrolled (a parameter: a student
enrolled for a few days is not counted by some reporting rules). The flag uses integer
arithmetic, ``10 × absent ≥ enrolled``, so a rate of exactly 90% is chronic absence.
:func:`chronic_absence_rates` is the share of students chronically absent by school year
(and any grouping column).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["STATE_MEASURE_NOTE", "chronic_absence_rates", "chronic_absence_yearly"]

#: How the monthly flag is labelled beside the state's measure.
STATE_MEASURE_NOTE = (
    "monthly flag (attendance at or below 90% in the month); not the state's measure, "
    "which is absence on 10% or more of the days enrolled in the school year"
)

_NEED = ("student_key", "school_year", "grade", "days_membership", "days_present")


def chronic_absence_yearly(
    panel: pd.DataFrame,
    *,
    min_enrolled_days: int = 1,
    exclude_grades: Sequence[str] = ("PK",),
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per student and school year: days enrolled, absent, and the state's flag.

    Parameters
    ----------
    panel : DataFrame
        Student-month panel (``student_key, school_year, grade, days_membership,
        days_present`` and the ``by`` columns).
    min_enrolled_days : int
        Student-years with fewer days enrolled (after the excluded grades) are left out.
    exclude_grades : sequence of str
        Grades whose months are left out (Pre-K).
    by : sequence of str
        Further columns kept, taken from the student's last month in the year (e.g.
        ``leap_district``).

    Returns
    -------
    DataFrame
        ``student_key, school_year, *by, days_enrolled, days_absent, absence_rate,
        chronic_absent`` (``absence_rate`` in percent of days enrolled).
    """
    if int(min_enrolled_days) != min_enrolled_days or min_enrolled_days < 1:
        raise ValueError(
            f"chronic absence: min_enrolled_days must be a positive integer, "
            f"not {min_enrolled_days!r}"
        )
    need = [*_NEED, *by]
    if "school_month" in panel.columns:
        need.append("school_month")
    missing = [c for c in need if c not in panel.columns]
    if missing:
        raise KeyError(f"chronic absence: panel column(s) {missing} missing")
    p = panel[list(dict.fromkeys(need))]
    n = p["days_membership"].to_numpy(dtype=np.int64)
    k = p["days_present"].to_numpy(dtype=np.int64)
    if np.any(k > n) or np.any(n < 0) or np.any(k < 0):
        raise ValueError(
            "chronic absence: panel rows with days_present > days_membership or negative days"
        )
    keep = ~p["grade"].astype(str).isin(list(exclude_grades)).to_numpy()
    p = p.loc[keep]
    if "school_month" in p.columns:
        p = p.sort_values(["student_key", "school_month"], kind="stable")
    g = p.assign(_absent=p["days_membership"].astype("int64") - p["days_present"].astype("int64"))
    g = g.groupby(["student_key", "school_year"], sort=True, observed=True)
    out = g.agg(days_enrolled=("days_membership", "sum"), days_absent=("_absent", "sum"))
    for c in by:
        out[c] = g[c].last()
    out = out.reset_index()
    out["days_enrolled"] = out["days_enrolled"].astype("int64")
    out["days_absent"] = out["days_absent"].astype("int64")
    out = out[out["days_enrolled"] >= min_enrolled_days].reset_index(drop=True)
    out["absence_rate"] = 100.0 * out["days_absent"] / out["days_enrolled"]
    out["chronic_absent"] = 10 * out["days_absent"] >= out["days_enrolled"]
    cols = ["student_key", "school_year", *by, "days_enrolled", "days_absent"]
    return out[[*cols, "absence_rate", "chronic_absent"]]


def chronic_absence_rates(yearly: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Students and the share chronically absent (percent) by school year and ``by``."""
    g = yearly.groupby(["school_year", *by], observed=True)
    out = g.agg(n_students=("student_key", "nunique"), n_chronic=("chronic_absent", "sum"))
    out["n_chronic"] = out["n_chronic"].astype("int64")
    out["chronic_rate"] = 100.0 * out["n_chronic"] / out["n_students"]
    return out.reset_index()
