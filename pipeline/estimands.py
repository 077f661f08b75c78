"""The estimands and the inference beside the headline (issue 17), for the estimate stage.

:func:`estimands` takes the panel and the matched stacks (with censoring weights) and
returns the tables and metrics of:

* the headline window average with errors clustered by home school (students and the
  matched sets they serve in nested), the district-level wild cluster bootstrap interval
  (the few-clusters check, :mod:`pipeline.inference`) and the design bootstrap
  (schools resampled within districts, the whole design re-run per draw,
  :mod:`pipeline.design_bootstrap`);
* the intent-to-treat effect at the first attempted visit and the effect on families
  reached (Bloom), :mod:`pipeline.attempts`;
* the censoring weights' diagnostics per event time (:mod:`pipeline.censoring`);
* attrition per event time against the WWC boundary and Lee bounds for the headline
  (:mod:`pipeline.attrition`);
* chronic absence as the state defines it, by school year (:mod:`pipeline.chronic`).

Every step is optional through :class:`EstimandsConfig`; a step that fails is reported
as a row with its error rather than stopping the stage.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline import labels
from pipeline.analysis.schemas import (
    ATTRITION_COLUMNS,
    CHRONIC_YEARLY_COLUMNS,
    ESTIMANDS_COLUMNS,
    REACH_COLUMNS,
)
from pipeline.attempts import bloom, itt_design, reach_shares
from pipeline.attrition import attrition_table, lee_bounds_matched
from pipeline.censoring import DEFAULT_TRUNCATE, CensoringModel, ipcw_weights
from pipeline.censoring_ice import adjust_for_censoring
from pipeline.chronic import STATE_MEASURE_NOTE, chronic_absence_rates, chronic_absence_yearly
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.design_bootstrap import DesignBootstrap
from pipeline.did.ancova import matched_ancova
from pipeline.history import history_options, with_history
from pipeline.inference import SCHOOL, district_wild_check
from pipeline.matching.riskset import PANEL_MATCH_COLUMNS, PropensityCache, RiskSetSpec

log = logging.getLogger("pipeline.estimands")

__all__ = ["ESTIMAND_COLUMNS", "ESTIMAND_TABLES", "PANEL_COLUMNS", "EstimandsConfig", "estimands"]

#: Panel columns :func:`estimands` reads (matching, attempts, clusters, chronic absence).
PANEL_COLUMNS = [
    *PANEL_MATCH_COLUMNS,
    "month",
    "school_code",
    "school_year",
    "attendance_rate",
    "event_time",
    "days_membership",
    "days_present",
    "visits_completed_to_date",
    "visits_attempted_to_date",
]

#: The tables :func:`estimands` returns (each written as ``reports/tables/<name>.csv``).
ESTIMAND_TABLES = ("estimands", "attrition", "censoring_diagnostics", "reach", "chronic_yearly")

ESTIMAND_COLUMNS = ESTIMANDS_COLUMNS

#: The intent to treat's note on how comparison students attempted later are handled.
ITT_CENSORING_NOTES = {
    "weights": "comparison students attempted later are left out from then on and the "
    "others weighted up",
    "impute": "comparison students attempted later keep their place, with attendance "
    "predicted from their recorded months (the interval treats the predictions as observed)",
}


def boot_note(draws: int, scheme: str, hold_mix: str | None) -> str:
    """The estimands table's note on the design bootstrap row: draws, how schools were
    weighed, the mix held."""
    how = labels.boot_scheme(scheme)["note"]
    held = f", visited {hold_mix.replace('_', ' ')} mix held" if hold_mix else ""
    return f"{draws} draws, {how}{held}, percentile interval"


@dataclass(frozen=True)
class EstimandsConfig:
    """Settings (``params.yaml``, section ``estimate``, key ``estimands``)."""

    att_window: tuple[int, int] = (1, 6)
    event_window: tuple[int, int] = (-6, 12)
    ancova_fe: str | None = "district_code"
    effect_strata: str | None = None
    vcov: str = "CR1"
    #: the designs also condition on the recorded year at the first visit or attempt
    #: (``estimate.history``, :mod:`pipeline.history`)
    history: bool = False
    alpha: float = 0.05
    seed: int = 20210403
    design_bootstrap_draws: int = 199
    #: how a draw weighs schools (:data:`pipeline.design_bootstrap.SCHEMES`) and the
    #: visited mix it holds (``DesignBootstrap(hold_mix=...)``)
    design_bootstrap_scheme: str = "dirichlet_unit"
    design_bootstrap_hold_mix: str | None = "grade_band"
    bootstrap_workers: int = 2
    district_wild_draws: int = 9999
    itt: bool = True
    #: comparison students attempted later: ``weights`` or ``impute``
    #: (:func:`pipeline.censoring_ice.adjust_for_censoring`)
    itt_censoring: str = "impute"
    attrition_boundary: str = "cautious"
    attrition_event_times: tuple[int, int] = (1, 12)
    chronic_min_enrolled_days: int = 1
    censoring_truncate: tuple[float, float] | None = DEFAULT_TRUNCATE
    #: the completed-visit design's comparison students visited later (``estimate.censoring``):
    #: ``weights`` or ``impute``
    censoring: str = "impute"

    @classmethod
    def from_estimate(cls, est) -> EstimandsConfig:
        """The settings the estimate stage runs with, from its
        :class:`~pipeline.analysis.settings.EstimateConfig` ``est`` (the ``estimands``
        section plus the design settings they share with the headline)."""
        return cls.from_params(
            est.estimands,
            att_window=est.att_window,
            event_window=est.event_window,
            ancova_fe=est.ancova_fe,
            effect_strata=est.effect_strata,
            vcov=est.vcov,
            history=est.history,
            alpha=est.alpha,
            seed=est.seed,
            censoring_truncate=est.ipcw_truncate,
            censoring=est.censoring,
        )

    @classmethod
    def from_params(cls, section: dict, **shared) -> EstimandsConfig:
        unknown = set(section) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"params.yaml estimate.estimands: unknown key(s) {sorted(unknown)}")
        kw = {**shared, **section}
        for k in ("att_window", "event_window", "attrition_event_times", "censoring_truncate"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def design_bootstrap(
    panel: pd.DataFrame,
    spec: RiskSetSpec,
    cfg: EstimandsConfig,
    ps_cache: PropensityCache | None = None,
) -> DesignBootstrap:
    """The design bootstrap as ``cfg`` sets it up (matching ``spec``; ``ps_cache``: a
    matching run's propensity fit to reuse): the one wiring from settings that the
    estimate stage, the simulation study and the benchmarks share."""
    return DesignBootstrap(
        panel,
        spec,
        att_window=cfg.att_window,
        truncate=cfg.censoring_truncate,
        effect_strata=cfg.effect_strata,
        censoring=cfg.censoring,
        scheme=cfg.design_bootstrap_scheme,
        hold_mix=cfg.design_bootstrap_hold_mix,
        history=cfg.history,
        ps_cache=ps_cache,
    )


def _row(estimand, inference, est, se, lo, hi, n, note="") -> dict:
    return dict(zip(ESTIMAND_COLUMNS, (estimand, inference, est, se, lo, hi, n, note), strict=True))


def _ancova(m: pd.DataFrame, cfg: EstimandsConfig, cluster: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = matched_ancova(
            m, yname="attendance_rate", window=cfg.event_window, fe=cfg.ancova_fe,
            effect_strata=cfg.effect_strata, vcov_type=cfg.vcov, cluster=cluster,
            alpha=cfg.alpha, **history_options(cfg.history),
        )  # fmt: skip
    return r.average(cfg.att_window, cfg.alpha)


def estimands(
    panel: pd.DataFrame,
    matched: pd.DataFrame,
    spec: RiskSetSpec,
    cfg: EstimandsConfig,
    censoring: tuple[pd.Series, CensoringModel] | None = None,
    imputed: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Tables (``estimands``, ``attrition``, ``censoring_diagnostics``, ``reach``,
    ``chronic_yearly``) and ``metrics`` (see module docstring).

    ``matched`` are the stacked matched panels of the completed-visit design (the
    ``match`` stage's output). Comparison students visited later are handled as
    ``cfg.censoring`` says:

    * ``weights``: censoring weights are computed here with ``cfg.censoring_truncate``,
      unless ``censoring`` gives them: the weights (aligned with ``matched``) and model
      :func:`pipeline.censoring.ipcw_weights` returns for ``matched`` with that truncation;
    * ``impute``: their attendance is imputed here
      (:func:`pipeline.censoring_ice.adjust_for_censoring`), unless ``imputed`` gives the
      imputed stacks and their diagnostics.

    Attrition and the Lee bounds always count the rows as recorded (imputed rows are not
    retained ones).
    """
    rows: list[dict] = []
    metrics: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    homes = home_clusters(panel)
    if cfg.censoring == "impute":
        if imputed is None:
            imputed = adjust_for_censoring(matched, "attendance_rate", "impute")
        m = add_home_clusters(imputed[0], homes)
        tables["censoring_diagnostics"] = imputed[1]
        observed = add_home_clusters(matched, homes)
    else:
        if censoring is None:
            w, model = ipcw_weights(matched, truncate=cfg.censoring_truncate)
        else:
            w, model = censoring
        m = observed = add_home_clusters(matched.assign(ipcw=w.to_numpy()), homes)
        tables["censoring_diagnostics"] = model.diagnostics
    n_t = int(m.loc[m["role"] == "treated", "student_key"].nunique())

    def attempt(name: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table, not fatal
            log.warning("%s failed: %s", name, exc)
            rows.append(_row(name, "failed", np.nan, np.nan, np.nan, np.nan, 0, repr(exc)))

    def headline():
        s = _ancova(m, cfg, "student_key")
        rows.append(_row("completed visit", "analytic, clustered by student", s.estimate,
                         s.std_error, s.ci_low, s.ci_high, n_t))  # fmt: skip
        a = _ancova(m, cfg, SCHOOL)
        rows.append(_row("completed visit", "analytic, clustered by school", a.estimate,
                         a.std_error, a.ci_low, a.ci_high, n_t,
                         "each student's school in their first month"))  # fmt: skip
        metrics["att_school_clustered"] = a.to_dict()

    def district():
        d = district_wild_check(
            m, window=cfg.event_window, att_window=cfg.att_window, fe=cfg.ancova_fe,
            effect_strata=cfg.effect_strata, B=cfg.district_wild_draws, seed=cfg.seed,
            alpha=cfg.alpha, history=cfg.history,
        ).iloc[0]  # fmt: skip
        rows.append(_row("completed visit", "wild cluster bootstrap by district",
                         d["estimate"], d["std_error"], d["ci_low"], d["ci_high"], n_t,
                         f"{d['clusters']} districts, {str(d['weights']).capitalize()} "
                         f"weights, {int(d['B']):,} draws"))  # fmt: skip
        metrics["att_district_wild"] = {k: _plain(d[k]) for k in d.index}

    def design():
        bs = design_bootstrap(panel, spec, cfg)
        r = bs.run(cfg.design_bootstrap_draws, seed=cfg.seed, workers=cfg.bootstrap_workers,
                   alpha=cfg.alpha)  # fmt: skip
        lo, hi = r.conf_int()
        rows.append(_row("completed visit", "design bootstrap (schools within districts)",
                         r.estimate, r.std_error, lo, hi, n_t,
                         boot_note(r.draws.size, cfg.design_bootstrap_scheme,
                                   cfg.design_bootstrap_hold_mix)))  # fmt: skip
        metrics["att_design_bootstrap"] = {
            "estimate": r.estimate, "std_error": r.std_error, "ci_low": lo, "ci_high": hi,
            "draws": int(r.draws.size), "failed_draws": int((~np.isfinite(r.draws)).sum()),
            "scheme": cfg.design_bootstrap_scheme, "hold_mix": cfg.design_bootstrap_hold_mix,
        }  # fmt: skip
        # run time goes to the log, never to an output (same params and seed, same bytes)
        log.info("design bootstrap: %d draws in %.1f s", r.draws.size, r.seconds)

    def itt():
        des = itt_design(panel, spec)
        at_attempt = with_history(des.matched, panel) if cfg.history else des.matched
        mi, cdiag = adjust_for_censoring(at_attempt, "attendance_rate", cfg.itt_censoring,
                                         truncate=cfg.censoring_truncate)  # fmt: skip
        mi = add_home_clusters(mi, homes)
        a = _ancova(mi, cfg, SCHOOL)
        n_i = int(mi.loc[mi["role"] == "treated", "student_key"].nunique())
        rows.append(_row("first attempted visit (intent to treat)",
                         "analytic, clustered by school", a.estimate, a.std_error,
                         a.ci_low, a.ci_high, n_i,
                         "students matched when first attempted, reached or not; "
                         + ITT_CENSORING_NOTES[cfg.itt_censoring]))  # fmt: skip
        sh = reach_shares(mi, window=cfg.att_window)
        b = bloom(a.estimate, a.std_error, sh, alpha=cfg.alpha)
        rows.append(_row("families reached (ITT / share reached)", "delta method",
                         b.estimate, b.std_error, b.ci_low, b.ci_high, n_i,
                         "assumes an attempt without contact changes nothing"))  # fmt: skip
        tables["reach"] = sh
        fa = des.panel["first_visit_school_month"]
        metrics["itt"] = {
            **a.to_dict(),
            "n_treated": n_i,
            # every student with an attempt in the panel: the estimate covers the n_treated
            # of them the design could match, and its estimand is their effect
            "n_attempted": int(des.panel.loc[fa.notna(), "student_key"].nunique()),
            "dropped_sets_attempt_month_unknown": des.n_dropped_inexact,
            "censoring": cfg.itt_censoring,
            # comparison rows whose attendance was imputed (0 under weights)
            "imputed_rows": int(cdiag["imputed_rows"].fillna(0).sum()),
        }
        metrics["reached"] = {k: _plain(v) for k, v in b.__dict__.items()}

    def attrition():
        tables["attrition"] = attrition_table(
            observed, event_times=cfg.attrition_event_times, boundary=cfg.attrition_boundary
        )
        lb = lee_bounds_matched(observed, window=cfg.att_window)
        rows.append(_row("completed visit", "Lee (2009) bounds, unadjusted matched difference",
                         lb.naive, np.nan, lb.lower, lb.upper, n_t,
                         f"trims {lb.trim_share:.1%} of the {lb.trimmed_group} group"))  # fmt: skip
        metrics["lee_bounds"] = {k: _plain(v) for k, v in lb.__dict__.items()}

    def chronic():
        y = chronic_absence_yearly(
            panel, min_enrolled_days=cfg.chronic_min_enrolled_days, by=["leap_district"]
        )
        tables["chronic_yearly"] = chronic_absence_rates(y, by=["leap_district"])
        metrics["chronic_state_measure"] = {
            "definition": "absent 10% or more of the days enrolled in the school year, "
            "Pre-K excluded",
            "min_enrolled_days": cfg.chronic_min_enrolled_days,
            "monthly_flag": STATE_MEASURE_NOTE,
        }

    attempt("completed visit", headline)
    attempt("completed visit, district wild bootstrap", district)
    if cfg.design_bootstrap_draws > 0:
        attempt("completed visit, design bootstrap", design)
    if cfg.itt:
        attempt("first attempted visit", itt)
    attempt("attrition", attrition)
    attempt("chronic absence (state measure)", chronic)
    tables["estimands"] = pd.DataFrame(rows, columns=list(ESTIMAND_COLUMNS))
    tables.setdefault("attrition", pd.DataFrame(columns=ATTRITION_COLUMNS))
    tables.setdefault("reach", pd.DataFrame(columns=REACH_COLUMNS))
    tables.setdefault("chronic_yearly", pd.DataFrame(columns=CHRONIC_YEARLY_COLUMNS))
    return {**tables, "metrics": metrics}


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v
