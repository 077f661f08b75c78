"""Time ``dvc repro`` on a fresh clone of this repository (the default extract).

Usage: python benchmarks/bench_fresh_clone.py [--rev HEAD] [--keep]

Clones ``--rev`` of this repository into a temporary folder (installation excluded:
the clone uses the current Python environment), runs ``dvc repro`` under
``/usr/bin/time -v`` and reports the wall time, the peak memory (largest process) and
each stage's seconds from its one-line summary (``<stage> done: …, S s``), plus the load
average before and after (on a shared machine the times are upper bounds).  Afterwards it
checks that ``git status`` and ``dvc status dvc.yaml`` are clean.  Writes
``benchmarks/results/fresh_clone_repro.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "fresh_clone_repro.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD", help="revision to clone (default HEAD)")
    ap.add_argument("--keep", action="store_true", help="keep the clone")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="leap-clone-"))
    clone = tmp / "clone"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": ""}
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", args.rev], cwd=clone, check=True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    r = subprocess.run(
        ["/usr/bin/time", "-v", "dvc", "repro"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    log = r.stdout + r.stderr
    if r.returncode:
        print(log[-5000:], file=sys.stderr)
        return r.returncode
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))
    stages = {m[0]: float(m[1]) for m in re.findall(r"^(\w+) done: .*?([\d.]+) s", log, re.M)}
    git = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True
    ).stdout
    dvc = subprocess.run(
        ["dvc", "status", "dvc.yaml"], cwd=clone, env=env, capture_output=True, text=True
    ).stdout
    res = {
        "rev": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True
        ).stdout.strip(),
        "command": "dvc repro (fresh clone, default extract)",
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak_kb / 1e6, 2),
        "stage_seconds": stages,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 1) for x in load0],
        "loadavg_after": [round(x, 1) for x in load1],
        "git_status_clean": git.strip() == "",
        "git_status": git.strip().splitlines(),
        "dvc_status_clean": "up to date" in dvc,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    else:
        print(f"clone kept in {clone}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
