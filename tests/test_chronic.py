"""The state's yearly chronic-absence measure from the student-month panel."""

import pandas as pd
import pytest

from pipeline.chronic import chronic_absence_rates, chronic_absence_yearly


def _panel():
    rows = [
        # s1: 2 months, 20 + 20 days, absent 1 + 3 = 4 of 40 = 10% -> chronic (boundary)
        ("s1", "2021-22", "3", 1, 20, 19),
        ("s1", "2021-22", "3", 2, 20, 17),
        # s1 next year: absent 3 of 40 -> not chronic, though one month is at 85%
        ("s1", "2022-23", "4", 13, 20, 17),
        ("s1", "2022-23", "4", 14, 20, 20),
        # s2: Pre-K months left out; K month 20 days, absent 1 -> 5%, not chronic
        ("s2", "2021-22", "PK", 1, 20, 10),
        ("s2", "2021-22", "K", 2, 20, 19),
        # s3: 5 days enrolled, 1 absent -> chronic, but under a 10-day minimum
        ("s3", "2021-22", "7", 2, 5, 4),
        # s4: whole year in Pre-K -> no row
        ("s4", "2021-22", "PK", 1, 20, 5),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "student_key",
            "school_year",
            "grade",
            "school_month",
            "days_membership",
            "days_present",
        ],
    ).assign(leap_district=lambda d: d["student_key"] != "s3")


def test_yearly_flag_by_hand():
    y = chronic_absence_yearly(_panel()).set_index(["student_key", "school_year"])
    assert y.loc[("s1", "2021-22"), "days_enrolled"] == 40
    assert y.loc[("s1", "2021-22"), "days_absent"] == 4
    assert bool(y.loc[("s1", "2021-22"), "chronic_absent"])  # exactly 10%
    assert not bool(y.loc[("s1", "2022-23"), "chronic_absent"])
    assert y.loc[("s2", "2021-22"), "days_enrolled"] == 20  # Pre-K month left out
    assert not bool(y.loc[("s2", "2021-22"), "chronic_absent"])
    assert bool(y.loc[("s3", "2021-22"), "chronic_absent"])
    assert ("s4", "2021-22") not in y.index
    assert y.loc[("s1", "2021-22"), "absence_rate"] == pytest.approx(10.0)


def test_minimum_enrolled_days_and_rates():
    y = chronic_absence_yearly(_panel(), min_enrolled_days=10, by=["leap_district"])
    assert "s3" not in set(y["student_key"])
    r = chronic_absence_rates(y).set_index("school_year")
    assert r.loc["2021-22", "n_students"] == 2 and r.loc["2021-22", "n_chronic"] == 1
    assert r.loc["2021-22", "chronic_rate"] == pytest.approx(50.0)
    by = chronic_absence_rates(y, by=["leap_district"])
    assert by["n_students"].sum() == 3
    with pytest.raises(ValueError, match="min_enrolled_days"):
        chronic_absence_yearly(_panel(), min_enrolled_days=0)


def test_bad_panel_is_named():
    p = _panel()
    p.loc[0, "days_present"] = 25
    with pytest.raises(ValueError, match="days_present > days_membership"):
        chronic_absence_yearly(p)
    with pytest.raises(KeyError, match="grade"):
        chronic_absence_yearly(p.drop(columns="grade"))


def test_matches_the_generators_yearly_rates():
    """With Pre-K kept, the yearly flag reproduces the generator's realized chronic absence
    per school year (computed from its own day counts over all students)."""
    from tests.conftest import small_config
    from tests.panel_factory import build_panel

    panel, truth, _ = build_panel(small_config())
    y = chronic_absence_yearly(panel, exclude_grades=())
    rates = chronic_absence_rates(y).set_index("school_year")["chronic_rate"]
    for year, v in truth["chronic_absence"].items():
        assert rates[year] == pytest.approx(v["realized"], abs=1e-3)
