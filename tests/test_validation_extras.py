"""The simulation study's inference extras (issue 17; pipeline/validation/extras.py): each
row carries its own truth, failures become error rows, the summaries and the verdict
table judge the intent-to-treat design against its truth, and the extras are off by
default."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import labels, registry
from pipeline.analysis.scenarios import REP_COLUMNS
from pipeline.analysis.settings import EstimateConfig
from pipeline.analysis.simulation import (
    ValidateConfig,
    run_replications,
    summarize,
    synth_config,
    synthetic_panel_truth,
    verdicts,
)
from pipeline.attempts import itt_design
from pipeline.matching.riskset import RiskSetSpec, riskset_match
from pipeline.settings import ValidateSettings
from pipeline.synth import generate
from pipeline.synth.effects import completed_truth_for, itt_truth_for
from pipeline.validation import extras as ex
from pipeline.validation.extras import ITT_UNITS
from pipeline.validation.verdicts import ATTEMPT_DESIGN, bracketing_rate, verdict_table

EXTRAS = registry.INFERENCE_EXTRAS
SMALL = dict(
    n_reps=2,
    n_students=3000,
    n_districts=6,
    n_program_districts=3,
    scenarios=("reachability",),
    estimators=("matched_ancova", "matched_stacked"),
    inference=True,
    boot_draws=4,
    wild_draws=9,
    diagnostics=False,
)


@pytest.fixture(scope="module")
def study():
    cfg = ValidateConfig(workers=2, **SMALL)
    reps = run_replications(cfg)
    return cfg, reps


def test_every_extra_has_a_row_with_its_own_truth(study):
    cfg, reps = study
    assert list(reps.columns) == REP_COLUMNS
    assert reps["error"].isna().all(), reps["error"].dropna().tolist()
    r0 = reps[reps["rep"] == 0].set_index("estimator")
    assert list(r0.index) == [*cfg.estimators, *EXTRAS]
    truth = generate(synth_config(cfg, "reachability", int(r0["seed"].iloc[0]))).truth
    for name in ("matched_ancova", *EXTRAS[:3]):
        assert r0.loc[name, "truth"] == pytest.approx(truth["att_window"])
    # the attempt design is judged over the attempted students it matched
    panel, tr = synthetic_panel_truth(synth_config(cfg, "reachability", int(r0["seed"].iloc[0])))
    des = itt_design(panel, RiskSetSpec(**cfg.match))
    keys = des.matched.loc[des.matched["role"] == "treated", "student_key"].unique()
    mine = itt_truth_for(tr[ITT_UNITS], keys, tuple(cfg.att_window))
    assert r0.loc["itt_first_attempt", "truth"] == pytest.approx(mine["itt_window"])
    assert r0.loc["reached_families", "truth"] == pytest.approx(mine["reached_window"])
    assert mine["itt_window"] != pytest.approx(truth["itt_window"])  # fewer students
    prim = r0.loc["matched_ancova"]
    # the school-clustered and wild rows are the primary's estimate with other intervals
    for name in EXTRAS[:2]:
        assert r0.loc[name, "estimate"] == pytest.approx(prim["estimate"], abs=1e-9)
        assert r0.loc[name, "std_error"] != pytest.approx(prim["std_error"])
    # the design bootstrap re-runs the same design on the full sample
    assert r0.loc[EXTRAS[2], "estimate"] == pytest.approx(prim["estimate"], abs=0.05)
    for name in EXTRAS:
        row = r0.loc[name]
        assert row["ci_low"] < row["estimate"] < row["ci_high"], name
        assert row["std_error"] > 0, name
    # Bloom: the ITT divided by a share reached between 0.4 and 1
    ratio = r0.loc["reached_families", "estimate"] / r0.loc["itt_first_attempt", "estimate"]
    assert 1.0 < ratio < 2.5
    # more students are attempted than reached
    assert r0.loc["itt_first_attempt", "n_treated"] > prim["n_treated"]


def test_summaries_and_verdicts_judge_the_extras(study):
    cfg, reps = study
    summary = summarize(reps, cfg.alpha)
    s = summary.set_index("estimator")
    # the targets apply to the estimands at the first attempt in the reachability world
    assert (
        s.loc["itt_first_attempt", "targets_apply"] and s.loc["reached_families", "targets_apply"]
    )
    assert not s.loc["matched_ancova", "targets_apply"]
    for name in EXTRAS:
        for col in ("bias", "rmse", "coverage", "se_ratio", "truth_mean"):
            assert np.isfinite(s.loc[name, col]), (name, col)
    # bias against each row's own truth
    itt = reps[reps["estimator"] == "itt_first_attempt"]
    assert s.loc["itt_first_attempt", "bias"] == pytest.approx(
        (itt["estimate"] - itt["truth"]).mean()
    )
    table = verdicts(summary, reps, cfg.design)
    assert ATTEMPT_DESIGN in set(table["design"])
    row = table[table["design"] == ATTEMPT_DESIGN].iloc[0]
    assert row["targets_apply"]  # the ITT's targets apply in the reachability world
    assert np.isnan(row["bracketing"])
    assert row["verdict"] in ("valid", "caught", "bracketed", "not identified")
    prim = table[table["design"] == "primary"].iloc[0]
    assert not prim["targets_apply"]
    assert summary.loc[summary["estimator"] == "itt_first_attempt", "verdict"].notna().all()


def test_rows_carry_the_truth_over_the_students_their_design_matched(study):
    """``truth_matched``: the completed-visit rows get the effect on the visited students
    the risk-set matching kept (hand-recomputed from the generator's potential outcomes),
    the attempt rows their own truth (already over the students matched at the attempt);
    the summary's bias and coverage against it are the replications' means."""
    cfg, reps = study
    r0 = reps[reps["rep"] == 0].set_index("estimator")
    panel, tr = synthetic_panel_truth(synth_config(cfg, "reachability", int(r0["seed"].iloc[0])))
    res = riskset_match(panel, RiskSetSpec(**cfg.match))
    keys = res.matches.loc[res.matches["role"] == "treated", "student_key"].unique()
    mine = completed_truth_for(tr[ITT_UNITS], keys, tuple(cfg.att_window))
    assert 0 < len(keys) < tr[ITT_UNITS]["student_id"].nunique()
    assert mine != pytest.approx(r0.loc["matched_ancova", "truth"])  # fewer students
    for name in ("matched_ancova", "matched_stacked", *EXTRAS[:3]):
        assert r0.loc[name, "truth_matched"] == pytest.approx(mine, abs=1e-12), name
    for name in EXTRAS[3:]:
        assert r0.loc[name, "truth_matched"] == r0.loc[name, "truth"]
    summary = summarize(reps, cfg.alpha).set_index("estimator")
    p = reps[reps["estimator"] == "matched_ancova"]
    row = summary.loc["matched_ancova"]
    assert row["bias_matched"] == pytest.approx((p["estimate"] - p["truth_matched"]).mean())
    assert row["truth_matched_mean"] == pytest.approx(p["truth_matched"].mean())
    inside = (p["ci_low"] <= p["truth_matched"]) & (p["truth_matched"] <= p["ci_high"])
    assert row["coverage_matched"] == pytest.approx(inside.mean())
    sd = (p["estimate"] - p["truth_matched"]).std(ddof=1)
    assert row["sd_error_matched"] == pytest.approx(sd)
    # one replication without it: the whole row is NaN, not a mean over the others
    part = reps.copy()
    part.loc[part.index[0], "truth_matched"] = np.nan
    first = summarize(part, cfg.alpha).set_index("estimator")
    assert np.isnan(first.loc[part.loc[part.index[0], "estimator"], "bias_matched"])
    # a study without the column (committed before it existed) summarizes to NaN
    old = summarize(reps.drop(columns="truth_matched"), cfg.alpha)
    assert old["bias_matched"].isna().all() and old["coverage_matched"].isna().all()


def test_a_failing_extra_is_an_error_row_not_a_crash():
    """A panel the designs cannot use: every extra fails, each gets its row and truth."""
    panel = pd.DataFrame(
        {"student_key": ["a", "b"], "school_month": [1, 1], "school_code": ["s1", "s2"],
         "district_code": ["d1", "d1"]}
    )  # fmt: skip
    matched = pd.DataFrame({"student_key": ["a", "b"], "role": ["treated", "comparison"]})
    truth = {"att_window": 5.0, "itt_window": 4.0, "reached_window": 6.0}
    rows = ex.inference_rows(
        panel, matched, RiskSetSpec(), EstimateConfig(), truth, boot_draws=3, wild_draws=9,
        seed=1,
    )  # fmt: skip
    out = pd.DataFrame(rows).set_index("estimator")
    assert list(out.index) == list(EXTRAS)
    assert out["error"].notna().all()
    assert out.loc["reached_families", "error"].endswith("the intent-to-treat design failed")
    assert out["truth"].tolist() == [5.0, 5.0, 5.0, 4.0, 6.0]
    # no draws: the bootstraps are skipped
    rows = ex.inference_rows(
        panel, matched, RiskSetSpec(), EstimateConfig(), truth, boot_draws=0, wild_draws=0,
        seed=1,
    )  # fmt: skip
    assert [r["estimator"] for r in rows] == [EXTRAS[0], *EXTRAS[3:]]


def test_extras_off_by_default_and_configured_from_params():
    cfg = ValidateConfig()
    assert not cfg.inference and (cfg.boot_draws, cfg.wild_draws) == (49, 199)
    with pytest.raises(ValueError, match="inference"):
        ValidateConfig(inference=True, design="differences")
    v = ValidateSettings(inference=True, boot_draws=9, wild_draws=99)
    c = ValidateConfig(**v.kwargs())
    assert c.inference and (c.boot_draws, c.wild_draws) == (9, 99)
    # the extras are added by validate.inference, not listed among the estimators
    with pytest.raises(ValueError):
        ValidateSettings(estimators=["itt_first_attempt"])


def test_extras_have_reader_labels():
    for name in EXTRAS:
        e = registry.estimator(name)
        assert labels.ESTIMATORS[name] == e.label
        assert "_" not in e.label


def test_bracketing_uses_the_completed_visit_truth():
    """Rows of other estimands (their own truths) listed first do not change bracketing."""
    reps = pd.DataFrame(
        {
            "scenario": ["s"] * 6,
            "rep": [0, 0, 0, 1, 1, 1],
            "estimator": ["itt", "anc", "dif"] * 2,
            "estimate": [0.0, 1.0, 3.0, 0.0, 2.5, 4.0],
            "truth": [0.5, 2.0, 2.0, 3.0, 2.0, 2.0],
        }
    )
    assert bracketing_rate(reps, "anc", "dif")["s"] == pytest.approx(1 / 2)


def test_verdict_table_judges_the_attempt_design_against_its_truth():
    rng = np.random.default_rng(1)
    rows = []
    for r in range(40):
        t_att, t_itt = 8 + rng.normal(0, 0.2), 6 + rng.normal(0, 0.2)
        for est, e, t in (
            ("anc", t_att + 1.8 + rng.normal(0, 0.4), t_att),
            ("dif", t_att + 2.5, t_att),
            ("itt", t_itt + rng.normal(0, 0.4), t_itt),
        ):
            rows.append(dict(scenario="reachability", rep=r, estimator=est, truth=t,
                             estimate=e, pretrend_p=0.5))  # fmt: skip
    reps = pd.DataFrame(rows)
    summary = []
    for est, g in reps.groupby("estimator"):
        err = g["estimate"] - g["truth"]
        summary.append(dict(scenario="reachability", estimator=est, n_reps=len(g),
                            bias=err.mean(), sd_error=err.std(ddof=1),
                            coverage=float(err.abs().lt(0.8).mean()), se_ratio=1.0))  # fmt: skip
    t = verdict_table(
        pd.DataFrame(summary), reps, {"primary": "anc", ATTEMPT_DESIGN: "itt"}, "anc", "dif",
        attempt_designs=(ATTEMPT_DESIGN,),
    ).set_index("design")  # fmt: skip
    assert t.loc[ATTEMPT_DESIGN, "verdict"] == "valid"
    assert t.loc[ATTEMPT_DESIGN, "targets_apply"] and not t.loc["primary", "targets_apply"]
    assert np.isnan(t.loc[ATTEMPT_DESIGN, "bracketing"])
    assert t.loc["primary", "verdict"] != "valid"
