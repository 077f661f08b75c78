"""The report as its readers see it: counts, labels, caveats, browser, PDF pages, bytes.

One fabricated set of inputs is rendered once (HTML and, with Chromium, PDF) and read
as a reader would: the counts printed for each population agree with the one
sample-size table and with each other; no internal name (column, estimator key,
snake_case token) appears in the HTML or PDF text; in headless Chromium nothing
overflows the page, every image loads with alt text and every internal link
resolves; the PDF's text is at least 8 pt, its figures' text too, and no page but
the last is mostly empty; rendering twice gives the same bytes.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import labels, report
from pipeline.reporting import caveats as cv
from pipeline.reporting.counts import sample_sizes
from pipeline.reporting.fmt import fmt_num, fmt_pct, plural
from pipeline.reporting.inputs import ReportInputError
from pipeline.reporting.meta import git_tree_hash
from pipeline.reporting.render import pin_pdf_dates
from tests.report_fixtures import build_report_inputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
POPPLER = all(shutil.which(t) for t in ("pdftotext", "pdftoppm", "pdfimages"))
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils not installed")
PARAMS = {
    "report": {"reports_dir": "reports", "dpi": 150, "pdf": CHROMIUM is not None},
    "disclosure": {"min_count": 6, "min_denominator": 20},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_q")
    build_report_inputs(root, seed=11, n_treated=900, n_comparison=2400, with_validation=True,
                        design="ancova", sensitivity=True, with_verdicts=True)
    out = report.run(root, PARAMS)
    return root, out


def _visible_text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>|<script>.*?</script>", " ", html, flags=re.S)
    html = re.sub(r"<code>.*?</code>", " ", html, flags=re.S)  # code paths, methods table
    html = re.sub(r"<head>.*?</head>", " ", html, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", html))


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


# --------------------------------------------------------------------------- counts


def test_every_count_printed_for_a_population_is_the_same(rendered):
    root, out = rendered
    html = out["html"].read_text(encoding="utf-8")
    spans = re.findall(r'<span class="count" data-pop="(\w+)">([^<]*)</span>', html)
    assert len(spans) >= 12
    by_pop: dict[str, set[str]] = {}
    for pop, txt in spans:
        by_pop.setdefault(pop, set()).add(txt)
    assert all(len(v) == 1 for v in by_pop.values()), by_pop
    # ... and equal to the one sample-size table, built from the published flow
    flow = pd.read_csv(out["published"] / "sample_flow.csv")
    m = json.loads((root / "reports" / "metrics.json").read_text())
    sizes = sample_sizes(flow, m).set_index("population")["students"]
    for pop, (txt,) in by_pop.items():
        want = "‡" if pd.isna(sizes[pop]) else f"{int(sizes[pop]):,}"
        assert txt == want, (pop, txt, want)
    # the headline tables count the matched visited students the same way
    main = pd.read_csv(out["published"] / "main_effects.csv")
    assert set(main["n_treated"]) == {sizes["matched"]}
    assert set(main["n_comparison"]) == {sizes["comparison"]}
    sg = pd.read_csv(out["published"] / "subgroups.csv").dropna(subset=["n_treated"])
    for sub, d in sg.groupby("subgroup"):
        if len(d) == len(pd.read_csv(out["published"] / "subgroups.csv").query(
                "subgroup == @sub")):
            assert d["n_treated"].sum() == sizes["matched"], sub
    # the flow figure's data are the same counts
    fig = pd.read_csv(out["figures"] / "sample_flow.csv")
    assert fig["students"].dropna().astype(int).tolist() == [
        int(sizes[p]) for p in ("extract", "eligible", "visited", "matched", "analysed")
        if pd.notna(sizes[p])
    ]


def test_disagreeing_counts_stop_the_stage(tmp_path):
    rep = build_report_inputs(tmp_path, seed=4)
    m = json.loads((rep / "metrics.json").read_text())
    m["n_treated"] += 5
    (rep / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ReportInputError, match=r"n_treated.*differs from the 'matched' step"):
        report.run(tmp_path, {**PARAMS, "report": {**PARAMS["report"], "pdf": False}})


# --------------------------------------------------------------------------- labels

INTERNAL = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def _internal_names(text: str) -> set[str]:
    known = set(labels._ALL) | set(labels.COLUMNS) | set(labels.REASONS)
    hits = set(INTERNAL.findall(text))
    hits |= {k for k in known if "_" not in k and re.search(
        rf"(?<![\w-]){re.escape(k)}(?![\w-])", text) and k.islower()
        and k not in {"check", "level", "truth", "table", "reason", "outcome", "cohort",
                      "estimate", "students", "treated", "matched", "dosage", "district",
                      "grade", "bias", "coverage", "rows", "step", "population", "note",
                      "quantity", "definition", "scenario", "estimator", "subgroup",
                      "dimension", "excluded", "unmatched", "comparison", "covered",
                      "imputation", "eligible", "visited", "analysed", "extract", "panel",
                      "districts", "enrollment", "placed", "kept", "read",
                      "naive", "sex", "tier", "dip", "boundary"}}
    return hits


def test_no_internal_name_in_the_html(rendered):
    text = _visible_text(rendered[1]["html"].read_text(encoding="utf-8"))
    assert _internal_names(text) == set()
    for key in ("matched_ancova", "prior_year_tier", "rate_lag1", "n_treated", "ci_low",
                "smd_after", "Mbar", "(s)", "background.md", ".csv"):
        assert key not in text, key


def test_no_internal_name_in_the_alt_texts(rendered):
    for alt in re.findall(r'alt="([^"]*)"', rendered[1]["html"].read_text(encoding="utf-8")):
        assert _internal_names(htmllib.unescape(alt)) == set(), alt


@needs_chromium
@needs_poppler
def test_no_internal_name_in_the_pdf(rendered):
    text = _pdf_text(rendered[1]["pdf"])
    # the methods appendix names code and data files on purpose: drop its table
    text = text.split("Methods: what made each figure and table")[0] + text.split(
        "Provenance and citation")[-1]
    assert _internal_names(text) == set()


def test_labels_turn_unknown_names_into_words():
    assert labels.variable("prior_year_tier=at_risk") == "Prior-year tier: at risk"
    assert labels.variable("race_ethnicity=NHPI").startswith("Race/ethnicity: Native")
    assert labels.check("relative magnitudes Mbar=0.5") == "Relative magnitudes, M̄ = 0.5"
    assert labels.check("caliper 0.1 SD") == "Caliper of 0.1 SD"
    # the primary already matches within the district: this pool is wider, not a subset
    assert labels.check("comparison pool: program_districts") == (
        "Comparison students from any program district, not only the same one")
    assert "_" not in labels.label("some_new_estimator")
    assert "_" not in labels.reason("a_new_rule")


# --------------------------------------------------------------------------- text


def test_plurals_and_percentages():
    assert plural(1, "student") == "1 student"
    assert plural(2, "student") == "2 students"
    assert plural(0, "cell is", "cells are") == "no cells are"
    assert plural(1200, "district") == "1,200 districts"
    assert fmt_pct(1, 1000) == "< 1%" and fmt_pct(999, 1000) == "> 99%"
    assert fmt_pct(0, 10) == "0%" and fmt_pct(10, 10) == "100%" and fmt_pct(165, 572) == "29%"
    assert fmt_num(-0.04, 1) == "0.0" and fmt_num(-0.06, 1) == "−0.1"


def test_no_bad_plurals_or_percentages_in_the_report(rendered):
    text = _visible_text(rendered[1]["html"].read_text(encoding="utf-8"))
    assert "(s)" not in text
    assert not re.search(r"\b1 (students|cells|districts|estimates|characteristics)\b", text)
    assert not re.search(r"from 100% to 100%|\b0 (cells|characteristics)\b", text)


def test_data_quality_appendix_lists_only_rules_with_findings(rendered):
    html = rendered[1]["html"].read_text(encoding="utf-8")
    app = _visible_text(html.split('id="appendix"')[1])
    dq = pd.read_csv(rendered[0] / "reports" / "tables" / "data_quality.csv")
    rules = dq[~dq["reason"].isin(["read", "kept"])]
    clean = int((rules["rows"] == 0).sum())
    assert f"{clean} of {len(rules)} checks" in re.sub(r"\s+", " ", app)
    for r in rules.loc[rules["rows"] == 0, "reason"].unique():
        if r not in set(rules.loc[rules["rows"] > 0, "reason"]):
            assert labels.reason(r) not in app, r


# --------------------------------------------------------------------------- caveats


def _rb(placebo=(-8.3, -9.4, -7.2), mbar=0.3):
    rows = [{"check": "primary", "estimate": 7.6, "ci_low": 5.9, "ci_high": 9.3}]
    if placebo:
        rows.append({"check": "placebo: first visits 6 school months earlier",
                     "estimate": placebo[0], "ci_low": placebo[1], "ci_high": placebo[2]})
    if mbar is not None:
        rows.append({"check": "relative magnitudes breakdown Mbar", "estimate": mbar,
                     "ci_low": None, "ci_high": None})
    return pd.DataFrame(rows)


def test_balance_caveat_counts_failures_after_matching():
    bal = pd.DataFrame({"covariate": ["rate_lag1", "grade=2", "sex=F", "frl"],
                        "smd_after": [0.01, 0.3, 0.1, 0.02],
                        "wwc_effect_size_after": [0.02, 0.67, 0.1, 0.3]})
    c = cv.balance_caveat(bal, 0.05, 0.25)
    assert c.status == cv.CONCERN
    assert "2 of 4 characteristics" in c.text and "Grade 2" in c.text
    assert "Free or reduced-price lunch" in c.text and "Another 1 lies" in c.text
    ok = cv.balance_caveat(bal.assign(wwc_effect_size_after=0.01), 0.05, 0.25)
    assert ok.status == cv.OK


def test_falsification_caveat_leaves_the_placebo_date_out():
    """The first page's falsification is the placebo-month test and the equivalence bounds;
    the placebo-date check (which fires in worlds the design handles) is not among them."""
    pt = {"p_value": 0.16, "event_times": [-6, -5, -4]}
    fals = pd.DataFrame({"estimator": ["matched_ancova"], "pretrend_p": [0.16],
                         "pretrend_reject": [False], "equivalence_bound": [3.1],
                         "bound_over_effect": [0.39]})
    good = cv.falsification_caveat(pt, fals)
    assert good.status == cv.OK and "3.1 points" in good.text and "0.39 times" in good.text
    assert "lacebo date" not in good.text and "moved" not in good.text
    # the primary's placebo-month p is the joint test's: said once; another design's is given
    assert good.text.count("p = 0.160") == 1 and "placebo months p" not in good.text
    # (the table's p read back from its CSV differs in far digits: still the same p)
    near = cv.falsification_caveat(pt, fals.assign(pretrend_p=0.16000004))
    assert "placebo months p" not in near.text
    two = pd.concat([fals, fals.assign(estimator="matched_stacked", pretrend_p=0.27)])
    assert "Matched differences (stacked DiD): placebo months p = 0.270" in \
        cv.falsification_caveat(pt, two).text
    assert cv.falsification_caveat({"p_value": 0.01}).status == cv.CONCERN
    rej = cv.falsification_caveat(pt, fals.assign(pretrend_reject=True))
    assert rej.status == cv.CONCERN
    # with the recorded year adjusted for, the test can hardly fail: a caution, saying why
    weak = cv.falsification_caveat(pt, fals, history=True)
    assert weak.status == cv.CONCERN and "little power" in weak.text


def test_sensitivity_caveat_with_and_without_its_tables():
    # the robustness table's Bonferroni breakdown is no longer read: HonestDiD's table is
    c = cv.sensitivity_caveat(_rb(), None)
    assert c.status == cv.NOT_ASSESSED and "0.30" not in c.text and "Not assessed" in c.text
    sens = {
        "sensitivity_ovb": pd.DataFrame({"rv_q": [0.21], "rv_qa": [0.12], "estimate": [9.93],
                                         "note": [None]}),
        "sensitivity_rosenbaum": pd.DataFrame({"row": ["gamma grid", "breakdown"],
                                               "gamma": [1.0, 2.35], "note": [None, None]}),
        "sensitivity_honestdid": pd.DataFrame({
            "Delta": ["DeltaRM", "DeltaRM", "DeltaSD"],
            "method": ["C-LF", "breakdown (largest grid Mbar, C-LF)", "breakdown (FLCI)"],
            "M": [0.5, 1.4, 0.8]}),
    }
    c2 = cv.sensitivity_caveat(_rb(mbar=0.3), sens)
    assert c2.status == cv.OK and "Not assessed" not in c2.text
    assert "21.0%" in c2.text and "12.0%" in c2.text  # robustness values
    # ... of the estimate they belong to, which is not the headline's
    assert "student-level form of the estimate (+9.9 points; robustness value" in c2.text
    assert "Γ = 2.35" in c2.text and "M̄ = 1.40" in c2.text
    # the smoothness bound is in the sensitivity section, not on the first page
    assert "M = 0.80" not in c2.text
    assert "Huber's M-test, Rosenbaum 2007" in c2.text  # the method is named
    assert "M = 0.80" in " ".join(cv.honest_text(sens["sensitivity_honestdid"], "ancova")[0])
    assert "_" not in c2.text
    low = {**sens, "sensitivity_rosenbaum": sens["sensitivity_rosenbaum"].assign(gamma=1.1)}
    assert cv.sensitivity_caveat(_rb(mbar=1.4), low).status == cv.CONCERN
    assert cv.sensitivity_caveat(_rb(mbar=None), None).status == cv.NOT_ASSESSED


def test_attrition_caveat_says_who_and_why():
    sizes = {"visited": 572, "not_matched": 165, "not_observed": 22}
    reasons = pd.DataFrame({"reason": ["n_not_in_membership", "n_no_match_in_caliper"],
                            "students": [28, 137]})
    ms = pd.DataFrame({"dimension": ["tier", "tier"], "level": ["missing", "severe_chronic"],
                       "treated": [97, 475], "matched": [40, 367], "unmatched": [57, 108]})
    c = cv.attrition_caveat(sizes, reasons, ms, None)
    assert c.status == cv.CONCERN
    assert "165 (29%)" in c.text and "137 no comparison student close enough" in c.text
    assert "59% of visited students with prior-year attendance tier “not recorded”" in c.text
    assert "Not assessed: differential attrition" in c.text
    att = pd.DataFrame({"event_time": [1, 2], "overall_attrition": [10.0, 14.0],
                        "differential_attrition": [2.0, -3.5], "boundary": "cautious",
                        "wwc_attrition": ["low", "high"]})
    text = cv.attrition_caveat(sizes, reasons, ms, att).text
    assert "14% overall and 4% differential" in text
    assert "by month 2" in text and "high attrition (cautious boundary)" in text


def test_optional_analyses_absent_are_listed_as_not_assessed():
    m = {"att": {"estimate": 1.0}, "design_settings": {"cluster": "student_key"}}
    assert cv.rating_caveat(None).status == cv.NOT_ASSESSED
    assert cv.stress_caveat(None).status == cv.NOT_ASSESSED
    assert "no design bootstrap" in cv.inference_caveat(m).text
    m2 = {"att": {"estimate": 1.0, "design_bootstrap": {"ci_low": 0.1, "ci_high": 2.0}},
          "design_settings": {"cluster": "school_code"}}
    assert cv.inference_caveat(m2).status == cv.OK
    assert cv.inference_caveat(m2).text.startswith("Errors are clustered by school. ")
    m3 = {**m2, "design_settings": {"cluster": "school_code", "vcov": "CR2",
                                    "effect_strata": "grade_band"}}
    text = cv.inference_caveat(m3).text
    assert text.startswith("Errors are clustered by school, with the Bell-McCaffrey")
    assert text.startswith("Errors are clustered by school, with the Bell-McCaffrey "
                           "small-sample correction; effects are estimated within each grade "
                           "band and averaged.")
    # a design bootstrap much wider than the analytic interval is a concern, said in words
    m4 = {"att": {"estimate": 7.5, "std_error": 0.5}, "att_window": [1, 6],
          "design_settings": {"cluster": "home_school_code"},
          "censoring": {"method": "impute", "imputed_rows": 2140}}
    rows = {"design": pd.Series({"ci_low": 6.5, "ci_high": 9.2, "std_error": 0.74})}
    c4 = cv.inference_caveat(m4, rows)
    assert c4.status == cv.CONCERN
    assert ("gives 6.5 to 9.2 (its standard error 1.5 times the analytic one, which takes "
            "them as known)") in c4.text
    assert "imputed (2,140" not in c4.text
    assert "Act on the wider interval." in c4.text
    rows_close = {"design": pd.Series({"ci_low": 6.5, "ci_high": 8.5, "std_error": 0.6})}
    c5 = cv.inference_caveat(m4, rows_close)
    assert c5.status == cv.OK and "times the analytic one" not in c5.text
    assert "Act on the wider" not in c5.text
    assert "imputed (2,140 rows); the analytic interval treats it as observed." in c5.text
    # the words follow how the design bootstrap weighed schools
    assert "on schools resampled within districts gives 6.5" in c5.text
    m6 = {**m4, "estimands": {"att_design_bootstrap": {"scheme": "dirichlet_unit"}}}
    c6 = cv.inference_caveat(m6, rows_close)
    assert "on schools reweighted within districts gives 6.5" in c6.text
    assert "resampled" not in c6.text
    wwc = pd.DataFrame({"item": ["baseline equivalence", "rating"],
                        "category": ["satisfied", "meets_with_reservations"],
                        "reason": ["", "a quasi-experimental design"]})
    es = pd.DataFrame({"measure": ["hedges_g"], "outcome": ["attendance_rate"],
                       "estimate": [0.31], "ci_low": [0.2], "ci_high": [0.42],
                       "improvement_index": [12.2]})
    r = cv.rating_caveat(wwc, es)
    assert r.status == cv.OK and r.text.startswith("Meets with reservations")
    assert "Hedges' g on attendance rate +0.31 (95% CI 0.20 to 0.42)." in r.text
    assert "improvement index" not in r.text  # in the sensitivity section's table
    v = pd.DataFrame({"scenario": ["dip", "unrecorded_shocks"], "n_reps": [12, 12],
                      "bias": [0.1, 1.2], "coverage": [0.95, 0.5],
                      "verdict": ["valid", "not identified"],
                      "verdict_basis": ["targets_met", "needs_unrecorded_data"],
                      "top_diagnostic": ["pretrend", "pretrend"],
                      "top_diagnostic_rate": [0.05, 0.1], "needed": ["", "a family record"]})
    s = cv.stress_caveat(v)
    # the world named as in the appendix (its world label), with what it would need
    assert s.status == cv.CONCERN
    assert "unrecorded shocks (bias +1.20, coverage 50%), would need a family record" in s.items[1]


def test_every_caveat_is_on_the_first_page(rendered):
    html = rendered[1]["html"].read_text(encoding="utf-8")
    summary = _visible_text(html.split('<section id="summary">')[1].split("</section>")[0])
    for topic in ("Balance after matching", "Falsification tests", "Sensitivity to hidden bias",
                  "Students left out", "Uncertainty", "Worlds that break the assumptions",
                  "Evidence rating"):
        assert topic in summary, topic
    if "pdf" in rendered[1] and POPPLER:
        first = _squash(subprocess.run(["pdftotext", "-f", "1", "-l", "1",
                                        str(rendered[1]["pdf"]), "-"],
                                       capture_output=True, text=True, check=True).stdout)
        assert _squash("school days") in first
        items = first_page_items(html)
        assert len(items) >= 2 * 7 + 3, items  # 7 topics and texts, 3 worlds lines
        for item in items:  # every concern and every checked line, in full
            assert _squash(item) in first, item


def _squash(text: str) -> str:
    """Text without spaces, line breaks or hyphens (a PDF line may break at either)."""
    return re.sub(r"[\s\-\u00ad\u2010]+", "", text)


def first_page_items(html: str) -> list[str]:
    """The text of every first-page item in the HTML: each caveat's tag and topic, its text
    and each line listed under it."""
    dl = html.split('<dl class="caveats">')[1].split("</dl>")[0]
    def text(h: str) -> str:
        return re.sub(r"\s+", " ", _visible_text(h)).strip()

    out = []
    for dt, dd in re.findall(r"<dt[^>]*>(.*?)</dt>\s*<dd>(.*?)</dd>", dl, flags=re.S):
        out.append(text(dt))
        out.append(text(re.sub(r"<ul.*?</ul>", " ", dd, flags=re.S)))
        out += [text(li) for li in re.findall(r"<li>(.*?)</li>", dd, flags=re.S)]
    return out


# --------------------------------------------------------------------------- browser

PROBE = """<script>
window.addEventListener('load', function () {
  var de = document.documentElement;
  var wide = Array.prototype.filter.call(document.querySelectorAll('table, figure, img, pre'),
    function (e) { var r = e.getBoundingClientRect(); return r.right > de.clientWidth + 1; })
    .map(function (e) { return e.tagName + (e.id ? '#' + e.id : ''); });
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {ok: i.complete && i.naturalWidth > 0, alt: (i.alt || '').trim().length}; });
  var links = Array.prototype.map.call(document.querySelectorAll('a[href^="#"]'),
    function (a) { var id = a.getAttribute('href').slice(1);
      return {id: id, ok: !!document.getElementById(id)}; });
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({scrollW: de.scrollWidth, clientW: de.clientWidth,
    wide: wide, imgs: imgs, links: links});
  document.body.appendChild(pre);
});
</script>"""


@needs_chromium
@pytest.mark.parametrize("width", [1280, 800])
def test_browser_no_overflow_images_and_links(rendered, tmp_path, width):
    html = rendered[1]["html"].read_text(encoding="utf-8").replace("</body>", PROBE + "</body>")
    page = tmp_path / "probe.html"
    page.write_text(html, encoding="utf-8")
    with tempfile.TemporaryDirectory() as prof:
        res = subprocess.run(
            [CHROMIUM, *report.CHROMIUM_FLAGS, f"--user-data-dir={prof}",
             f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom",
             page.as_uri()],
            capture_output=True, text=True, timeout=180, check=False,
        )
    m = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert m, f"no probe output; stderr: {res.stderr[-1000:]}"
    probe = json.loads(htmllib.unescape(m.group(1)))
    assert probe["scrollW"] <= probe["clientW"], probe
    assert probe["wide"] == []
    assert probe["imgs"] and all(i["ok"] and i["alt"] > 40 for i in probe["imgs"])
    assert probe["links"] and all(link["ok"] for link in probe["links"]), probe["links"]


# --------------------------------------------------------------------------- PDF pages


@needs_chromium
@needs_poppler
def test_pdf_text_is_at_least_8_points_and_within_the_page(rendered):
    res = subprocess.run(["pdftotext", "-bbox", str(rendered[1]["pdf"]), "-"],
                         capture_output=True, text=True, check=True).stdout
    heights = [float(b) - float(a) for a, b in
               re.findall(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"',
                          res)]
    assert len(heights) > 500
    # nothing runs past the right margin (a table wider than the page would)
    page_w = float(re.search(r'<page width="([\d.]+)"', res).group(1))
    right = max(float(x) for x in re.findall(r'<word xMin="[\d.]+" yMin="[\d.]+" xMax="([\d.]+)"',
                                             res))
    assert right <= page_w - 40, (right, page_w)  # 15 mm margins: 42.5 pt
    # a word box is the font's ascent + descent, about 1.15 × the size in points
    small = sorted(h for h in heights if h < 8 * 1.1)
    assert len(small) <= 0.01 * len(heights), small[:20]


@needs_chromium
@needs_poppler
def test_pdf_figure_text_is_at_least_8_points(rendered):
    """Each figure's smallest text, at the scale the PDF prints it, is ≥ 8 pt."""
    manifest = json.loads((rendered[1]["figures"] / "manifest.json").read_text())["figures"]
    lst = subprocess.run(["pdfimages", "-list", str(rendered[1]["pdf"])], capture_output=True,
                         text=True, check=True).stdout.splitlines()[2:]
    imgs = [ln.split() for ln in lst if ln.split() and ln.split()[2] == "image"]
    # images appear in the PDF in the order of the figures in the HTML
    html = rendered[1]["html"].read_text(encoding="utf-8")
    order = re.findall(r'<figure id="fig-(\w+)">', html)
    assert len(imgs) == len(order)
    by_id = {e["id"]: e for e in manifest}
    for fid, row in zip(order, imgs, strict=True):
        width_px, x_ppi = int(row[3]), float(row[12])
        e = by_id[fid]
        if fid == "validation":  # the simulation study draws its own figure (validate stage)
            continue
        scale = (width_px / x_ppi) / e["width_in"]  # printed inches per figure inch
        assert e["min_font_pt"] * scale >= 8 - 0.05, (fid, e["min_font_pt"], scale)


@needs_chromium
@needs_poppler
def test_no_mostly_empty_pdf_page(rendered, tmp_path):
    subprocess.run(["pdftoppm", "-r", "24", "-gray", str(rendered[1]["pdf"]),
                    str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.pgm"))
    assert len(pages) >= 6
    for png in pages[:-1]:  # the last page may be short
        with Image.open(png) as im:
            g = im.convert("L")
            w, h = g.size
            rows = (np.asarray(g) < 200).any(axis=1).tolist()
        last = max((y for y, ink in enumerate(rows) if ink), default=0)
        assert last / h > 0.55, f"{png.name}: content ends at {last / h:.0%} of the page"


# --------------------------------------------------------------------------- bytes


# a second full render (HTML and PDF, about 30-80 s); tests/test_workflow.py checks the same
# on a fresh clone's report, PDF included
@pytest.mark.slow
def test_same_inputs_give_the_same_bytes(rendered, tmp_path):
    root2 = tmp_path / "again"
    build_report_inputs(root2, seed=11, n_treated=900, n_comparison=2400, with_validation=True,
                        design="ancova", sensitivity=True, with_verdicts=True)
    out2 = report.run(root2, PARAMS)
    out1 = rendered[1]
    assert out1["html"].read_bytes() == out2["html"].read_bytes()
    if "pdf" in out1:
        assert out1["pdf"].read_bytes() == out2["pdf"].read_bytes()


def test_pdf_dates_are_pinned(tmp_path):
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4\n<</CreationDate (D:20261203071806+00'00')\n"
                    b"/ModDate (D:20261203071806+00'00')>>\n")
    before = len(pdf.read_bytes())
    pin_pdf_dates(pdf, 1795949191)
    data = pdf.read_bytes()
    assert len(data) == before
    assert data.count(b"(D:20261129") == 2


def test_code_tree_hash_is_gits(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    (tmp_path / "pipeline" / "sub").mkdir(parents=True)
    (tmp_path / "pipeline" / "a.py").write_text("x = 1\n")
    (tmp_path / "pipeline" / "sub" / "b.py").write_text("y = 2\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-q", "-m", "x"], check=True, env=env)
    want = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD:pipeline"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert git_tree_hash(tmp_path) == want


def test_event_study_note_says_where_the_intervals_come_from():
    """The appendix's event-study table: monthly intervals from the wild bootstrap when the
    stage ran it (not symmetric), and the headline's analytic interval beside its own."""
    from pipeline.reporting.context import event_study_note

    m = {"design_settings": {"cluster": "home_school_code"},
         "att": {"estimate": 7.8, "ci_low": 6.9, "ci_high": 8.7,
                 "wild_bootstrap": {"B": 999, "clusters": 35, "ci_low": 6.74,
                                    "ci_high": 8.93}}}
    note = event_study_note(m)
    assert note.startswith("Standard errors are clustered by each student's first school.")
    assert "wild cluster bootstrap over the same 35 clusters (999 draws)" in note
    assert "need not be symmetric" in note and "gives 6.7 to 8.9" in note
    plain = event_study_note({"design_settings": {"cluster": "home_school_code"},
                              "att": {"estimate": 7.8}})
    assert plain.endswith("Intervals are analytic (t with clusters − 1 degrees of freedom).")
