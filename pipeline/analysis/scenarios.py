"""The simulation study's scenarios, estimators and table schemas.

A light module (no estimation code): the ``validate`` stage's library
(:mod:`pipeline.analysis.simulation`), its figure and the report read it.
"""

from __future__ import annotations

from typing import Any

from pipeline import registry
from pipeline.validation.diagnostics import DIAGNOSTIC_COLUMNS, FIRES_COLUMNS
from pipeline.validation.scenarios import WORLD_SCENARIOS, WORLD_SPECS
from pipeline.validation.verdicts import VERDICT_BASIS_COLUMNS

#: The comparators the study runs (registry names; the doubly robust Callaway–Sant'Anna
#: is left out: its covariates add nothing in the synthetic worlds but time).
COMPARATORS = tuple(
    registry.estimator(n).name
    for n in (
        "naive_before_after",
        "twfe",
        "sun_abraham",
        "imputation",
        "callaway_santanna_unconditional",
    )
)


def estimators(design: str) -> tuple[str, ...]:
    """The study's estimators when ``estimate.design`` is ``design``: the primary design,
    its extensions (the stress-test redesign: :func:`pipeline.registry.extensions`), its two
    censoring variants, the other design and the comparators."""
    other = registry.DESIGNS[registry.other_design(design)]
    return (
        registry.design_estimator(design).name,
        *registry.extensions(design),
        *registry.variants(design),
        other,
        *COMPARATORS,
    )


#: Every estimator name the study can report, in table order.
ALL_ESTIMATORS = tuple(dict.fromkeys(n for d in registry.DESIGNS for n in estimators(d)))

#: Scenario name → overrides of the synthetic configuration, and whether the targets apply.
SCENARIOS: dict[str, dict[str, Any]] = {
    "no_dip": {"program": {"referral_noise": 1.0e4}},
    "dip": {},
    "heterogeneous": {
        "effects": {
            "grade_6_12": 1.8,
            "grade_pk_5": 0.4,
            "in_person": 1.4,
            "remote": 0.5,
            "ell": 0.5,
        }
    },
    "zero_effect": {"effects": {"zero": True}},
    "few_districts": {"n_program_districts": 2},
    "unrecorded_shocks": {"program": {"unobserved_weight": 1.0}, "targets_apply": False},
    # the stress-test worlds (pipeline/validation/scenarios.py)
    **{k: {**v, "targets_apply": WORLD_SPECS[k].targets_apply} for k, v in WORLD_SCENARIOS.items()},
}

TABLE_COLUMNS = [
    "scenario",
    "estimator",
    "n_reps",
    "truth_mean",
    "estimate_mean",
    "bias",
    "rmse",
    "coverage",
    "rejection_rate",
    "mean_std_error",
    "sd_estimate",
    "sd_error",
    "se_ratio",
    "pretrend_rejection",
    "n_failed",
    "targets_apply",
    *[c.replace("fires_", "rate_") for c in FIRES_COLUMNS],
    "verdict",
    # which rule decided the verdict (pipeline.validation.verdicts.decide)
    *VERDICT_BASIS_COLUMNS,
    "verdict_reason",
    # against the effect on the visited students the design matched (``truth_matched``)
    "truth_matched_mean",
    "bias_matched",
    "sd_error_matched",
    "coverage_matched",
]
REP_COLUMNS = [
    "scenario",
    "rep",
    "seed",
    "estimator",
    "truth",
    # the estimand's truth over the students the design matched (simulation.run_replication)
    "truth_matched",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "n_treated",
    "pretrend_p",
    *DIAGNOSTIC_COLUMNS,
    "seconds",
    "error",
]
#: The columns of ``replications.csv`` (everything but the run time).
FILE_REP_COLUMNS = [c for c in REP_COLUMNS if c != "seconds"]
