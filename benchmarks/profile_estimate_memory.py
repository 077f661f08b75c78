"""Peak memory and wall time of the estimate stage at state scale (performance issue).

Runs ``python -m pipeline.estimate`` in a project folder that already holds the outputs of
the stages before it (``data/processed/panel.parquet``, ``matched.parquet``, ...), with
``PYTHONPATH`` set to the code to measure, under ``/usr/bin/time -v``, while a sampler
records the process tree's memory (proportional set sizes summed, so pages shared by the
design bootstrap's forked workers count once: ``run_state_scale.tree_pss_bytes``) every
half second. One run adds one labelled entry to the results file::

    python benchmarks/profile_estimate_memory.py --workdir /work/statescale_perf3 \\
        --code /work/wt/perf3 --label after \\
        [--out benchmarks/results/profile_estimate_state_memory.json]

The entry has the command, wall time, ``/usr/bin/time``'s maximum resident set size (the
largest single process), the tree's peak, the load average before and after (the machine
is shared: wall times are upper bounds), the memory timeline (seconds, GB) and the design
bootstrap's estimate, standard error and interval from ``reports/metrics.json`` (so that
runs of two versions of the code can be checked to give the same numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_state_scale import communicate_sampled  # noqa: E402


def _loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def run(workdir: Path, code: Path, log: Path | None = None) -> dict:
    """Run the estimate stage once; its time, memory and design-bootstrap results."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pipeline.estimate"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    load0 = _loadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _, stderr, sampled = communicate_sampled(proc, t0, every=0.5)
    timeline = [(t, b / 2**30) for t, b in sampled]
    wall = time.perf_counter() - t0
    if log is not None:  # the stage's log (its steps with their times) beside the timeline
        log.write_text(stderr)
    tv = {}
    for line in stderr.splitlines():
        if ":" in line and line.startswith("\t"):
            k, _, v = line.strip().rpartition(": ")
            tv[k] = v
    metrics_path = workdir / "reports" / "metrics.json"
    design = {}
    if proc.returncode == 0 and metrics_path.exists():
        m = json.loads(metrics_path.read_text())
        design = {"att": m.get("att"),
                  "att_design_bootstrap": m.get("estimands", {}).get("att_design_bootstrap")}
    row = {
        "command": f"cd {workdir} && PYTHONPATH={code} /usr/bin/time -v python -m pipeline.estimate",
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "max_rss_gb_largest_process": round(int(tv.get("Maximum resident set size (kbytes)",
                                                       "0")) / 2**20, 2),  # fmt: skip
        "peak_pss_gb_process_tree": round(max((g for _, g in timeline), default=0.0), 2),
        "user_seconds": float(tv.get("User time (seconds)", "nan")),
        "system_seconds": float(tv.get("System time (seconds)", "nan")),
        "load_average_before": load0,
        "load_average_after": _loadavg(),
        "results": design,
        # the stage's steps with their times, to place the timeline's peaks
        "stage_log_steps": [line[:160] for line in stderr.splitlines()
                            if " INFO pipeline.estimate" in line or "design bootstrap:" in line],
        "timeline_seconds_gb": [(round(t, 1), round(g, 2)) for t, g in timeline[::4]],
    }
    if proc.returncode != 0:
        row["error_tail"] = stderr.strip().splitlines()[-12:]
    return row


def compare(runs: list[dict]) -> list[dict]:
    """Each run beside the first: peak memory, wall time, whether it finished and the
    design bootstrap's numbers (when both runs finished)."""
    out = []
    base = runs[0]
    for r in runs:
        row = {k: r.get(k) for k in ("label", "exit_code", "wall_seconds",
                                      "max_rss_gb_largest_process", "peak_pss_gb_process_tree")}  # fmt: skip
        row["finished"] = r.get("exit_code") == 0
        if r is not base:
            row["peak_pss_change_gb_vs_" + base["label"]] = round(
                r["peak_pss_gb_process_tree"] - base["peak_pss_gb_process_tree"], 2)  # fmt: skip
        a = (base.get("results") or {}).get("att_design_bootstrap")
        b = (r.get("results") or {}).get("att_design_bootstrap")
        if a and b and r is not base:
            row["design_bootstrap_max_abs_difference_vs_" + base["label"]] = max(
                abs(a[k] - b[k]) for k in ("estimate", "std_error", "ci_low", "ci_high"))  # fmt: skip
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--code", type=Path, default=ROOT)
    ap.add_argument("--label")
    ap.add_argument("--note", default="")
    ap.add_argument("--log", type=Path, default=None, help="write the stage's log here")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "profile_estimate_state_memory.json")
    ap.add_argument("--compare-only", action="store_true",
                    help="no run: only recompute the comparison of the recorded runs")
    args = ap.parse_args()  # fmt: skip
    out = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    if not args.compare_only:
        row = {"label": args.label, "note": args.note, **run(args.workdir, args.code, args.log)}
        out["runs"] = [r for r in out["runs"] if r.get("label") != args.label] + [row]
        print(json.dumps({k: v for k, v in row.items() if k != "timeline_seconds_gb"}, indent=2))
    out["comparison"] = compare(out["runs"])
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
