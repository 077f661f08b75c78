"""Hostile or unusual extracts (issue 21): extra columns, dates out of range, empty tables,
non-UTF-8 files, visits before the program and in another district."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from pipeline import contract as C
from pipeline.checks import IngestError, validate_extract
from pipeline.ingest import run_ingest
from tests.extract_factory import STUDENT_IDS, valid_tables, write_extract

AS_OF = datetime.date(2026, 12, 3)


def _ingest(extract: Path, out: Path) -> pd.DataFrame:
    return run_ingest(
        extract, out / "interim", out / "dq.csv", max_reject_rate=1.0, environ={}, synthetic=True
    )


def _reasons(extract: Path, table: str) -> dict[int, str]:
    with validate_extract(extract, as_of=AS_OF) as res:
        return res.reasons_of(table)


# --- extra columns ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_extra_columns_never_reach_interim(tmp_path, fmt, caplog):
    tables = valid_tables()
    # extra columns holding raw IDs, on kept and on quarantined rows
    tables["students"]["sibling_id"] = list(reversed(STUDENT_IDS))
    tables["students"].loc[5, "sex"] = "Q"  # quarantined row, extra column and all
    tables["home_visits"]["state_id_copy"] = tables["home_visits"]["student_id"]
    extract = write_extract(tmp_path / "x", tables, fmt=fmt)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="pipeline.checks"):
        _ingest(extract, out)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(f"students.{fmt}: column 'sibling_id'" in m for m in msgs), msgs
    assert any(f"home_visits.{fmt}: column 'state_id_copy'" in m for m in msgs), msgs
    for f in (out / "interim").rglob("*.parquet"):
        df = pd.read_parquet(f)
        assert not {"sibling_id", "state_id_copy"} & set(df.columns), f
        values = {str(v) for c in df.columns for v in df[c].tolist()}
        assert not values & set(STUDENT_IDS), f
    assert len(pd.read_parquet(out / "interim" / "quarantine" / "students.parquet")) == 1
    meta = json.loads((out / "interim" / "extract_meta.json").read_text())
    assert meta["dropped_columns"] == {
        "students": ["sibling_id"],
        "home_visits": ["state_id_copy"],
    }


# --- dates out of range -------------------------------------------------------------------


def test_months_before_2000_are_quarantined_not_dropped_as_summer(tmp_path):
    tables = valid_tables()
    att = tables["attendance_monthly"]
    extra = att.iloc[[0, 1]].copy()
    extra["month"] = ["1999-10", "1995-03"]
    extra["school_year"] = ["1999-00", "1994-95"]
    tables["attendance_monthly"] = pd.concat([att, extra], ignore_index=True)
    enr = tables["enrollment"]
    old = enr.iloc[[0]].assign(
        school_year="1999-00", entry_date="1999-09-07", exit_date="", school_code="0099"
    )
    tables["enrollment"] = pd.concat([enr, old], ignore_index=True)
    extract = write_extract(tmp_path / "x", tables)
    n = len(att)
    assert _reasons(extract, "attendance_monthly") == {
        n + 1: "date_out_of_range",
        n + 2: "date_out_of_range",
    }
    assert _reasons(extract, "enrollment") == {len(enr) + 1: "date_out_of_range"}


def test_future_years_are_rejected(tmp_path):
    tables = valid_tables()
    v = tables["home_visits"]
    fut = v.iloc[[0]].assign(visit_id="V9999", visit_date="2031-03-04")
    tables["home_visits"] = pd.concat([v, fut], ignore_index=True)
    att = tables["attendance_monthly"]
    fut_att = att.iloc[[0]].assign(month="2031-02", school_year="2030-31")
    tables["attendance_monthly"] = pd.concat([att, fut_att], ignore_index=True)
    enr = tables["enrollment"]
    fut_enr = enr.iloc[[0]].assign(
        school_year="2030-31", entry_date="2030-09-04", exit_date="", school_code="0098"
    )
    tables["enrollment"] = pd.concat([enr, fut_enr], ignore_index=True)
    extract = write_extract(tmp_path / "x", tables)
    assert _reasons(extract, "home_visits") == {len(v) + 1: "date_out_of_range"}
    assert _reasons(extract, "attendance_monthly") == {len(att) + 1: "date_out_of_range"}
    assert _reasons(extract, "enrollment") == {len(enr) + 1: "date_out_of_range"}
    # the bound is the day of ingest: as of 2031-06-30 the same rows are in range
    with validate_extract(extract, as_of=datetime.date(2031, 6, 30)) as res:
        assert "date_out_of_range" not in set(res.reasons_of("attendance_monthly").values())


def test_daily_dates_out_of_range(tmp_path):
    tables = valid_tables()
    d = tables["attendance_daily"]
    bad = d.iloc[[0, 1]].assign(date=["1999-11-03", "2032-01-07"])
    tables["attendance_daily"] = pd.concat([d, bad], ignore_index=True)
    extract = write_extract(tmp_path / "x", tables, form="daily")
    assert _reasons(extract, "attendance_daily") == {
        len(d) + 1: "date_out_of_range",
        len(d) + 2: "date_out_of_range",
    }


def test_rules_are_in_the_contract():
    for code in (
        "date_out_of_range",
        "visit_before_program",
        "visit_district_mismatch",
    ):
        assert code in C.REASONS
    assert C.EARLIEST_DATE == "2000-07-01" and C.PROGRAM_START_DATE == "2021-04-01"
    doc = C.__doc__ or ""
    assert "visit_district_mismatch" in doc and "date_out_of_range" in doc


# --- visits ---------------------------------------------------------------------------------


def test_visit_before_program_start_is_quarantined(tmp_path):
    tables = valid_tables()
    v = tables["home_visits"]
    early = v.iloc[[0]].assign(visit_id="V0100", visit_date="2021-03-15")  # enrolled then
    tables["home_visits"] = pd.concat([v, early], ignore_index=True)
    extract = write_extract(tmp_path / "x", tables)
    assert _reasons(extract, "home_visits") == {len(v) + 1: "visit_before_program"}


def test_visit_in_another_district_is_quarantined(tmp_path):
    tables = valid_tables()
    tables["districts"] = pd.concat(
        [
            tables["districts"],
            pd.DataFrame({"district_code": ["003"], "district_name": ["Gamma"], "leap": ["true"]}),
        ],
        ignore_index=True,
    )
    v = tables["home_visits"]
    # student 000101 is enrolled in district 001 on that day; the visit says 003
    other = v.iloc[[0]].assign(visit_id="V0200", district_code="003")
    tables["home_visits"] = pd.concat([v, other], ignore_index=True)
    extract = write_extract(tmp_path / "x", tables)
    assert _reasons(extract, "home_visits") == {len(v) + 1: "visit_district_mismatch"}


def test_visit_while_enrolled_in_two_districts_is_kept(tmp_path):
    """Overlapping spells: a visit in either district is the student's district."""
    tables = valid_tables()
    enr = tables["enrollment"]
    extra = enr.iloc[[0]].assign(district_code="002", school_code="0021")
    tables["enrollment"] = pd.concat([enr, extra], ignore_index=True)
    extract = write_extract(tmp_path / "x", tables)
    assert _reasons(extract, "home_visits") == {}


# --- file-level faults ------------------------------------------------------------------


def test_header_only_students_table(tmp_path):
    tables = valid_tables()
    tables["students"] = tables["students"].iloc[0:0]
    extract = write_extract(tmp_path / "x", tables)
    with pytest.raises(IngestError) as err:
        validate_extract(extract)
    msg = str(err.value)
    assert "students.csv" in msg and "has a header but no data rows" in msg


@pytest.mark.parametrize("where", ["header", "row"])
def test_latin1_file_names_file_and_encoding(tmp_path, where):
    tables = valid_tables()
    extract = write_extract(tmp_path / "x", tables)
    p = extract / "districts.csv"
    text = p.read_text(encoding="utf-8")
    if where == "header":
        text = text.replace("district_name", "district_nämé", 1)
    else:
        text = text.replace("Alpha", "Alpha Hôpital", 1)
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(IngestError) as err:
        validate_extract(extract)
    msg = str(err.value)
    assert "districts.csv" in msg and "not valid UTF-8" in msg, msg
    assert "Latin-1" in msg
    assert ("line 1" in msg) if where == "header" else ("line 2" in msg)
