"""Check an extract against the data contract without running the pipeline.

``leap check-extract DIR`` (:func:`check_extract`, :func:`format_problems`) runs the
ingest stage's own checks (:mod:`pipeline.checks`) on an extract folder and lists every
problem: file, column, rule and number of rows, nothing written.

* File-level faults (a missing table or column, an unreadable file, both attendance
  forms, …) are all collected, not only the first one that ingest stops at.  When there
  is one, the row-level checks are not run (ingest would not get that far).
* Row-level faults are counted per table, rule and column: every row that breaks the
  rule in that column, including rows that ingest quarantines for an earlier rule (it
  records only the first); a note per table gives the rows ingest would quarantine.
* A table whose quarantined share exceeds ``quality.max_reject_rate`` is a problem of
  its own (ingest stops on it).
* Exact duplicate rows, which ingest collapses and counts, are listed as notes.

Exit status of the command: 0 clean, 1 rows would be quarantined, 2 ingest would stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import checks
from pipeline import contract as C

#: Exit statuses of ``leap check-extract``.
CLEAN, ROWS_QUARANTINED, INGEST_WOULD_STOP = 0, 1, 2


@dataclass(frozen=True)
class Problem:
    """One problem of an extract.

    Attributes
    ----------
    file
        The file (or file pattern) concerned.
    column
        The column, or ``None`` for a whole file or table.
    rule
        The rule broken: a quarantine reason of :data:`pipeline.contract.REASONS`, a
        file-level rule (``required_column``, ``required_table``, …) or
        ``max_reject_rate``.
    rows
        Rows concerned; ``None`` for file-level faults.
    message
        What is wrong, in words.
    level
        ``"fatal"`` (ingest stops), ``"quarantine"`` (rows set aside) or ``"note"``.
    """

    file: str
    column: str | None
    rule: str
    rows: int | None
    message: str
    level: str

    def line(self) -> str:
        """``file | column | rule | rows | message`` on one line."""
        rows = "-" if self.rows is None else f"{self.rows:,}"
        return f"{self.file} | {self.column or '-'} | {self.rule} | {rows} | {self.message}"


def _file_problems(extract_dir: Path) -> list[Problem]:
    found: list[checks.IngestError] = []
    checks.inspect_extract(extract_dir, problems=found)
    return [
        Problem(e.file or str(extract_dir), e.column, e.rule or "file", None, str(e), "fatal")
        for e in found
    ]


def _row_problems(res: checks.ValidationResult, max_reject_rate: float) -> list[Problem]:
    out: list[Problem] = []
    con = res.con
    counts = res.counts
    for table, src in res.sources.items():
        name = str(src.path)
        tc = counts[counts["table"] == table].set_index("reason")["rows"]
        per_rule = {r: int(tc.get(r, 0)) for r in C.REASONS if int(tc.get(r, 0)) > 0}
        for reason, col, cond in checks.row_rule_columns(table, src.columns):
            # every row breaking the rule in this column, also rows quarantined for an
            # earlier rule (ingest gives each row its first reason only)
            k = con.execute(f"SELECT count(*) FROM chk_{table} WHERE {cond}").fetchone()[0]
            if k:
                out.append(Problem(name, col, reason, int(k), C.REASONS[reason], "quarantine"))
        single = {r for r, _, _ in checks.row_rule_columns(table, src.columns)}
        for reason, n in per_rule.items():
            if reason in single:
                continue
            col = (
                ", ".join(C.TABLES[table].key)
                if reason == "duplicate_conflict"
                else checks.CROSS_RULE_COLUMNS.get(reason)
            )
            out.append(Problem(name, col, reason, n, C.REASONS[reason], "quarantine"))
        if per_rule:
            out.append(
                Problem(
                    name,
                    None,
                    "quarantined",
                    sum(per_rule.values()),
                    "rows ingest would quarantine, each under the first rule it breaks "
                    "(as data_quality.csv counts them)",
                    "note",
                )
            )
        dup = int(tc.get(C.DUPLICATE_EXACT, 0))
        if dup:
            out.append(
                Problem(
                    name,
                    None,
                    C.DUPLICATE_EXACT,
                    dup,
                    "rows identical to an earlier row (collapsed and counted by ingest)",
                    "note",
                )
            )
    rates = checks.reject_rates(counts)
    for table, rate in rates.items():
        if rate > max_reject_rate:
            name = res.sources[table].path.name if table in res.sources else table
            out.append(
                Problem(
                    name,
                    None,
                    "max_reject_rate",
                    res.n_quarantined(table),
                    f"{rate:.1%} of the rows quarantined, more than quality.max_reject_rate "
                    f"= {max_reject_rate:.1%}: ingest stops",
                    "fatal",
                )
            )
    return out


def check_extract(
    extract_dir: str | Path,
    *,
    max_reject_rate: float = 0.05,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> list[Problem]:
    """Every problem of the extract in ``extract_dir`` (an empty list when it is clean).

    Parameters
    ----------
    extract_dir
        The extract folder (one CSV or Parquet file per table).
    max_reject_rate
        ``quality.max_reject_rate``: a larger quarantined share of a table is fatal.
    memory_limit, threads
        DuckDB settings.
    """
    extract_dir = Path(extract_dir)
    fatal = _file_problems(extract_dir)
    if fatal:
        return fatal
    with checks.validate_extract(extract_dir, memory_limit=memory_limit, threads=threads) as res:
        return _row_problems(res, max_reject_rate)


def exit_status(problems: list[Problem]) -> int:
    """0 clean (notes only), 1 rows would be quarantined, 2 ingest would stop."""
    levels = {p.level for p in problems}
    if "fatal" in levels:
        return INGEST_WOULD_STOP
    return ROWS_QUARANTINED if "quarantine" in levels else CLEAN


def format_problems(extract_dir: str | Path, problems: list[Problem]) -> str:
    """The report ``leap check-extract`` prints."""
    status = exit_status(problems)
    head = {
        CLEAN: "no problems: the extract follows the data contract",
        ROWS_QUARANTINED: "rows that ingest would quarantine (the run would go on)",
        INGEST_WOULD_STOP: "ingest would stop on this extract",
    }[status]
    lines = [f"{extract_dir}: {head}"]
    for level, title in (
        ("fatal", "stops ingest"),
        ("quarantine", "quarantined"),
        ("note", "notes"),
    ):
        sel = [p for p in problems if p.level == level]
        if sel:
            lines.append(f"{title} ({len(sel)}): file | column | rule | rows | what")
            lines += [f"  {p.line()}" for p in sel]
    return "\n".join(lines)
