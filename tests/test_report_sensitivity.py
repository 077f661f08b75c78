"""The report's sensitivity section, its evidence rating and the simulation study's verdicts.

* The first page's balance caution and evidence rating agree: the rating rests on the
  pre-visit attendance measures (:func:`pipeline.sensitivity.config.wwc_required`); one
  of them beyond 0.25, or beyond 0.05 without adjustment, gives *Does Not Meet*; other
  characteristics beyond 0.25 are named and do not change it.
* The placebo-date check is off the first page; the appendix cites the study's firing
  rates when the study's verdict table is present and no number when it is not.
* The "worlds that break the assumptions" caution is one line per kind of verdict from
  the study's ``verdicts.csv`` (a small fixture), read beside ``report.validation_table``.
* The sensitivity section shows every table, with the HonestDiD results replacing the
  robustness table's Bonferroni rows, and the methods table maps each to its code.
"""

from __future__ import annotations

import html as htmllib
import re

import pandas as pd
import pytest

from pipeline import report
from pipeline.reporting import caveats as cv
from pipeline.reporting.sensitivity import placebo_appendix, robustness_rows, study_rates
from pipeline.validation.scenarios import WORLD_SPECS
from tests.report_fixtures import build_report_inputs, verdict_rows, write_verdicts

PARAMS = {
    "report": {"reports_dir": "reports", "dpi": 60, "pdf": False},
    "disclosure": {"min_count": 6, "min_denominator": 20},
}


def _text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", html)))


def _section(html: str, sid: str) -> str:
    return _text(html.split(f'<section id="{sid}">')[1].split("</section>")[0])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_sens")
    build_report_inputs(root, seed=5, n_treated=900, n_comparison=2400, design="ancova",
                        with_validation=True, with_verdicts=True, sensitivity=True)
    out = report.run(root, PARAMS)
    return root, out["html"].read_text(encoding="utf-8")


# --------------------------------------------------------------------------- rating


def _wwc(rows, rating="Does Not Meet WWC Standards"):
    eq = [{"item": "baseline equivalence", "event_time": k, "characteristic": c, "value": g,
           "category": cat, "required": req}
          for k in (1, 2) for c, g, cat, req in rows]
    return pd.DataFrame([*eq, {"item": "rating", "category": rating, "reason": "",
                               "required": False}])


def test_rating_names_what_it_rests_on_and_what_else_exceeds():
    w = _wwc([("rate_lag1", 0.04, "satisfied", True),
              ("prior_year_tier=satisfactory", 0.67, "not satisfied", True),
              ("grade=K", 0.27, "not satisfied", False)])
    c = cv.rating_caveat(w)
    assert c.status == cv.CONCERN and c.text.startswith("Does Not Meet WWC Standards")
    # the first page groups the levels of a characteristic and gives the largest |g|
    assert "Prior-year tier: satisfactory (|g| up to 0.67)" in c.text
    assert "more than 0.25, which no adjustment can repair" in c.text
    assert "4 comparisons" in c.text and "school months 1 to 2" in c.text
    # the others beyond 0.25 are counted, with their largest |g|, and named in the section
    assert ("not in the rating: 1 other characteristic (|g| up to 0.27; named in "
            "Sensitivity and evidence standards)") in c.text
    # the section's text names each one
    long = cv.rating_text(w, w.iloc[-1])
    assert "Prior-year tier: satisfactory (|g| up to 0.67)" in long
    assert "Grade K (|g| up to 0.27)" in long and "do not change the rating" in long
    assert "_" not in c.text and "=" not in c.text
    ok = cv.rating_caveat(_wwc([("rate_lag1", 0.1, "satisfied with adjustment", True),
                                ("grade=K", 0.27, "not satisfied", False)],
                               "Meets WWC Standards With Reservations"))
    assert ok.status == cv.OK and "Every one is within 0.25" in ok.text
    assert "1 other characteristic (|g| up to 0.27" in ok.text


def test_balance_caution_and_rating_agree_on_what_the_rating_rests_on():
    bal = pd.DataFrame({"covariate": ["prior_year_tier=satisfactory", "grade=K", "frl"],
                        "smd_after": [0.09, 0.07, 0.0],
                        "wwc_effect_size_after": [0.67, 0.27, 0.01]})
    b = cv.balance_caveat(bal, 0.05, 0.25)
    assert ("Measures of attendance before the visit, on which the evidence rating rests "
            "(see Evidence rating): Prior-year tier: satisfactory.") in b.text
    assert "not in the rating, and not adjusted for beyond the matching: Grade K." in b.text
    assert "2 of 3 characteristics" in b.text


def test_wwc_rating_rests_on_required_measures_only():
    from pipeline.sensitivity.config import wwc_required
    from pipeline.sensitivity.wwc import wwc_table

    assert wwc_required("prior_year_tier=satisfactory") and wwc_required("rate_lag2")
    assert wwc_required("prior_year_missing") and not wwc_required("grade=K")
    eq = pd.DataFrame({"event_time": [1, 1, 1, 2, 2, 2],
                       "characteristic": ["rate_lag1", "prior_year_tier=at_risk", "grade=K"] * 2,
                       "g": [0.02, 0.04, 0.6, 0.03, 0.05, 0.6],
                       "adjusted": [True, False, False] * 2,
                       "required": [True, True, False] * 2})
    t = wwc_table(eq, None)
    assert t["category"].iloc[-1] == "Meets WWC Standards With Reservations"
    assert "all 4 comparisons" in t["reason"].iloc[-1]
    # the tier at one event time just beyond 0.05 and not adjusted for: fails the domain
    eq.loc[4, "g"] = 0.0501
    t = wwc_table(eq, None)
    assert t["category"].iloc[-1] == "Does Not Meet WWC Standards"
    assert "1 requires adjustment" in t["reason"].iloc[-1]
    # beyond 0.25 fails even with adjustment; exactly 0.25 with adjustment does not
    eq.loc[4, "g"], eq.loc[3, "g"] = 0.0, 0.25
    assert wwc_table(eq, None)["category"].iloc[-1].startswith("Meets")
    eq.loc[3, "g"] = 0.2501
    assert wwc_table(eq, None)["category"].iloc[-1] == "Does Not Meet WWC Standards"


def _matched(tier_c: str | None) -> pd.DataFrame:
    """A matched panel whose comparison students copy the visited students' baseline
    characteristics, except the tier of every fifth (``tier_c``) and every grade."""
    rows = []
    for i in range(60):
        tier = ["severe_chronic", "moderate_chronic", "at_risk"][i % 3]
        for role, j in (("treated", 0), ("comparison", 1)):
            t = tier_c if (tier_c and role == "comparison" and i % 5 == 0) else tier
            grade = "K" if (role == "treated" and i % 2 == 0) else "5"
            for et in (0, 1, 2):
                rows.append({"match_id": i, "student_key": f"s{i}_{j}", "role": role,
                             "stack_event_time": et, "censored": False, "weight": 1.0,
                             "ipcw": 1.0, "attendance_rate": 80.0 + i % 7,
                             "rate_lag1": 50.0 + i % 11, "rate_lag2": 60.0 + i % 13,
                             "rate_lag3": 70.0 + i % 5,
                             "prior_year_rate": None if i % 9 == 0 else 85.0 + i % 4,
                             "prior_year_tier": None if i % 9 == 0 else tier if role ==
                             "treated" else t, "grade": grade, "frl": i % 2})
    return pd.DataFrame(rows)


def test_suite_wwc_checks_every_measure_on_the_analytic_sample():
    from pipeline.sensitivity.config import SensitivityConfig
    from pipeline.sensitivity.suite import _wwc

    same = _wwc(_matched(None), None, (1, 2), SensitivityConfig())
    eq = same[same["item"] == "baseline equivalence"]
    names = set(eq["characteristic"])
    assert {"prior_year_missing", "grade=K", "frl"} <= names
    # the tier's "missing" level is the missing indicator's students: listed once
    assert "prior_year_tier=missing" not in names
    assert set(eq.loc[eq["required"], "characteristic"]) == {
        c for c in names if c.startswith(("rate_lag", "prior_year"))}
    # the comparison students copy the visited ones: every required measure has g = 0,
    # the grade differs completely (not required): the rating stands
    assert (eq.loc[eq["required"], "value"].abs() < 1e-12).all()
    assert (eq.loc[eq["characteristic"] == "grade=K", "category"] == "not satisfied").all()
    assert same["category"].iloc[-1] == "Meets WWC Standards With Reservations"
    moved = _wwc(_matched("satisfactory"), None, (1, 2), SensitivityConfig())
    tier = moved[moved["characteristic"] == "prior_year_tier=satisfactory"]
    assert (tier["category"] == "not satisfied").all()
    assert moved["category"].iloc[-1] == "Does Not Meet WWC Standards"


# --------------------------------------------------------------------------- study


def test_worlds_caution_comes_from_the_verdict_table(tmp_path):
    v = write_verdicts(tmp_path)
    c = cv.stress_caveat(None, v)
    assert c.status == cv.CONCERN and "100 replications per world" in c.text
    # one line per kind of verdict, from the basis columns (tests/test_report_worlds.py)
    assert c.items == (
        "Valid (bias and coverage within the targets up to simulation error): dip (default)",
        "Caught by the pre-trend test (share of replications it fires in): level referral 91%",
        "Not identified from the records: attrition (bias −0.57, coverage 80%), would need "
        + WORLD_SPECS["attrition"].needed,
    )
    ok = cv.stress_caveat(None, v[v["verdict"] != "not identified"])
    assert ok.status == cv.OK
    assert cv.stress_caveat(None, None).status == cv.NOT_ASSESSED


def test_placebo_sentence_cites_the_study_or_no_number(tmp_path):
    rb = pd.DataFrame({"check": ["primary", "placebo: first visits 6 school months earlier"],
                       "estimate": [8.0, -5.5], "ci_low": [6.0, -6.5], "ci_high": [10.0, -4.5]})
    v = write_verdicts(tmp_path)
    r = study_rates(None, v, "matched_ancova")
    assert r["reference"] == pytest.approx(97.0) and r["n_others"] == 2
    assert (r["others_min"], r["others_max"]) == pytest.approx((95.0, 99.0))
    with_study = placebo_appendix(rb, None, v, "matched_ancova")["text"]
    assert "97% of the replications of the default world" in with_study
    assert "cannot tell a sound world from a broken one" in with_study
    assert "95% to 99% of those of the 2 other worlds" in with_study
    without = placebo_appendix(rb, None, None, "matched_ancova")["text"]
    assert not re.search(r"\d", without)
    # a study table without firing rates (as the validate stage writes) cites none
    old = pd.DataFrame({"scenario": ["dip"], "estimator": ["matched_ancova"], "n_reps": [100]})
    assert not re.search(r"\d", placebo_appendix(rb, old, None, "matched_ancova")["text"])
    shown = robustness_rows(rb.assign(check=[*rb["check"][:1], "relative magnitudes Mbar=1"]),
                            True)
    assert list(shown["check"]) == ["primary"]


# --------------------------------------------------------------------------- rendered


def test_first_page_has_the_worlds_and_no_placebo_date(rendered):
    _, html = rendered
    summary = _section(html, "summary")
    for line in cv.stress_caveat(None, verdict_rows()).items:
        assert line in summary, line
    assert "lacebo: first visits" not in summary and "moved 6" not in summary
    assert "Not assessed: how the design fares" not in summary


def test_sensitivity_section_shows_every_table(rendered):
    _, html = rendered
    sec = _section(html, "sensitivity")
    for needle in ("robustness value", "Confounder as strong as", "1 × prior-year attendance",
                   "Γ = 3.40", "Largest one-sided p-value",
                   "conditional least-favourable hybrid (C-LF)", "fixed-length (FLCI)",
                   "breakdown M̄ = 0.50", "do not apply to the headline",
                   "Equivalence bound (points)", "Meets WWC Standards With Reservations",
                   "Rating rests on it", "Grade K", "Hedges' g", "Cox index",
                   "Improvement index", "Benjamini–Hochberg", "Q-value (BH)"):
        assert needle in sec, needle
    assert 'id="fig-sensitivity_ovb_contour"' in html and 'id="fig-sensitivity_honestdid"' in html
    # the contrast against a suppressed group (cohort 2020-21, four students) is suppressed
    con = html.split("over every contrast")[1].split("</table>")[0]
    assert "‡" in con
    rob = _section(html, "robustness")
    assert "Relative magnitudes, M̄" not in rob and "lacebo: first visits" not in rob
    assert "the sensitivity section" in rob and "the appendix" in rob
    app = _section(html, "appendix")
    assert "Placebo date: a check that does not discriminate" in app
    assert "97% of the replications of the default world" in app
    methods = html.split('id="methods"')[1]
    for code in ("pipeline/sensitivity/ovb.py", "pipeline/sensitivity/rosenbaum.py",
                 "pipeline/sensitivity/honestdid.py", "pipeline/sensitivity/wwc.py",
                 "pipeline/sensitivity/effect_sizes.py", "pipeline/sensitivity/multiplicity.py",
                 "pipeline/sensitivity/plots.py: ovb_contour_figure",
                 "pipeline/sensitivity/plots.py: honest_figure", "tables/wwc.csv"):
        assert code in methods, code


def test_numbers_in_the_section_come_from_the_tables(rendered):
    root, html = rendered
    sec = _section(html, "sensitivity")
    tab = root / "reports" / "tables"
    ovb = pd.read_csv(tab / "sensitivity_ovb.csv").iloc[0]
    assert f"{100 * ovb['rv_q']:.1f}%" in sec and f"{100 * ovb['rv_qa']:.1f}%" in sec
    fals = pd.read_csv(tab / "sensitivity_falsification.csv").iloc[0]
    assert f"{fals['equivalence_bound']:.2f}" in sec
    hd = pd.read_csv(tab / "sensitivity_honestdid.csv")
    orig = hd[hd["method"] == "original"].iloc[0]
    assert f"{orig['lb']:.2f}".replace("-", "−") in sec


def test_honestdid_table_marks_a_bound_at_the_grid_end():
    """The appendix's HonestDiD table marks a bound that is the search grid's end (≥ / ≤)
    and says what that means; a table without such a bound says nothing of it."""
    from pipeline.reporting.sensitivity import _honest
    from pipeline.sensitivity.config import GRID_EDGE

    h = pd.DataFrame({
        "estimator": "matched_stacked",
        "Delta": ["none", "DeltaRM", "DeltaRM", "DeltaRM"],
        "method": ["original", "C-LF", "C-LF", "breakdown (largest grid Mbar, C-LF)"],
        "M": [None, 0.5, 1.5, 0.5],
        "lb": [7.2, 0.42, -13.74, None], "ub": [9.9, 13.74, 13.74, None],
        "note": [None, GRID_EDGE["upper"], GRID_EDGE["both"], None]})
    out = _honest({"sensitivity_honestdid": h}, "ancova")
    t = out["table"]
    assert list(t["Upper"]) == ["9.90", "≥ 13.74", "≥ 13.74"]
    assert list(t["Lower"]) == ["7.20", "0.42", "≤ −13.74"]
    assert any("end of the search grid" in x for x in out["sentences"])
    plain = _honest({"sensitivity_honestdid": h.assign(note=None)}, "ancova")
    assert not any("search grid" in x for x in plain["sentences"])
    assert "≥" not in "".join(plain["table"]["Upper"])
