"""The whole analysis the ``estimate`` stage reports, as data frames and a metrics dict.

:func:`run_estimation` fits the primary design (:mod:`pipeline.analysis.design`) on the
matched stacks for attendance and chronic absence, the other design beside it, the
comparators (:mod:`pipeline.analysis.comparators`), the subgroups
(:mod:`pipeline.analysis.subgroups`) and the robustness checks
(:mod:`pipeline.analysis.robustness`), the sensitivity analysis and evidence standards
(:mod:`pipeline.sensitivity.suite`), and returns every table of
:data:`pipeline.analysis.tables.ESTIMATE_TABLES` plus ``metrics``.  It writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.analysis.comparators import comparator_panel, comparators
from pipeline.analysis.design import (
    add_outcomes,
    censoring_adjusted,
    other_design,
    primary,
)
from pipeline.analysis.robustness import panel_homes, robustness
from pipeline.analysis.schemas import TRUTH_COLUMNS
from pipeline.analysis.settings import DESIGNS, EstimateConfig
from pipeline.analysis.subgroups import subgroup_effects
from pipeline.analysis.tables import (
    average_dict,
    chronic_by_month,
    event_means,
    sample_flow,
    tidy_all,
    truth_comparison,
)
from pipeline.clusters import add_home_clusters
from pipeline.did.results import EventStudyResult
from pipeline.estimands import ESTIMAND_TABLES, PANEL_COLUMNS, EstimandsConfig, estimands
from pipeline.history import HISTORY_PANEL_COLUMNS, with_history
from pipeline.matching.riskset import RiskSetSpec
from pipeline.outputs import PanelAccess
from pipeline.sensitivity.suite import sensitivity_suite

log = logging.getLogger("pipeline.estimate")


def run_estimation(
    panel: pd.DataFrame | str | Path,
    matched: pd.DataFrame,
    balance: pd.DataFrame,
    match_spec: RiskSetSpec,
    cfg: EstimateConfig,
    meta: dict,
) -> dict[str, Any]:
    """Everything the stage writes, as data frames and dicts (no output written).

    ``panel`` is the panel as a data frame or the path of ``panel.parquet``.
    """
    panel = PanelAccess(panel)
    # every student's home school and district: clusters that nest students (and the
    # matched sets they serve in), pipeline/clusters.py
    homes = panel_homes(panel)
    matched = add_home_clusters(matched, homes)
    if cfg.history:  # the recorded year at each first visit (pipeline/history.py)
        matched = with_history(matched, panel.columns(list(HISTORY_PANEL_COLUMNS)))
    recorded = add_outcomes(matched)
    # comparison students visited later: weighted or imputed (estimate.censoring)
    matched, cens_info, cens_model, cens_diag = censoring_adjusted(recorded, cfg)
    log.info(
        "primary design on %d stacked rows (%d matched sets)",
        len(matched),
        matched["match_id"].nunique(),
    )
    prim = primary(matched, "attendance_rate", cfg, bootstrap=cfg.wild_bootstrap)
    prim_ch = primary(matched, "chronic_pp", cfg, bootstrap=False)
    other = other_design(matched, "attendance_rate", cfg)
    other_ch = other_design(matched, "chronic_pp", cfg)
    alts = [r for _, r in (other,) if isinstance(r, EventStudyResult)]
    alts_ch = [r for _, r in (other_ch,) if isinstance(r, EventStudyResult)]
    students = pd.Index(matched["student_key"].unique())
    cp = add_home_clusters(comparator_panel(panel, students), homes)  # estimate.cluster
    log.info("comparators on %d students", len(students))
    comps, errors = comparators(cp, "attendance_rate", cfg)
    comps_ch, errors_ch = comparators(cp, "chronic_pp", cfg)
    log.info("subgroups")
    subgroups = subgroup_effects(matched, "attendance_rate", cfg)
    log.info("robustness checks")
    rob = robustness(
        panel, matched, match_spec, prim, "attendance_rate", cfg, other=other, homes=homes
    )

    w = cfg.att_window
    avg = prim.average(w)
    pt = prim.pretrend_test()
    boot = prim.info.get("wild_bootstrap_average") if isinstance(prim.info, dict) else None
    by_name = {r.estimator: r for r in [prim, *alts, *comps]}
    metrics: dict[str, Any] = {
        "primary_estimator": prim.estimator,
        "design": cfg.design,
        "design_settings": {
            "ancova_fe": cfg.ancova_fe,
            "effect_strata": cfg.effect_strata,
            "vcov": cfg.vcov,
            "history": cfg.history,
            "time_effects": cfg.time_effects,
            "reference": list(cfg.reference),
            "cluster": cfg.cluster,
        },
        "att": {
            "estimate": avg.estimate,
            "std_error": avg.std_error,
            "ci_low": avg.ci_low,
            "ci_high": avg.ci_high,
            "p_value": avg.p_value,
        },
        "att_window": list(w),
        "n_treated": int(matched.loc[matched["role"] == "treated", "student_key"].nunique()),
        "n_comparison": int(matched.loc[matched["role"] == "comparison", "student_key"].nunique()),
        "max_abs_smd_after": float(balance["smd_after"].abs().max()),
        "synthetic": bool(meta.get("synthetic", False)),
        "outcome": "attendance_rate",
        "att_chronic": average_dict(prim_ch, w),
        "pretrend_test": {
            **{k: getattr(pt, k) for k in ("statistic", "df", "p_value", "clusters")},
            "event_times": list(pt.event_times),
        },
        "censoring": cens_info,
        "comparator_errors": {
            **errors,
            **{f"{k} (chronic)": v for k, v in errors_ch.items()},
            **{
                f"{DESIGNS[k]}{sfx}": f"{type(r).__name__}: {r}"
                for (k, r), sfx in ((other, ""), (other_ch, " (chronic)"))
                if isinstance(r, Exception)
            },
        },
    }
    if boot:
        metrics["att"]["wild_bootstrap"] = boot
    for key, name in (("naive", "naive_before_after"), ("twfe", "twfe")):
        if name in by_name:
            metrics[key] = average_dict(by_name[name], w)
    metrics["comparators"] = {
        n: average_dict(r, w)
        for n, r in by_name.items()
        if n != prim.estimator and set(range(w[0], w[1] + 1)) <= set(r.event_time.tolist())
    }
    out = {
        "event_study": tidy_all([prim, *alts, *comps]),
        "event_study_chronic": tidy_all([prim_ch, *alts_ch, *comps_ch]),
        "subgroups": subgroups,
        "robustness": rob,
        "event_means": event_means(matched, cfg.event_window),
        "chronic_by_month": chronic_by_month(panel),
        "sample_flow": sample_flow(panel, matched, prim),
        "metrics": metrics,
    }
    log.info("estimands and inference beside the headline")
    ecfg = EstimandsConfig.from_estimate(cfg)
    # the same censoring weights or imputed rows as the primary's: reused
    same = (matched["ipcw"], cens_model) if cens_model is not None else None
    imputed = (matched, cens_diag) if cfg.censoring == "impute" else None
    extra = estimands(panel.columns(PANEL_COLUMNS), recorded, match_spec, ecfg,
                      censoring=same, imputed=imputed)  # fmt: skip
    for name in ESTIMAND_TABLES:
        out[name] = extra[name]
    metrics["estimands"] = extra["metrics"]
    log.info("sensitivity analysis and evidence standards")
    other_res = other[1] if isinstance(other[1], EventStudyResult) else None
    diff_res = prim if cfg.design == "differences" else other_res
    out.update(sensitivity_suite(matched, prim, prim_ch, diff_res, other_res, subgroups, w,
                                 replace(cfg.sensitivity, alpha=cfg.alpha),
                                 recorded=recorded))  # imputed outcomes count as missing
    if meta.get("synthetic") and meta.get("truth"):
        truth = meta["truth"]
        tc = truth_comparison(by_name, truth, w, subgroups, prim.estimator)
        out["truth_comparison"] = tc
        metrics["truth"] = {
            "att_window": truth.get("att_window"),
            "att_window_chronic": truth.get("att_window_chronic"),
        }
    else:
        out["truth_comparison"] = pd.DataFrame(columns=TRUTH_COLUMNS)
    return out
