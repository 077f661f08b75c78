"""The simulation study (``pipeline.validate``) at a small size.

What a couple of replications can honestly show: the output schema, determinism given
the seed (also across worker counts), that the naive before/after is far off under
selection on a dip while the primary matched design is close to the truth, and that the
summary statistics are computed as documented (checked on hand-made replications).
Coverage and rejection rates need the full-size run (``python -m pipeline.validate``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.scenarios import FILE_REP_COLUMNS, REP_COLUMNS, SCENARIOS, TABLE_COLUMNS
from pipeline.analysis.settings import PRIMARY
from pipeline.analysis.simulation import (
    ValidateConfig,
    replication_seeds,
    run_replications,
    summarize,
    synth_config,
)
from pipeline.settings import section_settings, stage_settings
from pipeline.validate import run

SMALL = dict(
    n_reps=2,
    n_students=6000,
    n_districts=6,
    n_program_districts=3,
    served_share=0.12,
    scenarios=("dip",),
    estimators=(PRIMARY, "naive_before_after"),
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cfg = ValidateConfig(workers=2, **SMALL)
    root = tmp_path_factory.mktemp("validate")
    summary, reps = run(cfg, root)
    return cfg, root, summary, reps


def test_outputs_and_schema(study):
    cfg, root, summary, reps = study
    assert list(summary.columns) == TABLE_COLUMNS
    assert list(reps.columns) == REP_COLUMNS
    # no run times in the outputs: identical bytes for the same params and seed
    assert list(pd.read_csv(root / cfg.replications).columns) == FILE_REP_COLUMNS
    on_disk = pd.read_csv(root / cfg.table)
    assert list(on_disk.columns) == TABLE_COLUMNS
    assert set(summary["estimator"]) == set(cfg.estimators)
    assert (summary["n_reps"] == cfg.n_reps).all()
    assert (summary["n_failed"] == 0).all()
    for ext in (".png", ".svg"):
        assert (root / (cfg.figure + ext)).stat().st_size > 1000
    # the truth is the generator's, the same for every estimator of a replication
    assert reps.groupby("rep")["truth"].nunique().eq(1).all()
    assert reps["truth"].between(2, 20).all()
    # the table the stage logs (a string float format broke it under pandas 3, after the
    # outputs were written: the stage then exited with an error)
    from pipeline.validate import summary_text

    text = summary_text(summary)
    assert "matched_ancova" in text and f"{summary['bias'].iloc[0]:.3f}" in text


def test_naive_biased_primary_close_under_the_dip(study):
    _, _, summary, reps = study
    s = summary.set_index("estimator")
    # the naive before/after mistakes the recovery from the dip for an effect
    assert s.loc["naive_before_after", "bias"] > 8.0
    # the primary design is within 2.5 standard errors of the truth in each replication
    p = reps[reps["estimator"] == PRIMARY]
    assert ((p["estimate"] - p["truth"]).abs() < 2.5 * p["std_error"]).all(), p
    assert abs(s.loc[PRIMARY, "bias"]) < 0.2 * s.loc["naive_before_after", "bias"]
    # the primary's pre-trend test (months before those it adjusts for) was run
    assert p["pretrend_p"].between(0, 1).all()


def test_deterministic_across_worker_counts(study):
    cfg, _, _, reps = study
    serial = run_replications(ValidateConfig(workers=1, **{**SMALL, "n_reps": 1}))
    first = reps[reps["rep"] == 0].reset_index(drop=True)
    cols = ["estimator", "seed", "truth", "estimate", "std_error", "ci_low", "ci_high"]
    # bit-for-bit: the same seed gives the same numbers in a worker process and in-process
    pd.testing.assert_frame_equal(serial[cols].reset_index(drop=True), first[cols])


def test_seeds_and_scenarios():
    a, b = replication_seeds(7, 5), replication_seeds(7, 8)
    assert a == b[:5] and len(set(b)) == 8  # more replications extend, never reshuffle
    cfg = ValidateConfig(**SMALL)
    assert synth_config(cfg, "zero_effect", 1).effects.zero is True
    assert synth_config(cfg, "no_dip", 1).program.referral_noise >= 1e3
    assert synth_config(cfg, "few_districts", 1).n_program_districts == 2
    assert synth_config(cfg, "unrecorded_shocks", 1).program.unobserved_weight > 0
    assert synth_config(cfg, "dip", 1).program.served_share == cfg.served_share
    assert SCENARIOS["unrecorded_shocks"]["targets_apply"] is False
    with pytest.raises(ValueError, match="unknown"):
        ValidateConfig(scenarios=("nope",))
    with pytest.raises(ValueError, match="unknown key"):
        section_settings("validate", {"n_rep": 3})


def test_summary_statistics_by_hand():
    truth = 5.0
    est = np.array([4.0, 6.0, 5.5, 20.0])
    se = np.array([1.0, 1.0, 1.0, 1.0])
    reps = pd.DataFrame(
        {
            "scenario": "dip",
            "rep": range(4),
            "seed": 0,
            "estimator": PRIMARY,
            "truth": truth,
            "estimate": est,
            "std_error": se,
            "ci_low": est - 1.96 * se,
            "ci_high": est + 1.96 * se,
            "pretrend_p": [0.01, 0.5, np.nan, 0.03],
        }
    )
    failed = reps.iloc[[0]].assign(rep=4, estimate=np.nan, error="boom")
    s = summarize(pd.concat([reps, failed], ignore_index=True)).iloc[0]
    assert s["n_reps"] == 4 and s["n_failed"] == 1
    assert s["bias"] == pytest.approx(np.mean(est) - truth)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((est - truth) ** 2)))
    assert s["coverage"] == pytest.approx(3 / 4)  # 20 ± 1.96 misses 5
    assert s["rejection_rate"] == pytest.approx(1.0)  # no interval holds 0
    assert s["sd_estimate"] == pytest.approx(np.std(est, ddof=1))
    assert s["sd_error"] == pytest.approx(np.std(est - truth, ddof=1))
    assert s["se_ratio"] == pytest.approx(np.mean(se) / np.std(est, ddof=1))
    assert s["pretrend_rejection"] == pytest.approx(2 / 3)  # of the tests run, at 0.05


def test_replications_use_the_estimate_stages_weights_and_clusters(monkeypatch):
    """The study validates the primary as the estimate stage runs it: the censoring-weight
    truncation and the error clustering come from the configuration (``estimate`` in
    params.yaml), not from a default of their own."""
    import pipeline.analysis.simulation as sim

    seen = {"truncate": [], "cluster": []}
    real_weights, real_primary = sim.with_censoring_weights, sim.primary

    def weights(matched, use, truncate="missing"):
        if use:  # (the variant without weights calls it with use=False)
            seen["truncate"].append(truncate)
        return real_weights(matched, use, truncate)

    def primary(m, y, ecfg, **kw):
        seen["cluster"].append(ecfg.cluster)
        return real_primary(m, y, ecfg, **kw)

    monkeypatch.setattr(sim, "with_censoring_weights", weights)
    monkeypatch.setattr(sim, "primary", primary)
    cfg = ValidateConfig(
        **{**SMALL, "n_reps": 1, "n_students": 3000, "estimators": (PRIMARY,)},
        ipcw_truncate=(0.05, 0.95),
        cluster="district_code",
        diagnostics=False,
    )
    out = sim.run_replication(cfg, "dip", 0, replication_seeds(cfg.seed, 1)[0])
    assert out["error"].isna().all(), out["error"].tolist()
    assert seen["truncate"] and all(tuple(t) == (0.05, 0.95) for t in seen["truncate"])
    assert seen["cluster"] and set(seen["cluster"]) == {"district_code"}
    # and the params default is what the stage passes: no truncation, student clusters
    est = stage_settings().estimate
    assert est.ipcw_truncate is None and est.cluster == "home_school_code"


def test_primary_censoring_impute_fits_the_imputed_stacks(monkeypatch):
    """``primary_censoring="impute"``: the primary is fitted on the stacks with the
    censored comparison rows' outcome imputed (no weights), and its estimate differs from
    the weighted one; the diagnostics (attrition counts the censored rows as lost) stay
    the weighted design's."""
    import pipeline.analysis.simulation as sim

    seen = []
    real_primary = sim.primary

    def primary(m, y, ecfg, **kw):
        seen.append((bool(m["censored"].astype(bool).any()), float(m["ipcw"].max()), len(m)))
        return real_primary(m, y, ecfg, **kw)

    monkeypatch.setattr(sim, "primary", primary)
    base = {**SMALL, "n_reps": 1, "n_students": 3000, "estimators": (PRIMARY,)}
    seed = replication_seeds(20210404, 1)[0]
    out, first = {}, {}
    for how in ("weights", "impute"):
        first[how] = len(seen)  # the primary is the replication's first fit
        out[how] = sim.run_replication(
            ValidateConfig(**base, primary_censoring=how), "dip", 0, seed
        )
    (cen_w, wmax_w, n_w), (cen_i, wmax_i, n_i) = seen[first["weights"]], seen[first["impute"]]
    assert cen_w and wmax_w > 1  # weighted: censored rows present, weights above one
    assert not cen_i and wmax_i == 1 and n_i == n_w  # imputed: none censored, no weights
    est = {k: float(v.loc[v["estimator"] == PRIMARY, "estimate"].iloc[0]) for k, v in out.items()}
    assert abs(est["impute"] - est["weights"]) > 1e-6
    for col in ("attrition_p", "censoring_weight_max"):
        a, b = (float(v[col].iloc[0]) for v in out.values())
        assert np.isfinite(a) and a == b, col
    with pytest.raises(ValueError, match="primary_censoring.*'oracle'"):
        ValidateConfig(**base, primary_censoring="oracle")
