"""The stress-test study (issue 16): every world's scenario, the primary design, the
extended design (also conditioning on the whole recorded school year, the student's own
mean and a fourth month) and the matched differences design, with the diagnostics.

Usage::

    nice python benchmarks/run_worlds_study.py --reps 100 --workers 2 \\
        --out benchmarks/results/worlds_n100

writes ``validation.csv`` (bias, RMSE, coverage, SE ratio and diagnostic firing rates per
scenario and estimator), ``verdicts.csv`` (a verdict per world and design),
``replications.csv``, the figure and ``timing.json`` (wall time) under ``--out``; every
finished replication is also appended to ``checkpoint.csv`` there, and a rerun of the same
command resumes from it (``--rescore`` scores a run cut short from it).

``--inference`` adds the inference extras of issue 17 to every replication
(:mod:`pipeline.validation.extras`): the primary with errors clustered by school, the
district wild cluster bootstrap (``--wild-draws``), the design bootstrap
(``--boot-draws``), the intent-to-treat effect at the first attempted visit and the effect
on families reached, each judged against its own truth (the verdict table then also has
the intent-to-treat design).

The primary runs as the estimate stage runs it: its error clustering and censoring-weight
truncation are read from ``params.yaml`` (``estimate.cluster``, ``estimate.ipcw_truncate``)
and recorded in ``timing.json``::

    nice python benchmarks/run_worlds_study.py --reps 100 --workers 2 --inference \
        --out benchmarks/results/worlds_n100
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

from pipeline import registry
from pipeline.analysis.simulation import ValidateConfig, summarize, verdicts
from pipeline.analysis.simulation_figure import plot
from pipeline.io import write_csv
from pipeline.settings import stage_settings
from pipeline.validate import run
from pipeline.validation.scenarios import WORLDS

SCENARIOS = ("dip", *WORLDS, "unrecorded_shocks")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20210404)
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--inference",
        action="store_true",
        help="add the inference extras (school clustering, district wild bootstrap, design "
        "bootstrap, intent to treat at the first attempt, effect on families reached)",
    )
    ap.add_argument("--boot-draws", type=int, default=49, help="design-bootstrap draws")
    ap.add_argument("--wild-draws", type=int, default=199, help="district wild-bootstrap draws")
    ap.add_argument(
        "--n-students",
        type=int,
        default=ValidateConfig.n_students,
        help="students per replication's extract",
    )
    ap.add_argument(
        "--n-districts",
        type=int,
        default=ValidateConfig.n_districts,
        help="districts per replication's state",
    )
    ap.add_argument(
        "--n-program-districts",
        type=int,
        default=ValidateConfig.n_program_districts,
        help="of them in the program (the district wild bootstrap's clusters)",
    )
    ap.add_argument(
        "--served-share",
        type=float,
        default=ValidateConfig.served_share,
        help="share of a program district's students first reached over the period "
        "(synthesize.program.served_share; the default extract's is 0.055)",
    )
    ap.add_argument(
        "--primary-only",
        action="store_true",
        help="run only the primary design (and the --inference extras), without the "
        "diagnostics: for an inference study beside a worlds study of the same seeds, which "
        "has the other designs and the diagnostics already",
    )
    ap.add_argument(
        "--effect-strata",
        default="params",
        help="the primary's effect strata (a column, or 'none'); default: params.yaml's "
        "estimate.effect_strata",
    )
    ap.add_argument(
        "--vcov",
        choices=["params", "CR1", "CR2"],
        default="params",
        help="the primary's covariance; default: params.yaml's estimate.vcov",
    )
    ap.add_argument(
        "--itt-censoring",
        choices=["params", "weights", "impute"],
        default="params",
        help="how the intent to treat (--inference) handles comparison students attempted "
        "later; default: params.yaml's estimate.estimands.itt_censoring",
    )
    ap.add_argument(
        "--primary-censoring",
        choices=["weights", "impute"],
        default="weights",
        help="how the primary (and extended) design handles comparison students visited "
        "later: the censoring weights (estimate.censoring's default) or imputation "
        "(estimate.censoring: impute)",
    )
    ap.add_argument(
        "--history",
        choices=["params", "on", "off"],
        default="params",
        help="whether the primary also conditions on the recorded year at the first visit "
        "(estimate.history, pipeline/history.py); default: params.yaml's. With it on, the "
        "extended design is the primary and is not run again",
    )
    ap.add_argument(
        "--boot-scheme",
        choices=["multinomial", "dirichlet_flat", "dirichlet_resampling", "dirichlet_unit"],
        default="multinomial",
        help="how the design bootstrap (--inference) weighs schools: resampled within "
        "districts (multinomial, the estimate stage's) or smooth Dirichlet weights within "
        "districts of the named variance (pipeline.design_bootstrap.SCHEMES)",
    )
    ap.add_argument(
        "--boot-hold-mix",
        default=None,
        help="a panel column (e.g. grade_band) whose visited mix the design bootstrap's "
        "draws hold at the full sample's (default: none)",
    )
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="recompute the tables and verdicts from --out/replications.csv (no new runs)",
    )
    a = ap.parse_args()
    out = Path(a.out or f"benchmarks/results/worlds_n{a.reps}")
    if a.rescore:
        rescore(out)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    est = stage_settings().estimate
    history = est.history if a.history == "params" else a.history == "on"
    cfg = ValidateConfig(
        history=history,
        cluster=est.cluster,
        ipcw_truncate=est.ipcw_truncate,
        effect_strata=est.effect_strata
        if a.effect_strata == "params"
        else (None if a.effect_strata == "none" else a.effect_strata),
        vcov=est.vcov if a.vcov == "params" else a.vcov,
        itt_censoring=est.estimands.itt_censoring
        if a.itt_censoring == "params"
        else a.itt_censoring,
        primary_censoring=a.primary_censoring,
        boot_scheme=a.boot_scheme,
        boot_hold_mix=a.boot_hold_mix,
        seed=a.seed,
        n_reps=a.reps,
        workers=a.workers,
        scenarios=tuple(a.scenarios),
        design="ancova",
        estimators=(registry.design_estimator("ancova").name,)
        if a.primary_only
        else (
            registry.design_estimator("ancova").name,
            *registry.extensions("ancova"),
            registry.DESIGNS["differences"],
        ),
        diagnostics=not a.primary_only,
        table=str(out / "validation.csv"),
        replications=str(out / "replications.csv"),
        figure=str(out / "validation"),
        verdicts=str(out / "verdicts.csv"),
        n_students=a.n_students,
        n_districts=a.n_districts,
        n_program_districts=a.n_program_districts,
        served_share=a.served_share,
        inference=a.inference,
        boot_draws=a.boot_draws,
        wild_draws=a.wild_draws,
        checkpoint=str(out / "checkpoint.csv"),
    )
    t0 = time.perf_counter()
    run(cfg, ".")
    info = {
        "n_reps": a.reps,
        "workers": a.workers,
        "seed": a.seed,
        "scenarios": list(a.scenarios),
        "n_students": a.n_students,
        "n_districts": a.n_districts,
        "n_program_districts": a.n_program_districts,
        "served_share": a.served_share,
        "cluster": cfg.cluster,
        "ipcw_truncate": None if cfg.ipcw_truncate is None else list(cfg.ipcw_truncate),
        "effect_strata": cfg.effect_strata,
        "vcov": cfg.vcov,
        "itt_censoring": cfg.itt_censoring if a.inference else None,
        "primary_censoring": cfg.primary_censoring,
        "history": cfg.history,
        "inference": a.inference,
        "primary_only": a.primary_only,
        "boot_draws": a.boot_draws if a.inference else None,
        "boot_scheme": a.boot_scheme if a.inference else None,
        "boot_hold_mix": a.boot_hold_mix if a.inference else None,
        "wild_draws": a.wild_draws if a.inference else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "seconds_note": "wall time of the last invocation (a study resumed from its checkpoint "
        "ran over several); replication_seconds_total sums every replication's own wall time "
        "(in its worker process, on a shared machine)",
        "replication_seconds_total": _replication_seconds(out / "checkpoint.csv"),
        "command": command(a, out, itt_censoring=cfg.itt_censoring, history=cfg.history),
    }
    (out / "timing.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


def _replication_seconds(path: Path) -> float | None:
    if not path.exists():
        return None
    d = pd.read_csv(path).drop_duplicates(["scenario", "rep"])
    return round(float(d["seconds"].sum()), 1)


def command(
    a: argparse.Namespace,
    out: Path,
    itt_censoring: str | None = None,
    history: bool | None = None,
) -> str:
    """The command line that reproduces the run (every setting that changes the results;
    the intent to treat's censoring method and the primary's history as resolved,
    ``itt_censoring`` and ``history``, whatever params.yaml says later)."""
    parts = [
        f"nice python benchmarks/run_worlds_study.py --reps {a.reps} --workers {a.workers}",
        f"--seed {a.seed}",
        f"--n-students {a.n_students}",
    ]
    if (a.n_districts, a.n_program_districts) != (
        ValidateConfig.n_districts,
        ValidateConfig.n_program_districts,
    ):
        parts.append(f"--n-districts {a.n_districts} --n-program-districts {a.n_program_districts}")
    if a.served_share != ValidateConfig.served_share:
        parts.append(f"--served-share {a.served_share}")
    if list(a.scenarios) != list(SCENARIOS):
        parts.append("--scenarios " + " ".join(a.scenarios))
    if a.primary_only:
        parts.append("--primary-only")
    if a.inference:
        parts.append(f"--inference --boot-draws {a.boot_draws} --wild-draws {a.wild_draws}")
        if a.boot_scheme != "multinomial":
            parts.append(f"--boot-scheme {a.boot_scheme}")
        if a.boot_hold_mix:
            parts.append(f"--boot-hold-mix {a.boot_hold_mix}")
    if a.effect_strata != "params":
        parts.append(f"--effect-strata {a.effect_strata}")
    if a.vcov != "params":
        parts.append(f"--vcov {a.vcov}")
    if a.primary_censoring != "weights":
        parts.append(f"--primary-censoring {a.primary_censoring}")
    if history is not None:
        parts.append(f"--history {'on' if history else 'off'}")
    if a.inference and (itt_censoring or a.itt_censoring != "params"):
        resolved = itt_censoring or a.itt_censoring
        parts.append(f"--itt-censoring {resolved}")
    return " ".join([*parts, f"--out {out}"])


def rescore(out: Path, alpha: float = 0.05) -> None:
    """Tables, verdicts and figure again from ``out/replications.csv`` (or, for a study cut
    short, from the replications its checkpoint holds)."""
    src = out / "replications.csv"
    if not src.exists():
        src = out / "checkpoint.csv"
    reps = pd.read_csv(src)
    summary = summarize(reps, alpha)
    table = verdicts(summary, reps)
    write_csv(summary, out / "validation.csv", float_format="%.6g")
    write_csv(table, out / "verdicts.csv", float_format="%.6g")
    plot(summary, out / "validation")


if __name__ == "__main__":
    main()
