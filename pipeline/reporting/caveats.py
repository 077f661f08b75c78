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


def _ci(lo: Any, hi: Any) -> str:
    return f"{CI_LEVEL}% CI {fmt_num(lo)} to {fmt_num(hi)}"


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


def falsification_caveat(rb: pd.DataFrame, pretrend: Mapping[str, Any]) -> Caveat:
    """The joint pre-trend test and every placebo row of the robustness table."""
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
    return Caveat("falsification", "Falsification tests", CONCERN if bad else OK, " ".join(parts))


def sensitivity_caveat(rb: pd.DataFrame, sens: pd.DataFrame | None) -> Caveat:
    """Breakdown values (relative magnitudes) and, when present, the sensitivity table."""
    bd = rb[rb["check"].astype(str) == "relative magnitudes breakdown Mbar"]
    parts, concern = [], False
    if len(bd) and pd.notna(bd["estimate"].iloc[0]):
        m = float(bd["estimate"].iloc[0])
        concern |= m < 1
        parts.append(
            "The interval stays above zero only while the bias after the visit changes "
            f"from month to month by at most {fmt_num(m, 2)} times the largest change seen "
            f"before it (breakdown M̄ = {fmt_num(m, 2)})"
            + ("; a value below one means modest departures from parallel paths would "
               "overturn the result." if m < 1 else ".")
        )
    else:
        parts.append("No breakdown value for parallel paths was computed.")
    if sens is not None and len(sens):
        for _, r in sens.iterrows():
            parts.append(f"{labels.words(r['method'])}: {labels.words(r['quantity']).lower()} "
                         f"{fmt_num(r['estimate'], 2)}.")
    else:
        parts.append(
            "Not assessed: how strong an unobserved confounder would have to be "
            "(robustness value, Rosenbaum bounds)."
        )
    status = CONCERN if concern else (OK if sens is not None else NOT_ASSESSED)
    return Caveat("sensitivity", "Sensitivity to hidden bias", status, " ".join(parts))


def attrition_caveat(
    sizes: Mapping[str, int | None],
    reasons: pd.DataFrame,
    match_summary: pd.DataFrame,
    attrition: pd.DataFrame | None,
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
        o = pd.to_numeric(attrition["overall"]).max()
        d = pd.to_numeric(attrition["differential"]).abs().max()
        parts.append(f"Attrition of the analytic sample reaches {fmt_pct(o)} overall and "
                     f"{fmt_pct(d)} differential.")
    else:
        parts.append("Not assessed: differential attrition against the What Works "
                     "Clearinghouse boundaries.")
    share = nm / v if v else 0
    return Caveat("attrition", "Students left out", CONCERN if share > 0.1 else OK,
                  " ".join(parts))


def rating_caveat(rating: pd.DataFrame | None) -> Caveat:
    """The evidence rating, when an analysis has written one."""
    if rating is None or rating.empty:
        return Caveat(
            "rating", "Evidence rating", NOT_ASSESSED,
            "No evidence rating has been computed. Under What Works Clearinghouse standards "
            "a quasi-experimental design like this one can at best meet standards with "
            "reservations.",
        )
    r = rating.iloc[0]
    return Caveat("rating", "Evidence rating", OK if "meets" in str(r["rating"]).lower()
                  else CONCERN, f"{labels.words(r['rating'])}: {r['reason']}")


def inference_caveat(metrics: Mapping[str, Any]) -> Caveat:
    """What the interval does and does not account for."""
    att = metrics["att"]
    cluster = (metrics.get("design_settings") or {}).get("cluster", "")
    parts = []
    boot = att.get("design_bootstrap")
    if boot:
        parts.append(f"A design bootstrap (re-estimating the matching and weights in every "
                     f"draw) gives {_ci(boot['ci_low'], boot['ci_high'])}.")
    else:
        parts.append("Not assessed: the interval treats the estimated matching score and "
                     "weights as known (no design bootstrap).")
    if cluster in ("student_key", "student"):
        parts.append("Errors are clustered by student, not by school or district, although "
                     "students share schools.")
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
            "break its assumptions (the simulation study tests only worlds built around them).",
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
) -> list[Caveat]:
    """Every caveat, concerns first then checked then not assessed (stable order)."""
    cav = [
        balance_caveat(pub_tables["balance"], float(facts["wwc_equivalence"]),
                       float(facts["wwc_adjustment_limit"])),
        falsification_caveat(pub_tables["robustness"], metrics["pretrend_test"]),
        sensitivity_caveat(pub_tables["robustness"], optional.get("sensitivity")),
        attrition_caveat(sizes, pub_tables["match_reasons"], pub_tables["match_summary"],
                         optional.get("attrition")),
        inference_caveat(metrics),
        stress_caveat(optional.get("validation")),
        rating_caveat(optional.get("evidence_rating")),
    ]
    order = {CONCERN: 0, OK: 1, NOT_ASSESSED: 2}
    return sorted(cav, key=lambda c: order[c.status])
