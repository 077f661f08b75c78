"""Disclosure control of every published table (the report's only data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
from pipeline.reporting.inputs import (
    EST_COLS,
    INPUT_COLUMNS,
    MATCH_SUMMARY_LONG,
    OPTIONAL_TABLES,
    Inputs,
    ReportInputError,
)


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
    # a comparison student can serve in matched sets of two levels (two districts): the
    # levels' counts then add up to more than the comparison students, and that sum is
    # published nowhere, so it is no margin (the ledger protects the excess itself)
    n_comp = sg["n_comparison"]
    sg_m = group_margins(sg, ["subgroup"], "n_treated", label="n_treated in") + tuple(
        mg
        for mg in group_margins(sg, ["subgroup"], "n_comparison", label="n_comparison in")
        if n_comp.loc[[i for i, _ in mg.cells]].sum() == n_c
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

    mr = t["match_reasons"]
    mr = mr[mr["students"] > 0].reset_index(drop=True)
    if len(mr):
        total = pd.DataFrame({"reason": ["all"], "students": [int(mr["students"].sum())]})
        mr = pd.concat([mr, total], ignore_index=True)
    out["match_reasons"] = (
        mr,
        TableSpec(
            "match_reasons",
            ("reason",),
            ("students",),
            margins=(
                Margin(
                    cells=tuple((i, "students") for i in range(len(mr) - 1)),
                    total=(len(mr) - 1, "students"),
                    label="match_reasons total",
                ),
            )
            if len(mr) > 1
            else (),
        ),
    )

    out.update(estimand_sources(t))
    if inputs.synthetic:
        tc = t["truth_comparison"].reset_index(drop=True)
        out["truth_comparison"] = (tc, TableSpec("truth_comparison", ("estimator", "quantity")))
    return out


def _cols(t: dict[str, pd.DataFrame], name: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The optional table ``name`` in its schema's columns (those the reader requires), and
    ``extra`` ones (empty when the table was written without them)."""
    cols = list(dict.fromkeys([*OPTIONAL_TABLES[name], *extra]))
    return t[name].reindex(columns=cols).reset_index(drop=True)


def estimand_sources(t: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, TableSpec]]:
    """The estimands, attrition, censoring-weight and yearly chronic-absence tables."""
    out: dict[str, tuple[pd.DataFrame, TableSpec]] = {}
    if "estimands" in t:
        out["estimands"] = (_cols(t, "estimands"), TableSpec(
            "estimands", ("estimand", "inference"), ("n",), estimates=(_est("n"),)))
    if "attrition" in t:
        counts = ("retained_treated", "retained_comparison", "censored_comparison")
        rates = ("attrition_treated", "attrition_comparison", "overall_attrition",
                 "differential_attrition")  # fmt: skip
        out["attrition"] = (_cols(t, "attrition"), TableSpec(
            "attrition", ("event_time",), ("n_treated", "n_comparison", *counts),
            estimates=(_est("n_treated", "n_comparison", value_cols=rates),),
        ))  # fmt: skip
    if "censoring_diagnostics" in t:
        imputation = ("imputed_rows", "mean_imputed")  # estimate.censoring: impute
        out["censoring_diagnostics"] = (_cols(t, "censoring_diagnostics", imputation), TableSpec(
            "censoring_diagnostics", ("event_time",),
            ("comparison_rows", "censored_rows", "censoring_events", "truncated_rows",
             "imputed_rows"),
            estimates=(_est("comparison_rows",
                            value_cols=("effective_sample_size", "max_weight")),
                       _est("imputed_rows", value_cols=("mean_imputed",))),
        ))  # fmt: skip
    if "chronic_yearly" in t:
        out["chronic_yearly"] = (_cols(t, "chronic_yearly"), TableSpec(
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

