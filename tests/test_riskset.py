"""Risk-set matching on small panels built to the schema of docs/interfaces.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.matching.riskset import (
    MATCH_COLUMNS,
    PropensityCache,
    RiskSetMatcher,
    RiskSetSpec,
    riskset_match,
    stack_panels,
)

M0, M1 = 200, 229  # September 2020 … June 2023


def _rows(
    key,
    months,
    *,
    district="D1",
    leap=True,
    grade="3",
    rate=90.0,
    fv=None,
    sex="F",
    race="WHITE",
    frl=False,
    ell=False,
    swd=False,
    prior=None,
):
    """Panel rows of one student; lags computed from the rows given."""
    months = list(months)
    rates = {m: (rate(m) if callable(rate) else rate) for m in months}
    out = []
    for m in months:
        band = "6-12" if grade not in ("PK", "K") and int(grade) >= 6 else "PK-5"
        out.append(
            {
                "student_key": key,
                "month": f"m{m}",
                "school_month": m,
                "school_year": f"y{m // 10}",
                "district_code": district,
                "school_code": district + "S",
                "leap_district": leap,
                "grade": grade,
                "grade_band": band,
                "sex": sex,
                "race_ethnicity": race,
                "frl": frl,
                "ell": ell,
                "swd": swd,
                "days_membership": 20,
                "days_present": int(round(rates[m] / 5)),
                "attendance_rate": rates[m],
                "chronic": rates[m] <= 90,
                "first_visit_school_month": fv,
                "event_time": None if fv is None else m - fv,
                "prior_year_rate": prior,
                "prior_year_tier": None if prior is None else "at_risk",
                "rate_lag1": rates.get(m - 1),
                "rate_lag2": rates.get(m - 2),
                "rate_lag3": rates.get(m - 3),
            }
        )
    return out


def _panel(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["first_visit_school_month"] = df["first_visit_school_month"].astype("Int32")
    df["event_time"] = df["event_time"].astype("Int32")
    for c in ("prior_year_rate", "rate_lag1", "rate_lag2", "rate_lag3"):
        df[c] = df[c].astype("Float64")
    for c in (
        "student_key",
        "district_code",
        "grade",
        "grade_band",
        "sex",
        "race_ethnicity",
        "prior_year_tier",
    ):
        df[c] = df[c].astype("string")
    for c in ("leap_district", "frl", "ell", "swd", "chronic"):
        df[c] = df[c].astype("boolean")
    return df


ALL = range(M0, M1 + 1)


@pytest.fixture
def tiny():
    """Treated T first reached at m = 205, and one candidate per eligibility rule."""
    rows = []
    rows += _rows("T", ALL, fv=205, rate=70.0)
    rows += _rows("C_ok", ALL, rate=72.0)
    rows += _rows("C_before", ALL, fv=203, rate=71.0)  # reached before m
    rows += _rows("C_same", ALL, fv=205, rate=71.5, grade="4")  # reached in m: treated itself
    rows += _rows("C_later", ALL, fv=208, rate=69.0)  # reached later: censored
    rows += _rows("C_otherdist", ALL, district="D2", rate=70.5)  # other LEAP district
    rows += _rows("C_gap", [m for m in ALL if m != 203], rate=70.2)  # not in membership m-2
    rows += _rows("C_band", ALL, grade="7", rate=70.1)  # other grade band
    rows += _rows("C_nonleap", ALL, district="D9", leap=False, rate=70.3)
    rows += _rows("C_start", range(204, M1 + 1), rate=70.0)  # enters at m-1
    return _panel(rows)


def _comparisons(res, treated="T"):
    m = res.matches
    mid = m.loc[(m["role"] == "treated") & (m["student_key"] == treated), "match_id"].iloc[0]
    return set(m.loc[(m["match_id"] == mid) & (m["role"] == "comparison"), "student_key"])


def test_risk_set_same_district(tiny):
    # with replacement every treated student takes its whole risk set
    res = riskset_match(tiny, RiskSetSpec(ratio=10, caliper=None, replace=True))
    assert _comparisons(res) == {"C_ok", "C_later"}
    assert _comparisons(res, "C_same") == {"C_ok", "C_later"}
    # without replacement the two treated students of the stratum share it out
    res = riskset_match(tiny, RiskSetSpec(ratio=10, caliper=None, replace=False))
    a, b = _comparisons(res), _comparisons(res, "C_same")
    assert a | b == {"C_ok", "C_later"} and not a & b


def test_risk_set_pools(tiny):
    prog = riskset_match(
        tiny, RiskSetSpec(pool="program_districts", ratio=10, caliper=None, replace=True)
    )
    assert _comparisons(prog) == {"C_ok", "C_later", "C_otherdist"}
    non = riskset_match(
        tiny, RiskSetSpec(pool="non_program_districts", ratio=10, caliper=None, replace=True)
    )
    assert _comparisons(non) == {"C_nonleap"}
    with pytest.raises(ValueError, match="district_code"):
        RiskSetSpec(pool="program_districts", exact=("district_code",))


def test_stacked_output_censoring_and_event_time(tiny):
    res = riskset_match(tiny, RiskSetSpec(ratio=10, caliper=None, window=(-3, 6), replace=True))
    st = stack_panels(tiny, res.matches, window=(-3, 6))
    assert list(st.columns[-len(MATCH_COLUMNS) :]) == MATCH_COLUMNS
    t_mid = st.loc[(st["student_key"] == "T") & (st["role"] == "treated"), "match_id"].iloc[0]
    one = st[st["match_id"] == t_mid]
    assert one["stack_event_time"].between(-3, 6).all()
    np.testing.assert_array_equal(one["stack_event_time"], one["school_month"] - 205)
    later = one[one["student_key"] == "C_later"]
    np.testing.assert_array_equal(later["censored"], later["school_month"] >= 208)
    assert not one.loc[one["role"] == "treated", "censored"].any()
    assert not one.loc[one["student_key"] == "C_ok", "censored"].any()
    assert len(one[one["student_key"] == "T"]) == 10


def test_weights_follow_matchit_formula():
    # stratum A (m=205, D1): T1 with three candidates; stratum B (m=215, D2): T2 with one.
    rows = _rows("T1", ALL, fv=205, rate=70.0)
    rows += [r for k in ("a", "b", "c") for r in _rows(f"A{k}", ALL, rate=71.0)]
    rows += _rows("T2", ALL, fv=215, district="D2", rate=60.0)
    rows += _rows("B1", ALL, district="D2", rate=61.0)
    res = riskset_match(_panel(rows), RiskSetSpec(ratio=3, caliper=None))
    m = res.matches.set_index("student_key")
    # raw 1/3, 1/3, 1/3 and 1; scaled by (4 comparison units)/(sum of raw = 2)
    assert m.loc[["Aa", "Ab", "Ac"], "weight"].tolist() == pytest.approx([2 / 3] * 3)
    assert m.loc["B1", "weight"] == pytest.approx(2.0)
    assert m.loc[["T1", "T2"], "weight"].tolist() == [1.0, 1.0]
    assert m.loc[m["role"] == "comparison", "weight"].sum() == pytest.approx(4.0)


def test_weights_with_replacement_split_across_rows():
    # two treated students of one stratum, one candidate: both take it (ratio 1)
    rows = _rows("T1", ALL, fv=205, rate=70.0) + _rows("T2", ALL, fv=205, rate=72.0)
    rows += _rows("C", ALL, rate=71.0)
    res = riskset_match(_panel(rows), RiskSetSpec(ratio=1, caliper=None, replace=True))
    comp = res.matches[res.matches["role"] == "comparison"]
    assert len(comp) == 2 and set(comp["student_key"]) == {"C"}
    # MatchIt: raw weight 1 + 1 = 2 for one comparison unit, scaled to 1; split by row
    assert comp["weight"].tolist() == pytest.approx([0.5, 0.5])
    without = riskset_match(_panel(rows), RiskSetSpec(ratio=1, caliper=None, replace=False))
    assert (without.matches["role"] == "comparison").sum() == 1
    assert set(without.treated["status"]) == {"matched", "no_match_in_caliper"}


def _random_panel(seed=0, n=1500, n_districts=3):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(70, 99)
        dist = f"D{rng.integers(n_districts)}"
        grade = str(rng.integers(1, 11))
        start = M0 if rng.random() < 0.9 else int(rng.integers(M0, M0 + 15))
        noise = rng.normal(0, 3, M1 + 1 - M0)

        def rate(m, base=base, noise=noise):
            return float(np.clip(base + noise[m - M0], 0, 100))

        fv = None
        if base < 88 and rng.random() < 0.25:
            fv = int(rng.integers(206, 226))
        rows += _rows(
            f"S{i:05d}",
            range(start, M1 + 1),
            district=dist,
            grade=grade,
            rate=rate,
            fv=fv,
            sex=str(rng.choice(["F", "M"])),
            race=str(rng.choice(["BLACK", "HISPANIC", "WHITE"])),
            frl=bool(rng.random() < 0.5),
            ell=bool(rng.random() < 0.1),
            swd=bool(rng.random() < 0.15),
            prior=None if rng.random() < 0.2 else float(base),
        )
    return _panel(rows)


@pytest.fixture(scope="module")
def rpanel():
    return _random_panel()


def test_random_panel_properties(rpanel):
    spec = RiskSetSpec(ratio=3, caliper=0.2, replace=False)
    res = riskset_match(rpanel, spec)
    m = res.matches
    idx = rpanel.set_index(["student_key", "school_month"])
    treated = m[m["role"] == "treated"]
    comp = m[m["role"] == "comparison"]
    assert treated["match_id"].is_unique
    # every comparison is in the risk set of its stack
    look = idx.loc[list(zip(comp["student_key"], comp["event_school_month"], strict=True))]
    assert look[["rate_lag1", "rate_lag2", "rate_lag3"]].notna().all().all()
    fv = look["first_visit_school_month"].astype("Float64")
    assert (fv.isna() | (fv.to_numpy() > comp["event_school_month"].to_numpy())).all()
    tl = treated.set_index("match_id")
    tt = idx.loc[list(zip(tl["student_key"], tl["event_school_month"], strict=True))]
    same = comp["match_id"].map(pd.Series(tt["district_code"].to_numpy(), index=tl.index))
    assert (same.to_numpy() == look["district_code"].to_numpy()).all()
    band = comp["match_id"].map(pd.Series(tt["grade_band"].to_numpy(), index=tl.index))
    assert (band.to_numpy() == look["grade_band"].to_numpy()).all()
    # without replacement inside a stratum; within the caliper
    assert not comp.duplicated(["stack_id", "student_key"]).any()
    dt = comp["match_id"].map(tl["distance"])
    assert (np.abs(comp["distance"] - dt) <= res.caliper + 1e-12).all()
    # counts add up
    summ = res.summary_table()
    total = summ[summ["district_code"] == "ALL"].iloc[0]
    n_ever = rpanel.loc[rpanel["first_visit_school_month"].notna(), "student_key"].nunique()
    assert total["n_treated"] == n_ever == len(res.treated)
    assert total["n_matched"] == len(treated)
    # balance improves on the attendance history
    b = res.balance.set_index("covariate")
    for c in ("logit_propensity_score", "rate_lag1", "rate_lag2", "rate_lag3"):
        assert abs(b.loc[c, "smd_after"]) < abs(b.loc[c, "smd_before"])
    assert abs(b.loc["rate_lag1", "smd_after"]) < 0.25
    # the tier's "missing" level, when it is the prior-year missing indicator's students,
    # is listed once (as prior_year_missing), not twice
    assert "prior_year_missing" in b.index and not b.index.duplicated().any()
    if rpanel["prior_year_rate"].isna().any():
        assert "prior_year_tier=missing" not in b.index


def test_extra_exact_column(rpanel):
    res = riskset_match(rpanel, RiskSetSpec(exact=("district_code", "ell"), caliper=None))
    m = res.matches
    look = rpanel.set_index(["student_key", "school_month"])["ell"]
    ell = look.loc[list(zip(m["student_key"], m["event_school_month"], strict=True))].to_numpy()
    m = m.assign(ell=ell)
    assert (m.groupby("match_id")["ell"].nunique() == 1).all()
    assert m["stack_id"].str.count("[|]").eq(3).all()  # district|ell|month|band


def test_deterministic_and_row_order_free(rpanel):
    spec = RiskSetSpec(ratio=2, caliper=0.2, seed=5, ps_max_controls=3000)
    a = riskset_match(rpanel, spec)
    shuffled = rpanel.sample(frac=1.0, random_state=1).reset_index(drop=True)
    b = riskset_match(shuffled, spec)
    pd.testing.assert_frame_equal(a.matches, b.matches)
    pd.testing.assert_frame_equal(a.balance, b.balance)
    sa = stack_panels(rpanel, a.matches)
    sb = stack_panels(shuffled, b.matches)
    pd.testing.assert_frame_equal(sa, sb)


def test_propensity_cache_reuses_identical_fits_only(rpanel):
    cache = PropensityCache()
    for spec in (RiskSetSpec(caliper=0.2), RiskSetSpec(caliper=0.5, ratio=1)):
        fresh = riskset_match(rpanel, spec)
        cached = riskset_match(rpanel, spec, ps_cache=cache)
        pd.testing.assert_frame_equal(fresh.matches, cached.matches)
    assert cache.hits == 1  # the second spec differs only in caliper and ratio
    other = riskset_match(rpanel, RiskSetSpec(pool="program_districts"), ps_cache=cache)
    assert cache.hits == 1 and len(other.matches)  # another pool: another design, a new fit


def test_matcher_rematches_on_shared_scores_with_riskset_match_results(rpanel, monkeypatch):
    import pipeline.matching.riskset as rsm

    fits = []
    real_fit = rsm.fit_propensity
    monkeypatch.setattr(rsm, "fit_propensity", lambda X, t: fits.append(1) or real_fit(X, t))
    matcher = RiskSetMatcher(rpanel, keep=1)
    specs = [
        RiskSetSpec(),
        RiskSetSpec(caliper=0.1),
        RiskSetSpec(ratio=1),
        RiskSetSpec(ratio=5, replace=False, m_order="smallest"),
    ]
    for spec in specs:
        got = matcher.match(spec)
        pd.testing.assert_frame_equal(got.matches, riskset_match(rpanel, spec).matches)
    assert len(fits) == 1 + len(specs)  # the matcher fitted once, riskset_match each time
    fits.clear()
    other = RiskSetSpec(pool="program_districts")
    got, ref = matcher.match(other), riskset_match(rpanel, other)
    for a in ("matches", "treated", "balance"):
        pd.testing.assert_frame_equal(getattr(got, a), getattr(ref, a))
    assert got.info == ref.info and got.caliper == ref.caliper
    assert len(fits) == 2  # another pool: another model
    assert matcher.match(specs[0], balance=False).balance.empty
    assert len(fits) == 3  # keep=1 dropped the first pool's scores


def test_bad_panel_errors(tiny):
    with pytest.raises(KeyError, match="rate_lag2"):
        riskset_match(tiny.drop(columns="rate_lag2"))
    with pytest.raises(ValueError, match="duplicate"):
        riskset_match(pd.concat([tiny, tiny.iloc[:1]]))
    with pytest.raises(ValueError, match="pool"):
        RiskSetSpec(pool="everywhere")


def test_stage_writes_declared_outputs_deterministically(rpanel, tmp_path):
    from pipeline.match import run

    (tmp_path / "data/processed").mkdir(parents=True)
    rpanel.to_parquet(tmp_path / "data/processed/panel.parquet", index=False)
    params = {"seed": 3, "ratio": 2, "window": [-6, 9]}
    run(params, tmp_path)
    outs = [
        "data/processed/matched.parquet",
        "reports/tables/match_summary.csv",
        "reports/tables/balance.csv",
        "reports/figures/love_plot.png",
        "reports/figures/love_plot.svg",
    ]
    first = {o: (tmp_path / o).read_bytes() for o in outs}
    bal_csv = pd.read_csv(tmp_path / "reports/tables/balance.csv")
    assert list(bal_csv.columns[:4]) == [
        "covariate",
        "smd_before",
        "smd_after",
        "variance_ratio_after",
    ]
    st = pd.read_parquet(tmp_path / "data/processed/matched.parquet")
    assert set(rpanel.columns) <= set(st.columns)
    assert st["stack_event_time"].between(-6, 9).all()
    assert set(st["role"]) == {"treated", "comparison"}
    run(params, tmp_path)
    for o in outs:
        assert (tmp_path / o).read_bytes() == first[o], o
    with pytest.raises(ValueError, match="unknown key"):
        run({"ratoi": 2}, tmp_path)
