"""Benchmark of the panel build at state scale.

Generates synthetic *interim* tables (the ingest stage's output schema) with a simple
numpy generator — about 510,000 students × 3 school years ≈ 15M monthly attendance rows,
some students in two schools in a month — then runs :func:`pipeline.panel.write_panel` in
a fresh subprocess and reports its wall time and peak resident memory.  With
``--repeat 2`` it builds twice and reports whether the two Parquet files are
byte-identical.

Usage::

    .venv/bin/python benchmarks/bench_panel.py                    # state scale
    .venv/bin/python benchmarks/bench_panel.py --students 50000   # quicker
    .venv/bin/python benchmarks/bench_panel.py --memory-limit 2GB --threads 2 --repeat 2

Timings on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

YEARS = (2020, 2021, 2022)
SCHOOL_MONTHS = (9, 10, 11, 12, 1, 2, 3, 4, 5, 6)


def _strings(values) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def generate(root: Path, n_students: int, seed: int = 20240611) -> dict[str, int]:
    """Write interim tables for ``n_students`` students into ``root``; return row counts."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n_districts, n_leap = 170, 15
    n_schools = 1200
    district_codes = _strings(f"{i:03d}" for i in range(n_districts))
    school_district = rng.integers(0, n_districts, n_schools)
    school_codes = _strings(f"{i:03d}{s:04d}" for s, i in enumerate(school_district))
    keys = _strings(
        f"{x:016x}" for x in rng.integers(0, 2**63, n_students, dtype=np.int64)
    )

    pq.write_table(
        pa.table(
            {
                "district_code": district_codes,
                "district_name": _strings(f"District {i}" for i in range(n_districts)),
                "leap": pa.array(np.arange(n_districts) < n_leap),
            }
        ),
        root / "districts.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "student_key": keys,
                "sex": pa.array(np.array(["F", "M", "X"])[rng.integers(0, 3, n_students)]),
                "race_ethnicity": pa.array(
                    np.array(["BLACK", "HISPANIC", "WHITE", "ASIAN", "MULTI"])[
                        rng.integers(0, 5, n_students)
                    ]
                ),
            }
        ),
        root / "students.parquet",
    )

    grades = np.array(["PK", "K", *map(str, range(1, 13))])
    grade0 = rng.integers(0, 12, n_students)
    school = rng.integers(0, n_schools, n_students)
    ability = rng.beta(18, 1.5, n_students)
    att_parts, enr_parts = [], []
    for y_i, year in enumerate(YEARS):
        movers = rng.random(n_students) < 0.15  # change school over the summer
        school = np.where(movers, rng.integers(0, n_schools, n_students), school)
        mid = rng.random(n_students) < 0.04  # move mid-year
        move_k = rng.integers(1, 10, n_students)
        school2 = rng.integers(0, n_schools, n_students)
        grade = np.minimum(grade0 + y_i, 13)
        sy = f"{year}-{(year + 1) % 100:02d}"
        for k, month in enumerate(SCHOOL_MONTHS):
            cal_year = year if month >= 9 else year + 1
            label = f"{cal_year}-{month:02d}"
            present_in = rng.random(n_students) > 0.03
            for part in (0, 1):
                if part == 0:
                    idx = np.flatnonzero(present_in & ~(mid & (move_k < k)))
                    sch = school[idx]
                    mem = np.where(mid[idx] & (move_k[idx] == k), 9, 20)
                else:
                    idx = np.flatnonzero(present_in & mid & (move_k <= k))
                    sch = school2[idx]
                    mem = np.where(move_k[idx] == k, 11, 20)
                pres = rng.binomial(mem, ability[idx])
                att_parts.append(
                    pa.table(
                        {
                            "student_key": keys.take(pa.array(idx)),
                            "school_year": pa.array(np.full(len(idx), sy)),
                            "district_code": district_codes.take(
                                pa.array(school_district[sch])
                            ),
                            "school_code": school_codes.take(pa.array(sch)),
                            "month": pa.array(np.full(len(idx), label)),
                            "days_membership": pa.array(mem.astype(np.int32)),
                            "days_present": pa.array(pres.astype(np.int32)),
                        }
                    )
                )
        start = dt.date(year, 8, 30)
        for part in (0, 1):
            idx = np.arange(n_students) if part == 0 else np.flatnonzero(mid)
            sch = school[idx] if part == 0 else school2[idx]
            move_month = np.array(SCHOOL_MONTHS)[move_k[idx]]
            move_year = np.where(move_month >= 9, year, year + 1)
            move_day = np.array(
                [dt.date(int(a), int(b), 12) for a, b in zip(move_year, move_month, strict=True)]
            )
            if part == 0:
                entry = pa.array(np.full(len(idx), start), type=pa.date32())
                exit_ = pa.array(
                    [d if m else None for d, m in zip(move_day, mid[idx], strict=True)],
                    type=pa.date32(),
                )
            else:
                entry = pa.array(move_day + dt.timedelta(days=1), type=pa.date32())
                exit_ = pa.nulls(len(idx), type=pa.date32())
            enr_parts.append(
                pa.table(
                    {
                        "student_key": keys.take(pa.array(idx)),
                        "school_year": pa.array(np.full(len(idx), sy)),
                        "district_code": district_codes.take(pa.array(school_district[sch])),
                        "school_code": school_codes.take(pa.array(sch)),
                        "grade": pa.array(grades[grade[idx]]),
                        "entry_date": entry,
                        "exit_date": exit_,
                        "frl": pa.array(rng.random(len(idx)) < 0.4),
                        "ell": pa.array(rng.random(len(idx)) < 0.1),
                        "swd": pa.array(rng.random(len(idx)) < 0.15),
                    }
                )
            )
    att = pa.concat_tables(att_parts)
    pq.write_table(att, root / "attendance_monthly.parquet")
    enr = pa.concat_tables(enr_parts)
    pq.write_table(enr, root / "enrollment.parquet")

    # visits: ~6 % of students, 1–4 attempts each between April 2021 and June 2023
    n_v = int(n_students * 0.06)
    who = rng.choice(n_students, n_v, replace=False)
    reps = rng.integers(1, 5, n_v)
    who = np.repeat(who, reps)
    day0 = np.datetime64("2021-04-01")
    days = rng.integers(0, 800, len(who)).astype("timedelta64[D]") + day0
    modes = np.array(["in_person", "phone", "virtual", None], dtype=object)
    visits = pa.table(
        {
            "visit_id": _strings(f"V{i:08d}" for i in range(len(who))),
            "student_key": keys.take(pa.array(who)),
            "district_code": pa.array(np.full(len(who), "000")),
            "visit_date": pa.array(days, type=pa.date32()),
            "outcome": pa.array(
                np.where(rng.random(len(who)) < 0.78, "completed", "attempted")
            ),
            "mode": pa.array(modes[rng.integers(0, 4, len(who))], type=pa.string()),
        }
    )
    pq.write_table(visits, root / "home_visits.parquet")
    return {
        "attendance_monthly": att.num_rows,
        "enrollment": enr.num_rows,
        "home_visits": visits.num_rows,
        "students": n_students,
    }


_CHILD = """
import json, logging, resource, sys, time
logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stderr)
from pipeline.panel_build import DuckDBSettings, write_panel
t0 = time.perf_counter()
q = write_panel(sys.argv[1], sys.argv[2], None,
                DuckDBSettings(memory_limit=sys.argv[3], threads=int(sys.argv[4]),
                               chunk_students=int(sys.argv[5])))
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
rss = ru.ru_maxrss / 1024
cpu = ru.ru_utime + ru.ru_stime
rows = int(q.loc[(q['table'] == 'panel') & (q['reason'] == 'rows'), 'rows'].iloc[0])
print('RESULT ' + json.dumps({'wall_s': round(wall, 2), 'cpu_s': round(cpu, 1), 'peak_rss_mb': round(rss), 'panel_rows': rows}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=510_000)
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--chunk-students", type=int, default=100_000)
    ap.add_argument("--workdir", default=None, help="keep the generated data here")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
        work = Path(args.workdir or tmp)
        interim = work / "interim"
        t0 = time.perf_counter()
        if (interim / "home_visits.parquet").exists():
            counts = {"attendance_monthly": pq.ParquetFile(
                interim / "attendance_monthly.parquet").metadata.num_rows}
        else:
            counts = generate(interim, args.students)
        gen_s = time.perf_counter() - t0
        print(f"generated/loaded interim tables in {gen_s:.1f} s: {counts}", flush=True)
        runs = []
        for i in range(args.repeat):
            out = work / f"panel{i}.parquet"
            res = subprocess.run(
                [sys.executable, "-c", _CHILD, str(interim), str(out),
                 args.memory_limit, str(args.threads), str(args.chunk_students)],
                capture_output=True, text=True,
            )
            print(res.stderr, end="", flush=True)
            if res.returncode:
                sys.exit(f"panel build failed (exit {res.returncode})")
            line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")][-1]
            fig = json.loads(line.removeprefix("RESULT "))
            fig["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
            fig["size_mb"] = round(out.stat().st_size / 2**20, 1)
            runs.append(fig)
            print(f"run {i + 1}: {fig}", flush=True)
        summary = {
            "students": args.students,
            "attendance_rows": counts["attendance_monthly"],
            "memory_limit": args.memory_limit,
            "threads": args.threads,
            "chunk_students": args.chunk_students,
            "runs": runs,
            "byte_identical": len({r["sha256"] for r in runs}) == 1 if len(runs) > 1 else None,
        }
        print(json.dumps(summary, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
