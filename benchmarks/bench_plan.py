"""The planner's analytic MDE against the simulated primary design at three sizes.

For each size (students in the synthetic state; the validation study's world otherwise:
8 districts, 4 running the program, 12% of their students served, the ``dip`` scenario)
and each replication: generate an extract, ingest it, build the panel, match, and fit the
primary design as the estimate stage runs it (matched ANCOVA, errors clustered as
``estimate.cluster`` in params.yaml says: by home school; effects by
``estimate.effect_strata``, grade band, averaged over the visited mix) with untruncated censoring
weights (``estimate.ipcw_truncate: null``, the pipeline's setting) and, beside it, weights
truncated at the 1st/99th percentiles and, with no weights, the censored comparison rows'
attendance imputed (``imputed``: the intent to treat's method, the estimate stage's
``estimate.censoring: impute``); record its window average, standard
error and the truth.  On the same replication the planner's inputs:

* the variance components, from the panel alone
  (:func:`pipeline.analysis.planning.variance_components`);
* the arms' design effects, from the design's own standard error split by arm, with the
  same clusters (:func:`pipeline.analysis.planning.decompose_std_error`), relative to the
  planner's residual variance and with the cross-arm covariance shared between the arms
  (:meth:`pipeline.analysis.planning.SEDecomposition.design_effects_for`: with its own
  design effects the formula reproduces the design's standard error).

The analytic MDE of a replication uses its panel's variance components, its numbers of
visited and distinct comparison students, and design effects that a planner would bring
from studies of *other* sizes: the visited arm's mean over the replications at the other
two sizes, and the comparison arm's log-linear trend in its number of students fitted on
those two sizes' means (:func:`pipeline.analysis.planning.fit_design_effects`) — so
nothing of the size being checked enters them.  Simulated MDE = Bloom's multiplier × the design's
mean standard error (Monte Carlo error: × its SD / √reps) and × the SD of its errors
(Monte Carlo error: × SD / √(2 (reps - 1))).

    nice python benchmarks/bench_plan.py --reps 20 --workers 2

writes ``benchmarks/results/plan_mde.csv`` (one row per weighting and size) and
``benchmarks/results/plan_mde_reps.csv`` (one row per replication and weighting).
``--cache DIR`` keeps (and reuses) each replication's panel and matched stacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pipeline.analysis.design import add_outcomes, primary, with_censoring_weights
from pipeline.analysis.planning import (
    DesignEffects,
    VarianceComponents,
    decompose_std_error,
    fit_design_effects,
    mde,
    multiplier,
    variance_components,
)
from pipeline.analysis.settings import EstimateConfig
from pipeline.analysis.simulation import (
    ValidateConfig,
    replication_seeds,
    synth_config,
    synthetic_panel,
)
from pipeline.censoring_ice import adjust_for_censoring
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from pipeline.settings import stage_settings

OUT = Path("benchmarks/results")
#: How censored comparison rows are handled (label: truncation quantiles of the weights,
#: or ``"impute"``: their outcome imputed, :func:`pipeline.censoring_ice.ice_impute`, as
#: ``estimate.censoring: impute`` does).
WEIGHTINGS = {"untruncated": None, "truncated_p1_p99": (0.01, 0.99), "imputed": "impute"}


def simulate(n_students: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """One replication's panel, matched stacks (with outcomes) and true window average."""
    panel, truth = synthetic_panel(synth_config(ValidateConfig(n_students=n_students), "dip", seed))
    spec = RiskSetSpec()
    res = riskset_match(panel, spec)
    matched = add_outcomes(stack_panels(panel, res.matches, spec.window))
    return panel, matched, float(truth)


def shipped_cluster() -> tuple[str, str | None, str]:
    """The primary design's error clusters, effect strata and covariance as the estimate
    stage runs it (params.yaml, validated as the stage reads it:
    :func:`pipeline.settings.stage_settings`)."""
    est = stage_settings().estimate
    return str(est.cluster), est.effect_strata, str(est.vcov)


def load_or_simulate(n_students: int, rep: int, seed: int, cache: Path | None):
    """:func:`simulate`, read from (or written to) ``cache`` when given."""
    if cache is None:
        return simulate(n_students, seed)
    tag = f"{n_students}_{rep}"
    pf, mf, tf = (
        cache / f"panel_{tag}.parquet",
        cache / f"m_{tag}.parquet",
        cache / f"truth_{tag}.json",
    )
    if not (pf.exists() and mf.exists() and tf.exists()):
        panel, matched, truth = simulate(n_students, seed)
        cache.mkdir(parents=True, exist_ok=True)
        panel.to_parquet(pf)
        matched.to_parquet(mf)
        tf.write_text(json.dumps({"truth": truth, "seed": seed}))
    matched = pd.read_parquet(mf)
    return (
        pd.read_parquet(pf),
        matched.drop(columns=["ipcw"], errors="ignore"),
        float(json.loads(tf.read_text())["truth"]),
    )


def replicate(job: tuple[int, int, int, str | None, str]) -> list[dict]:
    """Every weighting's row for one replication (size, index, seed, cache).

    One BLAS thread per worker: on shared cores threaded BLAS in the censoring model's
    Newton steps made a replication five times slower.
    """
    with threadpool_limits(1):
        return _replicate(job)


def _replicate(job: tuple[int, int, int, str | None, str]) -> list[dict]:
    n_students, rep, seed, cache, (cluster, strata, vcov) = job
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    panel, matched, truth = load_or_simulate(n_students, rep, seed, Path(cache) if cache else None)
    matched = add_home_clusters(matched, home_clusters(panel))  # as the estimate stage does
    vc = variance_components(panel)
    leap = panel[panel["leap_district"].astype(bool)]
    common = {
        "n_students": n_students,
        "rep": rep,
        "seed": seed,
        "truth": truth,
        "n_districts": leap["district_code"].nunique(),
        **{f"vc_{k}": v for k, v in vc.to_dict().items() if k != "window"},
        "vc_residual_variance": vc.residual_variance,
    }
    rows = []
    for label, truncate in WEIGHTINGS.items():
        if truncate == "impute":
            m, info = adjust_for_censoring(matched, "attendance_rate", "impute")[0], {}
        else:
            m, info = with_censoring_weights(matched, True, truncate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = primary(
                m,
                "attendance_rate",
                EstimateConfig(
                    wild_bootstrap=False, cluster=cluster, effect_strata=strata, vcov=vcov
                ),
                bootstrap=False,
            )
        avg = fit.average((1, 6))
        dec = decompose_std_error(m, cluster=cluster, effect_strata=strata)
        de = dec.design_effects_for(vc)  # as the planner's formula uses them
        # beside it, the split of the design with one effect (no strata): the gap is the
        # strata's differing effects counted as noise between clusters
        one = decompose_std_error(m, cluster=cluster) if strata else dec
        win = m[m["stack_event_time"].between(1, 6) & ~m["censored"].astype(bool)]
        own = mde(
            vc,
            dec.n_treated,
            dec.n_comparison / dec.n_treated,
            common["n_districts"],
            design_effects=de,
        )
        rows.append(
            {
                **common,
                "cluster": cluster,
                "effect_strata": strata or "",
                "vcov": vcov,
                "weights": label,
                "weight_max": info.get("weight_max", 1.0),
                "estimate": avg.estimate,
                "std_error": avg.std_error,
                "n_treated": dec.n_treated,
                "n_comparison": dec.n_comparison,
                "decomposed_std_error": dec.std_error,
                "sigma2_treated": dec.sigma2_treated,
                "sigma2_comparison": dec.sigma2_comparison,
                "design_effect_treated": de.treated,
                "design_effect_comparison": de.comparison,
                "design_effect_treated_realized_sigma2": dec.design_effects.treated,
                "design_effect_comparison_realized_sigma2": dec.design_effects.comparison,
                "analytic_std_error_own_de": own["std_error"],
                "decomposed_std_error_one_effect": one.std_error,
                "clusters_treated": int(win.loc[win["role"] == "treated", cluster].nunique()),
                "clusters_comparison": int(win.loc[win["role"] == "comparison", cluster].nunique()),
            }
        )
    return rows


ANALYTIC_COLUMNS = [
    "de_treated_other_sizes",
    "de_comparison_other_sizes",
    "analytic_std_error",
    "analytic_mde",
]


def analytic(reps: pd.DataFrame) -> pd.DataFrame:
    """Each replication's analytic SE and MDE with design effects from the other sizes.

    The design effects a planner would bring from evaluations of other sizes: the visited
    arm's mean, and the comparison arm's log-linear trend in its number of students
    (:func:`pipeline.analysis.planning.fit_design_effects`, on the other sizes' mean
    design effects and mean comparison students), evaluated at this replication's.
    """
    out = []
    for (w, n), g in reps.groupby(["weights", "n_students"]):
        other = reps[(reps["weights"] == w) & (reps["n_students"] != n)]
        by = other.groupby("n_students")[
            ["n_comparison", "design_effect_treated", "design_effect_comparison"]
        ].mean()
        if len(by) >= 2:
            de = fit_design_effects(
                by["n_comparison"], by["design_effect_treated"], by["design_effect_comparison"]
            )
        else:  # one other size: no trend to fit
            de = DesignEffects(*by[["design_effect_treated", "design_effect_comparison"]].mean())
        for i, r in g.iterrows():
            vc = VarianceComponents(
                r["vc_sigma2"],
                r["vc_r2"],
                r["vc_icc_school"],
                r["vc_icc_district"],
                int(r["vc_n_students"]),
                (1, 6),
            )
            a = mde(
                vc,
                r["n_treated"],
                r["n_comparison"] / r["n_treated"],
                int(r["n_districts"]),
                design_effects=de,
            )
            out.append(
                (i, de.treated, de.comparison_at(r["n_comparison"]), a["std_error"], a["mde"])
            )
    idx = [o[0] for o in out]
    return reps.join(pd.DataFrame([o[1:] for o in out], index=idx, columns=ANALYTIC_COLUMNS))


def summarize(reps: pd.DataFrame) -> pd.DataFrame:
    """One row per weighting and size: analytic against simulated MDE (see the docstring)."""
    mult = multiplier(0.05, 0.8)
    g = reps.assign(err=reps["estimate"] - reps["truth"]).groupby(["weights", "n_students"])
    out = g.agg(
        reps=("seed", "size"),
        n_treated=("n_treated", "mean"),
        n_comparison=("n_comparison", "mean"),
        planner_residual_variance=("vc_residual_variance", "mean"),
        realized_sigma2_comparison=("sigma2_comparison", "mean"),
        design_effect_treated=("design_effect_treated", "mean"),
        design_effect_comparison=("design_effect_comparison", "mean"),
        de_comparison_other_sizes=("de_comparison_other_sizes", "mean"),
        analytic_mde=("analytic_mde", "mean"),
        mean_std_error=("std_error", "mean"),
        sd_std_error=("std_error", "std"),
        sd_error=("err", "std"),
    ).reset_index()
    r = out["reps"]
    out["simulated_mde_se"] = mult * out["mean_std_error"]
    out["mc_error_mde_se"] = mult * out["sd_std_error"] / np.sqrt(r)
    out["simulated_mde_sd"] = mult * out["sd_error"]
    out["mc_error_mde_sd"] = out["simulated_mde_sd"] / np.sqrt(2 * (r - 1))
    out["ratio_to_mde_se"] = out["analytic_mde"] / out["simulated_mde_se"]
    out["ratio_to_mde_sd"] = out["analytic_mde"] / out["simulated_mde_sd"]
    out["within_10pct_se"] = (out["ratio_to_mde_se"] - 1).abs() <= 0.10
    out["within_10pct_sd"] = (out["ratio_to_mde_sd"] - 1).abs() <= 0.10
    return out.drop(columns=["sd_std_error"])


COMMAND = "nice python benchmarks/bench_plan.py"


def markdown(out: pd.DataFrame, command: str) -> str:
    """The summary as a Markdown table (included in ``docs/planning.md``)."""
    head = (
        "| censoring weights | students | reps | visited | distinct comparisons "
        "| analytic MDE | simulated MDE (mean SE) | ratio | simulated MDE (SD of errors) "
        "| ratio |\n|" + " --- |" * 10 + "\n"
    )
    rows = [
        f"| {r.weights.replace('_', ' ')} | {r.n_students:,} | {r.reps} | {r.n_treated:,.0f} "
        f"| {r.n_comparison:,.0f} | {r.analytic_mde:.2f} "
        f"| {r.simulated_mde_se:.2f} ± {r.mc_error_mde_se:.2f} | {r.ratio_to_mde_se:.2f} "
        f"| {r.simulated_mde_sd:.2f} ± {r.mc_error_mde_sd:.2f} | {r.ratio_to_mde_sd:.2f} |\n"
        for r in out.itertuples(index=False)
    ]
    note = (
        f"\nMDE in attendance-rate points (80% power, two-sided 5% test); ± one Monte Carlo "
        f"standard error. Made by `{command}`.\n"
    )
    parts = (
        "\n| censoring weights | students | planner's residual variance σ²(1-R²) "
        "| realized σ² (comparison) | design effect, visited | design effect, comparison "
        "| comparison design effect used (other sizes) |\n|" + " --- |" * 7 + "\n"
    )
    parts += "".join(
        f"| {r.weights.replace('_', ' ')} | {r.n_students:,} "
        f"| {r.planner_residual_variance:.1f} | {r.realized_sigma2_comparison:.1f} "
        f"| {r.design_effect_treated:.2f} | {r.design_effect_comparison:.2f} "
        f"| {r.de_comparison_other_sizes:.2f} |\n"
        for r in out.itertuples(index=False)
    )
    return head + "".join(rows) + note + parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--sizes", type=int, nargs="+", default=[6000, 10000, 16000])
    ap.add_argument("--seed", type=int, default=20230101)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="keep/reuse simulated data")
    ap.add_argument(
        "--from-reps",
        action="store_true",
        help="only redo the analytic MDE and the summary from plan_mde_reps.csv",
    )
    args = ap.parse_args()
    if args.from_reps:
        rows = pd.read_csv(OUT / "plan_mde_reps.csv")
        rows = rows.drop(columns=[c for c in ANALYTIC_COLUMNS if c in rows.columns])
    else:
        seeds = replication_seeds(args.seed, args.reps)
        cluster = shipped_cluster()
        jobs = [
            (n, i, s, str(args.cache) if args.cache else None, cluster)
            for i, s in enumerate(seeds)
            for n in args.sizes
        ]
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as ex:
            rows = pd.DataFrame([row for rr in ex.map(replicate, jobs) for row in rr])
    reps = analytic(rows.sort_values(["weights", "n_students", "rep"]).reset_index(drop=True))
    OUT.mkdir(parents=True, exist_ok=True)
    reps.to_csv(OUT / "plan_mde_reps.csv", index=False, float_format="%.6g")
    out = summarize(reps)
    out.to_csv(OUT / "plan_mde.csv", index=False, float_format="%.6g")
    sizes = " ".join(str(n) for n in sorted(reps["n_students"].unique()))
    cmd = f"{COMMAND} --reps {int(out['reps'].max())} --sizes {sizes} --workers 2"
    (OUT / "plan_mde.md").write_text(markdown(out, cmd), encoding="utf-8")
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(out.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if not math.isfinite(float(out["analytic_mde"].sum())):
        raise SystemExit("bench_plan: non-finite analytic MDE")


if __name__ == "__main__":
    main()
