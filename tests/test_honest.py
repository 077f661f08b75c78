"""Relative-magnitude (Δ^RM) sensitivity: closed form and coverage under Δ^RM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pipeline.did.honest import relative_magnitudes
from pipeline.did.results import EventStudyResult

EVENTS = np.array([-3, -2, 0, 1, 2, 3])  # reference -1 omitted


def _res(est, sd=0.5, df=None):
    return EventStudyResult(
        estimator="x", event_time=EVENTS, estimate=np.asarray(est, float),
        vcov=np.diag(np.full(EVENTS.size, sd**2)), reference=(-1,), df=df,
    )


def test_closed_form():
    r = _res([0.3, -0.2, 1.0, 2.0, 3.0, 4.0], sd=0.5)
    tab = relative_magnitudes(r, (1, 3), [0.0, 1.0, 2.0], alpha=0.05)
    # pre changes: -2 - -3 = -0.5 (sd √0.5), -1 - -2 = 0.2 (sd 0.5)
    c_pre = stats.norm.ppf(1 - 0.05 / 8)  # two-sided at alpha/2 split over 2 changes
    d_up = max(0.5 + c_pre * np.sqrt(0.5), 0.2 + c_pre * 0.5)
    mult = np.mean([2, 3, 4])
    se = np.sqrt(3 * 0.25) / 3
    c = stats.norm.ppf(1 - 0.05 / 4)  # two-sided at alpha/2
    row = tab.set_index("mbar").loc[1.0]
    assert row["estimate"] == pytest.approx(3.0)
    assert row["max_pre_change"] == pytest.approx(0.5)
    assert row["max_pre_change_upper"] == pytest.approx(d_up)
    assert row["ci_low"] == pytest.approx(3.0 - d_up * mult - c * se)
    assert row["ci_high"] == pytest.approx(3.0 + d_up * mult + c * se)
    assert row["id_low"] == pytest.approx(3.0 - 0.5 * mult)
    zero = tab.set_index("mbar").loc[0.0]
    assert zero["ci_high"] - zero["estimate"] == pytest.approx(c * se)
    widths = (tab["ci_high"] - tab["ci_low"]).to_numpy()
    assert np.all(np.diff(widths) > 0)
    assert tab.attrs["breakdown_mbar"] == pytest.approx((3.0 - c * se) / (d_up * mult))


def test_coverage_under_delta_rm():
    """Bias paths at the edge of Δ^RM(M̄=1): the robust interval covers ≥ 95%."""
    rng = np.random.default_rng(7)
    # true violation: pre changes of 0.4, post changes of exactly 0.4 (Mbar = 1)
    delta = np.array([-0.8, -0.4, 0.4, 0.8, 1.2, 1.6])  # at EVENTS, 0 at -1
    tau = np.array([0, 0, 1.0, 1.0, 1.0, 1.0])
    theta = 1.0  # window 1..3 average of tau
    covered, covered_plugin = [], []
    for _ in range(2000):
        est = tau + delta + rng.normal(0, 0.3, EVENTS.size)
        row = relative_magnitudes(_res(est, sd=0.3), (1, 3), [1.0]).iloc[0]
        covered.append(row["ci_low"] <= theta <= row["ci_high"])
        covered_plugin.append(row["id_low"] <= theta <= row["id_high"])
    assert np.mean(covered) >= 0.95
    # the plug-in identified set alone is not a confidence interval
    assert np.mean(covered_plugin) < 0.9


def test_needs_reference_and_window_after_it():
    r = _res([0.3, -0.2, 1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="after the reference"):
        relative_magnitudes(r, (-1, 2), [1.0])
    r2 = EventStudyResult(estimator="x", event_time=EVENTS, estimate=np.zeros(6),
                          vcov=np.eye(6))
    with pytest.raises(ValueError, match="reference"):
        relative_magnitudes(r2, (1, 3), [1.0])


def test_a_reference_span_counts_only_the_changes_into_it():
    """With several reference months (the matched ANCOVA's −3…−1), the changes between
    them are zero by construction and do not count; no placebo month, no sensitivity."""
    ev = np.array([-5, -4, 0, 1, 2])
    r = EventStudyResult(estimator="x", event_time=ev, estimate=np.array([0.2, 0.5, 1, 2, 3.0]),
                         vcov=np.diag(np.full(5, 0.25)), reference=(-3, -2, -1))
    tab = relative_magnitudes(r, (1, 2), [1.0], alpha=0.05)
    # changes −5→−4 (0.3, sd √0.5) and −4→−3 (−0.5, sd 0.5): Bonferroni over 2, not 4
    c_pre = stats.norm.ppf(1 - 0.05 / 8)
    row = tab.iloc[0]
    assert row["max_pre_change"] == pytest.approx(0.5)
    assert row["max_pre_change_upper"] == pytest.approx(
        max(0.3 + c_pre * np.sqrt(0.5), 0.5 + c_pre * 0.5))
    post_only = EventStudyResult(estimator="x", event_time=ev[2:], estimate=np.ones(3),
                                 vcov=np.eye(3), reference=(-3, -2, -1))
    with pytest.raises(ValueError, match="no consecutive pre-period"):
        relative_magnitudes(post_only, (1, 2), [1.0])
