"""Intent to treat at the first attempted visit, and Bloom's effect on families reached."""

import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.design import add_outcomes, primary, with_censoring_weights
from pipeline.analysis.settings import EstimateConfig
from pipeline.attempts import attempt_panel, bloom, itt_design, reach_shares
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from tests.conftest import small_config
from tests.panel_factory import build_panel


def _toy():
    # (student, school_month, completed to date, attempted to date, first completed month)
    rows = [
        # a: attempted in month 3 (no contact), reached in month 5
        *[("a", m, int(m >= 5), int(m >= 3), 5.0) for m in range(1, 8)],
        # b: reached at the first attempt, month 4
        *[("b", m, int(m >= 4), 0, 4.0) for m in range(1, 8)],
        # c: no membership in months 3-4; attempted in the gap, first seen with it in 5
        *[("c", m, 0, int(m >= 5), np.nan) for m in (1, 2, 5, 6, 7)],
        # d: never visited
        *[("d", m, 0, 0, np.nan) for m in range(1, 8)],
        # e: completed visit in month 3 without membership there
        *[("e", m, int(m >= 3), 0, 3.0) for m in (1, 2, 4, 5)],
    ]
    df = pd.DataFrame(
        rows,
        columns=[
            "student_key",
            "school_month",
            "visits_completed_to_date",
            "visits_attempted_to_date",
            "first_visit_school_month",
        ],
    )
    df["event_time"] = df["school_month"] - df["first_visit_school_month"]
    return df


def test_attempt_panel_by_hand():
    ap = attempt_panel(_toy())
    s = ap.drop_duplicates("student_key").set_index("student_key")
    assert s.loc["a", "first_visit_school_month"] == 3
    assert s.loc["a", "first_completed_school_month"] == 5
    assert bool(s.loc["a", "attempt_month_exact"])
    assert s.loc["b", "first_visit_school_month"] == 4 and bool(s.loc["b", "attempt_month_exact"])
    # c: the attempt lies in the gap (months 3-5); first seen in 5, not exact
    assert s.loc["c", "first_visit_school_month"] == 5
    assert not bool(s.loc["c", "attempt_month_exact"])
    assert pd.isna(s.loc["d", "first_visit_school_month"])
    # e: the completed visit's month (3) bounds the attempt, which may have been earlier
    assert s.loc["e", "first_visit_school_month"] == 3
    assert not bool(s.loc["e", "attempt_month_exact"])
    a = ap[ap["student_key"] == "a"]
    assert (a["event_time"] == a["school_month"] - 3).all()
    with pytest.raises(ValueError, match="sorted"):
        attempt_panel(_toy().iloc[::-1])
    with pytest.raises(KeyError, match="visits_attempted_to_date"):
        attempt_panel(_toy().drop(columns="visits_attempted_to_date"))


@pytest.fixture(scope="module")
def half_contact():
    return build_panel(small_config(program={"contact_rate": 0.5}))


def test_first_attempt_agrees_with_the_visits_table(half_contact):
    """Where the panel says the month is exact, it is the first visit's effective month."""
    from pipeline import calendar as cal

    panel, _, visits = half_contact
    d = pd.to_datetime(visits["visit_date"])
    visits = visits.assign(
        sm=cal.effective_school_month(d.dt.year.to_numpy(), d.dt.month.to_numpy())
    )
    first = visits.groupby("student_key")["sm"].min()
    s = attempt_panel(panel).drop_duplicates("student_key").set_index("student_key")
    s = s[s["first_visit_school_month"].notna()]
    assert set(s.index) <= set(first.index)
    exact = s[s["attempt_month_exact"].astype(bool)]
    assert len(exact) > 100
    assert (exact["first_visit_school_month"] == first.reindex(exact.index)).all()
    # some attempts did not reach the family: first attempt before the first completion
    fc = exact["first_completed_school_month"].astype("float64")
    assert (fc.isna() | (fc > exact["first_visit_school_month"])).any()


def test_itt_equals_completed_design_when_every_attempt_reaches():
    """With contact at every attempt the first attempt is the first completed visit: the
    ITT design is the completed-visit design, and every family is reached."""
    panel, _, _ = build_panel(small_config(program={"contact_rate": 1.0}))
    spec = RiskSetSpec()
    cfg = EstimateConfig(wild_bootstrap=False)
    des = itt_design(panel, spec)
    assert des.n_dropped_inexact == 0
    res = riskset_match(panel, spec)
    comp = add_outcomes(stack_panels(panel, res.matches, spec.window))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = primary(with_censoring_weights(comp, True)[0], "attendance_rate", cfg, bootstrap=False)
        m_itt = with_censoring_weights(add_outcomes(des.matched), True)[0]
        b = primary(m_itt, "attendance_rate", cfg, bootstrap=False)
    assert b.average((1, 6)).estimate == pytest.approx(a.average((1, 6)).estimate)
    assert b.average((1, 6)).std_error == pytest.approx(a.average((1, 6)).std_error)
    sh = reach_shares(m_itt)
    assert (sh["share_reached"] == 1.0).all()


def test_bloom_delta_method_by_hand():
    sh = pd.DataFrame({"event_time": [1, 2], "n_treated": [100, 100], "share_reached": [0.4, 0.6]})
    b = bloom(2.0, 0.5, sh)
    r = 0.5
    var_r = (0.4 * 0.6 / 100 + 0.6 * 0.4 / 100) / 4
    assert b.estimate == pytest.approx(4.0)
    assert b.share_reached == pytest.approx(r)
    assert b.std_error == pytest.approx(np.sqrt(0.25 / r**2 + 4.0 * var_r / r**4))
    assert b.ci_low == pytest.approx(4.0 - 1.959963985 * b.std_error)
    # everybody reached: the effect on the reached is the ITT, with its SE
    one = bloom(2.0, 0.5, sh.assign(share_reached=1.0))
    assert (one.estimate, one.std_error) == (pytest.approx(2.0), pytest.approx(0.5))
    assert b.summary().startswith("effect on families reached 4.000")
    with pytest.raises(ValueError, match="nobody reached"):
        bloom(2.0, 0.5, sh.assign(share_reached=0.0))
