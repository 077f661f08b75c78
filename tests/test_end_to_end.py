"""The whole design on small synthetic extracts, against the generator's truth.

synthesize → ingest → panel → risk-set matching → estimate (in memory), for two worlds:

* the default world, where referral follows a recorded dip: the matched design recovers
  the truth, while the naive before/after and two-way fixed effects are far off;
* a world without the dip (referral essentially at random among students in
  membership): parallel trends hold for the panel estimators, and the
  heterogeneity-robust ones (Sun–Abraham, imputation, Callaway–Sant'Anna) recover the
  truth too.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.estimation import run_estimation as run
from pipeline.analysis.schemas import ESTIMATE_TABLES
from pipeline.analysis.settings import EstimateConfig
from pipeline.ingestion import run_ingest
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from pipeline.panel_build import write_panel
from pipeline.synth import generate, write_extract
from tests.conftest import small_config

#: The design as configured, less what these tests do not check: the design bootstrap
#: (tests/test_design_bootstrap.py), the wild bootstrap, most subgroups and robustness
#: checks; each world runs only the comparators its test looks at.
CFG = EstimateConfig(wild_bootstrap=False, subgroups=("grade_band",), pools=(), calipers=(),
                     ratios=(), placebo_shift=0, honest_mbar=(1.0,), comparators=(),
                     estimands={"design_bootstrap_draws": 0})
DIP_COMPARATORS = ("naive_before_after", "twfe")
ROBUST_COMPARATORS = ("sun_abraham", "imputation", "callaway_santanna_unconditional")


def _matched(tmp_path, **overrides):
    cfg = small_config(n_students=12000, n_districts=8, n_program_districts=4, **overrides)
    write_extract(generate(cfg), tmp_path / "raw")
    run_ingest(tmp_path / "raw", tmp_path / "interim", tmp_path / "dq.csv", synthetic=True)
    write_panel(tmp_path / "interim", tmp_path / "panel.parquet", tmp_path / "dqp.csv")
    panel = pd.read_parquet(tmp_path / "panel.parquet")
    spec = RiskSetSpec(replace=True)
    res = riskset_match(panel, spec)
    matched = stack_panels(panel, res.matches, spec.window)
    meta = json.loads((tmp_path / "interim" / "extract_meta.json").read_text())
    return panel, matched, res.balance, spec, meta


def _pipeline(tmp_path, comparators, **overrides):
    panel, matched, balance, spec, meta = _matched(tmp_path, **overrides)
    cfg = dataclasses.replace(CFG, comparators=comparators)
    out = run(panel, matched, balance, spec, cfg, meta)
    return out, meta["truth"]


def _avg(out, name):
    es = out["event_study"]
    e = es[(es["estimator"] == name) & es["event_time"].between(1, 6)]
    assert len(e) == 6, name
    return e["estimate"].mean(), e["std_error"].mean()


@pytest.mark.slow
def test_matched_design_recovers_truth_under_selection_on_a_dip(tmp_path):
    out, truth = _pipeline(tmp_path, DIP_COMPARATORS, program={"served_share": 0.12})
    m = out["metrics"]
    assert m["synthetic"] is True
    for name, cols in ESTIMATE_TABLES.items():  # every table as its schema says
        assert list(out[name].columns) == cols, name
    att = m["att"]
    tw = truth["att_window"]
    assert att["ci_low"] <= tw <= att["ci_high"], (att, tw)
    assert abs(att["estimate"] - tw) < 2.5 * att["std_error"]
    # the naive before/after and TWFE mistake the recovery for an effect
    for name in ("naive_before_after", "twfe"):
        est, _ = _avg(out, name)
        assert est - tw > 8.0, (name, est, tw)
    assert m["primary_estimator"] == "matched_ancova" and m["design"] == "ancova"
    tc = out["truth_comparison"]
    for name in ("matched_ancova", "matched_stacked"):  # the primary and the other design
        row = tc[(tc["estimator"] == name) & (tc["quantity"] == "average 1-6")]
        assert bool(row["covered"].iloc[0]), name
    # the recorded months are the primary's reference; earlier months make the pre-trend test
    assert m["pretrend_test"]["event_times"] == [-6, -5, -4]
    es = out["event_study"]
    prim = es[es["estimator"] == "matched_ancova"]
    assert not prim["event_time"].isin([-3, -2, -1]).any()
    rob = out["robustness"].set_index("check")
    assert np.isfinite(rob.loc["matched differences (change from the month before the visit)",
                               "estimate"])


@pytest.mark.slow
def test_robust_estimators_recover_truth_without_a_dip(tmp_path):
    out, truth = _pipeline(
        tmp_path, ROBUST_COMPARATORS, program={"served_share": 0.12, "referral_noise": 1e4}
    )
    tw = truth["att_window"]
    for name in ROBUST_COMPARATORS:
        est, se = _avg(out, name)
        assert abs(est - tw) < max(1.0, 3 * se), (name, est, tw)
    att = out["metrics"]["att"]
    assert att["ci_low"] - 0.5 <= tw <= att["ci_high"] + 0.5


@pytest.mark.slow
def test_imputed_censoring_runs_through_the_stage(tmp_path):
    """estimate.censoring: impute — the primary, chronic absence, the robustness checks
    and the estimands all fit on the imputed stacks; attrition still counts the rows as
    recorded; the diagnostics are the imputation's."""
    panel, matched, balance, spec, meta = _matched(tmp_path, program={"served_share": 0.12})
    base = dataclasses.replace(CFG, comparators=(), ratios=(2,), censoring="weights")
    out_w = run(panel, matched, balance, spec, base, meta)
    out_i = run(panel, matched, balance, spec, dataclasses.replace(base, censoring="impute"),
                meta)
    tw = meta["truth"]["att_window"]
    mi, mw = out_i["metrics"], out_w["metrics"]
    assert mw["censoring"]["method"] == "weights" and mw["censoring"]["ipcw"] is True
    c = mi["censoring"]
    assert c["method"] == "impute" and c["ipcw"] is False
    assert 0 < c["imputed_rows"] <= c["censored_rows"] < c["comparison_rows"]
    att = mi["att"]
    assert att["ci_low"] <= tw <= att["ci_high"], (att, tw)
    assert att["estimate"] != pytest.approx(mw["att"]["estimate"], abs=1e-6)
    diag = out_i["censoring_diagnostics"]
    assert list(diag.columns) == ESTIMATE_TABLES["censoring_diagnostics"]
    assert int(diag["imputed_rows"].sum()) == c["imputed_rows"]
    assert diag["effective_sample_size"].isna().all() and diag["mean_imputed"].notna().any()
    assert out_w["censoring_diagnostics"]["imputed_rows"].isna().all()
    # the rows visited later are those the weights' table counts, all of them imputed
    cols = ["event_time", "comparison_rows", "censored_rows", "censoring_events"]
    pd.testing.assert_frame_equal(diag[cols], out_w["censoring_diagnostics"][cols],
                                  check_dtype=False)
    assert (diag["imputed_rows"] == diag["censored_rows"]).all()
    # attrition and the Lee bounds count recorded rows, whichever way censoring is handled
    pd.testing.assert_frame_equal(out_i["attrition"], out_w["attrition"])
    assert mi["estimands"]["lee_bounds"] == mw["estimands"]["lee_bounds"]
    # the school-clustered estimand row is the primary itself
    assert mi["estimands"]["att_school_clustered"]["estimate"] == pytest.approx(
        att["estimate"], abs=1e-9)
    rob_i = out_i["robustness"].set_index("check")
    rob_w = out_w["robustness"].set_index("check")
    assert np.isfinite(rob_i.loc["ratio 2:1", "estimate"])
    assert rob_i.loc["ratio 2:1", "estimate"] != rob_w.loc["ratio 2:1", "estimate"]
    assert np.isfinite(mi["att_chronic"]["estimate"])
