"""The completed-visit headline on the default extract, comparison students visited later
weighted or imputed (``estimate.censoring``), side by side.

    python benchmarks/compare_censoring.py [--params params.yaml] [--draws 199]

Generates the extract ``params.yaml``'s ``synthesize`` section describes (the default
run's), builds its panel, matches as the ``match`` section says, and fits the primary
design of the ``estimate`` section twice on the same matched stacks: with the censoring
weights (``weights``) and with the censored comparison rows' attendance imputed
(``impute``). For each it records the window average with its analytic interval
(clustered as ``estimate.cluster``), the design bootstrap's standard error and percentile
interval (``--draws`` draws, ``estimate.seed``), the ratio of the two standard errors, and
the method's own diagnostics at the window's last month (the weights' effective number of
comparison rows and largest weight; the rows imputed), beside the generator's truth over
every visited student and over the matched ones. Writes
``benchmarks/results/censoring_default.json``. One draw of the generator, not a study:
the studies (``benchmarks/results/*_primary_impute_n100``) give the methods' bias and
coverage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

from pipeline.analysis.design import add_outcomes, censoring_adjusted, primary
from pipeline.analysis.settings import EstimateConfig
from pipeline.analysis.simulation import synthetic_panel_truth
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.design_bootstrap import DesignBootstrap
from pipeline.io import write_json
from pipeline.matching.riskset import PropensityCache, RiskSetSpec, riskset_match, stack_panels
from pipeline.settings import load_settings
from pipeline.synth import SynthConfig
from pipeline.synth.effects import completed_truth_for
from pipeline.validation.extras import ITT_UNITS

ROOT = Path(__file__).resolve().parents[1]


def one_method(panel, stacks, spec, cfg: EstimateConfig, draws: int, cache) -> dict:
    """The headline, its design bootstrap and diagnostics with ``cfg.censoring``."""
    m, info, _, diag = censoring_adjusted(stacks, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = primary(m, "attendance_rate", cfg, bootstrap=False).average(cfg.att_window)
    bs = DesignBootstrap(
        panel,
        spec,
        att_window=cfg.att_window,
        truncate=cfg.ipcw_truncate,
        effect_strata=cfg.effect_strata,
        censoring=cfg.censoring,
        ps_cache=cache,
    )
    r = bs.run(draws, seed=cfg.seed, workers=2, alpha=cfg.alpha)
    lo, hi = r.conf_int()
    end = diag[diag["event_time"] == cfg.att_window[1]].iloc[0]
    return {
        "estimate": a.estimate,
        "analytic": {"std_error": a.std_error, "ci_low": a.ci_low, "ci_high": a.ci_high},
        "design_bootstrap": {"std_error": r.std_error, "ci_low": lo, "ci_high": hi,
                             "draws": int(r.draws.size)},  # fmt: skip
        "bootstrap_over_analytic_se": r.std_error / a.std_error,
        "window_end": {
            k: (None if end[k] != end[k] else float(end[k]))
            for k in ("comparison_rows", "censored_rows", "effective_sample_size",
                      "max_weight", "imputed_rows")
        },  # fmt: skip
        "summary": {k: v for k, v in info.items() if not isinstance(v, (list, dict))},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--draws", type=int, default=199)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/censoring_default.json")
    a = ap.parse_args()
    t0 = time.perf_counter()
    s = load_settings(a.params)
    scfg = SynthConfig.from_params(s.synthesize.model_dump())
    cfg = EstimateConfig(**s.estimate.flat())
    spec = RiskSetSpec(**s.match.spec_kwargs())
    panel, truth = synthetic_panel_truth(scfg)
    cache = PropensityCache()
    res = riskset_match(panel, spec, ps_cache=cache)
    stacks = add_outcomes(stack_panels(panel, res.matches, spec.window))
    stacks = add_home_clusters(stacks, home_clusters(panel))
    keys = res.matches.loc[res.matches["role"] == "treated", "student_key"].unique()
    out = {
        "command": "python benchmarks/compare_censoring.py"
        + (f" --draws {a.draws}" if a.draws != 199 else ""),
        "synthesize_seed": scfg.seed,
        "n_students": scfg.n_students,
        "n_treated_matched": int(len(keys)),
        "cluster": cfg.cluster,
        "truth_every_visited": truth["att_window"],
        "truth_matched": completed_truth_for(truth[ITT_UNITS], keys, tuple(cfg.att_window)),
    }
    for method in ("weights", "impute"):
        c = dataclasses.replace(cfg, censoring=method)
        out[method] = one_method(panel, stacks, spec, c, a.draws, cache)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out, a.out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
