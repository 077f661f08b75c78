"""The data contract (``../shared/data-contract.md``, v1) as data.

This module is the single machine-readable statement of the contract: the tables, their
columns and types, the allowed values, and the reason codes that row-level faults are
quarantined under.  The checks themselves live in :mod:`pipeline.checks`; the synthetic
generator, the ingest stage and the tests all read the contract from here.

Project extensions of contract v1
---------------------------------
The shared contract is the state's interface; the project adds these rules (each a
row-level quarantine reason in :data:`REASONS`, so no row is dropped silently) and
these file-level readings:

* ``date_out_of_range`` — every ``date``, ``month`` and ``school_year`` value lies in
  the school years the pipeline's calendar covers (from :data:`EARLIEST_DATE`, the start
  of school year 2000-01) and not after the day ingest runs (an extract cannot hold
  records of days that have not happened; the bound is that day, so only a faulty row
  can depend on it).  Before this rule, months before 2000 fell outside the school-month
  index and were counted as summer months by the panel.
* ``visit_before_program`` — a home visit dated before :data:`PROGRAM_START_DATE`
  (CSDE created LEAP in April 2021): quarantined.
* ``visit_district_mismatch`` — a visit recorded in a district other than the one the
  student was enrolled in on the visit date (the student has an enrollment spell covering
  the date, but none in the visit's district): quarantined, since the visit cannot be
  attributed to the district's program.
* Extra columns (not named in the contract) are dropped at ingest with a warning naming
  the file and the column, and listed in ``data/interim/extract_meta.json``; they never
  reach ``data/interim`` (they may hold raw IDs).  This narrows the contract's "carried
  along where it makes sense".
* A required table with a header and no rows (other than ``home_visits``) is a
  file-level error; so is a CSV file that is not valid UTF-8 (the message names the file,
  the line and the byte that cannot be decoded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONTRACT_VERSION = "1"

SEX_CODES = ("F", "M", "X")
RACE_CODES = ("AIAN", "ASIAN", "BLACK", "HISPANIC", "NHPI", "MULTI", "WHITE")
GRADES = ("PK", "K", *(str(g) for g in range(1, 13)))
VISIT_OUTCOMES = ("completed", "attempted")
VISIT_MODES = ("in_person", "phone", "virtual")
TRUE_STRINGS = ("true", "1", "y", "yes")
FALSE_STRINGS = ("false", "0", "n", "no")
MAX_DAYS_MEMBERSHIP = 23

#: Chronic absence: attendance rate at or below this percentage.
CHRONIC_THRESHOLD = 90.0

#: First day the school-month calendar covers (school year 2000-01; see pipeline.calendar).
EARLIEST_DATE = "2000-07-01"

#: CSDE created the program in April 2021: no home visit can precede this date.
PROGRAM_START_DATE = "2021-04-01"

#: Required tables that may not be empty (a table with a header and no rows is an error).
NONEMPTY_TABLES = ("districts", "students", "enrollment", "attendance_monthly", "attendance_daily")

#: Demo key for pseudonymizing the *synthetic* extract only (public by design).
DEMO_ID_KEY = "leap-synthetic-demo-key-not-secret"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # str | date | month | bool | int | school_year | date_or_empty
    required: bool = True
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default_factory=tuple)  # a row identity; conflicts quarantined
    required: bool = True

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "districts",
            (
                Column("district_code", "str"),
                Column("district_name", "str"),
                Column("leap", "bool"),
            ),
            key=("district_code",),
        ),
        Table(
            "students",
            (
                Column("student_id", "str"),
                Column("sex", "str", allowed=SEX_CODES),
                Column("race_ethnicity", "str", allowed=RACE_CODES),
            ),
            key=("student_id",),
        ),
        Table(
            "enrollment",
            (
                Column("student_id", "str"),
                Column("school_year", "school_year"),
                Column("district_code", "str"),
                Column("school_code", "str"),
                Column("grade", "str", allowed=GRADES),
                Column("entry_date", "date"),
                Column("exit_date", "date_or_empty"),
                Column("frl", "bool"),
                Column("ell", "bool"),
                Column("swd", "bool"),
            ),
            key=("student_id", "school_year", "school_code", "entry_date"),
        ),
        Table(
            "attendance_monthly",
            (
                Column("student_id", "str"),
                Column("school_year", "school_year"),
                Column("district_code", "str"),
                Column("school_code", "str"),
                Column("month", "month"),
                Column("days_membership", "int"),
                Column("days_present", "int"),
            ),
            key=("student_id", "school_code", "month"),
            required=False,
        ),
        Table(
            "attendance_daily",
            (
                Column("student_id", "str"),
                Column("district_code", "str"),
                Column("school_code", "str"),
                Column("date", "date"),
                Column("present", "bool"),
            ),
            key=("student_id", "school_code", "date"),
            required=False,
        ),
        Table(
            "home_visits",
            (
                Column("visit_id", "str"),
                Column("student_id", "str"),
                Column("district_code", "str"),
                Column("visit_date", "date"),
                Column("outcome", "str", allowed=VISIT_OUTCOMES),
                Column("mode", "str", required=False, allowed=VISIT_MODES),
            ),
            key=("visit_id",),
        ),
    )
}

ATTENDANCE_FORMS = ("attendance_monthly", "attendance_daily")

# --- reason codes for quarantined rows ------------------------------------------------
#: Every row-level fault is quarantined under exactly one of these codes (the first rule
#: a row breaks, in this order).  ``duplicate_exact`` is not a quarantine reason: exact
#: duplicates are collapsed and counted.
REASONS: dict[str, str] = {
    "missing_value": "a required value is empty",
    "invalid_value": "a value outside its allowed set or range",
    "invalid_bool": "a bool that is not true/false, 1/0, Y/N or yes/no",
    "invalid_int": "an int that is not a whole number",
    "invalid_date": "an unparseable date (not ISO YYYY-MM-DD)",
    "invalid_month": "an unparseable month (not YYYY-MM)",
    "invalid_school_year": "a school year not of the form YYYY-YY",
    "date_out_of_range": "a date, month or school year before school year 2000-01 or after "
    "the day of ingest",
    "date_outside_school_year": "a date outside its school year (July 1 to June 30)",
    "exit_before_entry": "exit_date earlier than entry_date",
    "month_school_year_mismatch": "month not in the row's school year",
    "not_a_weekday": "a daily attendance date on a Saturday or Sunday",
    "present_exceeds_membership": "days_present greater than days_membership",
    "unknown_student": "student_id not in students",
    "unknown_district": "district_code not in districts",
    "visit_district_not_leap": "a home visit in a district that did not run the program",
    "visit_outside_enrollment": "a visit on a date the student was not enrolled",
    "visit_district_mismatch": "a visit in a district other than the student's on that date",
    "visit_before_program": "a home visit dated before the program started (April 2021)",
    "duplicate_conflict": "another row with the same key and different values",
}
DUPLICATE_EXACT = "duplicate_exact"
KEPT = "kept"
READ = "read"


def attendance_tier(rate):
    """Attendance Works tier of an attendance rate in percent (vectorized).

    ``satisfactory`` ≥ 95; ``at_risk`` 90 < rate < 95; ``moderate_chronic`` 80 ≤ rate ≤ 90
    (chronic absence is a rate at or below 90%); ``severe_chronic`` < 80; missing stays
    missing.
    """
    import numpy as np

    r = np.asarray(rate, dtype=float)
    out = np.full(r.shape, None, dtype=object)
    out[r >= 95] = "satisfactory"
    out[(r > CHRONIC_THRESHOLD) & (r < 95)] = "at_risk"
    out[(r >= 80) & (r <= CHRONIC_THRESHOLD)] = "moderate_chronic"
    out[r < 80] = "severe_chronic"
    return out


TIERS = ("satisfactory", "at_risk", "moderate_chronic", "severe_chronic")
