"""The ingest stage end to end: outputs, types, pseudonyms, no raw IDs, atomicity."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import contract as C
from pipeline.checks import IngestError, RejectRateError
from pipeline.ingest import INTERIM_TABLES, run_ingest
from pipeline.pseudonym import PseudonymCollisionError, pseudonymize
from tests.extract_factory import STUDENT_IDS, make_extract, valid_tables, write_extract

SECRET = "a-test-secret-of-some-length"


def _ingest(extract, out: Path, **kw):
    kw.setdefault("environ", {})
    kw.setdefault("synthetic", True)  # the factory's extracts stand in for the synthetic one
    return run_ingest(extract, out / "interim", out / "dq.csv", **kw)


def _read(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / "interim" / f"{table}.parquet")


def _expected_key(raw: str, key: str) -> str:
    return hmac.new(key.encode(), raw.encode(), hashlib.sha256).hexdigest()[:16]


def test_outputs_types_and_accounting(tmp_path):
    out = tmp_path / "out"
    counts = _ingest(make_extract(tmp_path / "x"), out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        ["dq.csv", "interim/extract_meta.json"]
        + [f"interim/{t}.parquet" for t in INTERIM_TABLES]
        + [
            f"interim/quarantine/{t}.parquet"
            for t in ("districts", "students", "enrollment", "attendance_monthly", "home_visits")
        ]
    )
    meta = json.loads((out / "interim" / "extract_meta.json").read_text())
    assert meta["synthetic"] is True and meta["truth"]["synthetic"] is True  # factory marks it
    dq = pd.read_csv(out / "dq.csv")
    assert list(dq.columns) == ["table", "reason", "rows"]
    pd.testing.assert_frame_equal(dq, counts)
    for t, g in dq.groupby("table"):
        r = g.set_index("reason")["rows"]
        assert r["read"] == r["kept"] + r[C.DUPLICATE_EXACT] + r[list(C.REASONS)].sum()
        assert r["kept"] == len(_read(out, t))
    schema = {t: pq.read_schema(out / "interim" / f"{t}.parquet") for t in INTERIM_TABLES}
    enr = schema["enrollment"]
    assert enr.field("entry_date").type == pa.date32()
    assert enr.field("exit_date").type == pa.date32()
    assert enr.field("frl").type == pa.bool_()
    assert enr.field("student_key").type == pa.string()
    assert enr.names[0] == "student_key" and "student_id" not in enr.names
    att = schema["attendance_monthly"]
    assert att.field("days_membership").type == pa.int32()
    assert att.field("month").type == pa.string()
    # empty exit_date and empty mode are null
    assert _read(out, "enrollment")["exit_date"].isna().sum() == sum(
        1 for s in valid_tables()["enrollment"]["exit_date"] if s == ""
    )
    assert _read(out, "home_visits")["mode"].isna().sum() == 1


def test_pseudonyms_are_hmac_and_stable(tmp_path):
    extract = make_extract(tmp_path / "x", synthetic=False)
    out1, out2, out3 = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _ingest(extract, out1, environ={"LEAP_ID_KEY": SECRET})
    _ingest(extract, out2, environ={"LEAP_ID_KEY": SECRET})
    _ingest(extract, out3, environ={"LEAP_ID_KEY": SECRET + "-other"})
    k1 = _read(out1, "students")["student_key"].tolist()
    assert k1 == [_expected_key(s, SECRET) for s in STUDENT_IDS]
    assert k1 == _read(out2, "students")["student_key"].tolist()
    k3 = _read(out3, "students")["student_key"].tolist()
    assert not set(k1) & set(k3)
    # one student, one key, across tables
    enr = _read(out1, "enrollment")
    assert set(enr["student_key"]) <= set(k1)


def test_synthetic_extract_uses_demo_key_only_without_env_key(tmp_path):
    out = tmp_path / "out"
    _ingest(make_extract(tmp_path / "x"), out, environ={}, synthetic=True)
    keys = _read(out, "students")["student_key"].tolist()
    assert keys == [_expected_key(s, C.DEMO_ID_KEY) for s in STUDENT_IDS]
    meta = json.loads((out / "interim" / "extract_meta.json").read_text())
    assert meta["synthetic"] is True and meta["truth"] == {"synthetic": True}


def test_env_key_always_wins(tmp_path):
    """LEAP_ID_KEY, when set, is used even for the synthetic extract."""
    out = tmp_path / "out"
    _ingest(make_extract(tmp_path / "x"), out, environ={"LEAP_ID_KEY": SECRET}, synthetic=True)
    keys = _read(out, "students")["student_key"].tolist()
    assert keys == [_expected_key(s, SECRET) for s in STUDENT_IDS]


@pytest.mark.parametrize(
    "truth", [None, {"synthetic": False}, {"synthetic": "yes"}, {"synthetic": True}]
)
def test_refuses_real_extract_without_key(tmp_path, truth):
    """A file inside the extract never decides that it is synthetic (issue 21, item 1)."""
    extract = make_extract(tmp_path / "x", synthetic=False)
    if truth is not None:
        (extract / "truth.json").write_text(json.dumps(truth))
    with pytest.raises(IngestError, match="set the environment variable LEAP_ID_KEY"):
        _ingest(extract, tmp_path / "out", environ={}, synthetic=False)
    with pytest.raises(IngestError, match="LEAP_ID_KEY is too short"):
        _ingest(extract, tmp_path / "out", environ={"LEAP_ID_KEY": "short"}, synthetic=False)
    assert not (tmp_path / "out").exists()
    # with the key: pseudonymized with it, and not labelled synthetic (truth ignored)
    _ingest(extract, tmp_path / "out", environ={"LEAP_ID_KEY": SECRET}, synthetic=False)
    meta = json.loads((tmp_path / "out" / "interim" / "extract_meta.json").read_text())
    assert meta["synthetic"] is False and meta["truth"] is None


def test_synthetic_is_decided_by_the_configuration(tmp_path):
    from pipeline.pseudonym import synthetic_from_params

    params = {
        "data": {"extract_dir": "data/raw/synthetic"},
        "synthesize": {"output_dir": "data/raw/synthetic"},
    }
    assert synthetic_from_params(params, tmp_path)
    assert synthetic_from_params(
        {**params, "data": {"extract_dir": str(tmp_path / "data/raw/./synthetic")}}, tmp_path
    )
    # a state pointing data.extract_dir at its own extract
    assert not synthetic_from_params({**params, "data": {"extract_dir": "/srv/ct"}}, tmp_path)
    assert not synthetic_from_params({"data": params["data"]}, tmp_path)  # no synthesize


def _all_text(out: Path) -> list[str]:
    """Every value and every file's bytes of the outputs, as text."""
    texts = []
    for p in out.rglob("*"):
        if not p.is_file():
            continue
        texts.append(p.read_bytes().decode("latin-1"))
        if p.suffix == ".parquet":
            df = pd.read_parquet(p)
            texts += [str(c) for c in df.columns]
            texts += [str(v) for col in df.columns for v in df[col].tolist()]
    return texts


def test_no_raw_id_anywhere_after_ingest(tmp_path):
    tables = valid_tables()
    # raw IDs in quarantined rows too: a bad student row, an unknown student, a bad visit
    tables["students"].loc[5, "sex"] = "Q"
    tables["enrollment"].loc[4, "student_id"] = "000999"
    tables["home_visits"].loc[3, "visit_date"] = "2021-08-16"
    raw = [*STUDENT_IDS, "000999"]
    out = tmp_path / "out"
    for fmt in ("csv", "parquet"):
        extract = write_extract(tmp_path / fmt, tables, fmt=fmt)
        _ingest(extract, out, max_reject_rate=1.0)
        q = pd.read_parquet(out / "interim" / "quarantine" / "enrollment.parquet")
        assert "student_id" not in q.columns and q["student_key"].notna().all()
        texts = _all_text(out)
        for rid in raw:
            assert not any(rid in t for t in texts), rid


def test_daily_and_monthly_forms_agree(tmp_path):
    outs = {}
    for form in ("monthly", "daily"):
        for fmt in ("csv", "parquet"):
            out = tmp_path / f"{form}-{fmt}"
            _ingest(make_extract(tmp_path / f"x-{form}-{fmt}", fmt=fmt, form=form), out)
            outs[form, fmt] = (
                _read(out, "attendance_monthly")
                .sort_values(["student_key", "school_code", "month"])
                .reset_index(drop=True)
            )
    ref = outs["monthly", "csv"]
    assert len(ref) == len(valid_tables()["attendance_monthly"])
    for k, df in outs.items():
        pd.testing.assert_frame_equal(df, ref, obj=str(k))


def test_visit_when_not_enrolled_is_quarantined(tmp_path):
    tables = valid_tables()
    # 000106 left school on March 26, 2021; a visit in May is not during enrollment
    tables["home_visits"].loc[6, ["student_id", "district_code", "visit_date"]] = [
        "000106",
        "001",
        "2021-05-04",
    ]
    out = tmp_path / "out"
    _ingest(write_extract(tmp_path / "x", tables), out, max_reject_rate=1.0)
    q = pd.read_parquet(out / "interim" / "quarantine" / "home_visits.parquet")
    assert q[["source_row", "reason", "visit_id"]].values.tolist() == [
        [7, "visit_outside_enrollment", "V0007"]
    ]
    assert "V0007" not in set(_read(out, "home_visits")["visit_id"])


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_input_same_bytes(tmp_path):
    extract = make_extract(tmp_path / "x", fmt="parquet", form="daily")
    _ingest(extract, tmp_path / "a")
    _ingest(extract, tmp_path / "b")
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")


@pytest.mark.parametrize("fault", ["missing_column", "both_forms", "reject_rate", "no_key"])
def test_no_partial_output_after_a_fault(tmp_path, fault):
    out = tmp_path / "out"
    good = make_extract(tmp_path / "good")
    _ingest(good, out)
    before = _snapshot(out)
    tables = valid_tables()
    synthetic, form, err = True, "monthly", IngestError
    if fault == "missing_column":
        tables["attendance_monthly"] = tables["attendance_monthly"].drop(columns="month")
    elif fault == "both_forms":
        form = "both"
    elif fault == "reject_rate":
        tables["home_visits"].loc[[0, 1], "outcome"] = "??"
        err = RejectRateError
    else:
        synthetic = False
    bad = write_extract(tmp_path / "bad", tables, form=form, synthetic=synthetic)
    with pytest.raises(err):
        _ingest(bad, out, synthetic=synthetic)
    assert _snapshot(out) == before  # untouched, and no temporary debris left
    with pytest.raises(err):
        _ingest(bad, tmp_path / "fresh", synthetic=synthetic)
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").rglob("*"))


def test_pseudonym_collision_detected():
    # 1-hex-character keys collide by the pigeonhole principle
    import pipeline.pseudonym as ps

    old = ps.KEY_HEX_CHARS
    try:
        ps.KEY_HEX_CHARS = 1
        with pytest.raises(PseudonymCollisionError, match="collision"):
            pseudonymize([f"{i:06d}" for i in range(17)], b"k" * 16)
    finally:
        ps.KEY_HEX_CHARS = old
    assert len(set(pseudonymize([f"{i:06d}" for i in range(1000)], b"k" * 16))) == 1000


def test_stage_entry_point(tmp_path):
    """``python -m pipeline.ingest`` reads params.yaml from the project root."""
    make_extract(tmp_path / "data" / "raw" / "synthetic")
    (tmp_path / "params.yaml").write_text(
        "data: {extract_dir: data/raw/synthetic}\nquality: {max_reject_rate: 0.05}\n"
        "synthesize: {output_dir: data/raw/synthetic}\n"
        "ingest: {memory_limit: 1GB, threads: 1}\n"
    )
    env = {**os.environ, "LEAP_PROJECT_ROOT": str(tmp_path)}
    env.pop("LEAP_ID_KEY", None)
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-m", "pipeline.ingest"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "reports" / "tables" / "data_quality.csv").exists()
    assert (tmp_path / "data" / "interim" / "students.parquet").exists()
    assert "attendance_monthly" in r.stderr  # progress lines per table
    # a file-level fault: clear message, non-zero exit, no traceback
    (tmp_path / "data" / "raw" / "synthetic" / "students.csv").unlink()
    r = subprocess.run(
        [sys.executable, "-m", "pipeline.ingest"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert "required table 'students' is missing" in r.stderr
    assert "Traceback" not in r.stderr


def test_typed_parquet_extract_equals_text_extract(tmp_path):
    """Parquet with native types (date32, bool, int32) reads as the same values."""
    tables = valid_tables()
    typed = {k: v.copy() for k, v in tables.items()}
    for df in typed.values():
        for c in df.columns:
            if c in ("entry_date", "visit_date", "date"):
                df[c] = pd.to_datetime(df[c]).dt.date
            elif c == "exit_date":
                df[c] = pd.to_datetime(df[c].replace("", None)).dt.date
            elif c in ("leap", "frl", "ell", "swd", "present"):
                df[c] = df[c] == "true"
            elif c in ("days_membership", "days_present"):
                df[c] = df[c].astype("int32")
    x = tmp_path / "typed"
    write_extract(x, tables, fmt="csv")
    for name, df in typed.items():
        if name != "attendance_daily":
            (x / f"{name}.csv").unlink(missing_ok=True)
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), x / f"{name}.parquet")
    assert pq.read_schema(x / "enrollment.parquet").field("entry_date").type == pa.date32()
    out_csv, out_pq = tmp_path / "a", tmp_path / "b"
    _ingest(make_extract(tmp_path / "text"), out_csv)
    _ingest(x, out_pq)
    for t in INTERIM_TABLES:
        pd.testing.assert_frame_equal(_read(out_pq, t), _read(out_csv, t), obj=t)
