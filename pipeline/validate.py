"""Stage ``validate``: a simulation study of the whole design against known effects.

``python -m pipeline.validate`` draws many small synthetic extracts under several
scenarios, runs the whole design on each (ingest → panel → risk-set matching → the
primary design as the estimate stage runs it: ``estimate.design``, ``estimate.censoring``,
``estimate.history``, ``estimate.cluster``) and the comparators on the same students, and
compares every estimate of the average effect over event times 1–6 with the generator's
truth (``truth["att_window"]``: the equal-weight mean over event times 1–6 of the true
effects among the treated students observed there).

Scenarios (:data:`pipeline.analysis.scenarios.SCENARIOS`)
    ``no_dip``
        Referral is essentially random among students in membership
        (``program.referral_noise`` very large): parallel trends hold for every design.
    ``dip``
        The default world: referral follows a recorded attendance dip, which recovers on
        its own afterwards (the mean reversion the naive designs mistake for an effect).
    ``heterogeneous``
        As ``dip`` with much stronger effect heterogeneity (grade band, visit mode, ELL).
    ``zero_effect``
        As ``dip`` with every effect zero (placebo): rejection rates are false-positive
        rates.
    ``few_districts``
        As ``dip`` with two program districts (few clusters for the inference).
    ``unrecorded_shocks``
        Referral also follows the current month's *unrecorded* shock
        (``program.unobserved_weight > 0``): selection no design that conditions on
        recorded attendance can remove.  Shown for honesty; the targets do not apply.

Estimators
    ``matched_ancova`` (the primary design, :mod:`pipeline.did.ancova`: levels on the
    months before the visit, time effects per district; with ``estimate.history`` also the
    recorded year at the first visit; comparison students visited later imputed or
    weighted as ``estimate.censoring``), two variants of it that show what the censoring
    correction does — ``matched_ancova_no_ipcw`` (censored comparison rows dropped, no
    correction) and ``matched_ancova_keep_censored`` (later-visited comparison rows kept
    as if untreated) —, the matched differences design ``matched_stacked``
    (:mod:`pipeline.did.stacked`; the same censoring correction) and the comparators of
    :mod:`pipeline.analysis.comparators` (``naive_before_after``, ``twfe``,
    ``sun_abraham``, ``imputation``, ``callaway_santanna_unconditional``). Intervals are
    analytic (clustered as ``estimate.cluster``; t with clusters − 1 degrees of freedom
    for the matched designs) — the wild bootstrap is skipped in the replications.

Inference extras (``validate.inference``, off by default; :mod:`pipeline.validation.extras`)
    The primary with errors clustered by home school, the district wild cluster bootstrap
    (``validate.wild_draws``), the design bootstrap (``validate.boot_draws``), the
    intent-to-treat effect at the first attempted visit and the effect on families
    reached, each judged against its own truth (``truth["itt_window"]``,
    ``truth["reached_window"]``); the verdict table then also judges the intent-to-treat
    design.

Output
    ``reports/tables/validation.csv`` (one row per scenario × estimator: ``scenario,
    estimator, n_reps, truth_mean, estimate_mean, bias, rmse, coverage, rejection_rate,
    mean_std_error, sd_estimate, sd_error, se_ratio, n_failed, targets_apply``), the
    replication-level
    ``reports/validation/replications.csv`` and the figure
    ``reports/validation/validation.png`` (300 dpi) and ``.svg``.

Replications run in parallel (``ProcessPoolExecutor``) and are deterministic given
``validate.seed``: replication ``r`` of every scenario uses the ``r``-th child of
``SeedSequence(seed)`` (common random numbers across scenarios), whatever the number of
workers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from pipeline import runner
from pipeline.analysis.scenarios import FILE_REP_COLUMNS
from pipeline.analysis.simulation import ValidateConfig, run_replications, summarize, verdicts
from pipeline.analysis.simulation_figure import plot
from pipeline.io import write_csv

log = logging.getLogger("pipeline.validate")


def run(cfg: ValidateConfig, root: str | Path = ".") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the study and write the table, the replications and the figure under ``root``.

    Returns
    -------
    summary, replications
        The validation table (:data:`TABLE_COLUMNS`) and the replication-level rows
        (:data:`REP_COLUMNS`), as written.
    """
    root = Path(root)
    t0 = time.perf_counter()
    reps = run_replications(cfg)
    summary = summarize(reps, cfg.alpha)
    table = verdicts(summary, reps, cfg.design)  # also fills the summary's verdict columns
    write_csv(summary, root / cfg.table, float_format="%.6g")
    write_csv(table, root / cfg.verdicts, float_format="%.6g")
    # run times stay out of the written outputs: same params and seed, same bytes
    write_csv(reps[FILE_REP_COLUMNS], root / cfg.replications, float_format="%.6g")
    plot(summary, root / cfg.figure)
    log.info(
        "%d replications × %d scenarios in %.1f s (%.1f s per replication, median)",
        cfg.n_reps,
        len(cfg.scenarios),
        time.perf_counter() - t0,
        float(reps.drop_duplicates(["scenario", "rep"])["seconds"].median()),
    )
    return summary, reps


def summary_text(summary: pd.DataFrame) -> str:
    """The validation table as the stage logs it (three decimals)."""
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        return summary.drop(columns=["targets_apply"]).to_string(
            index=False,
            float_format="{:.3f}".format,  # pandas 3 wants a callable
        )


def main() -> runner.Summary:
    """Entry point: the ``validate`` section of ``params.yaml`` → validation table, figure."""
    from pipeline.config import project_root
    from pipeline.settings import stage_settings

    s = stage_settings()
    # the study validates the primary design as the estimate stage runs it
    cfg = ValidateConfig(
        design=s.estimate.design,
        cluster=s.estimate.cluster,
        ipcw_truncate=s.estimate.ipcw_truncate,
        effect_strata=s.estimate.effect_strata,
        vcov=s.estimate.vcov,
        history=s.estimate.history,
        itt_censoring=s.estimate.estimands.itt_censoring,
        primary_censoring=s.estimate.censoring,
        boot_scheme=s.estimate.estimands.design_bootstrap_scheme,
        boot_hold_mix=s.estimate.estimands.design_bootstrap_hold_mix,
        **s.validate_section.kwargs(),
    )
    summary, reps = run(cfg, project_root())
    log.info("simulation study:\n%s", summary_text(summary))
    log.info(json.dumps({"n_reps": cfg.n_reps, "seed": cfg.seed}))
    return runner.Summary(
        rows_out=len(reps),
        detail=f"{cfg.n_reps} replications x {len(cfg.scenarios)} scenarios",
    )


if __name__ == "__main__":
    sys.exit(runner.main("validate", __doc__, main))
