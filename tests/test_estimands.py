"""The issue-17 estimands and inference on a small synthetic extract, end to end."""

import numpy as np
import pytest

from pipeline.estimands import ESTIMAND_COLUMNS, PANEL_COLUMNS, EstimandsConfig, estimands
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from tests.conftest import small_config
from tests.panel_factory import build_panel


@pytest.fixture(scope="module")
def result():
    panel, truth, _ = build_panel(small_config(program={"contact_rate": 0.6}))
    spec = RiskSetSpec()
    matched = stack_panels(panel, riskset_match(panel, spec).matches, spec.window)
    cfg = EstimandsConfig(design_bootstrap_draws=8, bootstrap_workers=1, district_wild_draws=499)
    # the stage reads only PANEL_COLUMNS of the panel
    return estimands(panel[PANEL_COLUMNS], matched, spec, cfg), truth


def test_every_estimand_is_reported(result):
    out, _ = result
    t = out["estimands"]
    assert list(t.columns) == list(ESTIMAND_COLUMNS)
    assert not (t["inference"] == "failed").any(), t.loc[t["inference"] == "failed", "note"]
    assert t["inference"].str.contains("clustered by school").sum() == 2
    head = t[t["estimand"] == "completed visit"]
    # the same point estimate, whatever the inference
    analytic = head[head["inference"].str.startswith("analytic")]["estimate"]
    assert np.ptp(analytic.to_numpy()) < 1e-9
    boot = head[head["inference"].str.startswith("design bootstrap")].iloc[0]
    assert boot["estimate"] == pytest.approx(analytic.iloc[0], abs=1e-4)
    for _, r in t.iterrows():
        assert r["ci_low"] <= r["ci_high"]


def test_reached_effect_is_itt_over_share(result):
    out, _ = result
    m = out["metrics"]
    share = out["reach"]["share_reached"].mean()
    assert 0 < share < 1
    assert m["reached"]["estimate"] == pytest.approx(m["itt"]["estimate"] / share)


def test_diagnostic_tables(result):
    out, _ = result
    # the default (estimate.censoring: impute): every row visited later is imputed
    d = out["censoring_diagnostics"]
    assert (d["imputed_rows"] == d["censored_rows"]).all() and d["imputed_rows"].sum() > 0
    assert d["effective_sample_size"].isna().all() and d["max_weight"].isna().all()
    assert out["metrics"]["att_school_clustered"]["estimate"] == pytest.approx(
        out["estimands"]
        .query("inference == 'design bootstrap (schools within districts)'")["estimate"]
        .iloc[0],
        abs=1e-8,
    )
    a = out["attrition"]
    assert set(a["wwc_attrition"]) <= {"low", "high"}
    assert (a["boundary"] == "cautious").all()
    c = out["chronic_yearly"]
    assert set(c["school_year"]) == {"2020-21", "2021-22", "2022-23"}
    assert "not the state's measure" in out["metrics"]["chronic_state_measure"]["monthly_flag"]


def test_censoring_weights_given_are_those_computed():
    """The stage passes the primary's censoring weights (same stacks, same truncation)
    instead of fitting the censoring model again: the tables are the same."""
    import pandas as pd

    from pipeline.analysis.design import add_outcomes, censoring_weights_model

    panel, _, _ = build_panel(small_config(n_students=2000))
    spec = RiskSetSpec()
    matched = stack_panels(panel, riskset_match(panel, spec).matches, spec.window)
    cfg = EstimandsConfig(design_bootstrap_draws=0, itt=False, district_wild_draws=99,
                          censoring_truncate=None, censoring="weights")  # fmt: skip
    m, _, model = censoring_weights_model(add_outcomes(matched), True, None)
    fresh = estimands(panel[PANEL_COLUMNS], m, spec, cfg)
    given = estimands(panel[PANEL_COLUMNS], m, spec, cfg, censoring=(m["ipcw"], model))
    for name in ("estimands", "attrition", "censoring_diagnostics"):
        pd.testing.assert_frame_equal(fresh[name], given[name])
    d = given["censoring_diagnostics"]
    assert (d["max_weight"] > 0).all() and (d["effective_sample_size"] > 0).all()
    assert d["imputed_rows"].isna().all()
    assert fresh["metrics"] == given["metrics"]


def test_itt_with_imputation_is_the_imputed_design():
    """``itt_censoring: impute``: the intent to treat is the matched ANCOVA on the attempt
    design's stacks with the censored comparison rows' outcomes imputed (no weights), and
    differs from the weighted one."""
    from pipeline.attempts import itt_design
    from pipeline.censoring import ipcw_weights
    from pipeline.censoring_ice import adjust_for_censoring, ice_impute
    from pipeline.clusters import add_home_clusters, home_clusters
    from pipeline.did.ancova import matched_ancova
    from pipeline.estimands import ITT_CENSORING_NOTES
    from pipeline.inference import SCHOOL

    panel, _, _ = build_panel(small_config(n_students=2000, program={"contact_rate": 0.6}))
    spec = RiskSetSpec()
    matched = stack_panels(panel, riskset_match(panel, spec).matches, spec.window)
    kw = dict(design_bootstrap_draws=0, district_wild_draws=99)
    res = {
        how: estimands(panel[PANEL_COLUMNS], matched, spec,
                       EstimandsConfig(itt_censoring=how, censoring_truncate=None, **kw))
        for how in ("weights", "impute")
    }  # fmt: skip
    out = {how: r["metrics"]["itt"] for how, r in res.items()}
    tables = {how: r["estimands"] for how, r in res.items()}
    assert out["impute"]["censoring"] == "impute"
    stacks = itt_design(panel[PANEL_COLUMNS], spec).matched
    homes = home_clusters(panel[PANEL_COLUMNS])
    m, diag = ice_impute(stacks, "attendance_rate")
    assert diag["imputed"].sum() > 0
    assert out["impute"]["imputed_rows"] == int(diag["imputed"].sum())
    # the weights' branch: ipcw_weights with the truncation passed on
    w, _ = ipcw_weights(stacks, truncate=(0.05, 0.95))
    mw, _ = adjust_for_censoring(stacks, "attendance_rate", "weights", truncate=(0.05, 0.95))
    np.testing.assert_array_equal(mw["ipcw"].to_numpy(), w.to_numpy())
    mw = stacks.assign(ipcw=ipcw_weights(stacks)[0].to_numpy())
    for how, frame in (("impute", m), ("weights", mw)):
        direct = matched_ancova(add_home_clusters(frame, homes), yname="attendance_rate",
                                window=(-6, 12), fe="district_code",
                                cluster=SCHOOL).average((1, 6))  # fmt: skip
        assert out[how]["estimate"] == pytest.approx(direct.estimate, abs=1e-9), how
        assert out[how]["std_error"] == pytest.approx(direct.std_error, abs=1e-9), how
        row = tables[how].loc[tables[how]["estimand"].str.startswith("first attempted")]
        assert row["note"].iloc[0].endswith(ITT_CENSORING_NOTES[how])
    assert abs(out["impute"]["estimate"] - out["weights"]["estimate"]) > 1e-6


def test_design_bootstrap_note_says_how_schools_were_drawn():
    from pipeline.estimands import boot_note
    from pipeline.reporting.context import boot_words

    assert boot_note(199, "dirichlet_unit", "grade_band") == (
        "199 draws, random school weights of variance 1, visited grade band mix held, "
        "percentile interval"
    )
    assert boot_note(19, "multinomial", None) == (
        "19 draws, schools resampled, percentile interval"
    )
    w = boot_words({"scheme": "dirichlet_unit", "hold_mix": "grade_band"})
    assert w["short"] == "weights schools at random"
    assert w["long"].endswith("holding the visited students' grade band mix")
    assert boot_words({})["short"] == "resamples schools"  # metrics from before the option
