"""Whom does the matched design speak for?  The default extract's truth over every
visited student against the truth over the visited students the matching kept.

    python benchmarks/diagnose_support.py [--params params.yaml]

Generates the extract ``params.yaml``'s ``synthesize`` section describes (the default run's),
builds its panel as ``ingest`` and ``panel`` do, runs the risk-set matching of its
``match`` section and writes ``benchmarks/results/support_default.json``: the number of
visited students by matching status, the generator's effect on every visited student
(``att_window``) and the same effect over the matched ones
(:func:`pipeline.synth.effects.completed_truth_for`) — the estimand of the matched
designs. One draw of the generator, not a study: the simulation studies record both
truths in every replication (``truth`` and ``truth_matched``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.analysis.simulation import synthetic_panel_truth
from pipeline.config import load_params
from pipeline.io import write_json
from pipeline.matching.riskset import RiskSetSpec, riskset_match
from pipeline.synth import SynthConfig
from pipeline.synth.effects import completed_truth_for
from pipeline.validation.extras import ITT_UNITS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/support_default.json")
    a = ap.parse_args()
    t0 = time.perf_counter()
    p = load_params(a.params)
    scfg = SynthConfig.from_params(p["synthesize"])
    panel, truth = synthetic_panel_truth(scfg)
    spec = RiskSetSpec.from_params({k: v for k, v in p["match"].items() if k != "love_plot"})
    res = riskset_match(panel, spec)
    window = tuple(p["estimate"]["att_window"])
    keys = res.matches.loc[res.matches["role"] == "treated", "student_key"].unique()
    matched = completed_truth_for(truth[ITT_UNITS], keys, window)
    out = {
        "command": "python benchmarks/diagnose_support.py",
        "synthesize_seed": scfg.seed,
        "n_students": scfg.n_students,
        "visited_by_status": {k: int(v) for k, v in res.treated["status"].value_counts().items()},
        "att_window_every_visited": truth["att_window"],
        "att_window_matched": matched,
        "difference_matched_minus_every": matched - truth["att_window"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out, a.out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
