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
import matplotlib.text  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline import labels  # noqa: E402

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

# labels live in the one registry (pipeline/labels.py); these names are kept for callers
ESTIMATOR_LABELS = labels.ESTIMATORS
SUBGROUP_LABELS = labels.SUBGROUPS
STEP_LABELS = labels.STEPS
MIN_FONT_PT = 8.0  # smallest text in a figure at its drawn size (PDF check: tests)

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
    """Display name of an estimator (from :mod:`pipeline.labels`)."""
    return labels.estimator(name)


@dataclass
class Figure:
    """A drawn figure with its identity and alt text."""

    id: str
    title: str
    alt: str
    fig: plt.Figure
    sources: list[str] = field(default_factory=list)
    data: pd.DataFrame | None = None  # the numbers drawn, written beside the figure as CSV


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
        gid="watermark",
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


MAIN_COMPARATORS = ("matched_stacked", "imputation", "callaway_santanna_dr", "twfe")
MARKERS = "osD^v<>P"


def pick_comparators(names: list[str], primary: str, k: int = 2) -> list[str]:
    """At most ``k`` comparators for the main event-study figure, in the preferred order.

    Preferred: the matched differences design (the primary's bracketing partner), then
    the imputation and Callaway–Sant'Anna estimators; the naive before–after change is
    never a headline comparator (it has its own figure).
    """
    pool = [n for n in names if n not in (primary, "naive_before_after")]
    ranked = [n for n in MAIN_COMPARATORS if n in pool] + sorted(
        n for n in pool if n not in MAIN_COMPARATORS
    )
    return ranked[:k]


def _draw_event_series(ax, d, primary: bool, colour, marker, off, label, span=None):
    d = d.sort_values("event_time")
    if span is not None:  # missing event times (reference, suppressed) break the line
        d = d.set_index("event_time").reindex(span).rename_axis("event_time").reset_index()
    x = d["event_time"].to_numpy(float)
    y = d["estimate"].to_numpy(float)
    lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
    if primary:
        ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0,
                        label="95% confidence band (primary)")
        ax.plot(x, y, "-", marker=marker, color=colour, lw=2, ms=5, label=label, zorder=5)
    else:
        ax.errorbar(x + off, y, yerr=[y - lo, hi - y], fmt=marker, ms=5, lw=1, capsize=0,
                    color=colour, ls="none", mfc="white", mew=1.3, label=label, zorder=4)


def _event_axes(ax, es, primary, window, outcome_label):
    ax.axhline(0, color="black", lw=0.9)
    ax.axvline(-0.5, color="#555555", lw=0.9, ls="--")
    refs = reference_periods(es, primary)
    ylim = ax.get_ylim()
    if refs:
        lo_r, hi_r = min(refs), max(refs)
        ax.axvspan(lo_r - 0.4, hi_r + 0.4, color="#999999", alpha=0.18, lw=0)
        lab = f"{lo_r:d}" if lo_r == hi_r else f"{lo_r:d} to {hi_r:d}"
        ax.text((lo_r + hi_r) / 2, ylim[0], f"reference\n({lab})".replace("-", "−"),
                ha="center", va="bottom", fontsize=MIN_FONT_PT)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.text(-0.4, ylim[1], " first visit →", ha="left", va="top", fontsize=MIN_FONT_PT)
    ax.axvspan(window[0] - 0.5, window[1] + 0.5, color=OKABE_ITO["sky_blue"], alpha=0.08, lw=0)
    ax.set_xlabel("School months since the first completed home visit")
    ax.set_ylabel(outcome_label)
    return refs


def event_study_figure(
    es: pd.DataFrame,
    primary: str,
    window: tuple[int, int],
    synthetic: bool,
    *,
    outcome_label: str = "Effect on monthly attendance rate (percentage points)",
    fig_id: str = "event_study",
    title: str = "Effect of the first home visit by school month (event study)",
    comparators: list[str] | None = None,
) -> Figure:
    """Event study: the primary estimate with its 95% band and at most two comparators.

    Each series has its own Okabe–Ito colour and marker; the other estimators are in
    :func:`event_study_appendix_figure`.  The zero line, the first-visit month and the
    reference period are marked; suppressed event times are gaps.
    """
    names_all = sorted(es["estimator"].unique())
    comps = (pick_comparators(names_all, primary) if comparators is None
             else [c for c in comparators if c in names_all][:2])
    names = [primary, *comps]
    colours = [OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"]]
    span = range(int(es["event_time"].min()), int(es["event_time"].max()) + 1)
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, 4.6))
        for j, name in enumerate(names):
            d = es[es["estimator"] == name]
            _draw_event_series(ax, d, j == 0, colours[j], MARKERS[j], (-0.18, 0.18)[j - 1]
                               if j else 0, label_estimator(name), span if j == 0 else None)
        refs = _event_axes(ax, es, primary, window, outcome_label)
        fig.legend(fontsize=MIN_FONT_PT, loc="outside lower center", ncols=2)
        _finish(fig, synthetic)
    p = es[es["estimator"] == primary].sort_values("event_time")
    post = p[p["event_time"].between(window[0], window[1])]
    pre = p[p["event_time"] < (min(refs) if refs else 0)]
    alt = (
        f"Chart of estimated effects by school month from {int(es['event_time'].min())} to "
        f"{int(es['event_time'].max())} around the first home visit: the primary design "
        f"({label_estimator(primary)}, line with a shaded 95% confidence band)"
        + (f" and {' and '.join(label_estimator(n) for n in comps)} (markers with 95% "
           "intervals)" if comps else "")
        + ". "
        + (f"School months {', '.join(str(r) for r in refs)} are the reference period. "
           if refs else "")
        + f"Before the visit the primary estimates range from "
        f"{_fmt(pre['estimate'].min())} to {_fmt(pre['estimate'].max())}; in months "
        f"{window[0]} to {window[1]} after it from {_fmt(post['estimate'].min())} to "
        f"{_fmt(post['estimate'].max())} points. Suppressed months are left out."
    ).replace("-", "−")
    data = es[es["estimator"].isin(names)].copy()
    data["estimator"] = data["estimator"].map(label_estimator)
    return Figure(fig_id, title, alt, fig, data=data)


def event_study_appendix_figure(
    es: pd.DataFrame, primary: str, window: tuple[int, int], synthetic: bool
) -> Figure:
    """Every other estimator, one small panel each, against the primary in grey."""
    others = sorted(n for n in es["estimator"].unique() if n != primary)
    ncol = 2
    nrow = max(1, -(-len(others) // ncol))
    p = es[es["estimator"] == primary].sort_values("event_time")
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(nrow, ncol, figsize=(7.0, 1.9 * nrow + 0.6), sharex=True,
                                 sharey=True, layout="constrained", squeeze=False)
        for ax, name in zip(axes.flat, others, strict=False):
            ax.plot(p["event_time"], p["estimate"], "-", color="#999999", lw=1.5,
                    label=label_estimator(primary))
            d = es[es["estimator"] == name].sort_values("event_time")
            y = d["estimate"].to_numpy(float)
            ax.errorbar(d["event_time"], y, yerr=[y - d["ci_low"], d["ci_high"] - y], fmt="o",
                        ms=3.5, lw=0.9, color=OKABE_ITO["vermillion"], capsize=0)
            ax.axhline(0, color="black", lw=0.8)
            ax.axvline(-0.5, color="#555555", lw=0.8, ls="--")
            ax.set_title(label_estimator(name), fontsize=9, loc="left")
        axes.flat[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        for ax in list(axes.flat)[len(others):]:
            ax.set_visible(False)
        fig.supxlabel("School months since the first completed home visit", fontsize=9)
        fig.supylabel("Effect (percentage points)", fontsize=9)
        _finish(fig, synthetic)
    alt = (
        f"{len(others)} small charts, one per other estimator ("
        + ", ".join(label_estimator(n) for n in others)
        + "), each showing its effects by school month with 95% intervals as points, over "
        "the primary design's estimates as a grey line."
    )
    data = es.copy()
    data["estimator"] = data["estimator"].map(label_estimator)
    return Figure("event_study_all", "Every estimator's event study, against the primary",
                  alt, fig, data=data)


def naive_figure(
    em: pd.DataFrame, estimates: pd.DataFrame, window: tuple[int, int], synthetic: bool,
    truth: float | None = None,
) -> Figure:
    """Why a naive before–after comparison misleads: the dip, the recovery, the estimates.

    Left: mean attendance of visited students and their matched comparison students by
    school month (the dip before the visit and the recovery after it).  Right: the
    window-average estimates (``estimates``: ``label, estimate, ci_low, ci_high``) of
    the naive before–after change, two-way fixed effects and the primary design, and
    the true effect when the extract is synthetic.
    """
    with plt.rc_context(_RC):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.0, 3.8), layout="constrained",
                                     width_ratios=[1.25, 1])
        for role, colour, fmt in (("treated", OKABE_ITO["blue"], "-o"),
                                  ("comparison", OKABE_ITO["vermillion"], "--s")):
            d = em[em["role"] == role].sort_values("event_time")
            a1.plot(d["event_time"], d["mean_rate"], fmt, color=colour, ms=3.5, lw=1.6,
                    label=labels.ROLES[role])
        a1.axvline(-0.5, color="#555555", lw=0.9, ls="--")
        a1.set_xlabel("School months since the first visit")
        a1.set_ylabel("Mean attendance rate (%)")

        y = np.arange(len(estimates))[::-1]
        e = estimates["estimate"].to_numpy(float)
        a2.errorbar(e, y, xerr=[e - estimates["ci_low"].to_numpy(float),
                                estimates["ci_high"].to_numpy(float) - e],
                    fmt="s", color=OKABE_ITO["blue"], ms=5, capsize=0)
        for yy, v in zip(y, e, strict=True):
            a2.annotate(_fmt(v), (v, yy), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=MIN_FONT_PT)
        if truth is not None:
            a2.axvline(truth, color=OKABE_ITO["bluish_green"], lw=1.2, ls=":",
                       label="True effect (synthetic)")

        a2.axvline(0, color="black", lw=0.8)
        a2.set_yticks(y, [textwrap_label(t, 16) for t in estimates["label"]])
        a2.set_ylim(-0.6, len(estimates) - 0.3)
        a2.set_xlabel(f"Average effect, months {window[0]}–{window[1]} (points)")
        a2.grid(axis="y", visible=False)
        handles = a1.get_legend_handles_labels()[0] + a2.get_legend_handles_labels()[0]
        fig.legend(handles=handles, fontsize=MIN_FONT_PT, loc="outside lower center", ncols=3)
        _finish(fig, synthetic)
    t = em[em["role"] == "treated"].set_index("event_time")["mean_rate"]
    alt = (
        "Two panels. Left: mean attendance of visited students fell to "
        f"{_fmt(t.get(-1, np.nan))}% in the month before their first visit and recovered "
        "afterwards, as did that of matched comparison students who had the same dip. Right: "
        + "; ".join(f"{r['label']} {_fmt(r['estimate'])} points" for _, r in estimates.iterrows())
        + (f"; the true effect {_fmt(truth)} points" if truth is not None else "")
        + ". The naive change counts the recovery as an effect."
    )
    return Figure("naive", "Why a naive before–after comparison misleads", alt, fig,
                  data=estimates.copy())


def textwrap_label(s: str, width: int) -> str:
    """Wrap a tick label on spaces."""
    import textwrap

    return "\n".join(textwrap.wrap(str(s), width)) or str(s)


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
    data = em.assign(role=em["role"].map(labels.ROLES))
    return Figure("event_means", "Attendance around the first visit: visited and matched "
                  "comparison students", alt, fig, data=data)


def love_plot(
    bal: pd.DataFrame,
    synthetic: bool,
    threshold: float = 0.1,
    *,
    equivalence: float = 0.05,
    adjustment: float = 0.25,
    max_rows: int = 20,
) -> Figure:
    """Standardised mean differences before and after matching (at most ``max_rows``).

    Covariates are sorted by their imbalance before matching (largest at the top) and
    labelled from :mod:`pipeline.labels`; the What Works Clearinghouse bands are shaded
    (up to ``equivalence``: satisfies equivalence; up to ``adjustment``: needs
    statistical adjustment).  When there are more covariates, the ``max_rows`` most
    imbalanced before matching are drawn and the alt text says how many are left out.
    """
    b = bal.assign(_b=bal["smd_before"].abs()).sort_values("_b", ascending=False)
    shown = b.head(max_rows).iloc[::-1].reset_index(drop=True)
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, min(6.0, 0.22 * len(shown) + 1.3)))
        y = np.arange(len(shown))
        ax.axvspan(0, equivalence, color=OKABE_ITO["bluish_green"], alpha=0.15, lw=0,
                   label=f"Equivalent (≤ {equivalence:g})")
        ax.axvspan(equivalence, adjustment, color=OKABE_ITO["yellow"], alpha=0.22, lw=0,
                   label=f"Needs adjustment (≤ {adjustment:g})")
        ax.scatter(shown["smd_before"].abs(), y, marker="o", facecolors="none",
                   edgecolors=OKABE_ITO["vermillion"], s=30, label="Before matching")
        ax.scatter(shown["smd_after"].abs(), y, marker="D", color=OKABE_ITO["blue"], s=22,
                   label="After matching")
        ax.axvline(threshold, color="#555555", lw=0.9, ls="--")
        ax.set_yticks(y, [labels.variable(c) for c in shown["covariate"]], fontsize=MIN_FONT_PT)
        ax.set_ylim(-0.7, len(shown) - 0.3)
        ax.set_xlabel("Absolute standardised mean difference (visited − comparison)")
        ax.legend(loc="lower right", fontsize=MIN_FONT_PT)
        _finish(fig, synthetic)
    left = len(b) - len(shown)
    alt = (
        f"Dot plot of absolute standardised mean differences before and after matching for "
        f"the {len(shown)} characteristics most different before matching"
        + (f" ({left} more are in the balance table)" if left else "")
        + f". Before matching the largest is {_fmt(bal['smd_before'].abs().max(), 2)}; after "
        f"matching the largest is {_fmt(bal['smd_after'].abs().max(), 2)}. Shaded bands mark "
        f"differences up to {equivalence:g} and up to {adjustment:g}; dashed line at "
        f"{threshold:g}."
    )
    data = shown.iloc[::-1][["covariate", "smd_before", "smd_after"]].copy()
    data["covariate"] = data["covariate"].map(labels.variable)
    return Figure("love_plot", "Covariate balance before and after matching", alt, fig,
                  data=data.reset_index(drop=True))


def forest_plot(sg: pd.DataFrame, att: float, synthetic: bool) -> Figure:
    """Subgroup window-average effects with 95% intervals (suppressed levels labelled)."""
    rows = []
    for sub, d in sg.groupby("subgroup", sort=False):
        rows.append((labels.subgroup(sub), None, None, None, True))
        for _, r in d.iterrows():
            rows.append(
                (
                    "   " + labels.level(r["level"]),
                    r["estimate"],
                    r["ci_low"],
                    r["ci_high"],
                    False,
                )
            )
    with plt.rc_context(_RC):
        fig, ax = _new((7.0, min(8.2, 0.24 * len(rows) + 1.2)))  # ≤ 8.4 in printed
        ys = np.arange(len(rows))[::-1]
        ticks = []
        for y, (lab, e, lo, hi, head) in zip(ys, rows, strict=True):
            if head:
                ticks.append(lab)
                continue
            if pd.isna(e):
                ticks.append(lab + "  (suppressed)")
                continue
            ticks.append(lab)
            ax.plot([lo, hi], [y, y], color=OKABE_ITO["blue"], lw=1.4)
            ax.plot(e, y, "s", color=OKABE_ITO["blue"], ms=4.5)
        ax.set_yticks(ys, ticks, fontsize=MIN_FONT_PT)
        for t, (_, _, _, _, head) in zip(ax.get_yticklabels(), rows, strict=True):
            if head:
                t.set_fontweight("bold")
        ax.axvline(0, color="black", lw=0.9)
        if pd.notna(att):
            ax.axvline(att, color=OKABE_ITO["vermillion"], lw=1, ls="--", label="Overall estimate")
            ax.legend(loc="lower right", fontsize=MIN_FONT_PT)
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
    data = sg.assign(subgroup=sg["subgroup"].map(labels.subgroup),
                     level=sg["level"].map(labels.level))
    return Figure("subgroups", "Effects by subgroup", alt, fig, data=data)


def sample_flow_figure(
    flow: pd.DataFrame, synthetic: bool, exclusions: dict[str, list[str]] | None = None
) -> Figure:
    """A CONSORT-style diagram: one box per step with its count, exclusions to the side.

    ``exclusions`` maps a step to the lines of text (reasons with counts) shown in the
    side box of the students lost on the way to it; by default the side box gives the
    number lost.
    """
    f = flow.reset_index(drop=True)
    vals = pd.to_numeric(f["students"], errors="coerce")
    exclusions = exclusions or {}
    n = len(f)
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(7.0, 1.05 * n + 0.3))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, 10)
        ax.set_ylim(0, n)
        ax.axis("off")
        box = {"boxstyle": "round,pad=0.45", "fc": "#F2F7FB", "ec": OKABE_ITO["blue"], "lw": 1.2}
        side = {"boxstyle": "round,pad=0.4", "fc": "#FFFFFF", "ec": "#888888", "lw": 0.9}
        for i, (step, v) in enumerate(zip(f["step"], vals, strict=True)):
            y = n - i - 0.45
            count = "suppressed" if pd.isna(v) else f"{int(v):,}"
            ax.text(3.0, y, f"{labels.step(step)}\n{count} students", ha="center",
                    va="center", fontsize=9.5, bbox=box)
            if i:
                ax.annotate("", xy=(3.0, y + 0.3), xytext=(3.0, y + 0.7),
                            arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1})
                lost = vals.iloc[i - 1] - v
                lines = exclusions.get(step) or []
                head = ("Left out: suppressed" if pd.isna(lost) else f"Left out: {int(lost):,}")
                ax.text(6.0, y + 0.5, "\n".join([head, *lines]), ha="left", va="center",
                        fontsize=MIN_FONT_PT, bbox=side)
                ax.plot([3.0, 5.85], [y + 0.5, y + 0.5], color="#888888", lw=0.8)
        _finish(fig, synthetic)
    parts = ", ".join(
        f"{labels.step(s).lower()}: {'suppressed' if pd.isna(v) else f'{int(v):,}'}"
        for s, v in zip(f["step"], vals, strict=True)
    )
    alt = (f"Flow diagram of the analysis sample, one box per step with the number of "
           f"students ({parts}), and beside each arrow the number left out and why.")
    data = pd.DataFrame({"step": [labels.step(s) for s in f["step"]], "students": vals})
    return Figure("sample_flow", "From the extract to the analysis sample", alt, fig, data=data)


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
    data = d.assign(districts=np.where(d["leap_district"].astype(str).str.lower() == "true",
                                       "LEAP districts", "Other districts"))
    data = data[["month", "districts", "n_students", "n_chronic", "share"]]
    return Figure("chronic_by_month", "Chronic absence by month, for context", alt, fig,
                  data=data)


# --------------------------------------------------------------------------- saving


def min_font_size(fig: plt.Figure) -> float:
    """The smallest font size (pt) of any visible text in ``fig`` but the watermark."""
    fig.canvas.draw()
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_gid() != "watermark"
    ]
    return float(min(sizes)) if sizes else float("nan")


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
        font = min_font_size(f.fig)
        plt.close(f.fig)
        data_csv = None
        if f.data is not None:
            data_csv = outdir / f"{f.id}.csv"
            f.data.to_csv(data_csv, index=False, lineterminator="\n")
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
                "data_csv": data_csv.name if data_csv else None,
                "width_in": float(f.fig.get_size_inches()[0]),
                "min_font_pt": font,
            }
        )
    return manifest
