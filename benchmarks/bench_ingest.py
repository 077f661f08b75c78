"""Benchmark of the ingest stage at state scale.

Generates a contract-valid raw extract with a simple DuckDB generator (no pandas):
``--students`` students (default 510,000) in 170 districts (15 run the program) over the
school years 2020-21 … 2022-23, one enrollment spell per student and year, and either

* ``--form monthly``: one attendance row per spell and school month (≈15.3M rows), or
* ``--form daily``: one row per spell and instructional day (≈181 per year; 510,000
  students ≈ 277M rows — use ``--students`` to measure at a reduced size),

plus home visits for about 5.5% of the students of program districts.  It then runs
:func:`pipeline.ingest.run_ingest` in a fresh subprocess and reports its wall time and
peak resident memory (``ru_maxrss`` of the child), and writes them to
``benchmarks/results/ingest_<form>_<format>_<students>.json``.

Usage::

    .venv/bin/python benchmarks/bench_ingest.py                       # state, monthly
    .venv/bin/python benchmarks/bench_ingest.py --form daily --students 50000
    .venv/bin/python benchmarks/bench_ingest.py --memory-limit 3GB --threads 2

Targets (issue 3): ingest + panel < 2 min and < 4 GB (monthly, state scale) and
< 10 min and < 8 GB (daily) on 2 cores.  Timings on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
YEARS = (2020, 2021, 2022)

CHILD = r"""
import json, logging, resource, sys, time
from pipeline.ingest import run_ingest
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
extract, out, mem, threads, disk = sys.argv[1:6]
t0 = time.perf_counter()
counts = run_ingest(extract, out + "/interim", out + "/data_quality.csv",
                    memory_limit=mem or None, threads=int(threads) or None, environ={}, synthetic=True,
                    on_disk={"auto": None, "disk": True, "memory": False}[disk])
wall = time.perf_counter() - t0
kept = counts[counts["reason"] == "kept"].set_index("table")["rows"].to_dict()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_gb_self": ru.ru_maxrss / 2**20, "kept": kept}))
"""


def generate(path: Path, n_students: int, form: str, fmt: str, threads: int) -> dict:
    """Write a valid extract to ``path``; returns row counts per table."""
    from pipeline import calendar as cal

    path.mkdir(parents=True, exist_ok=True)
    raw = duckdb.connect()
    raw.execute(f"SET threads = {threads}")
    raw.execute("SET memory_limit = '4GB'")
    raw.execute(f"SET temp_directory = '{path}/.spill'")
    raw.execute("CREATE MACRO hb(x) AS CAST(x % 1000003 AS BIGINT)")

    class _Con:  # hash() is UBIGINT: make it BIGINT so that it can index lists
        def execute(self, sql, *a):
            return raw.execute(re.sub(r"hash\(([^()]*)\)", r"hb(hash(\1))", sql), *a)

        def __getattr__(self, name):
            return getattr(raw, name)

    con = _Con()
    days = [(d.strftime("%Y-%m-%d"),) for y in YEARS for d in cal.instructional_days(y)]
    con.execute("CREATE TABLE days (d DATE)")
    con.executemany("INSERT INTO days VALUES (CAST(? AS DATE))", days)
    con.execute(f"""
        CREATE TABLE students AS
        SELECT i, lpad(CAST(i AS VARCHAR), 9, '0') AS student_id,
               ['F', 'M', 'X'][1 + hash(i, 1) % 3] AS sex,
               ['AIAN', 'ASIAN', 'BLACK', 'HISPANIC', 'NHPI', 'MULTI', 'WHITE']
                   [1 + hash(i, 2) % 7] AS race_ethnicity,
               CAST(hash(i, 3) % 170 AS INTEGER) AS d,
               CAST(hash(i, 4) % 14 AS INTEGER) - 1 AS g0
        FROM range({n_students}) t(i)
    """)
    con.execute("""
        CREATE TABLE enrollment AS
        SELECT s.i, s.student_id, y,
               CAST(y AS VARCHAR) || '-' || CAST((y + 1) % 100 AS VARCHAR) AS school_year,
               lpad(CAST(s.d AS VARCHAR), 3, '0') AS district_code,
               lpad(CAST(s.d AS VARCHAR), 3, '0') || lpad(CAST(hash(s.i, 5) % 6 AS VARCHAR),
                                                          4, '0') AS school_code,
               CASE WHEN s.g0 + y - 2020 < 0 THEN 'PK' WHEN s.g0 + y - 2020 = 0 THEN 'K'
                    ELSE CAST(least(s.g0 + y - 2020, 12) AS VARCHAR) END AS grade,
               make_date(y, 7, 1) AS entry_date, CAST(NULL AS DATE) AS exit_date,
               CASE WHEN hash(s.i, 6) % 2 = 0 THEN 'true' ELSE 'false' END AS frl,
               CASE WHEN hash(s.i, 7) % 10 = 0 THEN 'true' ELSE 'false' END AS ell,
               CASE WHEN hash(s.i, 8) % 7 = 0 THEN 'true' ELSE 'false' END AS swd
        FROM students s CROSS JOIN (SELECT unnest([2020, 2021, 2022]) AS y)
    """)
    ext = "parquet" if fmt == "parquet" else "csv"
    opts = "(FORMAT parquet, COMPRESSION zstd)" if fmt == "parquet" else "(HEADER)"

    def write(name: str, sql: str) -> int:
        target = f"{path}/{name}.{ext}"
        con.execute(f"COPY ({sql}) TO '{target}' {opts}")
        reader = "read_parquet" if fmt == "parquet" else "read_csv"
        return con.execute(f"SELECT count(*) FROM {reader}('{target}')").fetchone()[0]

    counts = {}
    counts["districts"] = write(
        "districts",
        """
        SELECT lpad(CAST(d AS VARCHAR), 3, '0') AS district_code,
               'District ' || CAST(d AS VARCHAR) AS district_name,
               CASE WHEN d < 15 THEN 'true' ELSE 'false' END AS leap
        FROM range(170) t(d)""",
    )
    counts["students"] = write(
        "students", "SELECT student_id, sex, race_ethnicity FROM students ORDER BY i"
    )
    counts["enrollment"] = write(
        "enrollment",
        """
        SELECT student_id, school_year, district_code, school_code, grade,
               strftime(entry_date, '%Y-%m-%d') AS entry_date, '' AS exit_date,
               frl, ell, swd FROM enrollment ORDER BY i, y""",
    )
    if form == "monthly":
        counts["attendance_monthly"] = write(
            "attendance_monthly",
            """
            SELECT e.student_id, e.school_year, e.district_code, e.school_code,
                   strftime(m.first, '%Y-%m') AS month,
                   CAST(m.n AS VARCHAR) AS days_membership,
                   CAST(m.n - hash(e.i, m.first) % 4 AS VARCHAR) AS days_present
            FROM enrollment e JOIN (
                SELECT date_trunc('month', d) AS first, count(*) AS n,
                       CASE WHEN month(d) >= 7 THEN year(d) ELSE year(d) - 1 END AS y
                FROM days GROUP BY ALL) m ON m.y = e.y
            ORDER BY e.i, e.y, m.first""",
        )
    else:
        counts["attendance_daily"] = write(
            "attendance_daily",
            """
            SELECT e.student_id, e.district_code, e.school_code,
                   strftime(dd.d, '%Y-%m-%d') AS date,
                   CASE WHEN hash(e.i, dd.d) % 13 = 0 THEN 'false' ELSE 'true' END AS present
            FROM enrollment e JOIN (
                SELECT d, CASE WHEN month(d) >= 7 THEN year(d) ELSE year(d) - 1 END AS y
                FROM days) dd ON dd.y = e.y""",
        )
    counts["home_visits"] = write(
        "home_visits",
        """
        SELECT 'V' || lpad(CAST(row_number() OVER (ORDER BY e.i, k) AS VARCHAR), 8, '0')
                   AS visit_id,
               e.student_id, e.district_code,
               strftime(make_date(2021, 4, 1) + CAST(hash(e.i, 9) % 400 + 30 * k AS INTEGER),
                        '%Y-%m-%d') AS visit_date,
               CASE WHEN hash(e.i, k, 10) % 100 < 78 THEN 'completed' ELSE 'attempted' END
                   AS outcome,
               ['in_person', 'phone', 'virtual'][1 + hash(e.i, k, 11) % 3] AS mode
        FROM enrollment e CROSS JOIN range(2) r(k)
        WHERE e.y = 2021 AND CAST(e.district_code AS INTEGER) < 15
          AND hash(e.i, 12) % 1000 < 55
        ORDER BY e.i, k""",
    )
    con.close()
    shutil.rmtree(path / ".spill", ignore_errors=True)
    (path / "truth.json").write_text(json.dumps({"synthetic": True}))
    return counts


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=510_000)
    ap.add_argument("--form", default="monthly", choices=["monthly", "daily"])
    ap.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit for ingest")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--scratch",
        default="auto",
        choices=["auto", "disk", "memory"],
        help="where DuckDB keeps the scratch database",
    )
    ap.add_argument("--tmp", default=None, help="folder for the generated extract")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        extract, out = Path(d) / "extract", Path(d) / "out"
        t0 = time.perf_counter()
        counts = generate(extract, args.students, args.form, args.format, args.threads)
        gen_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in extract.glob("*.*"))
        print(f"generated {counts} ({size / 2**20:.0f} MiB) in {gen_s:.1f} s", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(extract),
                str(out),
                args.memory_limit,
                str(args.threads),
                args.scratch,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit("ingest failed")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        import resource

        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    result = {
        "stage": "ingest",
        "form": args.form,
        "format": args.format,
        "students": args.students,
        "rows": counts,
        "input_mib": round(size / 2**20, 1),
        "memory_limit": args.memory_limit,
        "threads": args.threads,
        "ingest_wall_s": round(child["wall_s"], 1),
        "subprocess_wall_s": round(wall, 1),
        "ingest_cpu_s": round(child["cpu_s"], 1),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
        "peak_rss_gb": round(peak, 2),
        "peak_rss_gb_child_self": round(child["peak_rss_gb_self"], 2),
        "scratch": args.scratch,
        "kept": child["kept"],
        "machine": machine(),
        "note": "shared 2-core machine: timings are upper bounds",
    }
    print(json.dumps(result, indent=2))
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / f"ingest_{args.form}_{args.format}_{args.students}_{args.scratch}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
