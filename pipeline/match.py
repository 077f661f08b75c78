"""``python -m pipeline.match``: matched comparison groups at the month of the first visit.

Reads ``data/processed/panel.parquet`` and the ``match`` section of ``params.yaml``;
runs risk-set matching (:mod:`pipeline.matching.riskset`) and writes, atomically:

* ``data/processed/matched.parquet`` — the stacked panels of the matched students
  (``docs/interfaces.md``, section ``match``);
* ``reports/tables/match_summary.csv`` — treated students found / not found a match, by
  district, grade band and prior-year tier (counts; disclosure control is the report
  stage's job);
* ``reports/tables/balance.csv`` — ``covariate, smd_before, smd_after,
  variance_ratio_after`` then further columns (WWC effect sizes and classes …);
* ``reports/figures/love_plot.png`` (300 dpi) and ``love_plot.svg``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import runner
from pipeline.io import atomic_path, write_csv, write_parquet
from pipeline.matching.riskset import (
    RiskSetResult,
    RiskSetSpec,
    riskset_match,
    stack_panels,
)
from pipeline.outputs import read_panel_for_matching, read_panel_rows
from pipeline.settings import MatchSettings, section_settings, stage_settings

log = logging.getLogger("pipeline.match")

#: Readable labels of the balance covariates for the love plot.
_LABELS = {
    "logit_propensity_score": "Propensity score (logit)",
    "rate_lag1": "Attendance, month m-1",
    "rate_lag2": "Attendance, month m-2",
    "rate_lag3": "Attendance, month m-3",
    "prior_year_rate": "Prior-year attendance",
    "prior_year_missing": "Prior year missing",
    "frl": "Free/reduced-price lunch",
    "ell": "English learner",
    "swd": "Student with disability",
}


_PREFIXES = {
    "grade": "Grade {}",
    "sex": "Sex: {}",
    "race_ethnicity": "Race/ethnicity: {}",
    "prior_year_tier": "Prior-year tier: {}",
}


def _label(covariate: str) -> str:
    if covariate in _LABELS:
        return _LABELS[covariate]
    base, sep, level = covariate.partition("=")
    if sep and base in _PREFIXES:
        return _PREFIXES[base].format(level.replace("_", " "))
    return covariate


def love_plot(balance: pd.DataFrame, target_stem: str | os.PathLike) -> None:
    """Absolute SMD before and after matching per covariate (PNG 300 dpi + SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orange, blue, grey = "#E69F00", "#0072B2", "#999999"  # Okabe–Ito
    b = balance.copy()
    b["label"] = [_label(c) for c in b["covariate"]]
    b = b.iloc[::-1]
    y = np.arange(len(b))
    plt.rcParams["svg.hashsalt"] = "leap-love-plot"
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(b) + 1.4))
    ax.scatter(
        b["smd_before"].abs(), y, marker="o", color=orange, label="Before matching", zorder=3
    )
    ax.scatter(b["smd_after"].abs(), y, marker="s", color=blue, label="After matching", zorder=3)
    for x, ls in ((0.1, "--"), (0.25, ":")):
        ax.axvline(x, color=grey, linestyle=ls, linewidth=0.8, zorder=1)
    ax.set_yticks(y, b["label"])
    ax.set_xlabel("|Standardized mean difference| (SD of the treated)")
    ax.set_xlim(left=0)
    ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
    ax.legend(loc="lower right", frameon=False)
    fig.tight_layout()
    stem = Path(target_stem)
    with atomic_path(stem.with_suffix(".png"), ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=300, metadata={"Software": None})
    with atomic_path(stem.with_suffix(".svg"), ".svg") as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def run(params: MatchSettings | Mapping, root: str | os.PathLike = ".") -> RiskSetResult:
    """Run the stage with the ``match`` section ``params`` (typed, or a mapping checked
    here); paths relative to ``root``."""
    if not isinstance(params, MatchSettings):
        params = section_settings("match", params)
    root = Path(root)
    paths = {k: root / v for k, v in params.paths().items()}
    spec = RiskSetSpec(**params.spec_kwargs())

    t0 = time.perf_counter()
    panel = read_panel_for_matching(paths["panel"])
    log.info("read %d panel rows in %.1fs", len(panel), time.perf_counter() - t0)
    res = riskset_match(panel, spec)
    del panel
    log.info("matched in %.1fs: %s", time.perf_counter() - t0, res.info)
    rows = read_panel_rows(paths["panel"], res.matches["student_key"].unique())
    stacked = stack_panels(rows, res.matches, spec.window)
    del rows
    write_parquet(stacked, paths["output"])
    write_csv(res.summary_table(), paths["summary_output"])
    write_csv(res.balance, paths["balance_output"], float_format="%.6g")
    love_plot(res.balance, paths["love_plot"])
    log.info("stage done in %.1fs (%d stacked rows)", time.perf_counter() - t0, len(stacked))
    return res


def main() -> runner.Summary:
    """Entry point: params section ``match`` → matched panel, summary, balance, love plot."""
    from pipeline.config import project_root

    params = stage_settings().match
    root = Path(project_root())
    res = run(params, root)
    s = res.summary_table()
    total = s[s["district_code"] == "ALL"].iloc[0]
    log.info(
        f"treated students: {total['n_treated']}, matched: {total['n_matched']}, "
        f"not in membership at first visit: {total['n_not_in_membership']}, "
        f"no candidates: {total['n_no_candidates']}, "
        f"no match within caliper: {total['n_no_match_in_caliper']}"
    )
    log.info(
        "balance:\n%s",
        res.balance[
            ["covariate", "smd_before", "smd_after", "variance_ratio_after", "wwc_class_after"]
        ].to_string(index=False),
    )
    paths = {k: root / v for k, v in params.paths().items()}
    return runner.Summary(
        rows_in=runner.parquet_rows(paths["panel"]),
        rows_out=runner.parquet_rows(paths["output"]),
        detail=f"{total['n_matched']} of {total['n_treated']} visited students matched",
    )


if __name__ == "__main__":
    sys.exit(runner.main("match", __doc__, main))
