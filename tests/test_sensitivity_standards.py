"""Effect sizes, WWC standards, subgroup multiplicity and falsification bounds:
hand-computed cases, published boundary values and invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.did.results import EventStudyResult
from pipeline.sensitivity.effect_sizes import cox_index, hedges_g, improvement_index
from pipeline.sensitivity.falsification import equivalence_bound, falsification_summary
from pipeline.sensitivity.multiplicity import bh_qvalues, equality_wald, subgroup_contrasts
from pipeline.sensitivity.wwc import (
    ATTRITION_BOUNDARY,
    attrition_row,
    baseline_equivalence,
    wwc_table,
)

# -- effect sizes -------------------------------------------------------------------------


def test_hedges_g_hand_computed():
    # n_t = 20, n_c = 30, difference 5, SDs 10 and 12:
    # S = sqrt((19*100 + 29*144) / 48) = sqrt(6076/48) = 11.250925888 (bc -l)
    # omega = 1 - 3/(4*50 - 9) = 188/191
    # g = (188/191) * 5 / 11.250925888 = 0.437427641
    e = hedges_g(5.0, 10.0, 12.0, 20, 30)
    assert e.estimate == pytest.approx(0.437427641, abs=1e-9)
    # SE = omega * sqrt(50/600 + (g/omega)**2 / 100), g/omega = 0.444407869
    se = 188 / 191 * np.sqrt(50 / 600 + 0.444407869**2 / 100)
    assert e.std_error == pytest.approx(se, abs=1e-9)
    assert e.ci_low == pytest.approx(0.437427641 - 1.959963985 * se, abs=1e-8)
    # with the effect's own interval: scaled by omega / S
    e2 = hedges_g(5.0, 10.0, 12.0, 20, 30, ci=(1.0, 9.0))
    assert (e2.ci_low, e2.ci_high) == pytest.approx((0.087485528, 0.787369754), abs=1e-9)
    assert improvement_index(0.25) == pytest.approx(9.8706326, abs=1e-6)  # 100*(Φ(.25)-.5)


def test_cox_index_hand_computed():
    # logit(0.3) - logit(0.4) = -0.84729786 + 0.40546511 = -0.44183275
    # omega = 1 - 3/791 = 0.99620733; d = -0.44183275 * 0.99620733 / 1.65 = -0.26676...
    e = cox_index(0.3, 0.4, 100, 100)
    assert e.estimate == pytest.approx(-0.44183275 * 0.99620733 / 1.65, abs=1e-8)
    se = 0.99620733 * np.sqrt(1 / 21 + 1 / 24) / 1.65
    assert e.std_error == pytest.approx(se, abs=1e-8)
    assert e.improvement_index < 0
    with pytest.raises(ValueError, match="proportions"):
        cox_index(0.0, 0.4, 10, 10)


# -- WWC ----------------------------------------------------------------------------------


def test_attrition_boundary_published_values():
    b = ATTRITION_BOUNDARY
    # spot values of the handbook's table (cautious / optimistic)
    assert (b.loc[0, "cautious"], b.loc[0, "optimistic"]) == (5.7, 10.0)
    assert (b.loc[30, "cautious"], b.loc[30, "optimistic"]) == (4.1, 8.2)
    assert b.loc[57, "cautious"] == 0.0 and np.isnan(b.loc[58, "cautious"])
    assert b.loc[65, "optimistic"] == 0.3
    assert (np.diff(b["optimistic"].to_numpy()[10:]) <= 0).all()  # narrows as attrition rises
    # 8 % overall, 3 points differential: low (cautious)
    r = attrition_row(100, 95, 100, 89)
    assert r["overall_attrition"] == pytest.approx(0.08)
    assert r["differential_attrition"] == pytest.approx(0.06)
    assert r["max_differential"] == pytest.approx(0.063)
    assert r["attrition_level"] == "low"  # 6 points <= 6.3 at 8 % overall
    # 30 % overall, 6 points: high if cautious, low if optimistic
    assert attrition_row(100, 73, 100, 67)["attrition_level"] == "high"
    assert attrition_row(100, 73, 100, 67, "optimistic")["attrition_level"] == "low"
    assert attrition_row(100, 30, 100, 30)["attrition_level"] == "high"  # 70 % overall


def test_baseline_equivalence_and_rating():
    assert baseline_equivalence(0.05, False)[0] == "satisfied"
    assert baseline_equivalence(-0.1, True)[0] == "satisfied with adjustment"
    assert baseline_equivalence(0.1, False)[0] == "requires adjustment"
    assert baseline_equivalence(0.26, True)[0] == "not satisfied"
    eq = pd.DataFrame({"event_time": [1, 1, 2], "characteristic": ["a", "b", "a"],
                       "g": [0.01, -0.2, 0.03], "adjusted": [True, True, True]})
    t = wwc_table(eq, attrition_row(100, 90, 300, 270))
    rating = t[t["item"] == "rating"].iloc[0]
    assert rating["category"] == "Meets WWC Standards With Reservations"
    assert "quasi-experimental" in rating["reason"]
    eq.loc[2, "g"] = 0.3
    t = wwc_table(eq, None)
    assert t[t["item"] == "rating"]["category"].item() == "Does Not Meet WWC Standards"
    rct = wwc_table(eq.iloc[:2], attrition_row(100, 95, 100, 95), design="rct")
    assert rct["category"].iloc[-1] == "Meets WWC Standards Without Reservations"


# -- subgroups ----------------------------------------------------------------------------


def test_bh_qvalues_hand_and_statsmodels():
    q = bh_qvalues([0.01, 0.04, 0.03, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 -> p*m/rank 0.04, 0.06, 0.0533, 0.2 -> step-up minima
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    rng = np.random.default_rng(1)
    p = rng.uniform(size=40) ** 3
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    np.testing.assert_allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1])
    assert np.isnan(bh_qvalues([np.nan, 0.1])[0])


def test_equality_wald_and_contrasts():
    stat, df, p = equality_wald([1.0, 3.0], [0.5, 0.5])
    assert (stat, df) == (pytest.approx(4.0), 1)
    assert p == pytest.approx(stats.chi2.sf(4.0, 1))
    assert equality_wald([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])[0] == pytest.approx(0.0)
    # invariant to the reference level: the weighted heterogeneity statistic Q
    b, v = np.array([1.0, 2.5, 0.2]), np.array([0.3, 0.2, 0.6])
    w = 1 / v
    q = float((w * (b - (w @ b) / w.sum()) ** 2).sum())
    assert equality_wald(b, v)[0] == pytest.approx(q)
    assert equality_wald(b[::-1], v[::-1])[0] == pytest.approx(q)
    tab = pd.DataFrame({
        "subgroup": ["grade_band"] * 3 + ["dosage"] * 2,
        "level": ["9-12", "K-5", "6-8", "1 visit", "2 visits"],
        "estimate": [3.0, 1.0, 2.0, 1.0, 4.0], "std_error": [0.5, 0.5, 0.5, 1.0, 1.0],
    })
    c, t = subgroup_contrasts(tab, order={"grade_band": ["K-5", "6-8", "9-12"]})
    g = c[c.subgroup == "grade_band"]
    assert list(g["level"]) == ["6-8", "9-12"] and set(g["reference"]) == {"K-5"}
    assert g["difference"].tolist() == [1.0, 2.0]
    assert c.loc[c.subgroup == "dosage", "q_value"].isna().all()  # descriptive
    assert (c.loc[c.role == "causal", "q_value"] >= c.loc[c.role == "causal", "p_value"]).all()
    assert t.set_index("subgroup").loc["dosage", "role"] == "descriptive"


# -- falsification ------------------------------------------------------------------------


def _es(pre, sd=0.5, df=None):
    ev = np.array([-6, -5, -4, 0, 1, 2])
    est = np.r_[pre, [0.0, 0.0, 2.0, 2.0]]
    return EventStudyResult(estimator="x", event_time=ev, estimate=est,
                            vcov=np.diag(np.full(6, sd**2)), reference=(-3, -2, -1), df=df)


def test_equivalence_bound_closed_form():
    r = _es([0.2, -0.4])  # placebo months -6, -5 (-4 is one too, estimate 0)
    eq = equivalence_bound(r, 0.05)
    z = stats.norm.ppf(0.95)
    assert eq["event_time"].tolist() == [-6, -5, -4]
    np.testing.assert_allclose(eq["bound"], [0.2 + z * 0.5, 0.4 + z * 0.5, z * 0.5])
    assert eq.attrs["bound"] == pytest.approx(0.4 + z * 0.5)
    with pytest.raises(ValueError, match="no placebo"):
        equivalence_bound(EventStudyResult(estimator="y", event_time=np.array([0, 1]),
                                           estimate=np.zeros(2), vcov=np.eye(2),
                                           reference=(-1,)))


def test_falsification_summary():
    r = EventStudyResult(estimator="x", event_time=np.array([-5, -4, 0, 1, 2]),
                         estimate=np.array([0.2, -0.4, 0.0, 2.0, 4.0]),
                         vcov=np.diag([0.25] * 5), reference=(-3, -2, -1), df=40)
    s = falsification_summary(r, window=(1, 2))
    c = stats.t.ppf(0.95, 40)
    assert s["equivalence_bound"] == pytest.approx(0.4 + c * 0.5)
    assert s["pretrend_stat"] == pytest.approx((0.04 + 0.16) / 0.25)
    assert s["pretrend_df"] == 2 and s["n_placebo"] == 2
    assert s["effect"] == pytest.approx(3.0)
    assert s["bound_over_effect"] == pytest.approx((0.4 + c * 0.5) / 3.0)
    # a larger pre-period violation raises the bound one-for-one
    r2 = EventStudyResult(estimator="x", event_time=r.event_time,
                          estimate=r.estimate + np.array([0, -1.0, 0, 0, 0]),
                          vcov=r.vcov, reference=r.reference, df=40)
    assert falsification_summary(r2, (1, 2))["equivalence_bound"] == pytest.approx(
        1.4 + c * 0.5)
    assert falsification_summary(r2, (1, 2))["pretrend_reject"]
