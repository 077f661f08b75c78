"""`leap check-extract`: every problem of an extract, with file, column, rule and rows,
from ingest's own checks, nothing written."""

from __future__ import annotations

import pandas as pd

from pipeline import contract as C
from pipeline import extract_check as xc
from pipeline.checks import validate_extract
from pipeline.cli import main as leap
from tests.extract_factory import valid_tables, write_extract


def _by(problems):
    return {(p.file.rsplit("/", 1)[-1], p.column, p.rule): p for p in problems}


def test_clean_extract(tmp_path, capsys):
    x = write_extract(tmp_path / "x", valid_tables())
    before = sorted(p.name for p in x.iterdir())
    assert xc.check_extract(x) == []
    assert leap(["check-extract", str(x)]) == xc.CLEAN
    assert "no problems" in capsys.readouterr().out
    assert sorted(p.name for p in x.iterdir()) == before  # nothing written


def test_every_file_level_fault_not_only_the_first(tmp_path, capsys):
    t = valid_tables()
    t["districts"] = t["districts"].rename(columns={"leap": "LEAP"})
    t["home_visits"] = t["home_visits"].drop(columns=["outcome"])
    t["students"] = None  # a missing table
    x = write_extract(tmp_path / "x", t)
    ps = xc.check_extract(x)
    got = {(p.file.rsplit("/", 1)[-1], p.column, p.rule) for p in ps}
    assert got == {
        ("districts.csv", "leap", "required_column"),
        ("home_visits.csv", "outcome", "required_column"),
        ("students.csv", None, "required_table"),
    }
    assert all(p.level == "fatal" and p.rows is None for p in ps)
    assert leap(["check-extract", str(x)]) == xc.INGEST_WOULD_STOP
    out = capsys.readouterr().out
    assert "ingest would stop" in out and "found 'LEAP'" in out


def test_row_faults_per_column_with_counts(tmp_path, capsys):
    t = valid_tables()
    t["students"].loc[0, "sex"] = "Q"
    t["students"].loc[1, "sex"] = "Q"
    # one row breaking two rules: ingest records the first, the check lists both
    t["enrollment"].loc[1, "grade"] = "13"
    t["enrollment"].loc[1, "frl"] = "maybe"
    t["enrollment"].loc[2, "entry_date"] = "2020-13-01"
    t["districts"] = pd.concat([t["districts"], t["districts"].iloc[[0]]])  # exact duplicate
    x = write_extract(tmp_path / "x", t)
    ps = xc.check_extract(x, max_reject_rate=1.0)
    by = _by(ps)
    assert by[("students.csv", "sex", "invalid_value")].rows == 2
    assert by[("enrollment.csv", "grade", "invalid_value")].rows == 1
    assert by[("enrollment.csv", "frl", "invalid_bool")].rows == 1
    assert by[("enrollment.csv", "entry_date", "invalid_date")].rows == 1
    assert by[("districts.csv", None, "duplicate_exact")].level == "note"
    # the per-table totals are ingest's own counts
    with validate_extract(x) as res:
        for table, file in (("students", "students.csv"), ("enrollment", "enrollment.csv")):
            assert by[(file, None, "quarantined")].rows == res.n_quarantined(table)
        cross = res.count("attendance_monthly", "unknown_student")
    assert cross > 0  # the two students' attendance rows
    assert by[("attendance_monthly.csv", "student_id", "unknown_student")].rows == cross
    assert xc.exit_status(ps) == xc.ROWS_QUARANTINED
    assert leap(["check-extract", str(x), "--max-reject-rate", "1"]) == xc.ROWS_QUARANTINED
    out = capsys.readouterr().out
    assert "students.csv | sex | invalid_value | 2 |" in out


def test_reject_rate_over_the_limit_is_fatal(tmp_path):
    t = valid_tables()
    t["students"].loc[0, "sex"] = "Q"
    x = write_extract(tmp_path / "x", t)
    ps = xc.check_extract(x, max_reject_rate=0.05)
    fatal = [p for p in ps if p.level == "fatal"]
    assert {p.file for p in fatal} >= {"students.csv"}
    assert all(p.rule == "max_reject_rate" for p in fatal)
    assert xc.exit_status(ps) == xc.INGEST_WOULD_STOP


def test_rule_columns_cover_every_single_row_reason():
    cross = set(xc.checks.CROSS_RULE_COLUMNS) | {"duplicate_conflict"}
    seen = set()
    for name, spec in C.TABLES.items():
        cols = tuple(c.name for c in spec.columns)
        for reason, col, _ in xc.checks.row_rule_columns(name, cols):
            assert col in cols, (name, reason, col)
            seen.add(reason)
    assert seen | cross == set(C.REASONS)
