"""Checks of a raw extract against the data contract (``pipeline.contract``).

The public entry point is :func:`validate_extract`: it reads an extract folder (CSV or
Parquet per table, monthly or daily attendance), checks every rule of the contract in
DuckDB (out of core: the raw tables are never loaded into pandas), and returns a
:class:`ValidationResult` holding

* the *kept* rows of every table, typed as ``docs/interfaces.md`` describes (with the
  raw ``student_id``, or, when the ingest stage passes ``pseudonymize_ids``, with its
  pseudonym: then IDs are replaced as the files are read and no raw ID is ever stored
  by DuckDB, in memory tables, spill files or the scratch database),
* the *quarantined* rows (values as read, as text) with their reason code and 1-based
  ``source_row``,
* the accounting ``counts`` (``table, reason, rows``: ``read``, ``kept``,
  ``duplicate_exact`` and one row per code of :data:`pipeline.contract.REASONS`).

File-level faults (missing table, missing required column, unreadable file, both or
neither attendance form, ...) raise :class:`IngestError` naming the file, the column and
the rule.  Row-level faults never raise: each bad row gets the *first* reason of
:data:`pipeline.contract.REASONS` (in the dict's order) that it breaks.

Order of the row-level decisions for one table
----------------------------------------------
1. Rows identical in every column (as read) to an earlier row are collapsed:
   the later copies count as ``duplicate_exact``.
2. The single-row rules (``missing_value`` … ``present_exceeds_membership``).
3. The cross-table rules against the *kept* rows of the tables before it
   (districts → students → enrollment → attendance → home_visits):
   ``unknown_student``, ``unknown_district``, ``visit_district_not_leap`` and
   ``visit_outside_enrollment`` (a visit date within no kept enrollment spell
   ``entry_date ≤ visit_date ≤ exit_date`` of the student, an empty exit meaning
   June 30 of the spell's school year).
4. Among the rows that pass 1–3, rows sharing a key (``contract.TABLES[t].key``):
   if their parsed values differ anywhere, *all* of them are quarantined as
   ``duplicate_conflict``; if not (e.g. ``true`` vs ``1``), the later ones are
   collapsed as ``duplicate_exact``.

So that for every table ``read = kept + duplicate_exact + Σ quarantine reasons``.

Value formats
-------------
Every column is read as text (a Parquet column is cast to text; a Parquet date or
midnight timestamp becomes ``YYYY-MM-DD``).  Empty or blank text is a missing value.
``str`` values are compared exactly (no trimming, case-sensitive codes).  ``bool``
accepts ``true/false``, ``1/0``, ``Y/N``, ``yes/no`` in any case, with surrounding
blanks; ``int`` accepts whole numbers with an optional sign, surrounding blanks and
a ``.0`` fraction (``7``, ``+7``, ``07``, ``7.0``) but not ``2.5``, ``1e3`` or ``0x10``;
``date``, ``month`` and ``school_year`` must be written exactly ``YYYY-MM-DD``,
``YYYY-MM`` and ``YYYY-YY`` (a real calendar date; the second year of a school year is
the next year).  ``source_row`` is the 1-based number of the data record in the file
(the header is not counted; a quoted field may span lines).

Typical use (e.g. in the synthetic generator's tests)::

    from pipeline.checks import validate_extract

    with validate_extract("data/raw/synthetic") as res:
        assert res.n_quarantined() == 0
        students = res.kept_df("students")
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline import contract as C
from pipeline.runner import progress
from pipeline.scratch import make_private_dir

log = logging.getLogger(__name__)

#: Column names an extract may not use (they are added by ingest).
RESERVED_COLUMNS = ("student_key", "source_row", "reason")


class IngestError(ValueError):
    """A file-level fault of an extract (or a failed stage-level rule).

    The message names the file, the column and the rule that was broken.  No output
    is written when it is raised.  ``file``, ``column`` and ``rule`` hold the same
    facts for programs (``None`` where they do not apply).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        column: str | None = None,
        rule: str | None = None,
    ):
        super().__init__(message)
        self.file = str(file) if file is not None else None
        self.column = column
        self.rule = rule


class RejectRateError(IngestError):
    """A table's quarantined share exceeds ``quality.max_reject_rate``."""


# --- small SQL helpers ---------------------------------------------------------------


def _q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


def _empty(c: str) -> str:
    """Empty or blank (only values starting with a space need the trim)."""
    return f"({c} IS NULL OR {c} = '' OR (starts_with({c}, ' ') AND trim({c}) = ''))"


_INT_RE = r"^\s*[+-]?[0-9]+(\.0*)?\s*$"

# Parsers: a fast exact path (cast and compare with the canonical text) for the clean
# values that make up almost every row, a regular expression only for the others.
# Dates, months and school years must be written exactly as the contract says (no
# surrounding blanks); bools and ints may carry blanks (common in fixed-width exports).


def _int_fast(c: str) -> str:
    return f"(CAST(TRY_CAST({c} AS BIGINT) AS VARCHAR) = {c})"


def _int_val(c: str) -> str:
    """Parsed whole number (NULL when not one, or too large for BIGINT)."""
    return (
        f"(CASE WHEN {_int_fast(c)} THEN TRY_CAST({c} AS BIGINT) "
        f"WHEN regexp_matches({c}, {_lit(_INT_RE)}) "
        f"THEN TRY_CAST(split_part(trim({c}), '.', 1) AS BIGINT) END)"
    )


def _int_whole(c: str) -> str:
    """True when the text is a whole number (``7``, ``+7``, `` 7 ``, ``7.0``)."""
    return (
        f"(CASE WHEN {_int_fast(c)} THEN TRUE "
        f"ELSE coalesce(regexp_matches({c}, {_lit(_INT_RE)}), FALSE) END)"
    )


def _date_val(c: str) -> str:
    """ISO ``YYYY-MM-DD`` date (NULL when not exactly that, or not a calendar date)."""
    return (
        f"(CASE WHEN strftime(TRY_CAST({c} AS DATE), '%Y-%m-%d') = {c} "
        f"THEN TRY_CAST({c} AS DATE) END)"
    )


def _month_val(c: str) -> str:
    """First day of the month (NULL when not exactly ``YYYY-MM``)."""
    return (
        f"(CASE WHEN strftime(TRY_CAST({c} || '-01' AS DATE), '%Y-%m') = {c} "
        f"THEN TRY_CAST({c} || '-01' AS DATE) END)"
    )


def _sy_start(c: str) -> str:
    """Start year of a ``YYYY-YY`` school year (NULL when malformed or inconsistent)."""
    y = f"TRY_CAST(substr({c}, 1, 4) AS INTEGER)"
    return (
        f"(CASE WHEN length({c}) = 7 AND {y} BETWEEN 1000 AND 9998 AND "
        f"{c} = CAST({y} AS VARCHAR) || '-' || lpad(CAST(({y} + 1) % 100 AS VARCHAR), 2, '0') "
        f"THEN {y} END)"
    )


def _bool_val(c: str) -> str:
    return (
        f"(CASE WHEN {c} = 'true' THEN TRUE WHEN {c} = 'false' THEN FALSE "
        f"WHEN lower(trim({c})) IN {_in_list(C.TRUE_STRINGS)} THEN TRUE "
        f"WHEN lower(trim({c})) IN {_in_list(C.FALSE_STRINGS)} THEN FALSE END)"
    )


def _P(name: str) -> str:
    """The parsed-value column of contract column ``name`` in ``chk_<table>``."""
    return _q(f"__p_{name}")


def _W(name: str) -> str:
    """The is-a-whole-number flag column of int column ``name``."""
    return _q(f"__w_{name}")


def _school_year_of_date(d: str) -> str:
    return f"(CASE WHEN month({d}) >= 7 THEN year({d}) ELSE year({d}) - 1 END)"


# --- the extract on disk -------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One table file of an extract: its path, format and columns (in file order)."""

    table: str
    path: Path
    format: str  # "csv" | "parquet"
    columns: tuple[str, ...]
    parquet_types: dict[str, str] = field(default_factory=dict)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        names = {c.name for c in C.TABLES[self.table].columns}
        return tuple(c for c in self.columns if c not in names)


def _table_file(extract_dir: Path, table: str) -> Path | None:
    found = [
        p for p in (extract_dir / f"{table}.csv", extract_dir / f"{table}.parquet") if p.exists()
    ]
    if len(found) == 2:
        raise IngestError(
            f"{extract_dir}: both {table}.csv and {table}.parquet are present "
            f"(rule: one file per table); remove one",
            file=extract_dir / f"{table}.*",
            rule="one_file_per_table",
        )
    return found[0] if found else None


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise IngestError(f"{path}: {_utf8_problem(path)}") from None
    except (OSError, csv.Error) as exc:
        raise IngestError(
            f"{path}: unreadable file (rule: UTF-8 CSV with a header row): {type(exc).__name__}",
            file=path,
            rule="readable_csv",
        ) from None
    if not header:
        raise IngestError(
            f"{path}: no header row (rule: UTF-8 CSV with a header row)",
            file=path,
            rule="readable_csv",
        )
    header[0] = header[0].lstrip("\ufeff")
    return header


def _parquet_schema(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})").fetchall()
    except duckdb.Error as exc:
        raise IngestError(
            f"{path}: unreadable Parquet file: {str(exc).splitlines()[0]}",
            file=path,
            rule="readable_parquet",
        ) from None
    return {r[0]: r[1] for r in rows}


def _checked_source(
    name: str,
    p: Path,
    fmt: str,
    cols: list[str],
    types: dict[str, str],
    fault: Callable[[IngestError], None],
) -> SourceFile | None:
    """The file-level column rules of one table file (each fault passed to ``fault``;
    ``None`` when any rule fails); warns about extra columns, which ingest drops."""
    ok = True
    seen: set[str] = set()
    for c in cols:
        if c in seen:
            ok = False
            fault(IngestError(f"{p}: column '{c}' appears twice in the header",
                              file=p, column=c, rule="unique_column_names"))
        seen.add(c)
        if c in RESERVED_COLUMNS or c.startswith("__"):
            ok = False
            fault(IngestError(
                f"{p}: column '{c}' uses a name reserved by the pipeline "
                f"({', '.join(RESERVED_COLUMNS)}, or a leading '__'); rename it",
                file=p, column=c, rule="reserved_column_name",
            ))
    for req in C.TABLES[name].required_columns:
        if req not in seen:
            ok = False
            hint = [c for c in cols if c.strip().lower() == req]
            extra = f" (found '{hint[0]}': names are lower-case, exact)" if hint else ""
            fault(IngestError(
                f"{p}: required column '{req}' is missing from table '{name}'{extra}",
                file=p, column=req, rule="required_column",
            ))
    if not ok:
        return None
    if fmt == "parquet" and types.get("student_id", "VARCHAR") != "VARCHAR":
        log.warning(
            "%s: student_id is stored as %s, not text; leading zeros may have been "
            "lost before ingest",
            p,
            types["student_id"],
        )
    src = SourceFile(name, p, fmt, tuple(cols), types)
    for c in src.extra_columns:
        log.warning(
            "%s: column '%s' is not in the data contract; it is dropped at ingest "
            "(never written to data/interim)",
            p,
            c,
        )
    return src


def inspect_extract(
    extract_dir: str | Path,
    con: duckdb.DuckDBPyConnection | None = None,
    problems: list[IngestError] | None = None,
) -> dict[str, SourceFile]:
    """Find the table files of an extract and check the file-level rules.

    Parameters
    ----------
    extract_dir
        The extract folder.
    con
        DuckDB connection used to read Parquet schemas (a fresh one if omitted).
    problems
        If given, every file-level fault is appended to it (an :class:`IngestError`
        with ``file``, ``column`` and ``rule``) and the inspection goes on; the result
        then holds only the files without a fault.  By default the first fault raises.

    Returns
    -------
    dict
        ``{table: SourceFile}`` for the four required tables and the one attendance
        form present (key ``"attendance_monthly"`` or ``"attendance_daily"``).

    Raises
    ------
    IngestError
        Missing folder or table, both or neither attendance form, a table present as
        both CSV and Parquet, an unreadable file, a missing required column, a
        duplicated or reserved column name.
    """
    extract_dir = Path(extract_dir)

    def fault(exc: IngestError) -> None:
        if problems is None:
            raise exc
        problems.append(exc)

    if not extract_dir.is_dir():
        fault(
            IngestError(
                f"{extract_dir}: extract folder not found", file=extract_dir, rule="extract_folder"
            )
        )
        return {}
    own = con is None
    con = duckdb.connect() if con is None else con
    try:
        files: dict[str, Path] = {}
        for name, table in C.TABLES.items():
            try:
                p = _table_file(extract_dir, name)
            except IngestError as exc:
                fault(exc)
                continue
            if p is None:
                if table.required:
                    fault(
                        IngestError(
                            f"{extract_dir}: required table '{name}' is missing "
                            f"(expected {name}.csv or {name}.parquet)",
                            file=extract_dir / f"{name}.csv",
                            rule="required_table",
                        )
                    )
                continue
            files[name] = p
        forms = [f for f in C.ATTENDANCE_FORMS if f in files]
        if len(forms) != 1:
            which = "both" if forms else "neither"
            fault(
                IngestError(
                    f"{extract_dir}: {which} of attendance_monthly and attendance_daily "
                    f"present (rule: exactly one attendance form is required)",
                    file=extract_dir / "attendance_*",
                    rule="one_attendance_form",
                )
            )
        out: dict[str, SourceFile] = {}
        for name, p in files.items():
            try:
                if p.suffix == ".csv":
                    cols = _csv_header(p)
                    types: dict[str, str] = {}
                    fmt = "csv"
                else:
                    types = _parquet_schema(con, p)
                    cols = list(types)
                    fmt = "parquet"
            except IngestError as exc:
                fault(exc)
                continue
            src = _checked_source(name, p, fmt, cols, types, fault)
            if src is not None:
                out[name] = src
        return out
    finally:
        if own:
            con.close()


# --- the validation result -----------------------------------------------------------


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_extract`.

    Attributes
    ----------
    con
        The DuckDB connection holding the relations below (closed by :meth:`close`).
    extract_dir
        The extract folder.
    attendance_form
        ``"attendance_monthly"`` or ``"attendance_daily"``: the form in the extract.
    sources
        ``{table: SourceFile}`` of the extract (keys are the source table names).
    kept
        ``{table: relation name}`` of the kept, typed rows, for ``districts``,
        ``students``, ``enrollment``, ``home_visits`` and ``attendance_monthly`` (for a
        daily extract: its monthly aggregate; the kept daily rows are under
        ``attendance_daily``).  Every relation has an internal ``__row`` column (the
        1-based source row; for the aggregate, the first daily row of the group).
    quarantine
        ``{source table: relation name}`` of the quarantined rows: ``source_row``,
        ``reason`` and every contract column as read (text, raw IDs; extra columns
        are left out).
    counts
        Data frame ``table, reason, rows`` (``read``, ``kept``, ``duplicate_exact`` and
        every quarantine reason, zeros included) per source table.
    pseudonymized
        True when ``student_id`` holds pseudonyms (``validate_extract`` was given
        ``pseudonymize_ids``): then no raw ID is in any relation or scratch file, and
        extra columns hold an MD5 digest of their value (for duplicate detection only).
    n_ids
        Number of distinct non-empty student IDs pseudonymized.
    """

    con: duckdb.DuckDBPyConnection
    extract_dir: Path
    attendance_form: str
    sources: dict[str, SourceFile]
    kept: dict[str, str]
    quarantine: dict[str, str]
    counts: pd.DataFrame
    _scratch: Path | None = None
    pseudonymized: bool = False
    n_ids: int = 0

    # -- access ---------------------------------------------------------------------
    def kept_df(self, table: str) -> pd.DataFrame:
        """The kept rows of ``table`` as a pandas data frame (small tables only)."""
        rel = self.kept[table]
        cols = [
            r[0]
            for r in self.con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
            if r[0] != "__row"
        ]
        return self.con.execute(
            f"SELECT {', '.join(_q(c) for c in cols)} FROM {rel} ORDER BY __row"
        ).df()

    def quarantine_df(self, table: str | None = None) -> pd.DataFrame:
        """Quarantined rows of one source table (or all, with a ``table`` column)."""
        tables = [table] if table is not None else list(self.quarantine)
        frames = []
        for t in tables:
            df = self.con.execute(f"SELECT * FROM {self.quarantine[t]} ORDER BY source_row").df()
            if table is None:
                df.insert(0, "table", t)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if table is None else frames[0]

    def count(self, table: str, reason: str) -> int:
        """Number of rows of ``table`` under ``reason`` (``read``, ``kept``, a code …)."""
        c = self.counts
        sel = c[(c["table"] == table) & (c["reason"] == reason)]
        return int(sel["rows"].sum())

    def n_quarantined(self, table: str | None = None) -> int:
        """Quarantined rows of one table, or of the whole extract."""
        c = self.counts
        sel = c[c["reason"].isin(list(C.REASONS))]
        if table is not None:
            sel = sel[sel["table"] == table]
        return int(sel["rows"].sum())

    def reasons_of(self, table: str) -> dict[int, str]:
        """``{source_row: reason}`` of the quarantined rows of ``table``."""
        rows = self.con.execute(
            f"SELECT source_row, reason FROM {self.quarantine[table]}"
        ).fetchall()
        return {int(r): str(s) for r, s in rows}

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection and delete the scratch files (which hold raw IDs)."""
        with contextlib.suppress(Exception):
            self.con.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> ValidationResult:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- per-table rules -----------------------------------------------------------------


def _parse_exprs(table: str, cols: tuple[str, ...]) -> list[str]:
    """SELECT list of the parsed values (``__p_<col>``, ``__w_<col>``), each computed once."""
    present = set(cols)
    out = []
    for col in C.TABLES[table].columns:
        if col.name not in present:
            continue
        c = _q(col.name)
        if col.type == "bool":
            out.append(f"{_bool_val(c)} AS {_P(col.name)}")
        elif col.type == "int":
            out += [f"{_int_val(c)} AS {_P(col.name)}", f"{_int_whole(c)} AS {_W(col.name)}"]
        elif col.type in ("date", "date_or_empty"):
            out.append(f"{_date_val(c)} AS {_P(col.name)}")
        elif col.type == "month":
            out.append(f"{_month_val(c)} AS {_P(col.name)}")
        elif col.type == "school_year":
            out.append(f"{_sy_start(c)} AS {_P(col.name)}")
    return out


def _sql_date(d: datetime.date) -> str:
    return f"make_date({d.year}, {d.month}, {d.day})"


def _range_rule(col: C.Column, as_of: datetime.date) -> str | None:
    """``date_out_of_range`` condition of one parsed column (None for other types)."""
    p = _P(col.name)
    lo, hi = _sql_date(datetime.date.fromisoformat(C.EARLIEST_DATE)), _sql_date(as_of)
    if col.type in ("date", "date_or_empty", "month"):
        return f"({p} < {lo} OR {p} > {hi})"
    if col.type == "school_year":
        return f"({p} < {int(C.EARLIEST_DATE[:4])} OR make_date({p}, 7, 1) > {hi})"
    return None


def _row_rules(
    table: str, cols: tuple[str, ...], as_of: datetime.date | None = None
) -> list[tuple[str, str]]:
    """``[(reason, SQL condition)]`` of the single-row rules, in REASONS order.

    The conditions read the raw text columns and the parsed columns of
    :func:`_parse_exprs`; each may assume that the earlier ones are false.  ``as_of`` is
    the last day a record may be dated (default: today).
    """
    conds: dict[str, list[str]] = {r: [] for r in C.REASONS}
    for reason, _column, cond in row_rule_columns(table, cols, as_of):
        conds[reason].append(cond)
    return [(r, " OR ".join(cs)) for r, cs in conds.items() if cs]


#: The column each cross-table rule is about (``duplicate_conflict``: the table's key).
CROSS_RULE_COLUMNS = {
    "unknown_student": "student_id",
    "unknown_district": "district_code",
    "visit_district_not_leap": "district_code",
    "visit_outside_enrollment": "visit_date",
    "visit_district_mismatch": "district_code",
    "visit_before_program": "visit_date",
}


def row_rule_columns(
    table: str, cols: tuple[str, ...], as_of: datetime.date | None = None
) -> list[tuple[str, str, str]]:
    """``[(reason, column, SQL condition)]``: the single-row rules, one per column.

    A reason's condition in :func:`_row_rules` is the OR of its conditions here; the
    column is the one whose value breaks the rule (for rules across columns, the one
    reported: ``days_present`` for ``present_exceeds_membership``, ``month`` for
    ``month_school_year_mismatch``, the date for ``date_outside_school_year``).
    """
    spec = C.TABLES[table]
    present = set(cols)
    as_of = as_of or datetime.date.today()
    conds: dict[str, list[tuple[str, str]]] = {r: [] for r in C.REASONS}
    for col in spec.columns:
        if col.name not in present:
            continue  # only the optional 'mode' can be absent here
        c, p = _q(col.name), _P(col.name)
        nonempty = f"NOT {_empty(c)}"
        n = col.name
        if col.required and col.type != "date_or_empty":
            conds["missing_value"].append((n, _empty(c)))
        if col.allowed is not None:
            conds["invalid_value"].append(
                (n, f"({c} NOT IN {_in_list(col.allowed)} AND {nonempty})")
            )
        if col.type == "bool":
            conds["invalid_bool"].append((n, f"({p} IS NULL AND {nonempty})"))
        elif col.type == "int":
            conds["invalid_int"].append((n, f"(NOT {_W(col.name)} AND {nonempty})"))
        elif col.type in ("date", "date_or_empty"):
            conds["invalid_date"].append((n, f"({p} IS NULL AND {nonempty})"))
        elif col.type == "month":
            conds["invalid_month"].append((n, f"({p} IS NULL AND {nonempty})"))
        elif col.type == "school_year":
            conds["invalid_school_year"].append((n, f"({p} IS NULL AND {nonempty})"))
        rng = _range_rule(col, as_of)
        if rng is not None:
            conds["date_out_of_range"].append((n, rng))
    if table == "attendance_monthly":
        mem, pres = _P("days_membership"), _P("days_present")
        conds["invalid_value"] += [
            (
                "days_membership",
                f"({_W('days_membership')} AND ({mem} IS NULL OR {mem} < 0 "
                f"OR {mem} > {C.MAX_DAYS_MEMBERSHIP}))",
            ),
            ("days_present", f"({_W('days_present')} AND ({pres} IS NULL OR {pres} < 0))"),
        ]
        sy, m = _P("school_year"), _P("month")
        conds["month_school_year_mismatch"].append(
            ("month", f"({_school_year_of_date(m)} <> {sy})")
        )
        conds["present_exceeds_membership"].append(("days_present", f"({pres} > {mem})"))
    elif table == "enrollment":
        sy, entry, exit_ = _P("school_year"), _P("entry_date"), _P("exit_date")
        lo, hi = f"make_date({sy}, 7, 1)", f"make_date({sy} + 1, 6, 30)"
        conds["date_outside_school_year"] += [
            ("entry_date", f"({entry} < {lo} OR {entry} > {hi})"),
            ("exit_date", f"({exit_} IS NOT NULL AND ({exit_} < {lo} OR {exit_} > {hi}))"),
        ]
        conds["exit_before_entry"].append(
            ("exit_date", f"({exit_} IS NOT NULL AND {exit_} < {entry})")
        )
    elif table == "attendance_daily":
        conds["not_a_weekday"].append(("date", f"(isodow({_P('date')}) IN (6, 7))"))
    return [(r, col, cond) for r, cs in conds.items() for col, cond in cs]


def _typed_exprs(table: str, cols: tuple[str, ...], extras: bool = False) -> list[str]:
    """SELECT list of the typed interim columns (from the raw and parsed columns).

    Columns the contract does not name are left out (they never reach ``data/interim``:
    they may hold raw IDs); ``extras=True`` appends them as text (for the duplicate
    comparison only).
    """
    spec = C.TABLES[table]
    present = set(cols)
    out = []
    for col in spec.columns:
        c, p = _q(col.name), _P(col.name)
        if col.name not in present:
            out.append(f"CAST(NULL AS VARCHAR) AS {c}")
        elif col.type in ("bool", "date", "date_or_empty"):
            out.append(f"{p} AS {c}")
        elif col.type == "int":
            out.append(f"CAST({p} AS INTEGER) AS {c}")
        elif not col.required:
            out.append(f"(CASE WHEN {_empty(c)} THEN NULL ELSE {c} END) AS {c}")
        else:
            out.append(f"{c}")
    if extras:
        names = {c.name for c in spec.columns}
        out += [_q(c) for c in cols if c not in names]
    return out


def _source_select(src: SourceFile) -> str:
    """SELECT of the source file: ``__row`` (1-based) and every column as text."""
    path = _lit(str(src.path))
    if src.format == "csv":
        colspec = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in src.columns) + "}"
        reader = (
            f"read_csv({path}, columns={colspec}, header=true, auto_detect=false, "
            f"delim=',', quote='\"', escape='\"', strict_mode=true, null_padding=false)"
        )
        cols = ", ".join(_q(c) for c in src.columns)
        return f"SELECT row_number() OVER () AS __row, {cols} FROM {reader}"
    return (
        f"SELECT CAST(file_row_number AS BIGINT) + 1 AS __row, "
        f"{', '.join(_parquet_text_exprs(src))} "
        f"FROM read_parquet({path}, file_row_number=true)"
    )


def _parquet_text_exprs(src: SourceFile) -> list[str]:
    """SELECT list turning each column of a Parquet source into text (shared by engines)."""
    date_cols = {c.name for c in C.TABLES[src.table].columns if c.type in ("date", "date_or_empty")}
    exprs = []
    for c in src.columns:
        t = src.parquet_types.get(c, "VARCHAR").upper()
        qc = _q(c)
        if c in date_cols and t.startswith("TIMESTAMP"):
            e = (
                f"(CASE WHEN {qc} = date_trunc('day', {qc}) THEN strftime({qc}, '%Y-%m-%d') "
                f"ELSE CAST({qc} AS VARCHAR) END)"
            )
        elif t == "VARCHAR":
            e = qc
        else:
            e = f"CAST({qc} AS VARCHAR)"
        exprs.append(f"{e} AS {qc}")
    return exprs


def _canonical_hash(table: str, cols: tuple[str, ...]) -> str:
    """hash() of a row's parsed values (equal for rows that mean the same)."""
    exprs = [e.rsplit(" AS ", 1)[0] for e in _typed_exprs(table, cols, extras=True)]
    return "hash(" + ", ".join(exprs) + ")"


def _exec(con: duckdb.DuckDBPyConnection, sql: str, src: SourceFile | None = None) -> None:
    try:
        con.execute(sql)
    except getattr(con, "errors", duckdb.Error) as exc:
        if src is None:
            raise
        enc = _utf8_problem(src.path) if src.format == "csv" else None
        if enc is not None:
            raise IngestError(f"{src.path}: {enc}") from None
        raise IngestError(
            f"{src.path}: unreadable file (table '{src.table}'): {_error_summary(exc)}"
        ) from None


def _utf8_problem(path: Path, chunk: int = 1 << 20) -> str | None:
    """Where a file stops being UTF-8 (line, byte offset, byte), or None when it is UTF-8.

    The message quotes no content (the file may hold raw IDs), only the offending byte.
    """
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                try:
                    dec.decode(block)
                except UnicodeDecodeError as exc:
                    pos = offset + exc.start
                    line = lines + block.count(b"\n", 0, exc.start) + 1
                    return _encoding_message(line, pos, block[exc.start])
                offset += len(block)
                lines += block.count(b"\n")
            dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return _encoding_message(lines + 1, offset, None)
    except OSError:
        return None
    return None


def _encoding_message(line: int, pos: int, byte: int | None) -> str:
    what = f"byte 0x{byte:02X}" if byte is not None else "a truncated multi-byte sequence"
    hint = " (it looks like Latin-1/Windows-1252)" if byte is not None and byte >= 0xA0 else ""
    return (
        f"not valid UTF-8: {what} at line {line} (byte offset {pos}){hint} "
        "(rule: CSV files are UTF-8; re-export the file as UTF-8)"
    )


def _register_id_map(
    con: duckdb.DuckDBPyConnection,
    sources: dict[str, SourceFile],
    fn: Callable[[list[str]], list[str]],
) -> int:
    """Pseudonyms of every distinct non-empty raw ``student_id``, as view ``__idmap``.

    The distinct raw IDs are fetched straight into Python (never stored in DuckDB) and
    registered as an in-memory data frame (``__raw``, ``__key``).
    """
    ids: set[str] = set()
    for src in sources.values():
        if "student_id" not in src.columns:
            continue
        sql = (
            f"SELECT DISTINCT student_id FROM ({_source_select(src)}) "
            f"WHERE NOT {_empty('student_id')}"
        )
        try:
            got = con.execute(sql).fetchnumpy()["student_id"]
        except duckdb.Error as exc:
            enc = _utf8_problem(src.path) if src.format == "csv" else None
            raise IngestError(
                f"{src.path}: {enc or f'unreadable file (table {src.table!r}): '}"
                f"{'' if enc else _error_summary(exc)}"
            ) from None
        ids.update(str(s) for s in got)
    raw = sorted(ids)
    con.register("__idmap", pd.DataFrame({"__raw": raw, "__key": fn(raw)}))
    del ids
    return len(raw)


def _pseudonymized_select(src: SourceFile) -> str:
    """The source SELECT with ``student_id`` replaced by its pseudonym as it is read.

    Empty or blank IDs stay as they are (rule ``missing_value``); extra columns become
    the MD5 digest of their text (they may hold raw IDs; equal values stay equal, so
    exact-duplicate detection is unchanged).
    """
    names = {c.name for c in C.TABLES[src.table].columns}
    cols = []
    for c in src.columns:
        qc = f"s.{_q(c)}"
        if c == "student_id":
            cols.append(f"CASE WHEN {_empty(qc)} THEN {qc} ELSE m.__key END AS student_id")
        elif c in names:
            cols.append(qc)
        else:
            cols.append(f"md5({qc}) AS {_q(c)}")
    join = " LEFT JOIN __idmap m ON m.__raw = s.student_id" if "student_id" in src.columns else ""
    return f"SELECT s.__row, {', '.join(cols)} FROM ({_source_select(src)}) s{join}"


def _check_not_empty(src: SourceFile, n_read: int) -> None:
    """A required table with a header and no data rows is a file-level fault."""
    if n_read == 0 and src.table in C.NONEMPTY_TABLES:
        raise IngestError(
            f"{src.path}: table '{src.table}' has a header but no data rows "
            f"(rule: the extract must hold at least one {src.table} row); "
            "was the export cut short?"
        )


def _error_summary(exc: BaseException) -> str:
    """The first line of an engine's error, without quoted values (they may be raw IDs)."""
    if isinstance(exc, duckdb.Error):
        # first line only: DuckDB's later lines may quote the raw row (raw IDs)
        return str(exc).splitlines()[0]
    # Spark: its error classes only, outermost to innermost cause (its messages may quote
    # the malformed record)
    codes = list(dict.fromkeys(re.findall(r"\[([A-Z]+(?:_[A-Z]+)+(?:\.[A-Z_]+)?)\]", str(exc))))
    return f"Spark error {' / '.join(codes[-2:]) if codes else type(exc).__name__}"


def _spark_source(spark, src: SourceFile) -> str:
    """The Spark reader's SELECT of a source file (its read errors as IngestError)."""
    try:
        return spark.source_select(src)
    except spark.errors as exc:
        raise IngestError(
            f"{src.path}: unreadable file (table '{src.table}'): {_error_summary(exc)}"
        ) from None


def _process_table(
    con: duckdb.DuckDBPyConnection,
    src: SourceFile,
    source_sql: str | None = None,
    as_of: datetime.date | None = None,
) -> None:
    """Create chk_/bad_/kept_/quar_ relations of one source table.

    ``source_sql`` is the SELECT of the raw file (``__row`` and every column as text);
    by default DuckDB's reader (:func:`_source_select`).  ``as_of``: see
    :func:`_row_rules`.
    """
    if source_sql is None:
        source_sql = _source_select(src)
    t = src.table
    cols = src.columns
    rules = _row_rules(t, cols, as_of)
    case = "CASE " + " ".join(f"WHEN {cond} THEN {_lit(r)}" for r, cond in rules) + " END"
    parsed = ", ".join(["*", *_parse_exprs(t, cols)])
    _exec(
        con,
        f"CREATE TABLE chk_{t} AS SELECT *, {case} AS __rr FROM "
        f"(SELECT {parsed} FROM ({source_sql}))",
        src,
    )

    # cross-table rules against the kept rows of earlier tables
    joins, cross = [], []
    has_student = "student_id" in {c.name for c in C.TABLES[t].columns} and t != "students"
    if has_student:
        joins.append(
            "LEFT JOIN (SELECT student_id AS __sid FROM kept_students) ks "
            "ON ks.__sid = c.student_id"
        )
        cross.append(("unknown_student", "ks.__sid IS NULL"))
    if t not in ("districts",) and "district_code" in cols:
        joins.append(
            "LEFT JOIN (SELECT district_code AS __dc, leap AS __leap FROM "
            "kept_districts) kd ON kd.__dc = c.district_code"
        )
        cross.append(("unknown_district", "kd.__dc IS NULL"))
    if t == "home_visits":
        _visit_rules(con, joins, cross)
    pre_case = (
        "CASE WHEN c.__rr IS NOT NULL THEN c.__rr "
        + " ".join(f"WHEN {cond} THEN {_lit(r)}" for r, cond in cross)
        + " END"
    )
    con.execute(
        f"CREATE VIEW pre_{t} AS SELECT c.*, {pre_case} AS __pre FROM chk_{t} c " + " ".join(joins)
    )

    # duplicates: only rows whose raw key occurs more than once need the window work
    key = [_q(k) for k in C.TABLES[t].key]
    # (grouped by a 64-bit hash of the key: collisions only add candidates, never drop one)
    kh = "hash(" + ", ".join(key) + ")"
    con.execute(
        f"CREATE TABLE dk_{t} AS SELECT {kh} AS __kh FROM chk_{t} GROUP BY 1 HAVING count(*) > 1"
    )
    on = "hash(" + ", ".join(f"p.{k}" for k in key) + ") = d.__kh"
    allc = ", ".join(f"p.{_q(c)}" for c in cols)
    part = ", ".join(key)
    con.execute(
        f"""
        CREATE TABLE dres_{t} AS
        WITH d AS (
            SELECT p.*, row_number() OVER (PARTITION BY {allc} ORDER BY p.__row) AS __rk
            FROM pre_{t} p JOIN dk_{t} d ON {on}
        ), e AS (
            SELECT *, CASE WHEN __rk > 1 THEN 'duplicate_exact' ELSE __pre END AS __r1 FROM d
        ), ok AS (
            SELECT __row, {part}, {_canonical_hash(t, cols)} AS __h FROM e WHERE __r1 IS NULL
        )
        SELECT __row, __r1 AS __reason FROM e WHERE __r1 IS NOT NULL
        UNION ALL
        SELECT __row,
               CASE WHEN min(__h) OVER w <> max(__h) OVER w THEN 'duplicate_conflict'
                    WHEN row_number() OVER (PARTITION BY {part} ORDER BY __row) > 1
                    THEN 'duplicate_exact' END
        FROM ok WINDOW w AS (PARTITION BY {part})
        """
    )
    con.execute(
        f"""
        CREATE TABLE bad_{t} AS
        SELECT * FROM (
            SELECT p.__row,
                   CASE WHEN d.__row IS NOT NULL THEN d.__reason ELSE p.__pre END AS reason
            FROM pre_{t} p LEFT JOIN dres_{t} d ON d.__row = p.__row
        ) WHERE reason IS NOT NULL
        """
    )
    typed = ", ".join(_typed_exprs(t, cols))
    kept_sql = (
        f"SELECT __row, {typed} FROM chk_{t} c "
        f"WHERE NOT EXISTS (SELECT 1 FROM bad_{t} b WHERE b.__row = c.__row)"
    )
    kind = "VIEW" if t in C.ATTENDANCE_FORMS else "TABLE"
    con.execute(f"CREATE {kind} kept_{t} AS {kept_sql}")
    names = {c.name for c in C.TABLES[t].columns}
    raw = ", ".join(f"c.{_q(c)}" for c in cols if c in names)
    con.execute(
        f"CREATE VIEW quar_{t} AS SELECT b.__row AS source_row, b.reason, {raw} "
        f"FROM bad_{t} b JOIN chk_{t} c ON c.__row = b.__row "
        f"WHERE b.reason <> {_lit(C.DUPLICATE_EXACT)}"
    )


def _visit_rules(con, joins: list[str], cross: list[tuple[str, str]]) -> None:
    """The cross-table rules of home visits (joins and conditions, in REASONS order).

    ``hv_enrolled``: per visit, whether the student has a kept enrollment spell covering
    the visit date (``__any``) and whether one of them is in the visit's district
    (``__same``).
    """
    cross.append(("visit_district_not_leap", "NOT kd.__leap"))
    vd = f"v.{_P('visit_date')}"
    con.execute(
        f"CREATE TABLE hv_enrolled AS SELECT v.__row, "
        f"bool_or(e.district_code = v.district_code) AS __same "
        f"FROM chk_home_visits v "
        f"JOIN kept_enrollment e ON e.student_id = v.student_id "
        f"AND {vd} >= e.entry_date AND {vd} <= coalesce(e.exit_date, "
        f"make_date(CAST(substr(e.school_year, 1, 4) AS INTEGER) + 1, 6, 30)) "
        f"WHERE v.__rr IS NULL GROUP BY v.__row"
    )
    joins.append("LEFT JOIN hv_enrolled he ON he.__row = c.__row")
    cross.append(("visit_outside_enrollment", "he.__row IS NULL"))
    cross.append(("visit_district_mismatch", "NOT he.__same"))
    start = datetime.date.fromisoformat(C.PROGRAM_START_DATE)
    cross.append(("visit_before_program", f"c.{_P('visit_date')} < {_sql_date(start)}"))


def _daily_to_monthly(con: duckdb.DuckDBPyConnection) -> None:
    """Aggregate the kept daily rows to the monthly form (a view, evaluated lazily).

    One monthly row per student, district, school and month: ``days_membership`` = days
    with a row, ``days_present`` = days with ``present`` true.  Extra columns of the daily
    file are not carried into the aggregate.
    """
    sy = _school_year_of_date('"date"')
    con.execute(
        f"""
        CREATE VIEW kept_attendance_monthly AS
        SELECT min(__row) AS __row, student_id,
               CAST(__sy AS VARCHAR) || '-' || lpad(CAST((__sy + 1) % 100 AS VARCHAR), 2, '0')
                   AS school_year,
               district_code, school_code, month,
               CAST(count(*) AS INTEGER) AS days_membership,
               CAST(count(*) FILTER (WHERE present) AS INTEGER) AS days_present
        FROM (SELECT __row, student_id, district_code, school_code, present,
                     strftime("date", '%Y-%m') AS month, {sy} AS __sy
              FROM kept_attendance_daily)
        GROUP BY student_id, district_code, school_code, month, __sy
        """
    )


def _counts(con: duckdb.DuckDBPyConnection, t: str) -> list[tuple[str, str, int]]:
    read = con.execute(f"SELECT count(*) FROM chk_{t}").fetchone()[0]
    by = dict(con.execute(f"SELECT reason, count(*) FROM bad_{t} GROUP BY reason").fetchall())
    kept = con.execute(f"SELECT count(*) FROM kept_{t}").fetchone()[0]
    unknown = set(by) - set(C.REASONS) - {C.DUPLICATE_EXACT}
    if unknown or read != kept + sum(by.values()):  # pragma: no cover - internal invariant
        raise RuntimeError(f"{t}: accounting identity broken ({read=}, {kept=}, {by=})")
    rows = [
        (t, C.READ, read),
        (t, C.KEPT, kept),
        (t, C.DUPLICATE_EXACT, by.get(C.DUPLICATE_EXACT, 0)),
    ]
    rows += [(t, r, by.get(r, 0)) for r in C.REASONS]
    return rows


#: Extracts with more rows than this (estimated) get a file-backed scratch database.
ON_DISK_ROWS = 20_000_000
_CSV_BYTES_PER_ROW = 40  # a conservative estimate for the row count of a CSV file


def estimated_rows(sources: dict[str, SourceFile]) -> int:
    """Row count of the extract: exact for Parquet (metadata), estimated for CSV."""
    n = 0
    with duckdb.connect() as con:
        for s in sources.values():
            if s.format == "parquet":
                n += (
                    con.execute(
                        f"SELECT sum(num_rows) FROM parquet_file_metadata({_lit(str(s.path))})"
                    ).fetchone()[0]
                    or 0
                )
            else:
                n += s.path.stat().st_size // _CSV_BYTES_PER_ROW
    return int(n)


def connect(
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_dir: str | Path | None = None,
    on_disk: bool = False,
) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """A DuckDB connection with a scratch folder for spill files (and the database).

    ``on_disk=True`` puts the database itself in the scratch folder (compressed, so that
    very large extracts fit); otherwise it is in memory, spilling to the folder when
    ``memory_limit`` is reached.  The folder is private to the run (0700,
    :func:`pipeline.scratch.make_private_dir`, under ``temp_dir`` or the per-user scratch
    base); delete it when done.
    """
    scratch = make_private_dir("ingest", temp_dir)
    con = duckdb.connect(str(scratch / "scratch.duckdb") if on_disk else ":memory:")
    con.execute(f"SET temp_directory = {_lit(str(scratch / 'spill'))}")
    con.execute("SET preserve_insertion_order = true")
    if memory_limit:
        con.execute(f"SET memory_limit = {_lit(memory_limit)}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con, scratch


def validate_extract(
    extract_dir: str | Path,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_dir: str | Path | None = None,
    on_disk: bool | None = None,
    spark=None,
    as_of: datetime.date | None = None,
    pseudonymize_ids: Callable[[list[str]], list[str]] | None = None,
) -> ValidationResult:
    """Check an extract against every rule of the data contract.

    Parameters
    ----------
    extract_dir
        Folder holding ``<table>.csv`` or ``<table>.parquet`` per table.
    memory_limit, threads
        DuckDB settings (e.g. ``"2GB"``, ``2``); DuckDB's defaults when omitted.
    temp_dir
        Where the scratch database and spill files go (system temp folder by default).
    on_disk
        Keep the scratch database in a (compressed) file rather than in memory; by
        default only for extracts of more than :data:`ON_DISK_ROWS` rows (e.g. a daily
        attendance table), so that they fit in ``memory_limit``.
    spark
        A :class:`pipeline.spark_engine.SparkConnection`: run the same checks on Spark
        (the relations are then Spark temporary views; the DuckDB settings are unused).
    as_of
        The last day a record may be dated (rule ``date_out_of_range``); today by
        default.
    pseudonymize_ids
        Maps a list of distinct raw IDs to their pseudonyms (one-to-one; e.g.
        ``lambda ids: pipeline.pseudonym.pseudonymize(ids, key)``).  When given (DuckDB
        only), IDs are replaced as the files are read: the raw IDs exist only in this
        process's memory (a Python list and the join's in-memory hash table, about
        ``n_ids`` short strings), never in a DuckDB table, a spill file or the scratch
        database, so a killed run leaves no raw ID on disk.

    Returns
    -------
    ValidationResult
        Kept and quarantined rows as DuckDB relations plus the accounting counts.  Use it
        as a context manager (or call ``close()``) to delete the scratch files.

    Raises
    ------
    IngestError
        On any file-level fault (the message names the file, column and rule).
    """
    extract_dir = Path(extract_dir)
    sources = inspect_extract(extract_dir)
    if spark is not None:
        con, scratch = spark, None
        log.info("checking on Spark")
    else:
        if on_disk is None:
            on_disk = estimated_rows(sources) > ON_DISK_ROWS
        con, scratch = connect(memory_limit, threads, temp_dir, on_disk=on_disk)
        log.info("scratch database %s", "on disk" if on_disk else "in memory")
    try:
        form = next(f for f in C.ATTENDANCE_FORMS if f in sources)
        order = ["districts", "students", "enrollment", form, "home_visits"]
        rows: list[tuple[str, str, int]] = []
        early = pseudonymize_ids is not None and spark is None
        n_ids = _register_id_map(con, sources, pseudonymize_ids) if early else 0
        for t in progress(order, "checking tables", unit="table"):
            log.info("checking %s (%s)", sources[t].path.name, sources[t].format)
            if spark is not None:
                source_sql = _spark_source(spark, sources[t])
            elif early:
                source_sql = _pseudonymized_select(sources[t])
            else:
                source_sql = None
            _process_table(con, sources[t], source_sql, as_of)
            rows += _counts(con, t)
            _check_not_empty(sources[t], rows[-len(C.REASONS) - 3][2])
            log.info(
                "%s: read %d, kept %d",
                t,
                rows[-len(C.REASONS) - 3][2],
                rows[-len(C.REASONS) - 2][2],
            )
        kept = {t: f"kept_{t}" for t in order}
        if form == "attendance_daily":
            _daily_to_monthly(con)
            kept["attendance_monthly"] = "kept_attendance_monthly"
        counts = pd.DataFrame(rows, columns=["table", "reason", "rows"])
        counts["rows"] = counts["rows"].astype("int64")
        return ValidationResult(
            con=con,
            extract_dir=extract_dir,
            attendance_form=form,
            sources=sources,
            kept=kept,
            quarantine={t: f"quar_{t}" for t in order},
            counts=counts,
            _scratch=scratch,
            pseudonymized=early,
            n_ids=n_ids,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            con.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise


# --- stage-level rules ---------------------------------------------------------------


def reject_rates(counts: pd.DataFrame) -> pd.Series:
    """Quarantined share of the rows read, per table (0 for an empty table)."""
    c = counts
    read = c[c["reason"] == C.READ].set_index("table")["rows"]
    q = c[c["reason"].isin(list(C.REASONS))].groupby("table", sort=False)["rows"].sum()
    return (q / read.where(read > 0)).fillna(0.0).reindex(read.index)


def check_reject_rates(counts: pd.DataFrame, max_reject_rate: float) -> None:
    """Raise :class:`RejectRateError` when a table's quarantined share is too high.

    The message names every offending table, its share and its dominant reasons.
    """
    rates = reject_rates(counts)
    bad = rates[rates > max_reject_rate]
    if bad.empty:
        return
    parts = []
    for table, rate in bad.items():
        c = counts[(counts["table"] == table) & counts["reason"].isin(list(C.REASONS))]
        top = c[c["rows"] > 0].sort_values(["rows", "reason"], ascending=[False, True]).head(3)
        reasons = ", ".join(f"{r} ({n})" for r, n in zip(top["reason"], top["rows"], strict=True))
        parts.append(
            f"table '{table}': {rate:.1%} of rows quarantined; dominant reasons: {reasons}"
        )
    raise RejectRateError(
        f"quarantined share above quality.max_reject_rate = {max_reject_rate:g}: "
        + "; ".join(parts)
    )
