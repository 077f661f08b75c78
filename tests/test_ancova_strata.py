"""The matched ANCOVA with effect strata (``effect_strata``, Lin 2013's interacted form).

Two properties:

* algebra: its effect at an event time is the visited students' weighted mix of the
  strata's own effects from the dense regression with one treated column per stratum, and
  its standard error is that mix's (the mix held fixed), to rounding;
* inference: where effects differ between strata and every school serves one stratum
  (as grade bands and school levels do), school-clustered errors without strata count the
  strata's differences as noise between schools and overstate the sampling SD of the
  error against the visited students' own effect; with strata they do not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.did.ancova import LAGS, matched_ancova
from pipeline.did.fe import FixedEffects, cluster_codes, factorize, feols
from tests.test_did_ancova import _stacked

BAND_EFFECT = {"PK-5": 1.0, "6-8": 5.0, "9-12": 9.0}


def _with_bands(seed: int = 3) -> pd.DataFrame:
    """``_stacked``'s sets, each given a band with its own effect, and uneven weights."""
    d = _stacked(seed=seed, n=4000)
    rng = np.random.default_rng(seed)
    sets = d["match_id"].unique()
    band = pd.Series(rng.choice(list(BAND_EFFECT), len(sets), p=[0.5, 0.2, 0.3]), index=sets)
    d["grade_band"] = d["match_id"].map(band)
    post = (d["role"] == "treated") & (d["stack_event_time"] >= 1)
    d.loc[post, "attendance_rate"] += d.loc[post, "grade_band"].map(BAND_EFFECT) - 3.0
    d["ipcw"] = np.where(d["role"] == "comparison", rng.uniform(0.5, 2.0, len(d)), 1.0)
    return d


def test_effect_is_the_treated_mix_of_the_strata_effects():
    d = _with_bands()
    r = matched_ancova(d, yname="attendance_rate", window=(1, 1), effect_strata="grade_band")
    # the dense regression at event time 1: one treated column per band, the covariates,
    # cells district x band, weights and student clusters as matched_ancova uses them
    k1 = d[d["stack_event_time"] == 1]
    base = d[d["stack_event_time"] == 0].set_index(["match_id", "student_key"])
    b = base.loc[list(zip(k1["match_id"], k1["student_key"], strict=True))]
    lags = b[list(LAGS)].to_numpy(float)
    D = (k1["role"] == "treated").to_numpy()
    bands = sorted(BAND_EFFECT)
    Dx = np.column_stack([D & (k1["grade_band"] == s).to_numpy() for s in bands]).astype(float)
    X = np.column_stack([Dx, lags, lags**2 / 100.0])
    w = k1["ipcw"].to_numpy(float) * k1["weight"].to_numpy(float)
    cells = factorize(k1["district_code"], k1["grade_band"])[0]
    fit = feols(k1["attendance_rate"].to_numpy(float), X, FixedEffects([cells], w), weights=w,
                cluster=cluster_codes(k1, "student_key"))  # fmt: skip
    share = Dx[D].mean(axis=0)  # treated rows weigh 1
    assert r.estimate[0] == pytest.approx(share @ fit.coef[:3], abs=1e-9)
    assert r.vcov[0, 0] == pytest.approx(share @ fit.vcov[:3, :3] @ share, rel=1e-9)
    truth = share @ np.array([BAND_EFFECT[s] - 3.0 for s in bands]) + 3.0  # + _stacked's TAU
    assert abs(r.estimate[0] - truth) < 3 * np.sqrt(r.vcov[0, 0])
    assert "effect_strata" in r.info


def _schools_world(rng: np.random.Generator) -> tuple[pd.DataFrame, float]:
    """Thirty schools of one band each, no school shocks, effects by band; three
    comparison students per visited student from the same band; the visited students'
    own average effect."""
    rows, effects = [], []
    mid = 0
    for school in range(30):
        band = list(BAND_EFFECT)[school % 3]
        alpha = rng.normal(85, 6, 60)
        lag = alpha[:, None] + rng.normal(0, 3, (60, 3))
        y1 = alpha + rng.normal(0, 3, 60)
        treated = rng.random(60) < 0.15
        for i in np.flatnonzero(treated):
            effect = BAND_EFFECT[band] + rng.normal(0, 1)
            effects.append(effect)
            pool = np.flatnonzero(~treated)
            for j, role in [
                (i, "treated"),
                *[(c, "comparison") for c in rng.choice(pool, 3, replace=False)],
            ]:
                for k in (0, 1):
                    y = y1[j] + (effect if role == "treated" and k == 1 else 0.0)
                    rows.append((mid, f"{school}_{j}", role, k, y, school, band, *lag[j]))
            mid += 1
    d = pd.DataFrame(rows, columns=["match_id", "student_key", "role", "stack_event_time",
                                    "attendance_rate", "school", "grade_band", *LAGS])  # fmt: skip
    d = d.assign(district_code="1", prior_year_rate=np.nan, weight=1.0, ipcw=1.0, censored=False)
    d.loc[d["role"] == "comparison", "weight"] = 1.0 / 3.0
    return d, float(np.mean(effects))


def test_school_clustered_errors_are_not_inflated_by_effects_differing_between_bands():
    rng = np.random.default_rng(2023)
    out = {"plain": [], "strata": []}
    for _ in range(80):
        d, truth = _schools_world(rng)
        for name, strata in (("plain", None), ("strata", "grade_band")):
            r = matched_ancova(d, yname="attendance_rate", window=(1, 1), prior=None,
                               cluster="school", effect_strata=strata)  # fmt: skip
            out[name].append((r.estimate[0] - truth, np.sqrt(r.vcov[0, 0])))
    ratio = {k: np.mean([s for _, s in v]) / np.std([e for e, _ in v], ddof=1)
             for k, v in out.items()}  # fmt: skip
    # 80 replications: the SD is known to about 8%
    assert ratio["plain"] > 2.0
    assert 0.8 < ratio["strata"] < 1.2


def _cr2_dense(d: pd.DataFrame, cluster: str, strata: str | None) -> tuple[float, float]:
    """CR2 (Bell-McCaffrey) SE of the event-time-1 effect and its Satterthwaite degrees of
    freedom, written out: the dense weighted design with cell dummies,
    ``(I - H_gg)^{-1/2}`` by eigen-decomposition, ``df = (tr Q)^2 / tr Q^2`` with
    ``Q = sum_g a_g a_g'``, ``a_g = (I - H) A_g X_g B e_1`` (Imbens and Kolesar 2016)."""
    k1 = d[d["stack_event_time"] == 1].reset_index(drop=True)
    base = d[d["stack_event_time"] == 0].set_index(["match_id", "student_key"])
    b = base.loc[list(zip(k1["match_id"], k1["student_key"], strict=True))]
    lags = b[list(LAGS)].to_numpy(float)
    D = (k1["role"] == "treated").to_numpy(float)
    cols = [D]
    cell = k1["district_code"].astype(str)
    if strata:
        h = pd.get_dummies(k1[strata]).to_numpy(float)
        cols += list((D[:, None] * (h - h[D > 0].mean(axis=0)))[:, 1:].T)
        cell = cell + "|" + k1[strata].astype(str)
    X = np.column_stack([*cols, lags, lags**2 / 100.0, pd.get_dummies(cell).to_numpy(float)])
    w = k1["ipcw"].to_numpy(float) * k1["weight"].to_numpy(float)
    sw = np.sqrt(w)
    Xs, ys = X * sw[:, None], k1["attendance_rate"].to_numpy(float) * sw
    B = np.linalg.pinv(Xs.T @ Xs)
    e = ys - Xs @ (B @ Xs.T @ ys)
    M = np.eye(len(ys)) - Xs @ B @ Xs.T
    total, a = 0.0, []
    for _, ix in k1.groupby(cluster).indices.items():
        s, Q = np.linalg.eigh(M[np.ix_(ix, ix)])
        A = (Q / np.sqrt(s)) @ Q.T
        total += float((B @ Xs[ix].T @ A @ e[ix])[0]) ** 2
        full = np.zeros(len(ys))
        full[ix] = A @ (Xs[ix] @ B[:, 0])
        a.append(M @ full)
    gram = np.array(a) @ np.array(a).T
    return np.sqrt(total), float(np.trace(gram) ** 2 / np.sum(gram * gram))


@pytest.mark.parametrize("strata", [None, "grade_band"])
def test_cr2_equals_the_dense_bell_mccaffrey_formula(strata):
    d = _with_bands(seed=9)
    d = d[d["match_id"] < 300].copy()
    d["school"] = (d["student_key"].str[1:].astype(int) % 12).astype(str)
    r = matched_ancova(d, yname="attendance_rate", window=(1, 1), cluster="school",
                       effect_strata=strata, vcov_type="CR2")  # fmt: skip
    se, df = _cr2_dense(d, "school", strata)
    assert np.sqrt(r.vcov[0, 0]) == pytest.approx(se, rel=1e-8)
    # the interval's t quantile has Bell-McCaffrey's degrees of freedom, fewer than G - 1
    assert r.contrast_df(np.ones(1)) == pytest.approx(df, rel=1e-8)
    assert 1 < df < 11 and r.df == 11
    a = r.average((1, 1))
    assert a.ci_high - a.estimate == pytest.approx(stats.t.ppf(0.975, df) * se, rel=1e-8)
    cr1 = matched_ancova(d, yname="attendance_rate", window=(1, 1), cluster="school",
                         effect_strata=strata)  # fmt: skip
    assert r.estimate[0] == cr1.estimate[0] and r.info["vcov_type"] == "CR2"
    with pytest.raises(ValueError, match="vcov_type"):
        matched_ancova(d, yname="attendance_rate", window=(1, 1), vcov_type="CR3")
