"""The estimate stage's sensitivity tables on a matched panel with a known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.did.ancova import matched_ancova
from pipeline.did.stacked import stacked_event_study
from pipeline.sensitivity.suite import SensitivityConfig, sensitivity_suite, student_window
from tests.test_did_ancova import TAU, _stacked


@pytest.fixture(scope="module")
def world():
    d = _stacked(seed=5, n=4000, n_districts=3)
    d["prior_year_rate"] = d["rate_lag3"] + np.random.default_rng(1).normal(0, 2, len(d))
    d["chronic_pp"] = np.where(d["attendance_rate"] < 80, 100.0, 0.0)
    prim = matched_ancova(d, yname="attendance_rate", window=(-6, 6))
    prim_ch = matched_ancova(d, yname="chronic_pp", window=(-6, 6))
    diff = stacked_event_study(d, yname="attendance_rate", cluster="student_key",
                               window=(-6, 6), match="match_id")
    sub = pd.DataFrame({"subgroup": ["grade_band"] * 2, "level": ["6-8", "K-5"],
                        "estimate": [3.1, 2.9], "std_error": [0.4, 0.5]})
    cfg = SensitivityConfig(honest_mbar=(0.5, 2.0), honest_m=(0.0, 1.0), honest_grid_points=40,
                            honest_post_max=6, subgroup_order={"grade_band": ["K-5", "6-8"]})
    out = sensitivity_suite(d, prim, prim_ch, diff, diff, sub, (1, 6), cfg)
    return d, prim, out


def test_student_window_means(world):
    d = world[0]
    sw = student_window(d, "attendance_rate", (1, 6))
    one = sw.iloc[0]
    rows = d[(d.match_id == one.match_id) & (d.student_key == one.student_key)
             & d.stack_event_time.between(1, 6)]
    assert one.y == pytest.approx(rows.attendance_rate.mean())
    assert set(sw.role) == {"treated", "comparison"}


def test_tables_present_and_sensible(world):
    d, prim, out = world
    for name in ("sensitivity_ovb", "sensitivity_ovb_bounds", "sensitivity_ovb_contour",
                 "sensitivity_rosenbaum", "sensitivity_honestdid", "sensitivity_falsification",
                 "wwc", "effect_sizes", "subgroup_contrasts", "subgroup_tests"):
        assert name in out and "error" not in out[name].columns, (name, out[name].head())
    ovb = out["sensitivity_ovb"].iloc[0]
    assert ovb.estimate == pytest.approx(TAU, abs=0.6)  # the student-level analogue
    assert 0 < ovb.rv_qa < ovb.rv_q < 1
    ros = out["sensitivity_rosenbaum"]
    bd = ros[ros.row == "breakdown"].iloc[0]
    assert bd.gamma > 1 and bd.pval == pytest.approx(0.05, abs=1e-6)
    hon = out["sensitivity_honestdid"]
    orig = hon[hon.method == "original"].iloc[0]
    assert orig.lb > TAU  # differencing takes the dip's recovery for an effect here ...
    rm = hon[(hon.Delta == "DeltaRM") & (hon.method == "C-LF")].set_index("M")
    assert rm.loc[2.0, "ub"] - rm.loc[2.0, "lb"] >= rm.loc[0.5, "ub"] - rm.loc[0.5, "lb"]
    f = out["sensitivity_falsification"].set_index("design")
    assert f.loc["primary", "n_placebo"] == 3 and f.loc["other", "n_placebo"] == 5
    assert f.loc["primary", "equivalence_bound"] > 0
    # ... and its placebo months say so, while the ANCOVA's are near zero
    assert f.loc["other", "pretrend_reject"]
    assert f.loc["primary", "equivalence_bound"] < f.loc["other", "equivalence_bound"]
    w = out["wwc"]
    assert w.iloc[-1]["item"] == "rating"
    assert set(w.loc[w["item"] == "baseline equivalence", "event_time"]) == set(range(1, 7))
    es = out["effect_sizes"].set_index("outcome")
    assert es.loc["attendance_rate", "estimate"] > 0
    assert es.loc["chronic_absence", "ci_low"] <= es.loc["chronic_absence", "estimate"]
    assert list(out["subgroup_contrasts"]["reference"]) == ["K-5"]


def test_figures_draw(world):
    from pipeline.sensitivity.plots import honest_figure, ovb_contour_figure

    out = world[2]
    f = ovb_contour_figure(out["sensitivity_ovb_contour"], out["sensitivity_ovb"].iloc[0],
                           out["sensitivity_ovb_bounds"], synthetic=True)
    assert "would bring it to zero" in f.alt and f.fig.axes
    h = honest_figure(out["sensitivity_honestdid"])
    assert len(h.fig.axes) == 2 and "C-LF" in h.alt


def test_wwc_attrition_counts_imputed_outcomes_as_missing(world):
    """With ``recorded`` (the stacks before imputation) the WWC attrition at the window's
    end is the attrition table's: a comparison place whose outcome there was imputed
    counts as lost, not kept."""
    from pipeline.attrition import attrition_table
    from pipeline.sensitivity.suite import _wwc

    d, _, _ = world
    rng = np.random.default_rng(7)
    # a fifth of the comparison places visited later, from a random month on
    comp = d.loc[d.role == "comparison", ["match_id", "student_key"]].drop_duplicates()
    later = comp.sample(frac=0.2, random_state=3)
    later = later.assign(c_from=rng.integers(1, 7, len(later)))
    rec = d.merge(later, on=["match_id", "student_key"], how="left")
    rec["censored"] = rec["c_from"].notna() & (rec["stack_event_time"] >= rec["c_from"])
    rec = rec.drop(columns="c_from")
    imputed = rec.assign(censored=False)  # every censored outcome imputed
    cfg = SensitivityConfig()
    sw = student_window(imputed, "attendance_rate", (1, 6))

    def overall(tab):
        return float(tab.loc[tab["item"] == "overall attrition", "value"].iloc[0])

    def differential(tab):
        return float(tab.loc[tab["item"] == "differential attrition", "value"].iloc[0])

    want = attrition_table(rec, event_times=(6, 6)).iloc[0]  # in percent; WWC in shares
    got = _wwc(imputed, sw, (1, 6), cfg, rec)
    assert 100 * overall(got) == pytest.approx(want["overall_attrition"])
    assert 100 * abs(differential(got)) == pytest.approx(abs(want["differential_attrition"]))
    # without it the imputed places count as kept: less attrition
    assert overall(_wwc(imputed, sw, (1, 6), cfg)) < overall(got) - 0.05


def test_honestdid_notes_a_bound_at_the_grid_end(world):
    """A conditional set that reaches the end of its search grid (±20 SE, as R's) says so:
    its bound there is the grid's, not the set's."""
    from pipeline.sensitivity import honestdid as hd
    from pipeline.sensitivity.config import GRID_EDGE
    from pipeline.sensitivity.suite import _grid_edge

    b = np.array([0.1, -0.2, 0.05, 3.0, 3.2])
    V = np.diag([0.04] * 5)
    wide = hd.conditional_cs_rm(b, V, 3, 2, Mbar=50.0, grid_points=50)  # everything accepted
    assert wide["accept"][0] and wide["accept"][-1]
    assert _grid_edge(wide) == GRID_EDGE["both"]
    tight = hd.conditional_cs_rm(b, V, 3, 2, Mbar=0.0, grid_points=200)
    assert not tight["accept"][0] and not tight["accept"][-1] and _grid_edge(tight) is None
    hon = world[2]["sensitivity_honestdid"]
    cond = hon[hon["method"].isin(["C-LF", "Conditional"])]
    assert cond["note"].isna().all() or cond["note"].dropna().isin(GRID_EDGE.values()).all()
