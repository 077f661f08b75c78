"""Figures of the sensitivity tables (drawn from the published CSVs).

* :func:`ovb_contour_figure` — Cinelli–Hazlett contour plot: the adjusted estimate over the
  partial R² of a confounder with the treatment (x) and the outcome (y), the zero contour
  in red, the unadjusted estimate and the benchmark bounds ("k × prior-year rate") marked.
* :func:`honest_figure` — Rambachan–Roth sensitivity plot: the original interval and the
  robust sets by ``M`` / ``M̄``, one panel per restriction.

Both return :class:`pipeline.figures.Figure` (figure, title and alt text from the data).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.figures import OKABE_ITO, Figure, watermark  # noqa: E402

__all__ = ["honest_figure", "ovb_contour_figure"]


def ovb_contour_figure(contour: pd.DataFrame, stats_row: pd.Series, bounds: pd.DataFrame,
                       synthetic: bool = False, outcome_label: str = "attendance effect "
                       "(points)") -> Figure:
    """Contour plot of the bias-adjusted estimate (``sensitivity_ovb_contour.csv``)."""
    xs = np.sort(contour["r2dz_x"].unique())
    ys = np.sort(contour["r2yz_dx"].unique())
    z = contour.pivot(index="r2yz_dx", columns="r2dz_x", values="value").loc[ys, xs].to_numpy()
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    cs = ax.contour(xs, ys, z, levels=12, colors="0.35", linewidths=0.8)
    ax.clabel(cs, fontsize=9, fmt="%.1f")
    if np.nanmin(z) < 0 < np.nanmax(z):
        zc = ax.contour(xs, ys, z, levels=[0.0], colors=OKABE_ITO["vermillion"], linewidths=1.6,
                        linestyles="--")
        ax.clabel(zc, fontsize=9, fmt="0")
    ax.plot(0, 0, "^", color="black", ms=7)
    ax.annotate(f"unadjusted ({stats_row['estimate']:.2f})", (0, 0), (6, 6),
                textcoords="offset points", fontsize=9)
    for r in bounds.itertuples():
        if r.r2dz_x <= xs.max() and r.r2yz_dx <= ys.max():
            ax.plot(r.r2dz_x, r.r2yz_dx, "D", color=OKABE_ITO["blue"], ms=5)
            ax.annotate(f"{r.label} ({r.adjusted_estimate:.2f})", (r.r2dz_x, r.r2yz_dx), (6, -10),
                        textcoords="offset points", fontsize=9, color=OKABE_ITO["blue"])
    ax.set_xlabel("Partial R² of confounder with the home visit")
    ax.set_ylabel("Partial R² of confounder with the outcome")
    ax.set_xlim(xs.min(), xs.max())
    ax.set_ylim(ys.min(), ys.max())
    if synthetic:
        watermark(fig)
    fig.tight_layout()
    title = f"Sensitivity of the {outcome_label} to an unmeasured confounder"
    alt = (f"Contours of the bias-adjusted estimate. Unadjusted {stats_row['estimate']:.2f}; "
           f"a confounder explaining {100 * stats_row['rv_q']:.1f}% of the residual variance "
           "of both the visit and the outcome would bring it to zero"
           + "".join(f"; {r.label}: {r.adjusted_estimate:.2f}" for r in bounds.itertuples())
           + ".")
    return Figure("sensitivity_ovb_contour", title, alt, fig,
                  ["sensitivity_ovb_contour.csv", "sensitivity_ovb.csv",
                   "sensitivity_ovb_bounds.csv"])


def honest_figure(tab: pd.DataFrame, synthetic: bool = False) -> Figure:
    """Robust confidence sets by restriction and method (``sensitivity_honestdid.csv``)."""
    orig = tab[tab["method"] == "original"]
    panels = [("DeltaRM", "Relative magnitudes (M̄)"), ("DeltaSD", "Smoothness (M)")]
    styles = {"C-LF": ("o", OKABE_ITO["blue"]), "Conditional": ("s", OKABE_ITO["orange"]),
              "FLCI": ("D", OKABE_ITO["bluish_green"])}
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.6), sharey=True)
    parts = []
    for ax, (delta, lab) in zip(axes, panels, strict=True):
        d = tab[(tab["Delta"] == delta) & tab["method"].isin(styles)]
        ms = sorted(d["M"].dropna().unique())
        step = (ms[1] - ms[0]) if len(ms) > 1 else 1.0
        meths = [m for m in styles if m in set(d["method"])]
        for j, meth in enumerate(meths):
            mk, col = styles[meth]
            dd = d[d["method"] == meth]
            off = (j - (len(meths) - 1) / 2) * step * 0.18
            for r in dd.itertuples():
                if np.isfinite(r.lb) and np.isfinite(r.ub):
                    ax.plot([r.M + off] * 2, [r.lb, r.ub], color=col, lw=1.6)
                    ax.plot(r.M + off, (r.lb + r.ub) / 2, mk, color=col, ms=3.5)
            ax.plot([], [], mk + "-", color=col, label=meth)
        if len(orig):
            o = orig.iloc[0]
            ax.axhspan(o["lb"], o["ub"], color="0.85", zorder=0, label="original 95% CI")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel(lab)
        ax.set_title(lab, fontsize=9)
        parts.append(f"{lab}: " + "; ".join(
            f"{r.method} at {r.M:g}: {r.lb:.2f} to {r.ub:.2f}" for r in d.itertuples()))
    axes[0].set_ylabel("Average effect, event times in the window (points)")
    axes[0].legend(fontsize=9, frameon=False)
    if synthetic:
        watermark(fig)
    fig.tight_layout()
    return Figure("sensitivity_honestdid", "Robust confidence sets under violations of "
                  "parallel trends (matched differences design)", ". ".join(parts) + ".", fig,
                  ["sensitivity_honestdid.csv"])
