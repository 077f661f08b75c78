"""The synthetic extract: structure, calibration, selection on a dip, truth, determinism."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.calendar import school_month_index
from pipeline.contract import GRADES, RACE_CODES, SEX_CODES, TABLES
from pipeline.synth import generate, write_extract
from tests.conftest import small_config


def _student_months(ex) -> pd.DataFrame:
    a = ex.tables["attendance_monthly"]
    m = a.groupby(["student_id", "month"], as_index=False)[
        ["days_membership", "days_present"]
    ].sum()
    y, mo = m["month"].str.slice(0, 4).astype(int), m["month"].str.slice(5, 7).astype(int)
    m["t"] = school_month_index(y, mo)
    m["rate"] = 100 * m["days_present"] / m["days_membership"]
    return m


def _first_visits(ex) -> pd.Series:
    v = ex.tables["home_visits"]
    v = v[v["outcome"] == "completed"].sort_values("visit_date")
    first = v.drop_duplicates("student_id").set_index("student_id")["visit_date"]
    d = pd.to_datetime(first)
    mo = np.where(d.dt.month.isin([7, 8]), 9, d.dt.month)
    return pd.Series(school_month_index(d.dt.year, mo), index=first.index)


def test_tables_have_contract_columns_and_codes(default_extract):
    t = default_extract.tables
    for name, df in t.items():
        assert list(df.columns[: len(TABLES[name].columns)]) == [
            c.name for c in TABLES[name].columns
        ], name
    assert set(t["students"]["sex"]) <= set(SEX_CODES)
    assert set(t["students"]["race_ethnicity"]) <= set(RACE_CODES)
    assert set(t["enrollment"]["grade"]) <= set(GRADES)
    assert t["students"]["student_id"].is_unique
    assert t["home_visits"]["visit_id"].is_unique
    a = t["attendance_monthly"]
    assert (a["days_present"] <= a["days_membership"]).all()
    assert a["days_membership"].between(1, 23).all()
    assert not a.duplicated(["student_id", "school_code", "month"]).any()
    assert not a["month"].str.slice(5, 7).isin(["07", "08"]).any()
    # IDs keep their leading zeros
    assert t["students"]["student_id"].str.len().eq(10).all()
    assert t["districts"]["district_code"].str.startswith("0").all()


def test_structure_looks_like_a_state(default_extract):
    t = default_extract.tables
    e = t["enrollment"]
    d = t["districts"].set_index("district_code")
    assert 0 < d["leap"].sum() < len(d)
    e = e.join(d["leap"], on="district_code")
    # meal eligibility and English learners are far more common in program districts
    by = e.groupby("leap")[["frl", "ell"]].mean()
    assert by.loc[True, "frl"] > by.loc[False, "frl"] + 0.2
    assert by.loc[True, "ell"] > 2 * by.loc[False, "ell"]
    # grades advance, seniors graduate, kindergartners arrive
    years = sorted(e["school_year"].unique())
    g = e.drop_duplicates(["student_id", "school_year"]).pivot(
        index="student_id", columns="school_year", values="grade"
    )
    both = g[[years[0], years[1]]].dropna()
    num = both.replace({"K": "0"}).astype(int)
    advanced = (num[years[1]] == num[years[0]] + 1).mean()
    assert 0.95 < advanced < 1.0  # a few are retained
    assert (g[years[0]] == "12").sum() > 0 and g.loc[g[years[0]] == "12", years[1]].isna().all()
    assert ((g[years[1]] == "K") & g[years[0]].isna()).sum() > 0
    # mid-year exits and entries, and moves between districts within a year
    assert (e["exit_date"] != "").mean() > 0.01
    spells = e.groupby(["student_id", "school_year"])["district_code"].nunique()
    assert (spells > 1).sum() > 0
    # two schools in one month for movers
    a = t["attendance_monthly"]
    assert a.duplicated(["student_id", "month"]).sum() > 0


def test_calendar_has_real_school_days(default_extract):
    a = default_extract.tables["attendance_monthly"]
    full = a.groupby("month")["days_membership"].max()
    assert full.between(9, 23).all()
    assert set(full.index.str.slice(5, 7)) == {
        f"{m:02d}" for m in (9, 10, 11, 12, 1, 2, 3, 4, 5, 6)
    }
    # about 180 days a year for a student enrolled all year
    per_year = a.groupby(["student_id", "school_year"])["days_membership"].sum()
    assert per_year.max() == 181


def test_chronic_absence_calibrated_to_connecticut(default_extract):
    a = default_extract.tables["attendance_monthly"]
    y = a.groupby(["school_year", "student_id"])[["days_membership", "days_present"]].sum()
    chronic = (100 * y["days_present"] / y["days_membership"] <= 90).groupby(
        level="school_year"
    ).mean() * 100
    targets = {"2020-21": 19.0, "2021-22": 23.7, "2022-23": 20.0}
    for year, target in targets.items():
        assert abs(chronic[year] - target) < 2.0, (year, chronic[year])
    # and the truth file records the same realized rates
    for year in targets:
        assert (
            abs(default_extract.truth["chronic_absence"][year]["realized"] - chronic[year]) < 1e-3
        )


def test_visits_only_in_program_districts_from_april_2021(default_extract):
    t = default_extract.tables
    v = t["home_visits"]
    leap = set(t["districts"].loc[t["districts"]["leap"], "district_code"])
    assert set(v["district_code"]) <= leap
    assert v["visit_date"].min() >= "2021-04-01"
    assert set(v["outcome"]) == {"completed", "attempted"}
    assert set(v["mode"]) == {"in_person", "phone", "virtual"}
    comp = v[v["outcome"] == "completed"].groupby("student_id").size()
    assert (comp > 1).mean() > 0.1  # follow-up visits
    summer = pd.to_datetime(v["visit_date"]).dt.month.isin([7, 8])
    assert summer.sum() > 0


def test_visits_fall_inside_enrollment(default_extract):
    t = default_extract.tables
    e = t["enrollment"]
    v = t["home_visits"].merge(e, on="student_id", suffixes=("", "_e"))
    year_end = (v["school_year"].str.slice(0, 4).astype(int) + 1).astype(str) + "-06-30"
    exit_ = v["exit_date"].where(v["exit_date"] != "", year_end)
    inside = (v["entry_date"] <= v["visit_date"]) & (v["visit_date"] <= exit_)
    covered = inside.groupby(v["visit_id"]).any()
    assert covered.all() and len(covered) == len(t["home_visits"])


def test_selection_rides_a_dip_and_naive_overstates(default_extract):
    ex = default_extract
    m = _student_months(ex)
    first = _first_visits(ex)
    m = m.merge(first.rename("F"), left_on="student_id", right_index=True)
    m["e"] = m["t"] - m["F"]
    per = m.pivot_table(index="student_id", columns="e", values="rate")
    early = per[[-6, -5, -4]].mean(axis=1)
    dip = per[[-2, -1]].mean(axis=1)
    both = pd.concat([early, dip], axis=1).dropna()
    # visited students' attendance in the two months before the first visit is below
    # their own earlier level
    assert (both[1] - both[0]).mean() < -3.0
    naive = per[[1, 2, 3, 4, 5, 6]].mean(axis=1) - per[-1]
    truth = ex.truth["att_window"]
    assert naive.mean() > truth + 3.0, (naive.mean(), truth)


def test_truth_profile_and_subgroups(default_extract):
    tr = default_extract.truth
    att = {int(k): v["att"] for k, v in tr["att_by_event_time"].items()}
    assert all(att[e] == 0 for e in att if e < 0)
    assert 2.0 < att[1] < 7.0  # about +4 points a month after the first visit
    assert att[6] > att[1] + 2.0  # rising afterwards
    window = np.mean([att[e] for e in range(1, 7)])
    assert tr["att_window"] == pytest.approx(window)
    sg = tr["subgroups"]
    assert sg["grade_band"]["6-12"]["att_window"] > sg["grade_band"]["PK-5"]["att_window"]
    assert (
        sg["first_visit_mode"]["in_person"]["att_window"]
        > sg["first_visit_mode"]["phone_or_virtual"]["att_window"]
    )
    assert {"summer 2021", "2021-22"} <= set(sg["cohort"])
    assert tr["synthetic"] is True


def test_zero_effect_has_zero_truth():
    ex = generate(small_config(effects={"zero": True}))
    att = ex.truth["att_by_event_time"]
    assert att and all(v["att"] == 0 and v["att_expected"] == 0 for v in att.values())
    assert ex.truth["att_window"] == 0


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_identical_other_seed_differs(tmp_path):
    write_extract(generate(small_config()), tmp_path / "a")
    write_extract(generate(small_config()), tmp_path / "b")
    write_extract(generate(small_config(seed=7)), tmp_path / "c")
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a["attendance_monthly.csv"] != c["attendance_monthly.csv"]
    assert a["truth.json"] != c["truth.json"]


def test_daily_form_aggregates_to_monthly(tmp_path, small_extract):
    write_extract(small_extract, tmp_path / "d", fmt="parquet", attendance_form="daily")
    daily = pd.read_parquet(tmp_path / "d" / "attendance_daily.parquet")
    assert not (tmp_path / "d" / "attendance_monthly.parquet").exists()
    dates = pd.to_datetime(daily["date"])
    assert (dates.dt.day_of_week < 5).all()
    daily["month"] = daily["date"].str.slice(0, 7)
    agg = (
        daily.groupby(["student_id", "school_code", "month"])
        .agg(days_membership=("present", "size"), days_present=("present", "sum"))
        .reset_index()
    )
    monthly = small_extract.tables["attendance_monthly"]
    merged = monthly.merge(
        agg,
        on=["student_id", "school_code", "month"],
        how="outer",
        suffixes=("", "_d"),
        indicator=True,
    )
    assert (merged["_merge"] == "both").all()
    assert (merged["days_membership"] == merged["days_membership_d"]).all()
    assert (merged["days_present"] == merged["days_present_d"]).all()


def test_planted_faults_are_recorded(tmp_path, small_extract):
    write_extract(small_extract, tmp_path / "f", faults_per_kind=2)
    truth = json.loads((tmp_path / "f" / "truth.json").read_text())
    planted = truth["planted_faults"]
    assert planted["attendance_monthly"]["duplicate_conflict"] == 4
    assert planted["home_visits"]["visit_outside_enrollment"] == 2
    n_extra = sum(planted["attendance_monthly"].values()) - 2  # a conflict adds 1 row, not 2
    a = pd.read_csv(tmp_path / "f" / "attendance_monthly.csv", dtype=str)
    assert len(a) == len(small_extract.tables["attendance_monthly"]) + n_extra


@pytest.mark.parametrize("form", ["monthly", "daily"])
def test_ingest_quarantines_exactly_the_planted_faults(tmp_path, small_extract, form):
    from pipeline.ingest import run_ingest

    write_extract(small_extract, tmp_path / "f", fmt="csv", attendance_form=form,
                  faults_per_kind=2)
    planted = json.loads((tmp_path / "f" / "truth.json").read_text())["planted_faults"]
    dq = run_ingest(tmp_path / "f", tmp_path / "interim", tmp_path / "dq.csv",
                    max_reject_rate=1.0, synthetic=True)
    got = dq[~dq["reason"].isin(["read", "kept"]) & (dq["rows"] > 0)]
    got = {(t, r): int(n) for t, r, n in got[["table", "reason", "rows"]].itertuples(index=False)}
    want = {(t, r): n for t, reasons in planted.items() for r, n in reasons.items()}
    assert got == want
