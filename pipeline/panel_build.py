"""The student-month panel: ``data/interim/*.parquet`` → ``data/processed/panel.parquet``.

One row per student and school month in membership (``days_membership > 0`` summed over
the student's schools in that month), with the columns listed in ``docs/interfaces.md``
(section ``panel``), sorted by ``student_key, school_month``.

How it is built
---------------
All joins and aggregations run in DuckDB SQL straight off the interim Parquet files, out
of core under ``memory_limit`` (spilling to a scratch directory).  With
``panel.engine: spark`` the same statements run on Spark, transpiled
(:mod:`pipeline.spark_engine`, ``docs/distributed.md``).  Students and schools
get integer surrogates first (``sid`` in ``student_key`` order, ``school_id`` in
``school_code`` order), so the heavy steps join and group on integers.  The student-month
table is built once; the wide panel rows are then produced in chunks of whole students
(``chunk_students``), each sorted and appended as row groups to one Parquet file that
:func:`pipeline.io.atomic_path` moves into place only when complete.  The content does
not depend on the chunking; the same inputs and settings give a byte-identical file.

Definitions
-----------
School of record
    The (district, school) with the most membership days in the month; ties go to the
    lowest ``school_code`` (then the lowest ``district_code``).  ``leap_district`` is the
    ``leap`` flag of its district.
Enrollment attributes (grade, frl, ell, swd)
    From the enrollment spell at the school of record (same student, school year, district
    and school) that covers the month — ``entry_date`` ≤ month end and ``exit_date`` (an
    empty exit date means June 30 of the school year) ≥ month start; with several covering
    spells, the one with the latest ``entry_date``.  When no spell covers the month, the
    spell at that school in that school year with the latest ``entry_date`` on or before
    the month end (else the earliest) is used, and when the student has no spell at that
    school in that year the attributes are null.  Both fallbacks are counted in the
    data-quality table (``table = panel``).
Event time
    ``school_month − first_visit_school_month``, where ``first_visit_school_month`` is the
    effective school month (:func:`pipeline.calendar.effective_school_month`; July and
    August visits take effect in September) of the student's first *completed* visit
    (earliest ``visit_date``; ties by ``visit_id``).  Treatment starts in that month even
    when the student has no membership in it (or it lies outside the extract's months):
    event time stays defined from the effective month, and such visits are counted as
    unplaced in the data-quality table rather than moved or dropped.
Visits to date
    Completed (attempted) visits whose effective school month is ≤ the row's school month;
    visits outside the panel's months or in months without membership still count.
Prior-year rate
    ``100 × Σ days_present / Σ days_membership`` over all the student's attendance in the
    previous school year (all schools); null when the student had no membership then.
    ``prior_year_tier`` is :func:`pipeline.contract.attendance_tier` of it.
Rate lags
    ``rate_lag{k}`` is the attendance rate in school month ``school_month − k`` (June is
    lag 1 of September), null when the student had no membership in that month.

Data-quality table (``reports/tables/data_quality_panel.csv``: ``table, reason, rows``)
-----------------------------------------------------------------------------------------
Every completed or attempted visit is placed or counted as unplaced, never dropped
silently.  A visit is *placed* when the student has a panel row in its effective school
month; otherwise it is ``unplaced_before_panel`` (effective month before the first school
month in the attendance table), ``unplaced_after_panel`` (after the last) or
``unplaced_no_membership``.  For ``table = home_visits`` (all visits) and
``table = first_completed_visits`` (one per treated student):
``read = placed + unplaced_before_panel + unplaced_after_panel + unplaced_no_membership``.
``table = attendance_monthly``: ``read = in_panel + zero_membership_month + summer_month``
(rows of student-months with no membership at any school, and July/August rows, which
have no school month, are not panel rows).  ``table = panel``: ``rows =
enrollment_covering + enrollment_not_covering_same_year + enrollment_missing`` (how the
enrollment attributes were found, see above).  Each identity is checked before writing.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from pipeline import calendar as cal
from pipeline import contract
from pipeline.io import atomic_path, write_csv
from pipeline.scratch import private_dir, stage_guard

PANEL_COLUMNS = (
    "student_key",
    "month",
    "school_month",
    "school_year",
    "district_code",
    "school_code",
    "leap_district",
    "grade",
    "grade_band",
    "sex",
    "race_ethnicity",
    "frl",
    "ell",
    "swd",
    "days_membership",
    "days_present",
    "attendance_rate",
    "chronic",
    "first_visit_date",
    "first_visit_month",
    "first_visit_school_month",
    "event_time",
    "cohort",
    "first_visit_mode",
    "visits_completed_to_date",
    "visits_attempted_to_date",
    "prior_year_rate",
    "prior_year_tier",
    "rate_lag1",
    "rate_lag2",
    "rate_lag3",
)

#: Columns the panel reads from each interim table (``mode`` is optional).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "attendance_monthly": (
        "student_key",
        "district_code",
        "school_code",
        "month",
        "days_membership",
        "days_present",
    ),
    "enrollment": (
        "student_key",
        "school_year",
        "district_code",
        "school_code",
        "grade",
        "entry_date",
        "exit_date",
        "frl",
        "ell",
        "swd",
    ),
    "students": ("student_key", "sex", "race_ethnicity"),
    "districts": ("district_code", "leap"),
    "home_visits": ("visit_id", "student_key", "visit_date", "outcome"),
}

VISIT_REASONS = (
    "read",
    "placed",
    "unplaced_before_panel",
    "unplaced_after_panel",
    "unplaced_no_membership",
)
QUALITY_COLUMNS = ("table", "reason", "rows")
#: ``panel.engine`` values: where the SQL runs (see ``docs/distributed.md``).
ENGINES = ("duckdb", "spark")
_LOG = logging.getLogger("pipeline.panel")
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PanelInputError(ValueError):
    """An interim input the panel cannot be built from (names the file, column and rule)."""


@dataclass(frozen=True)
class DuckDBSettings:
    """Resource settings of the build (``params.yaml``, section ``panel``).

    ``memory_limit`` and ``threads`` are DuckDB's; ``temp_directory`` is where DuckDB
    spills (default: a fresh temporary directory); ``chunk_students`` is how many students'
    rows are assembled, sorted and written at a time (bounds the memory held outside
    DuckDB); ``row_group_size`` is the largest Parquet row group written.
    """

    memory_limit: str = "2GB"
    threads: int = 2
    temp_directory: str | None = None
    row_group_size: int = 1_000_000
    chunk_students: int = 100_000

# --- inputs ---------------------------------------------------------------------------


def _table_path(interim_dir: Path, table: str) -> Path:
    path = interim_dir / f"{table}.parquet"
    if not path.exists():
        raise PanelInputError(f"{path}: interim table '{table}' not found (run the ingest stage)")
    return path


def _sql_str(value: str | os.PathLike) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_sql_str(path)})").fetchall()
    return [r[0] for r in rows]


def _check_columns(con, paths: dict[str, Path]) -> dict[str, list[str]]:
    found = {}
    for table, path in paths.items():
        cols = _columns(con, path)
        missing = [c for c in REQUIRED_COLUMNS[table] if c not in cols]
        if missing:
            raise PanelInputError(
                f"{path}: required column(s) {', '.join(missing)} missing "
                f"(schema: docs/interfaces.md, ingest → data/interim)"
            )
        found[table] = cols
    return found


def _months_table(con, att_path: Path) -> pd.DataFrame:
    """The calendar of every month label in the attendance table (one row per label)."""
    key_cols = REQUIRED_COLUMNS["attendance_monthly"]
    nulls = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in key_cols)
    rows = con.execute(
        f"SELECT month, {nulls} FROM read_parquet({_sql_str(att_path)}) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    empty = [
        f"{c} ({sum(r[i + 1] for r in rows)} rows)"
        for i, c in enumerate(key_cols)
        if sum(r[i + 1] for r in rows)
    ]
    if empty:
        raise PanelInputError(f"{att_path}: empty values in required column(s) {', '.join(empty)}")
    labels = [r[0] for r in rows]
    bad = [m for m in labels if m is None or not _MONTH_RE.match(str(m))]
    if bad:
        raise PanelInputError(f"{att_path}: column 'month' must be YYYY-MM, found {bad[:5]!r}")
    if not labels:
        raise PanelInputError(f"{att_path}: no attendance rows")
    year = np.array([int(m[:4]) for m in labels], dtype=np.int64)
    month = np.array([int(m[5:]) for m in labels], dtype=np.int64)
    start = cal.school_year_of(year, month)
    starts = pd.to_datetime({"year": year, "month": month, "day": 1})
    return pd.DataFrame(
        {
            "month": pd.array(labels, dtype="string"),
            "school_month": cal.school_month_index(year, month).astype(np.int32),
            "school_year_start": start.astype(np.int32),
            "school_year": pd.array([cal.school_year_label(int(s)) for s in start], dtype="string"),
            # days since 1970-01-01, for integer date arithmetic in SQL
            "month_start_day": _epoch_days(starts),
            "month_end_day": _epoch_days(starts + pd.offsets.MonthEnd(0)),
        }
    )


def _epoch_days(ts: pd.Series) -> np.ndarray:
    return ((ts - pd.Timestamp("1970-01-01")).dt.days).to_numpy(dtype=np.int32)


def _visits_tables(con, visits_path: Path, has_mode: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Visits with their effective school month, and each student's first completed visit."""
    mode = "CAST(mode AS VARCHAR)" if has_mode else "CAST(NULL AS VARCHAR)"
    v = con.execute(
        f"""
        SELECT CAST(visit_id AS VARCHAR) AS visit_id, CAST(student_key AS VARCHAR) AS student_key,
               CAST(visit_date AS DATE) AS visit_date, CAST(outcome AS VARCHAR) AS outcome,
               {mode} AS mode
        FROM read_parquet({_sql_str(visits_path)})
        """
    ).df()
    for col in ("visit_id", "student_key", "visit_date", "outcome"):
        if v[col].isna().any():
            raise PanelInputError(f"{visits_path}: column '{col}' has empty values")
    bad = sorted(set(v["outcome"]) - set(contract.VISIT_OUTCOMES))
    if bad:
        raise PanelInputError(
            f"{visits_path}: column 'outcome' must be one of {contract.VISIT_OUTCOMES}, "
            f"found {bad[:5]!r}"
        )
    bad = sorted(set(v["mode"].dropna()) - set(contract.VISIT_MODES))
    if bad:
        raise PanelInputError(
            f"{visits_path}: column 'mode' must be one of {contract.VISIT_MODES} or empty, "
            f"found {bad[:5]!r}"
        )
    dates = pd.to_datetime(v["visit_date"])
    year, month = dates.dt.year.to_numpy(), dates.dt.month.to_numpy()
    v["school_month"] = cal.effective_school_month(year, month).astype(np.int32)
    v["year"], v["month_num"] = year, month

    done = v[v["outcome"] == "completed"].sort_values(["student_key", "visit_date", "visit_id"])
    first = done.drop_duplicates("student_key", keep="first").reset_index(drop=True)
    fy, fm = first["year"].to_numpy(), first["month_num"].to_numpy()
    first_visits = pd.DataFrame(
        {
            "student_key": first["student_key"].astype("string"),
            "first_visit_date": first["visit_date"],
            "first_visit_month": pd.array(
                [f"{y:04d}-{m:02d}" for y, m in zip(fy, fm, strict=True)], dtype="string"
            ),
            "first_visit_school_month": first["school_month"].astype(np.int32),
            "cohort": pd.array(cal.cohort_label(fy, fm), dtype="string"),
            "first_visit_mode": first["mode"].fillna("unknown").astype("string"),
        }
    )

    visits = v[["visit_id", "student_key", "school_month", "outcome"]].copy()
    visits["student_key"] = visits["student_key"].astype("string")
    return visits, first_visits


def _grade_band_sql(column: str) -> str:
    """A SQL ``CASE`` reproducing :func:`pipeline.calendar.grade_band` on the contract grades."""
    grades = pd.Series(contract.GRADES)
    bands = cal.grade_band(grades)
    whens = " ".join(
        f"WHEN {_sql_str(g)} THEN {_sql_str(b)}" for g, b in zip(grades, bands, strict=True)
    )
    return f"CASE {column} {whens} END"


def _lag_sql(k: int) -> str:
    """The attendance rate in school month ``m − k`` over window ``w`` (null if absent).

    A student's school months are distinct and increasing, so the row for ``m − k``, if
    any, is one of the ``k`` previous rows.
    """
    whens = " ".join(
        f"WHEN lag(school_month, {j}) OVER w = school_month - {k} "
        f"THEN lag(attendance_rate, {j}) OVER w"
        for j in range(1, k + 1)
    )
    return f"CASE {whens} END"


# --- the build ------------------------------------------------------------------------


def _connect(settings: DuckDBSettings, scratch: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {_sql_str(settings.memory_limit)}")
    con.execute(f"SET threads = {int(settings.threads)}")
    con.execute(f"SET temp_directory = {_sql_str(settings.temp_directory or scratch)}")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    return con


def write_panel(
    interim_dir: str | os.PathLike,
    panel_path: str | os.PathLike,
    quality_path: str | os.PathLike | None = None,
    settings: DuckDBSettings | None = None,
    spark=None,
) -> pd.DataFrame:
    """Build the panel from ``interim_dir`` and write it to ``panel_path`` (atomically).

    Parameters
    ----------
    interim_dir
        Folder holding the ingest stage's ``<table>.parquet`` files.
    panel_path
        Output Parquet file (sorted by ``student_key, school_month``).
    quality_path
        If given, the data-quality table is also written there as CSV.
    settings
        DuckDB resource settings (memory limit, threads, spill directory);
        ``chunk_students`` and ``row_group_size`` also apply on Spark.
    spark
        A :class:`pipeline.spark_engine.SparkConnection`: run the same SQL on Spark
        (transpiled; see ``docs/distributed.md``) instead of DuckDB.

    Returns
    -------
    pandas.DataFrame
        The data-quality table: ``table, reason, rows``.
    """
    settings = settings or DuckDBSettings()
    interim_dir = Path(interim_dir)
    paths = {t: _table_path(interim_dir, t) for t in REQUIRED_COLUMNS}
    outputs = [panel_path] + ([quality_path] if quality_path is not None else [])
    with stage_guard("panel", outputs):  # kill safety: pipeline/scratch.py
        if spark is not None:
            try:
                quality = _build(spark, paths, Path(panel_path), settings)
            finally:
                spark.close()
        else:
            quality = _build_duckdb(paths, Path(panel_path), settings)
        if quality_path is not None:
            write_csv(quality, quality_path)
    return quality


def _build_duckdb(paths: dict[str, Path], panel_path: Path, settings: DuckDBSettings):
    with private_dir("panel") as scratch:
        con = _connect(settings, scratch)
        try:
            return _build(con, paths, panel_path, settings)
        finally:
            con.close()


def build_panel(
    interim_dir: str | os.PathLike, settings: DuckDBSettings | None = None
) -> pd.DataFrame:
    """Build the panel and return it as a data frame (for tests and notebooks).

    The frame is read back from the Parquet file the build writes, with pandas' nullable
    dtypes (``Int32``, ``boolean``, ``string``), so it is exactly what later stages read.
    Use :func:`write_panel` at state scale.
    """
    with tempfile.TemporaryDirectory(prefix="panel-") as tmp:
        out = Path(tmp) / "panel.parquet"
        write_panel(interim_dir, out, settings=settings)
        return pd.read_parquet(out, dtype_backend="numpy_nullable")


class _Laps:
    """Logs the wall time of each build step (``logging`` level INFO, logger pipeline.panel)."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        _LOG.info("panel: %-22s %6.2f s", step, now - self.t)
        self.t = now


def _build(con, paths: dict[str, Path], panel_path: Path, settings: DuckDBSettings):
    """The build, step by step on connection ``con``; returns the data-quality table."""
    lap = _Laps()
    cols = _check_columns(con, paths)
    p = {t: _sql_str(path) for t, path in paths.items()}
    n_visits, first_visits = _inputs(con, paths, p, cols)
    lap("inputs")
    att_counts, n_students, n_rows = _student_months(con, p, paths["attendance_monthly"])
    lap("student_months")
    _keyed_inputs(con, paths, p, first_visits)
    lap("keyed_inputs")
    placed = _visit_placement(con)
    lap("visit_placement")
    enr_tiers = _write_rows(con, panel_path, settings, n_students, n_rows, int(att_counts[3]))
    lap("write_panel")
    return _quality_table(att_counts, enr_tiers, n_rows, placed, n_visits, len(first_visits))


def _inputs(con, paths: dict[str, Path], p: dict[str, str], cols: dict[str, list[str]]):
    """Step 0: the months and visits tables, checks, and the integer surrogates (``sdim``:
    ``sid`` in ``student_key`` order; ``schdim``: ``school_id`` in ``school_code`` order).

    Returns the number of visits read and the first completed visits (a data frame).
    """
    att = paths["attendance_monthly"]
    months = _months_table(con, att)
    visits, first_visits = _visits_tables(con, paths["home_visits"], "mode" in cols["home_visits"])
    con.register("months_df", months)
    con.execute("CREATE TEMP TABLE months AS SELECT * FROM months_df")
    con.register("visits_df", visits)
    con.execute("CREATE TEMP TABLE visits AS SELECT * FROM visits_df")
    _check_not_null(
        con,
        paths["enrollment"],
        ("student_key", "school_year", "district_code", "school_code", "entry_date"),
    )

    con.execute(
        f"""
        CREATE TEMP TABLE sdim AS
        SELECT student_key, (row_number() OVER (ORDER BY student_key) - 1)::INTEGER AS sid
        FROM (SELECT DISTINCT student_key::VARCHAR AS student_key FROM read_parquet({
            p["attendance_monthly"]
        }))
        ORDER BY sid
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE schdim AS
        SELECT district_code, school_code,
               (row_number() OVER (ORDER BY school_code, district_code) - 1)::INTEGER
                   AS school_id
        FROM (SELECT DISTINCT district_code::VARCHAR AS district_code,
                     school_code::VARCHAR AS school_code
              FROM read_parquet({p["attendance_monthly"]}))
        """
    )
    return len(visits), first_visits


def _student_months(con, p: dict[str, str], att: Path):
    """Step 1: student-month aggregates and the school of record (table ``base``).

    Returns the attendance counts (read, in panel, zero membership, days present, rows
    with more days present than in membership), the number of students and of rows.
    """
    # The smallest (BIG − days) · 2³² + school_id is the school with the most days, ties
    # to the lowest school_id, i.e. the lowest school_code (then district_code).
    con.execute(
        f"""
        CREATE TEMP TABLE sm AS
        SELECT s.sid, m.school_month,
               sum(a.days_membership)::INTEGER AS days_membership,
               sum(a.days_present)::INTEGER AS days_present,
               min((2147483647 - a.days_membership)::BIGINT * 4294967296 + k.school_id)
                   AS rec,
               count(*) AS n_rows
        FROM read_parquet({p["attendance_monthly"]}) a
        JOIN months m ON a.month = m.month
        JOIN sdim s ON s.student_key = a.student_key
        JOIN schdim k ON k.school_code = a.school_code AND k.district_code = a.district_code
        WHERE m.school_month >= 0
        GROUP BY ALL
        """
    )
    att_counts = con.execute(
        f"""
        SELECT (SELECT count(*) FROM read_parquet({p["attendance_monthly"]})) AS read,
               coalesce(sum(n_rows) FILTER (WHERE days_membership > 0), 0) AS in_panel,
               coalesce(sum(n_rows) FILTER (WHERE days_membership <= 0), 0) AS zero,
               coalesce(sum(days_present) FILTER (WHERE days_membership > 0), 0) AS present,
               count(*) FILTER (WHERE days_present > days_membership) AS bad
        FROM sm
        """
    ).fetchone()
    if att_counts[4]:
        raise PanelInputError(
            f"{att}: days_present exceeds days_membership in {att_counts[4]} "
            f"student-month(s) (rule: days_present ≤ days_membership)"
        )
    con.execute(
        f"""
        CREATE TEMP TABLE base AS
        SELECT *, {_lag_sql(1)} AS rate_lag1, {_lag_sql(2)} AS rate_lag2,
               {_lag_sql(3)} AS rate_lag3
        FROM (
            SELECT s.sid, s.school_month, m.school_year_start, s.days_membership,
                   s.days_present, (s.rec % 4294967296)::INTEGER AS school_id,
                   100.0::DOUBLE * s.days_present / s.days_membership AS attendance_rate
            FROM sm s JOIN months m ON m.school_month = s.school_month
            WHERE s.days_membership > 0
        )
        WINDOW w AS (PARTITION BY sid ORDER BY school_month)
        ORDER BY sid, school_month
        """
    )
    con.execute("DROP TABLE sm")
    n_students, n_rows = con.execute(
        "SELECT coalesce(max(sid) + 1, 0), count(*) FROM base"
    ).fetchone()
    return att_counts, n_students, n_rows


def _keyed_inputs(con, paths: dict[str, Path], p: dict[str, str], first_visits) -> None:
    """Step 2: enrollment, students, visits and prior-year rates keyed by ``sid``."""
    _check_school_years(con, paths["enrollment"])
    # An empty exit_date means enrolled to June 30 of the school year.
    con.execute(
        f"""
        CREATE TEMP TABLE enr AS
        SELECT s.sid, k.school_id, x.sy, e.grade::VARCHAR AS grade,
               (e.entry_date::DATE - DATE '1970-01-01')::INTEGER AS entry_day,
               (coalesce(e.exit_date::DATE, make_date(x.sy + 1, 6, 30))
                - DATE '1970-01-01')::INTEGER AS exit_day,
               e.frl::BOOLEAN AS frl, e.ell::BOOLEAN AS ell, e.swd::BOOLEAN AS swd
        FROM read_parquet({p["enrollment"]}) e
        CROSS JOIN LATERAL (SELECT CAST(left(e.school_year::VARCHAR, 4) AS INTEGER) AS sy) x
        JOIN sdim s ON s.student_key = e.student_key
        JOIN schdim k ON k.school_code = e.school_code AND k.district_code = e.district_code
        """
    )
    # (student, school, year) groups with one spell join directly; the few with several
    # spells get the choice made per school month here, once.
    con.execute(
        """
        CREATE TEMP TABLE enr_n AS
        SELECT sid, school_id, sy, count(*) AS n FROM enr GROUP BY ALL
        """
    )
    con.execute(
        """
        CREATE TEMP TABLE enr1 AS
        SELECT e.* FROM enr e SEMI JOIN (FROM enr_n WHERE n = 1) g
          ON g.sid = e.sid AND g.school_id = e.school_id AND g.sy = e.sy
        ORDER BY e.sid
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE enrm AS
        SELECT e.sid, e.school_id, m.school_month,
               arg_max({{'grade': e.grade, 'frl': e.frl, 'ell': e.ell, 'swd': e.swd,
                         'tier': {_tier_sql("e", "m")}}},
                       {_tier_sql("e", "m")}::BIGINT * 100000000
                       + CASE WHEN {_tier_sql("e", "m")} > 0 THEN e.entry_day
                              ELSE -e.entry_day END) AS e
        FROM enr e SEMI JOIN (FROM enr_n WHERE n > 1) g
          ON g.sid = e.sid AND g.school_id = e.school_id AND g.sy = e.sy
        JOIN months m ON m.school_year_start = e.sy AND m.school_month >= 0
        GROUP BY ALL
        ORDER BY e.sid
        """
    )
    con.execute("DROP TABLE enr; DROP TABLE enr_n")
    con.execute(
        f"""
        CREATE TEMP TABLE stud AS
        SELECT s.sid, t.sex::VARCHAR AS sex, t.race_ethnicity::VARCHAR AS race_ethnicity
        FROM read_parquet({p["students"]}) t JOIN sdim s ON s.student_key = t.student_key
        ORDER BY s.sid
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE dist AS
        SELECT district_code::VARCHAR AS district_code, leap::BOOLEAN AS leap
        FROM read_parquet({p["districts"]})
        """
    )
    con.register("first_df", first_visits)
    con.execute(
        """
        CREATE TEMP TABLE first_visits AS
        SELECT s.sid, f.* EXCLUDE (student_key, first_visit_date),
               CAST(f.first_visit_date AS DATE) AS first_visit_date
        FROM first_df f JOIN sdim s ON s.student_key = f.student_key
        ORDER BY s.sid
        """
    )
    # visits to date on a (visited student × school month) grid: small, hash-joinable
    con.execute(
        """
        CREATE TEMP TABLE visits_to_date AS
        SELECT s.sid, m.school_month,
               count(*) FILTER (WHERE v.outcome = 'completed')::INTEGER AS completed,
               count(*) FILTER (WHERE v.outcome = 'attempted')::INTEGER AS attempted
        FROM visits v JOIN sdim s ON s.student_key = v.student_key
        JOIN months m ON v.school_month <= m.school_month
        WHERE m.school_month >= 0
        GROUP BY ALL
        ORDER BY s.sid, m.school_month
        """
    )
    years = con.execute(
        """
        SELECT sid, school_year_start + 1 AS next_year_start,
               100.0::DOUBLE * sum(days_present) / sum(days_membership) AS prior_year_rate
        FROM base GROUP BY ALL ORDER BY sid, next_year_start
        """
    ).df()
    years["prior_year_tier"] = pd.array(
        contract.attendance_tier(years["prior_year_rate"].to_numpy()), dtype="string"
    )
    con.register("years_df", years)
    con.execute("CREATE TEMP TABLE prior AS SELECT * FROM years_df")
    con.unregister("years_df")
    del years


def _visit_placement(con) -> list[tuple]:
    """Step 3: every visit (and first completed visit) placed or counted as unplaced."""
    # the extract's attendance months (school months only), whether or not in membership
    lo, hi = con.execute(
        "SELECT min(school_month), max(school_month) FROM months WHERE school_month >= 0"
    ).fetchone()
    lo = -(10**9) if lo is None else lo
    hi = 10**9 if hi is None else hi
    placement = f"""
        CASE WHEN v.school_month < {lo} THEN 'unplaced_before_panel'
             WHEN v.school_month > {hi} THEN 'unplaced_after_panel'
             WHEN b.sid IS NULL THEN 'unplaced_no_membership'
             ELSE 'placed' END
    """
    placed = con.execute(
        f"""
        SELECT 'home_visits' AS tbl, {placement} AS reason, count(*) AS n
        FROM visits v LEFT JOIN sdim s ON s.student_key = v.student_key
        LEFT JOIN base b ON b.sid = s.sid AND b.school_month = v.school_month
        GROUP BY ALL
        UNION ALL
        SELECT 'first_completed_visits', {placement}, count(*)
        FROM (SELECT student_key, first_visit_school_month AS school_month
              FROM first_df) v
        LEFT JOIN sdim s ON s.student_key = v.student_key
        LEFT JOIN base b ON b.sid = s.sid AND b.school_month = v.school_month
        GROUP BY ALL
        """
    ).fetchall()
    return placed


def _write_rows(
    con,
    panel_path: Path,
    settings: DuckDBSettings,
    n_students: int,
    n_rows: int,
    days_present: int,
) -> dict[int, int]:
    """Step 4: the panel, in chunks of whole students (``sid`` ranges), written atomically.

    Returns the count of rows by how their enrollment attributes were found (tier).
    """
    chunk = max(int(settings.chunk_students), 1)
    bounds = [(a, min(a + chunk, n_students) - 1) for a in range(0, n_students, chunk)]
    enr_tiers: dict[int, int] = {}
    written_rows = written_present = 0
    panel_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(panel_path, ".parquet") as tmp:
        writer = None
        try:
            for a, b in bounds or [(0, -1)]:
                table = con.sql(_chunk_sql(a, b)).to_arrow_table()
                table = table.sort_by([("sid", "ascending"), ("school_month", "ascending")])
                tiers = table.column("_enr_tier").to_pandas().value_counts()
                for t, n in tiers.items():
                    enr_tiers[int(t)] = enr_tiers.get(int(t), 0) + int(n)
                table = table.drop_columns(["sid", "_enr_tier"])
                written_rows += table.num_rows
                written_present += int(pa.compute.sum(table.column("days_present")).as_py() or 0)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=int(settings.row_group_size))
        finally:
            if writer is not None:
                writer.close()
        if written_rows != n_rows or written_present != days_present:
            raise RuntimeError(
                "panel invariant broken: rows per (student, month) not unique or "
                "days_present not preserved — a duplicated key in an interim table "
                "(students, districts) or a bug in pipeline.panel"
            )
    return enr_tiers


def _check_not_null(con, path: Path, columns) -> None:
    exprs = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in columns)
    counts = con.execute(f"SELECT {exprs} FROM read_parquet({_sql_str(path)})").fetchone()
    bad = [f"{c} ({n} rows)" for c, n in zip(columns, counts, strict=True) if n]
    if bad:
        raise PanelInputError(f"{path}: empty values in required column(s) {', '.join(bad)}")


def _tier_sql(e: str, m: str) -> str:
    """2: spell ``e`` covers month ``m``; 1: it starts on or before the month end; else 0."""
    return (
        f"(CASE WHEN {e}.entry_day <= {m}.month_end_day "
        f"AND {e}.exit_day >= {m}.month_start_day THEN 2 "
        f"WHEN {e}.entry_day <= {m}.month_end_day THEN 1 ELSE 0 END)"
    )


def _check_school_years(con, path: Path) -> None:
    bad = con.execute(
        f"""
        SELECT DISTINCT school_year FROM read_parquet({_sql_str(path)})
        WHERE NOT regexp_full_match(school_year::VARCHAR, '[0-9]{{4}}-[0-9]{{2}}')
        LIMIT 5
        """
    ).fetchall()
    if bad:
        raise PanelInputError(
            f"{path}: column 'school_year' must be YYYY-YY, found {[r[0] for r in bad]!r}"
        )


def _chunk_sql(first_sid: int, last_sid: int) -> str:
    """The panel rows of students ``first_sid`` … ``last_sid`` (unsorted; with ``sid``)."""
    rng = f"BETWEEN {int(first_sid)} AND {int(last_sid)}"
    return f"""
        WITH b AS (FROM base WHERE sid {rng})
        SELECT b.sid, sd.student_key, m.month, b.school_month, m.school_year,
               k.district_code, k.school_code, d.leap AS leap_district,
               x.enr.grade AS grade, {_grade_band_sql("x.enr.grade")} AS grade_band,
               st.sex, st.race_ethnicity, x.enr.frl AS frl, x.enr.ell AS ell, x.enr.swd AS swd,
               b.days_membership, b.days_present, b.attendance_rate,
               b.attendance_rate <= {float(contract.CHRONIC_THRESHOLD)!r} AS chronic,
               f.first_visit_date, f.first_visit_month, f.first_visit_school_month,
               (b.school_month - f.first_visit_school_month)::INTEGER AS event_time,
               f.cohort, f.first_visit_mode,
               coalesce(c.completed, 0)::INTEGER AS visits_completed_to_date,
               coalesce(c.attempted, 0)::INTEGER AS visits_attempted_to_date,
               py.prior_year_rate, py.prior_year_tier,
               b.rate_lag1, b.rate_lag2, b.rate_lag3,
               coalesce(x.enr.tier, -1)::INTEGER AS _enr_tier
        FROM b
        JOIN months m ON m.school_month = b.school_month
        JOIN (FROM sdim WHERE sid {rng}) sd ON sd.sid = b.sid
        JOIN schdim k ON k.school_id = b.school_id
        LEFT JOIN dist d ON d.district_code = k.district_code
        LEFT JOIN (FROM stud WHERE sid {rng}) st ON st.sid = b.sid
        LEFT JOIN (FROM enr1 WHERE sid {rng}) e1
               ON e1.sid = b.sid AND e1.school_id = b.school_id AND e1.sy = b.school_year_start
        LEFT JOIN (FROM enrm WHERE sid {rng}) em
               ON em.sid = b.sid AND em.school_id = b.school_id
              AND em.school_month = b.school_month
        CROSS JOIN LATERAL (
            SELECT CASE WHEN em.sid IS NOT NULL THEN em.e
                        WHEN e1.sid IS NOT NULL THEN
                            {{'grade': e1.grade, 'frl': e1.frl, 'ell': e1.ell, 'swd': e1.swd,
                              'tier': {_tier_sql("e1", "m")}}}
                   END AS enr
        ) x(enr)
        LEFT JOIN (FROM first_visits WHERE sid {rng}) f ON f.sid = b.sid
        LEFT JOIN (FROM prior WHERE sid {rng}) py
               ON py.sid = b.sid AND py.next_year_start = b.school_year_start
        LEFT JOIN (FROM visits_to_date WHERE sid {rng}) c
               ON c.sid = b.sid AND c.school_month = b.school_month
    """


def _quality_table(att_counts, enr, panel_rows, placed, n_visits, n_first) -> pd.DataFrame:
    read, in_panel, zero = (int(x) for x in att_counts[:3])
    summer = read - in_panel - zero
    rows = [
        ("attendance_monthly", "read", read),
        ("attendance_monthly", "in_panel", in_panel),
        ("attendance_monthly", "zero_membership_month", zero),
        ("attendance_monthly", "summer_month", summer),
        ("panel", "rows", int(panel_rows)),
        ("panel", "enrollment_covering", int(enr.get(2, 0))),
        ("panel", "enrollment_not_covering_same_year", int(enr.get(1, 0) + enr.get(0, 0))),
        ("panel", "enrollment_missing", int(enr.get(-1, 0))),
    ]
    got = {(t, r): int(n) for t, r, n in placed}
    for table, n_read in (("home_visits", n_visits), ("first_completed_visits", n_first)):
        rows.append((table, "read", int(n_read)))
        rows.extend((table, r, got.get((table, r), 0)) for r in VISIT_REASONS[1:])
    out = pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))
    _check_accounting(out)
    return out


def _check_accounting(quality: pd.DataFrame) -> None:
    """Every table's ``read`` (``rows``) equals the sum of its parts — else a bug."""
    for table, g in quality.groupby("table", sort=False):
        total_reason = "rows" if table == "panel" else "read"
        total = int(g.loc[g["reason"] == total_reason, "rows"].sum())
        parts = int(g.loc[g["reason"] != total_reason, "rows"].sum())
        if total != parts:
            raise RuntimeError(
                f"data-quality accounting broken for {table}: {total} ≠ Σ parts {parts}"
            )
