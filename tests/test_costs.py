"""Cost-effectiveness (pipeline/analysis/costs.py): hand-computed arithmetic, the interval's
coverage against simulation from the estimate's sampling distribution, honest handling of
intervals that include zero, the settings' rules, and the report section's content."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.costs import (
    COST_COLUMNS,
    SENSITIVITY_COLUMNS,
    CostConfig,
    Effect,
    cost_effectiveness,
    program_cost,
    ratio_interval,
    run_costs,
    visit_counts,
)
from pipeline.analysis.costs_report import cost_figure, cost_section

matplotlib.use("Agg")


def _metrics(att=(5.0, 3.0, 7.0), chronic=(-10.0, -15.0, -5.0)):
    return {
        "att": dict(zip(("estimate", "ci_low", "ci_high"), att, strict=True)),
        "att_chronic": dict(zip(("estimate", "ci_low", "ci_high"), chronic, strict=True)),
        "att_window": [1, 6],
    }


def test_hand_computed_case():
    # $1,000,000 for 500 students = $2,000 each.  +5 points (3 to 7) over 6 months of
    # 18 days = 0.05 * 108 = 5.4 days per student: $2,000 / 5.4 = $370.37; the interval
    # is $2,000 / (0.07 * 108) = $264.55 to $2,000 / (0.03 * 108) = $617.28.  Chronic
    # absence -10 points (-15 to -5) in each of the 6 months: 0.6 chronically absent
    # months averted per student, $3,333.33 per month, interval $2,000 / 0.9 = $2,222.22
    # to $2,000 / 0.3 = $6,666.67.
    cfg = CostConfig(total_cost=1_000_000, students_reached=500)
    t = run_costs(cfg, _metrics(), visited_students=123)["cost_effectiveness"]
    assert list(t.columns) == COST_COLUMNS
    t = t.set_index("measure")
    assert t.loc["per_student", "cost_per_unit"] == pytest.approx(2000.0)
    assert t.loc["per_day", "units_per_student"] == pytest.approx(5.4)
    assert t.loc["per_day", "cost_per_unit"] == pytest.approx(370.3704, rel=1e-6)
    assert t.loc["per_day", "ci_low"] == pytest.approx(264.5503, rel=1e-6)
    assert t.loc["per_day", "ci_high"] == pytest.approx(617.2840, rel=1e-6)
    assert t.loc["per_chronic_case", "units_per_student"] == pytest.approx(0.6)
    assert t.loc["per_chronic_case", "cost_per_unit"] == pytest.approx(3_333.333, rel=1e-6)
    assert t.loc["per_chronic_case", "ci_low"] == pytest.approx(2_222.222, rel=1e-6)
    assert t.loc["per_chronic_case", "ci_high"] == pytest.approx(6_666.667, rel=1e-6)
    assert t["bounded"].all()


def test_students_reached_from_the_extract_and_ingredients():
    # Ingredients: $100,000 fixed + 40 attempts x $50 + 160 visits x $300 = $150,000
    # over the extract's 75 visited students = $2,000 each.
    cfg = CostConfig(
        total_cost=100_000,
        students_reached=None,
        cost_per_attempt=50,
        cost_per_completed_visit=300,
    )
    assert program_cost(cfg, attempts=40, completed=160) == pytest.approx(150_000)
    out = run_costs(cfg, _metrics(), visited_students=75, attempts=40, completed=160)
    t = out["cost_effectiveness"].set_index("measure")
    assert t.loc["per_student", "cost_per_unit"] == pytest.approx(2000.0)
    assert t.loc["per_student", "students_reached"] == 75
    # no alternative head counts when the count comes from the extract's visits
    assert not out["cost_sensitivity"]["scenario"].str.contains("students").any()


def test_interval_matches_simulation_from_the_sampling_distribution():
    # theta ~ N(4, 1): the 95% interval of K / theta from draws equals the inverted
    # interval of theta (monotone transformation; P(theta <= 0) is negligible).
    rng = np.random.default_rng(7)
    k, est, se = 100.0, 4.0, 1.0
    eff = Effect(est, est - 1.959964 * se, est + 1.959964 * se)
    point, lo, hi, bounded, _ = ratio_interval(k, eff)
    draws = k / rng.normal(est, se, 400_000)
    q_lo, q_hi = np.quantile(draws, [0.025, 0.975])
    assert bounded and point == pytest.approx(25.0)
    assert lo == pytest.approx(q_lo, rel=0.01)
    assert hi == pytest.approx(q_hi, rel=0.01)
    # and the delta method's symmetric interval would not: its lower end is far off
    delta_lo = k / est - 1.959964 * k * se / est**2
    assert abs(delta_lo - q_lo) > 0.1 * q_lo


def test_interval_including_zero_is_unbounded_and_no_gain_is_undefined():
    point, lo, hi, bounded, note = ratio_interval(10.0, Effect(1.0, -0.5, 2.5))
    assert point == pytest.approx(10.0) and lo == pytest.approx(4.0)
    assert math.isinf(hi) and not bounded and "unbounded" in note
    point, lo, hi, bounded, note = ratio_interval(10.0, Effect(-1.0, -2.0, 0.5))
    assert math.isnan(point) and not bounded and "no estimated gain" in note
    # in the table: a chronic effect whose interval crosses zero
    cfg = CostConfig(total_cost=1_000_000, students_reached=500)
    t = cost_effectiveness(cfg, Effect(5, 3, 7), Effect(-2, -6, 1), 6, 500, 1_000_000)
    r = t.set_index("measure").loc["per_chronic_case"]
    assert not r["bounded"] and math.isinf(r["ci_high"])
    assert r["ci_low"] == pytest.approx(2000 / (0.06 * 6))  # 6 months of the window


def test_sensitivity_scales_with_cost():
    cfg = CostConfig(total_cost=1_000_000, students_reached=500)
    s = run_costs(cfg, _metrics(), visited_students=1)["cost_sensitivity"]
    assert list(s.columns) == SENSITIVITY_COLUMNS
    day = s[(s["measure"] == "per_day") & s["scenario"].str.startswith("cost")]
    base = day.loc[day["cost_multiplier"] == 1.0, "cost_per_unit"].item()
    np.testing.assert_allclose(day["cost_per_unit"], base * day["cost_multiplier"])
    alt = s[(s["measure"] == "per_student") & (s["scenario"] == "9,000 students reached")]
    assert alt["cost_per_unit"].item() == pytest.approx(1_000_000 / 9000)


@pytest.mark.parametrize(
    "params, key",
    [
        ({"total_cost": -1}, "costs.total_cost"),
        ({"students_reached": 0}, "costs.students_reached"),
        ({"cost_per_attempt": 10}, "costs.students_reached"),
        ({"school_days_per_month": 0}, "costs.school_days_per_month"),
        ({"cost_multipliers": [1, -1]}, "costs.cost_multipliers"),
    ],
)
def test_settings_errors_name_the_key(params, key):
    with pytest.raises(ValueError, match=key):
        CostConfig.from_params(params)


def test_unknown_key_and_missing_metrics():
    with pytest.raises(KeyError, match="total_costs"):
        CostConfig.from_params({"total_costs": 1})
    with pytest.raises(KeyError, match="att_chronic"):
        run_costs(CostConfig(), {"att": {}, "att_window": [1, 6]}, 10)


def test_visit_counts(tmp_path):
    hv = pd.DataFrame(
        {
            "student_key": ["a", "a", "b", "c", "c"],
            "outcome": ["attempted", "completed", "completed", "attempted", "attempted"],
        }
    )
    hv.to_parquet(tmp_path / "hv.parquet")
    assert visit_counts(tmp_path / "hv.parquet") == (3, 2, 2)


def test_report_section_and_figure():
    cfg = CostConfig(total_cost=1_000_000, students_reached=500)
    out = run_costs(cfg, _metrics(chronic=(-2.0, -6.0, 1.0)), visited_students=1)
    sec = cost_section(out["cost_effectiveness"], out["cost_sensitivity"], synthetic=True)
    text = " ".join(sec["sentences"])
    assert "$2,000 per student" in text
    assert "$370 (95% interval $265 to $617)" in text
    assert "could be unbounded" in text and "illustrative" in text
    assert "per_day" not in text and "per_day" not in sec["table"].to_string()
    # the cost per student involves no estimate: no interval is shown for it
    iv = sec["table"].set_index("Cost per")["95% interval"]
    assert iv["student reached"] == "none: no estimate enters it"
    assert iv["additional day attended"] == "$265 to $617"
    assert len(sec["sensitivity"]) == 7
    fig = cost_figure(out["cost_sensitivity"])
    assert len(fig.axes) == 2


def test_stage_writes_both_tables_from_params(tmp_path, monkeypatch):
    """``python -m pipeline.costs`` in a project: this repository's params.yaml, a metrics
    file and the ingest stage's home visits → the two declared tables, nothing else."""
    import json
    import shutil
    from pathlib import Path

    from pipeline import costs as stage

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/metrics.json").write_text(json.dumps(_metrics()))
    (tmp_path / "data/interim").mkdir(parents=True)
    pd.DataFrame({"student_key": ["a", "b"], "outcome": ["completed", "attempted"]}).to_parquet(
        tmp_path / "data/interim/home_visits.parquet"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEAP_PROJECT_ROOT", raising=False)
    stage.main()
    written = sorted(p.name for p in (tmp_path / "reports/tables").iterdir())
    assert written == ["cost_effectiveness.csv", "cost_sensitivity.csv"]
    t = pd.read_csv(tmp_path / "reports/tables/cost_effectiveness.csv").set_index("measure")
    # the defaults: $10.7M over 8,700 students
    assert t.loc["per_student", "cost_per_unit"] == pytest.approx(10_700_000 / 8700, rel=1e-5)
