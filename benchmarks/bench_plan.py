"""The planner's analytic MDE against the simulated primary design at three sizes.

For each size (students in the synthetic state; the validation study's world otherwise:
8 districts, 4 running the program, 12% of their students served, the ``dip`` scenario)
and each replication: generate an extract, ingest it, build the panel, match, fit the
primary design (matched ANCOVA with censoring weights) and record its window average,
standard error and the truth; estimate the planner's variance components on the same
panel and compute the analytic MDE for the analysed visited students and the distinct
comparison students actually matched.  Simulated MDE = Bloom's multiplier × the design's
mean standard error (and × the SD of its errors, noisier with few replications).

    nice python benchmarks/bench_plan.py --reps 4 --sizes 6000 10000 16000

writes ``benchmarks/results/plan_mde.csv`` (one row per size) and
``benchmarks/results/plan_mde_reps.csv`` (one row per replication).
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.design import add_outcomes, primary, with_censoring_weights
from pipeline.analysis.planning import mde, multiplier, variance_components
from pipeline.analysis.settings import EstimateConfig
from pipeline.analysis.simulation import (
    ValidateConfig,
    replication_seeds,
    synth_config,
    synthetic_panel,
)
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels

OUT = Path("benchmarks/results")


def replicate(n_students: int, seed: int) -> dict:
    cfg = ValidateConfig(n_students=n_students)
    scfg = synth_config(cfg, "dip", seed)
    panel, truth = synthetic_panel(scfg)
    spec = RiskSetSpec()
    res = riskset_match(panel, spec)
    matched = add_outcomes(stack_panels(panel, res.matches, spec.window))
    m, _ = with_censoring_weights(matched, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = primary(m, "attendance_rate", EstimateConfig(wild_bootstrap=False), bootstrap=False)
    avg = fit.average((1, 6))
    after = m[(m["stack_event_time"] >= 1) & ~m["censored"].astype(bool)]
    n_t = after.loc[after["role"] == "treated", "student_key"].nunique()
    n_c = after.loc[after["role"] == "comparison", "student_key"].nunique()
    vc = variance_components(panel)
    leap = panel[panel["leap_district"].astype(bool)]
    n_districts = leap["district_code"].nunique()
    n_schools = leap["school_code"].nunique()
    a = mde(vc, n_t, n_c / n_t, n_districts, n_schools)
    return {
        "n_students": n_students,
        "seed": seed,
        "truth": truth,
        "estimate": avg.estimate,
        "std_error": avg.std_error,
        "n_treated": n_t,
        "n_comparison": n_c,
        "n_districts": n_districts,
        "n_schools": n_schools,
        **{f"vc_{k}": v for k, v in vc.to_dict().items() if k != "window"},
        "analytic_std_error": a["std_error"],
        "analytic_mde": a["mde"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--sizes", type=int, nargs="+", default=[6000, 10000, 16000])
    ap.add_argument("--seed", type=int, default=20230101)
    args = ap.parse_args()
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    seeds = replication_seeds(args.seed, args.reps)
    rows = [replicate(n, s) for n in args.sizes for s in seeds]
    reps = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    reps.to_csv(OUT / "plan_mde_reps.csv", index=False, float_format="%.6g")
    mult = multiplier(0.05, 0.8)
    g = reps.assign(err=reps["estimate"] - reps["truth"]).groupby("n_students")
    out = g.agg(
        reps=("seed", "size"),
        n_treated=("n_treated", "mean"),
        n_comparison=("n_comparison", "mean"),
        analytic_mde=("analytic_mde", "mean"),
        mean_std_error=("std_error", "mean"),
        sd_error=("err", "std"),
    ).reset_index()
    out["simulated_mde_se"] = mult * out["mean_std_error"]
    out["simulated_mde_sd"] = mult * out["sd_error"]
    out["ratio_analytic_to_simulated"] = out["analytic_mde"] / out["simulated_mde_se"]
    out["within_10pct"] = (out["ratio_analytic_to_simulated"] - 1).abs() <= 0.10
    out.to_csv(OUT / "plan_mde.csv", index=False, float_format="%.6g")
    print(out.to_string(index=False))
    print("reps:", np.round(reps[["std_error", "analytic_std_error"]].to_numpy(), 3).tolist())


if __name__ == "__main__":
    main()
