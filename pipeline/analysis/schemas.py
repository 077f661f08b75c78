"""The column schemas of the tables the ``estimate`` stage writes.

One place for them: the estimate library (:mod:`pipeline.analysis.tables` and the modules
that build each table), the report and the test fixtures import them from here.  This
module imports nothing, so that readers of the tables need not load the estimators.
"""

from __future__ import annotations

EST_COLUMNS = ["estimate", "std_error", "ci_low", "ci_high"]
#: The event-study tables: one row per estimator and event time (what
#: :meth:`pipeline.did.results.EventStudyResult.tidy` returns).
EVENT_STUDY_COLUMNS = ["estimator", "event_time", *EST_COLUMNS, "n_treated"]
SUBGROUP_COLUMNS = [
    "subgroup",
    "level",
    *EST_COLUMNS,
    "n_treated",
    "n_comparison",
    "note",
]
ROBUSTNESS_COLUMNS = ["check", *EST_COLUMNS, "n_treated", "note"]
EVENT_MEANS_COLUMNS = ["role", "event_time", "mean_rate", "n_students"]
CHRONIC_BY_MONTH_COLUMNS = ["month", "leap_district", "n_students", "n_chronic"]
SAMPLE_FLOW_COLUMNS = ["step", "students", "definition"]
#: The steps of the sample-flow table, in order.
FLOW_STEPS = ["extract", "eligible", "visited", "matched", "analysed"]
TRUTH_COLUMNS = [
    "estimator",
    "quantity",
    "estimate",
    "truth",
    "bias",
    "covered",
    "ci_low",
    "ci_high",
]

#: The estimands and inference beside the headline (:mod:`pipeline.estimands`).
ESTIMANDS_COLUMNS = ["estimand", "inference", *EST_COLUMNS, "n", "note"]
ATTRITION_COLUMNS = [
    "event_time",
    "n_treated",
    "n_comparison",
    "retained_treated",
    "retained_comparison",
    "censored_comparison",
    "attrition_treated",
    "attrition_comparison",
    "overall_attrition",
    "differential_attrition",
    "boundary",
    "max_differential",
    "wwc_attrition",
]
CENSORING_DIAGNOSTICS_COLUMNS = [
    "event_time",
    "comparison_rows",
    "censored_rows",
    "censoring_events",
    "effective_sample_size",
    "max_weight",
    "truncated_rows",
    "imputed_rows",
    "mean_imputed",
]
REACH_COLUMNS = ["event_time", "n_treated", "n_reached", "share_reached"]
CHRONIC_YEARLY_COLUMNS = ["school_year", "leap_district", "n_students", "n_chronic", "chronic_rate"]
#: The sensitivity and evidence-standards tables (:mod:`pipeline.sensitivity.suite`, where
#: each is described); ``note`` holds the reason when a table could not be computed.
SENSITIVITY_TABLES: dict[str, list[str]] = {
    "sensitivity_ovb": ["treatment", "estimate", "std_error", "t_statistic", "dof", "n_obs",
                        "q", "alpha", "r2yd_x", "rv_q", "rv_qa", "note"],
    "sensitivity_ovb_bounds": ["benchmark", "label", "kd", "ky", "r2dz_x", "r2yz_dx",
                               "adjusted_estimate", "adjusted_se", "adjusted_t",
                               "adjusted_ci_low", "adjusted_ci_high", "note"],
    "sensitivity_ovb_contour": ["r2dz_x", "r2yz_dx", "value", "note"],
    "sensitivity_rosenbaum": ["row", "gamma", "pval", "deviate", "statistic", "expectation",
                              "variance", "n_sets", "alpha", "note"],
    "sensitivity_honestdid": ["estimator", "Delta", "method", "M", "lb", "ub", "note"],
    "sensitivity_falsification": ["design", "estimator", "n_placebo", "pretrend_stat",
                                  "pretrend_df", "pretrend_p", "pretrend_reject",
                                  "equivalence_bound", "placebo_max_abs", "effect",
                                  "bound_over_effect", "alpha", "note"],
    "wwc": ["item", "event_time", "characteristic", "value", "category", "reason", "note",
            "required"],
    "effect_sizes": ["measure", "outcome", "estimate", "std_error", "ci_low", "ci_high",
                     "improvement_index", "n_treated", "n_comparison", "note"],
    "subgroup_contrasts": ["subgroup", "level", "reference", "difference", "std_error", "z",
                           "p_value", "q_value", "role"],
    "subgroup_tests": ["subgroup", "statistic", "df", "p_value", "q_value", "role"],
}

#: Table name (``reports/tables/<name>.csv``) → its columns, for every table the
#: ``estimate`` stage writes.
ESTIMATE_TABLES: dict[str, list[str]] = {
    "event_study": EVENT_STUDY_COLUMNS,
    "event_study_chronic": EVENT_STUDY_COLUMNS,
    "subgroups": SUBGROUP_COLUMNS,
    "robustness": ROBUSTNESS_COLUMNS,
    "event_means": EVENT_MEANS_COLUMNS,
    "chronic_by_month": CHRONIC_BY_MONTH_COLUMNS,
    "sample_flow": SAMPLE_FLOW_COLUMNS,
    "truth_comparison": TRUTH_COLUMNS,
    "estimands": ESTIMANDS_COLUMNS,
    "attrition": ATTRITION_COLUMNS,
    "censoring_diagnostics": CENSORING_DIAGNOSTICS_COLUMNS,
    "reach": REACH_COLUMNS,
    "chronic_yearly": CHRONIC_YEARLY_COLUMNS,
    **SENSITIVITY_TABLES,
}
#: Columns of :data:`ESTIMATE_TABLES` a reader may find missing (informational, or
#: absent from outputs written before they were added); the rest are required.
OPTIONAL_COLUMNS: dict[str, list[str]] = {
    "subgroups": ["note"],
    "robustness": ["n_treated"],
    "sample_flow": ["definition"],
    "truth_comparison": ["bias", "covered", "ci_low", "ci_high"],
    **{n: ["note"] for n, cols in SENSITIVITY_TABLES.items() if "note" in cols},
    "wwc": ["note", "required"],  # ``required``: absent from tables written before it
    # the imputation's (estimate.censoring: impute); absent from tables written before it
    "censoring_diagnostics": ["imputed_rows", "mean_imputed"],
}


def required_columns(table: str) -> list[str]:
    """The columns of the estimate stage's ``table`` that a reader may rely on.

    Parameters
    ----------
    table
        A name of :data:`ESTIMATE_TABLES` (``reports/tables/<table>.csv``).

    Returns
    -------
    list of str
        The table's columns, in order, less its :data:`OPTIONAL_COLUMNS`.
    """
    optional = set(OPTIONAL_COLUMNS.get(table, ()))
    return [c for c in ESTIMATE_TABLES[table] if c not in optional]
