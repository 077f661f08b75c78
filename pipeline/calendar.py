"""School calendar arithmetic: school years, school months and event time.

A *school year* ``YYYY-YY`` runs from July 1 to June 30.  *School months* are the
months with instruction, September through June; July and August do not exist in
school-month time.  Every month with instruction gets an absolute integer index::

    school_month_index(2020, 9) == 200   # September 2020
    school_month_index(2021, 6) == 209   # June 2021
    school_month_index(2021, 9) == 210   # September 2021 (the summer is skipped)

so that event time is a plain difference of indices: the month before September
2021 in event time is June 2021.  The index is ``10 * (start year - 2000) + k``
with ``k = 0`` for September … ``k = 9`` for June; it is the same for every extract.

A visit in July or August (a *summer* visit) happens when no school month exists;
it is placed at the first school month after it (September), which is the first
month in which it can change attendance.  :func:`effective_school_month` is the one
definition of that rule used across the pipeline.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

ORIGIN_YEAR = 2000
SCHOOL_MONTHS = (9, 10, 11, 12, 1, 2, 3, 4, 5, 6)
_POS = {m: k for k, m in enumerate(SCHOOL_MONTHS)}
SCHOOL_YEAR_RE = re.compile(r"^(\d{4})-(\d{2})$")


def school_year_start(school_year: str) -> int:
    """``'2021-22'`` → ``2021``; raises ``ValueError`` for a malformed or inconsistent label."""
    m = SCHOOL_YEAR_RE.match(str(school_year))
    if not m:
        raise ValueError(f"school year {school_year!r} is not of the form YYYY-YY")
    start = int(m.group(1))
    if (start + 1) % 100 != int(m.group(2)):
        raise ValueError(f"school year {school_year!r}: second part must be the next year")
    return start


def school_year_label(start_year: int) -> str:
    """``2021`` → ``'2021-22'``."""
    return f"{start_year}-{(start_year + 1) % 100:02d}"


def school_year_of(year, month):
    """Start year of the school year (July–June) containing ``year``-``month`` (vectorized)."""
    year = np.asarray(year)
    month = np.asarray(month)
    return np.where(month >= 7, year, year - 1)


def school_month_index(year, month):
    """Absolute school-month index (vectorized); ``-1`` for July and August."""
    year = np.asarray(year, dtype=np.int64)
    month = np.asarray(month, dtype=np.int64)
    start = np.where(month >= 7, year, year - 1)
    pos = np.where(month >= 9, month - 9, month + 3)
    idx = 10 * (start - ORIGIN_YEAR) + pos
    return np.where((month == 7) | (month == 8), -1, idx)


def index_to_year_month(idx):
    """Inverse of :func:`school_month_index`: returns ``(year, month)`` arrays."""
    idx = np.asarray(idx, dtype=np.int64)
    start = idx // 10 + ORIGIN_YEAR
    pos = idx % 10
    month = np.where(pos <= 3, pos + 9, pos - 3)
    year = np.where(pos <= 3, start, start + 1)
    return year, month


def index_to_month_label(idx) -> np.ndarray:
    """School-month index → ``'YYYY-MM'`` labels."""
    year, month = index_to_year_month(idx)
    return np.array([f"{y:04d}-{m:02d}" for y, m in zip(year.ravel(), month.ravel(), strict=True)])


def effective_school_month(year, month):
    """School month in which a visit in ``year``-``month`` takes effect (vectorized).

    A month with instruction is its own effective month; July and August map to the
    following September.
    """
    year = np.asarray(year, dtype=np.int64)
    month = np.asarray(month, dtype=np.int64)
    summer = (month == 7) | (month == 8)
    return school_month_index(year, np.where(summer, 9, month))


def cohort_label(year, month) -> np.ndarray:
    """Cohort of a first visit: ``'summer YYYY'`` for July–August, else the school year."""
    year = np.asarray(year, dtype=np.int64)
    month = np.asarray(month, dtype=np.int64)
    start = school_year_of(year, month)
    out = np.empty(year.shape, dtype=object)
    for i, (y, m, s) in enumerate(zip(year.ravel(), month.ravel(), start.ravel(), strict=True)):
        out.ravel()[i] = f"summer {y}" if m in (7, 8) else school_year_label(int(s))
    return out


def grade_band(grade: pd.Series) -> pd.Series:
    """``PK``–``5`` → ``'PK-5'``, ``6``–``12`` → ``'6-12'`` (the state's reporting bands)."""
    num = grade_number(grade)
    return pd.Series(np.where(num >= 6, "6-12", "PK-5"), index=grade.index, dtype=object)


def grade_number(grade: pd.Series) -> pd.Series:
    """Grade labels → integers (``PK`` = -1, ``K`` = 0, ``1`` … ``12``)."""
    mapping = {"PK": -1, "K": 0, **{str(g): g for g in range(1, 13)}}
    return grade.astype(str).map(mapping).astype("Int64")


# --- an instructional calendar for synthetic extracts ---------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> pd.Timestamp:
    first = pd.Timestamp(year=year, month=month, day=1)
    offset = (weekday - first.weekday()) % 7
    return first + pd.Timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> pd.Timestamp:
    last = pd.Timestamp(year=year, month=month, day=1) + pd.offsets.MonthEnd(0)
    return last - pd.Timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> pd.Timestamp:
    # Anonymous Gregorian algorithm.
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return pd.Timestamp(year=year, month=month, day=day + 1)


def instructional_days(start_year: int, min_days: int = 181) -> pd.DatetimeIndex:
    """School days of a typical Connecticut-style calendar for one school year.

    Weekdays from the day after Labor Day to the day the ``min_days``-th school day is
    reached (mid-June), less federal and state holidays, Thanksgiving (Wednesday to
    Friday), a winter break (December 24 to January 1), a February break day and an
    April break week.  Connecticut requires at least 180 days.
    """
    y0, y1 = start_year, start_year + 1
    start = _nth_weekday(y0, 9, 0, 1) + pd.Timedelta(days=1)  # day after Labor Day
    closed: set[pd.Timestamp] = {
        _nth_weekday(y0, 10, 0, 2),  # Indigenous Peoples' / Columbus Day
        pd.Timestamp(y0, 11, 11),  # Veterans Day
        pd.Timestamp(y1, 1, 1),
        _nth_weekday(y1, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(y1, 2, 0, 3),  # Presidents' Day
        _nth_weekday(y1, 2, 0, 3) - pd.Timedelta(days=3),  # the Friday before
        _easter(y1) - pd.Timedelta(days=2),  # Good Friday
        _last_weekday(y1, 5, 0),  # Memorial Day
        pd.Timestamp(y1, 6, 19),  # Juneteenth
    }
    thanksgiving = _nth_weekday(y0, 11, 3, 4)
    closed |= {thanksgiving + pd.Timedelta(days=d) for d in (-1, 0, 1)}
    closed |= set(pd.date_range(pd.Timestamp(y0, 12, 24), pd.Timestamp(y1, 1, 1)))
    april = _nth_weekday(y1, 4, 0, 2)
    closed |= set(pd.date_range(april, april + pd.Timedelta(days=4)))
    days = pd.bdate_range(start, pd.Timestamp(y1, 6, 30))
    days = days[~days.isin(list(closed))]
    if len(days) < min_days:
        raise ValueError(f"{school_year_label(start_year)}: only {len(days)} school days")
    return days[:min_days]
