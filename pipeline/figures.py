"""The report's figures, drawn from disclosure-controlled (published) tables.

Every function takes published tables (suppressed cells are missing and simply not
drawn) and returns a :class:`Figure`: the matplotlib figure, a title and an alt text
written from the data.  :func:`save_figures` writes each figure as PNG (300 dpi by
default) and SVG and returns the machine-readable manifest entries.

Colours are the Okabe–Ito palette (safe for the common forms of colour blindness);
series are also told apart by marker and line style.  When the extract is synthetic
every figure carries a diagonal watermark so that a demonstration is not mistaken
for program results.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
SERIES_COLOURS = [
    OKABE_ITO[k]
    for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue", "black")
]
WATERMARK = "SYNTHETIC DATA — NOT PROGRAM RESULTS"

ESTIMATOR_LABELS = {
    "matched_ancova": "Matched ANCOVA",
    "matched_stacked": "Matched differences (stacked DiD)",
    "naive_before_after": "Naive before–after",
    "twfe": "Two-way fixed effects",
    "callaway_santanna_unconditional": "Callaway–Sant'Anna (unconditional)",
    "callaway_santanna_dr": "Callaway–Sant'Anna (doubly robust)",
    "sun_abraham": "Sun–Abraham",
    "imputation": "Imputation (Borusyak et al.)",
}
SUBGROUP_LABELS = {
    "grade_band": "Grade band",
    "cohort": "Cohort",
    "first_visit_mode": "First-visit mode",
    "ell": "English learner",
    "prior_year_tier": "Prior-year attendance tier",
    "district": "District",
    "dosage": "Visits completed",
}
STEP_LABELS = {
    "extract": "In extract",
    "eligible": "Eligible",
    "visited": "Visited",
    "matched": "Matched",
    "analysed": "Analysed",
}

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "svg.fonttype": "none",
    "svg.hashsalt": "leap-report",
    "legend.frameon": False,
}


def label_estimator(name: str) -> str:
    """Display name of an estimator (the raw name when unknown)."""
    return ESTIMATOR_LABELS.get(name, name.replace("_", " "))


@dataclass
class Figure:
    """A drawn figure with its identity and alt text."""

    id: str
    title: str
    alt: str
    fig: plt.Figure
    sources: list[str] = field(default_factory=list)


def _fmt(x: float, nd: int = 1) -> str:
    return "not shown (suppressed)" if pd.isna(x) else f"{x:.{nd}f}".replace("-", "−")


def _new(figsize=(7.0, 4.2)) -> tuple[plt.Figure, plt.Axes]:
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def watermark(fig: plt.Figure) -> None:
    """Put the diagonal synthetic-data watermark across ``fig``, sized to fit inside it."""
    w, h = (float(v) * 72 for v in fig.get_size_inches())
    angle = min(28.0, float(np.degrees(np.arctan2(h, w))))
    a = np.radians(angle)
    room = 0.8 * min(w / np.cos(a), h / np.sin(a))
    size = float(np.clip(room / (0.75 * len(WATERMARK)), 7, 26))
    fig.text(
        0.5,
        0.5,
        WATERMARK,
        rotation=angle,
        ha="center",
        va="center",
        rotation_mode="anchor",
        fontsize=size,
        fontweight="bold",
        color=OKABE_ITO["vermillion"],
        alpha=0.22,
        zorder=100,
        in_layout=False,
    )


def _finish(fig: plt.Figure, synthetic: bool) -> None:
    if synthetic:
        watermark(fig)


# --------------------------------------------------------------------------- figures


def reference_periods(es: pd.DataFrame, primary: str) -> list[int]:
    """Reference event times of the primary estimates.

    Those reported as normalised (estimate 0 and standard error 0); when there are
    none, the pre-visit event times missing from an otherwise contiguous range (the
    omitted reference period, ``EventStudyResult``'s other convention).
    """
    p = es[es["estimator"] == primary]
    est = pd.to_numeric(p["estimate"], errors="coerce")
    se = pd.to_numeric(p["std_error"], errors="coerce")
    zero = sorted(int(t) for t in p.loc[(est == 0) & (se == 0), "event_time"])
    if zero or p.empty:
        return zero
    times = {int(t) for t in p["event_time"]}
    return [t for t in range(min(times), 0) if t not in times]


def event_study_figure(
    es: pd.DataFrame,
    primary: str,
    window: tuple[int, int],
    synthetic: bool,
    *,
    outcome_label: str = "Effect on monthly attendance rate (percentage points)",
    fig_id: str = "event_study",
    title: str = "Effect of the first home visit by school month (event study)",
) -> Figure:
    """Event study: primary estimate with its 95% band, comparators overlaid.

    The zero line, the first-visit month and the reference period (event time −1,
    normalised to zero) are marked; suppressed event times are gaps.
    """
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, 4.8))
        names = [primary] + sorted(n for n in es["estimator"].unique() if n != primary)
        offsets = np.linspace(-0.25, 0.25, max(len(names) - 1, 1)) if len(names) > 1 else [0]
        span = range(int(es["event_time"].min()), int(es["event_time"].max()) + 1)
        for j, name in enumerate(names):
            d = es[es["estimator"] == name].sort_values("event_time")
            if name == primary:  # missing event times (reference, suppressed) break the line
                d = d.set_index("event_time").reindex(span).rename_axis("event_time")
                d = d.reset_index()
            x = d["event_time"].to_numpy(float)
            y = d["estimate"].to_numpy(float)
            colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
            if name == primary:
                ax.fill_between(
                    x,
                    d["ci_low"].to_numpy(float),
                    d["ci_high"].to_numpy(float),
                    color=colour,
                    alpha=0.2,
                    linewidth=0,
                    label="95% confidence band (primary)",
                )
                ax.plot(x, y, "-o", color=colour, lw=2, ms=4, label=label_estimator(name), zorder=5)
            else:
                off = offsets[(j - 1) % len(offsets)]
                ax.errorbar(
                    x + off,
                    y,
                    yerr=[y - d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float) - y],
                    fmt="os^Dv<>"[j % 7],
                    ms=3.5,
                    lw=0.8,
                    capsize=0,
                    color=colour,
                    ls=["--", ":", "-.", (0, (3, 1, 1, 1))][j % 4],
                    alpha=0.9,
                    label=label_estimator(name),
                )
        ax.axhline(0, color="black", lw=0.9)
        ax.axvline(-0.5, color="#555555", lw=0.9, ls="--")
        refs = reference_periods(es, primary)
        ylim = ax.get_ylim()
        if refs:
            lo_r, hi_r = min(refs), max(refs)
            ax.axvspan(lo_r - 0.4, hi_r + 0.4, color="#999999", alpha=0.18, lw=0)
            lab = f"{lo_r:d}" if lo_r == hi_r else f"{lo_r:d} to {hi_r:d}"
            ax.text(
                (lo_r + hi_r) / 2,
                ylim[0],
                f"reference\n({lab})".replace("-", "−"),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.text(-0.4, ylim[1], " first visit →", ha="left", va="top", fontsize=7.5)
        ax.axvspan(window[0] - 0.5, window[1] + 0.5, color=OKABE_ITO["sky_blue"], alpha=0.08, lw=0)
        ax.set_xlabel("School months since the first completed home visit (event time)")
        ax.set_ylabel(outcome_label)
        fig.legend(fontsize=7.5, loc="outside lower center", ncols=3)
        _finish(fig, synthetic)
    p = es[es["estimator"] == primary].sort_values("event_time")
    post = p[p["event_time"].between(window[0], window[1])]
    pre = p[p["event_time"] < -1]
    alt = (
        f"Line chart of estimated effects by event time from {int(es['event_time'].min())} to "
        f"{int(es['event_time'].max())} school months around the first home visit, for "
        f"{len(names)} estimator(s): {', '.join(label_estimator(n) for n in names)}. "
        f"The primary estimate is shown with a shaded 95% confidence band; "
        + (
            f"event time(s) {', '.join(str(r) for r in refs)} are the reference period. "
            if refs
            else "no reference period is fixed at zero in the estimates. "
        )
        + f"Before the visit the primary estimates range from "
        f"{_fmt(pre['estimate'].min())} to {_fmt(pre['estimate'].max())}; in months "
        f"{window[0]}–{window[1]} after it they range from {_fmt(post['estimate'].min())} to "
        f"{_fmt(post['estimate'].max())}. Suppressed event times are left out."
    )
    return Figure(fig_id, title, alt, fig)


def event_means_figure(em: pd.DataFrame, synthetic: bool) -> Figure:
    """Mean attendance rate by event time for visited and matched comparison students."""
    with plt.rc_context(_RC):
        fig, ax = _new()
        style = {
            "treated": (OKABE_ITO["blue"], "-o", "Visited students"),
            "comparison": (OKABE_ITO["vermillion"], "--s", "Matched comparison students"),
        }
        for role, (colour, fmt, label) in style.items():
            d = em[em["role"] == role].sort_values("event_time")
            ax.plot(d["event_time"], d["mean_rate"], fmt, color=colour, ms=4, lw=1.8, label=label)
        ax.axvline(-0.5, color="#555555", lw=0.9, ls="--")
        ax.set_xlabel("School months since the (matched) first completed home visit")
        ax.set_ylabel("Mean monthly attendance rate (%)")
        ax.legend(loc="lower right")
        _finish(fig, synthetic)
    t = em[em["role"] == "treated"].set_index("event_time")["mean_rate"]
    c = em[em["role"] == "comparison"].set_index("event_time")["mean_rate"]
    alt = (
        "Line chart of the mean monthly attendance rate by school month relative to the first "
        "home visit, for visited students and their matched comparison students. In the month "
        f"before the visit visited students attended {_fmt(t.get(-1, np.nan))}% of days and "
        f"comparison students {_fmt(c.get(-1, np.nan))}%; one month after, "
        f"{_fmt(t.get(1, np.nan))}% and {_fmt(c.get(1, np.nan))}%."
    )
    return Figure("event_means", "Attendance around the first visit: visited vs matched", alt, fig)


def love_plot(bal: pd.DataFrame, synthetic: bool, threshold: float = 0.1) -> Figure:
    """Standardised mean differences of covariates before and after matching."""
    b = bal.iloc[::-1].reset_index(drop=True)
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, min(9.0, 0.3 * len(b) + 1.6)))
        y = np.arange(len(b))
        ax.scatter(
            b["smd_before"].abs(),
            y,
            marker="o",
            facecolors="none",
            edgecolors=OKABE_ITO["vermillion"],
            s=30,
            label="Before matching",
        )
        ax.scatter(
            b["smd_after"].abs(),
            y,
            marker="D",
            color=OKABE_ITO["blue"],
            s=22,
            label="After matching",
        )
        ax.axvline(threshold, color="#555555", lw=0.9, ls="--")
        ax.axvline(0.05, color="#555555", lw=0.6, ls=":")
        ax.set_yticks(y, b["covariate"], fontsize=8 if len(b) <= 20 else 6.5)
        ax.set_xlabel("Absolute standardised mean difference (treated − comparison)")
        ax.legend(loc="lower right")
        _finish(fig, synthetic)
    alt = (
        f"Dot plot (love plot) of absolute standardised mean differences for {len(b)} "
        f"covariates before and after matching. Before matching the largest is "
        f"{_fmt(bal['smd_before'].abs().max(), 2)}; after matching the largest is "
        f"{_fmt(bal['smd_after'].abs().max(), 2)}. Dashed line at {threshold}, dotted at 0.05."
    )
    return Figure("love_plot", "Covariate balance before and after matching", alt, fig)


def forest_plot(sg: pd.DataFrame, att: float, synthetic: bool) -> Figure:
    """Subgroup window-average effects with 95% intervals (suppressed levels labelled)."""
    rows = []
    for sub, d in sg.groupby("subgroup", sort=False):
        rows.append((SUBGROUP_LABELS.get(sub, sub), None, None, None, True))
        for _, r in d.iterrows():
            rows.append(
                (
                    "   " + str(r["level"]).replace("_", " "),
                    r["estimate"],
                    r["ci_low"],
                    r["ci_high"],
                    False,
                )
            )
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, min(9.0, 0.24 * len(rows) + 1.2)))
        ys = np.arange(len(rows))[::-1]
        labels = []
        for y, (lab, e, lo, hi, head) in zip(ys, rows, strict=True):
            if head:
                labels.append(lab)
                continue
            if pd.isna(e):
                labels.append(lab + "  (suppressed)")
                continue
            labels.append(lab)
            ax.plot([lo, hi], [y, y], color=OKABE_ITO["blue"], lw=1.4)
            ax.plot(e, y, "s", color=OKABE_ITO["blue"], ms=4.5)
        ax.set_yticks(ys, labels, fontsize=7.5)
        for t, (_, _, _, _, head) in zip(ax.get_yticklabels(), rows, strict=True):
            if head:
                t.set_fontweight("bold")
        ax.axvline(0, color="black", lw=0.9)
        if pd.notna(att):
            ax.axvline(att, color=OKABE_ITO["vermillion"], lw=1, ls="--", label="Overall estimate")
            ax.legend(loc="lower right", fontsize=7.5)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("Average effect over the window (percentage points), 95% CI")
        _finish(fig, synthetic)
    shown = sg.dropna(subset=["estimate"])
    alt = (
        f"Forest plot of the average effect in {len(sg)} subgroup levels across "
        f"{sg['subgroup'].nunique()} characteristics, each with a 95% confidence interval; "
        f"{len(sg) - len(shown)} level(s) suppressed for small numbers. Shown estimates range "
        f"from {_fmt(shown['estimate'].min())} to {_fmt(shown['estimate'].max())} points; the "
        f"overall estimate is {_fmt(att)}."
    )
    return Figure("subgroups", "Effects by subgroup", alt, fig)


def sample_flow_figure(flow: pd.DataFrame, synthetic: bool) -> Figure:
    """Horizontal bars: extract → eligible → visited → matched → analysed, with counts."""
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, 3.0))
        f = flow.reset_index(drop=True)
        y = np.arange(len(f))[::-1]
        vals = pd.to_numeric(f["students"], errors="coerce").astype(float)
        colours = [SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(len(f))]
        ax.barh(y, vals.fillna(np.nan), color=colours, height=0.6, log=True)
        blended = matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData)
        for yy, v in zip(y, vals, strict=True):
            if pd.isna(v):
                ax.text(
                    0.01,
                    yy,
                    "suppressed",
                    va="center",
                    fontsize=8.5,
                    transform=blended,
                    in_layout=False,
                )
            else:
                ax.text(v, yy, f"  {int(v):,}", va="center", fontsize=8.5, in_layout=False)
        ax.set_yticks(y, [STEP_LABELS.get(s, s) for s in f["step"]])
        ax.set_xlabel("Students (log scale)")
        ax.grid(axis="y", visible=False)
        ax.set_xlim(right=float(np.nanmax(vals)) * 6 if vals.notna().any() else 10)
        _finish(fig, synthetic)
    parts = ", ".join(
        f"{STEP_LABELS.get(s, s).lower()} {'suppressed' if pd.isna(v) else f'{int(v):,}'}"
        for s, v in zip(f["step"], vals, strict=True)
    )
    alt = f"Bar chart of the number of students at each step of the analysis sample: {parts}."
    return Figure("sample_flow", "From the extract to the analysis sample", alt, fig)


def chronic_by_month_figure(cm: pd.DataFrame, synthetic: bool) -> Figure:
    """Share of students chronically absent by month, program vs other districts."""
    d = cm.copy()
    d["share"] = 100 * pd.to_numeric(d["n_chronic"]) / pd.to_numeric(d["n_students"])
    months = sorted(d["month"].unique())
    pos = {m: i for i, m in enumerate(months)}
    with plt.rc_context(_RC):
        fig, ax = _new()
        for leap, colour, fmt, label in (
            (True, OKABE_ITO["blue"], "-o", "LEAP districts"),
            (False, OKABE_ITO["orange"], "--s", "Other districts"),
        ):
            s = d[d["leap_district"].astype(str).str.lower() == str(leap).lower()]
            s = s.set_index("month")["share"].reindex(months)
            ax.plot(
                [pos[m] for m in months], s.to_numpy(float), fmt, color=colour, ms=3.5, label=label
            )
        step = max(1, len(months) // 10)
        ax.set_xticks(range(0, len(months), step), months[::step], rotation=45, ha="right")
        ax.set_xlabel("Month")
        ax.set_ylabel("Students chronically absent in the month (%)")
        ax.legend()
        _finish(fig, synthetic)
    alt = (
        f"Line chart of the share of students chronically absent (attendance at or below 90%) "
        f"in each month from {months[0]} to {months[-1]}, for LEAP districts and other "
        f"districts. The LEAP-district share ranges from "
        f"{_fmt(d.loc[d['leap_district'].astype(str).str.lower() == 'true', 'share'].min())}% to "
        f"{_fmt(d.loc[d['leap_district'].astype(str).str.lower() == 'true', 'share'].max())}%; "
        f"months with too few students are not shown."
    )
    return Figure("chronic_by_month", "Chronic absence by month, for context", alt, fig)


# --------------------------------------------------------------------------- saving


def save_figures(
    figs: list[Figure], outdir: str | os.PathLike, dpi: int = 300, synthetic: bool = False
) -> list[dict]:
    """Write each figure as ``<id>.png`` (``dpi``) and ``<id>.svg``; return the manifest.

    ``outdir`` should be a fresh directory (the stage builds it with
    :func:`pipeline.io.atomic_dir`).  Files carry no creation date, so the same inputs
    give the same bytes.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for f in figs:
        png, svg = outdir / f"{f.id}.png", outdir / f"{f.id}.svg"
        with plt.rc_context(_RC):
            f.fig.savefig(png, dpi=dpi, metadata={"Software": None})
            f.fig.savefig(svg, metadata={"Date": None, "Creator": None})
        plt.close(f.fig)
        manifest.append(
            {
                "id": f.id,
                "title": f.title,
                "alt": f.alt,
                "png": png.name,
                "svg": svg.name,
                "dpi": dpi,
                "sources": f.sources,
                "synthetic_watermark": synthetic,
                "png_sha256": hashlib.sha256(png.read_bytes()).hexdigest(),
            }
        )
    return manifest
