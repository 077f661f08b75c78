"""Stage ``estimate``: effects of the first home visit, side by side across designs.

``python -m pipeline.estimate`` reads the ``estimate`` and ``match`` sections of
``params.yaml``, ``data/processed/panel.parquet``, ``data/processed/matched.parquet``,
``reports/tables/balance.csv`` and ``data/interim/extract_meta.json``, runs the analysis
(:func:`pipeline.analysis.estimation.run_estimation`; the designs are described in
:mod:`pipeline.analysis`) and writes, atomically, the contract's event-study table and
metrics, the chronic-absence event study, subgroup and robustness tables, the data behind
the report's descriptive figures and — when the extract is synthetic — a comparison of
every estimate with the generator's truth (:data:`pipeline.analysis.tables.ESTIMATE_TABLES`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import headline, outputs, runner
from pipeline.analysis.estimation import run_estimation
from pipeline.analysis.schemas import ESTIMATE_TABLES
from pipeline.analysis.settings import EstimateConfig
from pipeline.io import write_csv, write_json
from pipeline.matching.riskset import RiskSetSpec
from pipeline.settings import stage_settings

log = logging.getLogger("pipeline.estimate")

#: The data behind ``dvc plots`` for the primary design's event study.
PLOT_CSV = Path("reports/plots/event_study_primary.csv")


def write_outputs(out: dict[str, Any], root: str | Path = ".") -> None:
    """Write every table of :data:`ESTIMATE_TABLES`, ``metrics.json`` and the plot data.

    Parameters
    ----------
    out
        What :func:`pipeline.analysis.estimation.run_estimation` returns.
    root
        The project root the declared output paths are relative to.
    """
    root = Path(root)
    for name in ESTIMATE_TABLES:
        write_csv(out[name], root / outputs.TABLES_DIR / f"{name}.csv", float_format="%.6g")
    write_json(out["metrics"], root / outputs.METRICS)
    headline.write(out["metrics"], root)  # reports/headline.json, tables/metrics_long.csv
    es = out["event_study"]
    write_csv(
        es.loc[
            es["estimator"] == out["metrics"]["primary_estimator"],
            ["event_time", "estimate", "ci_low", "ci_high"],
        ],
        root / PLOT_CSV,
        float_format="%.6g",
    )


def main() -> runner.Summary:
    """Entry point: params sections ``estimate`` and ``match`` → the estimate tables."""

    s = stage_settings()
    cfg = EstimateConfig(**s.estimate.flat())
    spec = RiskSetSpec(**s.match.spec_kwargs())
    matched = pd.read_parquet(outputs.MATCHED)
    balance = pd.read_csv(outputs.BALANCE)
    meta = outputs.read_extract_meta()
    t0 = time.perf_counter()
    out = run_estimation(outputs.PANEL, matched, balance, spec, cfg, meta)
    write_outputs(out)
    m = out["metrics"]
    log.info(
        "done in %.1f s: %s average over event times %s = %.2f (%.2f, %.2f)",
        time.perf_counter() - t0,
        m["primary_estimator"],
        m["att_window"],
        m["att"]["estimate"],
        m["att"]["ci_low"],
        m["att"]["ci_high"],
    )
    return runner.Summary(
        rows_in=len(matched),
        rows_out=sum(len(out[name]) for name in ESTIMATE_TABLES),
        detail=f"average effect {m['att']['estimate']:.2f} "
        f"({m['att']['ci_low']:.2f}, {m['att']['ci_high']:.2f})",
    )


if __name__ == "__main__":
    sys.exit(runner.main("estimate", __doc__, main))
