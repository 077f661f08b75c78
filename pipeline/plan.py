"""``leap plan`` / ``python -m pipeline.plan``: the minimum detectable effect of the next study.

Estimates the variance components from a panel (by default the panel stage's
``data/processed/panel.parquet``; :func:`pipeline.analysis.planning.variance_components`),
takes the arms' design effects from ``--design-effects``, from an evaluation's matched
stacks (``--matched``, e.g. ``data/processed/matched.parquet``, comparison students visited
later imputed as the estimate stage does, or with ``--censoring weights`` untruncated
censoring weights; :func:`pipeline.analysis.planning.decompose_std_error`)
or the synthetic state's defaults (:data:`pipeline.analysis.planning.DEFAULT_DESIGN_EFFECTS`),
and prints the analytic MDE at 80% power over a grid of sizes
(:func:`pipeline.analysis.planning.mde_table`).  It writes the table, the power curves
(power against the true effect for each number of visited students) and their figure to
``--out-dir``.  Not a DVC stage: a tool for planners, reading an existing panel.

Example::

    leap plan --n-treated 250 500 1000 --ratios 1 1.6 3 --districts 4 15
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import outputs
from pipeline.analysis.planning import (
    DEFAULT_DESIGN_EFFECTS,
    DesignEffects,
    VarianceComponents,
    decompose_std_error,
    mde_table,
    power_at,
    variance_components,
)
from pipeline.io import write_csv

#: Columns of the power-curve table.
CURVE_COLUMNS = ["n_treated", "ratio", "n_districts", "effect", "power"]


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The planner's options (shared by ``leap plan`` and ``python -m pipeline.plan``)."""
    ap.add_argument("--panel", type=Path, default=outputs.PANEL, help="panel.parquet")
    ap.add_argument(
        "--matched",
        type=Path,
        default=None,
        help="matched.parquet of an evaluation: estimate the design effects from it",
    )
    ap.add_argument(
        "--design-effects",
        type=float,
        nargs=2,
        default=None,
        metavar=("TREATED", "COMPARISON"),
        help="the arms' design effects (default: from --matched, else the synthetic state's "
        f"{DEFAULT_DESIGN_EFFECTS.treated:g} and {DEFAULT_DESIGN_EFFECTS.comparison:g})",
    )
    ap.add_argument("--n-treated", type=float, nargs="+", default=[250, 500, 1000, 2000])
    ap.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=[1, 1.6, 3],
        help="distinct comparison students per visited student",
    )
    ap.add_argument("--districts", type=int, nargs="+", default=[4, 15])
    ap.add_argument(
        "--schools-per-district",
        type=int,
        default=None,
        help="schools per district, to apply a school design effect 1 + (m - 1) ICC to "
        "design effects measured with errors clustered by student (--cluster student_key); "
        "leave out with design effects measured by school, as --matched gives by default",
    )
    ap.add_argument(
        "--cluster",
        default="home_school_code",
        choices=["home_school_code", "student_key"],
        help="the design's error clusters when --matched estimates the design effects "
        "(default: by home school, as the estimate stage)",
    )
    ap.add_argument(
        "--censoring",
        default="impute",
        choices=["impute", "weights"],
        help="how --matched's comparison students visited later are handled, as "
        "estimate.censoring (default: imputed, as the estimate stage; weights: untruncated)",
    )
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0, help="pseudo-visit months")
    ap.add_argument("--out", type=Path, default=None, help="write the table as CSV here")
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=Path("reports/planning"),
        help="folder for mde.csv, power_curves.csv and power_curves.png",
    )
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see ``python -m pipeline.plan --help``)."""
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.plan",
        description="Minimum detectable effect of the primary design by study size.",
    )
    return add_arguments(ap).parse_args(argv)


def design_effects_from(a: argparse.Namespace, vc: VarianceComponents) -> tuple[DesignEffects, str]:
    """The design effects the options ask for (from ``--matched``: relative to ``vc``'s
    residual variance, as the formula uses them), and where they come from."""
    if a.design_effects is not None:
        return DesignEffects(*a.design_effects), "given on the command line"
    if a.matched is not None:
        from pipeline.analysis.design import add_outcomes, censoring_adjusted
        from pipeline.analysis.settings import EstimateConfig

        if not a.matched.exists():
            raise SystemExit(f"{a.matched}: matched data not found (run `leap run match`)")
        from pipeline.clusters import add_home_clusters, home_clusters

        cfg = EstimateConfig(censoring=a.censoring, ipcw_truncate=None)
        m = censoring_adjusted(add_outcomes(pd.read_parquet(a.matched)), cfg)[0]
        if a.cluster != "student_key":  # the students' home school, as the estimate stage
            m = add_home_clusters(m, home_clusters(pd.read_parquet(a.panel)))
        dec = decompose_std_error(m, cluster=a.cluster)
        return dec.design_effects_for(vc), f"estimated from {a.matched}, clustered by {a.cluster}"
    return DEFAULT_DESIGN_EFFECTS, "the synthetic state's defaults"


def power_curves(table: pd.DataFrame, alpha: float = 0.05, points: int = 61) -> pd.DataFrame:
    """Power against the true effect, from 0 to twice the largest MDE, for each table row.

    Parameters
    ----------
    table
        :func:`pipeline.analysis.planning.mde_table` output.
    alpha
        Two-sided test level.
    points
        Effects per curve.

    Returns
    -------
    pandas.DataFrame
        :data:`CURVE_COLUMNS`.
    """
    effects = np.linspace(0.0, 2.0 * float(table["mde"].max()), points)
    rows = [
        (r.n_treated, r.ratio, r.n_districts, e, power_at(e, r.std_error, alpha))
        for r in table.itertuples(index=False)
        for e in effects
    ]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def plot_curves(curves: pd.DataFrame, power: float, path: Path) -> None:
    """Power curves of the first ratio and district count, one line per study size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = curves[
        (curves["ratio"] == curves["ratio"].iloc[0])
        & (curves["n_districts"] == curves["n_districts"].iloc[0])
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for n, g in first.groupby("n_treated"):
        ax.plot(g["effect"], g["power"], label=f"{n:,.0f} visited")
    ax.axhline(power, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("True effect (attendance-rate points, months 1-6)")
    ax.set_ylabel("Power (two-sided test)")
    ax.set_title(
        f"{first['ratio'].iloc[0]:g} comparison students per visited student, "
        f"{first['n_districts'].iloc[0]} districts",
        fontsize=9,
    )
    ax.legend(frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(a: argparse.Namespace) -> pd.DataFrame:
    """Print the MDE table and write it with the power curves (options of :func:`add_arguments`)."""
    if not a.panel.exists():
        raise SystemExit(f"{a.panel}: panel not found (run `leap run panel`)")
    vc = variance_components(pd.read_parquet(a.panel), seed=a.seed)
    des, source = design_effects_from(a, vc)
    table = mde_table(
        vc, a.n_treated, a.ratios, a.districts, a.schools_per_district, a.alpha, a.power, des
    )
    print("variance components:", json.dumps(vc.to_dict()))
    growth = (
        f" at {des.reference_n_comparison:.0f} comparison students, "
        f"{des.comparison_growth:+.3g} per unit of ln(comparison students)"
        if des.comparison_growth
        else ""
    )
    print(
        f"design effects ({source}): treated {des.treated:.3g}, "
        f"comparison {des.comparison:.3g}{growth}"
    )
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(
        "MDE in attendance-rate points at the given power; checked against the simulated "
        "design at three sizes (benchmarks/results/plan_mde.md; docs/planning.md)."
    )
    if a.out:
        write_csv(table, a.out, float_format="%.6g")
    if a.out_dir:
        curves = power_curves(table, a.alpha)
        write_csv(table, a.out_dir / "mde.csv", float_format="%.6g")
        write_csv(curves, a.out_dir / "power_curves.csv", float_format="%.6g")
        plot_curves(curves, a.power, a.out_dir / "power_curves.png")
        print(f"wrote {a.out_dir}/mde.csv, power_curves.csv and power_curves.png")
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Entry point of ``python -m pipeline.plan``: :func:`run` on the command line."""
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
