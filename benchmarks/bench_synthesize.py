"""Benchmark: the ``synthesize`` stage at state scale.

Generates the state-sized synthetic extract (≈510,000 students, 170 districts,
15 program districts, 3 school years) in a child process and records wall time and peak
resident memory. Targets (issue 2): under 5 minutes and under 8 GB on 2 cores.

    python benchmarks/bench_synthesize.py [--form monthly|daily] [--format parquet|csv]

Writes ``benchmarks/results/synthesize_<form>_<format>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import dataclasses, sys, logging
from pipeline.config import load_params, section
from pipeline.synth import SynthConfig, generate, write_extract
logging.basicConfig(level=logging.INFO)
params = section("synthesize", load_params(sys.argv[1]))
cfg = SynthConfig.from_params({**params, "scale": "state", "attendance_form": sys.argv[3],
                               "format": sys.argv[4]})
ex = generate(cfg)
write_extract(ex, sys.argv[2], fmt=cfg.format, attendance_form=cfg.attendance_form,
              seed=cfg.seed)
print(ex.truth["counts"])
"""


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "memory_gb": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--form", default="monthly", choices=["monthly", "daily"])
    ap.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    ap.add_argument("--out", default=None, help="where to write the extract (default: tmp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "data" if (ROOT / "data").exists() else None) as d:
        out = args.out or str(Path(d) / "extract")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "params.yaml"), out,
                               args.form, args.format], cwd=ROOT, capture_output=True,
                              text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(proc.returncode)
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        size_mb = sum(p.stat().st_size for p in Path(out).iterdir()) / 2**20
    result = {
        "benchmark": "synthesize, state scale",
        "form": args.form,
        "format": args.format,
        "wall_seconds": round(wall, 1),
        "peak_rss_gb": round(peak_gb, 2),
        "extract_mb": round(size_mb, 1),
        "counts": proc.stdout.strip().splitlines()[-1],
        "targets": {"wall_seconds": 300, "peak_rss_gb": 8},
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(exist_ok=True)
    path = res_dir / f"synthesize_{args.form}_{args.format}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
