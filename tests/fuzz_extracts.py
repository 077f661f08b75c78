"""Random hostile extracts for fuzzing ingest and panel (tests and benchmarks/fuzz_ingest.py).

:func:`random_case` turns a :class:`random.Random` into a faulty extract: the tiny valid
extract of :mod:`tests.extract_factory` with distinctive raw IDs, then a random list of
faults (values set to nasty text, rows duplicated, changed or dropped, columns dropped
or added, dates moved before 2000 or into the future, visits moved to another district
or before the program, a table cut to its header, the file truncated mid-record) and a
random file format and text encoding.  :func:`run_case` writes it, runs ingest and the
panel on it and checks the properties; it returns a dict of what happened and raises
:class:`FuzzFailure` when a property is broken.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline import contract as C
from pipeline.checks import IngestError
from tests.extract_factory import STUDENT_IDS, valid_tables, write_extract

RAW = {s: f"RAWID{s}X" for s in STUDENT_IDS}
NASTY = [
    "",
    " ",
    "x",
    "0",
    "-1",
    "24",
    "2.5",
    "1e3",
    "TRUE",
    "NULL",
    "2021-02-30",
    "2021-13",
    "1999-10",
    "1999-00",
    "1999-10-05",
    "2031-03-04",
    "2031-03",
    "2030-31",
    "2019-20",
    "2022-07-01",
    "RAWID000101X",
    "RAWID999999X",
    "001",
    "002",
    "K",
    "13",
    "a,b",
    'q"uote',
    "line\nbreak",
    "ü",
    "é",
    "\u2603",
    "9" * 30,
]
ENCODINGS = ["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]
TABLES = ["districts", "students", "enrollment", "attendance", "home_visits"]
OPS = [
    "set",
    "set",
    "set",
    "dup",
    "dup_change",
    "drop_row",
    "drop_col",
    "extra_col",
    "old_date",
    "future_date",
    "other_district",
    "early_visit",
    "header_only",
    "truncate",
]


class FuzzFailure(AssertionError):
    """A fuzzing property was broken (unhandled exception, lost row, raw ID downstream)."""


@dataclass
class Case:
    tables: dict[str, pd.DataFrame]
    fmt: str
    form: str
    encoding: str
    ops: list[tuple] = field(default_factory=list)
    truncate: str | None = None


def _base() -> dict[str, pd.DataFrame]:
    tables = valid_tables()
    for df in tables.values():
        if "student_id" in df.columns:
            df["student_id"] = df["student_id"].map(RAW)
    return tables


_BASE = _base()


def random_case(rnd: random.Random) -> Case:
    """A random faulty extract (see the module docstring)."""
    form = rnd.choice(["monthly", "daily"])
    fmt = rnd.choice(["csv", "csv", "parquet"])
    enc = rnd.choice(ENCODINGS) if fmt == "csv" else "utf-8"
    tables = {k: v.copy() for k, v in _BASE.items()}
    att = f"attendance_{form}"
    case = Case(tables, fmt, form, enc)
    for _ in range(rnd.randint(1, 6)):
        op, t = rnd.choice(OPS), rnd.choice(TABLES)
        t = att if t == "attendance" else t
        case.ops.append((op, t))
        _apply(case, rnd, op, t)
    return case


def _apply(case: Case, rnd: random.Random, op: str, t: str) -> None:  # noqa: C901
    tables = case.tables
    df = tables[t]
    if len(df) == 0:
        return
    r = df.index[rnd.randrange(len(df))]
    c = df.columns[rnd.randrange(len(df.columns))]
    dates = [x.name for x in C.TABLES[t].columns if x.type in ("date", "month")]
    if op == "set":
        v = rnd.choice(NASTY)
        if c == "student_id" or not v.startswith("RAWID"):  # raw IDs only where IDs go
            df.loc[r, c] = v
    elif op == "dup":
        tables[t] = pd.concat([df, df.loc[[r]]], ignore_index=True)
    elif op == "dup_change":
        v = rnd.choice(NASTY)
        v = v if c == "student_id" or not v.startswith("RAWID") else "x"
        tables[t] = pd.concat([df, df.loc[[r]].assign(**{c: v})], ignore_index=True)
    elif op == "drop_row":
        tables[t] = df.drop(index=r).reset_index(drop=True)
    elif op == "drop_col" and rnd.random() < 0.3:
        tables[t] = df.drop(columns=c)
    elif op == "extra_col":
        ids = list(RAW.values())
        df[f"x_{rnd.randrange(100)}"] = [ids[i % len(ids)] for i in range(len(df))]
    elif op == "old_date" and dates:
        col = rnd.choice(dates)
        df.loc[r, col] = "1999-10" if col == "month" else "1999-10-05"
    elif op == "future_date" and dates:
        col = rnd.choice(dates)
        df.loc[r, col] = "2031-03" if col == "month" else "2031-03-04"
    elif op == "other_district" and "district_code" in df.columns:
        df.loc[r, "district_code"] = rnd.choice(["001", "002", "003"])
    elif op == "early_visit" and t == "home_visits":
        df.loc[r, "visit_date"] = rnd.choice(["2021-03-15", "2020-10-05"])
    elif op == "header_only":
        tables[t] = df.iloc[0:0]
    elif op == "truncate":
        case.truncate = t


def write_case(case: Case, path: Path) -> Path:
    """Write the case as an extract folder (encoding and truncation applied)."""
    path = write_extract(path, case.tables, fmt=case.fmt, form=case.form, synthetic=False)
    for p in path.glob("*.csv"):
        if case.encoding != "utf-8":
            text = p.read_text(encoding="utf-8")
            p.write_bytes(text.encode(case.encoding, errors="replace"))
    if case.truncate is not None:
        for p in path.glob(f"{case.truncate}.*"):
            b = p.read_bytes()
            p.write_bytes(b[: max(1, int(len(b) * 0.6))])
    return path


def _n_rows(case: Case, t: str) -> int | None:
    """Rows the file of table ``t`` holds when it was written intact, else None."""
    if case.truncate == t:
        return None
    return len(case.tables[t])


def run_case(case: Case, workdir: Path | None = None) -> dict:
    """Run ingest and panel on the case; check every property.

    Returns
    -------
    dict
        ``outcome`` (``ok``, ``ingest_error`` or ``panel_error``), ``rows_read`` and
        ``rows_lost`` (rows of intact files not accounted for).

    Raises
    ------
    FuzzFailure
        An exception other than the documented ones, a row not accounted for, or a raw
        ID in any output.
    """
    from pipeline.ingestion import run_ingest
    from pipeline.panel_build import PanelInputError, write_panel

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        extract = write_case(case, tmp / "x")
        out = tmp / "out"
        try:
            counts = run_ingest(
                extract,
                out / "interim",
                out / "dq.csv",
                max_reject_rate=1.0,
                environ={"LEAP_ID_KEY": "fuzzing-key-0123456789"},
                threads=1,
            )
        except IngestError as exc:
            if out.exists() and any(out.rglob("*")):
                raise FuzzFailure(f"ingest failed ({exc}) but wrote outputs") from None
            return {"outcome": "ingest_error", "rows_read": 0, "rows_lost": 0}
        except Exception as exc:  # noqa: BLE001 - the property under test
            raise FuzzFailure(f"ingest: unhandled {type(exc).__name__}: {exc}") from exc
        read, lost = _accounting(case, counts)
        outcome = "ok"
        try:
            write_panel(out / "interim", out / "panel.parquet", out / "dq_panel.csv")
        except PanelInputError:
            outcome = "panel_error"
        except Exception as exc:  # noqa: BLE001
            raise FuzzFailure(f"panel: unhandled {type(exc).__name__}: {exc}") from exc
        _no_raw_ids(case, out)
        return {"outcome": outcome, "rows_read": read, "rows_lost": lost}


def _accounting(case: Case, counts: pd.DataFrame) -> tuple[int, int]:
    total = lost = 0
    for t, g in counts.groupby("table"):
        r = g.set_index("reason")["rows"]
        accounted = r[C.KEPT] + r[C.DUPLICATE_EXACT] + r[list(C.REASONS)].sum()
        if r[C.READ] != accounted:
            raise FuzzFailure(f"{t}: read {r[C.READ]} != accounted {accounted}")
        total += int(r[C.READ])
        n = _n_rows(case, t)
        if n is not None and n != r[C.READ]:
            lost += abs(n - int(r[C.READ]))
    if lost:
        raise FuzzFailure(f"{lost} rows of intact files not read")
    return total, lost


def _no_raw_ids(case: Case, out: Path) -> None:
    raw = {v for df in case.tables.values() if "student_id" in df.columns for v in df["student_id"]}
    needles = sorted({str(v).encode() for v in raw if str(v).startswith("RAWID")})
    for p in out.rglob("*"):
        if p.is_file():
            b = p.read_bytes()
            hit = [n for n in needles if n in b]
            if hit:
                raise FuzzFailure(f"raw ID {hit[0]!r} in {p.relative_to(out)}")
        if p.suffix == ".parquet":
            df = pd.read_parquet(p)
            if "student_id" in df.columns:
                raise FuzzFailure(f"student_id column in {p.relative_to(out)}")
            if "student_key" in df.columns:
                keys = df["student_key"].dropna().astype(str)
                bad = keys[~keys.str.fullmatch(r"[0-9a-f]{16}") & (keys.str.strip() != "")]
                if len(bad):
                    raise FuzzFailure(f"non-pseudonym student_key in {p.relative_to(out)}")
