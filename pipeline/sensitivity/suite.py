"""The sensitivity and evidence-standards tables of the estimate stage.

:func:`sensitivity_suite` takes the stacked matched panel (with outcomes, censoring
weights and the baseline covariates), the primary and other designs' event studies and the
subgroup table, and returns the tables below (documented columns; each written by the
estimate stage to ``reports/tables/<name>.csv``):

``sensitivity_ovb``
    Cinelli–Hazlett statistics of the student-level analogue of the primary's window
    average — one row per matched-set member: the mean outcome over the uncensored months
    of the window, regressed (weights = matching weight × mean censoring weight) on the
    treated indicator, the recorded months at the first visit (and their squares), the
    prior-year rate (with a missing indicator) and the visited student's district:
    ``treatment, estimate, std_error, t_statistic, dof, n_obs, q, alpha, r2yd_x, rv_q,
    rv_qa`` (classical WLS standard error: it ignores that comparison students serve in
    several sets, so RV_qa is optimistic; RV_q does not depend on the standard error).
``sensitivity_ovb_bounds``
    Confounders ``kd``/``ky`` times as strong as each benchmark covariate:
    ``benchmark, label, kd, ky, r2dz_x, r2yz_dx, adjusted_estimate, adjusted_se,
    adjusted_t, adjusted_ci_low, adjusted_ci_high``.
``sensitivity_ovb_contour``
    Adjusted estimate over a grid of the two partial R² (the contour plot's data):
    ``r2dz_x, r2yz_dx, value``.
``sensitivity_rosenbaum``
    Rosenbaum's M-test (Huber ψ, ``sensitivitymv::senmv``) on the same student-level
    outcome, covariance-adjusted (residuals of its regression on the baseline covariates
    and district without the treatment indicator), in the matched sets (one treated, its
    comparison students), one-sided (attendance higher if visited): ``row`` (``gamma grid`` or ``breakdown``), ``gamma,
    pval, deviate, statistic, expectation, variance, n_sets, alpha``.
``sensitivity_honestdid``
    Rambachan–Roth sets for the matched differences design's average over the headline
    window (post periods up to ``honest_post_max``): ``Delta`` (``DeltaRM``, ``DeltaSD``
    or ``none``), ``method`` (``C-LF``, ``Conditional``, ``FLCI``, ``original``,
    ``breakdown``), ``M, lb, ub``. For the matched ANCOVA these bounds do not apply: its
    months before the visit are adjusted for, not differenced; its placebo months make the
    falsification table instead.
``sensitivity_falsification``
    Per design: the pre-trend (placebo months) Wald test and the TOST equivalence bound —
    the largest pre-period violation the data do not rule out: ``design, estimator,
    n_placebo, pretrend_stat, pretrend_df, pretrend_p, pretrend_reject, equivalence_bound,
    placebo_max_abs, effect, bound_over_effect, alpha``.
``wwc``
    What Works Clearinghouse table (:func:`pipeline.sensitivity.wwc.wwc_table`) with
    baseline equivalence of every baseline characteristic (names as in the balance
    table) on the analytic sample at each event time of the window; ``required`` marks
    the pre-intervention attendance measures the rating rests on.
``effect_sizes``
    ``measure, outcome, estimate, std_error, ci_low, ci_high, improvement_index,
    n_treated, n_comparison``.
``subgroup_contrasts``, ``subgroup_tests``
    :func:`pipeline.sensitivity.multiplicity.subgroup_contrasts` (dosage descriptive).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.analysis.schemas import SENSITIVITY_TABLES
from pipeline.balance import repeats_missing_indicator, wwc_effect_size
from pipeline.did.results import EventStudyResult
from pipeline.sensitivity import honestdid as hd
from pipeline.sensitivity.config import GRID_EDGE, SensitivityConfig, wwc_required
from pipeline.sensitivity.effect_sizes import cox_index, hedges_g
from pipeline.sensitivity.falsification import falsification_summary
from pipeline.sensitivity.multiplicity import subgroup_contrasts
from pipeline.sensitivity.ovb import ovb_sensitivity
from pipeline.sensitivity.rosenbaum import gamma_breakdown, matched_sets_matrix, senmv
from pipeline.sensitivity.wwc import attrition_row, wwc_table

__all__ = ["SENSITIVITY_TABLES", "SensitivityConfig", "sensitivity_suite", "student_window"]


log = logging.getLogger(__name__)

LAGS = ("rate_lag1", "rate_lag2", "rate_lag3")
PRIOR = "prior_year_rate"


def _wmean(x, w):
    return float(np.sum(w * x) / np.sum(w))


def _wsd(x, w):
    m = _wmean(x, w)
    return float(np.sqrt(np.sum(w * (x - m) ** 2) / np.sum(w)))


def student_window(matched: pd.DataFrame, y: str, window: tuple[int, int]) -> pd.DataFrame:
    """One row per matched-set member: mean ``y`` over the uncensored months of ``window``,
    the analysis weight, the baseline covariates and the visited student's district."""
    et = matched["stack_event_time"]
    keep = et.between(*window) & ~matched["censored"].astype(bool) & matched[y].notna()
    d = matched.loc[keep]
    g = d.groupby(["match_id", "student_key"], sort=True)
    out = g.agg(y=(y, "mean"), ipcw=("ipcw", "mean"), weight=("weight", "first"),
                role=("role", "first")).reset_index()
    base_cols = [c for c in (*LAGS, PRIOR) if c in matched.columns]
    base = matched.loc[et == 0, ["match_id", "student_key", *base_cols]].drop_duplicates(
        ["match_id", "student_key"])
    out = out.merge(base, on=["match_id", "student_key"], how="inner")
    if "district_code" in matched.columns:
        t0 = matched.loc[(et == 0) & (matched["role"] == "treated")]
        out["fe_district"] = out["match_id"].map(
            t0.drop_duplicates("match_id").set_index("match_id")["district_code"].astype(str))
    out["treated"] = (out["role"] == "treated").astype(float)
    out["w"] = out["weight"] * out["ipcw"]
    return out


def _ovb(sw: pd.DataFrame, cfg: SensitivityConfig):
    d = sw.copy()
    covs = []
    for c in LAGS:
        if c in d:
            covs.append(c)
            d[f"{c}_sq"] = d[c] ** 2 / 100.0
            covs.append(f"{c}_sq")
    if PRIOR in d:
        d[f"{PRIOR}_missing"] = d[PRIOR].isna().astype(float)
        d[PRIOR] = d[PRIOR].fillna(0.0)
        covs += [PRIOR, f"{PRIOR}_missing"]
    d = d.dropna(subset=["y", "fe_district", *covs])
    covs = [c for c in covs if d[c].std() > 0]
    bench = [b for b in cfg.ovb_benchmarks if b in covs]
    return ovb_sensitivity(d, outcome="y", treatment="treated", covariates=covs, weights="w",
                           fe="fe_district", benchmarks=bench, kd=cfg.ovb_kd,
                           alpha=cfg.alpha)


def _adjusted_outcome(sw: pd.DataFrame) -> pd.DataFrame:
    """The outcome less its weighted regression on the baseline covariates and district,
    fitted without the treatment indicator (Rosenbaum 2002, "Covariance adjustment in
    randomized experiments and observational studies", Statist. Sci. 17: under the sharp
    null the residuals are fixed, so the permutation and sensitivity bounds stay valid)."""
    d = sw.copy()
    cols = []
    for c in LAGS:
        if c in d:
            d[f"{c}_sq"] = d[c] ** 2 / 100.0
            cols += [c, f"{c}_sq"]
    if PRIOR in d:
        d[f"{PRIOR}_missing"] = d[PRIOR].isna().astype(float)
        d[PRIOR] = d[PRIOR].fillna(0.0)
        cols += [PRIOR, f"{PRIOR}_missing"]
    d = d.dropna(subset=["y", *cols])
    X = [np.ones(len(d)), *(d[c].to_numpy(float) for c in cols)]
    if "fe_district" in d:
        X += list(pd.get_dummies(d["fe_district"], drop_first=True, dtype=float).T.to_numpy())
    X = np.column_stack(X)
    sw_ = np.sqrt(d["w"].to_numpy(float))
    beta = np.linalg.lstsq(X * sw_[:, None], d["y"].to_numpy(float) * sw_, rcond=None)[0]
    d["y"] = d["y"].to_numpy(float) - X @ beta
    return d


def _rosenbaum(sw: pd.DataFrame, cfg: SensitivityConfig) -> pd.DataFrame:
    ymat = matched_sets_matrix(_adjusted_outcome(sw), outcome="y")
    rows = []
    for g in cfg.gammas:
        r = senmv(ymat, g)
        rows.append({"row": "gamma grid", **r.__dict__})
    gb = gamma_breakdown(ymat, cfg.alpha)
    r = senmv(ymat, gb)
    rows.append({"row": "breakdown", **r.__dict__})
    out = pd.DataFrame(rows)
    out["alpha"] = cfg.alpha
    return out[["row", "gamma", "pval", "deviate", "statistic", "expectation", "variance",
                "n_sets", "alpha"]]


def _grid_edge(r: dict) -> str | None:
    """Whether a conditional set's bound is the end of its search grid (R's HonestDiD
    searches twenty standard errors either side, as :mod:`pipeline.sensitivity.honestdid`
    does): the set then reaches at least that far, and the bound is not the set's own."""
    acc = r.get("accept")
    if acc is None or not np.any(acc):
        return None
    side = {(True, True): "both", (True, False): "lower", (False, True): "upper"}.get(
        (bool(acc[0]), bool(acc[-1])))
    return GRID_EDGE[side] if side else None


def _honest(res: EventStudyResult, window: tuple[int, int], cfg: SensitivityConfig) -> pd.DataFrame:
    refs = sorted(int(r) for r in res.reference)
    if len(refs) != 1:
        raise ValueError(f"{res.estimator}: HonestDiD needs a single reference period, has {refs}")
    r0 = refs[0]
    ets = [int(e) for e in res.event_time]
    pre = [e for e in ets if e < r0]
    post = [e for e in ets if r0 < e <= cfg.honest_post_max]
    if pre != list(range(r0 - len(pre), r0)) or post != list(range(r0 + 1, r0 + 1 + len(post))):
        raise ValueError(f"{res.estimator}: event times around {r0} are not consecutive")
    if not set(range(window[0], window[1] + 1)) <= set(post):
        raise ValueError(f"{res.estimator}: the window {window} exceeds the post periods")
    idx = [ets.index(e) for e in pre + post]
    b = res.estimate[idx]
    V = res.vcov[np.ix_(idx, idx)]
    lv = np.array([1.0 if window[0] <= e <= window[1] else 0.0 for e in post])
    lv /= lv.sum()
    n_pre, n_post = len(pre), len(post)
    a = cfg.alpha
    rows = []
    lo, hi = hd.original_cs(b, V, n_pre, n_post, lv, a)
    rows.append({"Delta": "none", "method": "original", "M": np.nan, "lb": lo, "ub": hi})
    gp = cfg.honest_grid_points
    for meth, hyb in (("C-LF", "LF"), ("Conditional", "ARP")):
        for m in cfg.honest_mbar:
            r = hd.conditional_cs_rm(b, V, n_pre, n_post, lv, Mbar=m, alpha=a, hybrid=hyb,
                                     grid_points=gp)
            rows.append({"Delta": "DeltaRM", "method": meth, "M": m, "lb": r["lb"], "ub": r["ub"],
                         "note": _grid_edge(r)})
    for m in cfg.honest_m:
        r = hd.flci(b, V, n_pre, n_post, lv, M=m, alpha=a)
        rows.append({"Delta": "DeltaSD", "method": "FLCI", "M": m, "lb": r["lb"], "ub": r["ub"]})
        for meth, hyb in (("C-LF", "LF"), ("Conditional", "ARP")):
            r = hd.conditional_cs_sd(b, V, n_pre, n_post, lv, M=m, alpha=a, hybrid=hyb,
                                     grid_points=gp)
            rows.append({"Delta": "DeltaSD", "method": meth, "M": m, "lb": r["lb"],
                         "ub": r["ub"], "note": _grid_edge(r)})
    out = pd.DataFrame(rows)
    # breakdown values: RM (C-LF) the largest M̄ of the grid whose set excludes zero;
    # SD (FLCI) by bisection
    rm = out[(out["Delta"] == "DeltaRM") & (out["method"] == "C-LF")]
    excl = rm[(rm["lb"] > 0) | (rm["ub"] < 0)]
    out.loc[len(out)] = {"Delta": "DeltaRM", "method": "breakdown (largest grid Mbar, C-LF)",
                         "M": float(excl["M"].max()) if len(excl) else np.nan,
                         "lb": np.nan, "ub": np.nan}
    bd = hd.breakdown_value(lambda m: (lambda r: (r["lb"], r["ub"]))(
        hd.flci(b, V, n_pre, n_post, lv, M=m, alpha=a)), 0.0, 5.0, tol=1e-3)
    out.loc[len(out)] = {"Delta": "DeltaSD", "method": "breakdown (FLCI)", "M": bd,
                         "lb": np.nan, "ub": np.nan}
    out.insert(0, "estimator", res.estimator)
    return out


#: Categorical baseline characteristics, one indicator per level as in the balance table.
CATEGORICAL = ("prior_year_tier", "grade", "sex", "race_ethnicity")
#: Binary characteristics taken as they are.
BINARY = ("frl", "ell", "swd")
#: Characteristics the matched ANCOVA adjusts for (:mod:`pipeline.did.ancova`: the recent
#: months and the prior-year rate with its missing indicator, which the tier's
#: "missing" level repeats); the others need ``|g| <= 0.05``.
ADJUSTED = (*LAGS, PRIOR, "prior_year_missing", "prior_year_tier=missing")


def baseline_characteristics(base: pd.DataFrame) -> pd.DataFrame:
    """Numeric baseline characteristics named as in the balance table: the recent months,
    the prior-year rate and its missing indicator, one indicator per level of the
    categorical characteristics (missing as its own level, except the tier's when it
    repeats the missing indicator) and the binary ones."""
    out = {c: pd.to_numeric(base[c], errors="coerce").astype(float)
           for c in (*LAGS, PRIOR) if c in base.columns}
    if PRIOR in base.columns:
        out["prior_year_missing"] = base[PRIOR].isna().astype(float)
    for c in CATEGORICAL:
        if c in base.columns:
            v = base[c].astype("string").fillna("missing").astype(str)
            for lv in sorted(v.unique()):
                x = (v == lv).astype(float)
                if repeats_missing_indicator(f"{c}={lv}", x, out.get("prior_year_missing")):
                    continue  # the missing indicator's students again: listed once
                out[f"{c}={lv}"] = x
    for c in BINARY:
        if c in base.columns:
            out[c] = pd.to_numeric(base[c].astype("Float64"), errors="coerce").astype(float)
    return pd.DataFrame(out, index=base.index)


def _wwc(matched: pd.DataFrame, sw: pd.DataFrame, window, cfg: SensitivityConfig,
         recorded: pd.DataFrame | None = None) -> pd.DataFrame:
    """Baseline equivalence of every characteristic on the analytic sample at each event
    time of the window (students observed and uncensored then, weighted by matching ×
    censoring weight), attrition to the window's last month, and the rating, which rests
    on the required measures (:func:`pipeline.sensitivity.config.wwc_required`).

    Attrition counts a place as kept when its outcome at the window's last month was
    recorded: in ``recorded`` (the stacks before comparison rows visited later were
    imputed) when given, so that an imputed outcome counts as missing, as in the
    attrition table (:func:`pipeline.attrition.attrition_table`)."""
    et = matched["stack_event_time"]
    cols = [c for c in (*LAGS, PRIOR, *CATEGORICAL, *BINARY) if c in matched.columns]
    base = matched.loc[et == 0, ["match_id", "student_key", "role", *cols]].drop_duplicates(
        ["match_id", "student_key"])
    rows = []
    for k in range(window[0], window[1] + 1):
        a = matched.loc[(et == k) & ~matched["censored"].astype(bool)
                        & matched["attendance_rate"].notna(),
                        ["match_id", "student_key", "weight", "ipcw"]]
        s = a.merge(base, on=["match_id", "student_key"])
        w = (s["weight"] * s["ipcw"]).to_numpy(float)
        t = (s["role"] == "treated").to_numpy()
        X = baseline_characteristics(s)
        for c in X.columns:
            x = X[c].to_numpy(float)
            ok = np.isfinite(x)
            g = (wwc_effect_size(x[ok], t[ok], w[ok])
                 if (t & ok).sum() >= 2 and (~t & ok).sum() >= 2 else np.nan)
            rows.append({"event_time": k, "characteristic": c, "g": g,
                         "adjusted": c in ADJUSTED, "required": wwc_required(c)})
    eq = pd.DataFrame(rows)
    at0 = base
    obs = matched if recorded is None else recorded
    last = obs.loc[(obs["stack_event_time"] == window[1]) & ~obs["censored"].astype(bool)
                   & obs["attendance_rate"].notna(), ["match_id", "student_key"]]
    kept = at0.merge(last.drop_duplicates(), on=["match_id", "student_key"])
    n = lambda f, r: int((f["role"] == r).sum())  # noqa: E731
    att = attrition_row(n(at0, "treated"), n(kept, "treated"), n(at0, "comparison"),
                        n(kept, "comparison"), cfg.wwc_boundary)
    tab = wwc_table(eq, att, design="qed")
    tab.loc[tab["item"].str.contains("attrition"), "event_time"] = window[1]
    return tab


def _effect_sizes(sw_att, sw_ch, prim, prim_ch, window, cfg) -> pd.DataFrame:
    rows = []
    t = sw_att["treated"] == 1
    avg = prim.average(window, cfg.alpha)
    yt, yc = sw_att.loc[t, "y"].to_numpy(float), sw_att.loc[~t, "y"].to_numpy(float)
    wt, wc = sw_att.loc[t, "w"].to_numpy(float), sw_att.loc[~t, "w"].to_numpy(float)
    nt, nc = int(sw_att.loc[t, "student_key"].nunique()), int(sw_att.loc[~t, "student_key"].nunique())
    g = hedges_g(avg.estimate, _wsd(yt, wt), _wsd(yc, wc), nt, nc,
                 ci=(avg.ci_low, avg.ci_high), alpha=cfg.alpha)
    rows.append({**g.to_dict(), "outcome": "attendance_rate"})
    if prim_ch is not None and sw_ch is not None and len(sw_ch):
        tc = sw_ch["treated"] == 1
        pc = _wmean(sw_ch.loc[~tc, "y"].to_numpy(float) / 100, sw_ch.loc[~tc, "w"].to_numpy(float))
        ach = prim_ch.average(window, cfg.alpha)
        pt = pc + ach.estimate / 100
        nt2 = int(sw_ch.loc[tc, "student_key"].nunique())
        nc2 = int(sw_ch.loc[~tc, "student_key"].nunique())
        ci = (pc + ach.ci_low / 100, pc + ach.ci_high / 100)
        c = cox_index(pt, pc, nt2, nc2, alpha=cfg.alpha, ci=ci)
        rows.append({**c.to_dict(), "outcome": "chronic_absence"})
    cols = ["measure", "outcome", "estimate", "std_error", "ci_low", "ci_high",
            "improvement_index", "n_treated", "n_comparison"]
    return pd.DataFrame(rows)[cols]


def _failed(name: str, why: str) -> pd.DataFrame:
    """A table that could not be computed: one row, its schema's columns, the reason in
    ``note`` (never a silent gap)."""
    return pd.DataFrame([{"note": why}]).reindex(columns=SENSITIVITY_TABLES[name])


def _safe(name: str, fn, *args):
    """Run one table; a failure becomes :func:`_failed`'s row."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported in the table itself
        log.warning("sensitivity table %s failed: %s", name, exc)
        return _failed(name, f"{type(exc).__name__}: {exc}")


def sensitivity_suite(matched: pd.DataFrame, prim: EventStudyResult,
                      prim_chronic: EventStudyResult | None,
                      differences: EventStudyResult | None, other: EventStudyResult | None,
                      subgroups: pd.DataFrame, window: tuple[int, int],
                      cfg: SensitivityConfig, *,
                      recorded: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """All the sensitivity and evidence-standards tables (see the module docstring).

    ``differences`` is the matched differences design's result (HonestDiD applies to it);
    ``other`` the design reported beside the primary (for the falsification table);
    ``recorded`` the stacks before imputation, when ``matched`` has imputed outcomes
    (the WWC attrition then counts those as missing).
    """
    window = (int(window[0]), int(window[1]))
    sw = student_window(matched, "attendance_rate", window)
    sw_ch = (student_window(matched, "chronic_pp", window) if "chronic_pp" in matched.columns
             else None)
    out: dict[str, pd.DataFrame] = {}
    log.info("omitted-variable sensitivity")
    ovb = _safe("sensitivity_ovb", _ovb, sw, cfg)
    if isinstance(ovb, pd.DataFrame):  # the failure row
        why = ovb["note"].iloc[0]
        for n in ("sensitivity_ovb", "sensitivity_ovb_bounds", "sensitivity_ovb_contour"):
            out[n] = _failed(n, why)
    else:
        out["sensitivity_ovb"] = ovb.tidy()
        out["sensitivity_ovb_bounds"] = ovb.bounds
        lim = float(min(0.99, max(0.2, 1.5 * ovb.rv_q,
                                  *(ovb.bounds[["r2dz_x", "r2yz_dx"]].max().tolist() or [0]))))
        out["sensitivity_ovb_contour"] = ovb.contour(lim=lim, n=41)
    log.info("Rosenbaum bounds")
    out["sensitivity_rosenbaum"] = _safe("sensitivity_rosenbaum", _rosenbaum, sw, cfg)
    log.info("HonestDiD")
    out["sensitivity_honestdid"] = (
        _safe("sensitivity_honestdid", _honest, differences, window, cfg)
        if differences is not None
        else _failed("sensitivity_honestdid", "the matched differences design was not estimated"))
    fals = []
    for design, res in (("primary", prim), ("other", other)):
        if res is None:
            continue
        try:
            s = falsification_summary(res, window, cfg.alpha)
            fals.append({"design": design, "estimator": res.estimator, **s, "alpha": cfg.alpha})
        except Exception as exc:  # noqa: BLE001 - e.g. no placebo months
            fals.append({"design": design, "estimator": res.estimator,
                         "note": f"{type(exc).__name__}: {exc}"})
    out["sensitivity_falsification"] = pd.DataFrame(fals)
    log.info("WWC standards, effect sizes, subgroup multiplicity")
    out["wwc"] = _safe("wwc", _wwc, matched, sw, window, cfg, recorded)
    out["effect_sizes"] = _safe("effect_sizes", _effect_sizes, sw, sw_ch, prim, prim_chronic,
                                window, cfg)
    c, t = subgroup_contrasts(subgroups, cfg.subgroup_order, cfg.descriptive_subgroups)
    out["subgroup_contrasts"], out["subgroup_tests"] = c, t
    return {n: out[n].reindex(columns=cols) for n, cols in SENSITIVITY_TABLES.items()}
