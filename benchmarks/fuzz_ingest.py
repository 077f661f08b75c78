"""Fuzzing benchmark: random hostile extracts through ingest and panel for a time budget.

Each extract is drawn by :func:`tests.fuzz_extracts.random_case` (random faults, file
formats and text encodings; seeds ``seed, seed+1, …``) and run by
:func:`tests.fuzz_extracts.run_case`, which checks that no exception other than the
documented file-level errors escapes, that every row of every intact file is accounted
for in ``data_quality`` and that no raw student ID reaches any output.  Writes
``benchmarks/results/fuzz_ingest.json``.

Usage::

    PYTHONPATH=. python benchmarks/fuzz_ingest.py --seconds 300
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz_extracts import FuzzFailure, random_case, run_case  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=20211)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz_ingest.json"))
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    outcomes: collections.Counter = collections.Counter()
    ops: collections.Counter = collections.Counter()
    failures, rows_read, rows_lost, unhandled, n = [], 0, 0, 0, 0
    while time.perf_counter() - t0 < args.seconds:
        seed = args.seed + n
        case = random_case(random.Random(seed))
        n += 1
        ops.update(op for op, _ in case.ops)
        ops.update([f"encoding:{case.encoding}", f"format:{case.fmt}", f"form:{case.form}"])
        try:
            r = run_case(case)
        except FuzzFailure as exc:
            outcomes["property_failure"] += 1
            unhandled += "unhandled" in str(exc)
            rows_lost += "rows of intact files not read" in str(exc)
            failures.append({"seed": seed, "ops": case.ops, "error": str(exc)[:500]})
            continue
        outcomes[r["outcome"]] += 1
        rows_read += r["rows_read"]
        rows_lost += r["rows_lost"]
    result = {
        "extracts_tried": n,
        "seconds": round(time.perf_counter() - t0, 1),
        "seed": args.seed,
        "outcomes": dict(sorted(outcomes.items())),
        "unhandled_exceptions": unhandled,
        "property_failures": len(failures),
        "rows_read": rows_read,
        "rows_lost": rows_lost,
        "faults_planted": dict(sorted(ops.items())),
        "failures": failures[:20],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    return result


if __name__ == "__main__":
    main()
