"""The robustness checks that match again: shared matching work, two processes, same table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.design import add_outcomes, primary, with_censoring_weights
from pipeline.analysis.robustness import (
    check_row,
    rematch_checks,
    robustness,
    run_check_groups,
)
from pipeline.analysis.settings import EstimateConfig
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from pipeline.outputs import PanelAccess
from tests.conftest import small_config
from tests.panel_factory import build_panel

CFG = EstimateConfig(wild_bootstrap=False, placebo_shift=6, pools=("program_districts",),
                     calipers=(0.1, 0.5), ratios=(1, 5), honest_mbar=(1.0,))  # fmt: skip


@pytest.fixture(scope="module")
def design():
    panel, _, _ = build_panel(small_config(program={"served_share": 0.12}))
    spec = RiskSetSpec()
    matched = stack_panels(panel, riskset_match(panel, spec).matches, spec.window)
    matched, _ = with_censoring_weights(add_outcomes(matched), CFG.ipcw, CFG.ipcw_truncate)
    return panel, matched, spec


def _fresh_row(panel, c, cfg):
    """A check computed the direct way: a fresh riskset_match on the (shifted) panel."""
    p = panel
    if c.shift:
        fv = p["first_visit_school_month"].astype("float64") - c.shift
        p = p.assign(first_visit_school_month=fv.astype("Float64"))
    res = riskset_match(p, c.spec)
    rows = p[p["student_key"].isin(res.matches["student_key"].unique())]
    m = stack_panels(rows, res.matches, window=c.spec.window)
    return check_row(c.check, m, "attendance_rate", cfg, c.window, c.note)


def test_shared_matching_gives_the_fresh_matches_rows(design):
    panel, _, spec = design
    groups = rematch_checks(spec, CFG)
    assert [len(g) for g in groups] == [2, 4]  # placebo + pool; calipers and ratios
    got = run_check_groups(PanelAccess(panel), groups, "attendance_rate", CFG)
    want = [_fresh_row(panel, c, CFG) for g in groups for c in g]
    pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want))
    est = pd.DataFrame(got).set_index("check")["estimate"]
    assert est.notna().all() and np.ptp(est.iloc[2:].to_numpy()) > 0  # settings matter


def test_two_processes_give_the_same_table(design):
    panel, matched, spec = design
    prim = primary(matched, "attendance_rate", CFG, bootstrap=False)
    tabs = [
        robustness(PanelAccess(panel), matched, spec, prim, "attendance_rate",
                   replace(CFG, rematch_workers=w))
        for w in (1, 2)
    ]  # fmt: skip
    pd.testing.assert_frame_equal(tabs[0], tabs[1])
    checks = tabs[0]["check"].tolist()
    assert checks[:3] == [
        "primary",
        "joint pre-trend test",
        "matched differences (change from the month before the visit)",
    ]
    assert checks[3].startswith("placebo") and checks[4] == "comparison pool: program_districts"
    assert checks[5:9] == ["caliper 0.1 SD", "caliper 0.5 SD", "ratio 1:1", "ratio 5:1"]


def test_rematched_checks_are_estimable_with_home_school_clusters(design):
    """With errors clustered by home school (the estimate stage's default) every check
    that matches again gets the students' home clusters and an estimate (a regression:
    they were all 'not estimable' for want of the column)."""
    from pipeline.clusters import add_home_clusters, home_clusters

    panel, matched, spec = design
    cfg = replace(CFG, cluster="home_school_code", rematch_workers=1)
    m = add_home_clusters(matched, home_clusters(panel))
    prim = primary(m, "attendance_rate", cfg, bootstrap=False)
    tab = robustness(PanelAccess(panel), m, spec, prim, "attendance_rate", cfg)
    rematched = tab.iloc[3:9]
    assert rematched["check"].str.startswith(("placebo", "comparison pool", "caliper",
                                              "ratio")).all()
    assert not rematched["note"].astype(str).str.contains("not estimable").any(), (
        rematched[["check", "note"]].to_string())
    assert rematched["estimate"].notna().all()
    pre = tab.loc[tab["check"] == "joint pre-trend test", "note"].iloc[0]
    assert pre.startswith("F(3, ")
