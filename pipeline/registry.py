"""The one registry of estimators and estimands.

Every estimator the pipeline runs is named here once: its internal ``name`` (the value
of the ``estimator`` column of every table and of ``params.yaml`` lists), the ``label``
readers see, its ``family``, the function that computes it and the identifying
assumptions it rests on.  Stages, the report, the notebooks and the configuration
models look names up here instead of spelling them out.

The functions are referred to by import path and imported on first use, so reading the
registry (for example to validate ``params.yaml``) does not load the estimators.

Adding an estimator: write the function in :mod:`pipeline.did` (returning an
:class:`~pipeline.did.results.EventStudyResult`), add an :class:`Estimator` entry to
:data:`ESTIMATORS` (``role="comparator"`` makes it selectable in
``estimate.comparators``), and add its runner where the stage calls comparators.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["matched design", "naive", "regression", "heterogeneity-robust"]
Role = Literal["design", "comparator", "variant"]


@dataclass(frozen=True)
class Estimator:
    """One estimator.

    Parameters
    ----------
    name
        Internal name: the ``estimator`` column of the tables and the key in
        ``params.yaml`` lists.  Never shown to readers.
    label
        The name readers see (figures, report, notebooks).
    family
        Broad kind of estimator.
    target
        Import path ``"module:function"`` of the function that computes it.
    assumptions
        The identifying assumptions, in one sentence each.
    role
        ``design`` (a primary-design candidate, chosen by ``estimate.design``),
        ``comparator`` (selectable in ``estimate.comparators``) or ``variant`` (a
        variant of a design run only by the simulation study).
    design
        For ``role="design"``: the value of ``estimate.design`` that selects it.
    extends
        For an extension of a design (``role="variant"`` conditioning on more of the
        recorded history): the value of ``estimate.design`` it extends.
    """

    name: str
    label: str
    family: Family
    target: str
    assumptions: tuple[str, ...]
    role: Role = "comparator"
    design: str | None = None
    extends: str | None = None

    @property
    def function(self) -> Callable[..., Any]:
        """The estimating function (imported on first use)."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_MATCHED = (
    "No unrecorded selection: given the matched months before the first visit, the visit "
    "is as good as random among students in the same district, month and grade band.",
    "Comparison students later visited are weighted for their censoring "
    "(inverse-probability-of-censoring weights), which assumes censoring depends on "
    "recorded history only.",
)

ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        Estimator(
            "matched_ancova",
            "Matched ANCOVA",
            "matched design",
            "pipeline.did.ancova:matched_ancova",
            (
                *_MATCHED,
                "Attendance after the visit is linear in the months before it and the prior "
                "year, with time effects per district and event time.",
            ),
            role="design",
            design="ancova",
        ),
        Estimator(
            "matched_stacked",
            "Matched differences (stacked DiD)",
            "matched design",
            "pipeline.did.stacked:stacked_event_study",
            (
                *_MATCHED,
                "Parallel trends within matched sets from the reference month on.",
            ),
            role="design",
            design="differences",
        ),
        Estimator(
            "naive_before_after",
            "Naive before–after",
            "naive",
            "pipeline.did.naive:naive_before_after",
            ("Attendance would have stayed at its level before the visit.",),
        ),
        Estimator(
            "twfe",
            "Two-way fixed effects",
            "regression",
            "pipeline.did.twfe:twfe_event_study",
            (
                "Parallel trends between visited and not-yet-visited students.",
                "Effects equal across cohorts (else already-visited students act as "
                "controls with the wrong sign).",
            ),
        ),
        Estimator(
            "callaway_santanna_unconditional",
            "Callaway–Sant'Anna (unconditional)",
            "heterogeneity-robust",
            "pipeline.did.cs:att_gt",
            ("Parallel trends between each cohort and the not-yet-visited students.",),
        ),
        Estimator(
            "callaway_santanna_dr",
            "Callaway–Sant'Anna (doubly robust)",
            "heterogeneity-robust",
            "pipeline.did.cs:att_gt",
            (
                "Parallel trends conditional on baseline covariates between each cohort and "
                "the not-yet-visited students.",
            ),
        ),
        Estimator(
            "sun_abraham",
            "Sun–Abraham",
            "heterogeneity-robust",
            "pipeline.did.sunab:sun_abraham",
            ("Parallel trends between each cohort and the never- or last-visited cohort.",),
        ),
        Estimator(
            "imputation",
            "Imputation (Borusyak et al.)",
            "heterogeneity-robust",
            "pipeline.did.imputation:imputation",
            ("Parallel trends and no anticipation: untreated outcomes follow unit and time "
             "effects.",),
        ),
    )
}



def _variants(design: Estimator) -> tuple[Estimator, ...]:
    """The simulation study's variants of a design: what the censoring correction does."""
    return (
        Estimator(
            f"{design.name}_no_ipcw",
            f"{design.label} dropping later-visited comparisons, uncorrected",
            design.family,
            design.target,
            (f"As the {design.label}, with censored comparison rows dropped, neither "
             "weighted nor imputed.",),
            role="variant",
        ),
        Estimator(
            f"{design.name}_keep_censored",
            f"{design.label} keeping later-visited comparisons",
            design.family,
            design.target,
            (f"As the {design.label}, with later-visited comparison rows kept as untreated.",),
            role="variant",
        ),
    )


ESTIMATORS.update(
    {v.name: v for d in list(ESTIMATORS.values()) if d.role == "design" for v in _variants(d)}
)

#: The stress-test redesign (issue 16): the matched ANCOVA that also conditions on the
#: whole recorded year before the visit, the student's own mean and a fourth month
#: (:mod:`pipeline.history`); run by the simulation study beside the primary.
ESTIMATORS["matched_ancova_extended"] = Estimator(
    "matched_ancova_extended",
    "Matched ANCOVA with the recorded year",
    "matched design",
    "pipeline.history:extended_ancova",
    (
        *_MATCHED,
        "Attendance after the visit is linear in the months before it, the prior year, the "
        "year-to-date rate and the student's own recorded mean, with time effects per "
        "district and event time.",
    ),
    role="variant",
    extends="ancova",
)

#: The simulation study's inference extras (issue 17; ``validate.inference``): the primary
#: design's window average with other intervals, and the estimands at the first attempted
#: visit, each judged against its own truth (:mod:`pipeline.validation.extras`).
_EXTRAS_MODULE = "pipeline.validation.extras"
_ATTEMPT = (
    "Students matched at the month of their first attempted visit, reached or not, are as "
    "good as randomly attempted given the matched months before the attempt.",
    "Comparison students later attempted are weighted for their censoring, which assumes "
    "censoring depends on recorded history only.",
)
for _e in (
    Estimator(
        "matched_ancova_school_clustered",
        "Matched ANCOVA, errors clustered by school",
        "matched design",
        f"{_EXTRAS_MODULE}:school_clustered",
        (*_MATCHED, "Errors are independent between home schools."),
        role="variant",
    ),
    Estimator(
        "matched_ancova_district_wild",
        "Matched ANCOVA, wild cluster bootstrap by district",
        "matched design",
        f"{_EXTRAS_MODULE}:district_wild",
        (*_MATCHED, "Errors are independent between home districts."),
        role="variant",
    ),
    Estimator(
        "matched_ancova_design_bootstrap",
        "Matched ANCOVA, design bootstrap",
        "matched design",
        f"{_EXTRAS_MODULE}:design_bootstrap",
        (
            *_MATCHED,
            "Schools are sampled independently within districts; the propensity model, the "
            "matching and the censoring weights are re-estimated in every draw.",
        ),
        role="variant",
    ),
    Estimator(
        "itt_first_attempt",
        "Intent to treat at the first attempted visit",
        "matched design",
        f"{_EXTRAS_MODULE}:itt_first_attempt",
        (*_ATTEMPT, "Errors are independent between home schools."),
        role="variant",
    ),
    Estimator(
        "reached_families",
        "Effect on families reached (intent to treat over share reached)",
        "matched design",
        f"{_EXTRAS_MODULE}:reached_families",
        (
            *_ATTEMPT,
            "An attempted visit that does not reach the family changes nothing (exclusion).",
        ),
        role="variant",
    ),
):
    ESTIMATORS[_e.name] = _e
del _e
INFERENCE_EXTRAS: tuple[str, ...] = (
    "matched_ancova_school_clustered",
    "matched_ancova_district_wild",
    "matched_ancova_design_bootstrap",
    "itt_first_attempt",
    "reached_families",
)

#: ``estimate.design`` value → estimator name.
DESIGNS: dict[str, str] = {e.design: e.name for e in ESTIMATORS.values() if e.design}
#: Names selectable in ``estimate.comparators``.
COMPARATORS: tuple[str, ...] = tuple(
    e.name for e in ESTIMATORS.values() if e.role == "comparator"
)


@dataclass(frozen=True)
class Estimand:
    """One quantity the report publishes.

    Parameters
    ----------
    name
        Internal name (``outcome`` values and metric keys).
    label
        Name shown to readers.
    unit
        Unit of the estimate.
    description
        What is estimated, in one sentence.
    """

    name: str
    label: str
    unit: str
    description: str


ESTIMANDS: dict[str, Estimand] = {
    e.name: e
    for e in (
        Estimand(
            "attendance_rate",
            "Attendance rate",
            "percentage points",
            "Effect of the first completed home visit on the monthly attendance rate of "
            "visited students, by school month since the visit, and its average over "
            "estimate.att_window.",
        ),
        Estimand(
            "chronic_pp",
            "Chronic absence",
            "percentage points",
            "Effect of the first completed home visit on the share of visited students "
            "chronically absent (attendance under 90%) in a month.",
        ),
    )
}


def estimator(name: str) -> Estimator:
    """The registered estimator ``name``; a clear error naming the known ones."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}; registered: {sorted(ESTIMATORS)}") from None


def design_estimator(design: str) -> Estimator:
    """The estimator that ``estimate.design = design`` selects."""
    if design not in DESIGNS:
        raise KeyError(f"unknown design {design!r}; choose from {sorted(DESIGNS)}")
    return ESTIMATORS[DESIGNS[design]]


def other_design(design: str) -> str:
    """The design not chosen (reported beside the primary)."""
    others = [d for d in DESIGNS if d != design_estimator(design).design]
    return others[0]


def variants(design: str) -> tuple[str, str]:
    """The simulation study's variants of a design: no censoring weights, and
    later-visited comparison rows kept."""
    name = design_estimator(design).name
    return f"{name}_no_ipcw", f"{name}_keep_censored"


def extensions(design: str) -> tuple[str, ...]:
    """The simulation study's extensions of a design (registered with ``extends=design``):
    the design conditioning on more of the recorded history."""
    design_estimator(design)
    return tuple(e.name for e in ESTIMATORS.values() if e.extends == design)


def label(name: str) -> str:
    """The reader-facing label of a registered estimator (internal names are never shown)."""
    return estimator(name).label
