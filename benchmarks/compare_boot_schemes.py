"""The design bootstrap's standard error under four ways of weighing schools, on the
simulation study's replications.

    python benchmarks/compare_boot_schemes.py [--scenario dip] [--reps 100] [--draws 49]
        [--workers 2] [--effect-strata COLUMN] [--hold-mix COLUMN] [--schemes NAME ...]
        [--out benchmarks/results/boot_schemes_dip_n100]

Each replication is the inference study's (``benchmarks/run_worlds_study.py``: the same
seeds, 6,000 students, 8 districts, 4 in the program; the completed-visit design with the
comparison students visited later imputed). On its panel the design bootstrap
(:class:`pipeline.design_bootstrap.DesignBootstrap`, ``--draws`` draws, the replication's
seed) runs four times, once per scheme of :data:`pipeline.design_bootstrap.SCHEMES`:

``multinomial``
    schools resampled within districts (the estimate stage's; a school's count has
    variance ``(n - 1) / n`` in a district of ``n`` schools, and about a third of the
    schools are out of each draw);
``dirichlet_resampling``
    smooth Dirichlet weights with the same variance, every school in every draw: the
    difference from ``multinomial`` is what leaving schools out of the matching's pool
    does;
``dirichlet_flat``
    Rubin's Bayesian bootstrap, variance ``(n - 1) / (n + 1)``;
``dirichlet_unit``
    variance 1, unbiased for a linear statistic.

``--effect-strata grade_band`` fits the primary within grade bands and averages over the
visited students' mix (``estimate.effect_strata``); the bootstrap's draws then hold the
full sample's visited mix, so a draw no longer changes whose effect is averaged. Its
ratios are against the spread of that estimator. ``--hold-mix grade_band`` keeps the
estimator and holds the visited students' grade-band mix in every draw instead
(``DesignBootstrap(hold_mix=...)``). ``--schemes`` runs a subset.

Writes ``replications.csv`` (one row per replication: the full-sample estimate, the
generator's truth, each scheme's standard error) and ``summary.json`` (each scheme's mean
standard error over the standard deviation of the estimates, the issue-17 target's ratio,
with the number of schools per district) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.simulation import (
    ValidateConfig,
    replication_seeds,
    synth_config,
    synthetic_panel_truth,
)
from pipeline.clusters import home_clusters
from pipeline.design_bootstrap import SCHEMES, DesignBootstrap
from pipeline.io import write_json
from pipeline.matching.riskset import PropensityCache, RiskSetSpec, riskset_match

ORDER = ("multinomial", "dirichlet_resampling", "dirichlet_flat", "dirichlet_unit")


def one(args) -> dict:
    scenario, rep, seed, draws, strata, hold, schemes = args
    t0 = time.perf_counter()
    cfg = ValidateConfig(n_students=6000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel, truth = synthetic_panel_truth(synth_config(cfg, scenario, seed))
        spec = RiskSetSpec(**cfg.match)
        cache = PropensityCache()
        riskset_match(panel, spec, ps_cache=cache)  # the primary's fit, reused
        bs = DesignBootstrap(panel, spec, att_window=cfg.att_window, truncate=None,
                             ps_cache=cache, censoring="impute",
                             effect_strata=strata, hold_mix=hold)  # fmt: skip
        row = {"scenario": scenario, "rep": rep, "seed": seed, "truth": truth.get("att_window")}
        for scheme in schemes:
            bs.scheme = scheme
            r = bs.run(draws, seed=seed, workers=1)
            row["estimate"] = r.estimate
            row[scheme] = r.std_error
    h = home_clusters(panel)
    row["schools_per_district"] = float(
        h.groupby("home_district_code")["home_school_code"].nunique().mean()
    )
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="dip")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--draws", type=int, default=49)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=ValidateConfig.seed)
    ap.add_argument("--effect-strata", default=None, help="e.g. grade_band (default: none)")
    ap.add_argument("--hold-mix", default=None, help="e.g. grade_band (default: none)")
    ap.add_argument("--schemes", nargs="*", choices=ORDER, default=list(ORDER))
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    assert set(ORDER) == set(SCHEMES)
    schemes = [s for s in ORDER if s in a.schemes]
    tag = f"_{a.effect_strata}" if a.effect_strata else ""
    tag += f"_held_{a.hold_mix}" if a.hold_mix else ""
    out = a.out or Path(f"benchmarks/results/boot_schemes_{a.scenario}{tag}_n{a.reps}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seeds = replication_seeds(a.seed, a.reps)
    jobs = [(a.scenario, r, int(seeds[r]), a.draws, a.effect_strata, a.hold_mix, schemes)
            for r in range(a.reps)]  # fmt: skip
    with ProcessPoolExecutor(max_workers=a.workers) as ex:
        rows = list(ex.map(one, jobs))
    d = pd.DataFrame(rows).sort_values("rep")
    d.to_csv(out / "replications.csv", index=False)
    sd = float(d["estimate"].std(ddof=1))
    summary = {
        "command": f"python benchmarks/compare_boot_schemes.py --scenario {a.scenario} "
        f"--reps {a.reps} --draws {a.draws} --workers {a.workers}"
        + (f" --seed {a.seed}" if a.seed != ValidateConfig.seed else "")
        + (f" --effect-strata {a.effect_strata}" if a.effect_strata else "")
        + (f" --hold-mix {a.hold_mix}" if a.hold_mix else "")
        + (" --schemes " + " ".join(schemes) if schemes != list(ORDER) else ""),
        "effect_strata": a.effect_strata,
        "hold_mix": a.hold_mix,
        "scenario": a.scenario,
        "reps": a.reps,
        "draws": a.draws,
        "sd_estimate": sd,
        "sd_error": float((d["estimate"] - d["truth"]).std(ddof=1)),
        "schools_per_district": float(d["schools_per_district"].mean()),
        "se_over_sd": {s: float(d[s].mean() / sd) for s in schemes},
        # Monte Carlo error of each ratio (bootstrap over the replications)
        "se_over_sd_mcse": {
            s: _ratio_mcse(d[s].to_numpy(), d["estimate"].to_numpy()) for s in schemes
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(summary, out / "summary.json")
    print(json.dumps(summary, indent=2))


def _ratio_mcse(se: np.ndarray, est: np.ndarray, B: int = 2000) -> float:
    """Bootstrap (over replications) standard error of mean(se) / sd(est)."""
    rng = np.random.default_rng(0)
    n = se.size
    idx = rng.integers(0, n, size=(B, n))
    r = se[idx].mean(axis=1) / est[idx].std(axis=1, ddof=1)
    return float(r.std(ddof=1))


if __name__ == "__main__":
    main()
