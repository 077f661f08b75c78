"""The recorded year the primary design conditions on (pipeline/history.py): the history
by hand, and the design with it (the reference months, the stage's stacks)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.design import add_outcomes, censoring_adjusted, primary
from pipeline.analysis.settings import EstimateConfig
from pipeline.history import HISTORY_COLUMNS, HISTORY_REFS, recorded_history, with_history
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from tests.conftest import small_config
from tests.panel_factory import build_panel


def _panel() -> pd.DataFrame:
    # student a: 2020-21 months 1-3, 2021-22 months 11-13 (school_month index)
    return pd.DataFrame(
        {
            "student_key": ["a"] * 6 + ["b"] * 2,
            "school_month": [1, 2, 3, 11, 12, 13, 12, 13],
            "school_year": ["2020-21"] * 3 + ["2021-22"] * 3 + ["2021-22"] * 2,
            "days_present": [10, 5, 20, 18, 9, 10, 4, 8],
            "days_membership": [20, 10, 20, 20, 10, 10, 10, 10],
            "prior_year_rate": [np.nan] * 3 + [35 / 50 * 100] * 3 + [np.nan] * 2,
        }
    )


def test_recorded_history_by_hand():
    h = recorded_history(_panel()).set_index(["student_key", "school_month"])
    # year to date: the months of the school year before; the prior year in its first month
    assert np.isnan(h.loc[("a", 1), "ytd_rate"])
    assert h.loc[("a", 3), "ytd_rate"] == pytest.approx(100 * 15 / 30)
    assert h.loc[("a", 11), "ytd_rate"] == pytest.approx(70.0)
    assert h.loc[("a", 13), "ytd_rate"] == pytest.approx(100 * 27 / 30)
    # own mean: every recorded month before
    assert h.loc[("a", 12), "level_rate"] == pytest.approx(100 * 53 / 70)
    assert np.isnan(h.loc[("b", 12), "level_rate"])
    assert h.loc[("b", 13), "level_rate"] == pytest.approx(40.0)
    # four school months before (month 11 - 4 = 7 is not recorded)
    assert np.isnan(h.loc[("a", 11), "rate_lag4"])
    assert np.isnan(h.loc[("a", 3), "rate_lag4"])
    stacked = pd.DataFrame({"student_key": ["a", "b", "a"], "school_month": [13, 13, 2]})
    out = with_history(stacked, _panel())
    assert list(out["student_key"]) == ["a", "b", "a"]
    assert out["ytd_rate"].tolist() == pytest.approx([90.0, 40.0, 50.0])


def test_recorded_history_rejects_duplicates():
    p = pd.concat([_panel(), _panel().iloc[:1]])
    with pytest.raises(ValueError, match="more than one"):
        recorded_history(p)
    with pytest.raises(KeyError, match="days_present"):
        recorded_history(_panel().drop(columns="days_present"))


@pytest.fixture(scope="module")
def stacks():
    panel = build_panel(small_config())[0]
    spec = RiskSetSpec()
    m = add_outcomes(stack_panels(panel, riskset_match(panel, spec).matches, spec.window))
    return panel, censoring_adjusted(with_history(m, panel), EstimateConfig())[0]


def _fit(m, history):
    cfg = EstimateConfig(wild_bootstrap=False, history=history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return primary(m, "attendance_rate", cfg, bootstrap=False)


def test_history_design_moves_event_time_minus_four_into_the_reference(stacks):
    _, m = stacks
    plain, ext = _fit(m, False), _fit(m, True)
    assert set(ext.reference) == {-3, -2, -1, *HISTORY_REFS}
    assert -4 in plain.event_time.tolist() and -4 not in ext.event_time.tolist()
    # the pre-trend test keeps the months before the reference
    assert list(ext.pretrend_test().event_times) == [-6, -5]
    # the rate four months before is event time -4's outcome: conditioning on it leaves
    # nothing there to estimate (the plain design's -4 is a real placebo)
    at4 = m.loc[m["stack_event_time"] == 0].set_index(["match_id", "student_key"])["rate_lag4"]
    y4 = m.loc[m["stack_event_time"] == -4].set_index(["match_id", "student_key"])
    both = y4["attendance_rate"].to_frame().join(at4, how="inner").dropna()
    assert len(both) > 100
    np.testing.assert_allclose(both["attendance_rate"], both["rate_lag4"], atol=1e-9)
    # the covariates are used: the post-visit effects move
    a, b = plain.average((1, 6)).estimate, ext.average((1, 6)).estimate
    assert abs(a - b) > 1e-4


def test_history_design_names_missing_columns(stacks):
    _, m = stacks
    with pytest.raises(KeyError, match="level_rate"):
        _fit(m.drop(columns=list(HISTORY_COLUMNS)), True)


def test_history_reference_months_must_precede_the_visit(stacks):
    from pipeline.did.ancova import matched_ancova

    _, m = stacks
    with pytest.raises(ValueError, match="extra_refs"):
        matched_ancova(m, yname="attendance_rate", extra=HISTORY_COLUMNS, extra_refs=(0,))
