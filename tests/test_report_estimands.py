"""The report with the estimands tables (pipeline/estimands.py) among its inputs."""

import re

import numpy as np
import pandas as pd
import pytest

from pipeline import report
from pipeline.analysis.schemas import ESTIMATE_TABLES
from tests.report_fixtures import build_report_inputs


def _params() -> dict:
    return {
        "report": {"reports_dir": "reports", "dpi": 40, "pdf": False},
        "disclosure": {"min_count": 6, "min_denominator": 20},
    }


def _write_estimand_tables(tables):
    est = pd.DataFrame(
        [
            ["completed visit", "analytic, clustered by school", 6.1, 0.9, 4.3, 7.9, 1200, ""],
            ["completed visit", "design bootstrap (schools within districts)", 6.1, 1.1,
             3.8, 8.2, 1200, "199 draws"],
            ["completed visit", "wild cluster bootstrap by district", 6.1, 1.4, 2.9, 9.6, 1200,
             "5 districts"],
            ["first attempted visit (intent to treat)", "analytic, clustered by school", 4.4,
             0.8, 2.8, 6.0, 1500, ""],
            ["families reached (ITT / share reached)", "delta method", 5.8, 1.1, 3.6, 8.0, 1500,
             ""],
            ["completed visit", "Lee (2009) bounds, unadjusted matched difference", 6.3,
             np.nan, 5.1, 7.4, 1200, ""],
            ["small group", "analytic, clustered by school", 1.0, 3.0, -5.0, 7.0, 4, ""],
        ],
        columns=ESTIMATE_TABLES["estimands"],
    )  # fmt: skip
    est.to_csv(tables / "estimands.csv", index=False)
    k = np.arange(1, 4)
    att = pd.DataFrame(
        {
            "event_time": k, "n_treated": 1200, "n_comparison": 3400,
            "retained_treated": [1180, 1150, 1100], "retained_comparison": [3300, 3200, 3000],
            "censored_comparison": [3, 40, 90], "attrition_treated": [1.7, 4.2, 8.3],
            "attrition_comparison": [2.9, 5.9, 11.8], "overall_attrition": [2.6, 5.4, 10.9],
            "differential_attrition": [1.3, 1.7, 3.4], "boundary": "cautious",
            "max_differential": [5.9, 6.1, 6.2], "wwc_attrition": "low",
        }
    )  # fmt: skip
    att.to_csv(tables / "attrition.csv", index=False)
    cd = pd.DataFrame(
        {
            "event_time": k, "comparison_rows": [3303, 3240, 3090],
            "censored_rows": [3, 40, 90], "censoring_events": [3, 37, 50],
            "effective_sample_size": [3290.0, 3100.5, 2800.2], "max_weight": [1.2, 2.5, 4.1],
            "truncated_rows": [66, 64, 60],
        }
    )  # fmt: skip
    cd.to_csv(tables / "censoring_diagnostics.csv", index=False)
    cy = pd.DataFrame(
        {
            "school_year": ["2021-22", "2021-22"], "leap_district": [True, False],
            "n_students": [5000, 25000], "n_chronic": [1300, 5400],
            "chronic_rate": [26.0, 21.6],
        }
    )  # fmt: skip
    cy.to_csv(tables / "chronic_yearly.csv", index=False)


def _write_cost_tables(tables):
    """The costs stage's tables for $1,000,000 over 500 students and +5 (3 to 7) points."""
    from pipeline.analysis.costs import CostConfig, run_costs

    metrics = {"att": {"estimate": 5.0, "ci_low": 3.0, "ci_high": 7.0},
               "att_chronic": {"estimate": -10.0, "ci_low": -15.0, "ci_high": -5.0},
               "att_window": [1, 6]}  # fmt: skip
    out = run_costs(CostConfig(total_cost=1_000_000, students_reached=500), metrics, 1)
    for name, df in out.items():
        df.to_csv(tables / f"{name}.csv", index=False)


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_estimands")
    build_report_inputs(root, seed=3, effect=6.0, dip=9.0, n_treated=1200, design="ancova")
    _write_estimand_tables(root / "reports" / "tables")
    _write_cost_tables(root / "reports" / "tables")
    out = report.run(root, _params())
    return (root / "reports" / "report.html").read_text(), out


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_summary_carries_the_reachability_caveat_and_intervals(html):
    page, _ = html
    m = re.search(r'<section id="summary">(.*?)</section>', page, re.S)
    summary = _text(m.group(1))
    assert "reached or not (intent to treat)" in summary
    assert "+4.4 points (95% CI 2.8 to 6.0)" in summary
    assert "+5.8 points (95% CI 3.6 to 8.0) per family reached" in summary
    assert "3.8 to 8.2" in summary and "2.9 to 9.6" in summary


def test_appendix_tables_and_suppression(html):
    page, _ = html
    text = _text(page)
    for title in ("Estimands and intervals", "Attrition", "Censoring weights",
                  "Chronic absence as the state measures it"):  # fmt: skip
        assert title in text
    assert "not the state's measure" in text
    # the row resting on 4 students is suppressed, and so are censored counts under 6
    est = re.search(r"Estimands and intervals.*?</table>", page, re.S).group(0)
    small = re.search(r"<tr><td[^>]*>small group</td>.*?</tr>", est, re.S).group(0)
    assert "‡" in small
    att = re.search(r"<h3>Attrition</h3>.*?</table>", page, re.S).group(0)
    assert "WWC attrition" in att  # the column's label (pipeline/labels.py)


def test_without_the_tables_the_report_is_unchanged(tmp_path):
    build_report_inputs(tmp_path, seed=3, effect=6.0, dip=9.0, n_treated=1200, design="ancova")
    report.run(tmp_path, _params())
    page = (tmp_path / "reports" / "report.html").read_text()
    assert "intent to treat" not in page and "Estimands and intervals" not in page
    assert 'id="costs"' not in page


def test_cost_section_and_figure(html):
    page, out = html
    m = re.search(r'<section id="costs">(.*?)</section>', page, re.S)
    text = _text(m.group(1))
    # $2,000 a student over 0.05 × 108 school days (tests/test_costs.py's hand computation)
    assert "Cost-effectiveness" in text and "$370 (95% interval $265 to $617)" in text
    assert "per_day" not in text
    import json

    manifest = json.loads((out["figures"] / "manifest.json").read_text())
    assert "costs" in {f["id"] for f in manifest["figures"]}
