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
    from pipeline.analysis.planning import DesignEffects

    one = DesignEffects(1.0, 1.0)
    # residual variance (1 - 0.36) * 100 = 64; 400 visited, 1,200 comparisons, no schools:
    # SE = sqrt(64 * (1/400 + 1/1200)) = sqrt(0.21333) = 0.46188
    vc = VarianceComponents(100.0, 0.36, 0.05, 0.0, 1000, (1, 6))
    r = mde(vc, 400, 3, n_districts=5, design_effects=one)
    assert r["std_error"] == pytest.approx(math.sqrt(64 * (1 / 400 + 1 / 1200)))
    df = 1600 - 5 - 4 - 1
    assert r["mde"] == pytest.approx(multiplier(0.05, 0.8, df) * r["std_error"])
    # with 20 schools: DE_t = 1 + 19 * 0.05 = 1.95, DE_c = 1 + 59 * 0.05 = 3.95
    r = mde(vc, 400, 3, n_districts=5, n_schools=20, design_effects=one)
    assert r["design_effect_treated"] == pytest.approx(1.95)
    assert r["std_error"] == pytest.approx(math.sqrt(64 * (1.95 / 400 + 3.95 / 1200)))
    # power at the MDE is the requested power (normal approximation)
    assert power_at(r["mde"], r["std_error"]) == pytest.approx(0.8, abs=0.002)


def test_mde_falls_with_size_and_table_shape():
    vc = VarianceComponents(100.0, 0.3, 0.02, 0.01, 1000, (1, 6))
    from pipeline.analysis.planning import DesignEffects

    one = DesignEffects(1.0, 2.0)  # fixed design effects: the MDE falls with the numbers
    t = mde_table(vc, [200, 800], [1, 3], [4, 8], n_schools_per_district=3, design_effects=one)
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
    import pandas as pd

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
    t = plan.main(["--panel", str(path), "--n-treated", "100", "400", "--out", str(out),
                   "--out-dir", str(tmp_path / "planning")])
    assert out.exists() and (t["mde"] > 0).all()
    assert "variance components" in capsys.readouterr().out
    big = t[t["n_treated"] == 400]["mde"].max()
    assert big < t[t["n_treated"] == 100]["mde"].min()
    # the power curves: power at each row's MDE is the requested 80%
    curves = pd.read_csv(tmp_path / "planning" / "power_curves.csv")
    assert (tmp_path / "planning" / "power_curves.png").stat().st_size > 1000
    for r in t.itertuples():
        c = curves[(curves["n_treated"] == r.n_treated) & (curves["ratio"] == r.ratio)
                   & (curves["n_districts"] == r.n_districts)]
        assert np.interp(r.mde, c["effect"], c["power"]) == pytest.approx(0.8, abs=0.02)
        assert c["power"].iloc[0] == pytest.approx(0.05)
    # the same through the leap console script, with given design effects
    from pipeline import cli

    rc = cli.main(["plan", "--panel", str(path), "--n-treated", "100", "--ratios", "2",
                   "--districts", "3", "--design-effects", "1", "1",
                   "--out-dir", str(tmp_path / "leap")])
    assert rc == 0
    one = pd.read_csv(tmp_path / "leap" / "mde.csv")
    se = math.sqrt(vc.residual_variance * (1 / 100 + 1 / 200))
    assert one["std_error"].iloc[0] == pytest.approx(se, rel=1e-4)


def _reused_comparisons(seed=0, n_c=3000, sd_student=6.0, sd_month=3.0):
    """Stacked matched data with a known comparison design effect.

    One stack per district; half the comparison students serve three matched sets, half
    one (so their total weights are 3 and 1: Kish's design effect of the comparison mean
    over distinct students is ``n Σ W² / (Σ W)²`` = 1.25); every student is seen at event
    times 0-6 (full windows, no censoring); attendance is a persistent student level plus
    monthly noise, the recorded months noisy measures of the level; the two arms alike in
    it (the treated indicator is then uncorrelated with the covariates, as after matching).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_dist = 4
    c_dist = np.arange(n_c) % n_dist
    mult = np.where(np.arange(n_c) % 2 == 0, 3, 1)
    sets = []
    for d in range(n_dist):
        units = np.repeat(np.flatnonzero(c_dist == d), mult[c_dist == d])
        units = units[rng.permutation(units.size)]
        for chunk in units[: units.size // 3 * 3].reshape(-1, 3):
            if len(set(chunk)) == 3:  # a student serves a matched set once
                sets.append((d, chunk))
    n_t = len(sets)
    level_c = rng.normal(90, sd_student, n_c)
    level_t = rng.normal(90, sd_student, n_t)  # balanced, as matching makes them
    lags_c = level_c[:, None] + rng.normal(0, 3, (n_c, 3))
    lags_t = level_t[:, None] + rng.normal(0, 3, (n_t, 3))
    y_c = level_c[:, None] + rng.normal(0, sd_month, (n_c, 7))
    y_t = level_t[:, None] + 2.0 + rng.normal(0, sd_month, (n_t, 7))
    rows = []
    for mid, (d, chunk) in enumerate(sets):
        members = [(f"t{mid}", "treated", y_t[mid], lags_t[mid])]
        members += [(f"c{j}", "comparison", y_c[j], lags_c[j]) for j in chunk]
        for key, role, y, lags in members:
            for k in range(7):
                rows.append((mid, key, role, k, y[k], f"d{d}", *lags))
    out = pd.DataFrame(rows, columns=["match_id", "student_key", "role", "stack_event_time",
                                      "attendance_rate", "district_code", "rate_lag1",
                                      "rate_lag2", "rate_lag3"])
    out["prior_year_rate"] = np.nan
    out["weight"] = 1.0
    out["ipcw"] = 1.0
    out["censored"] = False
    w = pd.Series(mult, index=[f"c{j}" for j in range(n_c)])
    used = out.loc[(out["role"] == "comparison") & (out["stack_event_time"] == 0), "student_key"]
    counts = used.value_counts()
    kish = len(counts) * float((counts**2).sum()) / float(counts.sum()) ** 2
    return out, kish, w


def test_decomposition_reproduces_the_design_and_a_known_design_effect():
    from pipeline.analysis.planning import decompose_std_error
    from pipeline.did.ancova import matched_ancova

    data, kish, _ = _reused_comparisons()
    assert kish == pytest.approx(1.25, abs=0.02)
    dec = decompose_std_error(data)
    fit = matched_ancova(data, yname="attendance_rate", window=(0, 6)).average((1, 6))
    # the split is exact up to the CR1 small-sample factors (a fraction of a percent)
    assert dec.std_error == pytest.approx(fit.std_error, rel=0.01)
    assert dec.std_error**2 == pytest.approx(dec.var_treated + dec.var_comparison, rel=1e-9)
    de = dec.design_effects
    # full windows, one set per visited student: the visited mean is a simple random
    # sample's (realized sums of squares: ~3% noise at these sizes)
    assert de.treated == pytest.approx(1.0, abs=0.1)
    assert de.comparison == pytest.approx(kish, rel=0.12)
    assert dec.n_comparison == 3000 and dec.n_treated == len(data["match_id"].unique())


def test_decomposition_by_cluster_reproduces_the_clustered_design():
    """Summed within clusters, the influences give the design's cluster-robust SE; with
    each student its own cluster they are the student-level split exactly."""
    from pipeline.analysis.planning import decompose_std_error
    from pipeline.did.ancova import matched_ancova

    data, _, _ = _reused_comparisons(seed=3)
    codes = data["student_key"].str[1:].astype(int)
    data["school"] = data["role"].str[0] + (codes % 40).astype(str)  # 40 + 40 schools
    data["own"] = data["student_key"]
    by_student = decompose_std_error(data)
    assert decompose_std_error(data, cluster="own") == by_student
    dec = decompose_std_error(data, cluster="school")
    fit = matched_ancova(data, yname="attendance_rate", window=(0, 6), cluster="school")
    assert dec.std_error == pytest.approx(fit.average((1, 6)).std_error, rel=0.03)
    # arms never share a school here, so the arms' parts add up to the total
    assert dec.std_error**2 == pytest.approx(dec.var_treated + dec.var_comparison, rel=1e-9)
    assert (dec.n_treated, dec.n_comparison) == (by_student.n_treated, by_student.n_comparison)
    # the planner's design effects reproduce the design's SE with any residual variance
    vc = VarianceComponents(80.0, 0.25, 0.0, 0.0, 1000, (1, 6))
    r = mde(vc, dec.n_treated, dec.n_comparison / dec.n_treated, 4,
            design_effects=dec.design_effects_for(vc))
    assert r["std_error"] == pytest.approx(dec.std_error, rel=1e-12)
    # also when the arms share schools (the cross-arm covariance is then shared out)
    data["shared"] = (codes % 40).astype(str)
    both = decompose_std_error(data, cluster="shared")
    assert both.std_error**2 != pytest.approx(both.var_treated + both.var_comparison, rel=1e-3)
    r = mde(vc, both.n_treated, both.n_comparison / both.n_treated, 4,
            design_effects=both.design_effects_for(vc))
    assert r["std_error"] == pytest.approx(both.std_error, rel=1e-12)
    # or another standard error (the design's reported one, with its small-sample factor)
    r = mde(vc, both.n_treated, both.n_comparison / both.n_treated, 4,
            design_effects=both.design_effects_for(vc, 1.1 * both.std_error))
    assert r["std_error"] == pytest.approx(1.1 * both.std_error, rel=1e-12)


def test_comparison_design_effect_trend():
    from pipeline.analysis.planning import DesignEffects, fit_design_effects

    de = fit_design_effects([500, 1000, 2000], [0.9, 1.0, 1.1], [1.4, 1.7, 2.0])
    assert de.treated == pytest.approx(1.0)
    assert de.reference_n_comparison == pytest.approx(1000.0)
    # exactly on the line: 0.3 per doubling; held within the fitted sizes
    assert de.comparison_at(1414.2) == pytest.approx(1.85, abs=1e-4)
    assert de.comparison_at(4000) == pytest.approx(2.0)
    assert de.comparison_at(250) == pytest.approx(1.4)
    assert de.n_comparison_range == (500.0, 2000.0)
    steep = DesignEffects(1.0, 1.0, comparison_growth=2.0, reference_n_comparison=1000.0)
    assert steep.comparison_at(10.0) == pytest.approx(0.25)  # the floor (no range given)
    vc = VarianceComponents(100.0, 0.36, 0.05, 0.0, 1000, (1, 6))
    r = mde(vc, 500, 4.0, design_effects=de)
    assert r["design_effect_comparison"] == pytest.approx(2.0)
    assert DesignEffects(1.0, 2.0).comparison_at(123.0) == 2.0
    with pytest.raises(ValueError, match="reference"):
        DesignEffects(1.0, 2.0, comparison_growth=0.1)
    with pytest.raises(ValueError, match="two or more sizes"):
        fit_design_effects([500, 500], [1, 1], [1, 2])


def test_mde_uses_the_design_effects():
    from pipeline.analysis.planning import DesignEffects

    vc = VarianceComponents(100.0, 0.36, 0.05, 0.0, 1000, (1, 6))
    des = DesignEffects(treated=0.8, comparison=2.0)
    r = mde(vc, 400, 1.5, n_districts=5, design_effects=des)
    assert r["n_comparison"] == 600
    assert r["std_error"] == pytest.approx(math.sqrt(64 * (0.8 / 400 + 2.0 / 600)))
    # school design effects multiply the arms' design effects
    r = mde(vc, 400, 1.5, n_districts=5, n_schools=20, design_effects=des)
    assert r["design_effect_treated"] == pytest.approx(0.8 * 1.95)
    assert r["design_effect_comparison"] == pytest.approx(2.0 * (1 + 29 * 0.05))
    with pytest.raises(ValueError, match="positive"):
        DesignEffects(0.0, 1.0)


def test_pseudo_visits_censor_at_the_students_own_visit():
    from pipeline.analysis.planning import pseudo_visits

    panel = _toy_panel(seed=1)
    d = pseudo_visits(panel, (1, 6), seed=0, neighbours=10)
    later = d[d["first_visit_school_month"].notna()]
    # students visited later serve until their visit, as in the design
    assert len(later) > 0 and (later["school_month"] < 10).all()
    rates = panel.set_index(["student_key", "school_month"])["attendance_rate"]
    for r in later.head(20).itertuples():
        months = [m for m in range(r.school_month + 1, r.school_month + 7) if m < 10]
        assert r.n_months == len(months)
        assert r.y == pytest.approx(np.mean([rates[(r.student_key, m)] for m in months]))
    never = d[d["first_visit_school_month"].isna()]
    assert (never["n_months"] == np.minimum(6, 23 - never["school_month"])).all()



def test_decomposition_with_effect_strata_reproduces_the_stratified_design():
    """With effect strata the split follows the design's interacted fit: its SE is the
    stratified design's (to the CR1 factors), not the unstratified one's, where the
    strata's effects differ and clusters lie within strata."""
    from pipeline.analysis.planning import decompose_std_error
    from pipeline.did.ancova import matched_ancova

    data, _, _ = _reused_comparisons(seed=5)
    band = data.groupby("match_id")["match_id"].transform("first") % 3
    data["grade_band"] = band.map({0: "PK-5", 1: "6-8", 2: "9-12"})
    post = (data["role"] == "treated") & (data["stack_event_time"] >= 1)
    data.loc[post, "attendance_rate"] += 6.0 * band[post]  # effects 0, 6, 12 by band
    data["school"] = data["grade_band"] + (data["match_id"] % 10).astype(str)
    for strata in (None, "grade_band"):
        dec = decompose_std_error(data, cluster="school", effect_strata=strata)
        fit = matched_ancova(data, yname="attendance_rate", window=(0, 6), cluster="school",
                             effect_strata=strata).average((1, 6))  # fmt: skip
        assert dec.std_error == pytest.approx(fit.std_error, rel=0.03)
        if strata is None:
            plain = dec.std_error
    assert dec.std_error < plain / 2  # the bands' differing effects were counted as noise
