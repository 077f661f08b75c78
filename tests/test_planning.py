"""The planner's closed forms (pipeline/analysis/planning.py): Bloom's multiplier, the MDE
arithmetic on a hand-computed case, power at the MDE, and the ICC estimator on data with a
known intra-class correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.analysis.planning import (
    VarianceComponents,
    _icc,
    mde,
    mde_table,
    multiplier,
    power_at,
)


def test_bloom_multiplier():
    # Bloom (1995): 2.80 for a two-sided 5% test at 80% power with many df; 2.49 one-sided
    assert multiplier(0.05, 0.8) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    # t tables: t(0.975, 20) = 2.086, t(0.80, 20) = 0.860
    assert multiplier(0.05, 0.8, df=20) == pytest.approx(2.086 + 0.860, abs=1e-3)


def test_mde_hand_computed():
    # residual variance (1 - 0.36) * 100 = 64; 400 visited, 1,200 comparisons, no schools:
    # SE = sqrt(64 * (1/400 + 1/1200)) = sqrt(0.21333) = 0.46188
    vc = VarianceComponents(100.0, 0.36, 0.05, 0.0, 1000, (1, 6))
    r = mde(vc, 400, 3, n_districts=5)
    assert r["std_error"] == pytest.approx(math.sqrt(64 * (1 / 400 + 1 / 1200)))
    df = 1600 - 5 - 4 - 1
    assert r["mde"] == pytest.approx(multiplier(0.05, 0.8, df) * r["std_error"])
    # with 20 schools: DE_t = 1 + 19 * 0.05 = 1.95, DE_c = 1 + 59 * 0.05 = 3.95
    r = mde(vc, 400, 3, n_districts=5, n_schools=20)
    assert r["design_effect"] == pytest.approx(1.95)
    assert r["std_error"] == pytest.approx(math.sqrt(64 * (1.95 / 400 + 3.95 / 1200)))
    # power at the MDE is the requested power (normal approximation)
    assert power_at(r["mde"], r["std_error"]) == pytest.approx(0.8, abs=0.002)


def test_mde_falls_with_size_and_table_shape():
    vc = VarianceComponents(100.0, 0.3, 0.02, 0.01, 1000, (1, 6))
    t = mde_table(vc, [200, 800], [1, 3], [4, 8], n_schools_per_district=3)
    assert len(t) == 8
    small = t[(t["n_treated"] == 200) & (t["ratio"] == 1)]["mde"].min()
    large = t[(t["n_treated"] == 800) & (t["ratio"] == 3)]["mde"].max()
    assert large < small
    with pytest.raises(ValueError, match="n_treated"):
        mde(vc, 1, 3)


def test_icc_recovers_a_known_value():
    rng = np.random.default_rng(3)
    k, m, icc = 400, 25, 0.2
    groups = np.repeat(np.arange(k), m)
    y = rng.normal(0, math.sqrt(icc), k)[groups] + rng.normal(0, math.sqrt(1 - icc), k * m)
    assert _icc(y, groups) == pytest.approx(icc, abs=0.03)
    assert _icc(rng.normal(size=1000), np.repeat(np.arange(100), 10)) < 0.03
