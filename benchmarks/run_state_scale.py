"""Run every pipeline stage at state scale and record wall time and peak memory per stage.

    python benchmarks/run_state_scale.py [--workdir DIR] [--form monthly|daily]
                                         [--stages synthesize,ingest,panel,match,estimate,report]

A scratch project folder (default: a temporary one) gets a copy of ``params.yaml`` with
``synthesize.scale: state`` and Parquet output; each stage runs there as
``python -m pipeline.<stage>`` under ``/usr/bin/time``. Results go to
``benchmarks/results/state_scale_<form>.json`` (targets: whole run under 10 minutes and
8 GB peak on 2 cores, monthly form; daily form under 15 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["synthesize", "ingest", "panel", "match", "estimate", "report"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--form", default="monthly", choices=["monthly", "daily"])
    ap.add_argument("--stages", default=",".join(STAGES))
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="leap-state-"))
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["synthesize"].update(scale="state", format="parquet", attendance_form=args.form)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    results = []
    for stage in args.stages.split(","):
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", sys.executable, "-m",
                               f"pipeline.{stage}"], cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        try:
            peak_gb = int(last.split()[1]) / 2**20
        except (IndexError, ValueError):
            peak_gb = float("nan")
        row = {"stage": stage, "wall_seconds": round(wall, 1), "peak_rss_gb": round(peak_gb, 2),
               "exit_code": proc.returncode}
        if proc.returncode != 0:
            row["error_tail"] = proc.stderr.strip().splitlines()[-6:]
        results.append(row)
        print(json.dumps(row), flush=True)
        if proc.returncode != 0:
            break
    out = {
        "benchmark": "whole pipeline at state scale",
        "form": args.form,
        "stages": results,
        "total_wall_seconds": round(sum(r["wall_seconds"] for r in results), 1),
        "max_peak_rss_gb": max(r["peak_rss_gb"] for r in results),
        "targets": {"total_wall_seconds": 600 if args.form == "monthly" else 900,
                    "peak_rss_gb": 8},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "workdir": str(work),
    }
    res = ROOT / "benchmarks" / "results"
    res.mkdir(exist_ok=True)
    (res / f"state_scale_{args.form}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
