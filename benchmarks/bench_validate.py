"""Time one replication of the simulation study per scenario (``pipeline.validate``).

Usage: ``.venv/bin/python benchmarks/bench_validate.py [scenario ...]``.  Prints the wall
time of one in-process replication (extract → ingest → panel → matching → every estimator)
at the stage's default size; the stage's run time is about
``n_reps × scenarios × this / workers``.  Timings on a shared machine are upper bounds.
"""

from __future__ import annotations

import logging
import sys
import time

from pipeline.analysis.scenarios import SCENARIOS
from pipeline.analysis.simulation import ValidateConfig, replication_seeds, run_replication


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING)
    cfg = ValidateConfig()
    seed = replication_seeds(cfg.seed, 1)[0]
    for scenario in argv or list(SCENARIOS):
        t0 = time.perf_counter()
        rows = run_replication(cfg, scenario, 0, seed)
        dt = time.perf_counter() - t0
        n_t = int(rows["n_treated"].max())
        failed = int(rows["error"].notna().sum())
        print(f"{scenario:18s} {dt:6.1f} s  (treated in the matched design: {n_t}, "
              f"failed estimators: {failed})")


if __name__ == "__main__":
    main(sys.argv[1:])
