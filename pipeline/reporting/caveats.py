"""The caveats on the report's first page, each computed from a table.

Every builder takes the table it needs, or ``None`` when the analysis that writes
it has not run, and returns a :class:`Caveat`: ``concern`` when the data raise a
doubt, ``ok`` when the check was made and passed, ``not_assessed`` (saying what was
not assessed) when its table is absent.  :func:`build_caveats` runs them all; the
template prints every caveat on the first page, concerns first.  No number here is
typed: each is read from its table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline import labels
from pipeline.reporting.fmt import CI_LEVEL, fmt_int, fmt_num, fmt_p, fmt_pct, join_words, plural
from pipeline.reporting.inputs import MATCH_REASONS

CONCERN, OK, NOT_ASSESSED = "concern", "ok", "not_assessed"
#: Rosenbaum's breakdown Γ below which hidden bias of a modest size would explain the
#: effect (Rosenbaum 2002 calls Γ < 1.5 sensitive to small biases).
GAMMA_CONCERN = 1.5
STATUS_LABELS = {CONCERN: "Caution", OK: "Checked", NOT_ASSESSED: "Not assessed"}


@dataclass(frozen=True)
class Caveat:
    """One caveat: what it is about, how it came out, and the sentence(s) saying so."""

    key: str
    topic: str
    status: str
    text: str

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def _ci(lo: Any, hi: Any, nd: int = 1) -> str:
    return f"{CI_LEVEL}% CI {fmt_num(lo, nd)} to {fmt_num(hi, nd)}"


def balance_caveat(bal: pd.DataFrame, equivalence: float, adjustment: float) -> Caveat:
    """Covariates outside the What Works Clearinghouse equivalence bounds after matching.

    Uses the table's ``wwc_effect_size_after`` when present, else ``smd_after``.
    """
    col = "wwc_effect_size_after" if "wwc_effect_size_after" in bal.columns else "smd_after"
    g = pd.to_numeric(bal[col], errors="coerce").abs()
    fails = bal.loc[g > adjustment, "covariate"].map(labels.variable).tolist()
    adjust = int(((g > equivalence) & (g <= adjustment)).sum())
    n = int(g.notna().sum())
    what = "effect size (Hedges' g)" if col.startswith("wwc") else "standardised difference"
    if fails:
        text = (
            f"After matching, {plural(len(fails), 'characteristic')} of {n} still "
            f"{'differs' if len(fails) == 1 else 'differ'} between visited and comparison "
            f"students by more than {fmt_num(adjustment, 2)} in {what}, beyond what the What "
            f"Works Clearinghouse accepts even with statistical adjustment: "
            f"{join_words(fails)}. Another {adjust} "
            f"{'lies' if adjust == 1 else 'lie'} between {fmt_num(equivalence, 2)} and "
            f"{fmt_num(adjustment, 2)} and need the adjustment the design makes."
        )
        return Caveat("balance", "Balance after matching", CONCERN, text)
    text = (
        f"After matching, no characteristic of {n} differs by more than "
        f"{fmt_num(adjustment, 2)} in {what}; {plural(adjust, 'characteristic')} "
        f"between {fmt_num(equivalence, 2)} and {fmt_num(adjustment, 2)} need the "
        "statistical adjustment the design makes."
    )
    return Caveat("balance", "Balance after matching", CONCERN if adjust else OK, text)


def falsification_caveat(rb: pd.DataFrame, pretrend: Mapping[str, Any],
                         fals: pd.DataFrame | None = None) -> Caveat:
    """The joint pre-trend test, every placebo row of the robustness table and, when
    present, each design's equivalence bound (``sensitivity_falsification``)."""
    p = float(pretrend["p_value"])
    times = pretrend.get("event_times") or []
    when = (
        f"school months {join_words([fmt_num(t, 0) for t in times])} before the visit"
        if times else "the months before the visit"
    )
    parts = [
        f"Differences in {when} are jointly "
        f"{'consistent' if p >= 0.05 else 'not consistent'} with zero (p = {fmt_p(p)})."
    ]
    bad = p < 0.05
    plac = rb[rb["check"].astype(str).str.startswith("placebo")]
    for _, r in plac.iterrows():
        if pd.isna(r["estimate"]):
            parts.append(f"{labels.check(r['check'])}: suppressed (it rests on too few "
                         "students to publish).")
            continue
        excl = pd.notna(r["ci_low"]) and (r["ci_low"] > 0 or r["ci_high"] < 0)
        bad |= bool(excl)
        parts.append(
            f"{labels.check(r['check'])}: {fmt_num(r['estimate'], 1, True)} points "
            f"({_ci(r['ci_low'], r['ci_high'])})"
            + (
                ", not zero: attendance of the students later visited was already "
                "changing before the months the design adjusts for, so the estimate may "
                "carry part of that change."
                if excl
                else ", consistent with no effect before the visit."
            )
        )
    if plac.empty:
        parts.append("No placebo-date check was run.")
    for _, f in (fals if fals is not None else pd.DataFrame()).iterrows():
        if pd.isna(f["equivalence_bound"]):
            continue
        bad |= str(f["pretrend_reject"]).lower() in ("true", "1", "1.0")
        parts.append(
            f"{labels.estimator(f['estimator'])}: placebo months p = {fmt_p(f['pretrend_p'])}; "
            f"the data rule out a pre-visit difference larger than "
            f"{fmt_num(f['equivalence_bound'], 1)} points (equivalence bound, "
            f"{fmt_num(f['bound_over_effect'], 2)} times the effect)."
        )
    return Caveat("falsification", "Falsification tests", CONCERN if bad else OK, " ".join(parts))


def _first(df: pd.DataFrame | None, mask=None) -> pd.Series | None:
    """The first row of ``df`` (where ``mask``), or ``None`` when there is none."""
    if df is None or df.empty:
        return None
    d = df[mask(df)] if mask is not None else df
    return d.iloc[0] if len(d) else None


def _note(r: pd.Series | None) -> str:
    n = None if r is None else r.get("note")
    return "" if n is None or pd.isna(n) else str(n)


def sensitivity_caveat(rb: pd.DataFrame, sens: Mapping[str, pd.DataFrame | None] | None
                       ) -> Caveat:
    """Robustness value, Rosenbaum's breakdown Γ and the HonestDiD breakdown values.

    ``sens`` holds the estimate stage's ``sensitivity_ovb``, ``sensitivity_rosenbaum``
    and ``sensitivity_honestdid`` tables (each may be absent); without HonestDiD's table
    the robustness table's relative-magnitudes row gives the breakdown M̄.
    """
    sens = sens or {}
    parts, concern, assessed = [], False, False
    hd = sens.get("sensitivity_honestdid")
    rm = _first(hd, lambda d: (d["Delta"] == "DeltaRM")
                & d["method"].astype(str).str.startswith("breakdown"))
    sd = _first(hd, lambda d: (d["Delta"] == "DeltaSD")
                & d["method"].astype(str).str.startswith("breakdown"))
    bd = rb[rb["check"].astype(str) == "relative magnitudes breakdown Mbar"]
    m = rm["M"] if rm is not None else (bd["estimate"].iloc[0] if len(bd) else None)
    if m is not None and pd.notna(m):
        m = float(m)
        assessed, concern = True, concern or m < 1
        parts.append(
            "The interval stays above zero only while the bias after the visit changes "
            f"from month to month by at most {fmt_num(m, 2)} times the largest change seen "
            f"before it (breakdown M̄ = {fmt_num(m, 2)})"
            + ("; a value below one means modest departures from parallel paths would "
               "overturn the result." if m < 1 else ".")
        )
    elif rm is not None:
        assessed = True
        parts.append("No relative-magnitude bound on the grid keeps the interval away from "
                     "zero.")
    else:
        parts.append("No breakdown value for parallel paths was computed.")
    if sd is not None and pd.notna(sd["M"]):
        parts.append(f"Allowing the trend to bend by at most M points a month, the interval "
                     f"excludes zero up to M = {fmt_num(sd['M'], 2)}.")
    ovb = _first(sens.get("sensitivity_ovb"))
    if ovb is not None and pd.notna(ovb["rv_q"]):
        assessed = True
        parts.append(
            "An unobserved confounder would have to explain "
            f"{fmt_pct(100 * float(ovb['rv_q']), nd=1)} of the remaining variation of both "
            "the visit and attendance to remove the estimate (robustness value), and "
            f"{fmt_pct(100 * float(ovb['rv_qa']), nd=1)} to make it lose significance.")
    elif ovb is not None:
        parts.append(f"The robustness value could not be computed: {_note(ovb)}.")
    ros = _first(sens.get("sensitivity_rosenbaum"), lambda d: d["row"] == "breakdown")
    if ros is not None and pd.notna(ros["gamma"]):
        assessed = True
        g = float(ros["gamma"])
        concern |= g < GAMMA_CONCERN
        parts.append(
            "Rosenbaum bounds (Huber's M-test, Rosenbaum 2007): the effect stays "
            "significant unless a hidden characteristic "
            f"multiplies the odds of a visit by more than Γ = {fmt_num(g, 2)} between "
            "matched students.")
    elif ros is not None:
        parts.append(f"Rosenbaum bounds could not be computed: {_note(ros)}.")
    if not any(k in sens for k in ("sensitivity_ovb", "sensitivity_rosenbaum")):
        parts.append(
            "Not assessed: how strong an unobserved confounder would have to be "
            "(robustness value, Rosenbaum bounds)."
        )
    status = CONCERN if concern else (OK if assessed else NOT_ASSESSED)
    return Caveat("sensitivity", "Sensitivity to hidden bias", status, " ".join(parts))


def attrition_caveat(
    sizes: Mapping[str, int | None],
    reasons: pd.DataFrame,
    match_summary: pd.DataFrame,
    attrition: pd.DataFrame | None,
    window: tuple[int, int] | None = None,
) -> Caveat:
    """Visited students left out, why, and who (from the one sample-size table)."""
    v, nm, no = sizes["visited"], sizes["not_matched"], sizes["not_observed"]
    if v is None or nm is None:
        return Caveat("attrition", "Students left out", NOT_ASSESSED,
                      "The number of visited students left out cannot be published.")
    parts = [
        f"Of {plural(v, 'student')} with a completed visit, {fmt_int(nm)} "
        f"({fmt_pct(nm, v)}) could not be matched and are not in the estimate"
    ]
    why = [
        f"{fmt_int(n)} {MATCH_REASONS[r]}" for r, n in zip(reasons["reason"],
                                                          reasons["students"], strict=True)
        if r in MATCH_REASONS and (pd.isna(n) or n > 0)
    ]
    parts[0] += f" ({'; '.join(why)})." if why else "."
    if no:
        parts.append(f"A further {fmt_int(no)} matched students were not observed after "
                     "their first visit.")
    ms = match_summary[match_summary["treated"] > 0].copy()
    ms = ms[ms["treated"] >= 20] if len(ms) else ms
    overall = nm / v if v else 0.0
    if len(ms):
        ms["share"] = ms["unmatched"] / ms["treated"]
        worst = ms.sort_values(["share", "treated"], ascending=False).iloc[0]
    if len(ms) and worst["share"] >= max(1.5 * overall, overall + 0.05):
        parts.append(
            "Those left out are not a random part: "
            f"{fmt_pct(worst['unmatched'], worst['treated'])} of visited students with "
            f"{labels.subgroup(worst['dimension']).lower()} "
            f"“{labels.level(worst['level'])}” were left out, against "
            f"{fmt_pct(nm, v)} overall, so the estimate speaks less for them."
        )
    if attrition is not None and len(attrition):
        if window is not None:  # the headline's months, when the table covers them
            inw = attrition[attrition["event_time"].between(*window)]
            attrition = inw if len(inw) else attrition
        last = attrition.sort_values("event_time").iloc[-1]
        o = pd.to_numeric(attrition["overall_attrition"]).max()
        d = pd.to_numeric(attrition["differential_attrition"]).abs().max()
        parts.append(
            f"Attrition of the analytic sample reaches {fmt_pct(o)} overall and "
            f"{fmt_pct(d)} differential; by month {fmt_num(last['event_time'], 0)} the What "
            f"Works Clearinghouse classes it as {labels.words(last['wwc_attrition']).lower()} "
            f"attrition ({labels.words(last['boundary']).lower()} boundary)."
        )
    else:
        parts.append("Not assessed: differential attrition against the What Works "
                     "Clearinghouse boundaries.")
    share = nm / v if v else 0
    return Caveat("attrition", "Students left out", CONCERN if share > 0.1 else OK,
                  " ".join(parts))


def rating_caveat(wwc: pd.DataFrame | None, effect_sizes: pd.DataFrame | None = None
                  ) -> Caveat:
    """The What Works Clearinghouse rating (``wwc`` table, its ``rating`` row) and the
    effect sizes (``effect_sizes`` table)."""
    r = _first(wwc, lambda d: d["item"] == "rating")
    es = [] if effect_sizes is None else [
        f"{labels.words(e['measure'])} on {labels.label(e['outcome']).lower()} "
        f"{fmt_num(e['estimate'], 2, True)} ({_ci(e['ci_low'], e['ci_high'], 2)}"
        + (f"; improvement index {fmt_num(e['improvement_index'], 0, True)}"
           if pd.notna(e.get("improvement_index")) else "") + ")"
        for _, e in effect_sizes.iterrows() if pd.notna(e["estimate"])]
    tail = f" Effect sizes: {'; '.join(es)}." if es else ""
    if r is None:
        return Caveat(
            "rating", "Evidence rating", NOT_ASSESSED,
            "No evidence rating has been computed. Under What Works Clearinghouse standards "
            "a quasi-experimental design like this one can at best meet standards with "
            "reservations." + tail,
        )
    cat = str(r["category"])
    return Caveat("rating", "Evidence rating",
                  OK if "meets" in cat.lower() and "not" not in cat.lower() else CONCERN,
                  f"{labels.words(cat)}: {r['reason']}.".replace("..", ".") + tail)


#: How the text names the clustering unit of the standard errors (estimate.cluster).
CLUSTERS = {"home_school_code": "each student's first school",
            "home_district_code": "each student's first district",
            "district_code": "district", "school_code": "school"}


def _est_ci(r: Mapping[str, Any]) -> str:
    return f"{fmt_num(r['estimate'], 1, True)} points ({_ci(r['ci_low'], r['ci_high'])})"


def reachability_caveat(rows: Mapping[str, Any]) -> Caveat | None:
    """Intent to treat at the first attempted visit (estimands table); ``None`` without it."""
    if "itt" not in rows:
        return None
    text = (
        "The headline counts students whose family was reached, who may differ in ways "
        "the records do not show. Counting every student a "
        "visitor first tried to reach, reached or not (intent to treat), the average is "
        f"{_est_ci(rows['itt'])}"
    )
    if "reached" in rows:
        text += (f"; divided by the share of families reached, {_est_ci(rows['reached'])} "
                 "per family reached, assuming an attempt without contact changes nothing")
    itt = rows["itt"]
    excl = bool(itt["ci_low"] > 0 or itt["ci_high"] < 0)
    return Caveat("reachability", "Families who could not be reached",
                  OK if excl else CONCERN, text + ".")


def inference_caveat(metrics: Mapping[str, Any], rows: Mapping[str, Any] | None = None) -> Caveat:
    """What the interval does and does not account for (with the estimands' intervals)."""
    att = metrics["att"]
    rows = rows or {}
    cluster = (metrics.get("design_settings") or {}).get("cluster", "")
    parts = []
    boot = att.get("design_bootstrap") or ("design" in rows)
    if "design" in rows:
        d = rows["design"]
        parts.append(
            "Re-running the whole design (matching score, matching and censoring weights) "
            f"on schools resampled within districts gives {fmt_num(d['ci_low'])} to "
            f"{fmt_num(d['ci_high'])}"
            + (f"; a wild bootstrap over the few program districts gives "
               f"{fmt_num(rows['district']['ci_low'])} to "
               f"{fmt_num(rows['district']['ci_high'])}." if "district" in rows else ".")
        )
    elif boot:
        parts.append(f"A design bootstrap (re-estimating the matching and weights in every "
                     f"draw) gives {_ci(boot['ci_low'], boot['ci_high'])}.")
    else:
        parts.append("Not assessed: the interval treats the estimated matching score and "
                     "weights as known (no design bootstrap).")
    if cluster in ("student_key", "student"):
        parts.append("Errors are clustered by student, not by school or district, although "
                     "students share schools.")
    elif cluster:
        parts.insert(0, f"Errors are clustered by {CLUSTERS.get(cluster, 'group')}.")
    cens = metrics.get("censoring") or {}
    if cens.get("weight_max") is not None:
        parts.append(f"The largest censoring weight is {fmt_num(cens['weight_max'], 1)} "
                     f"(mean {fmt_num(cens.get('weight_mean'), 2)}).")
    status = OK if boot and cluster not in ("student_key", "student") else (
        CONCERN if cluster in ("student_key", "student") else NOT_ASSESSED)
    return Caveat("inference", "Uncertainty", status, " ".join(parts))


def stress_caveat(validation: pd.DataFrame | None) -> Caveat:
    """Verdicts of the simulation study in worlds that break the design's assumptions."""
    if validation is None or "verdict" not in validation.columns:
        return Caveat(
            "stress", "Worlds that break the assumptions", NOT_ASSESSED,
            "Not assessed: how the design fares when referral, reachability or attrition "
            "break its assumptions.",
        )
    v = validation.dropna(subset=["verdict"]).drop_duplicates("scenario")
    by = v.groupby("verdict", sort=True)["scenario"].apply(
        lambda s: join_words([labels.scenario(x).lower() for x in s]))
    bad = {"not identified", "not_identified"} & set(v["verdict"].astype(str))
    text = "; ".join(f"{labels.words(k)}: {w}" for k, w in by.items()) + "."
    return Caveat("stress", "Worlds that break the assumptions", CONCERN if bad else OK, text)


def build_caveats(
    pub_tables: Mapping[str, pd.DataFrame],
    sizes: Mapping[str, int | None],
    metrics: Mapping[str, Any],
    optional: Mapping[str, pd.DataFrame | None],
    facts: Mapping[str, Any],
    rows: Mapping[str, Any] | None = None,
) -> list[Caveat]:
    """Every caveat, concerns first then checked then not assessed (stable order)."""
    cav = [
        balance_caveat(pub_tables["balance"], float(facts["wwc_equivalence"]),
                       float(facts["wwc_adjustment_limit"])),
        falsification_caveat(pub_tables["robustness"], metrics["pretrend_test"],
                             optional.get("sensitivity_falsification")),
        sensitivity_caveat(pub_tables["robustness"], {
            k: optional[k] for k in ("sensitivity_ovb", "sensitivity_rosenbaum",
                                     "sensitivity_honestdid") if optional.get(k) is not None}),
        attrition_caveat(sizes, pub_tables["match_reasons"], pub_tables["match_summary"],
                         optional.get("attrition"), tuple(metrics["att_window"])),
        inference_caveat(metrics, rows),
        stress_caveat(optional.get("validation")),
        rating_caveat(optional.get("wwc"), optional.get("effect_sizes")),
        reachability_caveat(rows or {}),
    ]
    cav = [c for c in cav if c is not None]
    order = {CONCERN: 0, OK: 1, NOT_ASSESSED: 2}
    return sorted(cav, key=lambda c: order[c.status])
