"""The validation study's figure: bias and coverage by estimator and scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.scenarios import ALL_ESTIMATORS, SCENARIOS
from pipeline.io import atomic_path


def draw(summary: pd.DataFrame):
    """Bias and coverage by estimator and scenario, as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    okabe_ito = [
        "#E69F00",
        "#56B4E9",
        "#009E73",
        "#F0E442",
        "#0072B2",
        "#D55E00",
        "#CC79A7",
        "#000000",
    ]
    markers = ["o", "s", "D", "^", "v", "P", "X", "*"]
    scen = [s for s in SCENARIOS if s in set(summary["scenario"])]
    est = [e for e in ALL_ESTIMATORS if e in set(summary["estimator"])]
    y = np.arange(len(est))[::-1]
    off = np.linspace(-0.3, 0.3, len(scen)) if len(scen) > 1 else np.zeros(1)
    plt.rcParams["svg.hashsalt"] = "leap-validation"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 0.55 * len(est) + 1.8), sharey=True)
    for i, s in enumerate(scen):
        d = summary[summary["scenario"] == s].set_index("estimator").reindex(est)
        kw = dict(color=okabe_ito[i % 8], marker=markers[i % 8], s=22, label=s, zorder=3)
        a1.scatter(d["bias"], y + off[i], **kw)
        a2.scatter(100 * d["coverage"], y + off[i], **kw)
    a1.axvline(0, color="#999999", linewidth=0.8)
    a1.axvspan(-0.3, 0.3, color="#eeeeee", zorder=0)
    a1.set_xlabel("Bias of the average over event times 1–6\n(attendance-rate points)")
    a2.axvline(95, color="#999999", linewidth=0.8)
    a2.axvspan(93, 97, color="#eeeeee", zorder=0)
    a2.set_xlabel("Coverage of 95% intervals\n(% of replications)")
    a2.set_xlim(-2, 102)
    a1.set_yticks(y, est)
    for a in (a1, a2):
        a.grid(axis="y", color="#f4f4f4", linewidth=0.6)
    n = int(summary["n_reps"].max()) if len(summary) else 0
    a2.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="Scenario")
    fig.suptitle(f"Simulation study: {n} replications per scenario", fontsize=10)
    fig.tight_layout()
    return fig


def plot(summary: pd.DataFrame, target_stem: str | Path, dpi: int = 300) -> None:
    """Bias and coverage by estimator and scenario (PNG at ``dpi`` and SVG)."""
    import matplotlib.pyplot as plt

    fig = draw(summary)
    stem = Path(target_stem)
    with atomic_path(stem.with_suffix(".png"), ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    with atomic_path(stem.with_suffix(".svg"), ".svg") as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
