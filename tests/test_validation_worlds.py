"""Stress-test study library (pipeline/validation/): diagnostics, bracketing and
verdicts, on hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.validation import diagnostics as diag
from pipeline.validation.scenarios import WORLD_SCENARIOS, WORLD_SPECS, WORLDS, spec_of
from pipeline.validation.verdicts import (
    bracketing_rate,
    judge,
    verdict_table,
    wilson_interval,
)


def _stacked(treated_obs: list[bool], comp_obs: list[bool], comp_cens: list[bool]):
    rows = []
    for i, ob in enumerate(treated_obs):
        rows.append((f"m{i}", f"t{i}", "treated", 0, False))
        if ob:
            rows.append((f"m{i}", f"t{i}", "treated", 6, False))
    for j, (ob, ce) in enumerate(zip(comp_obs, comp_cens, strict=True)):
        m = f"m{j % max(len(treated_obs), 1)}"
        rows.append((m, f"c{j}", "comparison", 0, False))
        if ce:
            rows.append((m, f"c{j}", "comparison", 3, True))
        if ob:
            rows.append((m, f"c{j}", "comparison", 6, ce))
    return pd.DataFrame(
        rows, columns=["match_id", "student_key", "role", "stack_event_time", "censored"]
    )


def test_attrition_test_by_hand():
    # 40 visited (30 retained), 120 comparison of which 20 censored: of 100, 50 retained
    t = [True] * 30 + [False] * 10
    c_obs = [True] * 50 + [False] * 50 + [True] * 20
    c_cens = [False] * 100 + [True] * 20
    p1, p2, p = diag.attrition_test(_stacked(t, c_obs, c_cens), (1, 6))
    assert (p1, p2) == (0.75, 0.5)
    pool = 80 / 140
    z = 0.25 / np.sqrt(pool * (1 - pool) * (1 / 40 + 1 / 100))
    from scipy import stats

    assert p == pytest.approx(2 * stats.norm.sf(z))
    # equal retention: p = 1
    assert diag.attrition_test(_stacked([True] * 4, [True] * 8, [False] * 8))[2] == 1.0


def test_fires_thresholds():
    rows = pd.DataFrame(
        {
            "pretrend_p": [0.01, 0.5, np.nan],
            "placebo_ci_low": [0.1, -1.0, np.nan],
            "placebo_ci_high": [2.0, 1.0, np.nan],
            "max_abs_smd_after": [0.2, 0.05, 0.1],
            "attrition_p": [0.5, 0.01, np.nan],
            "censoring_weight_max": [3.0, 12.0, 1.0],
        }
    )
    f = diag.fires(rows)
    assert f["fires_pretrend"].tolist()[:2] == [1.0, 0.0] and np.isnan(f["fires_pretrend"][2])
    assert f["fires_placebo"].tolist()[:2] == [1.0, 0.0]
    assert f["fires_balance"].tolist() == [1.0, 0.0, 0.0]
    assert f["fires_attrition"].tolist()[:2] == [0.0, 1.0]
    assert f["fires_censoring"].tolist() == [0.0, 1.0, 0.0]


def test_bracketing_rate_by_hand():
    reps = pd.DataFrame(
        {
            "scenario": ["s"] * 6,
            "rep": [0, 0, 1, 1, 2, 2],
            "estimator": ["anc", "dif"] * 3,
            "estimate": [1.0, 3.0, 2.5, 4.0, 5.0, 2.0],
            "truth": [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        }
    )
    # rep 0: 1 ≤ 2 ≤ 3 inside; rep 1: 2.5..4 outside; rep 2: 2..5 inside (boundary)
    assert bracketing_rate(reps, "anc", "dif")["s"] == pytest.approx(2 / 3)


def test_wilson_interval_reference_value():
    # 95 of 100: the Wilson interval is (0.8882, 0.9785) (e.g. R's prop.test without
    # continuity correction, binom::binom.wilson)
    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-4) and hi == pytest.approx(0.9785, abs=1e-4)


def _row(**kw):
    base = dict(
        n_reps=100,
        bias=0.0,
        bias_mcse=0.05,
        coverage=0.95,
        bracketing=0.0,
        needed="x",
        **{f"rate_{d}": 0.0 for d in diag.DIAGNOSTICS},
    )
    base.update(kw)
    return base


def test_judge_orders_valid_caught_bracketed_not_identified():
    assert judge(_row())[0] == "valid"
    # within Monte Carlo error of the bias target
    assert judge(_row(bias=0.35, bias_mcse=0.05))[0] == "valid"
    assert judge(_row(bias=-1.0, rate_pretrend=0.85))[0] == "caught"
    # a diagnostic that also fires in the reference world does not catch
    v, why = judge(_row(bias=-1.0, rate_placebo=1.0, uninformative=["placebo"], bracketing=0.95))
    assert v == "bracketed" and "95%" in why
    v, why = judge(_row(bias=-1.0, coverage=0.5, rate_pretrend=0.5, needed="a family record"))
    assert v == "not identified" and "a family record" in why and "pre-trend test" in why
    # coverage far below target with no bias is not valid either
    assert judge(_row(coverage=0.80))[0] == "not identified"
    # ten replications: coverage 100% is consistent with 95%
    assert judge(_row(n_reps=10, coverage=1.0, bias_mcse=0.2))[0] == "valid"


def test_verdict_table_from_replications():
    rng = np.random.default_rng(0)
    rows = []
    for scen, shift in (("dip", 0.0), ("level_referral", -3.0)):
        for r in range(30):
            truth = 8 + rng.normal(0, 0.2)
            a = truth + shift + rng.normal(0, 0.5)
            for est, e in (("anc", a), ("dif", truth + 2.0)):
                rows.append(
                    dict(
                        scenario=scen,
                        rep=r,
                        estimator=est,
                        truth=truth,
                        estimate=e,
                        pretrend_p=0.001 if scen != "dip" else 0.5,
                        placebo_ci_low=-2.0,
                        placebo_ci_high=2.0,
                        max_abs_smd_after=0.05,
                        attrition_p=0.5,
                        censoring_weight_max=2.0,
                    )
                )
    reps = pd.DataFrame(rows)
    summary = []
    for (scen, est), g in reps.groupby(["scenario", "estimator"]):
        err = g["estimate"] - g["truth"]
        summary.append(
            dict(
                scenario=scen,
                estimator=est,
                n_reps=len(g),
                bias=err.mean(),
                sd_error=err.std(ddof=1),
                coverage=float(err.abs().lt(1.0).mean()),
                se_ratio=1.0,
            )
        )
    t = verdict_table(pd.DataFrame(summary), reps, {"primary": "anc"}, "anc", "dif")
    t = t.set_index("scenario")
    assert t.loc["dip", "verdict"] == "valid"
    assert t.loc["level_referral", "verdict"] == "caught"
    assert t.loc["level_referral", "rate_pretrend"] == 1.0
    assert t.loc["level_referral", "world"] == WORLD_SPECS["level_referral"].world


def test_scenarios_have_specs_and_valid_world_configs():
    from pipeline.synth.worlds import WorldConfig

    for name, over in WORLD_SCENARIOS.items():
        assert name in WORLD_SPECS
        WorldConfig(**over["worlds"])  # raises on a bad knob
        spec = spec_of(name)
        assert spec.targets_apply or spec.needed
    assert spec_of("unrecorded_shocks").needed


def test_validate_stage_knows_the_worlds():
    from pipeline import registry, settings
    from pipeline.analysis.scenarios import SCENARIOS, estimators
    from pipeline.analysis.simulation import ValidateConfig, synth_config

    cfg = ValidateConfig(n_students=3000, n_districts=6, n_program_districts=3)
    assert synth_config(cfg, "level_referral", 1).worlds.referral == "level"
    assert synth_config(cfg, "dip", 1).worlds.is_default
    r = synth_config(cfg, "realistic", 1)
    assert r.worlds.staggered_months == 6 and r.n_program_districts == 3
    for name, spec in WORLD_SPECS.items():
        assert SCENARIOS[name]["targets_apply"] is spec.targets_apply
    # the extended design is registered as an extension of the ANCOVA design only
    assert registry.extensions("ancova") == ("matched_ancova_extended",)
    assert registry.extensions("differences") == ()
    assert "matched_ancova_extended" in estimators("ancova")
    assert "matched_ancova_extended" not in estimators("differences")
    assert registry.estimator("matched_ancova_extended").role == "variant"
    # params.yaml may list every scenario the stage knows, and only those
    assert (*settings.SCENARIO_NAMES, *settings.WORLD_SCENARIO_NAMES) == tuple(SCENARIOS)
    assert settings.WORLD_SCENARIO_NAMES == WORLDS
    v = settings.ValidateSettings.model_validate({"scenarios": ["dip", "realistic"]})
    assert ValidateConfig(**v.kwargs()).scenarios == ("dip", "realistic")
    assert settings.ValidateSettings().scenarios == settings.SCENARIO_NAMES


def test_report_lists_verdicts_with_world_labels():
    from pipeline.reporting.context import verdict_list as _verdicts

    v = pd.DataFrame(
        {
            "scenario": ["level_referral", "level_referral", "attrition"],
            "estimator": ["matched_ancova", "matched_stacked", "matched_ancova"],
            "n_reps": [40, 40, 40],
            "bias": [-1.1, -1.2, -0.6],
            "coverage": [0.4, 0.3, 0.8],
            "verdict": ["caught", np.nan, "not identified"],
            "verdict_basis": ["diagnostic_fires", np.nan, "needs_unrecorded_data"],
            "top_diagnostic": ["pretrend", np.nan, "pretrend"],
            "top_diagnostic_rate": [1.0, np.nan, 0.05],
            "needed": ["", np.nan, "x"],
            # the report composes the reason from the columns above, not from this text
            "verdict_reason": ["not read", np.nan, "not read"],
        }
    )
    out = _verdicts(v, "matched_ancova")
    assert [o["world"] for o in out] == ["level referral", "attrition"]
    assert out[0] == {"world": "level referral", "verdict": "caught",
                      "reason": "the pre-trend test fires in 100% of replications"}
    assert out[1]["reason"].endswith("fires in 5%; would need x")
    assert _verdicts(v.drop(columns="verdict"), "matched_ancova") == []
