"""Stress-test worlds (pipeline/synth/worlds.py): each knob on a tiny world, the truth by
hand, and the default extract unchanged when every knob is off."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.calendar import school_month_index
from pipeline.config import ConfigError
from pipeline.synth import SynthConfig, generate, write_extract
from pipeline.synth import worlds as wd
from pipeline.synth.effects import EffectConfig, treatment_effects, truth_tables
from tests.conftest import small_config
from tests.test_synthesize import _student_months as _rates

TINY = dict(n_students=2500, n_districts=6, n_program_districts=3)


def tiny(**world) -> SynthConfig:
    return small_config(**TINY, worlds=wd.WorldConfig(**world))


def _digest(ex, tmp_path) -> dict[str, str]:
    write_extract(ex, tmp_path)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp_path.iterdir())}


# ---- configuration --------------------------------------------------------------------
def test_world_config_defaults_and_errors():
    assert wd.WorldConfig().is_default
    assert not wd.WorldConfig(gains=0.5).is_default
    assert wd.WorldConfig.from_params(None) == wd.WorldConfig()
    with pytest.raises(ConfigError, match="referral"):
        wd.WorldConfig(referral="gut_feeling")
    with pytest.raises(ConfigError, match="unknown key"):
        wd.WorldConfig.from_params({"shocks": 1.0})
    with pytest.raises(ConfigError, match="exit_base"):
        wd.WorldConfig(exit_base=1.5)
    with pytest.raises(ConfigError, match="staggered_months"):
        wd.WorldConfig(staggered_months=2.5)
    cfg = SynthConfig.from_params(
        {"sizes": {"default": TINY}, "worlds": {"referral": "level", "gains": 1.0}}
    )
    assert cfg.worlds.referral == "level" and cfg.worlds.gains == 1.0


def test_default_extract_unchanged_by_explicit_default_world(tmp_path):
    """Knobs off: the same bytes as a configuration that never mentions the worlds, and
    the truth's configuration record has no ``worlds`` entry."""
    base = small_config(**TINY)
    a = generate(base)
    b = generate(dataclasses.replace(base, worlds=wd.WorldConfig()))
    assert "worlds" not in a.truth["config"]
    assert _digest(a, tmp_path / "a") == _digest(b, tmp_path / "b")
    on = generate(tiny(gains=1.0))
    assert on.truth["config"]["worlds"]["gains"] == 1.0


# ---- recorded rates and referral scores by hand ---------------------------------------
def test_recorded_rates_and_referral_scores_by_hand():
    # two students, two school years of two months each
    n = np.array([[10, 10, 20, 10], [10, 0, 10, 10]], dtype=np.int16)
    y = np.array([[9, 5, 10, 10], [10, 0, 5, 10]], dtype=np.int16)
    r = wd.RecordedRates(n, y, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(r.level(3), [100 * 24 / 40, 100 * 15 / 20])
    np.testing.assert_allclose(r.prior_year(3), [70.0, 100.0])
    np.testing.assert_allclose(r.year_to_date(3), [50.0, 50.0])
    # first month of a year: the year so far is empty, the prior year stands in
    np.testing.assert_allclose(r.year_to_date(2), [70.0, 100.0])
    assert np.isnan(r.prior_year(1)).all()
    recent = np.array([1.0, 2.0])
    leap = np.array([4, 7])
    dist = np.array([4, 7])
    lv = wd.referral_base(wd.WorldConfig(referral="level"), r, 3, recent, dist, leap)
    np.testing.assert_allclose(lv, [100 - 0.5 * (70 + 60), 100 - 0.5 * (100 + 75)])
    ytd = wd.referral_base(wd.WorldConfig(referral="year_to_date"), r, 3, recent, dist, leap)
    np.testing.assert_allclose(ytd, [50.0, 50.0])
    # district 4 looks at one month (t 2), district 7 at two (t 1, 2: 5 of 10 days)
    dw = wd.referral_base(wd.WorldConfig(referral="district_window"), r, 3, recent, dist, leap)
    np.testing.assert_allclose(dw, [100 - 50.0, 100 - 50.0])
    assert list(wd.district_windows(6)) == [1, 2, 3, 4, 1, 2]
    # year to date with no months at all falls back to the default score
    assert wd.referral_base(wd.WorldConfig(referral="year_to_date"), r, 0, recent, dist, leap)[
        0
    ] == pytest.approx(1.0)


def test_contact_probability_and_offsets_and_gain_multiplier():
    cfg = wd.WorldConfig(reach_level=1.0, reach_family=0.5)
    p = wd.contact_probability(cfg, 0.78, np.array([80.0, 90.0, 70.0]), np.array([0.0, 0.0, 2.0]))
    lg = np.log(0.78 / 0.22)
    np.testing.assert_allclose(
        p, 1 / (1 + np.exp(-np.array([lg, lg + 1.0, lg - 1.0 + 1.0]))), rtol=1e-12
    )
    assert list(wd.start_offsets(4, 12)) == [0, 4, 8, 12]
    assert list(wd.start_offsets(3, 0)) == [0, 0, 0]
    g = np.random.default_rng(1).normal(size=400_000)
    m = wd.gain_multiplier(wd.WorldConfig(gains=1.0), g)
    assert m.mean() == pytest.approx(1.0, abs=0.01)
    assert np.all(np.diff(m[np.argsort(g)]) >= 0)


# ---- each knob on a tiny world ----------------------------------------------------------
def _reached_vs_failed_level(ex) -> float:
    """Mean recorded rate (all months before the first attempt) of students whose first
    attempt reached the family minus that of those whose first attempt did not."""
    v = ex.tables["home_visits"].sort_values("visit_date").drop_duplicates("student_id")
    d = pd.to_datetime(v["visit_date"])
    mo = np.where(d.dt.month.isin([7, 8]), 9, d.dt.month)
    v = v.assign(t0=school_month_index(d.dt.year, mo))
    r = _rates(ex).merge(v[["student_id", "t0", "outcome"]], on="student_id")
    r = r[r["t"] < r["t0"]]
    s = r.groupby(["student_id", "outcome"])[["days_present", "days_membership"]].sum()
    s = (100 * s["days_present"] / s["days_membership"]).groupby(level="outcome").mean()
    return float(s["completed"] - s["attempted"])


def test_reachability_reached_students_differ_in_level():
    strong = generate(tiny(reach_level=2.0))
    off = generate(small_config(**TINY))
    assert _reached_vs_failed_level(strong) > 4.0
    assert abs(_reached_vs_failed_level(off)) < 3.0


def test_family_factor_moves_attendance_and_contact():
    # the family factor alone shifts attendance; with reach_family it also shifts contact
    cfg = tiny(family_sd=0.8, reach_family=2.0)
    ex = generate(cfg)
    assert _reached_vs_failed_level(ex) > 2.0  # reached families attend more
    assert ex.truth["config"]["worlds"]["family_sd"] == 0.8


def test_attrition_depends_on_attendance_and_ends_enrollment():
    base = generate(small_config(**TINY))
    ex = generate(tiny(exit_base=0.01, exit_attendance=0.6))
    e0, e1 = base.tables["enrollment"], ex.tables["enrollment"]
    assert (e1["exit_date"] != "").mean() > (e0["exit_date"] != "").mean() + 0.05
    # leavers had lower attendance: compare students present in the base but gone by the end
    a0, a1 = base.tables["attendance_monthly"], ex.tables["attendance_monthly"]
    last = a0["month"].max()
    gone = set(a0.loc[a0["month"] == last, "student_id"]) - set(
        a1.loc[a1["month"] == last, "student_id"]
    )
    r = _rates(base).groupby("student_id")[["days_present", "days_membership"]].sum()
    rate = 100 * r["days_present"] / r["days_membership"]
    assert rate[rate.index.isin(gone)].mean() < rate[~rate.index.isin(gone)].mean() - 2.0
    # no attendance after a student's last exit date, no visit after it either
    last_exit = e1[e1["exit_date"] != ""].groupby("student_id")["exit_date"].max()
    open_ = set(e1.loc[e1["exit_date"] == "", "student_id"])
    last_exit = last_exit[~last_exit.index.isin(open_)]
    a = ex.tables["attendance_monthly"].merge(last_exit.rename("x"), on="student_id")
    assert (a["month"] <= a["x"].str.slice(0, 7)).all()
    v = ex.tables["home_visits"].merge(last_exit.rename("x"), on="student_id")
    assert (v["visit_date"] <= v["x"]).all()


def test_visited_students_stay_longer_with_exit_visited():
    ex = generate(tiny(exit_base=0.03, exit_visited=-3.0))
    e = ex.tables["enrollment"]
    visited = set(ex.tables["home_visits"].query("outcome == 'completed'")["student_id"])
    last_year = e["school_year"].max()
    stays = set(e.loc[e["school_year"] == last_year, "student_id"])
    v = np.mean([s in stays for s in visited])
    others = set(e["student_id"]) - visited
    o = np.mean([s in stays for s in others])
    assert v > o + 0.1


def test_school_month_shocks_are_shared_within_school():
    def school_month_sd(ex) -> float:
        a = ex.tables["attendance_monthly"]
        g = a.groupby(["school_code", "month"])[["days_present", "days_membership"]].sum()
        rate = 100 * g["days_present"] / g["days_membership"]
        # spread across months within a school, after the statewide month means
        dev = rate - rate.groupby(level="month").transform("mean")
        return float(dev.groupby(level="school_code").std().mean())

    base = generate(small_config(**TINY))
    ex = generate(tiny(school_month_sd=0.5))
    assert school_month_sd(ex) > 1.5 * school_month_sd(base)
    dist = generate(tiny(district_month_sd=0.5))
    assert school_month_sd(dist) > 1.5 * school_month_sd(base)


def test_staggered_start_spreads_program_districts_first_visits():
    def first_months(ex) -> np.ndarray:
        v = ex.tables["home_visits"]
        d = pd.to_datetime(v.groupby("district_code")["visit_date"].min())
        return np.sort((d.dt.year * 12 + d.dt.month).to_numpy() - (2021 * 12 + 4))

    base = first_months(generate(small_config(**TINY)))
    st = first_months(generate(tiny(staggered_months=12)))
    # months after April 2021 of each district's first visit: the default districts all
    # start within a few (small capacity in spring 2021), the staggered ones at 0, 6, 12+
    assert base.max() <= 3
    assert st[0] <= 3 and 6 <= st[1] <= 9 and st[2] >= 12


def test_selection_on_gains_raises_the_treated_effect():
    base = generate(small_config(**TINY))
    ex = generate(tiny(gains=1.5))
    # referral favours high-gain students, so the treated students' average gain
    # multiplier exceeds one and the window truth rises by a clear margin
    assert ex.truth["att_window"] > base.truth["att_window"] * 1.15


@pytest.mark.parametrize("referral", ["level", "year_to_date", "district_window"])
def test_referral_kinds_change_who_is_visited(referral):
    base = generate(small_config(**TINY))
    ex = generate(tiny(referral=referral))
    b = set(base.tables["home_visits"]["student_id"])
    e = set(ex.tables["home_visits"]["student_id"])
    assert len(b & e) < 0.8 * len(b)


def test_level_referral_picks_persistently_low_students():
    """Under level referral the visited students' rate a full year before the visit is
    lower than under the default (recent-months) referral."""

    def year_before(ex) -> float:
        v = ex.tables["home_visits"].sort_values("visit_date").drop_duplicates("student_id")
        d = pd.to_datetime(v["visit_date"])
        mo = np.where(d.dt.month.isin([7, 8]), 9, d.dt.month)
        v = v.assign(t0=school_month_index(d.dt.year, mo))
        r = _rates(ex).merge(v[["student_id", "t0"]], on="student_id")
        r = r[(r["t"] < r["t0"] - 3) & (r["t"] >= r["t0"] - 13)]
        s = r.groupby("student_id")[["days_present", "days_membership"]].sum()
        return float((100 * s["days_present"] / s["days_membership"]).mean())

    assert (
        year_before(generate(tiny(referral="level")))
        < year_before(generate(small_config(**TINY))) - 2.0
    )


# ---- the truth by hand ------------------------------------------------------------------
def test_truth_by_hand_on_three_students():
    """Truth = mean over the treated students observed at each event time of
    100 (y1 − y0) / n; the window truth is the equal-weight mean over event times."""
    st = pd.DataFrame(
        {
            "student": [0, 0, 0, 1, 1, 2, 2],
            "t": [4, 5, 6, 7, 8, 4, 5],
            "n": [20, 20, 10, 20, 20, 10, 10],
            "y0": [10, 12, 5, 18, 15, 8, 9],
            "y1": [12, 16, 5, 18, 19, 9, 9],
        }
    )
    st["p0"], st["p1"] = st["y0"] / st["n"], st["y1"] / st["n"]
    attrs = pd.DataFrame(
        {
            "student": [0, 1, 2],
            "first_t": [4, 7, 3],
            "cohort": ["2021-22"] * 3,
            "grade_band": ["6-12", "PK-5", "6-12"],
            "first_visit_mode": ["in_person"] * 3,
            "ell": [False] * 3,
        }
    )
    tr = truth_tables(st, attrs, (1, 2), (-12, 30))
    # event time 0: students 0 (t 4) and 1 (t 7): 10 and 0 points
    assert tr["att_by_event_time"]["0"]["att"] == pytest.approx((10 + 0) / 2)
    # event time 1: student 0 (20), 1 (20), 2 (t 4: 10)
    assert tr["att_by_event_time"]["1"]["att"] == pytest.approx((20 + 20 + 10) / 3)
    # event time 2: student 0 (0) and 2 (0)
    assert tr["att_by_event_time"]["2"]["att"] == pytest.approx(0.0)
    assert tr["att_window"] == pytest.approx(((50 / 3) + 0) / 2)


def test_gain_multiplier_scales_each_students_effect_by_hand():
    cfg = EffectConfig(cohort={})
    attrs = pd.DataFrame(
        {
            "student": [0, 1],
            "first_t": [2, 2],
            "cohort": ["2021-22", "2021-22"],
            "grade_band": ["6-12", "6-12"],
            "first_visit_mode": ["in_person", "in_person"],
            "ell": [False, False],
        }
    )
    rows_s = np.array([0, 0, 1, 1])
    rows_t = np.array([1, 3, 1, 3])
    ctd = np.ones((2, 5), dtype=np.int8)
    g = np.array([1.0, -1.0])
    mult = wd.gain_multiplier(wd.WorldConfig(gains=1.0), g)
    tau = treatment_effects(rows_s, rows_t, attrs, ctd, 2, cfg, multiplier=mult)
    base = cfg.first_month * cfg.grade_6_12 * cfg.in_person  # event time 1
    np.testing.assert_allclose(
        tau, [0.0, base * np.exp(0.4 - 0.08), 0.0, base * np.exp(-0.4 - 0.08)]
    )
