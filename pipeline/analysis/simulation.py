"""The simulation study of the ``validate`` stage: the whole design against known effects.

Many small synthetic extracts are drawn under the :data:`SCENARIOS`; each goes through
ingest (:func:`pipeline.ingestion.run_ingest`), the panel build
(:func:`pipeline.panel_build.write_panel`), risk-set matching and every estimator of
the study's estimators (:func:`~pipeline.analysis.scenarios.estimators`, run by
:func:`run_replication`); :func:`summarize` turns the replications
into the validation table (:data:`TABLE_COLUMNS`).  The stage module
:mod:`pipeline.validate` describes the scenarios and estimators and writes the outputs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import registry
from pipeline.analysis.comparators import comparator_panel, comparators
from pipeline.analysis.design import (
    add_outcomes,
    ancova,
    censoring_adjusted,
    differences,
    primary,
    with_censoring_weights,
)
from pipeline.analysis.robustness import rematch
from pipeline.analysis.scenarios import (
    ALL_ESTIMATORS,
    COMPARATORS,
    REP_COLUMNS,
    SCENARIOS,
    TABLE_COLUMNS,
    estimators,
)
from pipeline.analysis.settings import EstimateConfig
from pipeline.censoring_ice import CENSORING_METHODS, adjust_for_censoring
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.design_bootstrap import SCHEMES
from pipeline.history import with_history
from pipeline.ingestion import run_ingest
from pipeline.matching.riskset import PropensityCache, RiskSetSpec, riskset_match, stack_panels
from pipeline.outputs import PanelAccess
from pipeline.panel_build import write_panel
from pipeline.pseudonym import pseudonymize, resolve_key
from pipeline.runner import progress
from pipeline.synth import SynthConfig, generate, write_extract
from pipeline.synth.effects import completed_truth_for
from pipeline.synth.worlds import WorldConfig
from pipeline.validation import diagnostics as diag
from pipeline.validation.extras import ATTEMPT_ROWS, ITT_UNITS, inference_rows
from pipeline.validation.scenarios import spec_of
from pipeline.validation.verdicts import ATTEMPT_DESIGN, VERDICT_BASIS_COLUMNS, verdict_table

log = logging.getLogger("pipeline.validate")

#: Table order of the study's rows: the estimators, then the inference extras.
STUDY_ORDER = (*ALL_ESTIMATORS, *registry.INFERENCE_EXTRAS)


@dataclass(frozen=True)
class ValidateConfig:
    """The ``validate`` section of ``params.yaml``.

    Parameters
    ----------
    seed
        Root of the replication seeds.
    n_reps
        Replications per scenario (the default keeps the stage to a few minutes; raise it
        for the published appendix).
    workers
        Parallel processes.
    scenarios
        Names from :data:`SCENARIOS`.
    n_students, n_districts, n_program_districts, served_share
        Size of each replication's extract (``few_districts`` overrides the number of
        program districts).
    cluster, ipcw_truncate, effect_strata, vcov
        The primary's error clustering, censoring-weight truncation, effect strata and
        covariance (``estimate.cluster``, ``estimate.ipcw_truncate``,
        ``estimate.effect_strata``, ``estimate.vcov``): the study validates the
        configuration the estimate stage runs.
    itt_censoring
        How the intent-to-treat design of the inference extras handles comparison students
        attempted later (``estimate.estimands.itt_censoring``: ``weights`` or ``impute``).
    primary_censoring
        How the primary, the extended and the other design (and the inference extras of
        the completed-visit design) handle comparison students visited later: ``weights``
        (``estimate.censoring``'s default) or ``impute``
        (:func:`pipeline.censoring_ice.ice_impute`, ``estimate.censoring: impute``). The
        placebo date's re-matched design follows it, as the stage's robustness check
        does; the attrition test and the censoring-weight diagnostics stay the weighted
        ones.
    history
        The primary also conditions on the recorded year at the first visit
        (``estimate.history``, :mod:`pipeline.history`). The extended design
        (``matched_ancova_extended``) is then the primary itself and is not run again.
    design
        The primary design (``estimate.design``): the study runs it, its two censoring
        variants and the other design (:func:`~pipeline.analysis.scenarios.estimators`).
    estimators
        The names to run, from ``estimators(design)``; ``None``: all of them.
    att_window, alpha
        The average being validated and the interval level.
    inference, boot_draws, wild_draws
        The inference extras (issue 17, :mod:`pipeline.validation.extras`; off by default,
        so the stage's default run is not slower): the primary with errors clustered by
        school, the district wild cluster bootstrap (``wild_draws``), the design bootstrap
        (``boot_draws``), the intent-to-treat effect at the first attempted visit and the
        effect on families reached, each row judged against its own truth. Needs the
        matched ANCOVA as the design.
    boot_scheme
        How the design bootstrap weighs schools (:data:`pipeline.design_bootstrap.SCHEMES`;
        ``multinomial``, the estimate stage's, resamples them).
    boot_hold_mix
        A panel column whose visited mix the design bootstrap's draws hold at the full
        sample's (``DesignBootstrap(hold_mix=...)``); ``None``: none.
    checkpoint
        A CSV that every finished replication is appended to; replications already in it
        are not run again (:func:`run_replications`). ``None``: no checkpoint.
    """

    seed: int = 20210404
    n_reps: int = 12
    workers: int = 2
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    n_students: int = 10000
    n_districts: int = 8
    n_program_districts: int = 4
    served_share: float = 0.12
    design: str = "ancova"
    cluster: str = "student_key"
    ipcw_truncate: tuple[float, float] | None = None
    effect_strata: str | None = None
    vcov: str = "CR1"
    history: bool = False
    itt_censoring: str = "impute"
    primary_censoring: str = "weights"
    estimators: tuple[str, ...] | None = None
    att_window: tuple[int, int] = (1, 6)
    alpha: float = 0.05
    table: str = "reports/tables/validation.csv"
    replications: str = "reports/validation/replications.csv"
    figure: str = "reports/validation/validation"
    verdicts: str = "reports/validation/verdicts.csv"
    diagnostics: bool = True
    match: dict = field(default_factory=dict)
    inference: bool = False
    boot_draws: int = 49
    boot_scheme: str = "multinomial"
    boot_hold_mix: str | None = None
    wild_draws: int = 199
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.inference and self.design != "ancova":
            raise ValueError(
                "validate.inference: the inference extras (design bootstrap, district wild "
                f"bootstrap) need estimate.design 'ancova', not {self.design!r}"
            )
        names = estimators(self.design)
        if self.estimators is None:
            object.__setattr__(self, "estimators", names)
        bad = [e for e in self.estimators if e not in names]
        if bad:
            raise ValueError(
                f"validate.estimators: {bad} not run with design {self.design!r}; "
                f"choose from {list(names)}"
            )
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad:
            raise ValueError(f"validate.scenarios: unknown {bad}; choose from {list(SCENARIOS)}")
        if self.boot_scheme not in SCHEMES:
            raise ValueError(
                f"validate boot_scheme: must be one of {list(SCHEMES)}, not {self.boot_scheme!r}"
            )
        for key in ("itt_censoring", "primary_censoring"):
            if getattr(self, key) not in CENSORING_METHODS:
                raise ValueError(
                    f"validate {key}: must be one of {list(CENSORING_METHODS)}, "
                    f"not {getattr(self, key)!r}"
                )


def synth_config(cfg: ValidateConfig, scenario: str, seed: int) -> SynthConfig:
    """The synthetic configuration of one replication of ``scenario``."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {list(SCENARIOS)}")
    over = copy.deepcopy(SCENARIOS[scenario])
    over.pop("targets_apply", None)
    base = SynthConfig()
    program = dataclasses.replace(
        base.program, served_share=cfg.served_share, **over.pop("program", {})
    )
    effects = dataclasses.replace(base.effects, **over.pop("effects", {}))
    worlds = WorldConfig(**over.pop("worlds", {}))
    sizes = dict(
        n_students=cfg.n_students,
        n_districts=cfg.n_districts,
        n_program_districts=cfg.n_program_districts,
    )
    sizes.update(over)
    return dataclasses.replace(
        base, seed=int(seed), program=program, effects=effects, worlds=worlds, **sizes
    )


def replication_seeds(seed: int, n_reps: int) -> list[int]:
    """One 32-bit seed per replication, from ``SeedSequence(seed)``'s children."""
    return [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(seed).spawn(n_reps)
    ]


def _pretrend_p(res) -> float:
    """p-value of the estimator's joint pre-trend test (NaN without pre-periods)."""
    with np.errstate(all="ignore"):
        return float(res.pretrend_test().p_value)


def _row(estimator: str, res, window, alpha) -> dict:
    a = res.average(window, alpha)
    return {
        "pretrend_p": _pretrend_p(res),
        "estimator": estimator,
        "estimate": a.estimate,
        "std_error": a.std_error,
        "ci_low": a.ci_low,
        "ci_high": a.ci_high,
        "n_treated": int(np.max(res.n_treated)) if res.n_treated is not None else -1,
    }


def synthetic_panel(scfg: SynthConfig) -> tuple[pd.DataFrame, float | None]:
    """A synthetic extract's panel, through ingest and the panel build, and its truth.

    Parameters
    ----------
    scfg
        The generator's configuration.

    Returns
    -------
    tuple
        The panel and the true average effect over the window (``None`` if absent).
    """
    panel, truth = synthetic_panel_truth(scfg)
    return panel, truth.get("att_window")


def synthetic_panel_truth(scfg: SynthConfig) -> tuple[pd.DataFrame, dict]:
    """As :func:`synthetic_panel`, with the generator's whole truth (``truth.json``) and,
    under :data:`ITT_UNITS`, the attempted students' potential outcomes keyed by the
    panel's ``student_key`` (for the intent-to-treat truth over the matched students,
    :func:`pipeline.validation.extras.inference_rows`)."""
    extract = generate(scfg)
    truth = dict(extract.truth)
    units = extract.itt_units
    with tempfile.TemporaryDirectory(prefix="leap-validate-") as tmp:
        tmp = Path(tmp)
        write_extract(extract, tmp / "raw")
        del extract
        run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=1, synthetic=True)
        write_panel(tmp / "interim", tmp / "panel.parquet", None)
        if units is not None:
            key, _ = resolve_key(tmp / "raw", synthetic=True)  # the key ingest used
            uid = units["student_id"].astype(str)
            ids = uid.unique()
            keys = dict(zip(ids, pseudonymize(ids, key), strict=True))
            truth[ITT_UNITS] = units.assign(student_id=uid.map(keys))
        return pd.read_parquet(tmp / "panel.parquet"), truth


def run_replication(cfg: ValidateConfig, scenario: str, rep: int, seed: int) -> pd.DataFrame:
    """One replication: extract → design → every estimator's window average.

    Returns one row per estimator (columns :data:`REP_COLUMNS`); an estimator that fails
    gets a row with its error message and missing estimates.
    """
    t0 = time.perf_counter()
    scfg = synth_config(cfg, scenario, seed)
    ecfg = EstimateConfig(
        design=cfg.design,
        att_window=tuple(cfg.att_window),
        alpha=cfg.alpha,
        wild_bootstrap=False,
        comparators=tuple(e for e in cfg.estimators if e in COMPARATORS),
        cluster=cfg.cluster,
        ipcw_truncate=None if cfg.ipcw_truncate is None else tuple(cfg.ipcw_truncate),
        effect_strata=cfg.effect_strata,
        vcov=cfg.vcov,
        history=cfg.history,
        estimands={
            "itt_censoring": cfg.itt_censoring,
            "design_bootstrap_scheme": cfg.boot_scheme,
            "design_bootstrap_hold_mix": cfg.boot_hold_mix,
        },
        censoring=cfg.primary_censoring,
    )
    spec = RiskSetSpec(**cfg.match)
    panel, truths = synthetic_panel_truth(scfg)
    truth = truths.get("att_window")
    # the design bootstrap of the inference extras reuses the propensity fit
    ps_cache = PropensityCache() if cfg.inference else None
    res = riskset_match(panel, spec, ps_cache=ps_cache)
    matched = add_outcomes(stack_panels(panel, res.matches, spec.window))
    homes = home_clusters(panel)
    matched = _with_homes(matched, homes, ecfg.cluster)
    # the extended design is the primary itself when the primary conditions on the history
    extended = [
        e for e in registry.extensions(cfg.design) if e in cfg.estimators and not cfg.history
    ]
    if extended or cfg.history:
        matched = with_history(matched, panel)
    y = "attendance_rate"
    w = ecfg.att_window
    ext_cfg = dataclasses.replace(ecfg, history=True)  # the extended design: the primary's
    rows: list[dict] = []

    def attempt(name: str, fn) -> None:
        if name not in cfg.estimators:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows.append(_row(name, fn(), w, cfg.alpha))
        except Exception as exc:  # noqa: BLE001 - recorded in the replication table
            rows.append({"estimator": name, "error": f"{type(exc).__name__}: {exc}"})

    prim = registry.design_estimator(cfg.design).name
    no_ipcw, keep_censored = registry.variants(cfg.design)
    other = registry.DESIGNS[registry.other_design(cfg.design)]
    other_fit = {"ancova": ancova, "differences": differences}[registry.other_design(cfg.design)]
    m_weighted, w_info = with_censoring_weights(matched, True, ecfg.ipcw_truncate)
    m_ipcw = m_weighted  # the stacks the designs are fitted on
    if cfg.primary_censoring != "weights":
        m_ipcw, _ = adjust_for_censoring(matched, y, cfg.primary_censoring)
    attempt(prim, lambda: primary(m_ipcw, y, ecfg, bootstrap=False))
    for name in extended:  # the stress-test redesign (registry.extensions)
        attempt(name, lambda: ancova(m_ipcw, y, ext_cfg, bootstrap=False))
    m_one, _ = with_censoring_weights(matched, False)
    attempt(no_ipcw, lambda: primary(m_one, y, ecfg, bootstrap=False))
    # later-visited comparison rows kept as if never visited (no censoring, no weights)
    m_keep = m_one.assign(censored=False)
    attempt(keep_censored, lambda: primary(m_keep, y, ecfg, bootstrap=False))
    attempt(other, lambda: other_fit(m_ipcw, y, ecfg, bootstrap=False))
    if ecfg.comparators:
        cp = comparator_panel(PanelAccess(panel), pd.Index(matched["student_key"].unique()))
        cp = _with_homes(cp, homes, ecfg.cluster)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results, errors = comparators(cp, y, ecfg)
        for r in results:
            try:
                rows.append(_row(r.estimator, r, w, cfg.alpha))
            except KeyError as exc:
                rows.append({"estimator": r.estimator, "error": f"KeyError: {exc}"})
        rows.extend({"estimator": k, "error": v} for k, v in errors.items())
    if cfg.inference:  # each extra carries its own truth (pipeline/validation/extras.py)
        rows.extend(
            inference_rows(panel, m_ipcw, spec, ecfg, truths, boot_draws=cfg.boot_draws,
                           wild_draws=cfg.wild_draws, seed=seed, ps_cache=ps_cache,
                           homes=homes)
        )  # fmt: skip
    out = pd.DataFrame(rows).reindex(columns=REP_COLUMNS)
    if cfg.diagnostics:
        values = diag.replication_diagnostics(
            placebo_ci=_placebo_ci(panel, spec, ecfg, y, homes),
            balance=res.balance,
            matched=m_weighted,  # attrition counts censored rows as lost, whatever the fit
            weight_info=w_info,
            window=w,
        )
        for k, v in values.items():
            out[k] = v
    out["scenario"] = scenario
    out["rep"] = rep
    out["seed"] = seed
    out["truth"] = out["truth"].astype(float).fillna(np.nan if truth is None else float(truth))
    out["truth_matched"] = matched_truths(out, truths, res.matches, w)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    order = {e: i for i, e in enumerate(STUDY_ORDER)}
    out = out.sort_values("estimator", key=lambda s: s.map(order)).reset_index(drop=True)
    return out


def matched_truths(
    rows: pd.DataFrame, truths: dict, matches: pd.DataFrame, window: tuple[int, int]
) -> pd.Series:
    """Each row's truth over the students its design matched (``truth_matched``).

    ``truth`` is the effect on *every* visited student (``att_window``); the matched
    designs estimate it on the visited students they could match, and the two differ when
    those left out (no comparison student close enough, no recorded months) gain more or
    less than the rest. The matched designs' completed-visit rows get
    :func:`~pipeline.synth.effects.completed_truth_for` over the treated students of
    ``matches``; the intent-to-treat rows keep their own truth, which is already over the
    students matched at the first attempt (:func:`pipeline.validation.extras.
    matched_itt_truth`). The comparators get NaN: they run on the matched students' panel
    with each student's own first visit, so their treated group also holds comparison
    students visited later. NaN everywhere without the generator's potential outcomes
    (``truths[ITT_UNITS]``).
    """
    units = truths.get(ITT_UNITS)
    out = pd.Series(np.nan, index=rows.index, dtype=float)
    if units is None:
        return out
    treated = pd.Index(matches.loc[matches["role"] == "treated", "student_key"].unique())
    t = completed_truth_for(units, treated, tuple(window))
    own = rows["estimator"].isin(ATTEMPT_ROWS).to_numpy()
    comp = rows["estimator"].isin(COMPARATORS).to_numpy()
    out[~own & ~comp] = np.nan if t is None else float(t)
    out[own] = rows.loc[own, "truth"].astype(float)
    return out


def _with_homes(df: pd.DataFrame, homes: pd.DataFrame, cluster: str) -> pd.DataFrame:
    """``df`` with the students' home school and district (:mod:`pipeline.clusters`) when
    the errors are clustered by one of them (``estimate.cluster``), as the estimate stage
    adds them."""
    return add_home_clusters(df, homes) if cluster in homes.columns else df


def _placebo_ci(panel, spec, ecfg, y, homes) -> tuple[float, float]:
    """Interval of the placebo-date check as the robustness table computes it (first
    visits moved ``ecfg.placebo_shift`` months earlier); NaN when not estimable."""
    s = ecfg.placebo_shift
    if s <= 0:
        return np.nan, np.nan
    pspec = dataclasses.replace(spec, window=(max(spec.window[0], -12), s - 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = rematch(PanelAccess(panel), pspec, shift=s, history=ecfg.history)
            if m is None or m.empty:
                return np.nan, np.nan
            m = censoring_adjusted(add_outcomes(m), ecfg, (y,))[0]  # as the stage's check
            m = _with_homes(m, homes, ecfg.cluster)
            a = primary(m, y, ecfg, bootstrap=False).average((1, max(1, s - 3)), ecfg.alpha)
    except Exception:  # noqa: BLE001 - a check that cannot run does not fire
        return np.nan, np.nan
    return a.ci_low, a.ci_high


def _task(args) -> pd.DataFrame:
    cfg, scenario, rep, seed = args
    # the stages' progress messages, once per replication, would drown the study's log
    quiet = logging.getLogger("pipeline")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        return run_replication(cfg, scenario, rep, seed)
    finally:
        quiet.setLevel(level)


#: ValidateConfig fields that do not change a replication's rows (how many, where written;
#: the seed is checked row by row, :func:`_done`).
_RUN_ONLY = ("seed", "n_reps", "workers", "scenarios", "table", "replications", "figure",
             "verdicts", "checkpoint")  # fmt: skip


def settings_file(checkpoint: Path) -> Path:
    """The file beside a checkpoint that records the settings its replications ran with."""
    return checkpoint.with_name(checkpoint.stem + ".settings.json")


def _fingerprint(cfg: ValidateConfig) -> dict:
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RUN_ONLY}
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def check_checkpoint_settings(checkpoint: Path, cfg: ValidateConfig) -> None:
    """Refuse to resume from a checkpoint whose replications ran with other settings.

    A new checkpoint gets its settings file (:func:`settings_file`); an existing one must
    have one that equals ``cfg``'s settings (every field but :data:`_RUN_ONLY`).

    Raises
    ------
    ValueError
        Naming the checkpoint and the settings that differ (or the missing record).
    """
    want = _fingerprint(cfg)
    side = settings_file(checkpoint)
    if not checkpoint.exists() or checkpoint.stat().st_size == 0:
        side.parent.mkdir(parents=True, exist_ok=True)
        side.write_text(json.dumps(want, indent=2, sort_keys=True) + "\n")
        return
    if not side.exists():
        raise ValueError(
            f"{checkpoint}: no {side.name} beside it records the settings its replications "
            "ran with, so they cannot be resumed safely; move the checkpoint aside to start "
            "afresh"
        )
    have = json.loads(side.read_text())
    diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
    if diff:
        said = "; ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} now" for k in diff)
        raise ValueError(
            f"{checkpoint}: its replications ran with other settings ({said}); rerun with "
            "those settings or move the checkpoint aside to start afresh"
        )


def _done(path: Path, seeds: list[int]) -> pd.DataFrame:
    """Replications already in a checkpoint file (rows of finished ``(scenario, rep)``
    pairs whose seed matches this study's)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=REP_COLUMNS)
    done = pd.read_csv(path)
    done = done[done["rep"] < len(seeds)]
    ok = done["seed"].to_numpy() == np.asarray(seeds, dtype=np.int64)[done["rep"].to_numpy()]
    return done[ok]


def run_replications(cfg: ValidateConfig) -> pd.DataFrame:
    """Every replication of every scenario (in parallel when ``cfg.workers > 1``).

    Replications run rep-major (the first replication of every scenario, then the second,
    ...), so a study cut short has about as many replications of each scenario. With
    ``cfg.checkpoint`` every finished replication is appended to that CSV as it arrives
    and replications already there (same seed) are not run again: a long study can be
    stopped and resumed, with the same settings only (:func:`check_checkpoint_settings`). The result is ordered by scenario, replication and estimator
    whatever the order the replications finished in.
    """
    seeds = replication_seeds(cfg.seed, cfg.n_reps)
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    if ckpt is not None:
        check_checkpoint_settings(ckpt, cfg)
    done = _done(ckpt, seeds) if ckpt else pd.DataFrame(columns=REP_COLUMNS)
    done = done[done["scenario"].isin(cfg.scenarios) & (done["rep"] < cfg.n_reps)]
    have = set(zip(done["scenario"], done["rep"], strict=True))
    tasks = [
        (cfg, s, r, seeds[r])
        for r in range(cfg.n_reps)
        for s in cfg.scenarios
        if (s, r) not in have
    ]

    def keep(part: pd.DataFrame) -> pd.DataFrame:
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            part[REP_COLUMNS].to_csv(
                ckpt, mode="a", header=not ckpt.exists() or ckpt.stat().st_size == 0, index=False
            )
        return part

    if cfg.workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=cfg.workers) as ex:
            futures = [ex.submit(_task, t) for t in tasks]
            parts = [
                keep(f.result())
                for f in progress(
                    as_completed(futures), "replications", total=len(tasks), unit="rep"
                )
            ]
    else:
        parts = [
            keep(p)
            for p in progress(map(_task, tasks), "replications", total=len(tasks), unit="rep")
        ]
    reps = pd.concat([done.reindex(columns=REP_COLUMNS), *parts], ignore_index=True)
    scen = {s: i for i, s in enumerate(cfg.scenarios)}
    est = {e: i for i, e in enumerate(ALL_ESTIMATORS)}
    reps = reps.assign(
        _s=reps["scenario"].map(scen), _e=reps["estimator"].map(est).fillna(len(est))
    ).sort_values(["_s", "rep", "_e"], kind="stable")
    return reps[REP_COLUMNS].reset_index(drop=True)


def summarize(reps: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Bias, RMSE, coverage and rejection rate per scenario and estimator.

    ``coverage`` is the share of intervals holding the truth; ``rejection_rate`` the share
    of intervals excluding zero (under ``zero_effect`` a false-positive rate, elsewhere
    power).  ``sd_estimate`` is the standard deviation of the estimates across
    replications — each replication draws new students, so it is the sampling spread the
    standard errors estimate — and ``se_ratio = mean_std_error / sd_estimate`` (1 when the
    standard errors are right).  ``sd_error`` is the spread of ``estimate − truth``, where
    the truth is the replication's own treated students' effect: smaller than
    ``sd_estimate`` when effects vary between students.  Failed replications are counted
    in ``n_failed`` and left out of the rest. ``pretrend_rejection`` is the share of
    replications whose joint pre-trend test rejects at ``alpha`` (near ``alpha`` when the
    design's assumption holds before the visit; missing for estimators without
    pre-periods). ``truth_matched_mean``, ``bias_matched``, ``sd_error_matched`` and
    ``coverage_matched`` judge the same estimates against ``truth_matched``, the effect on
    the students the design matched (:func:`matched_truths`), so the bias splits into the
    part from the students left out (``bias − bias_matched``) and the design's own; NaN
    unless every replication has it (studies made before the column existed).
    """
    rows = []
    scen_order = {s: i for i, s in enumerate(SCENARIOS)}
    est_order = {e: i for i, e in enumerate(STUDY_ORDER)}
    for (scen, est), g in reps.groupby(["scenario", "estimator"], sort=False):
        ok = g[g["estimate"].notna() & g["truth"].notna()]
        err, covered = _against(ok, ok["truth"])
        reject = (ok["ci_low"] > 0) | (ok["ci_high"] < 0)
        n = len(ok)
        # only where every replication has the matched students' truth
        tm = ok["truth_matched"] if "truth_matched" in ok else None
        matched = n > 0 and tm is not None and bool(tm.notna().all())
        err_m, covered_m = _against(ok, tm) if matched else (None, None)
        # diagnostics of the replications, judged with this estimator's pre-trend test
        f = diag.fires(g.reindex(columns=["pretrend_p", *diag.DIAGNOSTIC_COLUMNS]), alpha)
        rows.append(
            {
                "scenario": scen,
                "estimator": est,
                "n_reps": n,
                "truth_mean": ok["truth"].mean() if n else np.nan,
                "estimate_mean": ok["estimate"].mean() if n else np.nan,
                "bias": err.mean() if n else np.nan,
                "rmse": float(np.sqrt((err**2).mean())) if n else np.nan,
                "coverage": covered.mean() if n else np.nan,
                "rejection_rate": reject.mean() if n else np.nan,
                "mean_std_error": ok["std_error"].mean() if n else np.nan,
                "sd_estimate": ok["estimate"].std(ddof=1) if n > 1 else np.nan,
                "sd_error": err.std(ddof=1) if n > 1 else np.nan,
                "se_ratio": (
                    ok["std_error"].mean() / ok["estimate"].std(ddof=1) if n > 1 else np.nan
                ),
                "pretrend_rejection": (
                    float((pre < alpha).mean()) if len(pre := ok["pretrend_p"].dropna()) else np.nan
                ),
                "n_failed": int(len(g) - n),
                "targets_apply": _targets_apply(scen, est),
                "truth_matched_mean": tm.mean() if matched else np.nan,
                "bias_matched": err_m.mean() if matched else np.nan,
                "sd_error_matched": err_m.std(ddof=1) if matched and n > 1 else np.nan,
                "coverage_matched": covered_m.mean() if matched else np.nan,
                **{
                    c.replace("fires_", "rate_"): (
                        float(f[c].mean()) if f[c].notna().any() else np.nan
                    )
                    for c in diag.FIRES_COLUMNS
                },
            }
        )
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    out = out.sort_values(
        ["scenario", "estimator"],
        key=lambda s: s.map(scen_order if s.name == "scenario" else est_order),
    )
    return out.reset_index(drop=True)


def _against(ok: pd.DataFrame, truth: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each replication's error (``estimate − truth``) and whether its interval holds
    ``truth``."""
    return ok["estimate"] - truth, (ok["ci_low"] <= truth) & (truth <= ok["ci_high"])


def _targets_apply(scenario: str, estimator: str) -> bool:
    """Whether the targets apply to ``estimator`` in ``scenario``: the scenario's flag, and
    for the estimands at the first attempted visit the world's
    :attr:`~pipeline.validation.scenarios.WorldSpec.attempt_targets`."""
    if estimator in registry.INFERENCE_EXTRAS[3:]:
        return bool(spec_of(scenario).attempt_targets)
    return bool(SCENARIOS[scenario].get("targets_apply", True))


def verdicts(summary: pd.DataFrame, reps: pd.DataFrame, design: str = "ancova") -> pd.DataFrame:
    """The verdict table (:func:`pipeline.validation.verdicts.verdict_table`) of the
    primary design (``estimate.design``) and, when they ran, its extensions
    (:func:`pipeline.registry.extensions`) and the intent-to-treat design at the first
    attempted visit (judged against its own truth, without bracketing); the truth is bracketed by the matched ANCOVA
    and the matched differences design whichever is primary.  The verdicts and their
    reasons are also written into ``summary``'s ``verdict``, ``verdict_reason`` and
    structured basis columns (:data:`~pipeline.validation.verdicts.VERDICT_BASIS_COLUMNS`;
    in place)."""
    prim = registry.design_estimator(design).name
    designs = {"primary": prim}
    ran = set(reps["estimator"])
    ext = [e for e in registry.extensions(design) if e in ran]
    if ext:
        designs["extended"] = ext[0]
    itt = registry.INFERENCE_EXTRAS[3]
    attempt = {ATTEMPT_DESIGN: itt} if itt in ran else {}
    table = verdict_table(
        summary, reps, {**designs, **attempt}, registry.DESIGNS["ancova"],
        registry.DESIGNS["differences"], attempt_designs=tuple(attempt),
    )  # fmt: skip
    cols = {"verdict": "verdict", **{c: c for c in VERDICT_BASIS_COLUMNS},
            "verdict_reason": "reason"}
    for c in cols:
        summary[c] = summary[c].astype(object) if c in summary else None
    designs.update(attempt)
    for _, r in table.iterrows():
        est = designs[r["design"]]
        sel = (summary["scenario"] == r["scenario"]) & (summary["estimator"] == est)
        for c, src in cols.items():
            summary.loc[sel, c] = r[src]
    return table
