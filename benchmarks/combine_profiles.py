"""Put two runs of ``benchmarks/profile_estimate.py`` (before and after a change) side by side.

    python benchmarks/combine_profiles.py --before B.json --after A.json \\
        [--loadavg LOG] [--note TEXT ...] --out benchmarks/results/profile_estimate_state_monthly.json

``B.json``/``A.json`` are the ``--out`` files of the two runs; a run that was stopped
before it finished has only its ``.calls.jsonl`` (every finished call, in order), which
is read instead and marked incomplete. ``--loadavg`` is a log of ``date`` and
``/proc/loadavg`` lines sampled while the runs went on (the machine's load: wall times
are not comparable when other jobs hold the cores, CPU seconds are the indicative
figure). The output has, per step, calls, ``cpu_s``, ``wall_s`` and peak RSS of each run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _run(path: Path) -> dict:
    """A profile's JSON, or its per-call stream aggregated when the JSON is missing."""
    if path.exists():
        out = json.loads(path.read_text())
        out["complete"] = True
        return out
    calls = path.with_suffix(".calls.jsonl")
    steps: dict[str, dict] = {}
    for line in calls.read_text().splitlines():
        c = json.loads(line)
        s = steps.setdefault(c["step"], {"step": c["step"], "calls": 0, "wall_s": 0.0,
                                         "cpu_s": 0.0, "peak_rss_gb": 0.0})  # fmt: skip
        s["calls"] += 1
        s["wall_s"] = round(s["wall_s"] + c["wall_s"], 2)
        s["cpu_s"] = round(s["cpu_s"] + c["cpu_s"], 2)
        s["peak_rss_gb"] = max(s["peak_rss_gb"], c["peak_rss_gb"])
    return {"complete": False, "source": str(calls), "steps": list(steps.values())}


def _loads(path: Path | None) -> list[list]:
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        t, *rest = line.split()
        out.append([t, *(float(v) for v in rest[:3])])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--loadavg", type=Path, default=None)
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    runs = {"before": _run(args.before), "after": _run(args.after)}
    names = list(dict.fromkeys(s["step"] for r in runs.values() for s in r["steps"]))
    table = []
    for name in names:
        row: dict = {"step": name}
        for label, r in runs.items():
            s = next((x for x in r["steps"] if x["step"] == name), None)
            row[label] = (None if s is None else
                          {k: s[k] for k in ("calls", "cpu_s", "wall_s", "peak_rss_gb")})  # fmt: skip
        table.append(row)
    loads = _loads(args.loadavg)
    one_min = [x[1] for x in loads]
    out = {
        "benchmark": "estimate stage at state scale, before and after (benchmarks/profile_estimate.py)",
        "command": "python benchmarks/combine_profiles.py " + " ".join(
            f"--{k} {v}" for k, v in (("before", args.before), ("after", args.after),
                                       ("loadavg", args.loadavg)) if v),  # fmt: skip
        "reading": args.note,
        "runs": {k: {x: v for x, v in r.items() if x != "steps" and x != "functions"}
                 for k, r in runs.items()},  # fmt: skip
        "load_average_1min_during_runs": {
            "samples": len(one_min),
            "min": min(one_min) if one_min else None,
            "max": max(one_min) if one_min else None,
            "mean": round(sum(one_min) / len(one_min), 2) if one_min else None,
        },
        "steps": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
