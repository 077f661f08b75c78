"""The matched designs: the primary (``estimate.design``) and the other one beside it.

* **matched ANCOVA** (``design: ancova``, :func:`pipeline.did.ancova.matched_ancova`): on
  the matched stacks, attendance at each event time regressed on the treated indicator and
  the recorded months at the first visit, time effects per ``ancova_fe`` × event time,
  matching × censoring weights (:mod:`pipeline.censoring`).
* **matched differences** (``design: differences``, ``matched_stacked``,
  :func:`pipeline.did.stacked.stacked_event_study`): effects relative to ``reference``
  with unit-by-matched-set and matched-set-by-event-time fixed effects.

:func:`primary` fits the design the configuration names; :func:`other_design` the other
one, returning a failure instead of raising it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipeline.analysis.settings import EstimateConfig
from pipeline.censoring import DEFAULT_TRUNCATE, CensoringModel, ipcw_weights
from pipeline.censoring_ice import adjust_for_censoring, ice_impute
from pipeline.did.ancova import matched_ancova
from pipeline.did.results import EventStudyResult
from pipeline.did.stacked import stacked_event_study
from pipeline.history import history_options


def add_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """The chronic flag as percentage points (0/100) beside the attendance rate."""
    return df.assign(chronic_pp=100.0 * df["chronic"].astype(float))


def with_censoring_weights(
    matched: pd.DataFrame, use: bool, truncate=DEFAULT_TRUNCATE
) -> tuple[pd.DataFrame, dict]:
    """``matched`` with the censoring weights (column ``ipcw``; 1 when ``use`` is false)
    and their summary."""
    m, info, _ = censoring_weights_model(matched, use, truncate)
    return m, info


def censoring_weights_model(
    matched: pd.DataFrame, use: bool, truncate=DEFAULT_TRUNCATE
) -> tuple[pd.DataFrame, dict, CensoringModel | None]:
    """:func:`with_censoring_weights` and the fitted censoring model (``None`` when
    ``use`` is false), for steps that need the same weights again."""
    m = matched.copy()
    if not use:
        m["ipcw"] = 1.0
        return m, {"ipcw": False}, None
    w, model = ipcw_weights(m, truncate=truncate)
    m["ipcw"] = w.to_numpy()
    return m, {"ipcw": True, **model.weight_summary}, model


#: The outcomes the stage fits on the matched stacks (:func:`add_outcomes`).
STAGE_OUTCOMES = ("attendance_rate", "chronic_pp")


def censoring_adjusted(
    matched: pd.DataFrame,
    cfg: EstimateConfig,
    outcomes: tuple[str, ...] = STAGE_OUTCOMES,
) -> tuple[pd.DataFrame, dict, CensoringModel | None, pd.DataFrame]:
    """The matched stacks ready for the designs, comparison students visited later handled
    as ``cfg.censoring`` says.

    ``weights``: :func:`censoring_weights_model` (``cfg.ipcw``, ``cfg.ipcw_truncate``);
    the censored rows stay censored. ``impute``: each outcome of ``outcomes`` in the
    censored comparison rows is replaced by its prediction from the student's recorded
    months (:func:`pipeline.censoring_ice.ice_impute`; the same rows for every outcome),
    the rows count as observed and every ``ipcw`` is 1.

    Returns
    -------
    (DataFrame, dict, CensoringModel or None, DataFrame)
        The stacks, the summary the stage records as ``metrics.censoring``, the weights'
        model (``None`` under ``impute`` or without weights) and per event time the
        diagnostics the report prints (the weights' or the imputation's).
    """
    if cfg.censoring == "weights":
        m, info, model = censoring_weights_model(matched, cfg.ipcw, cfg.ipcw_truncate)
        diag = model.diagnostics if model is not None else pd.DataFrame()
        return m, {"method": "weights", **info}, model, diag
    # the chain's history is the attendance rate whatever the outcome (the lags)
    out, diag = adjust_for_censoring(matched, outcomes[0], "impute", history="attendance_rate")
    for y in outcomes[1:]:
        other, _ = ice_impute(matched, y, history="attendance_rate")
        out[y] = other[y].to_numpy()
    cen = matched["censored"].astype(bool).to_numpy()
    comp = (matched["role"] == "comparison").to_numpy()
    imputed = cen & ~out["censored"].astype(bool).to_numpy()
    info = {
        "method": "impute",
        "ipcw": False,
        "censored_rows": int((cen & comp).sum()),
        "imputed_rows": int(imputed.sum()),
        "imputed_students": int(matched.loc[imputed, "student_key"].nunique()),
        "comparison_rows": int(comp.sum()),
    }
    return out, info, None, diag


def _inference(cfg: EstimateConfig, bootstrap: bool) -> dict[str, Any]:
    """The matched designs' shared inference options."""
    return dict(
        cluster=cfg.cluster,
        average_window=cfg.att_window,
        wild_bootstrap=bootstrap,
        B=cfg.bootstrap_draws,
        seed=cfg.seed,
        alpha=cfg.alpha,
    )


def differences(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig, *, bootstrap: bool
) -> EventStudyResult:
    """The matched differences design (``matched_stacked``) on the matched stacks."""
    return stacked_event_study(
        matched,
        yname=y,
        stack=cfg.stack_column,
        weights="ipcw",
        ref=cfg.reference,
        window=cfg.event_window,
        **_inference(cfg, bootstrap),
    )


def ancova(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig, *, bootstrap: bool
) -> EventStudyResult:
    """The matched ANCOVA (``matched_ancova``) on the matched stacks (``ipcw`` weights);
    with ``cfg.history`` also on the recorded year at the first visit
    (:data:`pipeline.history.HISTORY_COLUMNS`, which ``matched`` must carry)."""
    return matched_ancova(
        matched,
        yname=y,
        window=cfg.event_window,
        fe=cfg.ancova_fe,
        effect_strata=cfg.effect_strata,
        vcov_type=cfg.vcov,
        **history_options(cfg.history),
        **_inference(cfg, bootstrap),
    )


def primary(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig, *, bootstrap: bool
) -> EventStudyResult:
    """The design ``cfg.design`` names, with censoring weights from the ``ipcw`` column."""
    if cfg.design == "ancova":
        return ancova(matched, y, cfg, bootstrap=bootstrap)
    return differences(matched, y, cfg, bootstrap=bootstrap)


def other_design(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig
) -> tuple[str, EventStudyResult | Exception]:
    """The design not chosen as primary (its kind and result), for the robustness table
    and the event-study figure; a failure is returned, to be reported, instead of raised."""
    kind = "differences" if cfg.design == "ancova" else "ancova"
    fit = differences if kind == "differences" else ancova
    try:
        return kind, fit(matched, y, cfg, bootstrap=False)
    except (ValueError, KeyError) as exc:
        return kind, exc


OTHER_DESIGN_LABELS = {
    "differences": "matched differences (change from the month before the visit)",
    "ancova": "matched ANCOVA (levels on the months before the visit)",
}


def other_design_note(kind: str, cfg: EstimateConfig) -> str:
    """The robustness table's note on the other design, naming its settings."""
    if kind == "differences":
        per = "matched set" if cfg.time_effects == "matched_set" else "matching stratum"
        refs = ", ".join(str(r) for r in cfg.reference)
        return (
            f"the same matched students and weights, effects measured as the change from "
            f"event time {refs} with time effects per {per} (pipeline/did/stacked.py); "
            "differencing from the dip month counts any imperfect match on the dip's depth"
        )
    per = cfg.ancova_fe or "all matched sets together"
    return (
        "post-visit attendance adjusted for the recorded months at the first visit instead "
        f"of differenced from the month before it; time effects per {per} x event time; "
        "same censoring weights (pipeline/did/ancova.py)"
    )
