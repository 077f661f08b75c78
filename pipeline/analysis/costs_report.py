"""The cost-effectiveness figure and the report section's content, from the cost tables.

Everything here reads ``reports/tables/cost_effectiveness.csv`` and
``reports/tables/cost_sensitivity.csv`` (as data frames); no number is typed by hand.
The report places :func:`cost_section` and :func:`cost_figure`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pipeline.analysis.costs import ILLUSTRATIVE_NOTE, MEASURES


def _dollars(x: float) -> str:
    if not math.isfinite(x):
        return "unbounded"
    return f"${x:,.0f}"


def cost_sentences(table: pd.DataFrame, synthetic: bool) -> list[str]:
    """One plain sentence per measure of the cost-effectiveness table.

    Parameters
    ----------
    table
        ``cost_effectiveness.csv``.
    synthetic
        Whether the effects come from a synthetic extract (adds the illustrative caveat).

    Returns
    -------
    list of str
    """
    t = table.set_index("measure")
    s = t.loc["per_student"]
    out = [
        f"The program cost {_dollars(s['total_cost'])} for {int(s['students_reached']):,} "
        f"students reached, {_dollars(s['cost_per_unit'])} per student."
    ]
    for m in ("per_day", "per_chronic_case"):
        r = t.loc[m]
        unit = MEASURES[m]
        if not math.isfinite(r["cost_per_unit"]):
            out.append(f"The estimates show no gain, so no cost per {unit} can be given.")
        elif bool(r["bounded"]):
            out.append(
                f"Each {unit} cost {_dollars(r['cost_per_unit'])} (95% interval "
                f"{_dollars(r['ci_low'])} to {_dollars(r['ci_high'])})."
            )
        else:
            out.append(
                f"Each {unit} cost {_dollars(r['cost_per_unit'])}; the effect's interval "
                f"includes zero, so the cost could be unbounded (at least "
                f"{_dollars(r['ci_low'])})."
            )
    if synthetic:
        out.append("These figures are " + ILLUSTRATIVE_NOTE + ".")
    return out


def cost_section(table: pd.DataFrame, sensitivity: pd.DataFrame, synthetic: bool) -> dict[str, Any]:
    """The report section's content: title, sentences, the display tables.

    Parameters
    ----------
    table, sensitivity
        ``cost_effectiveness.csv`` and ``cost_sensitivity.csv``.
    synthetic
        Whether the effects come from a synthetic extract.

    Returns
    -------
    dict
        ``title``, ``sentences`` (list of str), ``table`` and ``sensitivity`` (data frames
        with reader-facing column names and formatted dollars).
    """
    show = pd.DataFrame(
        {
            "Cost per": table["unit"],
            "Cost": table["cost_per_unit"].map(_dollars),
            "95% interval": [
                ("none: no estimate enters it" if lo == hi else f"{_dollars(lo)} to {_dollars(hi)}")
                if math.isfinite(p)
                else "not defined"
                for p, lo, hi in zip(
                    table["cost_per_unit"], table["ci_low"], table["ci_high"], strict=True
                )
            ],
        }
    )
    wide = sensitivity.pivot_table(
        index="scenario", columns="unit", values="cost_per_unit", sort=False
    )
    wide = wide[[MEASURES[m] for m in MEASURES if MEASURES[m] in wide.columns]]
    sens = wide.map(_dollars).reset_index().rename(columns={"scenario": "Cost assumption"})
    return {
        "title": "Cost-effectiveness",
        "sentences": cost_sentences(table, synthetic),
        "table": show,
        "sensitivity": sens,
    }


def cost_figure(sensitivity: pd.DataFrame):
    """Cost per additional day and per case averted across the cost multipliers.

    Parameters
    ----------
    sensitivity
        ``cost_sensitivity.csv``.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels, each the cost per unit with its interval against the multiplier of
        the program's cost (an unbounded upper end is drawn as an arrow).
    """
    import matplotlib.pyplot as plt

    s = sensitivity[sensitivity["scenario"].str.startswith("cost ×")]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, m in zip(axes, ("per_day", "per_chronic_case"), strict=True):
        r = s[s["measure"] == m].sort_values("cost_multiplier")
        ok = r["cost_per_unit"].map(math.isfinite)
        r = r[ok]
        x, y = r["cost_multiplier"].to_numpy(), r["cost_per_unit"].to_numpy()
        lo = r["ci_low"].to_numpy()
        hi = r["ci_high"].to_numpy()
        fin = pd.Series(hi).map(math.isfinite).to_numpy()
        top = max([*y, *hi[fin]]) if len(y) else 1.0
        ax.vlines(x[fin], lo[fin], hi[fin], color="0.6")
        for xi, li in zip(x[~fin], lo[~fin], strict=True):
            ax.annotate("", (xi, top * 1.1), (xi, li), arrowprops={"arrowstyle": "->"})
        ax.plot(x, y, "o-", color="C0")
        ax.set_title(f"Cost per {MEASURES[m]}", fontsize=9)
        ax.set_xlabel("Program cost relative to the assumed cost")
        ax.set_ylabel("Dollars")
    fig.tight_layout()
    return fig
