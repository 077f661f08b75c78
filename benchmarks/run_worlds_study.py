"""The stress-test study (issue 16): every world's scenario, the primary design, the
extended design (also conditioning on the whole recorded school year, the student's own
mean and a fourth month) and the matched differences design, with the diagnostics.

Usage::

    nice python benchmarks/run_worlds_study.py --reps 100 --workers 2 \\
        --out benchmarks/results/worlds_n100

writes ``validation.csv`` (bias, RMSE, coverage, SE ratio and diagnostic firing rates per
scenario and estimator), ``verdicts.csv`` (a verdict per world and design),
``replications.csv``, the figure and ``timing.json`` (wall time) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

from pipeline import registry
from pipeline.analysis.simulation import ValidateConfig, summarize, verdicts
from pipeline.analysis.simulation_figure import plot
from pipeline.io import write_csv
from pipeline.validate import run
from pipeline.validation.scenarios import WORLDS

SCENARIOS = ("dip", *WORLDS, "unrecorded_shocks")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20210404)
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="recompute the tables and verdicts from --out/replications.csv (no new runs)",
    )
    a = ap.parse_args()
    out = Path(a.out or f"benchmarks/results/worlds_n{a.reps}")
    if a.rescore:
        rescore(out)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = ValidateConfig(
        seed=a.seed,
        n_reps=a.reps,
        workers=a.workers,
        scenarios=tuple(a.scenarios),
        design="ancova",
        estimators=(
            registry.design_estimator("ancova").name,
            *registry.extensions("ancova"),
            registry.DESIGNS["differences"],
        ),
        table=str(out / "validation.csv"),
        replications=str(out / "replications.csv"),
        figure=str(out / "validation"),
        verdicts=str(out / "verdicts.csv"),
    )
    t0 = time.perf_counter()
    run(cfg, ".")
    info = {
        "n_reps": a.reps,
        "workers": a.workers,
        "seed": a.seed,
        "scenarios": list(a.scenarios),
        "seconds": round(time.perf_counter() - t0, 1),
        "command": f"nice python benchmarks/run_worlds_study.py --reps {a.reps} "
        f"--workers {a.workers} --out {out}",
    }
    (out / "timing.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


def rescore(out: Path, alpha: float = 0.05) -> None:
    """Tables, verdicts and figure again from ``out/replications.csv``."""
    reps = pd.read_csv(out / "replications.csv")
    summary = summarize(reps, alpha)
    table = verdicts(summary, reps)
    write_csv(summary, out / "validation.csv", float_format="%.6g")
    write_csv(table, out / "verdicts.csv", float_format="%.6g")
    plot(summary, out / "validation")


if __name__ == "__main__":
    main()
