"""Attrition per event time against the WWC boundary, and Lee (2009) bounds."""

import numpy as np
import pandas as pd
import pytest

from pipeline.attrition import (
    attrition_table,
    lee_bounds,
    lee_bounds_matched,
    wwc_max_differential,
)


def test_lee_bounds_hand_computed():
    # visited: 10 students, all observed, outcomes 1..10; comparison: 10 students, 8
    # observed with outcomes 2..9 (mean 5.5). Retention 1.0 vs 0.8: trim p = 0.2 of the
    # visited group, i.e. 2 students: lower = mean(1..8) - 5.5 = -1, upper = mean(3..10)
    # - 5.5 = +1
    y = np.r_[np.arange(1, 11), np.arange(2, 10), np.nan, np.nan]
    obs = ~np.isnan(y)
    t = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    b = lee_bounds(np.nan_to_num(y), obs, t)
    assert b.trimmed_group == "treated"
    assert b.trim_share == pytest.approx(0.2)
    assert (b.lower, b.upper) == (pytest.approx(-1.0), pytest.approx(1.0))
    assert b.naive == pytest.approx(0.0)
    # the same with the groups swapped: the comparison group is trimmed, signs flip
    s = lee_bounds(np.nan_to_num(y), obs, ~t)
    assert s.trimmed_group == "comparison"
    assert (s.lower, s.upper) == (pytest.approx(-1.0), pytest.approx(1.0))


def test_lee_bounds_split_the_boundary_observation():
    # visited outcomes 0,1,2,3 all observed; comparison 3 of 5 observed (outcomes 0, 0, 0)
    # p = (1 - 0.6) / 1 = 0.4: remove weight 1.6 of 4 from the top -> keep 0 (1), 1 (1),
    # 2 (0.4): mean 1.8 / 2.4 = 0.75; from the bottom -> keep 1 (0.4), 2, 3: 5.4/2.4 = 2.25
    y = np.array([0, 1, 2, 3, 0, 0, 0, 0, 0], float)
    obs = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    b = lee_bounds(y, obs, t)
    assert (b.lower, b.upper) == (pytest.approx(0.75), pytest.approx(2.25))
    # integer weights equal repeated rows
    w = np.array([2, 1, 1, 2, 1, 1, 1, 1, 1], float)
    rep = np.repeat(np.arange(9), w.astype(int))
    bw = lee_bounds(y, obs, t, w)
    br = lee_bounds(y[rep], obs[rep], t[rep])
    assert (bw.lower, bw.upper) == (pytest.approx(br.lower), pytest.approx(br.upper))


def test_lee_bounds_equal_retention_is_the_difference():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    t = np.arange(400) < 200
    obs = np.r_[np.arange(200) < 150, np.arange(200) < 150]
    b = lee_bounds(y, obs, t)
    assert b.lower == pytest.approx(b.naive) and b.upper == pytest.approx(b.naive)
    with pytest.raises(ValueError, match="no observed"):
        lee_bounds(y, obs & ~t, t)


def test_wwc_boundary_values():
    # Standards Handbook 4.1, Table II.1
    assert wwc_max_differential(0, "cautious") == 5.7
    assert wwc_max_differential(0, "optimistic") == 10.0
    assert wwc_max_differential(30, "cautious") == 4.1
    assert wwc_max_differential(30, "optimistic") == 8.2
    assert wwc_max_differential(57, "cautious") == 0.0
    assert np.isnan(wwc_max_differential(58, "cautious"))
    assert wwc_max_differential(65, "optimistic") == 0.3
    assert np.isnan(wwc_max_differential(66, "optimistic"))
    with pytest.raises(ValueError, match="boundary"):
        wwc_max_differential(10, "hopeful")


def _matched():
    """Two matched sets, each 1 visited + 3 comparison students over event times 0..2.

    k = 1: every visited student present; comparison: one missing (left), one censored
    -> retained 2 + 4 of 2 + 6. k = 2: one visited student missing.
    """
    rows = []
    for m in (1, 2):
        for j, role in enumerate(["treated", "comparison", "comparison", "comparison"]):
            for k in (0, 1, 2):
                if m == 1 and j == 1 and k >= 1:
                    continue  # left the records
                if m == 2 and j == 0 and k == 2:
                    continue
                rows.append(
                    {
                        "match_id": m,
                        "student_key": f"s{m}{j}",
                        "role": role,
                        "stack_event_time": k,
                        "censored": m == 2 and j == 3 and k >= 1,
                        "attendance_rate": 90.0 + k + (5 if role == "treated" else 0),
                        "weight": 1.0,
                    }
                )
    return pd.DataFrame(rows)


def test_attrition_table_counts_by_hand():
    tab = attrition_table(_matched(), event_times=(1, 2)).set_index("event_time")
    assert tab.loc[1, "n_treated"] == 2 and tab.loc[1, "n_comparison"] == 6
    assert tab.loc[1, "retained_treated"] == 2 and tab.loc[1, "retained_comparison"] == 4
    assert tab.loc[1, "censored_comparison"] == 1
    assert tab.loc[1, "attrition_treated"] == pytest.approx(0.0)
    assert tab.loc[1, "attrition_comparison"] == pytest.approx(100 / 3)
    assert tab.loc[1, "overall_attrition"] == pytest.approx(25.0)
    # 25% overall: cautious boundary 4.8 points; 33.3 points differential is high
    assert tab.loc[1, "max_differential"] == 4.8
    assert tab.loc[1, "wwc_attrition"] == "high"
    assert tab.loc[2, "attrition_treated"] == pytest.approx(50.0)
    assert tab.loc[2, "differential_attrition"] == pytest.approx(50 - 100 / 3)


def test_attrition_low_when_nobody_leaves():
    m = _matched()
    full = m[m["stack_event_time"] == 0]
    full = pd.concat([full.assign(stack_event_time=k) for k in (0, 1, 2)], ignore_index=True)
    full["censored"] = False
    tab = attrition_table(full, event_times=(1, 2), boundary="optimistic")
    assert (tab["overall_attrition"] == 0).all()
    assert (tab["wwc_attrition"] == "low").all()
    assert (tab["max_differential"] == 10.0).all()


def test_lee_bounds_matched_uses_fully_observed_members():
    b = lee_bounds_matched(_matched(), window=(1, 2))
    # observed over both months: visited s10 (mean 96.5); comparison s12, s13, s21, s22
    # (mean 91.5) -> retention 1/2 vs 4/6, the comparison group is trimmed
    assert b.retention_treated == pytest.approx(0.5)
    assert b.retention_comparison == pytest.approx(4 / 6)
    assert b.trimmed_group == "comparison"
    # comparison outcomes are all 91.5, so trimming changes nothing
    assert b.lower == pytest.approx(5.0) and b.upper == pytest.approx(5.0)
