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


def _toy_panel(seed=0, n=1500, months=24, school_sd=3.0, noise_sd=6.0):
    """Students in 3 districts x 4 schools, persistent level + school effect + noise;
    every 10th student 'visited' at month 10 (event_time set); lags and prior year."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    school = rng.integers(0, 12, n)
    level = 90 + rng.normal(0, 5, n) + rng.normal(0, school_sd, 12)[school]
    rate = level[:, None] + rng.normal(0, noise_sd, (n, months))
    visited = np.arange(n) % 10 == 0
    rows = []
    for t in range(3, months):
        rows.append(
            pd.DataFrame(
                {
                    "student_key": [f"s{i}" for i in range(n)],
                    "school_month": t,
                    "district_code": [f"d{s // 4}" for s in school],
                    "school_code": [f"c{s}" for s in school],
                    "leap_district": True,
                    "first_visit_school_month": np.where(visited, 10.0, np.nan),
                    "attendance_rate": rate[:, t],
                    "event_time": np.where(visited, t - 10, np.nan),
                    "rate_lag1": rate[:, t - 1],
                    "rate_lag2": rate[:, t - 2],
                    "rate_lag3": rate[:, t - 3],
                    "prior_year_rate": level + rng.normal(0, 2, n),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_variance_components_on_a_toy_panel_and_the_cli(tmp_path, capsys):
    from pipeline import plan
    from pipeline.analysis.planning import variance_components

    panel = _toy_panel()
    vc = variance_components(panel)
    # the window average of 6 iid months has noise variance 36 / 6 = 6 around a level the
    # covariates predict well: R² well above zero, residual variance near 6-10
    assert 0.3 < vc.r2 < 1 and 4 < vc.residual_variance < 15
    assert 0 <= vc.icc_school < 0.5 and vc.window == (1, 6)
    path = tmp_path / "panel.parquet"
    panel.to_parquet(path)
    out = tmp_path / "plan.csv"
    t = plan.main(["--panel", str(path), "--n-treated", "100", "400", "--out", str(out)])
    assert out.exists() and (t["mde"] > 0).all()
    assert "variance components" in capsys.readouterr().out
    big = t[t["n_treated"] == 400]["mde"].max()
    assert big < t[t["n_treated"] == 100]["mde"].min()
