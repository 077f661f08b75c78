"""Stress-test scenarios: one per world of :mod:`pipeline.synth.worlds`, and ``realistic``.

Each scenario is a set of overrides of the synthetic configuration (the same form as the
scenarios of the ``validate`` stage: ``program``, ``effects`` and here ``worlds``) and a
:class:`WorldSpec` that says which assumption it breaks, whether the primary design's
targets apply (they do wherever referral reads only *recorded* information or the world
only adds shared shocks, staggered starts or effects that vary with who is referred), and,
for a world no design on recorded data can identify, what would be needed.

Strengths are chosen so that each world is clearly present but not absurd: the referral
worlds replace the default score outright; reachability halves the contact chance of a
student 10 points below the typical referred student's level; attrition moves about a
quarter of the students over three years, twice as often at 80% attendance as at 95%;
shocks of 0.25 (school) and 0.15 (district) on the logit scale move a school's monthly
rate by about 2–3 points.

``realistic`` combines every world at strengths we would defend for a state extract:

* referral on the year-to-date rate — what district attendance reports show staff;
* reachability at half the stress-test strength — families that cannot be reached differ,
  but mostly in what their attendance record already shows (the family factor's share of
  attendance is a fifth of the persistent propensity's spread);
* attrition at the stress-test hazard (about one student in ten leaves a year at 95%
  attendance, one in five at 80%, beside the generator's own moves) with half the
  protective effect of a visit;
* school and district shocks as in ``shared_shocks`` (a bad month for a building: weather,
  illness waves, a closure);
* districts joining over six months (programs rarely start everywhere at once);
* mild selection on gains (``gains = 0.5``: home visitors prefer families they expect to
  respond, but their judgement is noisy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorldSpec:
    """What a stress-test scenario is for.

    Parameters
    ----------
    world
        The world (one of :data:`WORLDS`) whose verdict the scenario gives.
    breaks
        The assumption of the primary design the world breaks (a sentence).
    targets_apply
        Whether the primary design should meet its targets (|bias| ≤ 0.3, coverage
        93–97%): selection on recorded information, shared shocks, staggered starts.
    needed
        For worlds no design on the recorded data can identify: what would be needed.
    attempt_targets_apply
        Whether the intent-to-treat design at the first *attempted* visit should meet
        the targets (``None``: as ``targets_apply``); it does in the reachability world,
        since whether an attempt reaches the family plays no part in it.
    """

    world: str
    breaks: str
    targets_apply: bool
    needed: str = ""
    attempt_targets_apply: bool | None = None

    @property
    def attempt_targets(self) -> bool:
        """Whether the targets apply to the intent-to-treat design."""
        if self.attempt_targets_apply is None:
            return self.targets_apply
        return self.attempt_targets_apply


#: Scenario name → overrides of the synthetic configuration (``worlds`` section included).
WORLD_SCENARIOS: dict[str, dict[str, Any]] = {
    "level_referral": {"worlds": {"referral": "level"}},
    "year_to_date_referral": {"worlds": {"referral": "year_to_date"}},
    "district_windows": {"worlds": {"referral": "district_window"}},
    "reachability": {"worlds": {"family_sd": 0.3, "reach_level": 1.0, "reach_family": 1.0}},
    "attrition": {"worlds": {"exit_base": 0.008, "exit_attendance": 0.5, "exit_visited": -0.7}},
    "shared_shocks": {"worlds": {"school_month_sd": 0.25, "district_month_sd": 0.15}},
    "staggered_start": {"worlds": {"staggered_months": 12}},
    "selection_on_gains": {"worlds": {"gains": 1.0}},
    # ``realistic``: every world at once (strengths defended in the module docstring)
    "realistic": {
        "worlds": {
            "referral": "year_to_date",
            "family_sd": 0.15,
            "reach_level": 0.5,
            "reach_family": 0.5,
            "exit_base": 0.008,
            "exit_attendance": 0.5,
            "exit_visited": -0.35,
            "school_month_sd": 0.25,
            "district_month_sd": 0.15,
            "staggered_months": 6,
            "gains": 0.5,
        }
    },
}

_RECORDED = (
    "referral reads recorded months the primary design does not condition on ({what}); "
    "recorded data can handle it"
)

#: Scenario name → what it is for.
WORLD_SPECS: dict[str, WorldSpec] = {
    "level_referral": WorldSpec(
        "level referral",
        _RECORDED.format(what="the prior year and the student's own mean"),
        True,
    ),
    "year_to_date_referral": WorldSpec(
        "year-to-date referral", _RECORDED.format(what="the school year so far"), True
    ),
    "district_windows": WorldSpec(
        "district-specific windows",
        _RECORDED.format(what="one to four recent months, by district"),
        True,
    ),
    "reachability": WorldSpec(
        "reachability",
        "who is reached depends on an unrecorded family factor that also moves attendance",
        False,
        "contact records for unreached families",
        attempt_targets_apply=True,
    ),
    "attrition": WorldSpec(
        "attrition",
        "exits depend on attendance and on being visited, so who remains observed after "
        "the visit differs between visited and comparison students",
        False,
        "outcomes for students who leave (attendance in their new state or district), or "
        "a model of the exit hazard given recorded attendance and visits with weights for "
        "remaining (inverse probability of attrition)",
    ),
    "shared_shocks": WorldSpec(
        "school and district shocks",
        "school-month and district-month shocks are shared by every student there",
        True,
    ),
    "staggered_start": WorldSpec(
        "staggered start", "program districts join in different months", True
    ),
    "selection_on_gains": WorldSpec(
        "selection on gains",
        "effects are larger for the students most likely to be referred (the effect on the "
        "visited students is still identified; it does not carry over to other students)",
        True,
    ),
    "realistic": WorldSpec(
        "realistic combination",
        "every world at once at defensible strengths",
        False,
        "what reachability and attrition need (see those worlds)",
    ),
}

#: The worlds, in the order the study reports them.
WORLDS = tuple(WORLD_SCENARIOS)

#: The validate stage's own scenarios, for the verdict table.
BASE_SPECS: dict[str, WorldSpec] = {
    "no_dip": WorldSpec("no dip", "none: referral is essentially random", True),
    "dip": WorldSpec("dip (default)", "none: referral follows the last recorded months", True),
    "heterogeneous": WorldSpec("heterogeneous effects", "none: effects vary more", True),
    "zero_effect": WorldSpec("zero effect", "none: every effect is zero", True),
    "few_districts": WorldSpec("few districts", "none: two program districts", True),
    "unrecorded_shocks": WorldSpec(
        "unrecorded shocks",
        "referral follows the current month's attendance, not yet recorded at referral",
        False,
        "the attendance record the referral list was made from (its date and contents), or "
        "the current month's attendance at the time of referral",
    ),
}


def spec_of(scenario: str) -> WorldSpec:
    """The :class:`WorldSpec` of a scenario (stress-test or the stage's own)."""
    if scenario in WORLD_SPECS:
        return WORLD_SPECS[scenario]
    if scenario in BASE_SPECS:
        return BASE_SPECS[scenario]
    return WorldSpec(scenario, "", True)
