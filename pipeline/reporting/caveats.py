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

import numpy as np
import pandas as pd

from pipeline import labels
from pipeline.reporting import worlds
from pipeline.reporting.fmt import CI_LEVEL, fmt_int, fmt_num, fmt_p, fmt_pct, join_words, plural
from pipeline.reporting.inputs import MATCH_REASONS
from pipeline.sensitivity.config import wwc_required
from pipeline.sensitivity.wwc import EQUIV_ADJUST, EQUIV_SATISFIED

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
    #: one line each (e.g. one per simulated world), printed as a list under the text
    items: tuple[str, ...] = ()

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def _ci(lo: Any, hi: Any, nd: int = 1) -> str:
    return f"{CI_LEVEL}% CI {fmt_num(lo, nd)} to {fmt_num(hi, nd)}"


def balance_caveat(bal: pd.DataFrame, equivalence: float, adjustment: float) -> Caveat:
    """Covariates outside the What Works Clearinghouse equivalence bounds after matching,
    split into the pre-visit attendance measures the evidence rating rests on
    (:func:`pipeline.sensitivity.config.wwc_required`) and the other characteristics.

    Uses the table's ``wwc_effect_size_after`` when present, else ``smd_after``.
    """
    col = "wwc_effect_size_after" if "wwc_effect_size_after" in bal.columns else "smd_after"
    g = pd.to_numeric(bal[col], errors="coerce").abs()
    over = bal.loc[g > adjustment, "covariate"]
    req = [labels.variable(c) for c in over if wwc_required(c)]
    other = [labels.variable(c) for c in over if not wwc_required(c)]
    adjust = int(((g > equivalence) & (g <= adjustment)).sum())
    n = int(g.notna().sum())
    what = "effect size (Hedges' g or Cox index)" if col.startswith("wwc") else (
        "standardised difference")
    if req or other:
        k = len(req) + len(other)
        text = (f"After matching, at the first visit, {k} of {n} characteristics "
                f"{'differs' if k == 1 else 'differ'} by more than {fmt_num(adjustment, 2)} "
                f"in {what}, beyond what the What Works Clearinghouse accepts even with "
                "adjustment.")
        if req:
            text += (f" Measures of attendance before the visit, on which the evidence rating "
                     f"rests (see Evidence rating): {join_words(req)}.")
        if other:
            text += (f" Not required for attendance outcomes, so not in the rating, and not "
                     f"adjusted for beyond the matching: {join_words(other)}.")
        text += (f" Another {adjust} {'lies' if adjust == 1 else 'lie'} between "
                 f"{fmt_num(equivalence, 2)} and {fmt_num(adjustment, 2)}.")
        return Caveat("balance", "Balance after matching", CONCERN, text)
    text = (
        f"After matching, no characteristic of {n} differs by more than "
        f"{fmt_num(adjustment, 2)} in {what}; {plural(adjust, 'characteristic')} "
        f"between {fmt_num(equivalence, 2)} and {fmt_num(adjustment, 2)} need the "
        "statistical adjustment the design makes."
    )
    return Caveat("balance", "Balance after matching", CONCERN if adjust else OK, text)


def falsification_caveat(pretrend: Mapping[str, Any],
                         fals: pd.DataFrame | None = None, history: bool = False) -> Caveat:
    """The joint pre-trend test and, when present, each design's equivalence bound
    (``sensitivity_falsification``).  The placebo-date check is not among them: it does
    not tell worlds the design handles from worlds that break it (appendix). With
    ``history`` (``estimate.history``) the design adjusts for the whole record, which holds
    the placebo months: the caveat says the test is weak and is a caution even when the
    test passes (a passed test that could hardly fail checks nothing)."""
    p = float(pretrend["p_value"])
    times = pretrend.get("event_times") or []
    when = (
        f"school months {join_words([fmt_num(t, 0) for t in times])} before the visit"
        if times else "the months before the visit"
    )
    parts = [
        f"Differences in {when}, which the design does not adjust for, are jointly "
        f"{'consistent' if p >= 0.05 else 'not consistent'} with zero (p = {fmt_p(p)})."
    ]
    if history:
        parts.append(
            "The design also adjusts for attendance over the whole record, which includes "
            "those months, so this test has little power to reveal a flawed comparison."
        )
    bad = p < 0.05
    for _, f in (fals if fals is not None else pd.DataFrame()).iterrows():
        if pd.isna(f["equivalence_bound"]):
            continue
        bad |= str(f["pretrend_reject"]).lower() in ("true", "1", "1.0")
        # the primary's placebo-month p is the joint test's above: not said twice
        same = pd.notna(f["pretrend_p"]) and fmt_p(f["pretrend_p"]) == fmt_p(p)
        parts.append(
            f"{labels.estimator(f['estimator'])}: "
            + ("" if same else f"placebo months p = {fmt_p(f['pretrend_p'])}; ")
            + "the data rule out a pre-visit difference larger than "
            f"{fmt_num(f['equivalence_bound'], 1)} points (equivalence bound, "
            f"{fmt_num(f['bound_over_effect'], 2)} times the effect)."
        )
    return Caveat("falsification", "Falsification tests", CONCERN if bad or history else OK,
                  " ".join(parts))


def _first(df: pd.DataFrame | None, mask=None) -> pd.Series | None:
    """The first row of ``df`` (where ``mask``), or ``None`` when there is none."""
    if df is None or df.empty:
        return None
    d = df[mask(df)] if mask is not None else df
    return d.iloc[0] if len(d) else None


def _note(r: pd.Series | None) -> str:
    n = None if r is None else r.get("note")
    return "" if n is None or pd.isna(n) else str(n)


def honest_rows(hd: pd.DataFrame | None) -> dict[str, pd.Series | None]:
    """The HonestDiD table's original interval and its two breakdown rows."""
    def pick(delta: str, method: str) -> pd.Series | None:
        return _first(hd, lambda d: (d["Delta"] == delta)
                      & d["method"].astype(str).str.startswith(method))
    return {"original": pick("none", "original"), "rm": pick("DeltaRM", "breakdown"),
            "sd": pick("DeltaSD", "breakdown")}


def honest_text(hd: pd.DataFrame | None, design: str, short: bool = False
                ) -> tuple[list[str], bool, bool]:
    """Sentences on the HonestDiD breakdown values and what they mean for the headline
    design; returns ``(sentences, assessed, concern)`` (``short``: the first page's, without
    the smoothness bound)."""
    h = honest_rows(hd)
    rm, sd, orig = h["rm"], h["sd"], h["original"]
    if rm is None and sd is None:
        return ["Not assessed: how far the matched differences design's paths may depart "
                "from parallel (HonestDiD)."], False, False
    whose = "The matched differences design" if design == "ancova" else "The headline design"
    ci = (f" ({_ci(orig['lb'], orig['ub'])})" if orig is not None and pd.notna(orig["lb"])
          else "")
    concern = True
    if rm is not None and pd.notna(rm["M"]):
        m = float(rm["M"])
        concern = m < 1
        parts = [f"{whose}{ci} stays away from zero while its bias after the visit changes "
                 f"month to month by at most {fmt_num(m, 2)} times the largest change before "
                 f"it (breakdown M̄ = {fmt_num(m, 2)}, HonestDiD)"
                 + ("; below one, modest departures from parallel paths would overturn it."
                    if m < 1 else ".")]
    else:
        parts = [f"{whose}{ci} includes zero under every relative-magnitude bound tried."]
    if sd is not None and pd.notna(sd["M"]) and not short:
        parts.append(f"Letting its trend bend by M points a month, it excludes zero up to "
                     f"M = {fmt_num(sd['M'], 2)}.")
    if design == "ancova":
        parts.append("These bounds do not apply to the headline, which does not assume "
                     "parallel paths.")
    return parts, True, concern


def sensitivity_caveat(rb: pd.DataFrame, sens: Mapping[str, pd.DataFrame | None] | None,
                       design: str = "ancova") -> Caveat:
    """Robustness value, Rosenbaum's breakdown Γ and the HonestDiD breakdown values.

    ``sens`` holds the estimate stage's ``sensitivity_ovb``, ``sensitivity_rosenbaum``
    and ``sensitivity_honestdid`` tables (each may be absent).  The HonestDiD sets are
    computed for the matched differences design; with the matched ANCOVA as the headline
    (``design``), the text says that they do not bound it.  ``rb`` (the robustness
    table) is no longer read: its Bonferroni relative-magnitude rows are superseded by
    the HonestDiD table.
    """
    sens = sens or {}
    parts, assessed, concern = honest_text(sens.get("sensitivity_honestdid"), design, True)
    ovb = _first(sens.get("sensitivity_ovb"))
    if ovb is not None and pd.notna(ovb["rv_q"]):
        assessed = True
        v = ovb.get("estimate")
        est = f"{fmt_num(v, 1, signed=True)} points; " if v is not None and pd.notna(v) else ""
        parts.append(
            "A hidden confounder would have to explain "
            f"{fmt_pct(100 * float(ovb['rv_q']), nd=1)} of the remaining variation of both "
            "the visit and attendance to remove a simpler, student-level form of the "
            f"estimate ({est}robustness value; "
            f"{fmt_pct(100 * float(ovb['rv_qa']), nd=1)} to make it insignificant).")
    elif ovb is not None:
        parts.append(f"The robustness value could not be computed: {_note(ovb)}.")
    ros = _first(sens.get("sensitivity_rosenbaum"), lambda d: d["row"] == "breakdown")
    if ros is not None and pd.notna(ros["gamma"]):
        assessed = True
        g = float(ros["gamma"])
        concern |= g < GAMMA_CONCERN
        parts.append(
            "It stays significant unless a hidden characteristic multiplies the odds of a "
            f"visit between matched students by more than Γ = {fmt_num(g, 2)} (Rosenbaum "
            "bounds, Huber's M-test, Rosenbaum 2007).")
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
    lee: Mapping[str, Any] | None = None,
) -> Caveat:
    """Visited students left out, why, and who (from the one sample-size table), and Lee
    (2009) bounds on the headline for the attrition (``lee``: the estimands row)."""
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
    if lee is not None:
        lo, hi = float(lee["ci_low"]), float(lee["ci_high"])
        est = pd.to_numeric(pd.Series([lee.get("estimate")]), errors="coerce").iloc[0]
        around = (f" around the raw difference among students seen in every month "
                  f"({fmt_num(est, 1, True)}), not the headline" if pd.notna(est) else "")
        parts.append(
            f"Lee bounds for this attrition: {fmt_num(lo, 1, True)} to "
            f"{fmt_num(hi, 1, True)} points{around}"
            + ((", and include zero" if around else ", which include zero")
               if lo <= 0 <= hi else "")
            + (f"; compare their width ({fmt_num(hi - lo, 1)} points), not their level, with "
               "it." if around else ".")
        )
    share = nm / v if v else 0
    return Caveat("attrition", "Students left out", CONCERN if share > 0.1 else OK,
                  " ".join(parts))


def _is_true(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0")


def equivalence_summary(wwc: pd.DataFrame) -> dict[str, Any]:
    """The baseline-equivalence rows of the WWC table, split into the required measures
    (the rating rests on them) and the others; per characteristic the largest |g| over
    the event times and its worst category.  Tables written before the ``required``
    column existed count every row as required (as their rating did)."""
    eq = wwc[wwc["item"] == "baseline equivalence"].copy()
    eq["required"] = (eq["required"].map(_is_true) if "required" in eq.columns
                      else True)
    eq["absg"] = pd.to_numeric(eq.get("value", pd.Series(np.nan, index=eq.index)),
                               errors="coerce").abs()
    rank = {"satisfied": 0, "satisfied with adjustment": 1, "requires adjustment": 2,
            "not assessed": 3, "not satisfied": 4}
    eq["rank"] = eq["category"].map(rank).fillna(3)
    if "characteristic" not in eq.columns:
        eq["characteristic"] = ""
    worst = (eq.sort_values(["rank", "absg"], ascending=False)
             .drop_duplicates("characteristic").sort_values("characteristic"))
    times = pd.to_numeric(eq.get("event_time", pd.Series(dtype=float)),
                          errors="coerce").dropna()
    return {
        "n_required": int(eq["required"].sum()),
        "required": worst[worst["required"]],
        "other": worst[~worst["required"]],
        "months": (int(times.min()), int(times.max())) if len(times) else None,
    }


def _named(rows: pd.DataFrame, short: bool = False) -> str:
    if short:  # one name per characteristic, its levels after it
        fam: dict[str, list[str]] = {}
        for c in rows["characteristic"].astype(str):
            var, _, lv = c.partition("=")
            fam.setdefault(var, []).append(lv)
        names = [labels.variable(v) + (f": {join_words([labels.level(x) for x in lv])}"
                                       if any(lv) else "") for v, lv in fam.items()]
        return "; ".join(names) + f" (|g| up to {fmt_num(rows['absg'].max(), 2)})"
    return join_words([f"{labels.variable(r.characteristic)} (|g| up to "
                       f"{fmt_num(r.absg, 2)})" for r in rows.itertuples()])


def rating_text(wwc: pd.DataFrame, r: pd.Series, short: bool = False) -> str:
    """What the rating rests on, which required measures fail and which other
    characteristics exceed the limit, from the WWC table (``short``: one largest |g| per
    list, for the first page)."""
    e = equivalence_summary(wwc)
    req, other = e["required"], e["other"]
    when = (f" in school months {e['months'][0]} to {e['months'][1]} after the visit"
            if e["months"] else "")
    fams = list(dict.fromkeys(labels.variable(str(c).split("=")[0])
                              for c in req["characteristic"] if str(c)))
    named = f" ({join_words(fams).lower()})" if fams and not short else ""
    text = (f"{labels.words(r['category'])}. The rating rests on baseline equivalence of the "
            f"measures of attendance before the visit{named} among the "
            f"students analysed{when}, weighted as in the estimate: "
            f"{plural(e['n_required'], 'comparison')}.")
    fail = req[req["rank"] >= 2]
    if len(fail):
        nots = fail[fail["category"] == "not satisfied"]
        unadj = fail[fail["category"] == "requires adjustment"]
        if len(nots):
            text += (f" {_named(nots, short)} {'differs' if len(nots) == 1 else 'differ'} by more "
                     f"than {fmt_num(EQUIV_ADJUST, 2)}, which no adjustment can repair.")
        if len(unadj):
            text += (f" {_named(unadj, short)} {'differs' if len(unadj) == 1 else 'differ'} by more "
                     f"than {fmt_num(EQUIV_SATISFIED, 2)} and the estimate does not adjust for "
                     f"{'it' if len(unadj) == 1 else 'them'}.")
        text += " One failing measure fails every finding on attendance (WWC handbook)."
    else:
        text += (f" Every one is within {fmt_num(EQUIV_ADJUST, 2)} and those above "
                 f"{fmt_num(EQUIV_SATISFIED, 2)} are adjusted for.")
    over = other[other["absg"] > EQUIV_ADJUST]
    if len(over) and short:  # each one is named in the section (the long text)
        text += (f" Beyond {fmt_num(EQUIV_ADJUST, 2)} but not required for attendance "
                 f"outcomes, so not in the rating: {plural(len(over), 'other characteristic')} "
                 f"(|g| up to {fmt_num(over['absg'].max(), 2)}; named in Sensitivity and "
                 "evidence standards).")
    elif len(over):
        text += (f" Other characteristics differ by more than {fmt_num(EQUIV_ADJUST, 2)} "
                 f"({_named(over, short)}); a review protocol for attendance outcomes does not "
                 "require them, so they do not change the rating.")
    return text


#: How the text names the effect-size measures of the ``effect_sizes`` table.
MEASURES = {"hedges_g": "Hedges' g", "cox_index": "Cox index"}


def measure(name: Any) -> str:
    """Display name of an effect-size measure."""
    return MEASURES.get(str(name), labels.words(name))


def rating_caveat(wwc: pd.DataFrame | None, effect_sizes: pd.DataFrame | None = None
                  ) -> Caveat:
    """The What Works Clearinghouse rating (``wwc`` table: its ``rating`` row and the
    baseline-equivalence rows it rests on) and the effect sizes (``effect_sizes``)."""
    r = _first(wwc, lambda d: d["item"] == "rating")
    # (the improvement index is in the sensitivity section's effect-size table)
    es = [] if effect_sizes is None else [
        f"{measure(e['measure'])} on {labels.label(e['outcome']).lower()} "
        f"{fmt_num(e['estimate'], 2, True)} ({_ci(e['ci_low'], e['ci_high'], 2)})"
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
    meets = "meets" in cat.lower() and "not" not in cat.lower()
    return Caveat("rating", "Evidence rating", OK if meets else CONCERN,
                  rating_text(wwc, r, short=True) + tail)


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
        "the records do not show. Counting the matched students a visitor first tried to "
        f"reach, reached or not (intent to treat), the average is {_est_ci(rows['itt'])}"
    )
    if "reached" in rows:
        text += (f"; divided by the share of families reached, {_est_ci(rows['reached'])} "
                 "per family reached, assuming an attempt without contact changes nothing")
    itt = rows["itt"]
    excl = bool(itt["ci_low"] > 0 or itt["ci_high"] < 0)
    return Caveat("reachability", "Families who could not be reached",
                  OK if excl else CONCERN, text + ".")


def ordinal(q: float) -> str:
    """A quantile as the percentile it is: 0.01 → "1st", 0.99 → "99th", 0.025 → "2.5th"."""
    v = round(100 * float(q), 6)
    n = f"{v:g}"
    if v != int(v) or 10 <= int(v) % 100 <= 20:
        return f"{n}th"
    return n + {1: "st", 2: "nd", 3: "rd"}.get(int(v) % 10, "th")


def truncation_percentiles(t) -> list[str]:
    """The truncation quantiles of ``estimate.ipcw_truncate`` (a pair, one upper quantile
    or ``None``) as percentiles in words ("1st", "99th"); empty when none."""
    if t is None:
        return []
    lo, hi = (list(t) + [None, None])[:2] if isinstance(t, (list, tuple)) else (None, t)
    return [ordinal(q) for q in (lo, hi) if q is not None]


def truncation(cens: Mapping[str, Any]) -> tuple[str, bool] | None:
    """How the censoring weights were truncated, from what the estimate stage records
    (metrics ``censoring.truncate``: the quantiles of ``estimate.ipcw_truncate``, None for
    none): the sentence and whether they were; ``None`` when not recorded."""
    if "truncate" not in cens:
        return None
    qs = truncation_percentiles(cens["truncate"])
    if not qs:
        return "The censoring weights are not truncated.", False
    rows = cens.get("truncated_rows")
    return (f"The censoring weights are truncated at the {join_words(qs)} "
            f"{'percentile' if len(qs) == 1 else 'percentiles'} of the uncensored weights"
            + (f" ({plural(rows, 'row')} truncated)." if rows is not None else "."), True)


def truncation_text(cens: Mapping[str, Any]) -> str:
    """The sentence of :func:`truncation`, empty when the setting is not recorded."""
    t = truncation(cens)
    return "" if t is None else t[0]


def window_end_weights(diag: pd.DataFrame | None, window: tuple[int, int]) -> pd.Series | None:
    """The censoring diagnostics' row of the headline window's last month (comparison rows,
    their effective number under the weights, the largest weight); ``None`` without it."""
    need = {"event_time", "comparison_rows", "effective_sample_size", "max_weight"}
    if diag is None or not need <= set(diag.columns):
        return None
    r = diag[pd.to_numeric(diag["event_time"], errors="coerce") == window[1]]
    if r.empty or pd.isna(r.iloc[0]["effective_sample_size"]):
        return None
    return r.iloc[0]


def weights_at_window_end(r: pd.Series | None, window: tuple[int, int]) -> str:
    """How far the censoring weights thin the comparison group at the window's last month
    (``r``: :func:`window_end_weights`)."""
    if r is None:
        return ""
    return (f"By month {window[1]} the censoring weights leave the equivalent of "
            f"{fmt_num(r['effective_sample_size'], 0)} of {fmt_int(r['comparison_rows'])} "
            f"comparison rows (largest weight {fmt_num(r['max_weight'], 1)}).")


def _thin_weights(r: pd.Series | None) -> bool:
    """Whether the censoring weights leave under a tenth of the comparison rows' worth of
    information at the window's last month (``r``: :func:`window_end_weights`)."""
    if r is None or pd.isna(r["comparison_rows"]) or float(r["comparison_rows"]) <= 0:
        return False
    return bool(float(r["effective_sample_size"]) < 0.1 * float(r["comparison_rows"]))


#: The design bootstrap's standard error over the analytic one above which the Uncertainty
#: caution says the analytic interval leaves out the estimated design (and is a concern).
BOOTSTRAP_WIDER = 1.25


def bootstrap_wider(metrics: Mapping[str, Any], rows: Mapping[str, Any]) -> float | None:
    """The design bootstrap's standard error over the headline's analytic one, when both
    are known."""
    d = rows.get("design")
    se = (metrics.get("att") or {}).get("std_error")
    if d is None or se is None or not float(se) > 0 or pd.isna(d.get("std_error")):
        return None
    return float(d["std_error"]) / float(se)


def inference_caveat(
    metrics: Mapping[str, Any],
    rows: Mapping[str, Any] | None = None,
    study_coverage: Mapping[str, Any] | None = None,
    censoring_diagnostics: pd.DataFrame | None = None,
) -> Caveat:
    """What the interval does and does not account for (with the estimands' intervals),
    and how often the same interval covered the truth in the stress-test study
    (``study_coverage``, :func:`pipeline.reporting.context.study_coverage`)."""
    att = metrics["att"]
    rows = rows or {}
    # a design bootstrap much wider than the analytic interval: said, and a concern
    wider = bootstrap_wider(metrics, rows)
    much_wider = wider is not None and wider > BOOTSTRAP_WIDER
    cluster = (metrics.get("design_settings") or {}).get("cluster", "")
    parts = []
    boot = att.get("design_bootstrap") or ("design" in rows)
    if "design" in rows:
        d = rows["design"]
        imputed = (metrics.get("censoring") or {}).get("method") == "impute"
        redo = "imputation" if imputed else "censoring weights"
        est_boot = (metrics.get("estimands") or {}).get("att_design_bootstrap") or {}
        on = labels.boot_scheme(est_boot.get("scheme"))["on"]
        parts.append(
            f"Re-running the whole design (matching score, matching and {redo}) "
            f"{on} gives {fmt_num(d['ci_low'])} to "
            f"{fmt_num(d['ci_high'])}"
            + (f" (its standard error {fmt_num(wider, 1)} times the analytic one, which "
               f"takes them as known)" if much_wider else "")
            + (f"; a wild bootstrap by district (few clusters) gives "
               f"{fmt_num(rows['district']['ci_low'])} to "
               f"{fmt_num(rows['district']['ci_high'])}." if "district" in rows else ".")
            + (" Act on the wider interval." if much_wider else "")
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
        ds = metrics.get("design_settings") or {}
        extra = []
        if ds.get("vcov") == "CR2":
            extra.append("with the Bell-McCaffrey small-sample correction")
        if ds.get("effect_strata"):
            extra.append("effects are estimated within each "
                         f"{str(ds['effect_strata']).replace('_', ' ')} and averaged")  # fmt: skip
        text = f"Errors are clustered by {CLUSTERS.get(cluster, 'group')}"
        parts.insert(0, text + (", " + "; ".join(extra) if extra else "") + ".")
    cens = metrics.get("censoring") or {}
    window = tuple(metrics["att_window"]) if metrics.get("att_window") else None
    end_row = window_end_weights(censoring_diagnostics, window) if window else None
    at_end = weights_at_window_end(end_row, window) if window else ""
    if cens.get("weight_max") is not None and not at_end:
        parts.append(f"The largest censoring weight is {fmt_num(cens['weight_max'], 1)} "
                     f"(mean {fmt_num(cens.get('weight_mean'), 2)}).")
    parts.append(truncation_text(cens))
    parts.append(at_end)
    if cens.get("method") == "impute" and not much_wider:  # else said with the re-run
        parts.append(
            f"The attendance of comparison students visited later is imputed "
            f"({plural(cens.get('imputed_rows', 0), 'row')}); the analytic interval treats "
            "it as observed."
        )
    if study_coverage:
        c = study_coverage
        span = (f"{fmt_num(c['lo'], 0)}%" if round(c["lo"]) == round(c["hi"])
                else f"{fmt_num(c['lo'], 0)}% to {fmt_num(c['hi'], 0)}%")
        parts.append(
            f"In the simulation study with these settings it covered the truth in {span} of "
            f"replications in the {plural(c['worlds'], 'valid world')} ({CI_LEVEL}% intended)."
        )
    if _thin_weights(end_row) or much_wider:
        return Caveat("inference", "Uncertainty", CONCERN, " ".join(p for p in parts if p))
    status = OK if boot and cluster not in ("student_key", "student") else (
        CONCERN if cluster in ("student_key", "student") else NOT_ASSESSED)
    return Caveat("inference", "Uncertainty", status, " ".join(p for p in parts if p))


def stress_caveat(validation: pd.DataFrame | None, verdicts: pd.DataFrame | None = None,
                  primary: str | None = None) -> Caveat:
    """Verdicts of the simulation study in worlds that break the design's assumptions,
    one line per kind of verdict (:func:`pipeline.reporting.worlds.first_page_lines`):
    from the study's verdict table (``verdicts.csv`` beside ``report.validation_table``;
    the primary design's rows) when present, else from the verdict columns of the
    validation table (the ``primary`` estimator's rows).  Both carry the verdicts' basis
    columns (:func:`pipeline.reporting.worlds.with_basis`). A caution when the design is
    not identified in some world or the validation table has a world beyond the records
    (:func:`beyond_the_records`), which no check flags."""
    topic = "Worlds that break the assumptions"
    v = verdicts if verdicts is not None and "verdict" in verdicts.columns else validation
    if v is None or "verdict" not in v.columns or v["verdict"].isna().all():
        return Caveat(
            "stress", topic, NOT_ASSESSED,
            "Not assessed: how the design fares when referral, reachability or attrition "
            "break its assumptions.",
        )
    n = worlds.min_reps(v, primary)
    head = ("In the simulation study (" + (f"{plural(n, 'replication')} per world; " if n
                                          else "")
            + "reasons in the appendix), the primary design in each world:")
    beyond = beyond_the_records(validation, primary)
    # a world no check flags is a caution even when every other world is valid
    bad = worlds.any_not_identified(v, primary) or bool(beyond)
    lines = worlds.first_page_lines(v, primary) + beyond
    return Caveat("stress", topic, CONCERN if bad else OK, head, lines)


def beyond_the_records(validation: pd.DataFrame | None, primary: str | None) -> tuple[str, ...]:
    """A first-page line for the simulation study's scenarios that no design using the
    records can handle (the validation table's rows where the targets do not apply), with
    the primary design's bias and coverage there."""
    need = {"estimator", "scenario", "targets_apply", "bias", "coverage"}
    if validation is None or primary is None or not need <= set(validation.columns):
        return ()
    v = validation[(validation["estimator"] == primary)
                   & ~validation["targets_apply"].astype(bool)]
    items = [f"{labels.scenario(r['scenario']).lower()} (bias {fmt_num(r['bias'], 2, True)}, "
             f"coverage {fmt_num(100 * r['coverage'], 0)}%)" for _, r in v.iterrows()]
    if not items:
        return ()
    return (f"Beyond any design using the records, and no check flags it: {join_words(items)}",)


def build_caveats(
    pub_tables: Mapping[str, pd.DataFrame],
    sizes: Mapping[str, int | None],
    metrics: Mapping[str, Any],
    optional: Mapping[str, pd.DataFrame | None],
    facts: Mapping[str, Any],
    rows: Mapping[str, Any] | None = None,
    study_coverage: Mapping[str, Any] | None = None,
) -> list[Caveat]:
    """Every caveat, concerns first then checked then not assessed (stable order)."""
    cav = [
        balance_caveat(pub_tables["balance"], float(facts["wwc_equivalence"]),
                       float(facts["wwc_adjustment_limit"])),
        falsification_caveat(metrics["pretrend_test"],
                             optional.get("sensitivity_falsification"),
                             bool((metrics.get("design_settings") or {}).get("history"))),
        sensitivity_caveat(pub_tables["robustness"], {
            k: optional[k] for k in ("sensitivity_ovb", "sensitivity_rosenbaum",
                                     "sensitivity_honestdid") if optional.get(k) is not None},
            str(metrics.get("design", "ancova"))),
        attrition_caveat(sizes, pub_tables["match_reasons"], pub_tables["match_summary"],
                         optional.get("attrition"), tuple(metrics["att_window"]),
                         (rows or {}).get("lee")),
        inference_caveat(metrics, rows, study_coverage, pub_tables.get("censoring_diagnostics")),
        stress_caveat(optional.get("validation"), optional.get("verdicts"),
                      metrics.get("primary_estimator")),
        rating_caveat(optional.get("wwc"), optional.get("effect_sizes")),
        reachability_caveat(rows or {}),
    ]
    cav = [c for c in cav if c is not None]
    order = {CONCERN: 0, OK: 1, NOT_ASSESSED: 2}
    return sorted(cav, key=lambda c: order[c.status])
