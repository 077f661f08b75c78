"""Property-based: random corruptions of a small valid extract.

Whatever is done to the extract, validation either raises the documented
:class:`IngestError` (a file-level fault) or returns counts for which
read = kept + duplicate_exact + quarantined holds exactly, the relations agree with the
counts, the stage writes the same counts, and the kept rows, written back out, pass
every rule again (idempotence).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import contract as C
from pipeline.checks import IngestError, validate_extract
from pipeline.ingest import run_ingest
from tests.extract_factory import valid_tables, write_extract

BASE = valid_tables()

NASTY = [
    "",
    " ",
    None,
    "x",
    "0",
    "1",
    "-1",
    "24",
    "23",
    "2.5",
    "1e3",
    "TRUE",
    "nan",
    "NULL",
    "2020-09-12",
    "2021-02-30",
    "2021-13",
    "2021-06",
    "2019-20",
    "2021-22",
    "2022-07-01",
    "000101",
    "000102",
    "999999",
    "001",
    "002",
    "K",
    "PK",
    "13",
    "F",
    "WHITE",
    "completed",
    "virtual",
    "a,b",
    'q"uote',
    "line\nbreak",
    "ü",
    "9" * 30,
]

TABLES = ["districts", "students", "enrollment", "attendance", "home_visits"]


@st.composite
def corruption(draw):
    form = draw(st.sampled_from(["monthly", "daily"]))
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    tables = {k: v.copy() for k, v in BASE.items()}
    att = f"attendance_{form}"
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["set", "set", "set", "dup", "dup_change", "drop_row", "drop_col"]),
                st.sampled_from(TABLES),
                st.integers(0, 10_000),
                st.integers(0, 10_000),
                st.one_of(st.sampled_from(NASTY), st.text(max_size=6)),
            ),
            min_size=1,
            max_size=6,
        )
    )
    for op, t, i, j, value in ops:
        t = att if t == "attendance" else t
        df = tables[t]
        if len(df) == 0:
            continue
        r, c = df.index[i % len(df)], df.columns[j % len(df.columns)]
        if op == "set":
            df.loc[r, c] = value
        elif op == "dup":
            tables[t] = pd.concat([df, df.loc[[r]]], ignore_index=True)
        elif op == "dup_change":
            tables[t] = pd.concat([df, df.loc[[r]].assign(**{c: value})], ignore_index=True)
        elif op == "drop_row":
            tables[t] = df.drop(index=r).reset_index(drop=True)
        elif op == "drop_col" and value in ("", None):  # rarer: mostly a file-level fault
            tables[t] = df.drop(columns=c)
    return tables, fmt, form


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_bool_dtype(s):
            out[c] = s.map({True: "true", False: "false"})
        else:
            out[c] = s.astype("string")
        out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out


# 15 examples (30 before): each runs the checks three times (3-10 s on two shared cores).
# The same accounting is checked on random faults, formats and encodings by
# test_fuzz_ingest_and_panel below and for every single-row rule by tests/test_checks.py
# (a longer run: benchmarks/fuzz_ingest.py).
@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=corruption())
def test_corruptions_never_crash_and_accounting_holds(tmp_path_factory, case):
    tables, fmt, form = case
    path = write_extract(tmp_path_factory.mktemp("x"), tables, fmt=fmt, form=form)
    try:
        res = validate_extract(path)
    except IngestError:
        return
    with res:
        att = res.attendance_form
        for t in ["districts", "students", "enrollment", att, "home_visits"]:
            c = res.counts[res.counts["table"] == t].set_index("reason")["rows"]
            assert c[C.READ] == len(tables[t])
            assert c[C.READ] == c[C.KEPT] + c[C.DUPLICATE_EXACT] + c[list(C.REASONS)].sum()
            assert len(res.kept_df(t)) == c[C.KEPT]
            q = res.quarantine_df(t)
            assert len(q) == c[list(C.REASONS)].sum()
            assert set(q["reason"]) <= set(C.REASONS)
            assert q["source_row"].between(1, len(tables[t])).all()
        kept = {
            t: _as_text(res.kept_df(t))
            for t in ["districts", "students", "enrollment", att, "home_visits"]
        }
    # the stage itself: same counts, written; no raw ID column anywhere
    out = tmp_path_factory.mktemp("out")
    counts = run_ingest(
        path, out / "interim", out / "dq.csv", max_reject_rate=1.0, environ={}, synthetic=True
    )
    pd.testing.assert_frame_equal(counts, res.counts)
    pd.testing.assert_frame_equal(pd.read_csv(out / "dq.csv"), res.counts)
    for f in (out / "interim").rglob("*.parquet"):
        assert "student_id" not in pd.read_parquet(f).columns
    # idempotence: the kept rows break no rule (a required table left with no kept rows
    # is, written again, a header-only file: a file-level error by the contract's rule)
    if any(len(kept[t]) == 0 for t in ("districts", "students", "enrollment", att)):
        with pytest.raises(IngestError, match="header but no data rows"):
            validate_extract(write_extract(tmp_path_factory.mktemp("y"), kept, fmt="csv",
                                           form=form))
        return
    again = write_extract(tmp_path_factory.mktemp("y"), kept, fmt="csv", form=form)
    with validate_extract(again) as res2:
        assert res2.n_quarantined() == 0, res2.quarantine_df()
        assert res2.count("students", C.DUPLICATE_EXACT) == 0


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rnd=st.randoms(use_true_random=False))
def test_fuzz_ingest_and_panel(rnd):
    """Random faults, formats and encodings: ingest then panel (≈ 15-25 s budget).

    No exception other than the documented file-level errors, every row of every intact
    file accounted for in data_quality, no raw ID in any output (tests/fuzz_extracts.py;
    a longer run: benchmarks/fuzz_ingest.py).
    """
    from tests.fuzz_extracts import random_case, run_case

    r = run_case(random_case(rnd))
    assert r["rows_lost"] == 0
