"""The simulation study's inference extras (issue 17): other intervals for the primary
design and the estimands at the first attempted visit, each against its own truth.

With ``validate.inference`` on, every replication of the study adds these rows (names in
:data:`pipeline.registry.INFERENCE_EXTRAS`, reader-facing labels in the registry):

``matched_ancova_school_clustered``
    The primary design's window average with errors clustered by home school
    (:mod:`pipeline.clusters`; students and the matched sets they serve in stay nested).
``matched_ancova_district_wild``
    The same average with the district-level wild cluster bootstrap interval
    (:func:`pipeline.inference.district_wild_check`, ``validate.wild_draws`` draws).
``matched_ancova_design_bootstrap``
    The design bootstrap (:class:`pipeline.design_bootstrap.DesignBootstrap`: schools
    resampled within districts, propensity model, matching and censoring weights re-fitted
    in every draw; ``validate.boot_draws`` draws, one process): its standard error and
    percentile interval.
``itt_first_attempt``
    The intent-to-treat effect at the first attempted visit
    (:func:`pipeline.attempts.itt_design`, the primary estimator, comparison students
    attempted later imputed or weighted as ``estimate.estimands.itt_censoring`` says,
    errors clustered by home school); truth: ``itt_window`` over the attempted students
    the design matched (:func:`matched_itt_truth`; the generator's ``truth["itt_window"]``
    averages over every attempted student, about a quarter of whom cannot be matched and
    whose effect differs: that gap is the estimand's, not the estimator's).
``reached_families``
    Bloom's effect on families reached (ITT ÷ mean share reached,
    :func:`pipeline.attempts.bloom`, delta-method interval); truth ``reached_window`` —
    the ITT truth over the mean share reached, over the same matched students, exactly
    the ratio the estimator targets.

The first three are judged against the completed-visit truth (``att_window``). Each extra
runs inside its own guard: a failure becomes a row with the error, never a crash.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline import estimands, registry
from pipeline.analysis.design import primary
from pipeline.analysis.settings import EstimateConfig
from pipeline.attempts import BloomEffect, bloom, itt_design, reach_shares
from pipeline.censoring_ice import adjust_for_censoring
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.design_bootstrap import BootstrapResult
from pipeline.did.results import EventStudyResult
from pipeline.history import with_history
from pipeline.inference import SCHOOL, district_wild_check
from pipeline.matching.riskset import PropensityCache, RiskSetSpec
from pipeline.synth.effects import itt_truth_for

__all__ = [
    "design_bootstrap",
    "district_wild",
    "inference_rows",
    "itt_first_attempt",
    "reached_families",
    "school_clustered",
]

(SCHOOL_ROW, WILD_ROW, BOOT_ROW, ITT_ROW, REACHED_ROW) = registry.INFERENCE_EXTRAS
#: Key of the truth dict holding the attempted students' potential outcomes (a frame whose
#: ``student_id`` is the panel's ``student_key``; :func:`pipeline.analysis.simulation.
#: synthetic_panel_truth`); not part of ``truth.json``.
ITT_UNITS = "_itt_units"

#: The extras whose truth is already over the students matched at the first attempt.
ATTEMPT_ROWS = (ITT_ROW, REACHED_ROW)
#: The truth key of ``truth.json`` each extra is judged against.
TRUTH_KEYS = {
    SCHOOL_ROW: "att_window",
    WILD_ROW: "att_window",
    BOOT_ROW: "att_window",
    ITT_ROW: "itt_window",
    REACHED_ROW: "reached_window",
}


def _school_cfg(ecfg: EstimateConfig) -> EstimateConfig:
    return dataclasses.replace(ecfg, cluster=SCHOOL)


def school_clustered(matched: pd.DataFrame, y: str, ecfg: EstimateConfig) -> EventStudyResult:
    """The primary design with errors clustered by home school.

    Parameters
    ----------
    matched : DataFrame
        Stacked matched panels with ``ipcw`` and the home clusters
        (:func:`pipeline.clusters.add_home_clusters`).
    y : str
        Outcome column.
    ecfg : EstimateConfig
        The estimate settings (design, windows, fixed effects); its ``cluster`` is replaced.

    Returns
    -------
    EventStudyResult
        The event study; its window average is the primary's with school-clustered errors.
    """
    return primary(matched, y, _school_cfg(ecfg), bootstrap=False)


def district_wild(
    matched: pd.DataFrame, ecfg: EstimateConfig, *, draws: int, seed: int
) -> pd.DataFrame:
    """The primary's window average with a district-level wild cluster bootstrap interval.

    Returns
    -------
    DataFrame
        One row (:func:`pipeline.inference.district_wild_check`): ``estimate, std_error,
        ci_low, ci_high`` and the number of districts, weights and draws.
    """
    return district_wild_check(
        matched, window=ecfg.event_window, att_window=ecfg.att_window, fe=ecfg.ancova_fe,
        effect_strata=ecfg.effect_strata, B=draws, seed=seed, alpha=ecfg.alpha,
        history=ecfg.history,
    )  # fmt: skip


def design_bootstrap(
    panel: pd.DataFrame,
    spec: RiskSetSpec,
    ecfg: EstimateConfig,
    *,
    draws: int,
    seed: int,
    ps_cache: PropensityCache | None = None,
) -> BootstrapResult:
    """The design bootstrap of the primary's window average, in one process (``ps_cache``:
    the primary's matching run's propensity fit, reused).

    Returns
    -------
    BootstrapResult
        The full-sample estimate, the draws, the bootstrap SE and percentile interval.
    """
    bs = estimands.design_bootstrap(
        panel, spec, estimands.EstimandsConfig.from_estimate(ecfg), ps_cache=ps_cache
    )
    return bs.run(draws, seed=seed, workers=1, alpha=ecfg.alpha)


def itt_first_attempt(
    panel: pd.DataFrame,
    spec: RiskSetSpec,
    y: str,
    ecfg: EstimateConfig,
    homes: pd.DataFrame,
) -> tuple[EventStudyResult, pd.DataFrame]:
    """The intent-to-treat design at the first attempted visit, errors clustered by school.

    Returns
    -------
    result, shares, treated
        The primary estimator's event study on the students matched at their first attempt
        (comparison students censored at their own first attempts, handled by
        ``ecfg.estimands["itt_censoring"]``: imputation, the default, or weights), the share
        of them reached by each event time of the window (:func:`pipeline.attempts.reach_shares`)
        and the matched attempted students' keys.
    """
    des = itt_design(panel, spec)
    method = ecfg.estimands.get("itt_censoring", "impute")
    at_attempt = with_history(des.matched, panel) if ecfg.history else des.matched
    m, _ = adjust_for_censoring(at_attempt, y, method, truncate=ecfg.ipcw_truncate)
    m = add_home_clusters(m, homes)
    res = primary(m, y, _school_cfg(ecfg), bootstrap=False)
    treated = pd.Index(m.loc[m["role"] == "treated", "student_key"].unique())
    return res, reach_shares(m, window=ecfg.att_window), treated


def reached_families(
    itt: EventStudyResult, shares: pd.DataFrame, ecfg: EstimateConfig
) -> BloomEffect:
    """Bloom's effect on families reached from the ITT's window average.

    Returns
    -------
    BloomEffect
        ITT ÷ mean share reached with its delta-method standard error and interval.
    """
    a = itt.average(ecfg.att_window, ecfg.alpha)
    return bloom(a.estimate, a.std_error, shares, alpha=ecfg.alpha)


def matched_itt_truth(truth: dict, treated: pd.Index, ecfg: EstimateConfig) -> dict | None:
    """The intent-to-treat truth over the attempted students the design matched.

    The generator's ``itt_window`` averages over every attempted student; the design can
    only match those with the recorded months and a comparison student in their stratum
    (about three in four), and its estimand is the effect among them. With the
    attempted students' potential outcomes in ``truth[ITT_UNITS]`` (the study's extracts
    have them), this is the same table over the matched ones
    (:func:`pipeline.synth.effects.itt_truth_for`); ``None`` without them (the row is then
    judged against the generator's truth over every attempted student).
    """
    units = truth.get(ITT_UNITS)
    if units is None:
        return None
    return itt_truth_for(units, treated, tuple(ecfg.att_window))


def _truth_of(table: dict | None, key: str) -> dict:
    return {} if table is None else {"truth": table.get(key)}


def _pretrend(res: EventStudyResult) -> float:
    with np.errstate(all="ignore"):
        return float(res.pretrend_test().p_value)


def _avg_row(name: str, res: EventStudyResult, ecfg: EstimateConfig) -> dict:
    a = res.average(ecfg.att_window, ecfg.alpha)
    return {
        "estimator": name, "estimate": a.estimate, "std_error": a.std_error,
        "ci_low": a.ci_low, "ci_high": a.ci_high, "pretrend_p": _pretrend(res),
        "n_treated": int(np.max(res.n_treated)) if res.n_treated is not None else -1,
    }  # fmt: skip


def inference_rows(
    panel: pd.DataFrame,
    matched: pd.DataFrame,
    spec: RiskSetSpec,
    ecfg: EstimateConfig,
    truth: dict,
    *,
    boot_draws: int,
    wild_draws: int,
    seed: int,
    y: str = "attendance_rate",
    ps_cache: PropensityCache | None = None,
    homes: pd.DataFrame | None = None,
) -> list[dict]:
    """The extras' rows of one replication (see the module docstring).

    Parameters
    ----------
    panel : DataFrame
        The replication's panel.
    matched : DataFrame
        The primary design's stacked matched panels with censoring weights (``ipcw``).
    spec : RiskSetSpec
        Matching settings.
    ecfg : EstimateConfig
        The estimate settings the replication uses for the primary.
    truth : dict
        The generator's truth (``att_window``, ``itt_window``, ``reached_window``).
    boot_draws, wild_draws : int
        Design-bootstrap and wild-bootstrap draws (``0``: that extra is skipped).
    seed : int
        The replication's seed (the bootstraps' draws).
    y : str
        Outcome column.
    ps_cache : PropensityCache, optional
        The cache the primary's :func:`~pipeline.matching.riskset.riskset_match` used: the
        design bootstrap reuses its propensity fit.
    homes : DataFrame, optional
        The students' home clusters (:func:`pipeline.clusters.home_clusters` of ``panel``),
        when the caller has them already; computed here otherwise.

    Returns
    -------
    list of dict
        One row per extra (replication-table columns), each with its own ``truth``; a
        failed extra is a row with ``error``.
    """
    rows: list[dict] = []
    homes = home_clusters(panel) if homes is None else homes
    n_t = int(matched.loc[matched["role"] == "treated", "student_key"].nunique())

    def guard(name: str, fn: Callable[[], dict]) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row = fn()
        except Exception as exc:  # noqa: BLE001 - recorded in the replication table
            row = {"estimator": name, "error": f"{type(exc).__name__}: {exc}"}
        t = row.pop("truth", truth.get(TRUTH_KEYS[name]))
        rows.append({**row, "truth": np.nan if t is None else float(t)})

    m = add_home_clusters(matched, homes)
    guard(SCHOOL_ROW, lambda: _avg_row(SCHOOL_ROW, school_clustered(m, y, ecfg), ecfg))

    def wild() -> dict:
        d = district_wild(m, ecfg, draws=wild_draws, seed=seed).iloc[0]
        return {"estimator": WILD_ROW, "n_treated": n_t,
                **{k: float(d[k]) for k in ("estimate", "std_error", "ci_low", "ci_high")}}  # fmt: skip

    if wild_draws > 0:
        guard(WILD_ROW, wild)

    def boot() -> dict:
        r = design_bootstrap(panel, spec, ecfg, draws=boot_draws, seed=seed, ps_cache=ps_cache)
        lo, hi = r.conf_int()
        return {"estimator": BOOT_ROW, "estimate": r.estimate, "std_error": r.std_error,
                "ci_low": lo, "ci_high": hi, "n_treated": n_t}  # fmt: skip

    if boot_draws > 0:
        guard(BOOT_ROW, boot)

    itt: dict = {}

    def attempt() -> dict:
        res, shares, treated = itt_first_attempt(panel, spec, y, ecfg, homes)
        itt.update(res=res, shares=shares, truth=matched_itt_truth(truth, treated, ecfg))
        return {**_avg_row(ITT_ROW, res, ecfg), **_truth_of(itt["truth"], "itt_window")}

    def reached() -> dict:
        if not itt:
            raise RuntimeError("the intent-to-treat design failed")
        b = reached_families(itt["res"], itt["shares"], ecfg)
        row = _avg_row(REACHED_ROW, itt["res"], ecfg)
        row.update(estimate=b.estimate, std_error=b.std_error, ci_low=b.ci_low, ci_high=b.ci_high)
        return {**row, **_truth_of(itt["truth"], "reached_window")}

    guard(ITT_ROW, attempt)
    guard(REACHED_ROW, reached)
    return rows
