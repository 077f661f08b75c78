"""Kill safety (issue 21): ingest and panel killed mid-run by SIGTERM or SIGKILL.

Each stage runs in a child process that is stopped at a known point in the middle of
writing its outputs (a patched writer signals that it has written part of them and
waits).  While it waits, its scratch files must hold no raw student ID; after SIGTERM
nothing it made may remain (no scratch folder, no half-written output); after SIGKILL
whatever remains holds no raw ID, and the next run removes it and succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.extract_factory import STUDENT_IDS, valid_tables, write_extract

ROOT = Path(__file__).resolve().parents[1]
RAW = {s: f"RAWID{s}X" for s in STUDENT_IDS}  # distinctive raw IDs to search bytes for

INGEST_CHILD = r"""
import sys, time
from pathlib import Path
import pipeline.ingestion as ing
extract, out, ready, mode = sys.argv[1:5]
orig = ing._copy
n = [0]
def slow_copy(con, sql, target):
    orig(con, sql, target)
    n[0] += 1
    if n[0] == 2 and mode == "hang":
        Path(ready).write_text("x")
        time.sleep(120)
ing._copy = slow_copy
ing.run_ingest(extract, Path(out) / "interim", Path(out) / "dq.csv", max_reject_rate=1.0,
               environ={}, synthetic=True, on_disk=True)
"""

PANEL_CHILD = r"""
import sys, time
from pathlib import Path
import pyarrow.parquet as pq
import pipeline.panel_build as panel
interim, out, ready, mode = sys.argv[1:5]
orig = pq.ParquetWriter.write_table
def slow_write(self, *a, **k):
    orig(self, *a, **k)
    if mode == "hang":
        Path(ready).write_text("x")
        time.sleep(120)
pq.ParquetWriter.write_table = slow_write
panel.write_panel(interim, Path(out) / "panel.parquet", Path(out) / "dq_panel.csv",
                  panel.DuckDBSettings(chunk_students=2))
"""


def _extract(tmp_path: Path) -> Path:
    tables = valid_tables()
    for df in tables.values():
        if "student_id" in df.columns:
            df["student_id"] = df["student_id"].map(RAW)
    return write_extract(tmp_path / "x", tables, form="daily")


def _env(tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}
    env.pop("LEAP_ID_KEY", None)
    env.pop("LEAP_SCRATCH_DIR", None)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def _start(child: str, args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", child, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_ready(proc: subprocess.Popen, ready: Path, timeout: float = 90) -> None:
    t = time.monotonic()
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode())
        if time.monotonic() - t > timeout:
            proc.kill()
            raise AssertionError("child never reached the kill point")
        time.sleep(0.05)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _raw_hits(root: Path) -> list[Path]:
    needles = [r.encode() for r in RAW.values()]
    return [p for p in _files(root) if any(n in p.read_bytes() for n in needles)]


def _debris(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*")] if out.exists() else []


def _kill(child, args, env, ready, sig, scratch_root: Path):
    proc = _start(child, [*args, str(ready), "hang"], env)
    try:
        _wait_ready(proc, ready)
        during = _raw_hits(scratch_root)
        n_scratch = len(_files(scratch_root))
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, during, n_scratch


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_ingest_killed_mid_run(tmp_path, sig):
    extract, out, env = _extract(tmp_path), tmp_path / "out", _env(tmp_path)
    scratch_root = tmp_path / "tmp"
    rc, during, n_scratch = _kill(
        INGEST_CHILD, [str(extract), str(out)], env, tmp_path / "ready", sig, scratch_root
    )
    assert rc != 0
    assert n_scratch > 0  # the on-disk scratch database existed while it ran ...
    assert during == []  # ... and held no raw ID
    assert not (out / "interim").exists() and not (out / "dq.csv").exists()
    assert _raw_hits(tmp_path / "out") == [] and _raw_hits(scratch_root) == []
    if sig == signal.SIGTERM:
        assert _debris(out) == [], _debris(out)  # nothing half-written
        assert _files(scratch_root) == []  # scratch removed
    # the next run cleans up after a SIGKILL and succeeds
    r = subprocess.run(
        [sys.executable, "-c", INGEST_CHILD, str(extract), str(out), "-", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert _debris(out) == [] and _files(scratch_root) == []
    assert len(pd.read_parquet(out / "interim" / "students.parquet")) == len(RAW)
    assert _raw_hits(out) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_panel_killed_mid_run(tmp_path, sig):
    from pipeline.ingestion import run_ingest

    extract, out, env = _extract(tmp_path), tmp_path / "out", _env(tmp_path)
    interim = tmp_path / "interim"
    run_ingest(extract, interim, tmp_path / "dq.csv", environ={}, synthetic=True)
    scratch_root = tmp_path / "tmp"
    rc, _, _ = _kill(
        PANEL_CHILD, [str(interim), str(out)], env, tmp_path / "ready", sig, scratch_root
    )
    assert rc != 0
    assert not (out / "panel.parquet").exists()
    if sig == signal.SIGTERM:
        assert _debris(out) == [], _debris(out)  # no temporary file left
        assert _files(scratch_root) == [] and not any(scratch_root.rglob("panel*"))
    r = subprocess.run(
        [sys.executable, "-c", PANEL_CHILD, str(interim), str(out), "-", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert _debris(out) == [] and not any(scratch_root.rglob("panel*"))
    assert len(pd.read_parquet(out / "panel.parquet")) > 0
