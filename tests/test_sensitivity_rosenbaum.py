"""Rosenbaum's M-test sensitivity analysis (R sensitivitymv::senmv): hand-computed scores
and bounds, brute-force checks of the separable maximisation, documented identities, and
R's own numbers (tests/fixtures/senmv_reference.json, sources in tests/fixtures/README.md):
sensitivitymv 1.4.3 on the lead-exposure pairs printed in Rosenbaum (2002, ch. 4) and on
matched sets with one or two controls printed in sensitivityfull's examples."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.sensitivity.rosenbaum import (
    METHODS,
    _separable,
    gamma_breakdown,
    matched_sets_matrix,
    mscores,
    senmv,
)


def test_hand_computed_set():
    # one set, treated 3, controls 1 and 2, no trimming (trim = Inf):
    # treated (3-1)+(3-2) = 3 -> /3 = 1; control 1: (1-3)+(1-2) = -3 -> -1; control 2: 0
    ms = mscores(np.array([[3.0, 1.0, 2.0]]), trim=np.inf)
    np.testing.assert_allclose(ms, [[1.0, -1.0, 0.0]])
    # Γ = 2, sorted scores (-1, 0, 1): a = 1: (-1 + 2·1) / 5 = 0.2; a = 2: (-1 + 0 + 2) / 4
    # = 0.25 (the maximum), variance (1 + 0 + 2·1) / 4 − 0.25² = 0.6875
    t, e, v = _separable(ms, 2.0)
    assert (t, e, v) == pytest.approx((1.0, 0.25, 0.6875))
    r = senmv(np.array([[3.0, 1.0, 2.0]]), 2.0, trim=np.inf)
    assert r.deviate == pytest.approx(0.75 / np.sqrt(0.6875))
    assert r.pval == pytest.approx(stats.norm.sf(0.75 / np.sqrt(0.6875)))


def test_permutational_t_statistic_is_mean_difference():
    """senmv's documentation: with trim = Inf and TonT the statistic is the mean over
    matched sets of treated minus mean-control response (mercury example's identity)."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 3)) + np.array([0.5, 0, 0])
    y[::5, 2] = np.nan  # some sets with one control
    r = senmv(y, 3.0, trim=np.inf, TonT=True)
    expected = np.mean(y[:, 0] - np.nanmean(y[:, 1:], axis=1))
    assert r.statistic == pytest.approx(expected)


def test_gamma_one_is_the_randomization_test():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 4))
    ms = mscores(y)
    t, e, v = _separable(ms, 1.0)
    assert e == pytest.approx(ms.mean(axis=1).sum())
    assert v == pytest.approx(((ms**2).mean(axis=1) - ms.mean(axis=1) ** 2).sum())


@pytest.mark.parametrize("gamma", [1.5, 3.0])
def test_separable_max_is_max_over_all_binary_u(gamma):
    """The separable bound's per-set expectation is the maximum over every unobserved
    covariate u ∈ {0,1}^m (Rosenbaum's model; the extremes are binary), not only the
    sorted thresholds it searches."""
    rng = np.random.default_rng(2)
    ms = mscores(rng.normal(size=(6, 5)))
    for row in ms:
        best = -np.inf
        for u in itertools.product([0, 1], repeat=row.size):
            if len(set(u)) == 1:
                continue
            w = gamma ** np.array(u)
            best = max(best, float(w @ row / w.sum()))
        _, e, _ = _separable(row[None, :], gamma)
        assert e == pytest.approx(best)


def test_scale_invariance_and_monotonicity():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(200, 4)) + np.array([0.6, 0, 0, 0])
    a, b = senmv(y, 2.0), senmv(10 * y + 3, 2.0)
    assert a.deviate == pytest.approx(b.deviate)
    ps = [senmv(y, g).pval for g in (1.0, 1.5, 2.0, 3.0)]
    assert all(np.diff(ps) > 0)
    g = gamma_breakdown(y, 0.05)
    assert g > 1
    assert senmv(y, g).pval == pytest.approx(0.05, abs=1e-8)
    # no effect: significance is not reached even at Γ = 1
    assert gamma_breakdown(rng.normal(size=(200, 4)) - np.array([0.3, 0, 0, 0])) == 1.0


def test_matched_sets_matrix():
    df = pd.DataFrame({
        "match_id": [1, 1, 1, 2, 2, 3, 3, 3, 3],
        "role": ["comparison", "treated", "comparison", "treated", "comparison",
                 "comparison", "comparison", "treated", "comparison"],
        "y": [1.0, 5.0, 2.0, 4.0, np.nan, 0.0, 1.0, 3.0, 2.0],
    })
    m = matched_sets_matrix(df, outcome="y")
    # set 2 has no control with an outcome: dropped
    np.testing.assert_allclose(m[0], [5.0, 1.0, 2.0, np.nan])
    np.testing.assert_allclose(m[1], [3.0, 0.0, 1.0, 2.0])
    assert m.shape == (2, 4)


# --- R sensitivitymv 1.4.3 on data printed in published sources ---------------------------

REF = json.loads((Path(__file__).parent / "fixtures" / "senmv_reference.json").read_text())


def _matrix(rows) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)


DATA = {
    # Morton et al. (1982): exposed-minus-control blood lead, 33 pairs (senmv's vector input)
    "lead": np.array(REF["lead_treated"], float) - np.array(REF["lead_control"], float),
    "sets": _matrix(REF["sets"]),  # 3 sets with two controls, 3 pairs (NaN-padded)
}


def _kwargs(args: dict) -> tuple[float, dict]:
    """R's senmv arguments as ours (``lambda`` is ``lam``, ``Inf`` is written as a string)."""
    args = dict(args)
    gamma = float(args.pop("gamma", 1.0))
    kw = {"lam" if k == "lambda" else k: (np.inf if v == "Inf" else v) for k, v in args.items()}
    return gamma, kw


def test_reference_data_are_the_printed_ones():
    # the lead table: 33 pairs; its Wilcoxon signed-rank statistic (zero differences dropped,
    # average ranks for ties) is V = 499, as printed for these data with R's wilcox.exact in
    # the Wharton Stat 921 course notes on Rosenbaum (2002, sections 4.3-4.5)
    assert len(REF["lead_treated"]) == len(REF["lead_control"]) == 33
    d = DATA["lead"][DATA["lead"] != 0]
    assert stats.rankdata(np.abs(d))[d > 0].sum() == 499
    assert np.isnan(DATA["sets"][3:, 2]).all() and not np.isnan(DATA["sets"][:3]).any()
    assert "sensitivitymv 1.4.3" in REF["computed_with"]


@pytest.mark.parametrize("case", REF["senmv"],
                         ids=[f"{c['data']}-{c['args']}" for c in REF["senmv"]])
def test_senmv_matches_r_sensitivitymv(case):
    gamma, kw = _kwargs(case["args"])
    r = senmv(DATA[case["data"]], gamma, **kw)
    for field in ("pval", "deviate", "statistic", "expectation", "variance"):
        # R's values are printed to 17 significant digits; sums of ~100 terms agree to
        # rounding (an expectation of exactly zero comes out as ±1e-17)
        assert getattr(r, field) == pytest.approx(case[field], rel=1e-9, abs=1e-12), field


def test_mscores_match_r_mscorev():
    np.testing.assert_allclose(mscores(DATA["sets"]), _matrix(REF["mscorev_sets"]),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mscores(DATA["sets"], trim=1), _matrix(REF["mscorev_sets_trim1"]),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", REF["sensitivity_value"],
                         ids=[f"{c['data']}-{c['args']}" for c in REF["sensitivity_value"]])
def test_sensitivity_value_matches_r(case):
    """The largest Γ still significant at α (R: uniroot on senmv's P-value bound)."""
    _, kw = _kwargs(case["args"])
    g = gamma_breakdown(DATA[case["data"]], case["alpha"], **kw)
    assert g == pytest.approx(case["gamma"], rel=1e-8)
    below, above = (senmv(DATA[case["data"]], g * f, **kw).pval for f in (1 - 1e-6, 1 + 1e-6))
    assert below <= case["alpha"] < above


def test_sets_bound_steps_across_alpha():
    """In the matched sets the bound jumps across 0.05 where a set's maximising assignment
    changes (at Γ = 2.625 the third set's maximum moves from one to two of its sorted
    scores at weight 1), and the sensitivity value is that step, in R and here."""
    lo, hi = senmv(DATA["sets"], 2.625 - 1e-7), senmv(DATA["sets"], 2.625 + 1e-7)
    assert lo.pval < 0.05 < hi.pval
    assert hi.variance - lo.variance > 0.02
    assert lo.expectation == pytest.approx(hi.expectation, abs=1e-6)


def test_named_methods_as_r():
    y = DATA["sets"]
    for name, (inner, trim, lam, tont) in METHODS.items():
        assert senmv(y, 1.5, method=name) == senmv(y, 1.5, inner=inner, trim=trim, lam=lam,
                                                    TonT=tont)
    # the named method overrides stated settings, as in R
    assert senmv(y, 2.0, method="h", trim=1.0) == senmv(y, 2.0)
    with pytest.raises(ValueError, match="method must be one of"):
        senmv(y, 2.0, method="w")
    with pytest.raises(ValueError, match="alpha"):
        gamma_breakdown(y, 0.6)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 4.25, 6.0])
def test_pairs_with_signed_rank_scores_give_the_signed_rank_bound(gamma):
    """separable1v's documentation: with ranks as scores it is the sensitivity analysis of a
    rank test. For pairs scored ±(rank of |d|)/2 the separable bound is Rosenbaum's (2002,
    §4.3.3) bound for Wilcoxon's signed-rank statistic T: expectation p⁺·Σq and variance
    p⁺(1 − p⁺)·Σq² with p⁺ = Γ/(1 + Γ), on the lead pairs (T = 499)."""
    d = DATA["lead"][DATA["lead"] != 0]
    q = stats.rankdata(np.abs(d))
    scores = np.column_stack([np.sign(d) * q / 2, -np.sign(d) * q / 2])
    t, e, v = _separable(scores, gamma)
    p = gamma / (1 + gamma)
    big_t = q[d > 0].sum()
    assert big_t == 499
    # T − E and V of the signed-rank statistic (the scores shift T and E by Σq/2 alike)
    assert t - e == pytest.approx(big_t - p * q.sum(), rel=1e-12)
    assert v == pytest.approx(p * (1 - p) * (q**2).sum(), rel=1e-12)
