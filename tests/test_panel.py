"""Tests of the student-month panel (``pipeline.panel``).

Each test writes a tiny set of interim tables (the schema of ``docs/interfaces.md``,
section ``ingest → data/interim/``) into ``tmp_path`` and checks the panel against
values worked out by hand or by an independent pandas computation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import calendar as cal
from pipeline import contract
from pipeline import panel as stage
from pipeline import panel_build as P
from pipeline.settings import section_settings

# --- building interim tables ----------------------------------------------------------

SCHEMAS = {
    "districts": pa.schema(
        [("district_code", pa.string()), ("district_name", pa.string()), ("leap", pa.bool_())]
    ),
    "students": pa.schema(
        [("student_key", pa.string()), ("sex", pa.string()), ("race_ethnicity", pa.string())]
    ),
    "enrollment": pa.schema(
        [
            ("student_key", pa.string()),
            ("school_year", pa.string()),
            ("district_code", pa.string()),
            ("school_code", pa.string()),
            ("grade", pa.string()),
            ("entry_date", pa.date32()),
            ("exit_date", pa.date32()),
            ("frl", pa.bool_()),
            ("ell", pa.bool_()),
            ("swd", pa.bool_()),
        ]
    ),
    "attendance_monthly": pa.schema(
        [
            ("student_key", pa.string()),
            ("school_year", pa.string()),
            ("district_code", pa.string()),
            ("school_code", pa.string()),
            ("month", pa.string()),
            ("days_membership", pa.int32()),
            ("days_present", pa.int32()),
        ]
    ),
    "home_visits": pa.schema(
        [
            ("visit_id", pa.string()),
            ("student_key", pa.string()),
            ("district_code", pa.string()),
            ("visit_date", pa.date32()),
            ("outcome", pa.string()),
            ("mode", pa.string()),
        ]
    ),
}

DISTRICTS = [("D1", "Program district", True), ("D2", "Other district", False)]


def _school_year(month: str) -> str:
    y, m = int(month[:4]), int(month[5:])
    return cal.school_year_label(y if m >= 7 else y - 1)


def _d(s: str | None) -> dt.date | None:
    return None if s is None else dt.date.fromisoformat(s)


def write_interim(
    root,
    attendance,
    visits=(),
    enrollment=None,
    students=None,
    districts=DISTRICTS,
    grade="3",
):
    """Write interim Parquet tables into ``root`` and return it.

    ``attendance``: ``(student, school, month, days_membership, days_present[, district])``.
    ``visits``: ``(visit_id, student, visit_date, outcome, mode)``.
    ``enrollment`` (default: one full-year spell per student, school year and school seen
    in ``attendance``): ``(student, school_year, district, school, grade, entry, exit,
    frl, ell, swd)``.
    """
    att = []
    for row in attendance:
        student, school, month, mem, pres = row[:5]
        district = row[5] if len(row) > 5 else "D1"
        att.append((student, _school_year(month), district, school, month, mem, pres))
    if enrollment is None:
        seen = sorted({(a[0], a[1], a[2], a[3]) for a in att})
        enrollment = [
            (s, sy, d, sc, grade, f"{sy[:4]}-08-30", None, False, False, False)
            for s, sy, d, sc in seen
        ]
    enr = [(*e[:5], _d(e[5]), _d(e[6]), *e[7:]) for e in enrollment]
    if students is None:
        keys = sorted({a[0] for a in att} | {v[1] for v in visits})
        students = [(k, "F", "WHITE") for k in keys]
    vis = [(vid, s, "D1", _d(date), outcome, mode) for vid, s, date, outcome, mode in visits]
    tables = {
        "districts": districts,
        "students": students,
        "enrollment": enr,
        "attendance_monthly": att,
        "home_visits": vis,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        schema = SCHEMAS[name]
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in schema.names]
        table = pa.table(
            {f.name: pa.array(list(c), type=f.type) for f, c in zip(schema, cols, strict=True)},
            schema=schema,
        )
        pq.write_table(table, root / f"{name}.parquet")
    return root


def build(tmp_path, *args, **kwargs):
    """Panel and data-quality table of a tiny interim extract."""
    interim = write_interim(tmp_path / "interim", *args, **kwargs)
    out = tmp_path / "panel.parquet"
    quality = P.write_panel(interim, out, tmp_path / "dq.csv")
    panel = pd.read_parquet(out, dtype_backend="numpy_nullable")
    return panel, quality


def row(panel, student, month):
    sel = panel[(panel["student_key"] == student) & (panel["month"] == month)]
    assert len(sel) == 1, (student, month, len(sel))
    return sel.iloc[0]


def dq(quality, table):
    g = quality[quality["table"] == table]
    return dict(zip(g["reason"], g["rows"], strict=True))


# --- tests ----------------------------------------------------------------------------


def test_schema_columns_and_types(tmp_path):
    panel, _ = build(
        tmp_path,
        [("A", "S1", "2021-09", 20, 19), ("B", "S1", "2021-09", 20, 15)],
        visits=[("v1", "A", "2021-09-10", "completed", "phone")],
    )
    assert tuple(panel.columns) == P.PANEL_COLUMNS
    schema = pq.read_schema(tmp_path / "panel.parquet")
    types = {f.name: f.type for f in schema}
    for c in (
        "school_month",
        "days_membership",
        "days_present",
        "event_time",
        "first_visit_school_month",
        "visits_completed_to_date",
        "visits_attempted_to_date",
    ):
        assert types[c] == pa.int32(), c
    for c in ("leap_district", "frl", "ell", "swd", "chronic"):
        assert types[c] == pa.bool_(), c
    for c in ("attendance_rate", "prior_year_rate", "rate_lag1", "rate_lag2", "rate_lag3"):
        assert types[c] == pa.float64(), c
    assert types["first_visit_date"] == pa.date32()
    for c in ("student_key", "month", "school_year", "grade", "cohort", "prior_year_tier"):
        assert types[c] == pa.string(), c


def test_event_time_across_summer(tmp_path):
    att = [("A", "S1", m, 20, 18) for m in ("2022-04", "2022-05", "2022-06", "2022-09")]
    att += [("B", "S1", m, 20, 18) for m in ("2021-05", "2021-06", "2021-09", "2021-10")]
    panel, _ = build(
        tmp_path,
        att,
        visits=[
            ("v1", "A", "2022-05-12", "completed", "in_person"),
            ("v2", "B", "2021-07-20", "completed", "virtual"),
        ],
    )
    a = {m: row(panel, "A", m)["event_time"] for m in ("2022-04", "2022-05", "2022-06", "2022-09")}
    assert a == {"2022-04": -1, "2022-05": 0, "2022-06": 1, "2022-09": 2}
    b = {m: row(panel, "B", m)["event_time"] for m in ("2021-05", "2021-06", "2021-09", "2021-10")}
    assert b == {"2021-05": -2, "2021-06": -1, "2021-09": 0, "2021-10": 1}
    rb = row(panel, "B", "2021-09")
    assert rb["first_visit_month"] == "2021-07"
    assert rb["first_visit_date"] == dt.date(2021, 7, 20)
    assert rb["first_visit_school_month"] == cal.school_month_index(2021, 9)
    assert rb["cohort"] == "summer 2021"
    assert row(panel, "A", "2022-09")["cohort"] == "2021-22"
    # school_month itself skips the summer
    assert (
        row(panel, "A", "2022-09")["school_month"] - row(panel, "A", "2022-06")["school_month"] == 1
    )


def test_two_schools_in_a_month(tmp_path):
    att = [
        ("A", "S1", "2021-10", 8, 8, "D1"),
        ("A", "S2", "2021-10", 12, 9, "D2"),
        # a tie on days: the lowest school_code wins
        ("B", "S9", "2021-10", 10, 10, "D1"),
        ("B", "S3", "2021-10", 10, 5, "D2"),
        ("C", "S1", "2021-10", 15, 15, "D1"),
    ]
    enrollment = [
        ("A", "2021-22", "D1", "S1", "6", "2021-08-30", "2021-10-12", True, False, False),
        ("A", "2021-22", "D2", "S2", "7", "2021-10-13", None, False, True, True),
        ("B", "2021-22", "D1", "S9", "K", "2021-08-30", None, False, False, False),
        ("B", "2021-22", "D2", "S3", "PK", "2021-08-30", None, True, True, False),
        ("C", "2021-22", "D1", "S1", "12", "2021-08-30", None, False, False, False),
    ]
    panel, _ = build(tmp_path, att, enrollment=enrollment)
    assert len(panel) == 3
    a = row(panel, "A", "2021-10")
    assert (a["days_membership"], a["days_present"]) == (20, 17)
    assert a["attendance_rate"] == pytest.approx(100 * 17 / 20)
    assert bool(a["chronic"]) is True  # 85 ≤ 90
    assert (a["school_code"], a["district_code"]) == ("S2", "D2")
    assert bool(a["leap_district"]) is False
    assert (a["grade"], a["grade_band"], a["frl"], a["ell"], a["swd"]) == (
        "7",
        "6-12",
        False,
        True,
        True,
    )
    b = row(panel, "B", "2021-10")
    assert (b["school_code"], b["district_code"], b["days_membership"]) == ("S3", "D2", 20)
    assert (b["grade"], b["grade_band"], bool(b["frl"])) == ("PK", "PK-5", True)
    c = row(panel, "C", "2021-10")
    assert (c["grade_band"], bool(c["leap_district"]), bool(c["chronic"])) == ("6-12", True, False)


def test_enrollment_spell_choice(tmp_path):
    """Several spells at the school of record: the covering one with the latest entry."""
    att = [("A", "S1", m, 20, 20) for m in ("2021-09", "2021-12", "2022-03")]
    att += [("B", "S1", "2021-10", 20, 20)]
    enrollment = [
        # A: left in October, came back in December (grade changes so we can tell)
        ("A", "2021-22", "D1", "S1", "4", "2021-08-30", "2021-10-15", False, False, False),
        ("A", "2021-22", "D1", "S1", "5", "2021-12-01", None, True, False, False),
        # overlapping spell entering later in the same month as the March row
        ("A", "2021-22", "D1", "S1", "6", "2022-03-20", None, False, True, False),
        # B: only a spell that starts after the month → the fallback, counted
        ("B", "2021-22", "D1", "S1", "8", "2021-11-02", None, False, False, True),
    ]
    panel, quality = build(tmp_path, att, enrollment=enrollment)
    assert row(panel, "A", "2021-09")["grade"] == "4"
    assert row(panel, "A", "2021-12")["grade"] == "5"
    assert row(panel, "A", "2022-03")["grade"] == "6"
    assert row(panel, "B", "2021-10")["grade"] == "8"
    assert dq(quality, "panel") == {
        "rows": 4,
        "enrollment_covering": 3,
        "enrollment_not_covering_same_year": 1,
        "enrollment_missing": 0,
    }


def test_rate_lags_across_summer_and_gap(tmp_path):
    att = [
        ("A", "S1", "2021-04", 20, 19),
        ("A", "S1", "2021-05", 0, 0),  # in the file but no membership: no row, null lag
        ("A", "S1", "2021-06", 10, 7),
        ("A", "S1", "2021-09", 16, 16),
        ("A", "S1", "2021-10", 21, 20),
    ]
    panel, quality = build(tmp_path, att)
    assert len(panel) == 4 and "2021-05" not in set(panel["month"])
    sep, oct_ = row(panel, "A", "2021-09"), row(panel, "A", "2021-10")
    assert sep["rate_lag1"] == pytest.approx(70.0)  # June is the lag of September
    assert pd.isna(sep["rate_lag2"])  # May: zero membership
    assert sep["rate_lag3"] == pytest.approx(95.0)  # April
    assert oct_["rate_lag1"] == pytest.approx(100.0)
    assert oct_["rate_lag2"] == pytest.approx(70.0)
    assert pd.isna(oct_["rate_lag3"])
    apr = row(panel, "A", "2021-04")
    assert apr[["rate_lag1", "rate_lag2", "rate_lag3"]].isna().all()
    assert dq(quality, "attendance_monthly") == {
        "read": 5,
        "in_panel": 4,
        "zero_membership_month": 1,
        "summer_month": 0,
    }


def test_prior_year_rate_and_tier(tmp_path):
    att = [
        # A in 2020-21 over two schools: present 18 + 22 + 5 = 45 of 20 + 22 + 10 = 52
        ("A", "S1", "2020-09", 20, 18),
        ("A", "S1", "2020-10", 22, 22),
        ("A", "S2", "2020-11", 10, 5, "D2"),
        ("A", "S1", "2020-11", 0, 0),
        ("A", "S1", "2021-09", 20, 20),
        ("A", "S1", "2022-01", 20, 20),
        ("A", "S1", "2022-09", 20, 20),
        # B: 19 of 20 = 95 % exactly → satisfactory
        ("B", "S1", "2021-05", 20, 19),
        ("B", "S1", "2021-09", 20, 10),
        # C: only a zero-membership row in 2020-21 → not in membership then → null
        ("C", "S1", "2021-03", 0, 0),
        ("C", "S1", "2021-10", 20, 20),
    ]
    panel, _ = build(tmp_path, att)
    for m in ("2020-09", "2020-10", "2020-11"):  # first year of the extract
        r = row(panel, "A", m)
        assert pd.isna(r["prior_year_rate"]) and pd.isna(r["prior_year_tier"])
    expected = 100 * 45 / 52
    for m in ("2021-09", "2022-01"):
        r = row(panel, "A", m)
        assert r["prior_year_rate"] == pytest.approx(expected, rel=1e-15)
        assert r["prior_year_tier"] == "moderate_chronic"
    assert row(panel, "A", "2022-09")["prior_year_rate"] == pytest.approx(100.0)
    assert row(panel, "A", "2022-09")["prior_year_tier"] == "satisfactory"
    b = row(panel, "B", "2021-09")
    assert (b["prior_year_rate"], b["prior_year_tier"]) == (95.0, "satisfactory")
    c = row(panel, "C", "2021-10")
    assert pd.isna(c["prior_year_rate"]) and pd.isna(c["prior_year_tier"])
    # the tier is the contract's function of the rate on every row
    rates = panel["prior_year_rate"].astype("float64").to_numpy(na_value=np.nan)
    want = contract.attendance_tier(rates)
    got = panel["prior_year_tier"].astype(object).where(panel["prior_year_tier"].notna(), None)
    assert list(got) == list(want)


def test_visits_to_date_cohort_and_mode(tmp_path):
    months = ("2021-02", "2021-03", "2021-04", "2021-06", "2021-09", "2021-10")
    att = [(s, "S1", m, 20, 18) for s in ("A", "B", "C") for m in months]
    visits = [
        ("a1", "A", "2021-03-05", "attempted", "in_person"),
        ("a2", "A", "2021-04-10", "completed", None),
        ("a3", "A", "2021-08-20", "completed", "phone"),  # takes effect in September
        ("a4", "A", "2021-09-02", "attempted", None),
        ("b1", "B", "2021-02-01", "attempted", "in_person"),  # attempts do not treat
        ("b2", "B", "2021-10-04", "completed", "phone"),
        ("b3", "B", "2021-10-04", "completed", "in_person"),  # same day: lowest visit_id
    ]
    panel, _ = build(tmp_path, att, visits=visits)
    counts = {
        m: (
            row(panel, "A", m)["visits_completed_to_date"],
            row(panel, "A", m)["visits_attempted_to_date"],
        )
        for m in months
    }
    assert counts == {
        "2021-02": (0, 0),
        "2021-03": (0, 1),
        "2021-04": (1, 1),
        "2021-06": (1, 1),
        "2021-09": (2, 2),
        "2021-10": (2, 2),
    }
    a = row(panel, "A", "2021-06")
    assert (a["first_visit_mode"], a["cohort"], a["first_visit_month"]) == (
        "unknown",
        "2020-21",
        "2021-04",
    )
    b = row(panel, "B", "2021-10")
    assert (b["first_visit_mode"], b["cohort"], b["event_time"]) == ("phone", "2021-22", 0)
    assert (b["visits_completed_to_date"], b["visits_attempted_to_date"]) == (2, 1)
    assert row(panel, "B", "2021-09")["event_time"] == -1
    assert row(panel, "B", "2021-02")["visits_attempted_to_date"] == 1
    c = panel[panel["student_key"] == "C"]
    assert (
        c[
            [
                "first_visit_date",
                "event_time",
                "cohort",
                "first_visit_mode",
                "first_visit_school_month",
            ]
        ]
        .isna()
        .all()
        .all()
    )
    assert (c["visits_completed_to_date"] == 0).all()
    assert (c["visits_attempted_to_date"] == 0).all()


def test_visit_placement_accounting(tmp_path):
    months = ("2020-09", "2020-10", "2020-11", "2021-06", "2021-09", "2022-06")
    att = [("A", "S1", m, 20, 18) for m in months]
    att += [("B", "S1", "2020-09", 20, 18), ("B", "S1", "2020-11", 20, 20)]
    visits = [
        ("v1", "A", "2020-06-15", "attempted", None),  # before the panel's first month
        ("v2", "A", "2020-10-01", "completed", "phone"),  # placed
        ("v3", "A", "2022-07-12", "completed", None),  # → Sep 2022: after the last month
        ("v4", "A", "2022-08-01", "attempted", None),  # after
        ("v5", "B", "2020-10-08", "completed", "virtual"),  # B has no row in October
        ("v6", "B", "2020-11-03", "attempted", None),  # placed
        ("v7", "Z", "2021-01-05", "completed", None),  # no attendance at all
        ("v8", "A", "2021-07-20", "attempted", None),  # → Sep 2021: placed
        ("v9", "A", "2021-06-07", "completed", None),  # placed
    ]
    panel, quality = build(tmp_path, att, visits=visits)
    hv = dq(quality, "home_visits")
    assert hv == {
        "read": 9,
        "placed": 4,
        "unplaced_before_panel": 1,
        "unplaced_after_panel": 2,
        "unplaced_no_membership": 2,
    }
    fv = dq(quality, "first_completed_visits")
    assert fv == {
        "read": 3,
        "placed": 1,
        "unplaced_before_panel": 0,
        "unplaced_after_panel": 0,
        "unplaced_no_membership": 2,
    }
    for counts in (hv, fv):
        assert counts["read"] == sum(v for k, v in counts.items() if k != "read")
    # the CSV on disk says the same
    csv = pd.read_csv(tmp_path / "dq.csv", dtype={"table": str, "reason": str})
    assert list(csv.columns) == ["table", "reason", "rows"]
    assert dq(csv, "home_visits") == hv
    # B's treatment starts in October although B has no membership then
    assert row(panel, "B", "2020-09")["event_time"] == -1
    assert row(panel, "B", "2020-11")["event_time"] == 1
    # visits after the panel do not count in any row; the one before it counts everywhere
    a = panel[panel["student_key"] == "A"].set_index("month")
    assert a.loc["2022-06", "visits_completed_to_date"] == 2
    assert a.loc["2022-06", "visits_attempted_to_date"] == 2
    assert a.loc["2020-09", "visits_attempted_to_date"] == 1


def test_summer_attendance_rows_are_counted(tmp_path):
    att = [("A", "S1", "2021-06", 20, 20), ("A", "S1", "2021-07", 10, 10)]
    panel, quality = build(tmp_path, att)
    assert list(panel["month"]) == ["2021-06"]
    assert dq(quality, "attendance_monthly")["summer_month"] == 1


def _random_attendance(rng, n_students=60):
    months = [f"{y}-{m:02d}" for y in (2020, 2021, 2022) for m in range(1, 13) if m not in (7, 8)][
        8:-6
    ]
    att = []
    for s in range(n_students):
        key = f"s{s:03d}"
        for m in months:
            if rng.random() < 0.2:
                continue
            n_schools = 1 if rng.random() < 0.85 else 2
            for sc in rng.choice(["S1", "S2", "S3"], size=n_schools, replace=False):
                mem = int(rng.integers(0, 23))
                att.append(
                    (
                        key,
                        str(sc),
                        m,
                        mem,
                        int(rng.integers(0, mem + 1)),
                        "D1" if sc != "S3" else "D2",
                    )
                )
    visits = []
    for i in range(40):
        y, m = int(rng.integers(2020, 2024)), int(rng.integers(1, 13))
        visits.append(
            (
                f"v{i:03d}",
                f"s{int(rng.integers(0, n_students)):03d}",
                f"{y}-{m:02d}-{int(rng.integers(1, 28)):02d}",
                "completed" if rng.random() < 0.7 else "attempted",
                rng.choice(["in_person", "phone", None]),
            )
        )
    return att, visits


def _reference(att, visits):
    """An independent pandas computation of the panel's core columns."""
    a = pd.DataFrame(
        att, columns=["student_key", "school_code", "month", "mem", "pres", "district_code"]
    )
    y, m = a["month"].str[:4].astype(int), a["month"].str[5:].astype(int)
    a["sm"] = cal.school_month_index(y, m)
    a["sy"] = cal.school_year_of(y, m)
    tot = a.groupby(["student_key", "sm", "sy"], as_index=False)[["mem", "pres"]].sum()
    tot = tot[tot["mem"] > 0]
    rate = {
        (k, s): 100 * p / n
        for k, s, p, n in zip(tot["student_key"], tot["sm"], tot["pres"], tot["mem"], strict=True)
    }
    yr = tot.groupby(["student_key", "sy"])[["mem", "pres"]].sum()
    yr_rate = {k: 100 * r.pres / r.mem for k, r in yr.iterrows()}
    rec = a[a["mem"] > 0].sort_values(
        ["student_key", "sm", "mem", "school_code"], ascending=[True, True, False, True]
    )
    rec = rec.drop_duplicates(["student_key", "sm"]).set_index(["student_key", "sm"])
    v = pd.DataFrame(visits, columns=["visit_id", "student_key", "date", "outcome", "mode"])
    d = pd.to_datetime(v["date"])
    v["esm"] = cal.effective_school_month(d.dt.year, d.dt.month)
    rows = []
    for k, s, sy, mem, pres in tot[["student_key", "sm", "sy", "mem", "pres"]].itertuples(
        index=False
    ):
        vs = v[v["student_key"] == k]
        done = vs[vs["outcome"] == "completed"].sort_values(["date", "visit_id"])
        first = done["esm"].iloc[0] if len(done) else None
        rows.append(
            {
                "student_key": k,
                "school_month": s,
                "days_membership": mem,
                "days_present": pres,
                "school_code": rec.loc[(k, s), "school_code"],
                "prior_year_rate": yr_rate.get((k, sy - 1), np.nan),
                "rate_lag1": rate.get((k, s - 1), np.nan),
                "rate_lag2": rate.get((k, s - 2), np.nan),
                "rate_lag3": rate.get((k, s - 3), np.nan),
                "event_time": np.nan if first is None else s - first,
                "visits_completed_to_date": int(
                    ((vs["outcome"] == "completed") & (vs["esm"] <= s)).sum()
                ),
                "visits_attempted_to_date": int(
                    ((vs["outcome"] == "attempted") & (vs["esm"] <= s)).sum()
                ),
            }
        )
    return pd.DataFrame(rows).sort_values(["student_key", "school_month"], ignore_index=True)


def test_random_extract_matches_reference_and_invariants(tmp_path):
    rng = np.random.default_rng(20240611)
    att, visits = _random_attendance(rng)
    panel, quality = build(tmp_path, att, visits=visits)
    ref = _reference(att, visits)
    # one row per (student, month) with membership; Σ days_present preserved
    assert not panel.duplicated(["student_key", "month"]).any()
    assert len(panel) == len(ref)
    assert int(panel["days_present"].sum()) == sum(r[4] for r in att)
    # sorted by (student_key, school_month)
    assert panel[["student_key", "school_month"]].equals(
        panel[["student_key", "school_month"]].sort_values(
            ["student_key", "school_month"], ignore_index=True
        )
    )
    for col in (
        "student_key",
        "school_month",
        "days_membership",
        "days_present",
        "school_code",
        "visits_completed_to_date",
        "visits_attempted_to_date",
    ):
        assert list(panel[col]) == list(ref[col]), col
    for col in ("prior_year_rate", "rate_lag1", "rate_lag2", "rate_lag3", "event_time"):
        got = panel[col].astype("float64").to_numpy(na_value=np.nan)
        np.testing.assert_array_equal(got, ref[col].to_numpy(dtype=float), err_msg=col)
    rate = panel["attendance_rate"].to_numpy()
    np.testing.assert_array_equal(
        rate, 100 * panel["days_present"].to_numpy(float) / panel["days_membership"].to_numpy(float)
    )
    assert (panel["chronic"].to_numpy(bool) == (rate <= contract.CHRONIC_THRESHOLD)).all()
    assert list(panel["month"]) == list(cal.index_to_month_label(panel["school_month"]))
    for table in ("home_visits", "first_completed_visits", "attendance_monthly"):
        c = dq(quality, table)
        assert c["read"] == sum(v for k, v in c.items() if k != "read") > 0, table
    assert dq(quality, "home_visits")["read"] == len(visits)
    assert dq(quality, "panel")["rows"] == len(panel)


def test_two_builds_are_byte_identical(tmp_path):
    rng = np.random.default_rng(7)
    att, visits = _random_attendance(rng, n_students=30)
    interim = write_interim(tmp_path / "interim", att, visits=visits)
    digests = []
    for i in range(2):
        out = tmp_path / f"panel{i}.parquet"
        P.write_panel(interim, out, tmp_path / f"dq{i}.csv", P.DuckDBSettings(threads=2))
        digests.append(
            (
                hashlib.sha256(out.read_bytes()).hexdigest(),
                hashlib.sha256((tmp_path / f"dq{i}.csv").read_bytes()).hexdigest(),
            )
        )
    assert digests[0] == digests[1]


def test_chunking_does_not_change_the_panel(tmp_path):
    rng = np.random.default_rng(11)
    att, visits = _random_attendance(rng, n_students=40)
    interim = write_interim(tmp_path / "interim", att, visits=visits)
    frames, qualities = [], []
    for chunk in (1000, 7, 1):
        out = tmp_path / f"panel_{chunk}.parquet"
        qualities.append(P.write_panel(interim, out, settings=P.DuckDBSettings(
            chunk_students=chunk, threads=1)))
        frames.append(pd.read_parquet(out))
    assert pq.ParquetFile(tmp_path / "panel_7.parquet").metadata.num_row_groups == 6
    for f, q in zip(frames[1:], qualities[1:], strict=True):
        pd.testing.assert_frame_equal(f, frames[0])
        pd.testing.assert_frame_equal(q, qualities[0])


def test_no_membership_at_all_gives_an_empty_panel(tmp_path):
    panel, quality = build(
        tmp_path,
        [("A", "S1", "2021-09", 0, 0)],
        visits=[("v1", "A", "2021-09-10", "completed", "phone")],
    )
    assert len(panel) == 0 and tuple(panel.columns) == P.PANEL_COLUMNS
    assert dq(quality, "home_visits")["unplaced_no_membership"] == 1
    assert dq(quality, "attendance_monthly")["zero_membership_month"] == 1


def test_missing_column_is_a_clear_error(tmp_path):
    interim = write_interim(tmp_path / "interim", [("A", "S1", "2021-09", 20, 20)])
    t = pq.read_table(interim / "enrollment.parquet").drop(["grade"])
    pq.write_table(t, interim / "enrollment.parquet")
    with pytest.raises(P.PanelInputError, match=r"enrollment\.parquet.*grade"):
        P.write_panel(interim, tmp_path / "panel.parquet")
    assert not (tmp_path / "panel.parquet").exists()


def test_bad_month_and_missing_table_are_clear_errors(tmp_path):
    interim = write_interim(tmp_path / "interim", [("A", "S1", "2021-13", 20, 20)])
    with pytest.raises(P.PanelInputError, match=r"attendance_monthly\.parquet.*'month'"):
        P.write_panel(interim, tmp_path / "panel.parquet")
    (interim / "students.parquet").unlink()
    with pytest.raises(P.PanelInputError, match=r"students\.parquet.*not found"):
        P.write_panel(interim, tmp_path / "panel.parquet")


def test_entry_point_reads_params(tmp_path, monkeypatch):
    interim = write_interim(tmp_path / "data" / "interim", [("A", "S1", "2021-09", 20, 17)])
    assert interim.exists()
    (tmp_path / "params.yaml").write_text(
        "panel:\n  memory_limit: 1GB\n  threads: 1\n  chunk_students: 1000\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEAP_PROJECT_ROOT", raising=False)
    stage.main()
    panel = pd.read_parquet(tmp_path / "data" / "processed" / "panel.parquet")
    assert len(panel) == 1 and math.isclose(panel["attendance_rate"].iloc[0], 85.0)
    csv = pd.read_csv(tmp_path / "reports" / "tables" / "data_quality_panel.csv")
    assert list(csv.columns) == ["table", "reason", "rows"]


def test_unknown_duckdb_setting_is_a_config_error():
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="memory_limt"):
        section_settings("panel", {"memory_limt": "1GB"})


def test_build_panel_returns_frame(tmp_path):
    interim = write_interim(tmp_path / "interim", [("A", "S1", "2021-09", 20, 17)])
    df = P.build_panel(interim)
    assert tuple(df.columns) == P.PANEL_COLUMNS and len(df) == 1
