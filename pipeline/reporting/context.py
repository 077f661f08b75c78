"""Everything the report template shows, computed from the published tables.

No number is typed here or in the template: each is read from a published
(disclosure-controlled) table, ``metrics.json``, the one sample-size table
(:mod:`pipeline.reporting.counts`), or the cited facts file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline import figures, labels
from pipeline.disclosure import Published, Rules
from pipeline.reporting import caveats as cv
from pipeline.reporting import worlds
from pipeline.reporting.counts import as_dict, sample_sizes
from pipeline.reporting.fmt import CI_LEVEL, fmt_int, fmt_num, join_words
from pipeline.reporting.inputs import SENSITIVITY_INPUTS, Inputs, validation_source
from pipeline.reporting.meta import FrontMatter
from pipeline.reporting.sensitivity import (
    placebo_appendix,
    robustness_rows,
    sensitivity_section,
)

TITLE = "Home visits and school attendance: an evaluation of Connecticut's LEAP"
AUTHOR = "LEAP evaluation pipeline contributors"
SUBGROUP_ORDER = ["grade_band", "cohort", "first_visit_mode", "ell", "prior_year_tier",
                  "district", "district_code", "dosage"]


def window_mean(df: pd.DataFrame, lo: int, hi: int, col: str) -> float:
    """Mean of ``col`` over event times ``lo``..``hi`` (NaN when none is published)."""
    d = df[df["event_time"].between(lo, hi)][col].dropna()
    return float(d.mean()) if len(d) else float("nan")


def _within(fe: str | None) -> str:
    """How the report names the matched ANCOVA's time-effect groups."""
    if not fe:
        return ""
    return "within district" if fe == "district_code" else f"within the same {labels.words(fe).lower()}"


def _strata(col: str | None) -> str:
    """How the report names the strata the effects are estimated in (``estimate.effect_strata``)."""
    return f"each {labels.words(col).lower()}" if col else ""


def _settings_words(
    cluster: str | None,
    truncate,
    strata: str | None = None,
    vcov: str | None = None,
    censoring: str | None = None,
    history: bool | None = None,
) -> tuple[str, str]:
    """``(clusters, weights)`` in words; the effect strata, a bias-reduced covariance,
    imputed comparison rows and the recorded year (``estimate.effect_strata``,
    ``estimate.vcov``, ``estimate.censoring``, ``estimate.history``; a study that did not
    record them ran none of them) are named with them."""
    if str(cluster) in ("student_key", "student"):
        cl = "by student"
    else:
        cl = "by " + cv.CLUSTERS.get(str(cluster), "another grouping")
    if str(vcov or "CR1") == "CR2":
        cl += " with the Bell-McCaffrey small-sample correction"
    qs = cv.truncation_percentiles(truncate)
    if str(censoring or "weights") == "impute":
        tr = "the attendance of comparison students visited later imputed"
    elif qs:
        tr = f"censoring weights truncated at the {join_words(qs)} percentiles"
    else:
        tr = "untruncated censoring weights"
    if strata:
        tr += f", effects estimated within {_strata(strata)} and averaged"
    if history:
        tr += ", adjusting for the recorded year at the first visit"
    return cl, tr


def _study_words(settings: Mapping[str, Any]) -> tuple[str, str]:
    """How a simulation study ran the primary (its recorded settings), in words."""
    return _settings_words(
        settings.get("cluster"),
        settings.get("ipcw_truncate"),
        settings.get("effect_strata"),
        settings.get("vcov"),
        settings.get("primary_censoring"),
        bool(settings.get("history")),
    )


def _estimate_words(metrics: Mapping) -> tuple[str, str]:
    """How this report's estimate ran (metrics.json), in the same words."""
    ds = metrics.get("design_settings") or {}
    return _settings_words(
        ds.get("cluster"),
        (metrics.get("censoring") or {}).get("truncate"),
        ds.get("effect_strata"),
        ds.get("vcov"),
        (metrics.get("censoring") or {}).get("method"),
        bool(ds.get("history")),
    )


def study_size(settings: Mapping[str, Any] | None) -> str:
    """`` on synthetic states of N students in D districts (P in the program)`` when the
    study recorded its size (``n_students``, ``n_districts``, ``n_program_districts``),
    else ``""``: the simulated states are smaller than a real extract."""
    if not settings:
        return ""
    n, nd, npd = (settings.get(k) for k in ("n_students", "n_districts", "n_program_districts"))
    if not (n and nd):
        return ""
    return (f" on synthetic states of {int(n):,} students in {int(nd)} districts"
            + (f" ({int(npd)} in the program)" if npd else ""))


def study_settings_note(
    settings: Mapping[str, Any] | None,
    metrics: Mapping,
    stress: Mapping[str, Any] | None = None,
) -> str | None:
    """A sentence on how the simulation study ran the primary design, and whether that is
    how this report's estimate ran (``None`` when the study did not record it); when not,
    whether the stress-test study (``stress``: its settings) did."""
    if not settings:
        return None
    cl, tr = _study_words(settings)
    ours = _estimate_words(metrics)
    text = (f"The study ran the primary design{study_size(settings)} with errors clustered "
            f"{cl} and {tr}")
    if (cl, tr) == ours:
        return text + ", as this report's estimate does."
    text += (
        f"; this report's estimate clusters its errors {ours[0]} and uses {ours[1]}, "
        "so the coverage shown here is not that of this report's interval"
    )
    if stress and _study_words(stress) == ours:
        return text + " (the stress-test study below, quoted on the first page, ran this report's)."
    return text + "."


def pretrend_f(test: Mapping[str, Any]) -> dict[str, float] | None:
    """The pre-trend test as the F statistic its p-value comes from when errors are
    clustered (:attr:`pipeline.did.results.WaldTest.f_statistic`): ``f``, ``df1``, ``df2``;
    ``None`` for the χ² version."""
    from pipeline.did.results import WaldTest

    g = test.get("clusters")
    t = WaldTest(
        statistic=float(test["statistic"]),
        df=int(test.get("df") or 0),
        p_value=float(test.get("p_value", "nan")),
        event_times=tuple(test.get("event_times") or ()),
        clusters=None if g is None else int(g),
    )
    f = t.f_statistic
    return None if f is None else {"f": f, "df1": t.df, "df2": int(g) - t.df}


def study_coverage(
    verdicts: pd.DataFrame | None, settings: Mapping[str, Any] | None, metrics: Mapping
) -> dict[str, Any] | None:
    """The primary design's interval coverage in the stress-test worlds where it is valid,
    when that study ran the estimate's settings (error clusters, weight truncation);
    ``None`` otherwise. Keys: ``lo``, ``hi`` (percent), ``worlds``, ``n_reps``."""
    if verdicts is None or not settings or "coverage" not in verdicts.columns:
        return None
    if _study_words(settings) != _estimate_words(metrics):
        return None
    v = verdicts[(verdicts["design"] == "primary") & (verdicts["verdict"] == "valid")]
    cov = pd.to_numeric(v["coverage"], errors="coerce").dropna()
    if cov.empty:
        return None
    return {
        "lo": 100 * float(cov.min()),
        "hi": 100 * float(cov.max()),
        "worlds": int(cov.size),
        "n_reps": int(pd.to_numeric(v["n_reps"], errors="coerce").min()),
    }


def validation_summary(v: pd.DataFrame | None, primary: str,
                       verdicts: pd.DataFrame | None = None) -> dict[str, Any] | None:
    """The primary design's record in the simulation study, for the appendix text; the
    verdict per world from the stress-test study's ``verdicts`` table when there is one,
    else from the validation table's verdict columns."""
    if v is None or v.empty or primary not in set(v["estimator"]):
        return None
    p = v[(v["estimator"] == primary) & v["targets_apply"].astype(bool)]
    if p.empty:
        return None
    naive = v[(v["estimator"] == "naive_before_after") & (v["scenario"] == "dip")]
    w = verdicts if verdicts is not None and "verdict" in verdicts.columns else v
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
        "verdicts": verdict_list(w, primary),
        "verdict_reps": worlds.min_reps(w, primary) if "verdict" in w.columns else None,
        "verdict_rules": verdict_rules(),
    }


def verdict_rules() -> dict[str, float]:
    """The verdicts' thresholds in percent (:mod:`pipeline.validation.verdicts`)."""
    from pipeline.validation import verdicts as vd

    return {
        "caught": 100 * vd.CAUGHT_RATE,
        "false_alarm": 100 * vd.FALSE_ALARM,
        "bracket": 100 * vd.BRACKET_RATE,
    }


def verdict_list(v: pd.DataFrame, primary: str) -> list[dict[str, str]]:
    """The primary design's verdict per simulated world and its reason, composed from the
    verdict basis columns (:func:`pipeline.reporting.worlds.appendix_items`) of the
    study's verdict table or the validation table; empty without verdicts."""
    if "verdict" not in v.columns:
        return []
    return worlds.appendix_items(v, primary)


def data_quality_summary(dq: pd.DataFrame, base: tuple[str, ...]) -> dict[str, Any]:
    """Rules with findings (rows > 0, or suppressed) and how many found nothing.

    ``base`` are the accounting rows that are not rules (``read``, ``kept`` …).
    """
    rules = dq[~dq["reason"].isin(base)]
    rows = pd.to_numeric(rules["rows"], errors="coerce")
    found = rules[rows.isna() | (rows > 0)]
    return {
        "findings": found.assign(table=found["table"].map(labels.table),
                                 reason=found["reason"].map(labels.reason)),
        "n_checks": len(rules),
        "n_clean": int((rows == 0).sum()),
        "totals": dq[dq["reason"].isin(base)],
    }


def extract_description(t: Mapping[str, pd.DataFrame], sizes: Mapping[str, Any]) -> dict:
    """What the extract holds: students, districts, attendance records, months."""
    dq = t["data_quality"]
    read = dq[dq["reason"] == "read"].set_index("table")["rows"]
    months = sorted(t["chronic_by_month"]["month"].astype(str))
    att = [k for k in ("attendance_monthly", "attendance_daily") if k in read.index]
    return {
        "students": sizes["extract"],
        "districts": read.get("districts"),
        "attendance_rows": read.get(att[0]) if att else None,
        "attendance_daily": bool(att and att[0] == "attendance_daily"),
        "first_month": months[0] if months else None,
        "last_month": months[-1] if months else None,
    }


#: The sensitivity section's tables: title, code, data, and the input they need.
SENSITIVITY_MAP = [
    ("Omitted-variable sensitivity and benchmark bounds",
     "pipeline/sensitivity/ovb.py, pipeline/sensitivity/suite.py",
     "tables/sensitivity_ovb.csv, tables/sensitivity_ovb_bounds.csv", "sensitivity_ovb"),
    ("Rosenbaum bounds", "pipeline/sensitivity/rosenbaum.py, pipeline/sensitivity/suite.py",
     "tables/sensitivity_rosenbaum.csv", "sensitivity_rosenbaum"),
    ("Robust confidence sets (HonestDiD)",
     "pipeline/sensitivity/honestdid.py, pipeline/sensitivity/suite.py",
     "tables/sensitivity_honestdid.csv", "sensitivity_honestdid"),
    ("Falsification: placebo months and equivalence bounds",
     "pipeline/sensitivity/falsification.py", "tables/sensitivity_falsification.csv",
     "sensitivity_falsification"),
    ("What Works Clearinghouse standards",
     "pipeline/sensitivity/wwc.py, pipeline/sensitivity/suite.py", "tables/wwc.csv", "wwc"),
    ("Effect sizes", "pipeline/sensitivity/effect_sizes.py", "tables/effect_sizes.csv",
     "effect_sizes"),
    ("Subgroup tests and contrasts", "pipeline/sensitivity/multiplicity.py",
     "tables/subgroup_tests.csv, tables/subgroup_contrasts.csv", "subgroup_tests"),
]


def methods_map(figs: Mapping[str, dict], synthetic: bool,
                present: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """Every figure and table of the report with the code and data that made it
    (``present``: the optional input tables the report read)."""
    code = {
        "event_study": "pipeline/figures.py: event_study_figure",
        "event_study_all": "pipeline/figures.py: event_study_appendix_figure",
        "event_means": "pipeline/figures.py: event_means_figure",
        "event_study_chronic": "pipeline/figures.py: event_study_figure",
        "love_plot": "pipeline/figures.py: love_plot",
        "subgroups": "pipeline/figures.py: forest_plot",
        "sample_flow": "pipeline/figures.py: sample_flow_figure",
        "chronic_by_month": "pipeline/figures.py: chronic_by_month_figure",
        "naive": "pipeline/figures.py: naive_figure",
        "validation": "pipeline/validate.py: draw",
        "costs": "pipeline/analysis/costs_report.py: cost_figure",
        "sensitivity_ovb_contour": "pipeline/sensitivity/plots.py: ovb_contour_figure",
        "sensitivity_honestdid": "pipeline/sensitivity/plots.py: honest_figure",
    }
    rows = [
        {"item": f"Figure: {f['title']}", "code": code.get(fid, "pipeline/figures.py"),
         "data": ", ".join([*f["sources"], f"figures/{f['data_csv']}"] if f.get("data_csv")
                           else f["sources"])}
        for fid, f in figs.items()
    ]
    tables = [
        ("Sample sizes", "pipeline/reporting/counts.py", "tables/published/sample_flow.csv"),
        ("Main effects", "pipeline/estimate.py", "tables/published/main_effects.csv"),
        ("Subgroups", "pipeline/estimate.py", "tables/published/subgroups.csv"),
        ("Robustness", "pipeline/estimate.py", "tables/published/robustness.csv"),
        ("Covariate balance", "pipeline/match.py, pipeline/balance.py",
         "tables/published/balance.csv"),
        ("Event-study estimates", "pipeline/estimate.py", "tables/published/event_study.csv"),
        ("Matching", "pipeline/match.py", "tables/published/match_summary.csv"),
        ("Data quality", "pipeline/ingest.py, pipeline/checks.py, pipeline/panel.py",
         "tables/published/data_quality.csv, tables/published/data_quality_panel.csv"),
    ]
    if synthetic:
        tables.append(("Estimates against the truth", "pipeline/estimate.py",
                       "tables/published/truth_comparison.csv"))
    tables += [(a, b, c) for a, b, c, n in SENSITIVITY_MAP if n in present]
    rows += [{"item": f"Table: {a}", "code": b, "data": c} for a, b, c in tables]
    return rows


def _naive_estimates(main: pd.DataFrame, primary: str) -> pd.DataFrame:
    d = main.set_index("quantity").loc[["naive", "twfe", "att"]].reset_index()
    d["label"] = [labels.estimator("naive_before_after"), labels.estimator("twfe"),
                  labels.estimator(primary) + " (primary)"]
    return d[["label", "estimate", "ci_low", "ci_high"]]


def _truth_window(tc: pd.DataFrame | None) -> pd.DataFrame | None:
    """The truth table's window averages (its rows by event time stay in the CSV)."""
    if tc is None:
        return None
    q = tc["quantity"].astype(str)
    keep = ~q.str.startswith("event time")
    return tc[keep] if keep.any() else tc


def flow_exclusions(sizes: Mapping[str, Any], reasons: pd.DataFrame) -> dict[str, list[str]]:
    """Side-box lines of the sample-flow diagram, from the sample-size table."""
    from pipeline.reporting.inputs import MATCH_REASONS

    out = {"matched": [
        f"{'‡' if pd.isna(n) else f'{int(n):,}'} {MATCH_REASONS[r]}"
        for r, n in zip(reasons["reason"], reasons["students"], strict=True)
        if r in MATCH_REASONS
    ]}
    out["eligible"] = ["not in a program district"]
    out["visited"] = ["no completed home visit"]
    out["analysed"] = ["no attendance recorded after the first visit"]
    return {k: [textwrap(x) for x in v] for k, v in out.items()}


def textwrap(s: str, width: int = 44) -> str:
    """Wrap side-box text."""
    import textwrap as tw

    return "\n".join(tw.wrap(s, width))


def cost_context(inputs: Inputs) -> dict[str, Any] | None:
    """The cost-effectiveness section (the costs stage's tables), ``None`` without them."""
    ce, cs = inputs.tables.get("cost_effectiveness"), inputs.tables.get("cost_sensitivity")
    if ce is None or cs is None:
        return None
    from pipeline.analysis.costs_report import cost_section

    return cost_section(ce, cs, inputs.synthetic)


def event_study_note(m: Mapping[str, Any]) -> str:
    """How the appendix's event-study table got its intervals: by month from the wild
    cluster bootstrap when the stage ran it (test inversion, not symmetric about the
    estimate), analytic otherwise; and which of them the headline uses."""
    cluster = (m.get("design_settings") or {}).get("cluster", "")
    by = f"Standard errors are clustered by {cv.CLUSTERS.get(cluster, 'student')}. "
    wild = (m.get("att") or {}).get("wild_bootstrap")
    if not wild:
        return by + "Intervals are analytic (t with clusters − 1 degrees of freedom)."
    return (
        by + "Each month's interval comes from a wild cluster bootstrap over the same "
        f"{fmt_int(wild.get('clusters'))} clusters ({fmt_int(wild.get('B'))} draws), so "
        "it need not be symmetric about the estimate. The headline's interval is the analytic "
        f"one; the same bootstrap gives {fmt_num(wild['ci_low'])} to "
        f"{fmt_num(wild['ci_high'])} for the average over the headline's months."
    )


def boot_words(boot: Mapping[str, Any]) -> dict[str, str]:
    """How the report says the design bootstrap drew its schools (``metrics.estimands.
    att_design_bootstrap``: ``scheme``, ``hold_mix``; resampled when absent)."""
    held = boot.get("hold_mix")
    hold = (f", holding the visited students' {str(held).replace('_', ' ')} mix"
            if held else "")  # fmt: skip
    w = labels.boot_scheme(boot.get("scheme"))
    return {"short": w["short"], "long": w["long"] + hold}


ESTIMAND_ROWS = {
    "itt": ("first attempted visit (intent to treat)", "analytic, clustered by school"),
    "reached": ("families reached (ITT / share reached)", "delta method"),
    "design": ("completed visit", "design bootstrap (schools within districts)"),
    "district": ("completed visit", "wild cluster bootstrap by district"),
    "lee": ("completed visit", "Lee (2009) bounds, unadjusted matched difference"),
}


def estimand_rows(tabs: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Published rows of the estimands table the summary quotes, by short name."""
    if "estimands" not in tabs:
        return {}
    e = tabs["estimands"]
    out = {}
    for k, (est, inf) in ESTIMAND_ROWS.items():
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
    front: FrontMatter,
) -> dict[str, Any]:
    """Everything the template shows, computed from the stage inputs (no typed numbers)."""
    m = inputs.metrics
    tabs = {k: p.table for k, p in pubs.items()}
    main = tabs["main_effects"].set_index("quantity")
    att, naive, twfe, chronic = (main.loc[k] for k in ("att", "naive", "twfe", "att_chronic"))
    em = tabs["event_means"]
    tr, co = em[em["role"] == "treated"], em[em["role"] == "comparison"]
    usual = window_mean(tr, int(em["event_time"].min()), -3, "mean_rate")
    dip_month = window_mean(tr, -1, -1, "mean_rate")
    comp_dip = window_mean(co, -1, -1, "mean_rate")
    w = m["att_window"]
    tr_post, co_post = window_mean(tr, w[0], w[1], "mean_rate"), window_mean(co, w[0], w[1],
                                                                               "mean_rate")
    sizes_df = sample_sizes(tabs["sample_flow"], m)
    sizes = as_dict(sizes_df)
    optional = {k: tabs.get(k, inputs.tables.get(k)) for k in
                (*SENSITIVITY_INPUTS, "attrition", "validation", "verdicts")}
    coverage = study_coverage(optional.get("verdicts"), inputs.study_settings.get("verdicts"), m)
    caveats = cv.build_caveats(
        tabs, sizes, m, optional, facts, estimand_rows(tabs), study_coverage=coverage
    )
    sg = tabs["subgroups"]
    truth = (m.get("truth") or {}).get("att_window")
    es = tabs["event_study"]
    comparators = sorted(set(es["estimator"]) - {m["primary_estimator"]})
    days_per_month = facts["school_days_per_year"] / facts["school_months_per_year"]
    n_months = w[1] - w[0] + 1
    dq = data_quality_summary(tabs["data_quality"], ("read", "kept"))
    dqp = data_quality_summary(tabs["data_quality_panel"],
                               ("read", "in_panel", "rows", "enrollment_covering", "placed"))
    sg_order = sorted(sg["subgroup"].unique(), key=lambda s: (
        SUBGROUP_ORDER.index(s) if s in SUBGROUP_ORDER else len(SUBGROUP_ORDER), s))
    return {
        "title": TITLE,
        "author": AUTHOR,
        "front": front,
        "synthetic": inputs.synthetic,
        "watermark": figures.WATERMARK,
        "refs": figures.reference_periods(es, m["primary_estimator"]),
        "ci_level": CI_LEVEL,
        "rules": rules,
        "facts": facts,
        "m": m,
        "window": w,
        "n_months": n_months,
        "primary": labels.estimator(m["primary_estimator"]),
        "comparators": [labels.estimator(c) for c in comparators],
        "att": att,
        "naive": naive,
        "twfe": twfe,
        "chronic": chronic,
        "significant": bool(att["ci_low"] > 0 or att["ci_high"] < 0),
        "positive": bool(att["estimate"] > 0),
        "days": {
            "per_month": days_per_month,
            "month": float(att["estimate"]) / 100 * days_per_month,
            "window": float(att["estimate"]) / 100 * days_per_month * n_months,
            "window_low": float(att["ci_low"]) / 100 * days_per_month * n_months,
            "window_high": float(att["ci_high"]) / 100 * days_per_month * n_months,
        },
        "naive_minus_att": float(naive["estimate"] - att["estimate"]),
        "twfe_minus_att": float(twfe["estimate"] - att["estimate"]),
        "usual": usual,
        "dip_month": dip_month,
        "dip": usual - dip_month,
        "comp_dip": comp_dip,
        "tr_recovery": tr_post - dip_month,
        "co_recovery": co_post - comp_dip,
        "truth": truth,
        "truth_gap": (float(att["estimate"]) - truth) if truth is not None else None,
        "naive_truth_gap": (float(naive["estimate"]) - truth) if truth is not None else None,
        "pretrend": m["pretrend_test"],
        "pretrend_f": pretrend_f(m["pretrend_test"]),
        "design": m["design"],  # chosen by estimate.design; estimate writes it
        "ancova_within": _within((m.get("design_settings") or {}).get("ancova_fe")),
        "effect_strata": _strata((m.get("design_settings") or {}).get("effect_strata")),
        "history": bool((m.get("design_settings") or {}).get("history")),
        "pretrend_ok": bool(m["pretrend_test"]["p_value"] >= 0.05),
        "sizes": sizes,
        "sizes_table": sizes_df,
        "caveats": caveats,
        "n_concerns": sum(c.status == cv.CONCERN for c in caveats),
        "extract": extract_description(inputs.tables, sizes),
        "dq": dq,
        "dqp": dqp,
        "sg_order": sg_order,
        "sg_n": int(sg["estimate"].notna().sum()),
        "sg_suppressed": int(sg["estimate"].isna().sum()),
        "sg_excl_zero": int(((sg["ci_low"] > 0) | (sg["ci_high"] < 0)).sum()),
        "total_suppressed": sum(p.n_suppressed for p in pubs.values()),
        "figs": {f["id"]: f for f in figs},
        "tables": tabs,
        "truth_window": _truth_window(tabs.get("truth_comparison")),
        "validation": inputs.tables.get("validation"),
        "val": validation_summary(inputs.tables.get("validation"), m["primary_estimator"],
                                  inputs.tables.get("verdicts")),
        "val_source": validation_source(inputs).removeprefix("../"),
        "verdicts_size": study_size(inputs.study_settings.get("verdicts")),
        "val_settings": study_settings_note(
            inputs.study_settings.get("validation"), m, inputs.study_settings.get("verdicts")
        ),
        "verdicts_source": (validation_source(inputs, "verdicts").removeprefix("../")
                            if "verdicts" in inputs.paths else None),
        "estimand_rows": estimand_rows(tabs),
        "costs": cost_context(inputs),
        "sens": sensitivity_section(optional, str(m.get("design", "ancova")), sg),
        "robustness_shown": robustness_rows(
            tabs["robustness"], optional.get("sensitivity_honestdid") is not None),
        "placebo": placebo_appendix(tabs["robustness"], optional.get("validation"),
                                    optional.get("verdicts"), m["primary_estimator"]),
        "truncation": cv.truncation(m.get("censoring") or {}),  # estimate.ipcw_truncate
        # estimate.censoring: comparison students visited later weighted or imputed
        "imputed": (m.get("censoring") or {}).get("method") == "impute",
        # estimate.estimands.design_bootstrap_*: schools reweighted or resampled, mix held
        "boot": boot_words((m.get("estimands") or {}).get("att_design_bootstrap") or {}),
        "max_smd": float(m["max_abs_smd_after"]),
        "es_primary": es[es["estimator"] == m["primary_estimator"]],
        "es_note": event_study_note(m),
        "methods": methods_map({f["id"]: f for f in figs}, inputs.synthetic,
                               frozenset(k for k, v in optional.items() if v is not None)),
        "labels": labels,
        "isnan": lambda x: x is None or (isinstance(x, float) and math.isnan(x)),
    }
