"""Stage ``costs``: cost-effectiveness of the program (:mod:`pipeline.analysis.costs`).

``python -m pipeline.costs`` reads the ``costs`` section of ``params.yaml``,
``reports/metrics.json`` (the primary design's average effects on attendance and chronic
absence) and ``data/interim/home_visits.parquet`` (students reached and visit counts), and
writes ``reports/tables/cost_effectiveness.csv`` and ``reports/tables/cost_sensitivity.csv``
atomically.
"""

from __future__ import annotations

import json
import logging
import sys

from pipeline import outputs, runner
from pipeline.analysis.costs import CostConfig, run_costs, visit_counts
from pipeline.io import write_csv
from pipeline.settings import stage_settings

log = logging.getLogger("pipeline.costs")


def main() -> runner.Summary:
    """Entry point: params section ``costs`` → the two cost tables."""
    costs = stage_settings().costs
    cfg = CostConfig.from_params(costs.model_dump())
    metrics = json.loads(outputs.METRICS.read_text())
    attempts, completed, visited = visit_counts(outputs.INTERIM_DIR / "home_visits.parquet")
    out = run_costs(cfg, metrics, visited, attempts, completed)
    for name, df in out.items():
        write_csv(df, outputs.TABLES_DIR / f"{name}.csv", float_format="%.6g")
    t = out["cost_effectiveness"].set_index("measure")
    log.info(
        "cost per student %.0f, per additional day %.0f, per chronic case averted %.0f",
        *(t.loc[m, "cost_per_unit"] for m in ("per_student", "per_day", "per_chronic_case")),
    )
    return runner.Summary(rows_out=sum(len(df) for df in out.values()),
                          detail="cost-effectiveness and its sensitivity to cost assumptions")


if __name__ == "__main__":
    sys.exit(runner.main("costs", __doc__, main))
