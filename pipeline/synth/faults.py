"""Plant a known number of faulty rows of each kind the contract names.

Each planted row is an *extra* row that breaks exactly one rule, so the expected
quarantine is known exactly: ``truth.json`` records, per table and reason code, how many
rows the ingest stage must quarantine (a conflicting duplicate quarantines both the
planted row and the original it conflicts with) and how many exact duplicates it must
collapse.  Planted rows use the school code ``99999`` (unused by the generator) so they
never collide with a real row's key unless the fault is a duplicate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.contract import DUPLICATE_EXACT

PLANT_SCHOOL = "99999"


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_bool_dtype(col):
            out[c] = np.where(col.to_numpy(), "true", "false").astype(object)
        else:
            out[c] = col.astype(str).astype(object)
    return out


def plant_faults(
    tables: dict[str, pd.DataFrame], k: int, rng: np.random.Generator, attendance_form: str
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Return tables (as text) with ``k`` faulty rows of each kind, and the expected counts."""
    if k <= 0:
        return tables, {}
    t = {name: _as_text(df) for name, df in tables.items()}
    expected: dict[str, dict[str, int]] = {}

    def add(table: str, rows: list[dict], reason: str, count_per_row: int = 1) -> None:
        t[table] = pd.concat([t[table], pd.DataFrame(rows)], ignore_index=True)
        expected.setdefault(table, {})
        expected[table][reason] = expected[table].get(reason, 0) + count_per_row * len(rows)

    def sample(table: str, n: int) -> pd.DataFrame:
        idx = rng.choice(len(t[table]), size=n, replace=False)
        return t[table].iloc[np.sort(idx)].copy()

    # districts
    d = sample("districts", 1).iloc[0].to_dict()
    add(
        "districts",
        [{**d, "district_code": f"9{90 + i:02d}", "district_name": ""} for i in range(k)],
        "missing_value",
    )
    add(
        "districts",
        [{**d, "district_code": f"9{50 + i:02d}", "leap": "maybe"} for i in range(k)],
        "invalid_bool",
    )
    # students (new IDs nothing else refers to)
    s = sample("students", 1).iloc[0].to_dict()
    add(
        "students",
        [{**s, "student_id": f"X{i:09d}", "sex": "Q"} for i in range(k)],
        "invalid_value",
    )
    add(
        "students",
        [{**s, "student_id": f"Y{i:09d}", "race_ethnicity": ""} for i in range(k)],
        "missing_value",
    )
    # enrollment: extra rows at the planted school
    e = sample("enrollment", k)
    e["school_code"] = PLANT_SCHOOL
    yr = e["school_year"].str.slice(0, 4).astype(int)
    spring = (yr + 1).astype(str) + "-03-16"
    base = e.assign(entry_date=spring, exit_date="")
    add(
        "enrollment",
        base.assign(school_year=base["school_year"].str.replace("-", "-20")).to_dict("records"),
        "invalid_school_year",
    )
    add(
        "enrollment",
        base.assign(entry_date=(yr + 1).astype(str) + "-02-30").to_dict("records"),
        "invalid_date",
    )
    add(
        "enrollment",
        base.assign(entry_date=(yr + 2).astype(str) + "-09-10").to_dict("records"),
        "date_outside_school_year",
    )
    add(
        "enrollment",
        base.assign(exit_date=(yr + 1).astype(str) + "-03-02").to_dict("records"),
        "exit_before_entry",
    )
    add("enrollment", base.assign(frl="maybe").to_dict("records"), "invalid_bool")
    add("enrollment", base.assign(grade="13").to_dict("records"), "invalid_value")
    add("enrollment", base.assign(district_code="999").to_dict("records"), "unknown_district")
    add(
        "enrollment",
        base.assign(student_id=[f"Z{i:09d}" for i in range(k)]).to_dict("records"),
        "unknown_student",
    )
    # attendance
    if attendance_form == "monthly":
        a = sample("attendance_monthly", k)
        p = a.assign(school_code=PLANT_SCHOOL, days_membership="10", days_present="8")
        add(
            "attendance_monthly", p.assign(days_membership="12.5").to_dict("records"), "invalid_int"
        )
        add(
            "attendance_monthly",
            p.assign(
                month=p["month"]
                .str.replace("-0", "-")
                .where(p["month"].str.contains("-0"), "2021-1")
            ).to_dict("records"),
            "invalid_month",
        )
        add(
            "attendance_monthly",
            p.assign(days_present="12").to_dict("records"),
            "present_exceeds_membership",
        )
        add(
            "attendance_monthly", p.assign(days_membership="30").to_dict("records"), "invalid_value"
        )
        add(
            "attendance_monthly",
            p.assign(student_id=[f"Z{i:09d}" for i in range(k)]).to_dict("records"),
            "unknown_student",
        )
        other = p.assign(
            school_year=p["school_year"].map(
                lambda s: f"{int(s[:4]) + 1}-{(int(s[:4]) + 2) % 100:02d}"
            )
        )
        add("attendance_monthly", other.to_dict("records"), "month_school_year_mismatch")
        c = sample("attendance_monthly", k)
        conflict = c.assign(
            days_present=(c["days_present"].astype(int) - 1).clip(lower=0).astype(str)
        )
        same = conflict["days_present"] == c["days_present"]
        conflict.loc[same, "days_present"] = "1"
        add(
            "attendance_monthly", conflict.to_dict("records"), "duplicate_conflict", count_per_row=2
        )
        add(
            "attendance_monthly",
            sample("attendance_monthly", k).to_dict("records"),
            DUPLICATE_EXACT,
        )
    # home visits: planted as attempts so they could never start treatment
    v = sample("home_visits", k).assign(outcome="attempted")
    v["visit_id"] = [f"P{i:08d}" for i in range(k)]
    add(
        "home_visits",
        v.assign(
            visit_date=(v["visit_date"].str.slice(0, 4).astype(int) - 3).astype(str) + "-07-15",
            visit_id=[f"Q{i:08d}" for i in range(k)],
        ).to_dict("records"),
        "visit_outside_enrollment",
    )
    add(
        "home_visits",
        v.assign(outcome="maybe", visit_id=[f"R{i:08d}" for i in range(k)]).to_dict("records"),
        "invalid_value",
    )
    add(
        "home_visits",
        v.assign(visit_date="2021-13-01", visit_id=[f"S{i:08d}" for i in range(k)]).to_dict(
            "records"
        ),
        "invalid_date",
    )
    add("home_visits", v.assign(visit_id="").to_dict("records"), "missing_value")
    non_leap = t["districts"].loc[t["districts"]["leap"] == "false", "district_code"].iloc[0]
    add(
        "home_visits",
        v.assign(district_code=non_leap, visit_id=[f"T{i:08d}" for i in range(k)]).to_dict(
            "records"
        ),
        "visit_district_not_leap",
    )
    return t, expected


def plant_daily_faults(k: int) -> dict:
    """Expected counts for faults planted while writing the daily form (see writer)."""
    if k <= 0:
        return {}
    return {"attendance_daily": {"not_a_weekday": k, "invalid_bool": k, "unknown_student": k}}
