"""Design bootstrap: the full-sample draw is the stage's estimate; draws are reproducible."""

import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.design import (
    add_outcomes,
    censoring_adjusted,
    primary,
    with_censoring_weights,
)
from pipeline.analysis.settings import EstimateConfig
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.design_bootstrap import (
    SCHEMES,
    DesignBootstrap,
    school_multiplicities,
    school_weights,
)
from pipeline.history import with_history
from pipeline.matching.riskset import PropensityCache, RiskSetSpec, riskset_match, stack_panels
from tests.conftest import small_config
from tests.panel_factory import build_panel


@pytest.fixture(scope="module")
def panel():
    return build_panel(small_config())[0]


def _stage(panel, ipcw, strata=None):
    spec = RiskSetSpec()
    res = riskset_match(panel, spec)
    m, _ = with_censoring_weights(add_outcomes(stack_panels(panel, res.matches, spec.window)), ipcw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = EstimateConfig(wild_bootstrap=False, effect_strata=strata)
        r = primary(m, "attendance_rate", cfg, bootstrap=False)
    return r.average((1, 6)).estimate


@pytest.mark.parametrize("strata", [None, "grade_band"])
@pytest.mark.parametrize("ipcw", [False, True])
def test_full_sample_draw_is_the_stage_estimate(panel, ipcw, strata):
    bs = DesignBootstrap(panel, ipcw=ipcw, effect_strata=strata)
    ones = np.ones(bs.n_students, dtype=np.int64)
    # without censoring weights the same regression (to rounding); with them the hazard
    # is re-fitted by another solver (to its tolerance)
    tol = 1e-8 if not ipcw else 1e-4
    assert bs.estimate(ones) == pytest.approx(_stage(panel, ipcw, strata), abs=tol)


@pytest.mark.parametrize(
    ("strata", "history"), [(None, False), ("grade_band", False), (None, True)]
)
def test_full_sample_draw_imputed_is_the_stage_estimate(panel, strata, history):
    """With the comparison students visited later imputed (estimate.censoring: impute)
    the bootstrap's own imputation on the grid gives the stage's estimate; with
    ``history`` (estimate.history) both also condition on the recorded year."""
    spec = RiskSetSpec()
    res = riskset_match(panel, spec)
    cfg = EstimateConfig(
        wild_bootstrap=False, effect_strata=strata, censoring="impute", history=history
    )
    stacks = add_outcomes(stack_panels(panel, res.matches, spec.window))
    if history:
        stacks = with_history(stacks, panel)
    m, info, model, diag = censoring_adjusted(stacks, cfg)
    assert model is None and info["imputed_rows"] > 0
    assert info["imputed_rows"] == int(diag["imputed_rows"].sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stage = primary(m, "attendance_rate", cfg, bootstrap=False).average((1, 6)).estimate
    bs = DesignBootstrap(panel, censoring="impute", effect_strata=strata, history=history)
    ones = np.ones(bs.n_students, dtype=np.int64)
    assert bs.estimate(ones) == pytest.approx(stage, abs=1e-8)
    # and it is not the weighted estimate
    assert abs(stage - _stage(panel, True, strata)) > 1e-3
    if history:  # the history moves the estimate: the covariates are used, not ignored
        plain = DesignBootstrap(panel, censoring="impute", effect_strata=strata)
        assert abs(plain.estimate(ones) - stage) > 1e-4


def test_imputed_draws_are_reproducible_and_vary(panel):
    bs = DesignBootstrap(panel, censoring="impute")
    a = bs.run(6, seed=3, workers=1)
    b = bs.run(6, seed=3, workers=2)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert np.isfinite(a.draws).all() and np.std(a.draws) > 0


def test_unknown_censoring_method_is_refused(panel):
    with pytest.raises(ValueError, match="censoring must be one of"):
        DesignBootstrap(panel, censoring="drop")


def test_draws_hold_the_full_samples_visited_mix(panel):
    """With effect strata a draw's effect averages its strata's effects over the full
    sample's visited mix: centring at the draw's own mix gives another number."""
    bs = DesignBootstrap(panel, ipcw=False, effect_strata="grade_band")
    ones = np.ones(bs.n_students, dtype=np.int64)
    bs.estimate(ones)
    mix = {k: v.copy() for k, v in bs._mix.items()}
    assert mix and all(abs(v.sum() - 1) < 1e-12 and (v > 0).sum() >= 2 for v in mix.values())
    diffs = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        omega = school_multiplicities(bs.school_district, rng)[bs.student_school]
        held = bs.estimate(omega)
        assert all(np.array_equal(bs._mix[k], mix[k]) for k in mix)  # a draw does not move it
        bs._mix.clear()
        own = bs.estimate(omega)  # centred at the draw's own mix
        bs._mix.update(mix)
        diffs.append(abs(held - own))
    # equal only in draws whose visited students fall in one stratum (the stratum's effect)
    assert max(diffs) > 1e-6


def test_school_draws_stay_within_districts():
    school_district = np.array([0, 0, 0, 1, 1, 2])
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = school_multiplicities(school_district, rng)
        assert np.bincount(school_district, weights=c).tolist() == [3, 2, 1]
    assert school_multiplicities(school_district, np.random.default_rng(5))[5] == 1


@pytest.mark.parametrize("variance", ["flat", "resampling", "unit"])
def test_school_weights_have_the_named_variance(variance):
    """Smooth weights: every school keeps a positive weight, each district's weights sum
    to its number of schools n, and a school's weight has mean 1 and the variance its
    Dirichlet concentration gives, (n - 1) / (n α + 1): (n - 1) / (n + 1) for the flat
    Bayesian bootstrap, (n - 1) / n (a resampled count's) and 1."""
    school_district = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    rng = np.random.default_rng(0)
    w = np.array([school_weights(school_district, rng, variance) for _ in range(40000)])
    assert (w > 0).all()
    np.testing.assert_allclose(w[:, :4].sum(axis=1), 4)
    np.testing.assert_allclose(w[:, 4:7].sum(axis=1), 3)
    np.testing.assert_allclose(w[:, 7], 1)  # a district of one school: its weight is fixed
    np.testing.assert_allclose(w.mean(axis=0), 1, atol=0.02)
    want = {"flat": (3 / 5, 2 / 4), "resampling": (3 / 4, 2 / 3), "unit": (1.0, 1.0)}[variance]
    np.testing.assert_allclose(w[:, :4].var(axis=0), want[0], rtol=0.05)
    np.testing.assert_allclose(w[:, 4:7].var(axis=0), want[1], rtol=0.05)
    # resampling's counts have the "resampling" variance too
    c = np.array([school_multiplicities(school_district, rng) for _ in range(40000)])
    np.testing.assert_allclose(c[:, :4].var(axis=0), 3 / 4, rtol=0.05)
    a = school_weights(school_district, np.random.default_rng(9), variance)
    np.testing.assert_array_equal(
        a, school_weights(school_district, np.random.default_rng(9), variance)
    )


def test_smooth_draws_keep_every_student_in_the_matching(panel):
    """Resampling drops the students of schools not drawn from the matching's pool; smooth
    weights keep them all (with their weights in the propensity fit)."""
    bs = DesignBootstrap(panel, censoring="impute", scheme="dirichlet_flat")
    n_rows = bs.work_t.size
    rng = np.random.default_rng(1)
    omega = school_weights(bs.school_district, rng)[bs.student_school]
    act, lp = bs.propensity(omega)
    assert act.size == n_rows and np.isfinite(lp).all()
    counts = school_multiplicities(bs.school_district, np.random.default_rng(1))
    act_m, _ = bs.propensity(counts[bs.student_school])
    assert act_m.size < n_rows
    # the re-fitted score moves with the weights
    _, lp0 = bs.propensity(np.ones(bs.n_students))
    assert np.max(np.abs(lp - lp0)) > 1e-6
    a = bs.run(6, seed=4, workers=1)
    b = bs.run(6, seed=4, workers=2)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert np.isfinite(a.draws).all() and np.std(a.draws) > 0
    assert a.info["scheme"] == "dirichlet_flat"
    c = DesignBootstrap(panel, censoring="impute").run(6, seed=4, workers=1)
    assert not np.allclose(a.draws, c.draws)  # the schemes draw differently


def test_unknown_scheme_is_refused(panel):
    assert set(SCHEMES) == {"multinomial", "dirichlet_flat", "dirichlet_resampling",
                            "dirichlet_unit"}  # fmt: skip
    with pytest.raises(ValueError, match="scheme must be one of"):
        DesignBootstrap(panel, scheme="poisson")


def test_draws_are_reproducible_and_vary(panel):
    bs = DesignBootstrap(panel)
    a = bs.run(6, seed=11, workers=1)
    b = bs.run(6, seed=11, workers=2)
    assert np.array_equal(a.draws, b.draws, equal_nan=True)
    assert np.isfinite(a.draws).all()
    assert a.draws.std() > 0
    assert a.estimate == pytest.approx(bs.estimate(np.ones(bs.n_students, dtype=np.int64)))
    t = a.tidy()
    assert t.loc[0, "ci_low"] < t.loc[0, "ci_high"] and t.loc[0, "draws"] == 6
    # a draw that keeps every school once is the full sample
    assert "design bootstrap" in a.summary()


def test_reusing_the_matching_runs_propensity_fit_changes_nothing(panel):
    """The simulation study hands the bootstrap the primary matching run's propensity fit
    (a shared cache): the fit is reused, and the draws are those of a fresh fit."""
    cache = PropensityCache()
    riskset_match(panel, RiskSetSpec(), ps_cache=cache)
    reused = DesignBootstrap(panel, ps_cache=cache)
    assert cache.hits == 1
    fresh = DesignBootstrap(panel)
    np.testing.assert_array_equal(reused.beta0, fresh.beta0)
    a, b = reused.run(3, seed=4, workers=1), fresh.run(3, seed=4, workers=1)
    np.testing.assert_array_equal(a.draws, b.draws)


@pytest.mark.slow
def test_score_step_is_close_to_refitting(panel):
    """The one-step (score) propensity re-fit and the fully re-fitted model give nearly
    the same scores to the visited students and the candidates in their strata (the
    scores matching uses; rows in cells without visited students are nearly separated
    and their scores are far off either way)."""
    fast = DesignBootstrap(panel)
    slow = DesignBootstrap(panel, newton_steps=50)
    rng = np.random.default_rng(3)
    for _ in range(2):
        om = school_multiplicities(fast.school_district, rng)[fast.student_school]
        act, lp_fast = fast.propensity(om)
        _, lp_slow = slow.propensity(om)
        lp_full = fast.propensity(np.ones_like(om))[1][act]
        treated_lp = lp_full[fast.work_t[act]]
        near = lp_full > np.quantile(treated_lp, 0.01)  # where visited students are
        gap = np.abs(lp_fast - lp_slow)[near]
        moved = np.abs(lp_slow - lp_full)[near]
        # the draw moves the scores; the one-step re-fit follows part of that move (on
        # this small extract: about half; closer on larger ones)
        assert np.median(gap) < 0.6 * np.median(moved)


def test_home_clusters_nest_students():
    df = pd.DataFrame(
        {
            "student_key": ["a", "a", "b", "b"],
            "school_month": [2, 1, 1, 2],
            "school_code": ["s2", "s1", "s3", "s4"],
            "district_code": ["d1", "d1", "d2", "d2"],
        }
    )
    h = home_clusters(df)
    assert h.loc["a", "home_school_code"] == "s1" and h.loc["b", "home_school_code"] == "s3"
    out = add_home_clusters(df, h)
    assert out.groupby("student_key")["home_school_code"].nunique().max() == 1
    with pytest.raises(KeyError, match="home_school_code"):
        add_home_clusters(df.assign(student_key=["a", "a", "c", "c"]), h)


def test_draws_can_hold_the_visited_mix(panel):
    """hold_mix: the full-sample draw is the stage's estimate; a draw's matched sets are
    re-weighted so that their strata have the full sample's shares (a stratum the draw
    lacks is dropped and the others keep their proportions)."""
    held = DesignBootstrap(panel, censoring="impute", hold_mix="grade_band")
    plain = DesignBootstrap(panel, censoring="impute")
    ones = np.ones(held.n_students, dtype=np.int64)
    assert held.estimate(ones) == plain.estimate(ones)
    full = held._hold_share.copy()
    assert abs(full.sum() - 1) < 1e-12 and (full > 0).sum() >= 2
    # the factors on hand-made weights: full shares (0.5, 0.5) from (0.25, 0.75)
    n = full.size  # two grade bands in the small panel
    held._hold_share = np.r_[0.5, 0.5, np.zeros(n - 2)]
    om_t, st = np.array([1.0, 1.0, 2.0]), np.array([0, 1, 1])
    f = held._held(om_t, st, full=False)
    np.testing.assert_allclose(f, [2.0, 2 / 3, 2 / 3])
    np.testing.assert_allclose(np.bincount(st, weights=om_t * f, minlength=n)[:2] / 4, [0.5, 0.5])
    held._hold_share = np.r_[0.4, 0.6, np.zeros(n - 2)]
    f = held._held(np.array([1.0, 2.0]), np.array([1, 1]), full=False)  # stratum 0 absent
    np.testing.assert_allclose(f, [1.0, 1.0])
    held._hold_share = full
    a = held.run(6, seed=2, workers=1)
    b = plain.run(6, seed=2, workers=1)
    assert np.isfinite(a.draws).all() and not np.allclose(a.draws, b.draws)
    np.testing.assert_array_equal(held._hold_share, full)  # draws do not move it
    with pytest.raises(KeyError, match="no column"):
        DesignBootstrap(panel, hold_mix="nope")
