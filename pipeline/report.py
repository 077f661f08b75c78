"""The ``report`` stage: disclosure-controlled tables, figures, HTML and PDF report.

Run as ``python -m pipeline.report`` from the project root.  Reads the ``report`` and
``disclosure`` sections of ``params.yaml`` and the ``estimate`` stage's outputs under
``reports/`` (``metrics.json`` and ``reports/tables/*.csv``), and writes, atomically:

* ``reports/tables/published/`` — every published table after disclosure control;
* ``reports/figures/`` — every figure as PNG and SVG, plus ``manifest.json``;
* ``reports/report.html`` — the self-contained report (inline CSS and images);
* ``reports/report.pdf`` — the same report printed by headless Chromium.

Every published table and every figure input passes
:func:`pipeline.disclosure.assert_published_safe` or the stage fails.  Every number
in the report text comes from these inputs (or, for program facts, from the cited
``templates/report_facts.yaml``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml

from pipeline import config, figures, runner
from pipeline import io as pio
from pipeline.analysis.schemas import EST_COLUMNS as EST_COLS
from pipeline.analysis.schemas import FLOW_STEPS, required_columns
from pipeline.disclosure import (
    DisclosureError,
    EstimateRule,
    Margin,
    Published,
    RateRule,
    Rules,
    TableSpec,
    group_margins,
    row_margins,
)
from pipeline.disclosure_ledger import publish_tables
from pipeline.settings import stage_settings

TEMPLATES = Path(__file__).parent / "templates"

INPUT_COLUMNS: dict[str, list[str]] = {
    "event_study": required_columns("event_study"),
    "event_study_chronic": required_columns("event_study_chronic"),
    "subgroups": required_columns("subgroups"),
    "robustness": required_columns("robustness"),
    "event_means": required_columns("event_means"),
    "sample_flow": required_columns("sample_flow"),
    "chronic_by_month": required_columns("chronic_by_month"),
    "balance": ["covariate", "smd_before", "smd_after", "variance_ratio_after"],
    "data_quality": ["table", "reason", "rows"],
    "data_quality_panel": ["table", "reason", "rows"],
    "match_summary": [],  # either format, see normalise_match_summary
}
SYNTHETIC_ONLY = {"truth_comparison": required_columns("truth_comparison")}
MATCH_SUMMARY_LONG = ["dimension", "level", "treated", "matched", "unmatched"]
# the match stage's cross-tabulation: one row per district × grade band × tier (+ "ALL")
MATCH_SUMMARY_CROSSTAB = {
    "district": "district_code",
    "grade_band": "grade_band",
    "tier": "prior_year_tier",
}
OPTIONAL = {"validation": []}
#: Tables of the estimands beside the headline (pipeline/estimands.py), read when present.
ESTIMAND_INPUTS = ("estimands", "attrition", "censoring_diagnostics", "chronic_yearly")
METRIC_KEYS = [
    "primary_estimator",
    "att",
    "att_window",
    "n_treated",
    "n_comparison",
    "max_abs_smd_after",
    "synthetic",
    "outcome",
    "pretrend_test",
    "naive",
    "twfe",
    "att_chronic",
]


class ReportInputError(ValueError):
    """A missing or malformed input of the report stage."""


@dataclass
class Inputs:
    """The estimate stage's outputs, as read."""

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return bool(self.metrics["synthetic"])


# --------------------------------------------------------------------------- reading


def _read_csv(path: Path, cols: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise ReportInputError(f"{path}: required input file is missing")
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except Exception as exc:  # pragma: no cover - pandas' own message is kept
        raise ReportInputError(f"{path}: cannot be read as CSV ({exc})") from exc
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing required column(s) {missing}")
    return df


def _check_numeric(name: str, path: Path, df: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            conv = pd.to_numeric(df[c], errors="coerce")
            bad = df[c].notna() & conv.isna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise ReportInputError(
                    f"{path}: column '{c}' must be numeric; row {i + 2} holds {df[c].iloc[i]!r}"
                )
            df[c] = conv


def load_inputs(
    reports_dir: str | os.PathLike, validation_table: str | os.PathLike | None = None
) -> Inputs:
    """Read and validate ``metrics.json`` and the input tables under ``reports_dir``.

    ``validation_table`` is the simulation study's table (``report.validation_table``:
    the committed study, ``benchmarks/results/validation_n100/validation.csv``); by
    default ``tables/validation.csv`` under ``reports_dir``.  Optional: without it the
    report has no simulation section.

    Raises
    ------
    ReportInputError
        Naming the file and the key or column that is missing or malformed.
    """
    rep = Path(reports_dir)
    mpath = rep / "metrics.json"
    if not mpath.exists():
        raise ReportInputError(f"{mpath}: required input file is missing")
    metrics = json.loads(mpath.read_text(encoding="utf-8"))
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing:
        raise ReportInputError(f"{mpath}: missing key(s) {missing}")
    for k in ("att", "naive", "twfe", "att_chronic"):
        lack = [c for c in EST_COLS if c not in (metrics[k] or {})]
        if lack:
            raise ReportInputError(f"{mpath}: '{k}' lacks {lack}")
    for k in ("statistic", "df", "p_value"):
        if k not in (metrics["pretrend_test"] or {}):
            raise ReportInputError(f"{mpath}: 'pretrend_test' lacks '{k}'")
    if not isinstance(metrics["synthetic"], bool):
        raise ReportInputError(f"{mpath}: 'synthetic' must be true or false")
    w = metrics["att_window"]
    if not (isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) for x in w)):
        raise ReportInputError(f"{mpath}: 'att_window' must be a list of two integers")
    if metrics["synthetic"] and "att_window" not in (metrics.get("truth") or {}):
        raise ReportInputError(f"{mpath}: synthetic run without 'truth.att_window'")

    tabdir = rep / "tables"
    wanted = dict(INPUT_COLUMNS)
    if metrics["synthetic"]:
        wanted.update(SYNTHETIC_ONLY)
    tables, paths = {}, {"metrics": mpath}
    for name, cols in wanted.items():
        p = tabdir / f"{name}.csv"
        tables[name], paths[name] = _read_csv(p, cols), p
    vpath = Path(validation_table) if validation_table is not None else tabdir / "validation.csv"
    if vpath.exists():
        tables["validation"], paths["validation"] = _read_csv(vpath, []), vpath
    for name in ESTIMAND_INPUTS:  # the estimands beside the headline, when computed
        p = tabdir / f"{name}.csv"
        if p.exists():
            tables[name], paths[name] = _read_csv(p, required_columns(name)), p

    numeric = {
        "event_study": ["event_time", *EST_COLS, "n_treated"],
        "event_study_chronic": ["event_time", *EST_COLS, "n_treated"],
        "subgroups": [*EST_COLS, "n_treated", "n_comparison"],
        "robustness": EST_COLS,
        "event_means": ["event_time", "mean_rate", "n_students"],
        "sample_flow": ["students"],
        "chronic_by_month": ["n_students", "n_chronic"],
        "balance": ["smd_before", "smd_after", "variance_ratio_after"],
        "data_quality": ["rows"],
        "data_quality_panel": ["rows"],
    }
    for name, cols in numeric.items():
        _check_numeric(name, paths[name], tables[name], cols)

    es = tables["event_study"]
    if metrics["primary_estimator"] not in set(es["estimator"]):
        raise ReportInputError(
            f"{paths['event_study']}: no rows for the primary estimator "
            f"'{metrics['primary_estimator']}' named in metrics.json"
        )
    steps = list(tables["sample_flow"]["step"])
    if steps != FLOW_STEPS:
        raise ReportInputError(
            f"{paths['sample_flow']}: column 'step' must list {FLOW_STEPS} in order, got {steps}"
        )
    tables["match_summary"] = normalise_match_summary(
        tables["match_summary"], paths["match_summary"]
    )
    if "truth_comparison" in tables:
        tables["truth_comparison"] = _complete_truth(tables["truth_comparison"])
    roles = set(tables["event_means"]["role"])
    if not roles <= {"treated", "comparison"}:
        raise ReportInputError(f"{paths['event_means']}: column 'role' has {sorted(roles)}")
    return Inputs(metrics=metrics, tables=tables, paths=paths)


def normalise_match_summary(
    df: pd.DataFrame, path: Path | str = "match_summary.csv"
) -> pd.DataFrame:
    """``dimension, level, treated, matched, unmatched`` from either accepted format.

    The long format is taken as is.  The match stage's cross-tabulation (one row per
    ``district_code`` × ``grade_band`` × ``prior_year_tier`` with ``n_treated`` and
    ``n_matched``, plus an ``ALL`` total row) is reduced to its one-way margins, which
    is what the report publishes (a three-way table of small cells would be mostly
    suppressed).
    """
    if set(MATCH_SUMMARY_LONG) <= set(df.columns):
        out = df[MATCH_SUMMARY_LONG].copy()
    elif set(MATCH_SUMMARY_CROSSTAB.values()) | {"n_treated", "n_matched"} <= set(df.columns):
        keys = list(MATCH_SUMMARY_CROSSTAB.values())
        body = df[~(df[keys].astype(str) == "ALL").all(axis=1)]
        parts = []
        for dim, col in MATCH_SUMMARY_CROSSTAB.items():
            g = body.groupby(body[col].astype(str), sort=True)[["n_treated", "n_matched"]].sum()
            parts.append(
                pd.DataFrame(
                    {
                        "dimension": dim,
                        "level": g.index.astype(str),
                        "treated": g["n_treated"].to_numpy(),
                        "matched": g["n_matched"].to_numpy(),
                    }
                )
            )
        out = pd.concat(parts, ignore_index=True)
        out["unmatched"] = out["treated"] - out["matched"]
    else:
        raise ReportInputError(
            f"{path}: expected columns {MATCH_SUMMARY_LONG} or the match stage's "
            f"{[*MATCH_SUMMARY_CROSSTAB.values(), 'n_treated', 'n_matched']}; "
            f"got {list(df.columns)}"
        )
    for c in ("treated", "matched", "unmatched"):
        v = pd.to_numeric(out[c], errors="coerce")
        if v.isna().any() or (v < 0).any():
            raise ReportInputError(f"{path}: column '{c}' must hold counts ≥ 0")
        out[c] = v.astype("int64")
    if (out["matched"] + out["unmatched"] != out["treated"]).any():
        raise ReportInputError(f"{path}: treated ≠ matched + unmatched in some rows")
    return out.reset_index(drop=True)


def _complete_truth(tc: pd.DataFrame) -> pd.DataFrame:
    """Add ``bias`` and ``covered`` when the truth table gives only estimates and CIs."""
    tc = tc.copy()
    if "bias" not in tc.columns:
        tc["bias"] = pd.to_numeric(tc["estimate"]) - pd.to_numeric(tc["truth"])
    if "covered" not in tc.columns and {"ci_low", "ci_high"} <= set(tc.columns):
        tc["covered"] = (tc["ci_low"] <= tc["truth"]) & (tc["truth"] <= tc["ci_high"])
    return tc


# --------------------------------------------------------------------------- publishing


def _est(*n_cols: str, value_cols: tuple[str, ...] = tuple(EST_COLS)) -> EstimateRule:
    return EstimateRule(value_cols=value_cols, n_cols=tuple(n_cols))


def _accounting_margins(df: pd.DataFrame, label: str) -> tuple[Margin, ...]:
    """Per table: ``read`` = Σ other reasons, where that identity holds in the data."""
    out = []
    for t, d in df.groupby("table", sort=False):
        read = d[d["reason"] == "read"]
        rest = d[d["reason"] != "read"]
        if len(read) == 1 and np.isclose(read["rows"].iloc[0], rest["rows"].sum()):
            pos = {ix: i for i, ix in enumerate(df.index)}
            out.append(
                Margin(
                    cells=tuple((pos[ix], "rows") for ix in rest.index),
                    total=(pos[read.index[0]], "rows"),
                    label=f"{label} table={t}",
                )
            )
    return tuple(out)


def published_sources(inputs: Inputs) -> dict[str, tuple[pd.DataFrame, TableSpec]]:
    """Every table to publish (as its unsuppressed source) with its disclosure spec."""
    m, t = inputs.metrics, inputs.tables
    n_t, n_c = int(m["n_treated"]), int(m["n_comparison"])
    out: dict[str, tuple[pd.DataFrame, TableSpec]] = {}

    flow = t["sample_flow"][["step", "students"]].copy()
    flow["excluded"] = (-flow["students"].diff()).astype("Float64")
    if "definition" in t["sample_flow"].columns:
        flow["definition"] = t["sample_flow"]["definition"].astype(str).to_numpy()
    flow_margins = tuple(
        Margin(
            cells=((i, "students"), (i, "excluded")),
            total=(i - 1, "students"),
            label=f"{flow.at[i - 1, 'step']}→{flow.at[i, 'step']}",
        )
        for i in range(1, len(flow))
    )
    # A step whose count is published elsewhere anyway (metrics.json's n_treated or
    # n_comparison, or a column total of match_summary) cannot be hidden here.
    ms0 = t["match_summary"]
    public = {n_t, n_c}
    for c in ("treated", "matched"):
        public |= {int(v) for v in ms0.groupby("dimension")[c].sum()}
    fixed = frozenset(
        (i, "students") for i, v in enumerate(flow["students"]) if pd.notna(v) and int(v) in public
    )
    out["sample_flow"] = (
        flow,
        TableSpec(
            "sample_flow", ("step",), ("students", "excluded"), margins=flow_margins, fixed=fixed
        ),
    )

    ms = t["match_summary"][MATCH_SUMMARY_LONG].copy()
    ms_m = row_margins(ms, "treated", ["matched", "unmatched"])
    for c in ("treated", "matched", "unmatched"):
        ms_m += group_margins(ms, ["dimension"], c, label=f"{c} by")
    out["match_summary"] = (
        ms,
        TableSpec(
            "match_summary",
            ("dimension", "level"),
            ("treated", "matched", "unmatched"),
            margins=ms_m,
        ),
    )

    bal = t["balance"].copy()
    bal["n_treated"], bal["n_comparison"] = n_t, n_c
    bal_vals = tuple(
        c
        for c in bal.columns
        if c not in ("covariate", "n_treated", "n_comparison", "wwc_class_after")
    )
    out["balance"] = (
        bal,
        TableSpec(
            "balance",
            ("covariate",),
            estimates=(_est("n_treated", "n_comparison", value_cols=bal_vals),),
        ),
    )

    w = m["att_window"]
    rows = []
    for key, label, outcome in (
        ("att", m["primary_estimator"], "attendance_rate"),
        ("naive", "naive_before_after", "attendance_rate"),
        ("twfe", "twfe", "attendance_rate"),
        ("att_chronic", m["primary_estimator"], "chronic_absence_pp"),
    ):
        d = m[key]
        rows.append(
            {
                "quantity": key,
                "estimator": label,
                "outcome": outcome,
                "window": f"{w[0]}..{w[1]}",
                **{c: float(d[c]) for c in EST_COLS},
                "n_treated": int(d.get("n_treated", n_t)),
                "n_comparison": int(d.get("n_comparison", n_c)),
            }
        )
    main = pd.DataFrame(rows)
    out["main_effects"] = (
        main,
        TableSpec(
            "main_effects",
            ("quantity",),
            ("n_treated", "n_comparison"),
            estimates=(_est("n_treated", "n_comparison"),),
        ),
    )

    for name in ("event_study", "event_study_chronic"):
        es = (
            t[name][INPUT_COLUMNS[name]]
            .sort_values(["estimator", "event_time"])
            .reset_index(drop=True)
        )
        out[name] = (
            es,
            TableSpec(
                name, ("estimator", "event_time"), ("n_treated",), estimates=(_est("n_treated"),)
            ),
        )

    em = t["event_means"][INPUT_COLUMNS["event_means"]].sort_values(["role", "event_time"])
    em = em.reset_index(drop=True)
    out["event_means"] = (
        em,
        TableSpec(
            "event_means",
            ("role", "event_time"),
            ("n_students",),
            estimates=(_est("n_students", value_cols=("mean_rate",)),),
        ),
    )

    sg = t["subgroups"][INPUT_COLUMNS["subgroups"]].reset_index(drop=True)
    sg_m = group_margins(sg, ["subgroup"], "n_treated", label="n_treated in") + group_margins(
        sg, ["subgroup"], "n_comparison", label="n_comparison in"
    )
    out["subgroups"] = (
        sg,
        TableSpec(
            "subgroups",
            ("subgroup", "level"),
            ("n_treated", "n_comparison"),
            estimates=(_est("n_treated", "n_comparison"),),
            margins=sg_m,
        ),
    )

    rb = t["robustness"].copy().reset_index(drop=True)
    if "n_treated" not in rb.columns:
        rb["n_treated"] = n_t
    out["robustness"] = (
        rb,
        TableSpec("robustness", ("check",), ("n_treated",), estimates=(_est("n_treated"),)),
    )

    cm = t["chronic_by_month"][INPUT_COLUMNS["chronic_by_month"]].copy()
    cm["leap_district"] = (
        cm["leap_district"]
        .astype(str)
        .str.lower()
        .map({"true": True, "false": False, "1": True, "0": False})
    )
    if cm["leap_district"].isna().any():
        raise ReportInputError(
            f"{inputs.paths['chronic_by_month']}: column 'leap_district' must be true/false"
        )
    cm = cm.sort_values(["leap_district", "month"], ascending=[False, True]).reset_index(drop=True)
    cm["pct_chronic"] = 100 * cm["n_chronic"] / cm["n_students"]
    out["chronic_by_month"] = (
        cm,
        TableSpec(
            "chronic_by_month",
            ("month", "leap_district"),
            ("n_students",),
            rates=(RateRule("n_chronic", "n_students", ("pct_chronic",)),),
        ),
    )

    for name in ("data_quality", "data_quality_panel"):
        dq = t[name][["table", "reason", "rows"]].reset_index(drop=True)
        out[name] = (
            dq,
            TableSpec(
                name,
                ("table", "reason"),
                ("rows",),
                suppress_zero=False,
                margins=_accounting_margins(dq, name),
            ),
        )

    out.update(_estimand_sources(t))
    if inputs.synthetic:
        tc = t["truth_comparison"].reset_index(drop=True)
        out["truth_comparison"] = (tc, TableSpec("truth_comparison", ("estimator", "quantity")))
    return out


def _estimand_sources(t: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, TableSpec]]:
    """The estimands, attrition, censoring-weight and yearly chronic-absence tables."""
    out: dict[str, tuple[pd.DataFrame, TableSpec]] = {}
    if "estimands" in t:
        e = t["estimands"][required_columns("estimands")].reset_index(drop=True)
        out["estimands"] = (e, TableSpec("estimands", ("estimand", "inference"), ("n",),
                                         estimates=(_est("n"),)))  # fmt: skip
    if "attrition" in t:
        a = t["attrition"][required_columns("attrition")].reset_index(drop=True)
        counts = ("retained_treated", "retained_comparison", "censored_comparison")
        rates = ("attrition_treated", "attrition_comparison", "overall_attrition",
                 "differential_attrition")  # fmt: skip
        out["attrition"] = (a, TableSpec(
            "attrition", ("event_time",), ("n_treated", "n_comparison", *counts),
            estimates=(_est("n_treated", "n_comparison", value_cols=rates),),
        ))  # fmt: skip
    if "censoring_diagnostics" in t:
        d = t["censoring_diagnostics"][required_columns("censoring_diagnostics")]
        d = d.reset_index(drop=True)
        out["censoring_diagnostics"] = (d, TableSpec(
            "censoring_diagnostics", ("event_time",),
            ("comparison_rows", "censored_rows", "censoring_events", "truncated_rows"),
            estimates=(_est("comparison_rows",
                            value_cols=("effective_sample_size", "max_weight")),),
        ))  # fmt: skip
    if "chronic_yearly" in t:
        c = t["chronic_yearly"][required_columns("chronic_yearly")].reset_index(drop=True)
        out["chronic_yearly"] = (c, TableSpec(
            "chronic_yearly", ("school_year", "leap_district"), ("n_students",),
            rates=(RateRule("n_chronic", "n_students", ("chronic_rate",)),),
        ))  # fmt: skip
    return out


def publish(inputs: Inputs, rules: Rules) -> dict[str, Published]:
    """Suppress every published table together (one disclosure ledger) and check each."""
    pubs = publish_tables(published_sources(inputs), rules, inputs.metrics)
    if pd.isna(pubs["main_effects"].table.loc[0, "estimate"]):
        raise DisclosureError(
            "main_effects: the primary estimate rests on fewer than "
            f"{rules.min_denominator} visited or comparison students; it cannot be published"
        )
    return pubs


# --------------------------------------------------------------------------- figures


def make_figures(inputs: Inputs, pubs: dict[str, Published]) -> list[figures.Figure]:
    """Draw every figure from published (disclosure-controlled) tables only."""
    m, syn = inputs.metrics, inputs.synthetic
    w = tuple(m["att_window"])
    es = pubs["event_study"].table
    es_c = pubs["event_study_chronic"].table
    figs = [
        figures.event_study_figure(es, m["primary_estimator"], w, syn),
        figures.event_means_figure(pubs["event_means"].table, syn),
        figures.event_study_figure(
            es_c[es_c["estimator"] == m["primary_estimator"]],
            m["primary_estimator"],
            w,
            syn,
            outcome_label="Effect on chronic absence in the month (percentage points)",
            fig_id="event_study_chronic",
            title="Effect on the monthly chronic-absence flag (event study, primary design)",
        ),
        figures.love_plot(pubs["balance"].table, syn),
        figures.forest_plot(
            pubs["subgroups"].table, float(pubs["main_effects"].table.loc[0, "estimate"]), syn
        ),
        figures.sample_flow_figure(pubs["sample_flow"].table, syn),
        figures.chronic_by_month_figure(
            pubs["chronic_by_month"].table.rename(columns={})[
                ["month", "leap_district", "n_students", "n_chronic"]
            ],
            syn,
        ),
    ]
    sources = {
        "event_study": ["event_study"],
        "event_means": ["event_means"],
        "event_study_chronic": ["event_study_chronic"],
        "love_plot": ["balance"],
        "subgroups": ["subgroups", "main_effects"],
        "sample_flow": ["sample_flow"],
        "chronic_by_month": ["chronic_by_month"],
    }
    for f in figs:
        f.sources = [f"tables/published/{s}.csv" for s in sources[f.id]]
    v = inputs.tables.get("validation")
    if v is not None and len(v):
        from pipeline.analysis.simulation_figure import draw

        fig = draw(v)
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
                    "-0.3 to 0.3. Right: the share of 95% intervals holding the true effect, "
                    "with a shaded band from 93% to 97%. Values are in the simulation table."
                ),
                fig=fig,
                sources=[_validation_source(inputs)],
            )
        )
    return figs


def _validation_source(inputs: Inputs) -> str:
    """The simulation table's path as the report cites it (relative to the reports dir)."""
    p = inputs.paths.get("validation")
    rep = inputs.paths["metrics"].parent
    return os.path.relpath(p, rep) if p is not None else "tables/validation.csv"


# --------------------------------------------------------------------------- text


CI_LEVEL = 95  # data contract §4: every interval is a 95% confidence interval


def fmt_num(x: Any, nd: int = 1, signed: bool = False) -> str:
    """A number for the text: fixed decimals, a true minus sign; '‡' when suppressed."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "‡"
    s = f"{float(x):+.{nd}f}" if signed else f"{float(x):.{nd}f}"
    return s.replace("-", "−")


def fmt_int(x: Any) -> str:
    """A count with thousands separators; '‡' when suppressed."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "‡"
    return f"{int(x):,}".replace("-", "−")


def fmt_p(p: Any) -> str:
    """A p-value: three decimals, '< 0.001' below that."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "‡"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _window_mean(df: pd.DataFrame, lo: int, hi: int, col: str) -> float:
    d = df[df["event_time"].between(lo, hi)][col].dropna()
    return float(d.mean()) if len(d) else float("nan")


def _within(fe: str | None) -> str:
    """How the report names the matched ANCOVA's time-effect groups."""
    if not fe:
        return ""
    return "within district" if fe == "district_code" else f"within the same {fe}"


def _validation_summary(v: pd.DataFrame | None, primary: str) -> dict[str, Any] | None:
    """The primary design's record in the simulation study, for the appendix text."""
    if v is None or v.empty or primary not in set(v["estimator"]):
        return None
    p = v[(v["estimator"] == primary) & v["targets_apply"].astype(bool)]
    if p.empty:
        return None
    naive = v[(v["estimator"] == "naive_before_after") & (v["scenario"] == "dip")]
    return {
        "n_reps": int(p["n_reps"].min()),
        "scenarios": len(p),
        "max_abs_bias": float(p["bias"].abs().max()),
        "coverage_min": float(100 * p["coverage"].min()),
        "coverage_max": float(100 * p["coverage"].max()),
        "se_ratio_min": float(p["se_ratio"].min()) if "se_ratio" in p else float("nan"),
        "se_ratio_max": float(p["se_ratio"].max()) if "se_ratio" in p else float("nan"),
        "naive_dip_bias": float(naive["bias"].iloc[0]) if len(naive) else None,
        "pretrend_max": (
            float(100 * p["pretrend_rejection"].max())
            if "pretrend_rejection" in p and p["pretrend_rejection"].notna().any()
            else None
        ),
    }


def _estimand_rows(pubs: dict[str, Published]) -> dict[str, Any]:
    """Published rows of the estimands table the summary quotes, by short name."""
    if "estimands" not in pubs:
        return {}
    e = pubs["estimands"].table
    pick = {
        "itt": ("first attempted visit (intent to treat)", "analytic, clustered by school"),
        "reached": ("families reached (ITT / share reached)", "delta method"),
        "design": ("completed visit", "design bootstrap (schools within districts)"),
        "district": ("completed visit", "wild cluster bootstrap by district"),
        "lee": ("completed visit", "Lee (2009) bounds, unadjusted matched difference"),
    }
    out = {}
    for k, (est, inf) in pick.items():
        r = e[(e["estimand"] == est) & (e["inference"] == inf)]
        if len(r) and pd.notna(r.iloc[0]["ci_low"]):
            out[k] = r.iloc[0]
    return out


def build_context(
    inputs: Inputs,
    pubs: dict[str, Published],
    rules: Rules,
    figs: list[dict],
    facts: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything the template shows, computed from the stage inputs (no typed numbers)."""
    m = inputs.metrics
    main = pubs["main_effects"].table.set_index("quantity")
    att, naive, twfe, chronic = (main.loc[k] for k in ("att", "naive", "twfe", "att_chronic"))
    em = pubs["event_means"].table
    tr = em[em["role"] == "treated"]
    co = em[em["role"] == "comparison"]
    pre_lo = int(em["event_time"].min())
    usual = _window_mean(tr, pre_lo, -3, "mean_rate")
    dip_month = _window_mean(tr, -1, -1, "mean_rate")
    comp_dip = _window_mean(co, -1, -1, "mean_rate")
    w = m["att_window"]
    tr_post = _window_mean(tr, w[0], w[1], "mean_rate")
    co_post = _window_mean(co, w[0], w[1], "mean_rate")
    flow = pubs["sample_flow"].table.set_index("step")["students"]
    sg = pubs["subgroups"].table
    sg_shown = sg.dropna(subset=["estimate"])
    significant = bool(att["ci_low"] > 0 or att["ci_high"] < 0)
    truth = (m.get("truth") or {}).get("att_window")
    es = pubs["event_study"].table
    comparators = sorted(set(es["estimator"]) - {m["primary_estimator"]})
    rb = pubs["robustness"].table.set_index("check")
    bd = "relative magnitudes breakdown Mbar"
    breakdown = float(rb.loc[bd, "estimate"]) if bd in rb.index else None
    return {
        "breakdown_mbar": breakdown,
        "title": "Home visits and school attendance: an evaluation of Connecticut's LEAP",
        "synthetic": inputs.synthetic,
        "watermark": figures.WATERMARK,
        "refs": figures.reference_periods(pubs["event_study"].table, m["primary_estimator"]),
        "ci_level": CI_LEVEL,
        "rules": rules,
        "facts": facts,
        "m": m,
        "window": w,
        "primary": figures.label_estimator(m["primary_estimator"]),
        "comparators": [figures.label_estimator(c) for c in comparators],
        "att": att,
        "naive": naive,
        "twfe": twfe,
        "chronic": chronic,
        "significant": significant,
        "positive": bool(att["estimate"] > 0),
        "naive_minus_att": float(naive["estimate"] - att["estimate"]),
        "naive_ratio": (
            float(naive["estimate"] / att["estimate"])
            if att["estimate"] and not math.isnan(att["estimate"])
            else float("nan")
        ),
        "twfe_minus_att": float(twfe["estimate"] - att["estimate"]),
        "usual": usual,
        "dip_month": dip_month,
        "dip": usual - dip_month,
        "comp_dip": comp_dip,
        "tr_post": tr_post,
        "co_post": co_post,
        "tr_recovery": tr_post - dip_month,
        "co_recovery": co_post - comp_dip,
        "truth": truth,
        "truth_gap": (float(att["estimate"]) - truth) if truth is not None else None,
        "naive_truth_gap": (float(naive["estimate"]) - truth) if truth is not None else None,
        "pretrend": m["pretrend_test"],
        "design": m["design"],  # chosen by estimate.design; estimate writes it
        "ancova_within": _within((m.get("design_settings") or {}).get("ancova_fe")),
        "pretrend_ok": bool(m["pretrend_test"]["p_value"] >= 0.05),
        "flow": flow,
        "sg_max": sg_shown.loc[sg_shown["estimate"].idxmax()] if len(sg_shown) else None,
        "sg_min": sg_shown.loc[sg_shown["estimate"].idxmin()] if len(sg_shown) else None,
        "sg_suppressed": int(sg["estimate"].isna().sum()),
        "n_suppressed": {k: p.n_suppressed for k, p in pubs.items()},
        "total_suppressed": sum(p.n_suppressed for p in pubs.values()),
        "figs": {f["id"]: f for f in figs},
        "tables": {k: p.table for k, p in pubs.items()},
        "validation": inputs.tables.get("validation"),
        "val": _validation_summary(inputs.tables.get("validation"), m["primary_estimator"]),
        "val_source": _validation_source(inputs).removeprefix("../"),
        "max_smd": float(m["max_abs_smd_after"]),
        "subgroup_labels": figures.SUBGROUP_LABELS,
        "covariates": [str(c) for c in pubs["balance"].table["covariate"]],
        "flow_cols": [
            c
            for c in ("step", "students", "excluded", "definition")
            if c in pubs["sample_flow"].table.columns
        ],
        "es_primary": es[es["estimator"] == m["primary_estimator"]],
        "estimand_rows": _estimand_rows(pubs),
        "step_labels": figures.STEP_LABELS,
    }


def _table_html(
    df: pd.DataFrame,
    cols: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    nd: int = 2,
    int_cols: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> str:
    """An HTML table; suppressed cells show '‡', cells empty in the source '—'."""
    skip = {"suppressed", *exclude}
    cols = list(cols) if cols else [c for c in df.columns if c not in skip]
    labels = labels or {}
    head = "".join(
        f"<th>{jinja2.filters.escape(labels.get(c, c.replace('_', ' ')))}</th>" for c in cols
    )
    body = []
    for _, r in df.iterrows():
        cells = []
        hidden = set(str(r.get("suppressed", "") or "").split(";"))
        for c in cols:
            v = r[c]
            if c in hidden:
                s, cls = "‡", "n"
            elif v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                s, cls = "—", "n"
            elif isinstance(v, (bool, np.bool_)):
                s, cls = ("yes" if v else "no"), "t"
            elif c in int_cols:
                s, cls = fmt_int(v), "n"
            elif isinstance(v, (int, float, np.integer, np.floating)) or v is pd.NA or v is None:
                s, cls = (
                    (fmt_num(v, nd) if not (isinstance(v, (int, np.integer))) else fmt_int(v)),
                    "n",
                )
            else:
                s, cls = str(v), "t"
            cells.append(f'<td class="{cls}">{jinja2.filters.escape(s)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(context: dict[str, Any], figure_dir: Path) -> str:
    """Render the report template; figures are inlined as base64 PNG."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["int"] = fmt_int
    env.filters["p"] = fmt_p
    env.filters["est"] = figures.label_estimator

    def img(fig_id: str) -> str:
        f = context["figs"][fig_id]
        data = base64.b64encode((figure_dir / f["png"]).read_bytes()).decode("ascii")
        return data

    env.globals["img_b64"] = img
    env.globals["table"] = lambda *a, **k: jinja2.utils.markupsafe.Markup(_table_html(*a, **k))
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(css=css, **context)


# --------------------------------------------------------------------------- PDF


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium executable: ``explicit``, else the first found on ``PATH``."""
    names = [explicit] if explicit else ["chromium", "chromium-browser", "google-chrome"]
    for n in names:
        p = shutil.which(n) if n else None
        if p:
            return p
    raise RuntimeError(
        "report: no Chromium found to print the PDF (looked for "
        f"{', '.join(n for n in names if n)}); install Debian's 'chromium' package or set "
        "report.chromium in params.yaml"
    )


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
]


def html_to_pdf(html: Path, pdf: Path, chromium: str, timeout: float = 180) -> None:
    """Print ``html`` to ``pdf`` with headless Chromium (no header/footer, CSS page size)."""
    with tempfile.TemporaryDirectory(prefix="leap-chromium-") as prof:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={prof}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(
            f"report: Chromium failed to print {html} to PDF (exit {res.returncode}):\n"
            f"{res.stderr[-2000:]}"
        )


# --------------------------------------------------------------------------- stage


def load_facts() -> dict[str, Any]:
    """The cited program and context facts (``templates/report_facts.yaml``)."""
    with open(TEMPLATES / "report_facts.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _write_published(pubs: dict[str, Published], outdir: Path) -> None:
    for name, p in pubs.items():
        p.table.to_csv(outdir / f"{name}.csv", index=False, lineterminator="\n")


def run(root: str | os.PathLike, params: Mapping[str, Any]) -> dict[str, Path]:
    """Run the stage under project ``root`` with the ``report``/``disclosure`` sections.

    Returns the paths written.  Nothing is written unless every step (inputs,
    disclosure check, figures, HTML, PDF) succeeds.
    """
    rsec = config.section("report", dict(params))
    rules = Rules.from_params(config.section("disclosure", dict(params)))
    root = Path(root)
    rep = root / rsec.get("reports_dir", "reports")
    dpi = int(rsec.get("dpi", 300))
    want_pdf = bool(rsec.get("pdf", True))
    chromium = find_chromium(rsec.get("chromium")) if want_pdf else None

    vt = rsec.get("validation_table")
    inputs = load_inputs(rep, None if vt is None else root / vt)
    pubs = publish(inputs, rules)
    facts = load_facts()
    out = {
        "figures": rep / "figures",
        "published": rep / "tables" / "published",
        "html": rep / "report.html",
    }
    if want_pdf:
        out["pdf"] = rep / "report.pdf"
    with (
        pio.atomic_dir(out["figures"]) as figdir,
        pio.atomic_dir(out["published"]) as pubdir,
        pio.atomic_path(out["html"], ".html") as html_tmp,
    ):
        figs = make_figures(inputs, pubs)
        manifest = figures.save_figures(figs, figdir, dpi=dpi, synthetic=inputs.synthetic)
        pio.write_json(
            {"figures": manifest, "synthetic": inputs.synthetic}, figdir / "manifest.json"
        )
        _write_published(pubs, pubdir)
        ctx = build_context(inputs, pubs, rules, manifest, facts)
        html_tmp.write_text(render_html(ctx, figdir), encoding="utf-8")
        if want_pdf:
            with pio.atomic_path(out["pdf"], ".pdf") as pdf_tmp:
                pdf_tmp.unlink()
                html_to_pdf(html_tmp, pdf_tmp, chromium, float(rsec.get("pdf_timeout_s", 180)))
                os.chmod(pdf_tmp, 0o644)
        _readable(figdir, pubdir, html_tmp)
    return out


def _readable(*paths: Path) -> None:
    """World-readable outputs (temporary files and directories are created private)."""
    for p in paths:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if p.is_dir():
            for f in p.iterdir():
                os.chmod(f, 0o644)


def _stage() -> runner.Summary:
    root = config.project_root()
    stage_settings()  # the whole params.yaml is checked before any work
    out = run(root, config.load_params())
    names = [str(p.relative_to(root) if p.is_relative_to(root) else p) for p in out.values()]
    return runner.Summary(detail="wrote " + ", ".join(names))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipeline.report`` (``--help``, ``--quiet``)."""
    return runner.main("report", __doc__, _stage, argv)


if __name__ == "__main__":
    sys.exit(main())
