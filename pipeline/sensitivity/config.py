"""Settings of the sensitivity tables: ``estimate.sensitivity`` in params.yaml.

A light module (no estimators imported) so that :mod:`pipeline.analysis.settings` can hold
it without loading the sensitivity library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["GRID_EDGE", "WWC_REQUIRED_MEASURES", "SensitivityConfig", "wwc_required"]

#: The HonestDiD table's note on a conditional set that reaches an end of its search grid
#: (:func:`pipeline.sensitivity.suite._grid_edge`), by side.
GRID_EDGE = {"lower": "reaches the search grid's lower end",
             "upper": "reaches the search grid's upper end",
             "both": "reaches both ends of the search grid"}

#: The baseline characteristics the rating rests on: the pre-intervention measures of the
#: outcome domain (attendance) that a What Works Clearinghouse review protocol requires
#: for attendance outcomes (WWC *Procedures and Standards Handbook*, v5.0, 2022, the
#: group-design standards' section on baseline equivalence: equivalence must be shown
#: on the characteristics the protocol names, for attendance a pre-intervention measure
#: of attendance).  Every measure of it the extract records counts — the recent months,
#: the prior-year rate, whether it is recorded, and the prior-year tier (the rate binned
#: by the state; one indicator per tier) — names as in the balance table (prefixes).
WWC_REQUIRED_MEASURES = ("rate_lag", "prior_year_rate", "prior_year_missing",
                         "prior_year_tier")


def wwc_required(characteristic: str) -> bool:
    """Whether ``characteristic`` (a balance-table name) is a measure the rating rests on."""
    return str(characteristic).startswith(WWC_REQUIRED_MEASURES)


@dataclass(frozen=True)
class SensitivityConfig:
    """``estimate.sensitivity`` in params.yaml (defaults here)."""

    alpha: float = 0.05
    ovb_benchmarks: tuple[str, ...] = ("prior_year_rate", "rate_lag1")
    ovb_kd: tuple[float, ...] = (1.0, 2.0, 3.0)
    gammas: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 3.0)
    honest_mbar: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    honest_m: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    honest_grid_points: int = 100
    honest_post_max: int = 6
    wwc_boundary: str = "cautious"
    subgroup_order: dict[str, list[str]] = field(default_factory=dict)
    descriptive_subgroups: tuple[str, ...] = ("dosage",)

    @classmethod
    def from_params(cls, p: dict[str, Any] | None) -> SensitivityConfig:
        p = dict(p or {})
        unknown = set(p) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"params.yaml estimate.sensitivity: unknown keys {sorted(unknown)}")
        if "subgroup_order" in p:
            p["subgroup_order"] = {k: [str(x) for x in v] for k, v in
                                   (p["subgroup_order"] or {}).items()}
        for k in ("ovb_benchmarks", "ovb_kd", "gammas", "honest_mbar", "honest_m",
                  "descriptive_subgroups"):
            if k in p:
                p[k] = tuple(p[k])
        return cls(**p)
