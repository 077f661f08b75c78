import numpy as np
import pandas as pd

from pipeline import calendar as cal
from pipeline.contract import attendance_tier


def test_school_month_index_skips_summer():
    idx = cal.school_month_index([2021, 2021, 2021, 2021], [5, 6, 7, 9])
    assert idx.tolist() == [208, 209, -1, 210]
    # event time across the summer: June 2021 is -1 relative to September 2021
    assert idx[1] - idx[3] == -1


def test_index_roundtrip():
    years = np.repeat(np.arange(2015, 2030), 12)
    months = np.tile(np.arange(1, 13), 15)
    keep = ~np.isin(months, [7, 8])
    idx = cal.school_month_index(years[keep], months[keep])
    y, m = cal.index_to_year_month(idx)
    assert (y == years[keep]).all() and (m == months[keep]).all()
    assert (np.diff(idx) == 1).all()


def test_summer_visit_takes_effect_in_september():
    assert cal.effective_school_month([2021, 2021], [7, 8]).tolist() == [210, 210]
    assert cal.cohort_label([2021, 2021, 2022], [8, 4, 1]).tolist() == [
        "summer 2021",
        "2020-21",
        "2021-22",
    ]


def test_school_year_labels():
    assert cal.school_year_start("2021-22") == 2021
    assert cal.school_year_label(1999) == "1999-00"
    for bad in ("2021-23", "21-22", "2021/22"):
        try:
            cal.school_year_start(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_instructional_calendar():
    for y in (2020, 2021, 2022, 2023):
        days = cal.instructional_days(y)
        assert len(days) >= 180
        assert not days.month.isin([7, 8]).any()
        assert (days.day_of_week < 5).all()
        assert pd.Series(days.month).value_counts().max() <= 23
        assert pd.Timestamp(y, 12, 25) not in days


def test_attendance_tiers_match_contract_boundaries():
    got = attendance_tier([100, 95, 94.9, 90.01, 90, 80, 79.9, np.nan]).tolist()
    assert got == [
        "satisfactory",
        "satisfactory",
        "at_risk",
        "at_risk",
        "moderate_chronic",
        "moderate_chronic",
        "severe_chronic",
        None,
    ]
