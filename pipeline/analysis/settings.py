"""The ``estimate`` section of ``params.yaml``: designs, windows, inference, checks.

:data:`DESIGNS` maps ``estimate.design`` to the estimator name its results carry;
:data:`PRIMARY` is the default design's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline import registry
from pipeline.sensitivity.config import SensitivityConfig

#: ``estimate.design`` → the estimator name its results carry (pipeline/registry.py).
DESIGNS = registry.DESIGNS
#: The name of the default design's results (the design itself is chosen in params.yaml).
PRIMARY = registry.design_estimator("ancova").name
OUTCOMES = {"attendance_rate": "attendance_rate", "chronic": "chronic_pp"}


@dataclass(frozen=True)
class EstimateConfig:
    att_window: tuple[int, int] = (1, 6)
    event_window: tuple[int, int] = (-6, 12)
    reference: tuple[int, ...] = (-1,)
    cluster: str = "student_key"
    design: str = "ancova"
    ancova_fe: str | None = "district_code"
    #: the matched ANCOVA's effects by this stratum (e.g. ``grade_band``), averaged over the
    #: visited students' mix (:func:`pipeline.did.ancova.matched_ancova`); None: one effect
    effect_strata: str | None = None
    #: the matched ANCOVA's cluster-robust covariance: ``CR1`` or Bell-McCaffrey ``CR2``
    vcov: str = "CR1"
    #: the matched ANCOVA also conditions on the recorded year at the first visit
    #: (:data:`pipeline.history.HISTORY_COLUMNS`; the stacks need those columns,
    #: :func:`pipeline.history.with_history`)
    history: bool = False
    time_effects: str = "matched_set"
    ipcw: bool = True
    #: comparison students visited later: ``weights`` (censoring weights, ``ipcw``) or
    #: ``impute`` (their untreated attendance predicted, :mod:`pipeline.censoring_ice`)
    censoring: str = "impute"
    wild_bootstrap: bool = True
    bootstrap_draws: int = 999
    seed: int = 11
    alpha: float = 0.05
    comparators: tuple[str, ...] = registry.COMPARATORS
    subgroups: tuple[str, ...] = (
        "grade_band",
        "cohort",
        "first_visit_mode",
        "ell",
        "prior_year_tier",
        "district_code",
        "dosage",
    )
    placebo_shift: int = 6
    pools: tuple[str, ...] = ("program_districts", "non_program_districts")
    calipers: tuple[float, ...] = (0.1, 0.5)
    ratios: tuple[int, ...] = (1, 5)
    honest_mbar: tuple[float, ...] = (0.5, 1.0, 2.0)
    #: processes for the robustness checks that match again (:mod:`pipeline.analysis.robustness`)
    rematch_workers: int = 1
    #: censoring-weight truncation quantiles (null: none), :mod:`pipeline.censoring`
    ipcw_truncate: tuple[float, float] | None = None
    #: settings of the estimands beside the headline (:class:`pipeline.estimands.EstimandsConfig`)
    estimands: dict = field(default_factory=dict)
    #: ``estimate.sensitivity``: the sensitivity and evidence-standards tables
    sensitivity: SensitivityConfig = field(default_factory=SensitivityConfig)

    def __post_init__(self) -> None:
        if isinstance(self.sensitivity, dict):  # from EstimateSettings.flat()
            object.__setattr__(self, "sensitivity", SensitivityConfig.from_params(self.sensitivity))
        if self.design not in DESIGNS:
            raise ValueError(
                f"params.yaml estimate.design: must be one of {sorted(DESIGNS)},"
                f" not {self.design!r}"
            )
        if self.censoring not in ("weights", "impute"):
            raise ValueError(
                "params.yaml estimate.censoring: must be 'weights' or 'impute',"
                f" not {self.censoring!r}"
            )
        if self.time_effects not in ("matched_set", "stratum"):
            raise ValueError(
                "params.yaml estimate.time_effects: must be 'matched_set' or 'stratum',"
                f" not {self.time_effects!r}"
            )

    @property
    def stack_column(self) -> str:
        """The column the differences design's time effects are interacted with."""
        return "match_id" if self.time_effects == "matched_set" else "stack_id"
