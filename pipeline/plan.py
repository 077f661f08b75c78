"""``python -m pipeline.plan``: the minimum detectable effect of the next study.

Estimates the variance components from a panel (by default the panel stage's
``data/processed/panel.parquet``; :func:`pipeline.analysis.planning.variance_components`)
and prints the analytic MDE at 80% power over a grid of sizes
(:func:`pipeline.analysis.planning.mde_table`); ``--out`` also writes it as CSV.  Not a
DVC stage: a tool for planners, reading an existing panel.

Example::

    python -m pipeline.plan --n-treated 250 500 1000 --ratios 1 3 --districts 5 15
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from pipeline import outputs
from pipeline.analysis.planning import mde_table, variance_components
from pipeline.io import write_csv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see ``python -m pipeline.plan --help``)."""
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.plan",
        description="Minimum detectable effect of the primary design by study size.",
    )
    ap.add_argument("--panel", type=Path, default=outputs.PANEL, help="panel.parquet")
    ap.add_argument("--n-treated", type=float, nargs="+", default=[250, 500, 1000, 2000])
    ap.add_argument("--ratios", type=float, nargs="+", default=[1, 2, 3])
    ap.add_argument("--districts", type=int, nargs="+", default=[5, 15])
    ap.add_argument("--schools-per-district", type=int, default=None)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0, help="pseudo-visit months")
    ap.add_argument("--out", type=Path, default=None, help="write the table as CSV")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Entry point: print (and optionally write) the MDE table; returns it."""
    a = parse_args(argv)
    if not a.panel.exists():
        raise SystemExit(f"{a.panel}: panel not found (run `dvc repro panel`)")
    vc = variance_components(pd.read_parquet(a.panel), seed=a.seed)
    table = mde_table(
        vc, a.n_treated, a.ratios, a.districts, a.schools_per_district, a.alpha, a.power
    )
    print("variance components:", json.dumps(vc.to_dict()))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print("MDE in attendance-rate points; not yet checked against the simulated design,")
    print("read it as a lower bound (pipeline/analysis/planning.py).")
    if a.out:
        write_csv(table, a.out, float_format="%.6g")
    return table


if __name__ == "__main__":
    main()
