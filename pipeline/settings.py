"""The typed configuration: ``params.yaml`` described once.

One pydantic model per section of ``params.yaml`` (:class:`DataSettings`,
:class:`SynthesizeSettings`, ... :class:`ValidateSettings`), gathered in
:class:`Settings`.  Every key has a type and, where it has one, a range; unknown keys
are rejected.  :func:`load_settings` reads and checks the whole file before a stage
does any work, and :class:`SettingsError` lists every problem with its key path, the
value found and what is allowed, e.g.::

    params.yaml: 2 invalid values
      estimate.alpha = 1.5: Input should be less than 1 (allowed: > 0 and < 1)
      disclosure.min_count = 1: Input should be greater than or equal to 6 (allowed: >= 6)

Adding a key: add a field (with its type and range) to the section's model below; its
default is the value a stage uses when the key is absent.  Adding a section: add a model
and a field of :class:`Settings`.
"""

from __future__ import annotations

import os
import types
import typing
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline import registry
from pipeline.calendar import school_year_start
from pipeline.config import ConfigError, load_params, project_root

# --- value types --------------------------------------------------------------------------
# Strict: YAML gives real numbers and booleans, so a quoted number, a boolean where a
# number belongs or a number where a boolean belongs is a mistake, not something to coerce.
Int = Annotated[int, Strict()]
PosInt = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
Float = Annotated[float, Strict()]
PosFloat = Annotated[float, Strict(), Field(gt=0)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0)]
Share = Annotated[float, Strict(), Field(ge=0, le=1)]
OpenShare = Annotated[float, Strict(), Field(gt=0, le=1)]
Level = Annotated[float, Strict(), Field(gt=0, lt=1)]
Str = Annotated[str, Strict(), Field(min_length=1)]
Bool = Annotated[bool, Strict()]
DuckDBMemory = Annotated[
    str,
    Strict(),
    Field(pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$", description="a size such as 512MB or 3GB"),
]
Engine = Literal["duckdb", "spark"]
Pool = Literal["same_district", "program_districts", "non_program_districts"]


def _ordered(w: tuple[int, int]) -> tuple[int, int]:
    if w[0] > w[1]:
        raise ValueError("the first event time must not be after the second")
    return w


#: ``[first, last]`` event times, first <= last.
Window = Annotated[tuple[Int, Int], AfterValidator(_ordered)]


def _nonempty(v: tuple) -> tuple:
    if not v:
        raise ValueError("at least one entry is needed")
    return v


def _program_within(m: Any) -> Any:
    if m.n_program_districts > m.n_districts:
        raise ValueError(
            f"n_program_districts ({m.n_program_districts}) must not exceed "
            f"n_districts ({m.n_districts})"
        )
    return m


class Section(BaseModel):
    """Base of every section: unknown keys rejected, values frozen once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data, synthesize -----------------------------------------------------------------------
class DataSettings(Section):
    """``data``: where the extract is (a folder following the data contract)."""

    extract_dir: Str = "data/raw/synthetic"


class SizeSettings(Section):
    n_students: PosInt
    n_districts: PosInt
    n_program_districts: PosInt

    _program_within = model_validator(mode="after")(lambda self: _program_within(self))


class ProgramSettings(Section):
    start_month: Annotated[
        str, Strict(), Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="a month YYYY-MM")
    ] = "2021-04"
    served_share: OpenShare = 0.055
    contact_rate: Share = 0.78
    followup_rate: Share = 0.45
    max_visits: PosInt = 4
    mode_shares: dict[Literal["in_person", "phone", "virtual"], NonNegFloat] = Field(
        default_factory=lambda: {"in_person": 0.6, "phone": 0.25, "virtual": 0.15}
    )
    referral_noise: NonNegFloat = 12.0
    unobserved_weight: Float = 0.0

    @field_validator("mode_shares")
    @classmethod
    def _sum_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if abs(sum(v.values()) - 1.0) > 1e-9:
            raise ValueError(f"shares must add up to 1, not {sum(v.values()):g}")
        return v


class MultiplierSettings(Section):
    grade_6_12: NonNegFloat = 1.35
    grade_pk_5: NonNegFloat = 0.7
    in_person: NonNegFloat = 1.15
    remote: NonNegFloat = 0.75
    ell: NonNegFloat = 0.75
    cohort: dict[Str, NonNegFloat] = Field(default_factory=dict)


class EffectSettings(Section):
    first_month: Float = 4.0
    long_run: Float = 11.0
    ramp_months: PosFloat = 3.0
    visit_month_share: NonNegFloat = 0.5
    multipliers: MultiplierSettings = Field(default_factory=MultiplierSettings)
    per_extra_visit: Float = 0.6
    zero: Bool = False


class FaultSettings(Section):
    per_kind: NonNegInt = 0


class WorldSettings(Section):
    """``synthesize.worlds``: the stress-test worlds (:mod:`pipeline.synth.worlds`), all
    off by default."""

    referral: Literal["recent", "level", "year_to_date", "district_window"] = "recent"
    family_sd: NonNegFloat = 0.0
    reach_level: Float = 0.0
    reach_family: Float = 0.0
    exit_base: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0
    exit_attendance: Float = 0.0
    exit_visited: Float = 0.0
    school_month_sd: NonNegFloat = 0.0
    district_month_sd: NonNegFloat = 0.0
    staggered_months: NonNegInt = 0
    gains: Float = 0.0


class SynthesizeSettings(Section):
    """``synthesize``: the synthetic extract (:mod:`pipeline.synth`)."""

    seed: Int = 20210401
    scale: Str = "default"
    output_dir: Str = "data/raw/synthetic"
    format: Literal["csv", "parquet"] = "csv"
    attendance_form: Literal["monthly", "daily"] = "monthly"
    school_years: tuple[Str, ...] = ("2020-21", "2021-22", "2022-23")
    sizes: dict[Str, SizeSettings] = Field(
        default_factory=lambda: {
            "default": SizeSettings(n_students=30000, n_districts=30, n_program_districts=5)
        }
    )
    program: ProgramSettings = Field(default_factory=ProgramSettings)
    effects: EffectSettings = Field(default_factory=EffectSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    worlds: WorldSettings = Field(default_factory=WorldSettings)
    chronic_targets: dict[Str, Annotated[float, Strict(), Field(ge=0, le=100)]] = Field(
        default_factory=dict
    )

    @field_validator("school_years")
    @classmethod
    def _consecutive(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one school year is needed")
        starts = [school_year_start(s) for s in v]
        if starts != list(range(starts[0], starts[0] + len(starts))):
            raise ValueError("school years must be consecutive, oldest first")
        return v

    @model_validator(mode="after")
    def _scale_known(self) -> SynthesizeSettings:
        if self.scale not in self.sizes:
            raise ValueError(f"scale {self.scale!r} must be one of sizes: {sorted(self.sizes)}")
        return self


# --- ingest, panel, spark ---------------------------------------------------------------------
class QualitySettings(Section):
    """``quality``: how much of a table ingest may quarantine before it fails."""

    max_reject_rate: Share = 0.05


class IngestSettings(Section):
    """``ingest``: engine and DuckDB resources of the ingest stage."""

    engine: Engine = "duckdb"
    memory_limit: DuckDBMemory | None = None
    threads: PosInt | None = None
    temp_dir: Str | None = None
    on_disk: Bool | None = None


class PanelSettings(Section):
    """``panel``: engine, resources and paths of the panel stage."""

    engine: Engine = "duckdb"
    memory_limit: DuckDBMemory = "2GB"
    threads: PosInt = 2
    temp_directory: Str | None = None
    row_group_size: PosInt = 1_000_000
    chunk_students: PosInt = 100_000
    interim_dir: Str = "data/interim"
    output: Str = "data/processed/panel.parquet"
    quality_output: Str = "reports/tables/data_quality_panel.csv"

    #: Keys that are paths.
    PATHS: typing.ClassVar[tuple[str, ...]] = ("interim_dir", "output", "quality_output")

    def duckdb_kwargs(self) -> dict[str, Any]:
        """The DuckDB resource settings (the fields of the panel build's settings)."""
        return self.model_dump(exclude={"engine", *self.PATHS})

    def paths(self) -> dict[str, str]:
        """The stage's input and output paths."""
        return self.model_dump(include=set(self.PATHS))


class SparkSettingsModel(Section):
    """``spark``: used by a stage whose engine is ``spark`` (docs/distributed.md)."""

    master: Str = "local[2]"
    app_name: Str = "leap-pipeline"
    shuffle_partitions: PosInt = 8
    driver_memory: Str | None = None
    staging_dir: Str | None = None
    csv_multiline: Bool = True
    materialize: Literal["local_checkpoint", "checkpoint", "cache"] = "local_checkpoint"
    checkpoint_dir: Str | None = None
    conf: dict[Str, Any] | None = None

    def kwargs(self) -> dict[str, Any]:
        """The fields of :class:`pipeline.spark_engine.SparkSettings`."""
        out = self.model_dump()
        out["conf"] = dict(self.conf or {})
        return out

    @model_validator(mode="after")
    def _checkpoint_dir(self) -> SparkSettingsModel:
        if self.materialize == "checkpoint" and not self.checkpoint_dir:
            raise ValueError("materialize: checkpoint needs checkpoint_dir")
        return self


# --- match, estimate ----------------------------------------------------------------------------
class MatchSettings(Section):
    """``match``: risk-set matching (:class:`pipeline.matching.riskset.RiskSetSpec`)."""

    seed: Int = 0
    pool: Pool = "same_district"
    exact: tuple[Str, ...] | None = None
    ratio: PosInt = 3
    replace: Bool = True
    caliper: PosFloat | None = 0.2
    m_order: Literal["largest", "smallest", "data", "random"] = "largest"
    window: Window = (-12, 18)
    ps_max_controls: PosInt = 250_000
    panel: Str = "data/processed/panel.parquet"
    output: Str = "data/processed/matched.parquet"
    summary_output: Str = "reports/tables/match_summary.csv"
    balance_output: Str = "reports/tables/balance.csv"
    love_plot: Str = "reports/figures/love_plot"

    #: Keys that are output paths, not matching parameters.
    PATHS: typing.ClassVar[tuple[str, ...]] = (
        "panel", "output", "summary_output", "balance_output", "love_plot",
    )

    def spec_kwargs(self) -> dict[str, Any]:
        """The matching parameters (the fields of ``RiskSetSpec``)."""
        return self.model_dump(exclude=set(self.PATHS))

    def paths(self) -> dict[str, str]:
        """The stage's input and output paths."""
        return self.model_dump(include=set(self.PATHS))

    @model_validator(mode="after")
    def _consistent(self) -> MatchSettings:
        if not self.window[0] <= 0 <= self.window[1]:
            raise ValueError(f"window {list(self.window)} must contain event time 0")
        if self.pool != "same_district" and "district_code" in (self.exact or ()):
            raise ValueError("exact matching on district_code needs pool: same_district")
        return self


Design = Literal[tuple(registry.DESIGNS)]  # type: ignore[valid-type]
Comparator = Literal[registry.COMPARATORS]  # type: ignore[valid-type]
Subgroup = Literal[
    "grade_band", "cohort", "first_visit_mode", "ell", "prior_year_tier", "district_code",
    "dosage",
]


class RobustnessSettings(Section):
    placebo_shift: NonNegInt = 6  # 0: no placebo check
    pools: tuple[Pool, ...] = ("program_districts", "non_program_districts")
    calipers: tuple[PosFloat, ...] = (0.1, 0.5)
    ratios: tuple[PosInt, ...] = (1, 5)
    honest_mbar: tuple[NonNegFloat, ...] = (0.5, 1.0, 2.0)
    rematch_workers: PosInt = 2  # processes for the checks that match again


class EstimandsSettings(Section):
    """``estimate.estimands``: the estimands and inference beside the headline
    (:mod:`pipeline.estimands`)."""

    design_bootstrap_draws: NonNegInt = 199  # 0: no design bootstrap
    # how a draw weighs schools within districts (pipeline.design_bootstrap.SCHEMES)
    design_bootstrap_scheme: Literal[
        "multinomial", "dirichlet_flat", "dirichlet_resampling", "dirichlet_unit"
    ] = "dirichlet_unit"
    # the visited students' mix each draw holds at the full sample's (null: none)
    design_bootstrap_hold_mix: Str | None = "grade_band"
    bootstrap_workers: PosInt = 2
    district_wild_draws: NonNegInt = 9999  # 0: no district-level wild bootstrap
    itt: Bool = True
    itt_censoring: Literal["weights", "impute"] = "impute"  # pipeline/censoring_ice.py
    attrition_boundary: Literal["cautious", "optimistic"] = "cautious"
    attrition_event_times: Window = (1, 12)
    chronic_min_enrolled_days: PosInt = 1


def _truncation(v: tuple[float, float] | None) -> tuple[float, float] | None:
    if v is not None and not v[0] < v[1]:
        raise ValueError(f"{list(v)}: the lower quantile must be below the upper one")
    return v


class SensitivitySettings(Section):
    """``estimate.sensitivity``: the sensitivity and evidence-standards tables
    (:mod:`pipeline.sensitivity.suite`)."""

    ovb_benchmarks: tuple[Str, ...] = ("prior_year_rate", "rate_lag1")
    ovb_kd: tuple[PosFloat, ...] = (1.0, 2.0, 3.0)
    gammas: tuple[Annotated[float, Strict(), Field(ge=1)], ...] = (1.0, 1.25, 1.5, 2.0, 3.0)
    honest_mbar: tuple[NonNegFloat, ...] = (0.5, 1.0, 1.5, 2.0)
    honest_m: tuple[NonNegFloat, ...] = (0.0, 0.25, 0.5, 1.0)
    honest_grid_points: Annotated[int, Strict(), Field(ge=10)] = 100
    honest_post_max: PosInt = 6
    wwc_boundary: Literal["cautious", "optimistic"] = "cautious"
    descriptive_subgroups: tuple[Subgroup, ...] = ("dosage",)
    subgroup_order: dict[Str, tuple[Str, ...]] = Field(default_factory=dict)


class EstimateSettings(Section):
    """``estimate``: the primary design, its comparators, subgroups and robustness checks.

    The primary design is ``design`` (a key of :data:`pipeline.registry.DESIGNS`) and is
    chosen here and nowhere else.
    """

    seed: Int = 11
    att_window: Window = (1, 6)
    event_window: Window = (-6, 12)
    reference: tuple[Int, ...] = (-1,)
    design: Design = "ancova"
    ancova_fe: Str | None = "district_code"
    effect_strata: Str | None = None
    vcov: Literal["CR1", "CR2"] = "CR1"
    history: Bool = True  # pipeline/history.py
    time_effects: Literal["matched_set", "stratum"] = "matched_set"
    cluster: Str = "home_school_code"
    ipcw: Bool = True
    censoring: Literal["weights", "impute"] = "impute"  # pipeline/censoring_ice.py
    ipcw_truncate: Annotated[
        tuple[Annotated[float, Strict(), Field(ge=0, le=1)],
              Annotated[float, Strict(), Field(ge=0, le=1)]] | None,
        AfterValidator(_truncation),
    ] = None
    wild_bootstrap: Bool = True
    bootstrap_draws: PosInt = 999
    alpha: Level = 0.05
    comparators: tuple[Comparator, ...] = registry.COMPARATORS
    subgroups: tuple[Subgroup, ...] = typing.get_args(Subgroup)
    robustness: RobustnessSettings = Field(default_factory=RobustnessSettings)
    estimands: EstimandsSettings = Field(default_factory=EstimandsSettings)
    sensitivity: SensitivitySettings = Field(default_factory=SensitivitySettings)

    @model_validator(mode="after")
    def _windows(self) -> EstimateSettings:
        lo, hi = self.event_window
        if not (lo <= self.att_window[0] and self.att_window[1] <= hi):
            raise ValueError(
                f"att_window {list(self.att_window)} must lie within event_window "
                f"{list(self.event_window)}"
            )
        if not self.reference:
            raise ValueError("reference: at least one event time is needed")
        bad = [r for r in self.reference if not lo <= r < 0]
        if bad:
            raise ValueError(
                f"reference {list(self.reference)}: event times {bad} must be before the visit "
                f"(negative) and within event_window {list(self.event_window)}"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """Every key, with the ``robustness`` keys at the top level (the fields of the
        estimate stage's configuration object)."""
        out = self.model_dump(exclude={"robustness"})
        out.update(self.robustness.model_dump())
        return out

    @property
    def primary(self) -> registry.Estimator:
        """The registered estimator of the primary design."""
        return registry.design_estimator(self.design)


# --- disclosure, report, validate ---------------------------------------------------------------
#: The state's small-cell rule: counts under 6 and denominators under 20 are never shown.
#: ``params.yaml`` may raise these thresholds, never lower them.
STATE_MIN_COUNT = 6
STATE_MIN_DENOMINATOR = 20


class DisclosureSettings(Section):
    """``disclosure``: small-cell suppression thresholds (at least the state's rule)."""

    min_count: Annotated[int, Strict(), Field(ge=STATE_MIN_COUNT)] = STATE_MIN_COUNT
    min_denominator: Annotated[int, Strict(), Field(ge=STATE_MIN_DENOMINATOR)] = (
        STATE_MIN_DENOMINATOR
    )


class CostsSettings(Section):
    """``costs``: the cost-effectiveness inputs (ingredients method; illustrative defaults)."""

    total_cost: NonNegFloat = 10_700_000.0
    period: Str = "LEAP's first phase (April 2021 onward)"
    students_reached: PosInt | None = 8700
    cost_per_attempt: NonNegFloat | None = None
    cost_per_completed_visit: NonNegFloat | None = None
    school_days_per_month: Annotated[float, Strict(), Field(gt=0, le=31)] = 18.0
    cost_multipliers: tuple[PosFloat, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    students_reached_alternatives: tuple[PosInt, ...] = (8600, 9000)


class ReportSettings(Section):
    """``report``: where the report goes and how it is printed."""

    reports_dir: Str = "reports"
    dpi: Annotated[int, Strict(), Field(ge=72, le=1200)] = 300
    pdf: Bool = True
    pdf_timeout_s: PosFloat = 180
    chromium: Str | None = None
    #: the simulation study the methods appendix reports (the committed one); None:
    #: ``tables/validation.csv`` under ``reports_dir``
    validation_table: Str | None = None
    #: the stress-test study's verdict per world (the committed one); None: a
    #: ``verdicts.csv`` beside ``validation_table`` when there is one
    worlds_verdicts: Str | None = None


SCENARIO_NAMES = (
    "no_dip", "dip", "heterogeneous", "zero_effect", "few_districts", "unrecorded_shocks",
)
#: The stress-test worlds (issue 16; :data:`pipeline.validation.scenarios.WORLDS`, named
#: here so that reading the settings loads no study code) may be listed too; the default
#: leaves them out.
WORLD_SCENARIO_NAMES = (
    "level_referral", "year_to_date_referral", "district_windows", "reachability",
    "attrition", "shared_shocks", "staggered_start", "selection_on_gains", "realistic",
)
Scenario = Literal[(*SCENARIO_NAMES, *WORLD_SCENARIO_NAMES)]  # type: ignore[valid-type]
ValidateEstimator = Literal[  # type: ignore[valid-type]
    tuple(
        n
        for n, e in registry.ESTIMATORS.items()
        if e.name != "callaway_santanna_dr" and n not in registry.INFERENCE_EXTRAS
    )
]


class ValidateSettings(Section):
    """``validate``: the simulation study (scenarios × replications of the whole design)."""

    seed: Int = 20210404
    n_reps: PosInt = 12
    workers: PosInt = 2
    scenarios: tuple[Scenario, ...] = SCENARIO_NAMES

    _nonempty = field_validator("scenarios")(lambda v: _nonempty(v))
    n_students: PosInt = 10000
    n_districts: PosInt = 8
    n_program_districts: PosInt = 4
    served_share: OpenShare = 0.12
    estimators: tuple[ValidateEstimator, ...] | None = None
    att_window: Window = (1, 6)
    alpha: Level = 0.05
    table: Str = "reports/tables/validation.csv"
    replications: Str = "reports/validation/replications.csv"
    figure: Str = "reports/validation/validation"
    verdicts: Str = "reports/validation/verdicts.csv"
    diagnostics: Bool = True
    match: MatchSettings | None = None
    #: the inference extras (issue 17; :mod:`pipeline.validation.extras`), off by default
    inference: Bool = False
    boot_draws: NonNegInt = 49
    wild_draws: NonNegInt = 199

    _program_within = model_validator(mode="after")(lambda self: _program_within(self))

    def kwargs(self) -> dict[str, Any]:
        """The fields of the simulation study's configuration: unset ``estimators`` take
        the study's default; ``match`` holds only the keys given (matching parameters)."""
        out = self.model_dump(exclude={"estimators", "match"})
        if self.estimators is not None:
            out["estimators"] = self.estimators
        if self.match is not None:
            given = self.match.model_dump(exclude_unset=True)
            out["match"] = {k: v for k, v in given.items() if k not in MatchSettings.PATHS}
        return out


# --- the whole file -----------------------------------------------------------------------------
class Settings(Section):
    """The whole ``params.yaml``: one field per section."""

    data: DataSettings = Field(default_factory=DataSettings)
    synthesize: SynthesizeSettings = Field(default_factory=SynthesizeSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    panel: PanelSettings = Field(default_factory=PanelSettings)
    spark: SparkSettingsModel = Field(default_factory=SparkSettingsModel)
    match: MatchSettings = Field(default_factory=MatchSettings)
    estimate: EstimateSettings = Field(default_factory=EstimateSettings)
    costs: CostsSettings = Field(default_factory=CostsSettings)
    disclosure: DisclosureSettings = Field(default_factory=DisclosureSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    validate_: ValidateSettings = Field(default_factory=ValidateSettings, alias="validate")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def validate_section(self) -> ValidateSettings:
        """The ``validate`` section (``validate`` is a pydantic method name)."""
        return self.validate_


class SettingsError(ConfigError):
    """``params.yaml`` has invalid values; ``problems`` lists one line per value."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        n = len(problems)
        head = f"{source}: {n} invalid value{'s' if n != 1 else ''}"
        super().__init__("\n  ".join([head, *problems]))


def parse_settings(params: dict[str, Any], source: str = "params.yaml") -> Settings:
    """Check a parsed ``params.yaml`` and return its typed settings.

    Raises
    ------
    SettingsError
        Listing every unknown key and invalid value, each with its key path, the value
        found and what is allowed.
    """
    if not isinstance(params, dict):
        raise SettingsError(source, [f"top level = {params!r}: must be a mapping of sections"])
    try:
        return Settings.model_validate(params)
    except ValidationError as exc:
        raise SettingsError(source, [_describe(e, params) for e in exc.errors()]) from None


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and check the whole ``params.yaml``; every stage calls this before any work."""
    p = path if path is not None else project_root() / "params.yaml"
    return parse_settings(load_params(p), str(p) if path is not None else "params.yaml")


def section_settings(name: str, values: Any, source: str = "params.yaml") -> Section:
    """Check one section given as a mapping (e.g. by a test or a notebook); its typed model.

    Raises
    ------
    SettingsError
        As :func:`parse_settings`, with key paths under ``name``.
    """
    return getattr(parse_settings({name: dict(values or {})}, source), _FIELD.get(name, name))


_FIELD = {"validate": "validate_"}


def stage_settings(path: str | os.PathLike | None = None) -> Settings:
    """:func:`load_settings` for a stage's ``main()``: the first thing a stage does.

    An invalid ``params.yaml`` stops the stage before any work, with every problem listed
    (key path, value, what is allowed) and no traceback.
    """
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


# --- messages -----------------------------------------------------------------------------------
_MISSING = object()


def _describe(err: dict[str, Any], params: dict[str, Any]) -> str:
    loc = _strip_loc(err["loc"])
    where = _path(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = ", ".join(_keys(model)) if model else "none"
        return f"{where} = {_show(err['input'])}: unknown key (allowed here: {allowed})"
    if kind == "missing":
        return f"{where}: required key missing"
    value = _value_at(params, loc)
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error" and _model_at(loc) is not None:  # a rule across keys of a section
        return f"{where}: {msg}"
    allowed = "" if kind == "literal_error" else _allowed(loc)
    tail = f" (allowed: {allowed})" if allowed else ""
    shown = _show(err["input"] if value is _MISSING else value)
    return f"{where} = {shown}: {msg}{tail}"


def _strip_loc(loc: tuple) -> tuple:
    # pydantic adds tag names for unions/literals (e.g. 'tuple[int, int]'); keep keys only
    alias = {"validate_": "validate"}
    out = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(alias.get(part, part))
    return tuple(out)


def _path(loc: tuple) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict) and len(repr(value)) > 80:
        return "{…}"
    return repr(value)


def _value_at(params: Any, loc: tuple) -> Any:
    cur = params
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return cur


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types inside Optional/Annotated/containers."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [t for a in typing.get_args(tp) for t in _unwrap(a)]
    return [tp]


def _field(loc: tuple):
    model: Any = Settings
    info = None
    for part in loc:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        key = "validate_" if (model is Settings and part == "validate") else part
        info = model.model_fields.get(key)
        if info is None:
            return None
        nested = [t for t in _unwrap(info.annotation)
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        model = nested[0] if nested else None
    return info


def _model_at(loc: tuple) -> type[BaseModel] | None:
    if not loc:
        return Settings
    info = _field(loc)
    if info is None:
        return None
    for t in _unwrap(info.annotation):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        if typing.get_origin(t) is dict:  # e.g. synthesize.sizes.<scale>
            inner = [x for x in _unwrap(typing.get_args(t)[1])
                     if isinstance(x, type) and issubclass(x, BaseModel)]
            if inner and len(loc) >= 1:
                return inner[0]
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or k for k, f in model.model_fields.items()]


def _allowed(loc: tuple) -> str:
    """What a key allows, from its type: choices, bounds, or its description."""
    info = _field(tuple(p for p in loc if not isinstance(p, int)))
    if info is None:
        return ""
    if info.description:
        return info.description
    parts = [b for m in info.metadata for b in _bounds(m)]
    parts += _type_parts(info.annotation, each=any(isinstance(p, int) for p in loc))
    parts = list(dict.fromkeys(p for p in parts if p))
    text = " and ".join(p for p in parts if p != "null")
    return f"{text} or null" if text and "null" in parts else text


def _type_parts(tp: Any, each: bool = False) -> list[str]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _type_parts(args[0], each) + [b for m in args[1:] for b in _bounds(m)]
    if origin in (Union, types.UnionType):
        inner = [p for a in args if a is not type(None) for p in _type_parts(a, each)]
        return inner + (["null"] if type(None) in args else [])
    if origin is Literal:
        return [("each " if each else "") + "one of " + ", ".join(repr(a) for a in args)]
    if origin in (list, tuple) and args:
        return _type_parts(args[0], each=True)
    return []


def _bounds(m: Any) -> list[str]:
    ops = {at.Gt: (">", "gt"), at.Ge: (">=", "ge"), at.Lt: ("<", "lt"), at.Le: ("<=", "le")}
    out = []
    for cls, (op, attr) in ops.items():
        if isinstance(m, cls):
            out.append(f"{op} {getattr(m, attr)}")
    if getattr(m, "description", None):  # FieldInfo inside Annotated
        out.append(m.description)
    if hasattr(m, "metadata"):
        for x in m.metadata:
            out += _bounds(x)
    return out
