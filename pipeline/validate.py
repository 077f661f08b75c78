"""Stage ``validate``: a simulation study of the whole design against known effects.

``python -m pipeline.validate`` draws many small synthetic extracts under several
scenarios, runs the whole design on each (ingest → panel → risk-set matching → matched
stacked event study with inverse-probability-of-censoring weights) and the comparators
on the same students, and compares every estimate of the average effect over event times
1–6 with the generator's truth (``truth["att_window"]``: the equal-weight mean over event
times 1–6 of the true effects among the treated students observed there).

Scenarios (:data:`SCENARIOS`)
    ``no_dip``
        Referral is essentially random among students in membership
        (``program.referral_noise`` very large): parallel trends hold for every design.
    ``dip``
        The default world: referral follows a recorded attendance dip, which recovers on
        its own afterwards (the mean reversion the naive designs mistake for an effect).
    ``heterogeneous``
        As ``dip`` with much stronger effect heterogeneity (grade band, visit mode, ELL).
    ``zero_effect``
        As ``dip`` with every effect zero (placebo): rejection rates are false-positive
        rates.
    ``few_districts``
        As ``dip`` with two program districts (few clusters for the inference).
    ``unrecorded_shocks``
        Referral also follows the current month's *unrecorded* shock
        (``program.unobserved_weight > 0``): selection no design that conditions on
        recorded attendance can remove.  Shown for honesty; the targets do not apply.

Estimators
    ``matched_ancova`` (the primary design, :mod:`pipeline.did.ancova`: levels on the
    months before the visit, time effects per district, censoring weights), two variants
    of it that show what the censoring correction does — ``matched_ancova_no_ipcw``
    (censored comparison rows dropped, no weights) and ``matched_ancova_keep_censored``
    (later-visited comparison rows kept as if untreated) —, the matched differences design
    ``matched_stacked`` (:mod:`pipeline.did.stacked`, the primary design before this
    study; censoring weights) and the comparators of :mod:`pipeline.estimate`
    (``naive_before_after``, ``twfe``, ``sun_abraham``, ``imputation``,
    ``callaway_santanna_unconditional``). Intervals are analytic (clustered as
    ``EstimateConfig.cluster``, by student by default; t with clusters − 1 degrees of
    freedom for the matched designs) — the wild bootstrap is skipped in the replications.

Output
    ``reports/tables/validation.csv`` (one row per scenario × estimator: ``scenario,
    estimator, n_reps, truth_mean, estimate_mean, bias, rmse, coverage, rejection_rate,
    mean_std_error, sd_estimate, sd_error, se_ratio, n_failed, targets_apply``), the
    replication-level
    ``reports/validation/replications.csv`` and the figure
    ``reports/validation/validation.png`` (300 dpi) and ``.svg``.

Replications run in parallel (``ProcessPoolExecutor``) and are deterministic given
``validate.seed``: replication ``r`` of every scenario uses the ``r``-th child of
``SeedSequence(seed)`` (common random numbers across scenarios), whatever the number of
workers.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import estimate
from pipeline.estimate import (
    DESIGNS,
    PRIMARY,
    EstimateConfig,
    add_outcomes,
    comparator_panel,
    comparators,
    differences,
    primary,
    with_censoring_weights,
)
from pipeline.io import atomic_path, write_csv
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from pipeline.synth import SynthConfig, generate, write_extract

log = logging.getLogger("pipeline.validate")

NO_IPCW = f"{PRIMARY}_no_ipcw"
KEEP_CENSORED = f"{PRIMARY}_keep_censored"
DIFFERENCES = DESIGNS["differences"]
COMPARATORS = (
    "naive_before_after",
    "twfe",
    "sun_abraham",
    "imputation",
    "callaway_santanna_unconditional",
)
ESTIMATORS = (PRIMARY, NO_IPCW, KEEP_CENSORED, DIFFERENCES, *COMPARATORS)

#: Scenario name → overrides of the synthetic configuration, and whether the targets apply.
SCENARIOS: dict[str, dict[str, Any]] = {
    "no_dip": {"program": {"referral_noise": 1.0e4}},
    "dip": {},
    "heterogeneous": {
        "effects": {
            "grade_6_12": 1.8,
            "grade_pk_5": 0.4,
            "in_person": 1.4,
            "remote": 0.5,
            "ell": 0.5,
        }
    },
    "zero_effect": {"effects": {"zero": True}},
    "few_districts": {"n_program_districts": 2},
    "unrecorded_shocks": {"program": {"unobserved_weight": 1.0}, "targets_apply": False},
}

TABLE_COLUMNS = [
    "scenario",
    "estimator",
    "n_reps",
    "truth_mean",
    "estimate_mean",
    "bias",
    "rmse",
    "coverage",
    "rejection_rate",
    "mean_std_error",
    "sd_estimate",
    "sd_error",
    "se_ratio",
    "pretrend_rejection",
    "n_failed",
    "targets_apply",
]
REP_COLUMNS = [
    "scenario",
    "rep",
    "seed",
    "estimator",
    "truth",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "n_treated",
    "pretrend_p",
    "seconds",
    "error",
]
#: The columns of ``replications.csv`` (everything but the run time).
FILE_REP_COLUMNS = [c for c in REP_COLUMNS if c != "seconds"]


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
    estimators
        Names from :data:`ESTIMATORS`.
    att_window, alpha
        The average being validated and the interval level.
    """

    seed: int = 20210404
    n_reps: int = 12
    workers: int = 2
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    n_students: int = 10000
    n_districts: int = 8
    n_program_districts: int = 4
    served_share: float = 0.12
    estimators: tuple[str, ...] = ESTIMATORS
    att_window: tuple[int, int] = (1, 6)
    alpha: float = 0.05
    table: str = "reports/tables/validation.csv"
    replications: str = "reports/validation/replications.csv"
    figure: str = "reports/validation/validation"
    match: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> ValidateConfig:
        kw = dict(p)
        unknown = set(kw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"params.yaml validate: unknown key(s) {sorted(unknown)}")
        for k, v in list(kw.items()):
            if isinstance(v, list):
                kw[k] = tuple(v)
        cfg = cls(**kw)
        bad = [s for s in cfg.scenarios if s not in SCENARIOS]
        if bad:
            raise ValueError(
                f"params.yaml validate.scenarios: unknown {bad}; choose from {list(SCENARIOS)}"
            )
        bad = [e for e in cfg.estimators if e not in ESTIMATORS]
        if bad:
            raise ValueError(
                f"params.yaml validate.estimators: unknown {bad}; choose from {list(ESTIMATORS)}"
            )
        if cfg.n_reps < 1 or cfg.workers < 1:
            raise ValueError("params.yaml validate: n_reps and workers must be at least 1")
        return cfg


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
    sizes = dict(
        n_students=cfg.n_students,
        n_districts=cfg.n_districts,
        n_program_districts=cfg.n_program_districts,
    )
    sizes.update(over)
    return dataclasses.replace(base, seed=int(seed), program=program, effects=effects, **sizes)


def replication_seeds(seed: int, n_reps: int) -> list[int]:
    """One 32-bit seed per replication, from ``SeedSequence(seed)``'s children."""
    return [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(seed).spawn(n_reps)
    ]


def _comparator_panel(panel: pd.DataFrame, students: pd.Index) -> pd.DataFrame:
    # pipeline.estimate reads the panel through PanelAccess (which adds the outcomes);
    # earlier versions took the data frame with the outcomes added
    if hasattr(estimate, "PanelAccess"):
        return comparator_panel(estimate.PanelAccess(panel), students)
    return comparator_panel(add_outcomes(panel), students)


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


def run_replication(cfg: ValidateConfig, scenario: str, rep: int, seed: int) -> pd.DataFrame:
    """One replication: extract → design → every estimator's window average.

    Returns one row per estimator (columns :data:`REP_COLUMNS`); an estimator that fails
    gets a row with its error message and missing estimates.
    """
    t0 = time.perf_counter()
    # deferred imports keep worker start-up light and avoid import cycles
    from pipeline.ingest import run_ingest
    from pipeline.panel import write_panel

    scfg = synth_config(cfg, scenario, seed)
    ecfg = EstimateConfig(
        att_window=tuple(cfg.att_window),
        alpha=cfg.alpha,
        wild_bootstrap=False,
        comparators=tuple(e for e in cfg.estimators if e in COMPARATORS),
    )
    spec = RiskSetSpec.from_params(dict(cfg.match)) if cfg.match else RiskSetSpec()
    extract = generate(scfg)
    truth = extract.truth.get("att_window")
    with tempfile.TemporaryDirectory(prefix="leap-validate-") as tmp:
        tmp = Path(tmp)
        write_extract(extract, tmp / "raw")
        del extract
        run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=1)
        write_panel(tmp / "interim", tmp / "panel.parquet", None)
        panel = pd.read_parquet(tmp / "panel.parquet")
    res = riskset_match(panel, spec)
    matched = add_outcomes(stack_panels(panel, res.matches, spec.window))
    y = "attendance_rate"
    w = ecfg.att_window
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

    m_ipcw, _ = with_censoring_weights(matched, True)
    attempt(PRIMARY, lambda: primary(m_ipcw, y, ecfg, bootstrap=False))
    m_one, _ = with_censoring_weights(matched, False)
    attempt(NO_IPCW, lambda: primary(m_one, y, ecfg, bootstrap=False))
    # later-visited comparison rows kept as if never visited (no censoring, no weights)
    m_keep = m_one.assign(censored=False)
    attempt(KEEP_CENSORED, lambda: primary(m_keep, y, ecfg, bootstrap=False))
    attempt(DIFFERENCES, lambda: differences(m_ipcw, y, ecfg, bootstrap=False))
    if ecfg.comparators:
        cp = _comparator_panel(panel, pd.Index(matched["student_key"].unique()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results, errors = comparators(cp, y, ecfg)
        for r in results:
            try:
                rows.append(_row(r.estimator, r, w, cfg.alpha))
            except KeyError as exc:
                rows.append({"estimator": r.estimator, "error": f"KeyError: {exc}"})
        rows.extend({"estimator": k, "error": v} for k, v in errors.items())
    out = pd.DataFrame(rows).reindex(columns=REP_COLUMNS)
    out["scenario"] = scenario
    out["rep"] = rep
    out["seed"] = seed
    out["truth"] = np.nan if truth is None else float(truth)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    order = {e: i for i, e in enumerate(ESTIMATORS)}
    out = out.sort_values("estimator", key=lambda s: s.map(order)).reset_index(drop=True)
    return out


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


def run_replications(cfg: ValidateConfig) -> pd.DataFrame:
    """Every replication of every scenario (in parallel when ``cfg.workers > 1``)."""
    seeds = replication_seeds(cfg.seed, cfg.n_reps)
    tasks = [(cfg, s, r, seeds[r]) for s in cfg.scenarios for r in range(cfg.n_reps)]
    if cfg.workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=cfg.workers) as ex:
            parts = list(ex.map(_task, tasks))
    else:
        parts = [_task(t) for t in tasks]
    reps = pd.concat(parts, ignore_index=True)
    return reps[REP_COLUMNS]


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
    pre-periods).
    """
    rows = []
    scen_order = {s: i for i, s in enumerate(SCENARIOS)}
    est_order = {e: i for i, e in enumerate(ESTIMATORS)}
    for (scen, est), g in reps.groupby(["scenario", "estimator"], sort=False):
        ok = g[g["estimate"].notna() & g["truth"].notna()]
        err = ok["estimate"] - ok["truth"]
        covered = (ok["ci_low"] <= ok["truth"]) & (ok["truth"] <= ok["ci_high"])
        reject = (ok["ci_low"] > 0) | (ok["ci_high"] < 0)
        n = len(ok)
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
                "targets_apply": bool(SCENARIOS[scen].get("targets_apply", True)),
            }
        )
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    out = out.sort_values(
        ["scenario", "estimator"],
        key=lambda s: s.map(scen_order if s.name == "scenario" else est_order),
    )
    return out.reset_index(drop=True)


def draw(summary: pd.DataFrame):
    """Bias and coverage by estimator and scenario, as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    okabe_ito = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
                 "#000000"]
    markers = ["o", "s", "D", "^", "v", "P", "X", "*"]
    scen = [s for s in SCENARIOS if s in set(summary["scenario"])]
    est = [e for e in ESTIMATORS if e in set(summary["estimator"])]
    y = np.arange(len(est))[::-1]
    off = np.linspace(-0.3, 0.3, len(scen)) if len(scen) > 1 else np.zeros(1)
    plt.rcParams["svg.hashsalt"] = "leap-validation"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 0.55 * len(est) + 1.8), sharey=True)
    for i, s in enumerate(scen):
        d = summary[summary["scenario"] == s].set_index("estimator").reindex(est)
        kw = dict(color=okabe_ito[i % 8], marker=markers[i % 8], s=22, label=s, zorder=3)
        a1.scatter(d["bias"], y + off[i], **kw)
        a2.scatter(100 * d["coverage"], y + off[i], **kw)
    a1.axvline(0, color="#999999", linewidth=0.8)
    a1.axvspan(-0.3, 0.3, color="#eeeeee", zorder=0)
    a1.set_xlabel("Bias of the average over event times 1–6\n(attendance-rate points)")
    a2.axvline(95, color="#999999", linewidth=0.8)
    a2.axvspan(93, 97, color="#eeeeee", zorder=0)
    a2.set_xlabel("Coverage of 95% intervals\n(% of replications)")
    a2.set_xlim(-2, 102)
    a1.set_yticks(y, est)
    for a in (a1, a2):
        a.grid(axis="y", color="#f4f4f4", linewidth=0.6)
    n = int(summary["n_reps"].max()) if len(summary) else 0
    a2.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="Scenario")
    fig.suptitle(f"Simulation study: {n} replications per scenario", fontsize=10)
    fig.tight_layout()
    return fig


def plot(summary: pd.DataFrame, target_stem: str | Path, dpi: int = 300) -> None:
    """Bias and coverage by estimator and scenario (PNG at ``dpi`` and SVG)."""
    import matplotlib.pyplot as plt

    fig = draw(summary)
    stem = Path(target_stem)
    with atomic_path(stem.with_suffix(".png"), ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    with atomic_path(stem.with_suffix(".svg"), ".svg") as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def run(cfg: ValidateConfig, root: str | Path = ".") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the study and write the table, the replications and the figure under ``root``.

    Returns
    -------
    summary, replications
        The validation table (:data:`TABLE_COLUMNS`) and the replication-level rows
        (:data:`REP_COLUMNS`), as written.
    """
    root = Path(root)
    t0 = time.perf_counter()
    reps = run_replications(cfg)
    summary = summarize(reps, cfg.alpha)
    write_csv(summary, root / cfg.table, float_format="%.6g")
    # run times stay out of the written outputs: same params and seed, same bytes
    write_csv(reps[FILE_REP_COLUMNS], root / cfg.replications, float_format="%.6g")
    plot(summary, root / cfg.figure)
    log.info(
        "%d replications × %d scenarios in %.1f s (%.1f s per replication, median)",
        cfg.n_reps,
        len(cfg.scenarios),
        time.perf_counter() - t0,
        float(reps.drop_duplicates(["scenario", "rep"])["seconds"].median()),
    )
    return summary, reps


def main() -> None:
    """Entry point: the ``validate`` section of ``params.yaml`` → validation table, figure."""
    from pipeline.config import load_params, project_root

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    params = load_params().get("validate")
    if params is None:
        log.warning("params.yaml has no validate section: using the defaults")
        params = {}
    cfg = ValidateConfig.from_params(params)
    summary, _ = run(cfg, project_root())
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.drop(columns=["targets_apply"]).to_string(index=False, float_format="%.3f"))
    print(json.dumps({"n_reps": cfg.n_reps, "seed": cfg.seed}))


if __name__ == "__main__":
    main()
