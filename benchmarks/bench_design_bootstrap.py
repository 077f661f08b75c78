"""Benchmark of the design bootstrap: 199 draws on the default extract on 2 cores.

Builds the default synthetic extract (``params.yaml``, scale ``default``) through ingest
and panel in a temporary directory (not timed; or reads ``--panel FILE``), sets up
:class:`pipeline.design_bootstrap.DesignBootstrap` (timed: the full-sample propensity
fit, design matrices) and runs the draws on ``--workers`` processes (timed). Target
(issue 24): 199 draws within 45 s on 2 cores.

Usage::

    python benchmarks/bench_design_bootstrap.py [--draws 199] [--workers 2] [--panel FILE]
        [--out benchmarks/results/design_bootstrap_default.json]

On a shared machine the wall times are upper bounds; the JSON also records the draws'
CPU time (all processes) and ``draws_seconds_on_free_cores`` = CPU time ÷ workers, the
wall time the draws take when the cores are not shared, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def default_panel(tmp: Path) -> Path:
    """The default extract's panel, built in ``tmp``."""
    from pipeline.config import load_params, section

    try:  # after the architecture refactor (issue 22) the library lives in ingestion
        from pipeline.ingestion import run_ingest
    except ImportError:
        from pipeline.ingest import run_ingest
    from pipeline.synth import SynthConfig, generate, write_extract

    try:  # after the architecture refactor the builder lives in panel_build
        from pipeline.panel_build import write_panel
    except ImportError:
        from pipeline.panel import write_panel

    params = load_params(ROOT / "params.yaml")
    cfg = SynthConfig.from_params({**section("synthesize", params), "scale": "default"})
    write_extract(generate(cfg), tmp / "raw")
    run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=2, synthetic=True)
    write_panel(tmp / "interim", tmp / "panel.parquet", None)
    return tmp / "panel.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=199)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20210403)
    ap.add_argument("--panel", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from pipeline.analysis.settings import EstimateConfig
    from pipeline.estimands import EstimandsConfig, design_bootstrap
    from pipeline.matching.riskset import RiskSetSpec
    from pipeline.settings import load_settings

    # the estimate stage's settings (params.yaml): matching, censoring, how draws weigh
    # schools and the mix they hold
    s = load_settings(ROOT / "params.yaml")
    cfg = EstimandsConfig.from_estimate(EstimateConfig(**s.estimate.flat()))
    with tempfile.TemporaryDirectory(prefix="leap-bench-bs-") as tmp:
        path = args.panel or default_panel(Path(tmp))
        panel = pd.read_parquet(path)
    t0 = time.perf_counter()
    bs = design_bootstrap(panel, RiskSetSpec(**s.match.spec_kwargs()), cfg)
    setup = time.perf_counter() - t0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    res = bs.run(args.draws, seed=args.seed, workers=args.workers)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    # CPU time of the draws (workers and parent): what the draws cost when the cores are
    # free; the wall time on a loaded shared machine is longer
    cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) + (
        self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime
    )
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    lo, hi = res.conf_int()
    out = {
        "what": "design bootstrap (schools within districts; propensity, matching, censoring "
        "weights or imputation, and matched ANCOVA re-estimated per draw), the estimate "
        "stage's settings",
        "panel": "the default extract's (built here)" if args.panel is None else str(args.panel),
        "censoring": cfg.censoring,
        "scheme": cfg.design_bootstrap_scheme,
        "history": cfg.history,
        "hold_mix": cfg.design_bootstrap_hold_mix,
        "students": int(bs.n_students),
        "schools": int(len(bs.schools)),
        "matching_rows": int(len(bs.work_t)),
        "draws": args.draws,
        "workers": args.workers,
        "setup_seconds": round(setup, 2),
        "draws_seconds": round(res.seconds, 2),
        "total_seconds": round(setup + res.seconds, 2),
        "draws_cpu_seconds": round(cpu, 2),
        "draws_seconds_on_free_cores": round(cpu / args.workers, 2),
        "load_average_1min_at_end": load,
        "target_draws_seconds": 45,
        "estimate": res.estimate,
        "bootstrap_std_error": res.std_error,
        "percentile_ci": [lo, hi],
        "failed_draws": int((~pd.notna(res.draws)).sum()),
        "peak_rss_gb_parent": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2
        ),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": "shared machine: timings are upper bounds",
    }
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
