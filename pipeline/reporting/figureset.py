"""The report's figures, each drawn from published (disclosure-controlled) tables only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from pipeline import figures
from pipeline.disclosure import Published
from pipeline.reporting.context import _naive_estimates, flow_exclusions
from pipeline.reporting.counts import as_dict, sample_sizes
from pipeline.reporting.inputs import Inputs, validation_source

SOURCES = {
    "event_study": ["event_study"],
    "event_study_all": ["event_study"],
    "event_means": ["event_means"],
    "event_study_chronic": ["event_study_chronic"],
    "love_plot": ["balance"],
    "subgroups": ["subgroups", "main_effects"],
    "sample_flow": ["sample_flow", "match_reasons"],
    "chronic_by_month": ["chronic_by_month"],
    "naive": ["event_means", "main_effects"],
}


def make_figures(
    inputs: Inputs,
    pubs: dict[str, Published],
    facts: Mapping[str, Any],
    draw_validation: Callable[[pd.DataFrame], Any] | None = None,
) -> list[figures.Figure]:
    """Every figure of the report, with its sources and the data it draws.

    ``draw_validation`` draws the simulation study's figure from ``validation.csv``
    (the validate stage's own drawing, passed in by the report stage).
    """
    m, syn = inputs.metrics, inputs.synthetic
    w = tuple(m["att_window"])
    t = {k: p.table for k, p in pubs.items()}
    es, es_c = t["event_study"], t["event_study_chronic"]
    primary = m["primary_estimator"]
    sizes = as_dict(sample_sizes(t["sample_flow"], m))
    truth = (m.get("truth") or {}).get("att_window") if syn else None
    figs = [
        figures.event_study_figure(es, primary, w, syn),
        figures.naive_figure(t["event_means"], _naive_estimates(t["main_effects"], primary), w,
                             syn, truth=truth),
        figures.event_means_figure(t["event_means"], syn),
        figures.event_study_figure(
            es_c[es_c["estimator"] == primary], primary, w, syn,
            outcome_label="Effect on chronic absence in the month (percentage points)",
            fig_id="event_study_chronic",
            title="Effect on the monthly chronic-absence flag (event study, primary design)",
        ),
        figures.love_plot(t["balance"], syn, float(facts["balance_threshold"]),
                          equivalence=float(facts["wwc_equivalence"]),
                          adjustment=float(facts["wwc_adjustment_limit"])),
        figures.forest_plot(t["subgroups"], float(t["main_effects"].loc[0, "estimate"]), syn),
        figures.sample_flow_figure(t["sample_flow"], syn,
                                   flow_exclusions(sizes, t["match_reasons"])),
        figures.chronic_by_month_figure(
            t["chronic_by_month"][["month", "leap_district", "n_students", "n_chronic"]], syn
        ),
        figures.event_study_appendix_figure(es, primary, w, syn),
    ]
    for f in figs:
        f.sources = [f"tables/published/{s}.csv" for s in SOURCES[f.id]]
    figs += cost_figures(inputs)
    figs += sensitivity_figures(inputs)
    v = inputs.tables.get("validation")
    if draw_validation is not None and v is not None and len(v):
        fig = draw_validation(v)
        figures._finish(fig, True)  # simulated extracts, always synthetic
        n = int(v["n_reps"].max())
        figs.append(
            figures.Figure(
                id="validation",
                title="Simulation study: bias and interval coverage by estimator and scenario",
                alt=(
                    f"Two panels, one row per estimator, one marker per scenario, from {n} "
                    "simulated extracts per scenario. Left: bias of the average effect over "
                    "school months 1 to 6 in attendance-rate points, with a shaded band from "
                    "−0.3 to 0.3. Right: the share of 95% intervals holding the true effect, "
                    "with a shaded band from 93% to 97%. Values are in the simulation table."
                ),
                fig=fig,
                sources=[validation_source(inputs)],
                data=v,
            )
        )
    return figs


def cost_figures(inputs: Inputs) -> list[figures.Figure]:
    """The costs stage's figure, when its tables are present (no student counts)."""
    sens = inputs.tables.get("cost_sensitivity")
    if sens is None or inputs.tables.get("cost_effectiveness") is None:
        return []
    from pipeline.analysis.costs_report import cost_figure

    fig = cost_figure(sens)
    figures._finish(fig, inputs.synthetic)
    return [figures.Figure(
        id="costs",
        title="Cost per additional school day and per student-month of chronic absence averted",
        alt=("Two panels: the cost per additional school day attended (left) and per "
             "student-month of chronic absence averted (right), with their intervals, against the "
             "program's cost relative to the assumed cost. Values are in the cost tables."),
        fig=fig,
        sources=["tables/cost_sensitivity.csv"],
        data=sens,
    )]


def sensitivity_figures(inputs: Inputs) -> list[figures.Figure]:
    """The contour plot of the omitted-variable bounds and the HonestDiD plot, when their
    tables are present and were computed (statistics over the whole matched sample, no
    counts)."""
    from pipeline import labels
    from pipeline.reporting.sensitivity import _ok
    from pipeline.sensitivity.plots import honest_figure, ovb_contour_figure

    t, syn, out = inputs.tables, inputs.synthetic, []
    o, b, c = (t.get(k) for k in ("sensitivity_ovb", "sensitivity_ovb_bounds",
                                  "sensitivity_ovb_contour"))
    if _ok(o) and _ok(c):
        b = b if _ok(b) else pd.DataFrame(columns=["label", "r2dz_x", "r2yz_dx",
                                                   "adjusted_estimate"])
        b = b.assign(label=[f"{k:g}× {labels.variable(v).lower()}"
                            for k, v in zip(b.get("kd", []), b.get("benchmark", []),
                                            strict=True)])
        f = ovb_contour_figure(c, o.iloc[0], b, syn)
        f.sources = [f"tables/{n}.csv" for n in ("sensitivity_ovb_contour", "sensitivity_ovb",
                                                  "sensitivity_ovb_bounds")]
        f.data = c
        out.append(f)
    h = t.get("sensitivity_honestdid")
    if _ok(h):
        body = h[~h["method"].astype(str).str.startswith("breakdown")]
        f = honest_figure(body, syn)
        f.sources, f.data = ["tables/sensitivity_honestdid.csv"], body
        out.append(f)
    return out
