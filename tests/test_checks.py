"""Every rule of the data contract: one bad row of each kind gets its reason code;
every file-level fault gets its message (file and column named)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import contract as C
from pipeline.checks import IngestError, check_reject_rates, validate_extract
from tests.extract_factory import STUDENT_IDS, valid_tables, write_extract


def _validate(tmp_path, tables, fmt="csv", form="monthly"):
    return validate_extract(write_extract(tmp_path / "x", tables, fmt=fmt, form=form))


def _identity_holds(res) -> None:
    for t in res.counts["table"].unique():
        c = res.counts[res.counts["table"] == t].set_index("reason")["rows"]
        assert c[C.READ] == c[C.KEPT] + c[C.DUPLICATE_EXACT] + c[list(C.REASONS)].sum()


def test_valid_extract_has_no_fault(tmp_path):
    for fmt in ("csv", "parquet"):
        for form in ("monthly", "daily"):
            with _validate(tmp_path / f"{fmt}{form}", valid_tables(), fmt, form) as res:
                assert res.n_quarantined() == 0
                assert res.count("home_visits", C.KEPT) == len(valid_tables()["home_visits"])
                # IDs are text: leading zeros kept
                assert res.kept_df("students")["student_id"].tolist() == list(STUDENT_IDS)
                _identity_holds(res)


# (table, row, column, new value, expected reason); form is daily for attendance_daily
RULES = [
    ("districts", 0, "district_name", "", "missing_value"),
    ("districts", 1, "district_code", " ", "missing_value"),
    ("districts", 0, "leap", "maybe", "invalid_bool"),
    ("students", 2, "student_id", None, "missing_value"),
    ("students", 0, "sex", "Q", "invalid_value"),
    ("students", 3, "race_ethnicity", "Asian", "invalid_value"),
    ("enrollment", 2, "grade", "13", "invalid_value"),
    ("enrollment", 2, "grade", "", "missing_value"),
    ("enrollment", 0, "frl", "si", "invalid_bool"),
    ("enrollment", 0, "entry_date", "2020/09/08", "invalid_date"),
    ("enrollment", 0, "entry_date", "2021-02-30", "invalid_date"),
    ("enrollment", 0, "exit_date", "June 1", "invalid_date"),
    ("enrollment", 0, "entry_date", "2020-9-8", "invalid_date"),
    ("enrollment", 0, "entry_date", " 2020-09-08", "invalid_date"),
    ("enrollment", 0, "entry_date", "2020-09-08T00:00", "invalid_date"),
    ("enrollment", 0, "school_year", "2020-21 ", "invalid_school_year"),
    ("enrollment", 0, "school_year", "2020-22", "invalid_school_year"),
    ("enrollment", 0, "school_year", "20-21", "invalid_school_year"),
    ("enrollment", 0, "entry_date", "2020-06-30", "date_outside_school_year"),
    ("enrollment", 0, "exit_date", "2021-07-01", "date_outside_school_year"),
    ("enrollment", 0, "exit_date", "2020-09-07", "exit_before_entry"),
    ("enrollment", 4, "student_id", "999999", "unknown_student"),
    ("enrollment", 4, "district_code", "009", "unknown_district"),
    ("attendance_monthly", 3, "days_membership", "x", "invalid_int"),
    ("attendance_monthly", 3, "days_membership", "2.5", "invalid_int"),
    ("attendance_monthly", 3, "days_membership", "1e3", "invalid_int"),
    ("attendance_monthly", 3, "days_membership", "0x10", "invalid_int"),
    ("attendance_monthly", 3, "days_membership", "1_000", "invalid_int"),
    ("attendance_monthly", 3, "days_membership", "24", "invalid_value"),
    ("attendance_monthly", 3, "days_membership", "9" * 30, "invalid_value"),
    ("attendance_monthly", 3, "days_present", "-1", "invalid_value"),
    ("attendance_monthly", 3, "days_present", "", "missing_value"),
    ("attendance_monthly", 3, "month", "2020-13", "invalid_month"),
    ("attendance_monthly", 3, "month", "2020-9", "invalid_month"),
    ("attendance_monthly", 3, "school_year", "2020", "invalid_school_year"),
    ("attendance_monthly", 3, "month", "2019-12", "month_school_year_mismatch"),
    ("attendance_monthly", 3, "days_present", "23", "present_exceeds_membership"),
    ("attendance_monthly", 3, "student_id", "0101", "unknown_student"),
    ("attendance_monthly", 3, "district_code", "1", "unknown_district"),
    ("attendance_daily", 5, "date", "2020-09-12", "not_a_weekday"),
    ("attendance_daily", 5, "date", "2020-09-31", "invalid_date"),
    ("attendance_daily", 5, "present", "present", "invalid_bool"),
    ("attendance_daily", 5, "school_code", "", "missing_value"),
    ("attendance_daily", 5, "student_id", "000107", "unknown_student"),
    ("attendance_daily", 5, "district_code", "003", "unknown_district"),
    ("home_visits", 1, "visit_id", "", "missing_value"),
    ("home_visits", 1, "outcome", "no_show", "invalid_value"),
    ("home_visits", 1, "mode", "email", "invalid_value"),
    ("home_visits", 1, "visit_date", "2021-3-15", "invalid_date"),
    ("home_visits", 1, "student_id", "101", "unknown_student"),
    ("home_visits", 1, "district_code", "004", "unknown_district"),
    ("home_visits", 1, "district_code", "002", "visit_district_not_leap"),
    # 000102 was enrolled until June 30, 2021 and again from September 8, 2021
    ("home_visits", 3, "visit_date", "2021-08-16", "visit_outside_enrollment"),
    # 000106 exited on March 26, 2021
    ("home_visits", 3, "student_id", "000106", "visit_outside_enrollment"),
]




def _rule_params(rules):
    """Each rule as a test; after the first value that breaks a (table, column, rule), the
    further spellings are ``slow`` (the quick suite checks every rule of every column once,
    the whole suite every spelling; each test is a run of the checks, 1-4 s)."""
    seen = set()
    for r in rules:
        key = (r[0], r[2], r[4])
        yield pytest.param(*r, id=f"{r[0]}-{r[2]}-{r[4]}",
                           marks=[pytest.mark.slow] if key in seen else [])
        seen.add(key)


@pytest.mark.parametrize("table,row,column,value,reason", list(_rule_params(RULES)))
def test_one_bad_row_gets_its_reason(tmp_path, table, row, column, value, reason):
    tables = valid_tables()
    if table == "home_visits" and column == "student_id" and value == "000106":
        tables[table].loc[row, "visit_date"] = "2021-04-12"  # after 000106's exit
    tables[table].loc[row, column] = value
    form = "daily" if table == "attendance_daily" else "monthly"
    with _validate(tmp_path, tables, "csv", form) as res:
        assert res.reasons_of(table) == {row + 1: reason}
        assert res.count(table, reason) == 1
        assert res.count(table, C.KEPT) == len(tables[table]) - 1
        _identity_holds(res)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_rules_hold_for_parquet_too(tmp_path, fmt):
    tables = valid_tables()
    tables["attendance_monthly"].loc[3, "days_present"] = "23"
    tables["home_visits"].loc[3, "visit_date"] = "2021-08-16"
    with _validate(tmp_path, tables, fmt) as res:
        assert res.reasons_of("attendance_monthly") == {4: "present_exceeds_membership"}
        assert res.reasons_of("home_visits") == {4: "visit_outside_enrollment"}


def test_first_reason_in_contract_order_wins(tmp_path):
    tables = valid_tables()
    tables["students"].loc[0, ["sex", "race_ethnicity"]] = ["Q", ""]  # invalid + missing
    m = tables["attendance_monthly"]
    m.loc[3, ["days_membership", "days_present"]] = ["30", "x"]  # invalid_value < invalid_int
    m.loc[4, ["month", "student_id"]] = ["2019-12", "nobody"]  # mismatch < unknown_student
    with _validate(tmp_path, tables) as res:
        assert res.reasons_of("students") == {1: "missing_value"}
        got = res.reasons_of("attendance_monthly")
        assert got[4] == "invalid_value" and got[5] == "month_school_year_mismatch"


def test_exact_duplicates_collapsed_and_counted(tmp_path):
    tables = valid_tables()
    enr = tables["enrollment"]
    tables["enrollment"] = pd.concat([enr, enr.iloc[[0, 0, 3]]], ignore_index=True)
    # same values, written differently: a duplicate as well, not a conflict
    alt = tables["districts"].iloc[[0]].assign(leap="Y")
    tables["districts"] = pd.concat([tables["districts"], alt], ignore_index=True)
    with _validate(tmp_path, tables) as res:
        assert res.count("enrollment", C.DUPLICATE_EXACT) == 3
        assert res.count("districts", C.DUPLICATE_EXACT) == 1
        assert res.n_quarantined() == 0
        assert len(res.kept_df("enrollment")) == len(enr)
        _identity_holds(res)


def test_duplicates_of_a_bad_row(tmp_path):
    tables = valid_tables()
    tables["students"].loc[5, "sex"] = "Q"
    tables["students"] = pd.concat(
        [tables["students"], tables["students"].iloc[[5]]], ignore_index=True
    )
    with _validate(tmp_path, tables) as res:
        assert res.reasons_of("students") == {6: "invalid_value"}
        assert res.count("students", C.DUPLICATE_EXACT) == 1


def test_conflicting_duplicates_all_quarantined(tmp_path):
    tables = valid_tables()
    s = tables["students"]
    tables["students"] = pd.concat([s, s.iloc[[0]].assign(sex="M")], ignore_index=True)
    h = tables["home_visits"]
    tables["home_visits"] = pd.concat(
        [h, h.iloc[[4]].assign(outcome="attempted")], ignore_index=True
    )
    with _validate(tmp_path, tables) as res:
        assert res.reasons_of("students") == {1: "duplicate_conflict", 7: "duplicate_conflict"}
        assert res.reasons_of("home_visits") == {
            1: "unknown_student",
            2: "unknown_student",
            3: "unknown_student",  # 000101
            5: "duplicate_conflict",
            8: "duplicate_conflict",
        }
        # the student is no longer known: its rows elsewhere are quarantined
        enr = res.reasons_of("enrollment")
        assert set(enr.values()) == {"unknown_student"}
        assert len(enr) == int((tables["enrollment"]["student_id"] == "000101").sum())


def test_conflict_only_among_rows_passing_other_rules(tmp_path):
    tables = valid_tables()
    s = tables["students"]
    tables["students"] = pd.concat([s, s.iloc[[0]].assign(sex="Q")], ignore_index=True)
    with _validate(tmp_path, tables) as res:
        assert res.reasons_of("students") == {7: "invalid_value"}


def test_daily_duplicate_day_conflict(tmp_path):
    tables = valid_tables()
    d = tables["attendance_daily"]
    flip = "false" if d.loc[10, "present"] == "true" else "true"
    tables["attendance_daily"] = pd.concat(
        [d, d.iloc[[10]].assign(present=flip)], ignore_index=True
    )
    with _validate(tmp_path, tables, form="daily") as res:
        assert res.reasons_of("attendance_daily") == {
            11: "duplicate_conflict",
            len(d) + 1: "duplicate_conflict",
        }


def test_optional_mode_and_bool_spellings(tmp_path):
    tables = valid_tables()
    tables["home_visits"] = tables["home_visits"].drop(columns="mode")
    tables["districts"]["leap"] = ["Yes", "0"]
    tables["enrollment"]["frl"] = [
        "Y",
        "n",
        "TRUE",
        "False",
        "1",
        "0",
        "yes",
        "NO",
        "y",
        "true",
        "false",
    ]
    tables["students"]["extra_note"] = ["a", "", "c", "d", "e", "f"]
    with _validate(tmp_path, tables) as res:
        assert res.n_quarantined() == 0
        assert res.kept_df("home_visits")["mode"].isna().all()
        assert res.kept_df("districts")["leap"].tolist() == [True, False]
        assert res.kept_df("enrollment")["frl"].tolist() == [
            True,
            False,
            True,
            False,
            True,
            False,
            True,
            False,
            True,
            True,
            False,
        ]
        assert "extra_note" not in res.kept_df("students").columns  # dropped (issue 21)


def test_whole_number_spellings(tmp_path):
    tables = valid_tables()
    m = tables["attendance_monthly"]
    m.loc[0:4, "days_membership"] = ["05", " 7 ", "+3", "7.0", "-0"]
    m.loc[0:4, "days_present"] = ["5", "7", "3", "7", "0"]
    with _validate(tmp_path, tables) as res:
        assert res.n_quarantined() == 0
        kept = res.kept_df("attendance_monthly")
        assert kept["days_membership"].tolist()[:5] == [5, 7, 3, 7, 0]
        assert str(kept["days_membership"].dtype) == "int32"


def test_empty_exit_means_june_30(tmp_path):
    tables = valid_tables()
    # 000101 has an open 2021-22 spell: a visit on June 30, 2022 is inside, July 1 is not
    extra = pd.DataFrame(
        [
            ["V0100", "000101", "001", "2022-06-30", "attempted", "phone"],
            ["V0101", "000101", "001", "2022-07-01", "attempted", "phone"],
        ],
        columns=tables["home_visits"].columns,
    )
    tables["home_visits"] = pd.concat([tables["home_visits"], extra], ignore_index=True)
    with _validate(tmp_path, tables) as res:
        assert res.reasons_of("home_visits") == {9: "visit_outside_enrollment"}


def test_quarantine_keeps_values_as_read(tmp_path):
    tables = valid_tables()
    tables["enrollment"].loc[0, "entry_date"] = "2020/09/08"
    with _validate(tmp_path, tables) as res:
        q = res.quarantine_df("enrollment")
        assert q.loc[0, "source_row"] == 1 and q.loc[0, "reason"] == "invalid_date"
        assert q.loc[0, "entry_date"] == "2020/09/08" and q.loc[0, "student_id"] == "000101"


def test_reject_rate_message_names_table_and_reasons(tmp_path):
    tables = valid_tables()
    tables["home_visits"].loc[[0, 1], "outcome"] = "no_show"
    tables["home_visits"].loc[2, "district_code"] = "002"
    with _validate(tmp_path, tables) as res:
        check_reject_rates(res.counts, 0.5)
        with pytest.raises(
            IngestError,
            match=r"home_visits.*invalid_value \(2\), "
            r"visit_district_not_leap \(1\)",
        ):
            check_reject_rates(res.counts, 0.05)


# --- file-level faults ----------------------------------------------------------------


def _expect_file_error(tmp_path, tables, pattern, fmt="csv", form="monthly", after=None):
    path = write_extract(tmp_path / "x", tables, fmt=fmt, form=form)
    if after is not None:
        after(path)
    with pytest.raises(IngestError, match=pattern):
        validate_extract(path)


def test_missing_table(tmp_path):
    tables = valid_tables()
    del tables["students"]
    _expect_file_error(tmp_path, tables, r"required table 'students' is missing")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    "table,column",
    [
        ("enrollment", "grade"),
        ("home_visits", "visit_date"),
        ("attendance_monthly", "days_present"),
    ],
)
def test_missing_required_column(tmp_path, fmt, table, column):
    tables = valid_tables()
    tables[table] = tables[table].drop(columns=column)
    _expect_file_error(
        tmp_path, tables, rf"{table}\.{fmt}: required column '{column}' is missing", fmt=fmt
    )


def test_column_names_are_case_sensitive(tmp_path):
    tables = valid_tables()
    tables["students"] = tables["students"].rename(columns={"sex": "Sex"})
    _expect_file_error(tmp_path, tables, r"students\.csv: required column 'sex'.*found 'Sex'")


@pytest.mark.parametrize("form,word", [("both", "both"), ("none", "neither")])
def test_attendance_forms(tmp_path, form, word):
    _expect_file_error(
        tmp_path,
        valid_tables(),
        rf"{word} of attendance_monthly and "
        r"attendance_daily",
        form=form,
    )


def test_ragged_csv_is_unreadable(tmp_path):
    def corrupt(path):
        with open(path / "students.csv", "a", encoding="utf-8") as fh:
            fh.write("000200,F,WHITE,surplus\n")

    _expect_file_error(tmp_path, valid_tables(), r"students\.csv: unreadable", after=corrupt)


def test_non_utf8_csv_is_unreadable(tmp_path):
    def corrupt(path):
        with open(path / "districts.csv", "ab") as fh:
            fh.write(b"003,Caf\xe9,true\n")

    _expect_file_error(
        tmp_path,
        valid_tables(),
        r"districts\.csv: not valid UTF-8: byte 0xE9 at line 4",
        after=corrupt,
    )


def test_garbage_parquet_is_unreadable(tmp_path):
    def corrupt(path):
        (path / "home_visits.csv").unlink()
        (path / "home_visits.parquet").write_bytes(b"PAR1 not really")

    _expect_file_error(tmp_path, valid_tables(), r"home_visits\.parquet: unreadable", after=corrupt)


def test_empty_csv_file(tmp_path):
    _expect_file_error(
        tmp_path,
        valid_tables(),
        r"districts\.csv: no header row",
        after=lambda p: (p / "districts.csv").write_text(""),
    )


def test_same_table_in_two_formats(tmp_path):
    tables = valid_tables()
    _expect_file_error(
        tmp_path,
        tables,
        r"both students\.csv and students\.parquet",
        after=lambda p: tables["students"].to_parquet(p / "students.parquet"),
    )


def test_reserved_and_repeated_column_names(tmp_path):
    tables = valid_tables()
    tables["students"]["student_key"] = "x"
    _expect_file_error(
        tmp_path,
        tables,
        r"students\.csv: column 'student_key' uses a name "
        r"reserved",
    )

    def repeat(path):
        text = (path / "districts.csv").read_text().replace("leap", "district_name", 1)
        (path / "districts.csv").write_text(text)

    _expect_file_error(
        tmp_path / "b",
        valid_tables(),
        r"districts\.csv: column "
        r"'district_name' appears twice",
        after=repeat,
    )


def test_missing_folder(tmp_path):
    with pytest.raises(IngestError, match="extract folder not found"):
        validate_extract(tmp_path / "nope")
