"""Configuration of the synthetic extract (the ``synthesize`` section of ``params.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.calendar import school_year_start
from pipeline.config import ConfigError
from pipeline.synth.worlds import WorldConfig


@dataclass(frozen=True)
class EffectConfig:
    first_month: float = 4.0
    long_run: float = 11.0
    ramp_months: float = 3.0
    visit_month_share: float = 0.5
    grade_6_12: float = 1.35
    grade_pk_5: float = 0.7
    in_person: float = 1.15
    remote: float = 0.75
    ell: float = 0.75
    cohort: dict[str, float] = field(default_factory=dict)
    per_extra_visit: float = 0.6
    zero: bool = False


@dataclass(frozen=True)
class ProgramConfig:
    start_month: str = "2021-04"
    served_share: float = 0.055
    contact_rate: float = 0.78
    followup_rate: float = 0.45
    max_visits: int = 4
    mode_shares: dict[str, float] = field(
        default_factory=lambda: {"in_person": 0.6, "phone": 0.25, "virtual": 0.15}
    )
    referral_noise: float = 12.0
    unobserved_weight: float = 0.0


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 20210401
    n_students: int = 30000
    n_districts: int = 30
    n_program_districts: int = 5
    school_years: tuple[str, ...] = ("2020-21", "2021-22", "2022-23")
    attendance_form: str = "monthly"
    format: str = "csv"
    program: ProgramConfig = field(default_factory=ProgramConfig)
    effects: EffectConfig = field(default_factory=EffectConfig)
    faults_per_kind: int = 0
    #: Stress-test world knobs (:mod:`pipeline.synth.worlds`); all off by default.
    worlds: WorldConfig = field(default_factory=WorldConfig)
    #: Chronic-absence targets by school year (Connecticut's published rates, percent).
    chronic_targets: dict[str, float] = field(
        default_factory=lambda: {"2020-21": 19.0, "2021-22": 23.7, "2022-23": 20.0}
    )

    @property
    def start_years(self) -> list[int]:
        return [school_year_start(s) for s in self.school_years]

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> SynthConfig:
        """Build from the ``synthesize`` section of ``params.yaml``."""
        scale = p.get("scale", "default")
        sizes = p.get("sizes", {})
        if scale not in sizes:
            raise ConfigError(f"params.yaml: synthesize.scale '{scale}' not in synthesize.sizes")
        size = sizes[scale]
        eff = dict(p.get("effects", {}))
        mult = eff.pop("multipliers", {})
        effects = EffectConfig(**eff, **mult)
        program = ProgramConfig(**p.get("program", {}))
        form = p.get("attendance_form", "monthly")
        if form not in ("monthly", "daily"):
            raise ConfigError("params.yaml: synthesize.attendance_form must be monthly or daily")
        fmt = p.get("format", "csv")
        if fmt not in ("csv", "parquet"):
            raise ConfigError("params.yaml: synthesize.format must be csv or parquet")
        years = tuple(p.get("school_years", cls.school_years))
        starts = [school_year_start(s) for s in years]
        if starts != list(range(starts[0], starts[0] + len(starts))):
            raise ConfigError("params.yaml: synthesize.school_years must be consecutive")
        targets = dict(cls().chronic_targets)
        targets.update(p.get("chronic_targets", {}))
        missing = [y for y in years if y not in targets]
        if missing:
            raise ConfigError(f"params.yaml: synthesize.chronic_targets lacks {missing}")
        return cls(
            seed=int(p.get("seed", cls.seed)),
            n_students=int(size["n_students"]),
            n_districts=int(size["n_districts"]),
            n_program_districts=int(size["n_program_districts"]),
            school_years=years,
            attendance_form=form,
            format=fmt,
            program=program,
            effects=effects,
            faults_per_kind=int(p.get("faults", {}).get("per_kind", 0)),
            chronic_targets=targets,
            worlds=WorldConfig.from_params(p.get("worlds")),
        )
