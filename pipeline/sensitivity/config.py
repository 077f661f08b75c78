"""Settings of the sensitivity tables: ``estimate.sensitivity`` in params.yaml.

A light module (no estimators imported) so that :mod:`pipeline.analysis.settings` can hold
it without loading the sensitivity library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SensitivityConfig"]


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
