"""Tiny valid contract extracts for tests (reusable by any test module).

``valid_tables()`` returns the tables of a small extract that breaks no rule of the data
contract, as data frames of text (IDs with leading zeros, both attendance forms: the
monthly table is the exact aggregate of the daily one).  ``write_extract()`` writes
tables to a folder as CSV or Parquet with one attendance form; ``make_extract()`` does
both.  Mutate the frames between the two calls to plant faults::

    tables = valid_tables()
    tables["students"].loc[0, "sex"] = "Q"
    path = write_extract(tmp_path / "x", tables, fmt="csv", form="monthly")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import calendar as cal

#: Raw student IDs of the tiny extract (leading zeros on purpose).
STUDENT_IDS = ("000101", "000102", "000103", "000104", "000105", "000106")

# (student, school_year, district, school, grade, entry, exit or "")
_SPELLS = [
    ("000101", "2020-21", "001", "0011", "3", "2020-09-08", ""),
    ("000101", "2021-22", "001", "0011", "4", "2021-07-01", ""),
    ("000102", "2020-21", "001", "0011", "7", "2020-09-08", ""),
    ("000102", "2021-22", "001", "0011", "8", "2021-09-08", "2022-01-14"),
    ("000102", "2021-22", "001", "0012", "8", "2022-01-18", ""),
    ("000103", "2020-21", "002", "0021", "K", "2020-09-08", ""),
    ("000103", "2021-22", "002", "0021", "1", "2021-09-08", ""),
    ("000104", "2020-21", "002", "0021", "10", "2020-09-08", "2021-06-30"),
    ("000104", "2021-22", "001", "0012", "11", "2021-09-08", ""),
    ("000105", "2021-22", "001", "0011", "PK", "2021-10-04", ""),
    ("000106", "2020-21", "002", "0021", "5", "2020-09-08", "2021-03-26"),
]

_VISITS = [
    ("V0001", "000101", "001", "2021-04-12", "completed", "in_person"),
    ("V0002", "000101", "001", "2021-04-06", "attempted", "phone"),
    ("V0003", "000101", "001", "2021-07-20", "completed", "virtual"),
    ("V0004", "000102", "001", "2021-10-05", "completed", "phone"),
    ("V0005", "000102", "001", "2022-02-01", "completed", ""),
    ("V0006", "000104", "001", "2022-02-01", "attempted", "in_person"),
    ("V0007", "000105", "001", "2021-11-09", "completed", "in_person"),
]


def valid_tables(seed: int = 1) -> dict[str, pd.DataFrame]:
    """Tables of a tiny valid extract (text values; both attendance forms).

    Two districts (``001`` runs the program, ``002`` does not), six students over the
    school years 2020-21 and 2021-22, school changes mid-year, a summer visit covered by
    an enrollment spell starting July 1, and daily attendance on the instructional days of
    :func:`pipeline.calendar.instructional_days` within each spell.
    """
    rng = np.random.default_rng(seed)
    districts = pd.DataFrame(
        {
            "district_code": ["001", "002"],
            "district_name": ["Alpha", "Beta"],
            "leap": ["true", "false"],
        }
    )
    students = pd.DataFrame(
        {
            "student_id": list(STUDENT_IDS),
            "sex": ["F", "M", "X", "F", "M", "F"],
            "race_ethnicity": ["HISPANIC", "BLACK", "WHITE", "ASIAN", "MULTI", "AIAN"],
        }
    )
    enr = pd.DataFrame(
        _SPELLS,
        columns=[
            "student_id",
            "school_year",
            "district_code",
            "school_code",
            "grade",
            "entry_date",
            "exit_date",
        ],
    )
    enr["frl"] = [
        "true",
        "true",
        "false",
        "false",
        "false",
        "true",
        "true",
        "false",
        "false",
        "true",
        "false",
    ]
    enr["ell"] = ["false"] * len(enr)
    enr["swd"] = ["false", "false", "true", "true", "true"] + ["false"] * (len(enr) - 5)

    days = {sy: cal.instructional_days(sy) for sy in (2020, 2021)}
    rows = []
    for sp in _SPELLS:
        sid, sy, dist, school, _, entry, exit_ = sp
        start = cal.school_year_start(sy)
        d = days[start]
        end = pd.Timestamp(exit_) if exit_ else pd.Timestamp(start + 1, 6, 30)
        d = d[(d >= pd.Timestamp(entry)) & (d <= end)]
        p_present = rng.uniform(0.8, 0.99)
        present = rng.random(len(d)) < p_present
        rows.append(
            pd.DataFrame(
                {
                    "student_id": sid,
                    "district_code": dist,
                    "school_code": school,
                    "date": d.strftime("%Y-%m-%d"),
                    "present": np.where(present, "true", "false"),
                }
            )
        )
    daily = pd.concat(rows, ignore_index=True)
    visits = pd.DataFrame(
        _VISITS,
        columns=["visit_id", "student_id", "district_code", "visit_date", "outcome", "mode"],
    )
    return {
        "districts": districts,
        "students": students,
        "enrollment": enr,
        "attendance_daily": daily,
        "attendance_monthly": monthly_from_daily(daily),
        "home_visits": visits,
    }


def monthly_from_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """The contract's aggregation of daily rows (text frame) to the monthly form, in pandas."""
    d = daily.copy()
    d["month"] = d["date"].str[:7]
    yr = d["month"].str[:4].astype(int)
    mo = d["month"].str[5:7].astype(int)
    start = np.where(mo >= 7, yr, yr - 1)
    d["school_year"] = [cal.school_year_label(int(s)) for s in start]
    d["p"] = d["present"].str.lower().isin(["true", "1", "y", "yes"]).astype(int)
    g = (
        d.groupby(["student_id", "school_year", "district_code", "school_code", "month"], sort=True)
        .agg(days_membership=("p", "size"), days_present=("p", "sum"))
        .reset_index()
    )
    g["days_membership"] = g["days_membership"].astype(str)
    g["days_present"] = g["days_present"].astype(str)
    return g


def write_extract(
    path: str | Path,
    tables: dict[str, pd.DataFrame],
    fmt: str | dict[str, str] = "csv",
    form: str = "monthly",
    synthetic: bool = True,
) -> Path:
    """Write tables as an extract folder.

    Parameters
    ----------
    fmt
        ``"csv"`` or ``"parquet"``, or ``{table: fmt}`` (default csv for the others).
    form
        ``"monthly"`` or ``"daily"``: which attendance table to write (the other is
        skipped); ``"both"``/``"none"`` to plant that file-level fault.
    synthetic
        Write ``truth.json`` with ``"synthetic": true`` (the extract then runs with the
        public demo key).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    skip = {
        "monthly": {"attendance_daily"},
        "daily": {"attendance_monthly"},
        "both": set(),
        "none": {"attendance_daily", "attendance_monthly"},
    }[form]
    for name, df in tables.items():
        if name in skip or df is None:
            continue
        f = fmt.get(name, "csv") if isinstance(fmt, dict) else fmt
        if f == "csv":
            df.to_csv(path / f"{name}.csv", index=False, lineterminator="\n")
        else:
            df.astype(object).where(df.notna(), None).astype("string").to_parquet(
                path / f"{name}.parquet", index=False
            )
    if synthetic:
        (path / "truth.json").write_text(json.dumps({"synthetic": True}), encoding="utf-8")
    return path


def make_extract(
    path: str | Path,
    fmt: str = "csv",
    form: str = "monthly",
    synthetic: bool = True,
    seed: int = 1,
) -> Path:
    """Write the tiny valid extract to ``path`` (see :func:`write_extract`)."""
    return write_extract(path, valid_tables(seed), fmt=fmt, form=form, synthetic=synthetic)
