"""The report stage, tested as a reader would meet it.

Two fabricated input sets (``tests/report_fixtures.py``) are rendered: set A is
synthetic, has small cells and a validation table and is printed to PDF; set B is a
"real" (non-synthetic) run with different numbers.  The browser and PDF tests need
Debian's ``chromium`` and ``poppler-utils`` packages and are skipped, saying so,
when those are not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipeline import figures, report
from pipeline.disclosure import DisclosureError, Published, Rules, check_published
from pipeline.reporting import inputs as report_inputs
from pipeline.reporting.publish import published_sources
from tests.report_fixtures import build_report_inputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (CI: apt-get install -y chromium poppler-utils)",
)
needs_poppler = pytest.mark.skipif(
    shutil.which("pdfinfo") is None or shutil.which("pdftotext") is None,
    reason="poppler-utils not installed (CI: apt-get install -y poppler-utils)",
)
RULES = Rules(6, 20)
N_FIGURES = 10  # nine from the evaluation, one from the simulation study (run_a)


def _params(pdf: bool, dpi: int = 300) -> dict:
    return {
        "report": {"reports_dir": "reports", "dpi": dpi, "pdf": pdf},
        "disclosure": {"min_count": 6, "min_denominator": 20},
    }


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_a")
    build_report_inputs(root, seed=1, effect=6.0, dip=9.0, n_treated=1200, with_validation=True,
                        design="ancova")
    out = report.run(root, _params(pdf=CHROMIUM is not None))
    return root, out


@pytest.fixture(scope="module")
def run_b(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_b")
    build_report_inputs(
        root,
        seed=7,
        synthetic=False,
        effect=2.5,
        dip=5.0,
        n_treated=830,
        n_comparison=2150,
        small_cells=False,
    )
    out = report.run(root, _params(pdf=False, dpi=72))
    return root, out


def _section_text(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid} missing"
    text = re.sub(r"<[^>]+>", " ", m.group(1))
    return re.sub(r"\s+", " ", text)


def _f(x: float, nd: int = 1, signed: bool = False) -> str:
    s = f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"
    return s.replace("-", "−")


def _expected_numbers(root: Path) -> dict[str, str]:
    """The headline numbers, computed here directly from the input files."""
    m = json.loads((root / "reports" / "metrics.json").read_text())
    em = pd.read_csv(root / "reports" / "tables" / "event_means.csv")
    tr = em[em["role"] == "treated"]
    usual = tr[tr["event_time"] <= -3]["mean_rate"].mean()
    dip = tr[tr["event_time"] == -1]["mean_rate"].iloc[0]
    return {
        "att": _f(m["att"]["estimate"], 1, True),
        "att_lo": _f(m["att"]["ci_low"]),
        "att_hi": _f(m["att"]["ci_high"]),
        "naive": _f(m["naive"]["estimate"], 1, True),
        "gap": _f(abs(m["naive"]["estimate"] - m["att"]["estimate"])),
        "n_treated": f"{m['n_treated']:,}",
        "n_comparison": f"{m['n_comparison']:,}",
        "usual": _f(usual),
        "dip": _f(dip),
    }


def test_outputs_declared_and_written(run_a, run_b):
    root, out = run_a
    assert set(out) == {"figures", "published", "html", "pdf"} if CHROMIUM else True
    for p in out.values():
        assert p.exists()
    assert set(run_b[1]) == {"figures", "published", "html"}


def test_numbers_in_text_come_from_the_inputs(run_a, run_b):
    texts = {}
    for name, (root, out) in (("A", run_a), ("B", run_b)):
        html = out["html"].read_text(encoding="utf-8")
        exp = _expected_numbers(root)
        summary = _section_text(html, "summary")
        design = _section_text(html, "design")
        # the naive estimate is not a headline: it is in the design section's figure
        for key in ("att", "att_lo", "att_hi", "n_treated", "n_comparison"):
            assert exp[key] in summary, f"{name}: {key}={exp[key]} not in the executive summary"
        for key in ("usual", "dip", "naive", "att", "gap"):
            assert exp[key] in design, f"{name}: {key}={exp[key]} not in the design section"
        texts[name] = (exp, summary)
    (ea, sa), (eb, sb) = texts["A"], texts["B"]
    for key in ("att", "n_treated", "n_comparison"):
        assert ea[key] != eb[key]
        assert ea[key] not in sb and eb[key] not in sa, key


def test_template_has_no_typed_numbers():
    src = (report.TEMPLATES / "report.html.j2").read_text(encoding="utf-8")
    stripped = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", src, flags=re.S)
    stripped = re.sub(r"<[^>]+>", " ", stripped)
    digits = re.findall(r".{0,30}[0-9].{0,30}", stripped)
    assert digits == [], f"numbers typed into the template: {digits}"
    facts = report.load_facts()
    for sec in ("program", "prior_evaluation", "context"):
        for f in facts[sec]:
            assert f["text"].strip() and f["source"].strip()


def test_synthetic_runs_are_labelled_everywhere(run_a, run_b):
    html_a = run_a[1]["html"].read_text(encoding="utf-8")
    assert 'id="synthetic-banner"' in html_a and figures.WATERMARK in html_a
    for svg in run_a[1]["figures"].glob("*.svg"):
        assert figures.WATERMARK in svg.read_text(encoding="utf-8"), svg.name
    html_b = run_b[1]["html"].read_text(encoding="utf-8")
    assert "synthetic-banner" not in html_b and figures.WATERMARK not in html_b
    for svg in run_b[1]["figures"].glob("*.svg"):
        assert figures.WATERMARK not in svg.read_text(encoding="utf-8"), svg.name


def test_html_is_self_contained(run_a):
    html = run_a[1]["html"].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    srcs = re.findall(r'<img src="([^"]{0,30})', html)
    assert len(srcs) == N_FIGURES
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_figure_files_and_manifest(run_a):
    figdir = run_a[1]["figures"]
    manifest = json.loads((figdir / "manifest.json").read_text())
    assert manifest["synthetic"] is True
    entries = manifest["figures"]
    assert {e["id"] for e in entries} == {
        "event_study",
        "event_study_all",
        "naive",
        "event_means",
        "event_study_chronic",
        "love_plot",
        "subgroups",
        "sample_flow",
        "chronic_by_month",
        "validation",
    }
    html = run_a[1]["html"].read_text(encoding="utf-8")
    for e in entries:
        png, svg = figdir / e["png"], figdir / e["svg"]
        assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
        with Image.open(png) as im:
            dpi = im.info["dpi"]
        assert abs(dpi[0] - 300) < 0.01 and abs(dpi[1] - 300) < 0.01
        assert len(e["alt"]) > 80 and f'alt="{e["alt"][:40]}' in html.replace("&#39;", "'")
        # evaluation figures draw only from disclosure-controlled tables; the simulation
        # study's figure from its own table, which holds no student's data
        allowed = ("tables/validation.csv",) if e["id"] == "validation" else ()
        assert all(s.startswith("tables/published/") or s in allowed for s in e["sources"])


def test_published_tables_pass_the_check_as_written(run_a):
    root, out = run_a
    inputs = report.load_inputs(root / "reports")
    sources = published_sources(inputs)
    written = {p.stem for p in out["published"].glob("*.csv")}
    assert written == set(sources)
    for name, (src, spec) in sources.items():
        pub = pd.read_csv(out["published"] / f"{name}.csv", keep_default_na=True)
        assert check_published(pub, src, spec, RULES) == [], name
    sg = pd.read_csv(out["published"] / "subgroups.csv")
    small = sg[(sg["subgroup"] == "cohort") & (sg["level"] == "2020-21")].iloc[0]
    assert pd.isna(small["n_treated"]) and pd.isna(small["estimate"])
    es = pd.read_csv(out["published"] / "event_study.csv")
    assert es.loc[es["event_time"] == 9, "estimate"].isna().all()  # only 14 students there


def test_stage_fails_and_writes_nothing_when_a_cell_leaks(tmp_path, monkeypatch):
    build_report_inputs(tmp_path, seed=3)

    def no_suppression(df, spec, rules):
        src = df.reset_index(drop=True)
        return Published(spec.name, src.assign(suppressed=""), src.isna() & False, src, spec)

    from pipeline.disclosure_ledger import DisclosureLedger

    # the report publishes through one ledger (pipeline.disclosure_ledger.publish_tables)
    monkeypatch.setattr(
        DisclosureLedger,
        "suppress",
        lambda self: {n: no_suppression(d, s, None) for n, (d, s) in self._tables.items()},
    )
    with pytest.raises(DisclosureError, match=r"sample_flow: row 1 \(step=eligible\)"):
        report.run(tmp_path, _params(pdf=False, dpi=50))
    rep = tmp_path / "reports"
    assert not (rep / "report.html").exists() and not (rep / "figures").exists()
    assert not (rep / "tables" / "published").exists()


def test_bad_inputs_give_clear_errors(tmp_path):
    rep = build_report_inputs(tmp_path, seed=2)
    sg = pd.read_csv(rep / "tables" / "subgroups.csv").drop(columns="n_comparison")
    sg.to_csv(rep / "tables" / "subgroups.csv", index=False)
    with pytest.raises(
        report.ReportInputError, match=r"subgroups.csv: missing required column.*n_comparison"
    ):
        report.load_inputs(rep)
    rep = build_report_inputs(tmp_path / "b", seed=2)
    m = json.loads((rep / "metrics.json").read_text())
    del m["naive"]
    (rep / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(report.ReportInputError, match=r"metrics.json: missing key.*naive"):
        report.load_inputs(rep)
    rep = build_report_inputs(tmp_path / "c", seed=2)
    es = pd.read_csv(rep / "tables" / "event_study.csv").astype({"estimate": object})
    es.loc[3, "estimate"] = "about 4"
    es.to_csv(rep / "tables" / "event_study.csv", index=False)
    with pytest.raises(
        report.ReportInputError, match=r"event_study.csv: column 'estimate' must be numeric; row 5"
    ):
        report.load_inputs(rep)


def test_design_text_follows_the_primary_design(run_a, run_b):
    a = run_a[1]["html"].read_text(encoding="utf-8")
    b = run_b[1]["html"].read_text(encoding="utf-8")
    # set A: the matched ANCOVA, reference = the months it adjusts for, placebo months before
    a, b = (re.sub(r"\s+", " ", x) for x in (a, b))
    assert "matched analysis of covariance" in a and "school months −3, −2 and −1" in a
    assert "that the design does not adjust for (school months −6, −5 and −4)" in a
    assert "within district" in a
    # set B: the matched differences design, reference event time -1
    assert "difference-in-differences relative to" in b and "(school month −1)" in b
    assert "matched analysis of covariance" not in b


def test_validation_section_only_when_validation_exists(run_a, run_b):
    html = run_a[1]["html"].read_text(encoding="utf-8")
    assert 'id="simulation"' in html
    # the appendix text is computed from validation.csv (largest pre-trend rejection: 8%)
    assert "pre-trend test rejects in at most 8% of replications" in re.sub(r"\s+", " ", html)
    # the verdict per simulated world, named as a reader would name it
    # and its reason composed from the verdict's basis columns: the fixture's bias 0.05 with
    # Monte Carlo SE 0.38 / sqrt(12) = 0.11, coverage 95% over 12 replications, and how wide
    # its interval is against the spread (the fixture's SE ratio 1.03)
    assert ("<li>dip (default): <strong>valid</strong>; bias +0.05 (Monte Carlo SE 0.11), "
            "coverage 95% over 12 replications; standard errors 1.03 times the spread of the "
            "estimates</li>") in html
    assert 'id="simulation"' not in run_b[1]["html"].read_text(encoding="utf-8")


def test_figures_are_byte_reproducible(tmp_path):
    bal = pd.DataFrame(
        {"covariate": ["a", "b"], "smd_before": [0.5, -0.2], "smd_after": [0.01, 0.03]}
    )
    digests = []
    for k in range(2):
        f = figures.love_plot(bal, synthetic=True)
        m = figures.save_figures([f], tmp_path / str(k), dpi=100)
        svg = (tmp_path / str(k) / "love_plot.svg").read_bytes()
        digests.append((m[0]["png_sha256"], svg))
    assert digests[0] == digests[1]


PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.tagName) || e.type));
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {w: i.naturalWidth, h: i.naturalHeight, complete: i.complete, alt: i.alt.length};
  });
  var res = performance.getEntriesByType('resource').map(function (r) { return r.name; })
    .filter(function (n) { return n.indexOf('data:') !== 0; });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({imgs: imgs, errors: window.__errors, resources: res,
    sections: Array.prototype.map.call(document.querySelectorAll('section'),
      function (s) { return s.id; })});
  document.body.appendChild(pre);
});
</script>"""


@needs_chromium
def test_report_loads_in_a_browser_with_all_figures(run_a, tmp_path):
    html = run_a[1]["html"].read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1)
    page = tmp_path / "probe.html"
    page.write_text(html, encoding="utf-8")
    with tempfile.TemporaryDirectory() as prof:
        res = subprocess.run(
            [
                CHROMIUM,
                *report.CHROMIUM_FLAGS,
                f"--user-data-dir={prof}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    m = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert m, f"no probe output; stderr: {res.stderr[-1000:]}"
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["errors"] == []
    assert probe["resources"] == []
    assert len(probe["imgs"]) == N_FIGURES
    assert all(
        i["complete"] and i["w"] >= 1500 and i["h"] >= 600 and i["alt"] > 80 for i in probe["imgs"]
    ), probe["imgs"]
    assert probe["sections"] == [
        "summary",
        "program",
        "data",
        "design",
        "results",
        "subgroups",
        "robustness",
        "sensitivity",
        "limitations",
        "appendix",
    ]


@needs_chromium
@needs_poppler
def test_pdf_has_the_report(run_a, tmp_path):
    pdf = run_a[1]["pdf"]
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 6
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for heading in (
        "Summary",
        "Design",
        "Results",
        "Subgroups",
        "Robustness",
        "Limitations",
        "Technical appendix",
        "SYNTHETIC DATA",
    ):
        assert heading in text, heading
    exp = _expected_numbers(run_a[0])
    assert exp["att"] in text and exp["n_treated"] in text
    # pages carry the figures: the first pages are not blank
    subprocess.run(
        ["pdftoppm", "-r", "20", "-png", "-f", "1", "-l", "3", str(pdf), str(tmp_path / "p")],
        check=True,
    )
    for png in sorted(tmp_path.glob("p-*.png")):
        with Image.open(png) as im:
            darkest = im.convert("L").getextrema()[0]
        assert darkest < 100, f"{png.name} looks blank"


def test_no_clear_effect_is_worded_as_such(tmp_path):
    rep = build_report_inputs(tmp_path, seed=5, effect=0.0, dip=6.0, synthetic=False)
    m = json.loads((rep / "metrics.json").read_text())
    assert m["att"]["ci_low"] < 0 < m["att"]["ci_high"]  # the fabricated premise
    out = report.run(tmp_path, _params(pdf=False, dpi=30))
    summary = _section_text(out["html"].read_text(encoding="utf-8"), "summary")
    assert "do not show a clear effect" in summary and "attended more school" not in summary


def test_too_few_students_overall_stops_the_stage(tmp_path):
    build_report_inputs(tmp_path, seed=4, n_treated=15, n_comparison=40, small_cells=False)
    with pytest.raises(DisclosureError, match="primary estimate rests on fewer than 20"):
        report.run(tmp_path, _params(pdf=False, dpi=30))
    assert not (tmp_path / "reports" / "report.html").exists()


def test_match_stage_crosstab_is_reduced_to_one_way_margins():
    crosstab = pd.DataFrame(
        {
            "district_code": ["D1", "D1", "D2", "ALL"],
            "grade_band": ["PK-5", "6-12", "PK-5", "ALL"],
            "prior_year_tier": ["at_risk", "at_risk", "severe_chronic", "ALL"],
            "n_treated": [30, 12, 50, 92],
            "n_matched": [28, 12, 47, 87],
            "n_no_candidates": [2, 0, 3, 5],
        }
    )
    long = report.normalise_match_summary(crosstab)
    got = {(r.dimension, r.level): (r.treated, r.matched, r.unmatched) for r in long.itertuples()}
    assert got == {
        ("district", "D1"): (42, 40, 2),
        ("district", "D2"): (50, 47, 3),
        ("grade_band", "6-12"): (12, 12, 0),
        ("grade_band", "PK-5"): (80, 75, 5),
        ("tier", "at_risk"): (42, 40, 2),
        ("tier", "severe_chronic"): (50, 47, 3),
    }
    with pytest.raises(report.ReportInputError, match="expected columns"):
        report.normalise_match_summary(crosstab.drop(columns="n_matched"))


def test_truth_table_gets_bias_and_coverage():
    tc = pd.DataFrame(
        {
            "estimator": ["a", "b"],
            "quantity": ["w", "w"],
            "estimate": [5.0, 9.0],
            "truth": [4.5, 4.5],
            "ci_low": [4.0, 8.0],
            "ci_high": [6.0, 10.0],
        }
    )
    out = report_inputs._complete_truth(tc)
    assert out["bias"].tolist() == [0.5, 4.5] and out["covered"].tolist() == [True, False]


def test_reference_period_detection():
    es = pd.DataFrame(
        {
            "estimator": "p",
            "event_time": [-3, -2, -1, 0, 1],
            "estimate": [0.1, 0.2, 0.0, 1.0, 2.0],
            "std_error": [0.1, 0.1, 0.0, 0.2, 0.2],
        }
    )
    assert figures.reference_periods(es, "p") == [-1]
    omitted = es[es["event_time"] != -1]
    omitted = omitted.assign(estimate=omitted["estimate"] + 0.5)
    assert figures.reference_periods(omitted, "p") == [-1]
    assert figures.reference_periods(es[es["event_time"] != -2].assign(std_error=0.3), "p") == [-2]


def test_study_settings_are_read_and_compared_with_the_estimate(tmp_path):
    """The appendix says how the simulation study ran the primary design, and when that is
    not how the report's estimate ran (``study.json`` / ``timing.json`` beside the table)."""
    from pipeline.reporting.context import study_settings_note
    from pipeline.reporting.inputs import ReportInputError, read_study_settings

    assert read_study_settings(tmp_path) is None
    (tmp_path / "study.json").write_text('{"cluster": "student_key", "ipcw_truncate": null}')
    old = read_study_settings(tmp_path)
    (tmp_path / "timing.json").write_text(
        '{"cluster": "home_school_code", "ipcw_truncate": [0.01, 0.99], "n_reps": 3}'
    )
    new = read_study_settings(tmp_path)  # timing.json first
    assert new["cluster"] == "home_school_code" and old["cluster"] == "student_key"
    ours = {"design_settings": {"cluster": "home_school_code"},
            "censoring": {"truncate": [None, None]}}
    text = study_settings_note(old, ours)
    assert text.startswith("The study ran the primary design with errors clustered by student "
                           "and untruncated censoring weights; this report's estimate clusters "
                           "its errors by each student's first school")
    assert text.endswith("not that of this report's interval.")
    assert "1st and 99th percentiles" in study_settings_note(new, ours)
    same = {"design_settings": {"cluster": "home_school_code"},
            "censoring": {"truncate": [0.01, 0.99]}}
    assert study_settings_note(new, same).endswith(", as this report's estimate does.")
    assert study_settings_note(None, ours) is None
    # effect strata and the small-sample correction are part of how the estimate ran: a
    # study that did not record them ran neither, and is not this report's estimate
    strat = {"design_settings": {"cluster": "home_school_code", "effect_strata": "grade_band",
                                 "vcov": "CR2"}, "censoring": {"truncate": [0.01, 0.99]}}
    text = study_settings_note(new, strat)
    assert "not that of this report's interval" in text
    assert "Bell-McCaffrey small-sample correction" in text and "within each grade band" in text
    rec = {**new, "effect_strata": "grade_band", "vcov": "CR2"}
    assert study_settings_note(rec, strat).endswith(", as this report's estimate does.")
    # so is the recorded year: a study that did not record it did not adjust for it
    hist = {**same, "design_settings": {**same["design_settings"], "history": True}}
    text = study_settings_note(new, hist)
    assert "not that of this report's interval" in text
    assert "adjusting for the recorded year at the first visit" in text
    assert study_settings_note({**new, "history": True}, hist).endswith(
        ", as this report's estimate does.")
    # the size of the simulated states, when the study recorded it
    sized = {**new, "n_students": 10000, "n_districts": 8, "n_program_districts": 4}
    assert study_settings_note(sized, ours).startswith(
        "The study ran the primary design on synthetic states of 10,000 students in 8 "
        "districts (4 in the program) with errors clustered")
    (tmp_path / "timing.json").write_text('{"cluster": "student_key"}')
    with pytest.raises(ReportInputError, match="timing.json: needs the keys"):
        read_study_settings(tmp_path)


def test_the_interval_quotes_its_coverage_in_the_study_only_with_the_same_settings():
    import pandas as pd

    from pipeline.reporting.caveats import inference_caveat
    from pipeline.reporting.context import study_coverage

    v = pd.DataFrame({"design": ["primary"] * 3 + ["extended"], "n_reps": [100, 100, 90, 100],
                      "verdict": ["valid", "valid", "caught", "valid"],
                      "coverage": [0.94, 0.99, 0.5, 0.2]})
    ours = {"design_settings": {"cluster": "home_school_code"},
            "censoring": {"truncate": [None, None]},
            "att": {"estimate": 8.0, "ci_low": 6.5, "ci_high": 9.5}}
    same = {"cluster": "home_school_code", "ipcw_truncate": None}
    c = study_coverage(v, same, ours)
    assert c == {"lo": 94.0, "hi": 99.0, "worlds": 2, "n_reps": 100}
    assert study_coverage(v, {"cluster": "student_key", "ipcw_truncate": None}, ours) is None
    assert study_coverage(v, None, ours) is None
    text = inference_caveat(ours, {}, c).text
    assert ("with these settings it covered the truth in 94% to 99% of replications in the "
            "2 valid worlds (95% intended)") in text
    assert "covered the truth" not in inference_caveat(ours, {}, None).text


def test_first_page_caveats_from_the_review():
    """Lee bounds, the thinning of the comparison group by the censoring weights, what no
    design can fix, and the pre-trend test named as the F test it is."""
    import pandas as pd

    from pipeline.reporting import caveats as cv
    from pipeline.reporting.context import pretrend_f

    diag = pd.DataFrame({"event_time": [5, 6], "comparison_rows": [754, 719],
                         "effective_sample_size": [65.9, 17.4], "max_weight": [86.0, 192.6]})
    m = {"att": {"estimate": 8.0, "ci_low": 6.5, "ci_high": 9.5}, "att_window": [1, 6],
         "design_settings": {"cluster": "home_school_code"}, "censoring": {}}
    c = cv.inference_caveat(m, {}, None, diag)
    assert "By month 6 the censoring weights leave the equivalent of 17 of 719 comparison " \
           "rows (largest weight 192.6)." in c.text
    assert c.status == cv.CONCERN
    ok = diag.assign(effective_sample_size=[700.0, 600.0])
    assert cv.inference_caveat(m, {}, None, ok).status != cv.CONCERN
    v = pd.DataFrame({"estimator": ["matched_ancova"] * 2 + ["twfe"],
                      "scenario": ["dip", "unrecorded_shocks", "unrecorded_shocks"],
                      "targets_apply": [True, False, False], "bias": [0.1, -0.75, 13.0],
                      "coverage": [0.95, 0.63, 0.0]})
    (line,) = cv.beyond_the_records(v, "matched_ancova")
    assert line.endswith("selection on unrecorded shocks (bias −0.75, coverage 63%)")
    assert cv.beyond_the_records(v[v["targets_apply"]], "matched_ancova") == ()
    sizes = {"visited": 100, "not_matched": 5, "not_observed": 0}
    reasons = pd.DataFrame({"reason": [], "students": []})
    ms = pd.DataFrame({"dimension": ["grade_band"], "level": ["6-12"], "treated": [50],
                       "unmatched": [2]})
    a = cv.attrition_caveat(sizes, reasons, ms, None, (1, 6),
                            {"ci_low": -0.55, "ci_high": 9.77})
    assert "Lee bounds for this attrition: −0.6 to +9.8 points, which include zero." in a.text
    # with the difference they bound: said, and that the headline is not it
    a = cv.attrition_caveat(sizes, reasons, ms, None, (1, 6),
                            {"estimate": 4.104, "ci_low": -0.55, "ci_high": 9.77})
    assert ("Lee bounds for this attrition: −0.6 to +9.8 points around the raw difference "
            "among students seen in every month (+4.1), not the headline, and include zero; "
            "compare their width (10.3 points), not their level, with it.") in a.text
    f = pretrend_f({"statistic": 4.696567443886185, "df": 3, "clusters": 35})
    assert f["df1"] == 3 and f["df2"] == 32
    assert f["f"] == pytest.approx(4.696567443886185 * 32 / (3 * 34))
    assert pretrend_f({"statistic": 4.7, "df": 3, "clusters": None}) is None


def test_the_stress_study_paragraph_gives_the_simulated_states_size():
    from pipeline.reporting.context import study_size

    assert study_size({"n_students": 6000, "n_districts": 8, "n_program_districts": 4}) == (
        " on synthetic states of 6,000 students in 8 districts (4 in the program)")
    assert study_size({"cluster": "student_key"}) == "" and study_size(None) == ""
