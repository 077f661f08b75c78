"""One registry of the human labels a reader sees.

Tables, figures, the report and the notebooks' helpers name variables, estimators,
estimands, subgroups, sample-flow steps, robustness checks and data-quality reasons
through :func:`label` (or the specific helpers below), never by their internal
names.  A name the registry does not know is turned into words (underscores become
spaces, ``var=level`` becomes ``Var: level``), so that an internal name can never
reach a reader verbatim; ``tests/test_report_labels.py`` scans the rendered report
for internal names.
"""

from __future__ import annotations

import re

ESTIMATORS = {
    "matched_ancova": "Matched ANCOVA",
    "matched_stacked": "Matched differences (stacked DiD)",
    "naive_before_after": "Naive before–after",
    "twfe": "Two-way fixed effects",
    "callaway_santanna_unconditional": "Callaway–Sant'Anna (unconditional)",
    "callaway_santanna_dr": "Callaway–Sant'Anna (doubly robust)",
    "sun_abraham": "Sun–Abraham",
    "imputation": "Imputation (Borusyak et al.)",
    "matched_ancova_extended": "Matched ANCOVA with the recorded year",
    "matched_ancova_no_ipcw": "Matched ANCOVA dropping later-visited comparisons, uncorrected",
    "matched_ancova_keep_censored": "Matched ANCOVA keeping later-visited comparisons",
    "matched_ancova_school_clustered": "Matched ANCOVA, errors clustered by school",
    "matched_ancova_district_wild": "Matched ANCOVA, wild cluster bootstrap by district",
    "matched_ancova_design_bootstrap": "Matched ANCOVA, design bootstrap",
    "itt_first_attempt": "Intent to treat at the first attempted visit",
    "reached_families": "Effect on families reached (intent to treat over share reached)",
}

ESTIMANDS = {
    "att": "Effect on the attendance rate",
    "naive": "Naive before–after change",
    "twfe": "Two-way fixed effects estimate",
    "att_chronic": "Effect on the monthly chronic-absence flag",
    "att_window": "Average effect over the window",
}

OUTCOMES = {
    "attendance_rate": "Attendance rate (points)",
    "chronic_absence_pp": "Chronic absence (percentage points)",
}

SUBGROUPS = {
    "grade_band": "Grade band",
    "cohort": "Cohort",
    "first_visit_mode": "First-visit mode",
    "ell": "English learner",
    "prior_year_tier": "Prior-year attendance tier",
    "district": "District",
    "district_code": "District",
    "dosage": "Visits completed",
    "tier": "Prior-year attendance tier",
}

LEVELS = {
    "in_person": "in person",
    "phone_or_virtual": "phone or video",
    "phone": "phone",
    "virtual": "video",
    "at_risk": "at risk",
    "moderate_chronic": "moderate chronic",
    "severe_chronic": "severe chronic",
    "satisfactory": "satisfactory",
    "missing": "not recorded",
    "true": "yes",
    "false": "no",
    "True": "yes",
    "False": "no",
}

VARIABLES = {
    "logit_propensity_score": "Propensity score (logit)",
    "rate_lag1": "Attendance 1 month before",
    "rate_lag2": "Attendance 2 months before",
    "rate_lag3": "Attendance 3 months before",
    "prior_year_rate": "Prior-year attendance",
    "prior_year_missing": "Prior year not recorded",
    "prior_year_tier": "Prior-year tier",
    "grade": "Grade",
    "grade_6_12": "Grades 6–12",
    "sex": "Sex",
    "race_ethnicity": "Race/ethnicity",
    "frl": "Free or reduced-price lunch",
    "ell": "English learner",
    "swd": "Student with a disability",
    "district_code": "District",
    "grade_band": "Grade band",
    "attendance_rate": "Attendance rate",
}

RACE = {
    "AIAN": "American Indian or Alaska Native",
    "ASIAN": "Asian",
    "BLACK": "Black",
    "HISPANIC": "Hispanic",
    "MULTI": "Two or more races",
    "NHPI": "Native Hawaiian or Pacific Islander",
    "WHITE": "White",
}

STEPS = {
    "extract": "In the extract",
    "eligible": "In a program district",
    "visited": "Received a completed visit",
    "matched": "Matched to comparison students",
    "analysed": "Observed after the first visit",
}

REASONS = {
    "read": "rows read",
    "kept": "rows kept",
    "duplicate_exact": "exact duplicates collapsed",
    "missing_value": "a required value is missing",
    "invalid_value": "a value outside the allowed set",
    "invalid_bool": "not a yes/no value",
    "invalid_int": "not a whole number",
    "invalid_date": "not a valid date",
    "invalid_month": "not a valid month",
    "invalid_school_year": "not a valid school year",
    "date_outside_school_year": "a date outside its school year",
    "exit_before_entry": "exit before entry",
    "month_school_year_mismatch": "month and school year disagree",
    "not_a_weekday": "a school day on a weekend",
    "present_exceeds_membership": "days present exceed days enrolled",
    "unknown_student": "unknown student",
    "unknown_district": "unknown district",
    "visit_district_not_leap": "visit in a district outside the program",
    "visit_outside_enrollment": "visit outside the student's enrollment",
    "duplicate_conflict": "conflicting duplicate rows",
    "in_panel": "rows in the panel",
    "zero_membership_month": "months with no days enrolled",
    "summer_month": "summer months",
    "rows": "panel rows",
    "enrollment_covering": "covered by an enrollment spell",
    "enrollment_not_covering_same_year": "no enrollment spell in the same year",
    "enrollment_missing": "no enrollment spell",
    "placed": "placed in the panel",
    "unplaced_before_panel": "before the panel starts",
    "unplaced_after_panel": "after the panel ends",
    "unplaced_no_membership": "in a month without enrollment",
}

TABLES = {
    "districts": "Districts",
    "students": "Students",
    "enrollment": "Enrollment spells",
    "attendance_monthly": "Monthly attendance",
    "attendance_daily": "Daily attendance",
    "home_visits": "Home visits",
    "first_completed_visits": "First completed visits",
    "panel": "Student-month panel",
}

ROLES = {"treated": "Visited students", "comparison": "Matched comparison students"}

COLUMNS = {
    "estimate": "Estimate",
    "std_error": "Std. error",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "n_treated": "Visited students",
    "n_comparison": "Comparison students",
    "quantity": "Quantity",
    "estimator": "Design",
    "outcome": "Outcome",
    "event_time": "School month",
    "subgroup": "Subgroup",
    "level": "Group",
    "check": "Check",
    "note": "Note",
    "step": "Step",
    "students": "Students",
    "excluded": "Left out since the previous step",
    "definition": "Definition",
    "covariate": "Characteristic",
    "smd_before": "SMD before",
    "smd_after": "SMD after",
    "variance_ratio_after": "Variance ratio after",
    "wwc_effect_size_after": "WWC g after",
    "wwc_class_after": "WWC class after",
    "dimension": "By",
    "treated": "Visited",
    "matched": "Matched",
    "unmatched": "Not matched",
    "table": "Table",
    "reason": "Reason",
    "rows": "Rows",
    "scenario": "Scenario",
    "n_reps": "Replications",
    "bias": "Bias",
    "rmse": "RMSE",
    "coverage": "Coverage",
    "se_ratio": "SE ratio",
    "truth": "Truth",
    "covered": "Truth in the interval",
    "population": "Population",
    # the estimands tables (pipeline/analysis/schemas.py)
    "estimand": "Effect of",
    "inference": "Interval from",
    "retained_treated": "Visited students kept",
    "retained_comparison": "Comparison students kept",
    "censored_comparison": "Comparison students visited later",
    "attrition_treated": "Attrition, visited (%)",
    "attrition_comparison": "Attrition, comparison (%)",
    "overall_attrition": "Overall attrition (%)",
    "differential_attrition": "Differential attrition (points)",
    "boundary": "WWC boundary",
    "max_differential": "Largest differential allowed",
    "wwc_attrition": "WWC attrition",
    "comparison_rows": "Comparison rows",
    "censored_rows": "Rows visited later",
    "censoring_events": "Later first visits",
    "effective_sample_size": "Effective rows",
    "max_weight": "Largest weight",
    "truncated_rows": "Weights truncated",
    "imputed_rows": "Rows imputed",
    "mean_imputed": "Mean imputed attendance (%)",
    "school_year": "School year",
    "leap_district": "LEAP district",
    "n_students": "Students",
    "n_chronic": "Chronically absent",
    "chronic_rate": "Chronically absent (%)",
}

SCENARIOS = {
    "no_dip": "No dip before the visit",
    "dip": "Dip before the visit",
    "heterogeneous": "Stronger heterogeneity",
    "zero_effect": "No effect",
    "few_districts": "Few districts",
    "unrecorded_shocks": "Selection on unrecorded shocks",
}

WWC_CLASSES = {
    "meets": "satisfies equivalence",
    "adjust": "needs adjustment",
    "fails": "fails",
}

# robustness checks are named by the estimate stage with parameters in them
_CHECK_PATTERNS: list[tuple[str, str]] = [
    (r"^primary$", "Primary design, as reported"),
    (r"^joint pre-trend test$", "Joint test of the months before the visit (χ²)"),
    (r"^matched differences.*$", "Matched differences (change from the month before the visit)"),
    (r"^placebo: first visits (\d+) school months earlier$",
     r"Placebo: first visits moved \1 school months earlier"),
    (r"^comparison pool: program_districts$",
     "Comparison students from any program district, not only the same one"),
    (r"^comparison pool: non_program_districts$",
     "Comparison students from other districts only"),
    (r"^caliper ([\d.]+) SD$", r"Caliper of \1 SD"),
    (r"^ratio (\d+):1$", r"Up to \1 comparison students per visited student"),
    (r"^relative magnitudes Mbar=([\d.]+)$", r"Relative magnitudes, M̄ = \1"),
    (r"^relative magnitudes breakdown Mbar$", "Relative magnitudes: breakdown M̄"),
]

_ALL = {
    **ESTIMATORS,
    **ESTIMANDS,
    **OUTCOMES,
    **SUBGROUPS,
    **VARIABLES,
    **STEPS,
    **TABLES,
    **ROLES,
    **SCENARIOS,
}


def words(name: object) -> str:
    """An unknown internal name turned into words (never returned verbatim)."""
    s = str(name).replace("_", " ").strip()
    return s[:1].upper() + s[1:] if s else s


def label(name: object) -> str:
    """The human label of any registered name, else :func:`words`."""
    key = str(name)
    return _ALL.get(key, words(key))


def estimator(name: object) -> str:
    """Display name of an estimator."""
    return ESTIMATORS.get(str(name), words(name))


def subgroup(name: object) -> str:
    """Display name of a subgroup variable."""
    return SUBGROUPS.get(str(name), words(name))


def level(value: object) -> str:
    """Display form of a subgroup level or a categorical value."""
    v = str(value)
    return LEVELS.get(v, RACE.get(v, v.replace("_", " ")))


def variable(name: object) -> str:
    """Display name of a covariate; ``var=level`` becomes ``Var: level``."""
    s = str(name)
    if "=" in s:
        var, val = s.split("=", 1)
        if var == "grade":
            return f"Grade {val}"
        return f"{VARIABLES.get(var, words(var))}: {level(val)}"
    return VARIABLES.get(s, words(s))


def column(name: object) -> str:
    """Display name of a table column."""
    return COLUMNS.get(str(name), words(name))


def reason(name: object) -> str:
    """Display text of a data-quality reason code."""
    return REASONS.get(str(name), words(name).lower())


def table(name: object) -> str:
    """Display name of a source table."""
    return TABLES.get(str(name), words(name))


def step(name: object) -> str:
    """Display name of a sample-flow step."""
    return STEPS.get(str(name), words(name))


def check(name: object) -> str:
    """Display name of a robustness check."""
    s = str(name)
    for pat, rep in _CHECK_PATTERNS:
        if re.match(pat, s):
            return re.sub(pat, rep, s)
    return words(s)


def scenario(name: object) -> str:
    """Display name of a simulation scenario."""
    return SCENARIOS.get(str(name), words(name))


#: How the design bootstrap draws schools (``estimate.estimands.design_bootstrap_scheme``,
#: :data:`pipeline.design_bootstrap.SCHEMES`), in every place a reader meets it: ``note``
#: the estimands table's note, ``short`` and ``long`` the methods text and glossary,
#: ``on`` the Uncertainty caution. Resampling (``multinomial``) and the smooth weights.
_BOOT_RESAMPLED = {
    "note": "schools resampled",
    "short": "resamples schools",
    "long": "on schools drawn at random with replacement within districts",
    "on": "on schools resampled within districts",
}
_BOOT_WEIGHTED = {
    "note": "random school weights",
    "short": "weights schools at random",
    "long": "with every school given a random weight (drawn within its district)",
    "on": "on schools reweighted within districts",
}


def boot_scheme(scheme: object) -> dict[str, str]:
    """The words for a design-bootstrap scheme (see :data:`_BOOT_RESAMPLED`); ``None``
    reads as resampling, the scheme of tables written before the setting existed."""
    if scheme in (None, "multinomial"):
        return dict(_BOOT_RESAMPLED)
    out = dict(_BOOT_WEIGHTED)
    if scheme == "dirichlet_unit":
        out["note"] += " of variance 1"
    return out
