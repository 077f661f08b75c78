"""Callaway & Sant'Anna (pipeline.did.cs) against R's ``did``, its PyPI ports, closed
forms and known truth.

Reference values:
* R ``did`` 2.x on ``mpdta`` (lemp, never-treated, DR, no covariates) — constants below;
* ``tests/fixtures/cs_moderndid.csv`` / ``cs_csdid.csv`` — every other configuration,
  frozen from the PyPI ports by ``benchmarks/make_cs_fixtures.py`` (the peers are not
  needed to run these tests).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from pipeline.did.cs import aggte, att_gt
from pipeline.did.results import EventStudyResult
from tests.cs_configs import AGGS, CONFIGS, UNBALANCED_CONFIGS, unbalanced

FIX = Path(__file__).parent / "fixtures"
KEYS = dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat")


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return pd.read_csv(FIX / "mpdta.csv")


@pytest.fixture(scope="module")
def base(mpdta):
    return att_gt(mpdta, **KEYS)


# --------------------------------------------------------------------------------------
# R did on mpdta
# --------------------------------------------------------------------------------------
R_ATT = {
    2004: ([-0.0105, -0.0704, -0.1373, -0.1008], [0.02325, 0.03098, 0.03644, 0.03436]),
    2006: ([0.0065, -0.0028, -0.0046, -0.0412], [0.02333, 0.01956, 0.01776, 0.02023]),
    2007: ([0.0305, -0.0027, -0.0311, -0.0261], [0.01503, 0.01640, 0.01788, 0.01666]),
}


def test_attgt_matches_R_did(base):
    assert base.n == 500
    tab = base.table()
    for g, (att, se) in R_ATT.items():
        rows = tab[tab["group"] == g].sort_values("time")
        assert_array_equal(rows["time"], [2004, 2005, 2006, 2007])
        assert_allclose(rows["att"], att, atol=5e-5)
        assert_allclose(rows["se"], se, atol=1e-4)
    assert_array_equal(tab["post"], (tab["time"] >= tab["group"]).astype(int))


def test_aggregations_match_R_did(base):
    s = aggte(base, "simple")
    assert_allclose([s.overall_att, s.overall_se], [-0.03995, 0.01203], atol=5e-5)
    d = aggte(base, "dynamic")
    assert_array_equal(d.egt, [-3, -2, -1, 0, 1, 2, 3])
    assert_allclose(
        d.att_egt, [0.0305, -0.0006, -0.0245, -0.0199, -0.0510, -0.1373, -0.1008], atol=5e-5
    )
    assert_allclose([d.overall_att, d.overall_se], [-0.07724, 0.01996], atol=5e-5)
    g = aggte(base, "group")
    assert_allclose([g.overall_att, g.overall_se], [-0.03102, 0.01245], atol=5e-5)
    c = aggte(base, "calendar")
    assert_allclose([c.overall_att, c.overall_se], [-0.04170, 0.01597], atol=5e-5)


# --------------------------------------------------------------------------------------
# every configuration against the frozen peer outputs
# --------------------------------------------------------------------------------------
def _ours(data: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anticipation=1 drops the 2004 cohort (warned)
        r = att_gt(data, **KEYS, **cfg)
    rows = [
        dict(kind="attgt", group=float(g), time=float(t), estimate=a, se=s)
        for g, t, a, s in zip(r.group, r.time, r.att, r.se, strict=True)
    ]
    for kind, a in AGGS.items():
        a = dict(a)
        ag = aggte(r, a.pop("type"), **a)
        rows.append(
            dict(kind=kind, group=np.nan, time=np.nan, estimate=ag.overall_att, se=ag.overall_se)
        )
        if ag.egt is not None:
            rows += [
                dict(kind=kind, group=float(k), time=np.nan, estimate=e, se=s)
                for k, e, s in zip(ag.egt, ag.att_egt, ag.se_egt, strict=True)
            ]
    return pd.DataFrame(rows)


def _compare_with_fixture(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    m = ours.merge(
        ref, on=["kind", "group", "time"], how="outer", suffixes=("", "_ref"), indicator=True
    )
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"]
    assert len(m) == len(ref) > 20
    assert_allclose(m["estimate"], m["estimate_ref"], atol=1e-9)
    # universal-base reference cells have no standard error in either
    assert_array_equal(m["se"].isna(), m["se_ref"].isna())
    ok = m["se"].notna()
    assert_allclose(m.loc[ok, "se"], m.loc[ok, "se_ref"], rtol=1e-8)


@pytest.mark.parametrize("peer", ["moderndid", "csdid"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_peer_fixture(mpdta, name, peer):
    ref = pd.read_csv(FIX / f"cs_{peer}.csv", comment="#")
    ref = ref[ref["config"] == name].drop(columns="config")
    _compare_with_fixture(_ours(mpdta, CONFIGS[name]), ref)


@pytest.mark.parametrize("name", list(UNBALANCED_CONFIGS))
def test_unbalanced_panel_matches_csdid(mpdta, name):
    ref = pd.read_csv(FIX / "cs_csdid_unbalanced.csv", comment="#")
    ref = ref[ref["config"] == name].drop(columns="config")
    d = unbalanced(mpdta)
    assert 0.05 < 1 - len(d) / len(mpdta) < 0.15
    cfg = {**UNBALANCED_CONFIGS[name], "allow_unbalanced_panel": True}
    _compare_with_fixture(_ours(d, cfg), ref)


def test_unbalanced_path_on_balanced_data_is_the_panel_estimator(mpdta, base):
    # R: a balanced panel with allow_unbalanced_panel=True uses the panel estimator
    r = att_gt(mpdta, **KEYS, allow_unbalanced_panel=True)
    assert_allclose(r.att, base.att, atol=1e-14)
    assert_allclose(r.se, base.se, rtol=1e-12)
    with pytest.raises(NotImplementedError, match="without covariates"):
        att_gt(unbalanced(mpdta), **KEYS, allow_unbalanced_panel=True, covariates=["lpop"])


def test_no_covariate_methods_coincide(mpdta, base):
    for method in ("unconditional", "ipw", "reg"):
        r = att_gt(mpdta, **KEYS, est_method=method)
        assert_allclose(r.att, base.att, atol=1e-12)
        assert_allclose(r.se, base.se, rtol=1e-10)
        assert r.estimator == f"callaway_santanna_{method}"


# --------------------------------------------------------------------------------------
# known truth and invariances
# --------------------------------------------------------------------------------------
def _simulated(n=600, periods=(1, 2, 3, 4, 5, 6), seed=0, tau=0.5, noise=0.0):
    rng = np.random.default_rng(seed)
    cohorts = np.array([0, 3, 4, 6])
    g = rng.choice(cohorts, size=n, p=[0.4, 0.2, 0.2, 0.2])
    alpha = rng.normal(size=n)
    rows = []
    for t in periods:
        # parallel trends: common time effect plus unit effect; effect grows with exposure
        eff = np.where((g > 0) & (t >= g), tau * (t - g + 1), 0.0)
        y = alpha + 0.3 * t + eff + noise * rng.normal(size=n)
        rows.append(
            pd.DataFrame(
                {"id": np.arange(n), "t": t, "g": g, "y": y, "x": alpha + rng.normal(size=n) * 0.1}
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_recovers_known_effects_exactly():
    d = _simulated()
    for cg in ("nevertreated", "notyettreated"):
        r = att_gt(d, yname="y", tname="t", idname="id", gname="g", control_group=cg)
        truth = np.where(r.time >= r.group, 0.5 * (r.time - r.group + 1), 0.0)
        assert_allclose(r.att, truth, atol=1e-12)
        es = aggte(r, "dynamic")
        assert_allclose(es.att_egt, np.where(es.egt >= 0, 0.5 * (es.egt + 1), 0.0), atol=1e-12)
    # with a covariate and noise the DR estimator is still centred on the truth
    d = _simulated(n=4000, noise=0.2, seed=3)
    r = att_gt(d, yname="y", tname="t", idname="id", gname="g", covariates=["x"])
    truth = np.where(r.time >= r.group, 0.5 * (r.time - r.group + 1), 0.0)
    z = (r.att - truth) / r.se
    assert np.all(np.abs(z) < 4.5)


def test_row_order_and_id_labels_do_not_matter(mpdta, base):
    shuffled = mpdta.sample(frac=1.0, random_state=7).reset_index(drop=True)
    shuffled["countyreal"] = "c" + shuffled["countyreal"].astype(str)
    r = att_gt(shuffled, **KEYS)
    assert_allclose(r.att, base.att, atol=1e-14)
    assert_allclose(r.se, base.se, rtol=1e-12)


def test_time_gaps_are_handled(mpdta, base):
    # periods relabelled to non-consecutive integers (R's did uses sorted unique values)
    relabel = {2003: 10, 2004: 13, 2005: 15, 2006: 19, 2007: 20}
    d = mpdta.copy()
    d["year"] = d["year"].map(relabel)
    d["first.treat"] = d["first.treat"].map(lambda g: relabel.get(g, 0))
    r = att_gt(d, **KEYS)
    assert_array_equal(r.time, [relabel[t] for t in base.time])
    assert_allclose(r.att, base.att, atol=1e-14)
    assert_allclose(r.se, base.se, rtol=1e-12)
    for ty in ("simple", "group", "calendar"):
        a, b = aggte(r, ty), aggte(base, ty)
        assert_allclose([a.overall_att, a.overall_se], [b.overall_att, b.overall_se], rtol=1e-12)


def test_unbalanced_units_dropped_with_warning(mpdta):
    d = mpdta.drop(index=[3, 10])  # one row of county 8001, one of county 8003
    dropped = mpdta["countyreal"].isin(mpdta.loc[[3, 10], "countyreal"])
    with pytest.warns(UserWarning, match="2 units are not observed"):
        r = att_gt(d, **KEYS)
    ref = att_gt(mpdta[~dropped], **KEYS)
    assert r.n == 498
    assert_allclose(r.att, ref.att, atol=1e-14)
    with pytest.raises(NotImplementedError, match="panel=False"):
        att_gt(d, **KEYS, panel=False)


def test_constant_weights_change_nothing_and_integer_weights_replicate(mpdta, base):
    d = mpdta.assign(w=3.0)
    r = att_gt(d, **KEYS, weightsname="w")
    assert_allclose(r.att, base.att, atol=1e-14)
    assert_allclose(r.se, base.se, rtol=1e-12)
    # weight 2 on some counties = those counties duplicated (point estimates)
    heavy = mpdta["countyreal"] % 3 == 0
    r2 = att_gt(mpdta.assign(w=np.where(heavy, 2.0, 1.0)), **KEYS, weightsname="w")
    dup = mpdta[heavy].assign(countyreal=lambda x: x["countyreal"] + 100000)
    r3 = att_gt(pd.concat([mpdta, dup], ignore_index=True), **KEYS)
    assert_allclose(r2.att, r3.att, atol=1e-12)


def test_bad_input_errors(mpdta):
    with pytest.raises(KeyError, match="lemp2"):
        att_gt(mpdta, **{**KEYS, "yname": "lemp2"})
    with pytest.raises(ValueError, match="not unique"):
        att_gt(pd.concat([mpdta, mpdta.iloc[:1]]), **KEYS)
    bad = mpdta.copy()
    bad.loc[0, "first.treat"] = 2006
    with pytest.raises(ValueError, match="'first.treat' must be constant within unit"):
        att_gt(bad, **KEYS)
    with pytest.raises(TypeError, match="'year' must be numeric"):
        att_gt(mpdta.assign(year=mpdta["year"].astype(str)), **KEYS)
    with pytest.raises(ValueError, match="only plain column names"):
        att_gt(mpdta, **KEYS, xformla="~ log(lpop)")
    with pytest.raises(ValueError, match="control_group"):
        att_gt(mpdta, **KEYS, control_group="never")


def test_without_never_treated_last_cohort_is_comparison_only():
    # no never-treated units and not-yet-treated comparisons: the last cohort only
    # serves as comparison, and the periods from its start on are dropped (as in R)
    d = _simulated()
    d = d[d["g"] > 0]
    r = att_gt(d, yname="y", tname="t", idname="id", gname="g", control_group="notyettreated")
    assert set(r.group) == {3, 4}
    assert r.time.max() == 5
    truth = np.where(r.time >= r.group, 0.5 * (r.time - r.group + 1), 0.0)
    assert_allclose(r.att, truth, atol=1e-12)
    with pytest.warns(UserWarning, match="no never-treated group"):
        r2 = att_gt(d, yname="y", tname="t", idname="id", gname="g")
    assert set(r2.group) == {3, 4} and r2.time.max() == 5


def test_nan_cells_need_na_rm():
    # a covariate that separates cohort 3 from every comparison unit violates overlap:
    # its cells are NaN (with a warning), as in R
    d = _simulated()
    rng = np.random.default_rng(1)
    d["sep"] = 20.0 * (d["g"] == 3) + rng.normal(size=len(d))
    with pytest.warns(UserWarning, match="overlap"):
        r = att_gt(d, yname="y", tname="t", idname="id", gname="g", covariates=["sep"])
    assert np.isnan(r.att[r.group == 3]).all()
    assert np.isfinite(r.att[r.group != 3]).all()
    assert np.all(r.inffunc[:, r.group == 3] == 0)
    with pytest.raises(ValueError, match="na_rm"):
        aggte(r, "dynamic")
    es = aggte(r, "dynamic", na_rm=True)
    ok = np.isfinite(r.att)
    truth = np.where(r.time >= r.group, 0.5 * (r.time - r.group + 1), 0.0)
    assert_allclose(r.att[ok], truth[ok], atol=1e-10)
    assert_allclose(es.att_egt, np.where(es.egt >= 0, 0.5 * (es.egt + 1), 0.0), atol=1e-10)


# --------------------------------------------------------------------------------------
# event-study conversion
# --------------------------------------------------------------------------------------
def test_dynamic_converts_to_event_study(base):
    es = aggte(base, "dynamic").to_event_study()
    assert isinstance(es, EventStudyResult)
    assert es.estimator == "callaway_santanna_dr"
    assert_array_equal(es.event_time, [-3, -2, -1, 0, 1, 2, 3])
    assert_array_equal(es.n_treated, [131, 171, 171, 191, 60, 20, 20])
    assert_allclose(es.std_errors.to_numpy(), aggte(base, "dynamic").se_egt, rtol=1e-12)
    assert es.crit_uniform is None and es.reference == ()
    # window average 0..3 from the joint covariance = mean of the IFs' average
    av = es.average((0, 3))
    inf = aggte(base, "dynamic").inf_func_egt[:, 3:].mean(axis=1)
    assert_allclose(av.std_error, np.sqrt(np.sum(inf**2)) / base.n, rtol=1e-12)
    tidy = es.tidy()
    assert list(tidy["estimator"].unique()) == ["callaway_santanna_dr"]
    with pytest.raises(ValueError, match="dynamic"):
        aggte(base, "group").to_event_study()


def test_universal_base_reference_period(mpdta):
    r = att_gt(mpdta, **KEYS, base_period="universal", est_method="unconditional")
    es = aggte(r, "dynamic").to_event_study()
    assert es.estimator == "callaway_santanna_unconditional"
    assert es.reference == (-1,)
    i = list(es.event_time).index(-1)
    assert es.estimate[i] == 0 and es.vcov[i, i] == 0
    # post-treatment cells do not depend on the base-period choice
    v = att_gt(mpdta, **KEYS)
    post_u = r.table().query("post == 1")["att"].to_numpy()
    post_v = v.table().query("post == 1")["att"].to_numpy()
    assert_allclose(post_u, post_v, atol=1e-14)


# --------------------------------------------------------------------------------------
# clustering and the multiplier bootstrap
# --------------------------------------------------------------------------------------
def test_cluster_by_unit_equals_unclustered(mpdta, base):
    r = att_gt(mpdta.assign(cl=mpdta["countyreal"] * 7), **KEYS, clustervars="cl")
    assert_allclose(r.se, base.se, rtol=1e-12)
    r2 = att_gt(mpdta, **KEYS, clustervars=["countyreal"])  # idname is ignored, as in R
    assert_allclose(r2.se, base.se, rtol=1e-12)


def test_clustered_se_against_moderndid_bootstrap(mpdta):
    d = mpdta.assign(cluster10=(mpdta["countyreal"].rank(method="dense").astype(int) - 1) // 10)
    ref = pd.read_csv(FIX / "cs_moderndid_cluster.csv", comment="#")
    r = att_gt(d, **KEYS, clustervars="cluster10")
    # analytic: sqrt(sum over clusters of summed influence functions^2) / n
    s = pd.DataFrame(r.inffunc).groupby(r.cluster_codes).sum().to_numpy()
    assert_allclose(r.se, np.sqrt((s**2).sum(axis=0)) / r.n, rtol=1e-12)
    # moderndid's 20,000-draw cluster bootstrap (IQR-based, 50 clusters): within 15%
    ra = ref[ref["kind"] == "attgt"]
    assert_allclose(r.se, ra["se"].to_numpy(), rtol=0.15)
    dyn = aggte(r, "dynamic")
    rd = ref[ref["kind"] == "dynamic"]
    assert_allclose(np.r_[dyn.se_egt, dyn.overall_se], rd["se"].to_numpy(), rtol=0.15)
    with pytest.raises(ValueError, match="'cluster10' must be constant within unit"):
        att_gt(d.assign(cluster10=np.arange(len(d))), **KEYS, clustervars="cluster10")


@pytest.mark.parametrize("weights", ["rademacher", "mammen"])
def test_bootstrap_close_to_analytic(weights):
    # 3,000 units (600 per cohort): the IQR-based bootstrap standard errors estimate the
    # analytic ones; at 999 draws each has a sampling error of about 3-4 %
    d = _simulated(n=3000, noise=1.0, seed=2)
    k = dict(yname="y", tname="t", idname="id", gname="g")
    an = att_gt(d, **k)
    r = att_gt(d, **k, bstrap=True, biters=999, cband=True, seed=0, boot_weights=weights)
    assert_allclose(r.att, an.att)
    assert_allclose(r.se, an.se, rtol=0.10)
    assert abs(np.mean(r.se / an.se) - 1) < 0.03
    assert r.crit > 1.96
    dyn, dyn_a = aggte(r, "dynamic"), aggte(an, "dynamic")
    assert_allclose(dyn.se_egt, dyn_a.se_egt, rtol=0.10)
    assert_allclose(dyn.overall_se, dyn_a.overall_se, rtol=0.10)
    assert dyn.crit_val_egt > 1.96
    es = dyn.to_event_study()
    assert es.crit_uniform == dyn.crit_val_egt
    assert_allclose(es.std_errors.to_numpy(), dyn.se_egt, rtol=1e-12)
    band, point = es.conf_int(uniform=True), es.conf_int()
    assert np.all(band["ci_high"] - band["ci_low"] > point["ci_high"] - point["ci_low"])


def test_bootstrap_on_mpdta(mpdta, base):
    # the 2004 cohort has 20 counties: the bootstrap distribution is visibly non-normal
    # and R's IQR-based standard errors run a few percent above the analytic ones
    r = att_gt(mpdta, **KEYS, bstrap=True, biters=999, cband=True, seed=11)
    assert_allclose(r.se, base.se, rtol=0.15)
    assert 1.96 < r.crit < 4
    dyn = aggte(r, "dynamic")
    assert_allclose(dyn.se_egt, aggte(base, "dynamic").se_egt, rtol=0.15)


def test_bootstrap_deterministic_given_seed(mpdta):
    kw = dict(**KEYS, bstrap=True, biters=199, cband=True)
    a = att_gt(mpdta, **kw, seed=5)
    b = att_gt(mpdta, **kw, seed=5)
    c = att_gt(mpdta, **kw, seed=6)
    assert_array_equal(a.se, b.se)
    assert a.crit == b.crit
    assert not np.array_equal(a.se, c.se)
    da, db = aggte(a, "dynamic"), aggte(b, "dynamic")
    assert_array_equal(da.se_egt, db.se_egt)
    assert da.crit_val_egt == db.crit_val_egt


def test_balance_e_keeps_only_long_exposed_groups(base):
    d = aggte(base, "dynamic", balance_e=1)
    # only cohorts observed at least one period after treatment (2004: 20 counties,
    # 2006: 40) enter; 2004 has no pre-period cells
    assert_array_equal(d.egt, [-2, -1, 0, 1])
    assert_array_equal(d.n_treated_egt, [40, 40, 60, 60])
    full = aggte(base, "dynamic")
    assert_allclose(d.att_egt[d.egt == 1], full.att_egt[full.egt == 1])


def test_aggte_reuses_att_gt_multipliers_exactly(mpdta):
    # the aggregation's bootstrap is linear in the cells' draws and the group-share
    # draws, so reusing att_gt's multipliers equals a fresh pass with the same seed
    r = att_gt(mpdta, **KEYS, bstrap=True, biters=299, cband=True, seed=3)
    assert r.boot_draws is not None and r.boot_draws.shape == (299, 12)
    fresh = att_gt(mpdta, **KEYS, seed=3)  # analytic: aggte must draw on its own
    for ty in ("simple", "dynamic", "group", "calendar"):
        a = aggte(r, ty)
        b = aggte(fresh, ty, bstrap=True, biters=299, cband=True)
        assert_allclose(a.overall_se, b.overall_se, rtol=1e-10)
        if a.egt is not None:
            assert_allclose(a.se_egt, b.se_egt, rtol=1e-10)
            assert a.crit_val_egt == pytest.approx(b.crit_val_egt, rel=1e-10)


def test_vcov_matches_standard_errors(base):
    v = base.vcov()
    assert v.shape == (12, 12)
    assert_allclose(np.sqrt(np.diag(v)), base.se, rtol=1e-12)
    assert_allclose(v, v.T)
    assert np.all(np.linalg.eigvalsh(v) > -1e-15)


def test_one_call_event_study(mpdta):
    from pipeline.did.cs import callaway_santanna

    es = callaway_santanna(
        mpdta, **KEYS, control_group="notyettreated", max_e=2, estimator="cs_nyt"
    )
    ref = aggte(att_gt(mpdta, **KEYS, control_group="notyettreated"), "dynamic", max_e=2)
    assert es.estimator == "cs_nyt"
    assert_array_equal(es.event_time, ref.egt)
    assert_allclose(es.estimate, ref.att_egt)
    assert es.info["n_units"] == 500
    assert es.tidy().shape[0] == ref.egt.size
    with pytest.raises(ValueError, match="code never-treated units as 0"):
        callaway_santanna(
            mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, np.nan)}), **KEYS
        )


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_integer_weights_replicate_units_with_covariates(mpdta, method):
    heavy = mpdta["countyreal"] % 3 == 0
    kw = dict(**KEYS, covariates=["lpop"], est_method=method)
    r2 = att_gt(mpdta.assign(w=np.where(heavy, 2.0, 1.0)), **kw, weightsname="w")
    dup = mpdta[heavy].assign(countyreal=lambda x: x["countyreal"] + 100000)
    r3 = att_gt(pd.concat([mpdta, dup], ignore_index=True), **kw)
    assert_allclose(r2.att, r3.att, atol=1e-9)


def test_pretest_matches_R(base):
    # R did / csdid on mpdta: W = 7.7912, p = 0.16812 (5 pre-treatment cells)
    w = base.pretest()
    assert w.df == 5
    assert_allclose(w.statistic, 7.791236627200242, rtol=1e-8)
    assert_allclose(w.p_value, 0.16812, atol=5e-6)
