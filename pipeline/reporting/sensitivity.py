"""The report's sensitivity section, read from the estimate stage's sensitivity tables.

:func:`sensitivity_section` turns ``sensitivity_ovb``, ``sensitivity_ovb_bounds``,
``sensitivity_rosenbaum``, ``sensitivity_honestdid``, ``sensitivity_falsification``,
``wwc``, ``effect_sizes``, ``subgroup_tests`` and ``subgroup_contrasts`` (columns in
:data:`pipeline.analysis.schemas.SENSITIVITY_TABLES`, described in
:mod:`pipeline.sensitivity.suite`) into display tables with human labels and the
sentences that go with them; :func:`placebo_appendix` gives the placebo-date rows of the
robustness table with what the simulation study says about them.  No number is typed
here: each is read from its table.  A table that is absent is left out (its part of the
section says it was not assessed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline import labels
from pipeline.reporting import caveats as cv
from pipeline.reporting.fmt import fmt_num, fmt_p, fmt_pct, plural
from pipeline.sensitivity.config import GRID_EDGE
from pipeline.validation.verdicts import FALSE_ALARM

__all__ = ["placebo_appendix", "robustness_rows", "sensitivity_section", "study_rates"]

#: How the section names the HonestDiD restrictions and methods.
DELTAS = {"none": "None (the original interval)", "DeltaRM": "Relative magnitudes (M̄)",
          "DeltaSD": "Smoothness (M)"}
METHODS = {"original": "original", "C-LF": "conditional least-favourable hybrid (C-LF)",
           "Conditional": "conditional", "FLCI": "fixed-length (FLCI)"}
#: Robustness-table checks shown elsewhere: the placebo date (appendix) and the
#: Bonferroni relative-magnitude rows, superseded by the HonestDiD table.
MOVED = ("placebo", "relative magnitudes")
#: The false-discovery rate the section counts subgroup q-values against.
FDR_LEVEL = 0.05


def robustness_rows(rb: pd.DataFrame, honest_present: bool) -> pd.DataFrame:
    """The robustness table as the Robustness section shows it: without the placebo-date
    rows (appendix) and, when the HonestDiD table is present, without the Bonferroni
    relative-magnitude rows it supersedes."""
    c = rb["check"].astype(str)
    drop = c.str.startswith("placebo")
    if honest_present:
        drop |= c.str.startswith("relative magnitudes")
    return rb[~drop]


def _ok(df: pd.DataFrame | None) -> bool:
    """A table that was computed (not absent, not a one-row failure note)."""
    if df is None or df.empty:
        return False
    return not ("note" in df.columns and len(df) == 1 and pd.notna(df["note"].iloc[0])
                and df.drop(columns=["note"]).isna().all(axis=None))


def _ovb(t: Mapping[str, pd.DataFrame | None]) -> dict[str, Any] | None:
    o, b = t.get("sensitivity_ovb"), t.get("sensitivity_ovb_bounds")
    if not _ok(o):
        return None
    r = o.iloc[0]
    out: dict[str, Any] = {
        "estimate": float(r["estimate"]), "rv_q": 100 * float(r["rv_q"]),
        "rv_qa": 100 * float(r["rv_qa"]), "r2yd_x": 100 * float(r["r2yd_x"]),
        "bounds": None,
    }
    if _ok(b):
        out["bounds"] = pd.DataFrame({
            "Confounder as strong as": [
                f"{fmt_num(k, 0)} × {labels.variable(v).lower()}"
                for k, v in zip(b["kd"], b["benchmark"], strict=True)],
            "Partial R² with the visit (%)": 100 * pd.to_numeric(b["r2dz_x"]),
            "Partial R² with attendance (%)": 100 * pd.to_numeric(b["r2yz_dx"]),
            "Adjusted estimate": b["adjusted_estimate"],
            "95% CI low": b["adjusted_ci_low"], "95% CI high": b["adjusted_ci_high"],
        })
    return out


def _rosenbaum(t: Mapping[str, pd.DataFrame | None]) -> dict[str, Any] | None:
    r = t.get("sensitivity_rosenbaum")
    if not _ok(r):
        return None
    grid = r[r["row"] == "gamma grid"]
    bd = r[r["row"] == "breakdown"]
    return {
        "gamma": float(bd["gamma"].iloc[0]) if len(bd) else float("nan"),
        "alpha": float(r["alpha"].iloc[0]),
        "grid": pd.DataFrame({"Γ": grid["gamma"].map(lambda g: fmt_num(g, 2)),
                              "Largest one-sided p-value": grid["pval"].map(fmt_p)}),
    }


def _honest(t: Mapping[str, pd.DataFrame | None], design: str) -> dict[str, Any] | None:
    h = t.get("sensitivity_honestdid")
    if not _ok(h):
        return None
    body = h[~h["method"].astype(str).str.startswith("breakdown")]
    sentences, _, _ = cv.honest_text(h, design)
    note = (body["note"] if "note" in body.columns
            else pd.Series(None, index=body.index)).fillna("").astype(str)
    edge_lo = note.isin([GRID_EDGE["lower"], GRID_EDGE["both"]])
    edge_hi = note.isin([GRID_EDGE["upper"], GRID_EDGE["both"]])
    if (edge_lo | edge_hi).any():
        sentences = [*sentences, "A bound marked ≤ or ≥ is the end of the search grid (twenty "
                     "standard errors either side, as in R's HonestDiD): the set reaches at "
                     "least that far."]

    def bound(v, edge: bool, mark: str) -> str:
        return "—" if pd.isna(v) else (f"{mark} " if edge else "") + fmt_num(v, 2)

    return {
        "table": pd.DataFrame({
            "Restriction": body["Delta"].map(lambda d: DELTAS.get(str(d), labels.words(d))),
            "Confidence set": body["method"].map(lambda m: METHODS.get(str(m),
                                                                       labels.words(m))),
            "Bound": body["M"].map(lambda m: "—" if pd.isna(m) else fmt_num(m, 2)),
            "Lower": [bound(v, e, "≤") for v, e in zip(body["lb"], edge_lo, strict=True)],
            "Upper": [bound(v, e, "≥") for v, e in zip(body["ub"], edge_hi, strict=True)]}),
        "sentences": sentences,
    }


def _falsification(t: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame | None:
    f = t.get("sensitivity_falsification")
    if f is None or f.empty or "equivalence_bound" not in f.columns:
        return None
    f = f[f["equivalence_bound"].notna()]
    return pd.DataFrame({
        "Design": f["estimator"].map(labels.estimator),
        "Placebo months": f["n_placebo"].map(lambda n: fmt_num(n, 0)),
        "Joint Wald statistic": f["pretrend_stat"],
        "p-value (small-sample F over the clusters)": f["pretrend_p"].map(fmt_p),
        "Equivalence bound (points)": f["equivalence_bound"],
        "Bound over the effect": f["bound_over_effect"],
    })


def _wwc(t: Mapping[str, pd.DataFrame | None]) -> dict[str, Any] | None:
    w = t.get("wwc")
    if not _ok(w) or not (w["item"] == "rating").any():
        return None
    rating = w[w["item"] == "rating"].iloc[0]
    e = cv.equivalence_summary(w)
    rows = pd.concat([e["required"], e["other"]])
    att = w[w["item"].astype(str).str.endswith("attrition")]
    return {
        "rating": labels.words(rating["category"]),
        "text": cv.rating_text(w, rating),
        "table": pd.DataFrame({
            "Characteristic": rows["characteristic"].map(labels.variable),
            "Rating rests on it": np.where(rows["required"], "yes", "no"),
            "Largest |g|": rows["absg"],
            "Worst class": rows["category"].astype(str),
        }),
        "attrition": [
            f"{labels.words(r['item'])}: {fmt_pct(100 * float(r['value']), nd=1)} "
            f"({r['category']} under the {str(r['reason']).split(' boundary')[0]} boundary)"
            for _, r in att.iterrows()],
    }


def _effect_sizes(t: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame | None:
    e = t.get("effect_sizes")
    if not _ok(e):
        return None
    e = e[e["estimate"].notna()]
    return pd.DataFrame({
        "Measure": e["measure"].map(cv.measure),
        "Outcome": e["outcome"].map(labels.label),
        "Estimate": e["estimate"], "95% CI low": e["ci_low"], "95% CI high": e["ci_high"],
        "Improvement index": e["improvement_index"],
    })


def _subgroups(t: Mapping[str, pd.DataFrame | None],
               published: pd.DataFrame | None) -> dict[str, Any] | None:
    tests, con = t.get("subgroup_tests"), t.get("subgroup_contrasts")
    if tests is None or tests.empty:
        return None
    role = tests["role"].astype(str)
    out: dict[str, Any] = {
        "tests": pd.DataFrame({
            "Subgroup": tests["subgroup"].map(labels.subgroup),
            "Equal effects (χ²)": tests["statistic"],
            "Degrees of freedom": tests["df"].map(lambda n: fmt_num(n, 0)),
            "p-value": tests["p_value"].map(fmt_p),
            "q-value (BH)": tests["q_value"].map(lambda q: "—" if pd.isna(q) else fmt_p(q)),
            "Reading": np.where(role == "descriptive", "descriptive", "causal"),
        }),
        "n_tests": int((role != "descriptive").sum()),
        "n_q05": int(((role != "descriptive")
                      & (pd.to_numeric(tests["q_value"]) < FDR_LEVEL)).sum()),
        "q_level": FDR_LEVEL,
        "contrasts": None,
    }
    if con is not None and len(con):
        hidden = set()
        if published is not None:
            sup = published[published["estimate"].isna()]
            hidden = set(zip(sup["subgroup"].astype(str), sup["level"].astype(str), strict=True))
        cut = [(str(r.subgroup), str(r.level)) in hidden
               or (str(r.subgroup), str(r.reference)) in hidden for r in con.itertuples()]
        d = pd.DataFrame({
            "Subgroup": con["subgroup"].map(labels.subgroup),
            "Group": con["level"].map(labels.level),
            "Against": con["reference"].map(labels.level),
            "Difference": con["difference"], "Std. error": con["std_error"],
            "p-value": con["p_value"].map(fmt_p),
            "q-value (BH)": con["q_value"].map(lambda q: "—" if pd.isna(q) else fmt_p(q)),
        })
        d["suppressed"] = ["Difference;Std. error;p-value;q-value (BH)" if c else ""
                           for c in cut]
        out["contrasts"] = d
    return out


def sensitivity_section(tables: Mapping[str, pd.DataFrame | None], design: str,
                        published_subgroups: pd.DataFrame | None = None) -> dict[str, Any]:
    """Everything the sensitivity section shows (``None`` for a part not assessed).

    Parameters
    ----------
    tables
        The sensitivity tables by name (absent ones missing or ``None``).
    design
        ``metrics.json``'s ``design`` (``"ancova"`` or ``"differences"``): the HonestDiD
        sets are for the matched differences design, and the text says what they mean
        for the headline.
    published_subgroups
        The published (disclosure-controlled) subgroup table: a contrast involving a
        suppressed group is suppressed too.
    """
    return {
        "ovb": _ovb(tables),
        "rosenbaum": _rosenbaum(tables),
        "honest": _honest(tables, design),
        "falsification": _falsification(tables),
        "wwc": _wwc(tables),
        "effect_sizes": _effect_sizes(tables),
        "subgroups": _subgroups(tables, published_subgroups),
        "design": design,
    }


def study_rates(validation: pd.DataFrame | None, verdicts: pd.DataFrame | None,
                primary: str, diagnostic: str = "placebo") -> dict[str, Any] | None:
    """How often ``diagnostic`` fired in each world of the simulation study: from the
    verdict table (primary design) or the validation table (primary estimator), whichever
    has the ``rate_<diagnostic>`` column; ``None`` when neither has it."""
    col = f"rate_{diagnostic}"
    if verdicts is not None and col in verdicts.columns:
        v = verdicts[verdicts["design"].astype(str) == "primary"] if "design" in verdicts \
            else verdicts
        name = v["world"].astype(str) if "world" in v else v["scenario"].map(labels.scenario)
    elif validation is not None and col in validation.columns:
        v = validation[validation["estimator"] == primary]
        name = v["scenario"].map(labels.scenario)
    else:
        return None
    v = v.assign(_name=name.to_numpy()).dropna(subset=[col]).drop_duplicates("scenario")
    if v.empty:
        return None
    ref = v[v["scenario"] == "dip"]
    others = v[v["scenario"] != "dip"]
    return {
        "n_reps": int(pd.to_numeric(v["n_reps"]).min()),
        "reference": None if ref.empty else 100 * float(ref[col].iloc[0]),
        "reference_name": None if ref.empty else str(ref["_name"].iloc[0]),
        "others_min": None if others.empty else 100 * float(others[col].min()),
        "others_max": None if others.empty else 100 * float(others[col].max()),
        "n_others": len(others),
    }


def placebo_appendix(rb: pd.DataFrame, validation: pd.DataFrame | None,
                     verdicts: pd.DataFrame | None, primary: str) -> dict[str, Any] | None:
    """The placebo-date rows of the robustness table and the sentence on whether the
    simulation study shows the check telling worlds apart (no number without the study)."""
    rows = rb[rb["check"].astype(str).str.startswith("placebo")]
    if rows.empty:
        return None
    r = study_rates(validation, verdicts, primary)
    if r is None or r["reference"] is None:
        text = ("In the project's simulation runs so far it fired in the default world, where "
                "the design is valid, so it cannot tell a sound world from a broken one and is "
                "not among the falsification tests. The simulation study available to this "
                "report does not record how often it fires, so no rate is quoted here.")
    else:
        text = (f"In the simulation study ({plural(r['n_reps'], 'replication')} per world) "
                f"it fired in {fmt_num(r['reference'], 0)}% of the replications of the "
                f"default world ({r['reference_name']}), which the design is built to handle")
        if r["n_others"]:
            lo, hi = fmt_num(r["others_min"], 0), fmt_num(r["others_max"], 0)
            text += (f", and in {lo if lo == hi else f'{lo}% to {hi}'}% of those of "
                     + ("the other world" if r["n_others"] == 1
                        else f"the {r['n_others']} other worlds"))
        text += (". A check that fires in the world the design handles cannot tell a sound "
                 "world from a broken one, so it is not among the falsification tests."
                 if r["reference"] > 100 * FALSE_ALARM else
                 ". It is kept here as information; the falsification tests are the "
                 "placebo-month test and its equivalence bound.")
    return {"rows": rows, "text": text}
