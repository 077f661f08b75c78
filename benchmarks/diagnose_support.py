"""Whom does the matched design speak for?  The default extract's truth over every
visited student against the truth over the visited students the matching kept.

    python benchmarks/diagnose_support.py [--params params.yaml]
    python benchmarks/diagnose_support.py --settings --reps 30 [--workers 2]

Generates the extract ``params.yaml``'s ``synthesize`` section describes (the default run's),
builds its panel as ``ingest`` and ``panel`` do, runs the risk-set matching of its
``match`` section and writes ``benchmarks/results/support_default.json``: the number of
visited students by matching status, the generator's effect on every visited student
(``att_window``) and the same effect over the matched ones
(:func:`pipeline.synth.effects.completed_truth_for`) — the estimand of the matched
designs. One draw of the generator, not a study: the simulation studies record both
truths in every replication (``truth`` and ``truth_matched``).

``--settings`` instead compares the two settings of the committed studies (6,000
students; 4 of 8 districts in the program, as ``worlds_n100``, and 15 of 16, as
``wild_15districts_n100``) in the default world, over the studies' first ``--reps``
replication seeds: per replication, the visited students by matching status and both
truths. Writes ``benchmarks/results/support_settings.csv`` and prints the means; the
studies themselves do not count the students left out.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from pipeline.analysis.simulation import (
    ValidateConfig,
    replication_seeds,
    synth_config,
    synthetic_panel_truth,
)
from pipeline.config import load_params
from pipeline.io import write_json
from pipeline.matching.riskset import RiskSetSpec, riskset_match
from pipeline.synth import SynthConfig
from pipeline.synth.effects import completed_truth_for
from pipeline.validation.extras import ITT_UNITS

ROOT = Path(__file__).resolve().parents[1]


SETTINGS = {"4_of_8": (8, 4), "15_of_16": (16, 15)}


def support(panel, truth, spec: RiskSetSpec, window: tuple[int, int]) -> dict:
    """Visited students by matching status and the truth over all of them and the matched."""
    res = riskset_match(panel, spec)
    keys = res.matches.loc[res.matches["role"] == "treated", "student_key"].unique()
    status = res.treated["status"].value_counts()
    return {
        "visited": int(len(res.treated)),
        **{f"n_{k}": int(status.get(k, 0)) for k in ("matched", "no_match_in_caliper",
                                                     "not_in_membership", "no_candidates")},
        "att_window_every_visited": truth["att_window"],
        "att_window_matched": completed_truth_for(truth[ITT_UNITS], keys, window),
    }  # fmt: skip


def _setting_rep(args) -> dict:
    name, seed = args
    nd, npd = SETTINGS[name]
    cfg = ValidateConfig(n_students=6000, n_districts=nd, n_program_districts=npd)
    panel, truth = synthetic_panel_truth(synth_config(cfg, "dip", seed))
    return {"setting": name, "seed": seed,
            **support(panel, truth, RiskSetSpec(**cfg.match), tuple(cfg.att_window))}  # fmt: skip


def settings(reps: int, workers: int, out: Path) -> None:
    seeds = replication_seeds(ValidateConfig.seed, reps)
    tasks = [(name, s) for name in SETTINGS for s in seeds]
    with ProcessPoolExecutor(workers) as ex:
        rows = list(ex.map(_setting_rep, tasks))
    df = pd.DataFrame(rows)
    df["share_left_out"] = 1 - df["n_matched"] / df["visited"]
    df["difference_matched_minus_every"] = df["att_window_matched"] - df["att_window_every_visited"]
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    cols = ["visited", "share_left_out", "n_no_match_in_caliper", "n_not_in_membership",
            "difference_matched_minus_every"]  # fmt: skip
    print(df.groupby("setting")[cols].mean().round(3).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--settings", action="store_true")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.settings:
        settings(a.reps, a.workers, a.out or ROOT / "benchmarks/results/support_settings.csv")
        return
    t0 = time.perf_counter()
    p = load_params(a.params)
    scfg = SynthConfig.from_params(p["synthesize"])
    panel, truth = synthetic_panel_truth(scfg)
    spec = RiskSetSpec.from_params({k: v for k, v in p["match"].items() if k != "love_plot"})
    sup = support(panel, truth, spec, tuple(p["estimate"]["att_window"]))
    out = {
        "command": "python benchmarks/diagnose_support.py",
        "synthesize_seed": scfg.seed,
        "n_students": scfg.n_students,
        "visited_by_status": {
            k.removeprefix("n_"): v for k, v in sup.items() if k.startswith("n_") and v
        },
        "att_window_every_visited": sup["att_window_every_visited"],
        "att_window_matched": sup["att_window_matched"],
        "difference_matched_minus_every": (
            sup["att_window_matched"] - sup["att_window_every_visited"]
        ),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out, a.out or ROOT / "benchmarks/results/support_default.json")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
