"""A complete, fabricated set of ``report`` stage inputs, for tests.

The numbers are invented (drawn from a seeded generator around the arguments given);
they exercise rendering and disclosure control, not estimation.  Every file the
``estimate`` stage will write for the report is produced with the agreed columns,
including a few deliberately small cells so that suppression has work to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.schemas import (
    CHRONIC_BY_MONTH_COLUMNS,
    EVENT_MEANS_COLUMNS,
    EVENT_STUDY_COLUMNS,
    required_columns,
)
from pipeline.validation.scenarios import WORLD_SPECS

ESTIMATORS = (
    "matched_stacked",
    "naive_before_after",
    "twfe",
    "callaway_santanna_dr",
    "sun_abraham",
)
EVENT_TIMES = tuple(range(-6, 10))


def _ci(est: float, se: float) -> dict[str, float]:
    return {
        "estimate": round(est, 6),
        "std_error": round(se, 6),
        "ci_low": round(est - 1.959964 * se, 6),
        "ci_high": round(est + 1.959964 * se, 6),
        "p_value": 0.001,
    }


#: Subgroup levels of the fabricated tables and the share of visited students in each.
LEVELS = {
    "grade_band": [("PK-5", 0.55), ("6-12", 0.45)],
    "cohort": [("summer 2021", 0.3), ("2020-21", 0.0), ("2021-22", 0.45), ("2022-23", 0.25)],
    "first_visit_mode": [("in_person", 0.6), ("phone", 0.25), ("virtual", 0.15)],
    "ell": [("false", 0.8), ("true", 0.2)],
    "prior_year_tier": [
        ("satisfactory", 0.2),
        ("at_risk", 0.3),
        ("moderate_chronic", 0.3),
        ("severe_chronic", 0.2),
    ],
    "district": [("D01", 0.4), ("D02", 0.3), ("D03", 0.2), ("D04", 0.1)],
    "dosage": [("1 visit", 0.6), ("2 visits", 0.25), ("3+ visits", 0.15)],
}
BALANCE_COVARIATES = (
    "rate_lag1",
    "rate_lag2",
    "rate_lag3",
    "prior_year_rate",
    "frl",
    "ell",
    "swd",
    "grade_6_12",
)


@dataclass(frozen=True)
class _Spec:
    """The arguments of :func:`build_report_inputs`, with what follows from the design."""

    synthetic: bool
    effect: float
    dip: float
    n_treated: int
    n_comparison: int
    small_cells: bool
    design: str

    @property
    def primary(self) -> str:
        return {"differences": "matched_stacked", "ancova": "matched_ancova"}[self.design]

    @property
    def refs(self) -> tuple[int, ...]:
        return (-1,) if self.design == "differences" else (-3, -2, -1)

    @property
    def estimators(self) -> tuple[str, ...]:
        extra = ("matched_stacked",) if self.design == "ancova" else ()
        return (self.primary, *extra, *ESTIMATORS[1:])

    def path_effect(self, k: int, scale: float = 1.0) -> float:
        """The fabricated effect ``k`` months after the first visit."""
        if k < 0:
            return 0.0
        if k == 0:
            return 0.5 * self.effect * 0.5 * scale
        return scale * self.effect * (1 - 0.6 * np.exp(-(k - 1) / 3))


def build_report_inputs(
    root: str | Path,
    *,
    seed: int = 1,
    synthetic: bool = True,
    effect: float = 6.0,
    dip: float = 9.0,
    n_treated: int = 1200,
    n_comparison: int = 3400,
    small_cells: bool = True,
    with_validation: bool = False,
    design: str = "differences",
    sensitivity: bool = False,
    with_verdicts: bool = False,
) -> Path:
    """Write fabricated report inputs under ``root/reports`` and return that directory.

    Parameters
    ----------
    root
        Project root (the directory that will hold ``reports/``).
    seed
        Seed of the generator for the noise around the stated values.
    synthetic
        Value of ``metrics.json["synthetic"]`` (truth tables only when true).
    effect
        Long-run effect (points) of the fabricated primary event study.
    dip
        Depth (points) of the fabricated pre-visit dip of visited students.
    n_treated, n_comparison
        Headline sample sizes.
    small_cells
        Include subgroup levels, months and counts small enough to be suppressed.
    with_validation
        Also write ``reports/tables/validation.csv`` (the later ``validate`` stage).
    design
        The estimate stage's design: ``"differences"`` (primary ``matched_stacked``,
        reference event time −1) or ``"ancova"`` (primary ``matched_ancova``, reference
        event times −3 to −1, the matched differences reported beside it).
    sensitivity
        Also write the sensitivity suite's tables (:func:`write_sensitivity_tables`) and
        a placebo-date row in the robustness table.
    with_verdicts
        With ``with_validation``, also write the study's ``verdicts.csv`` beside it
        (:func:`write_verdicts`).
    """
    spec = _Spec(synthetic, effect, dip, n_treated, n_comparison, small_cells, design)
    rng = np.random.default_rng(seed)  # the tables draw from it in this order
    rep = Path(root) / "reports"
    tab = rep / "tables"
    tab.mkdir(parents=True, exist_ok=True)
    _event_study(spec, rng, tab)
    _event_means(spec, rng, tab)
    att, metrics = _metrics(spec, rng)
    (rep / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    _subgroups(spec, rng, tab, att)
    _robustness(spec, tab, att, sensitivity)
    if synthetic:
        _truth_comparison(spec, tab, metrics["truth"]["att_window"])
    _sample_flow_and_match_summary(spec, rng, tab)
    _chronic_by_month(spec, rng, tab)
    _balance(rng, tab)
    _data_quality(spec, tab)
    if with_validation:
        _validation(spec, tab)
        if with_verdicts:
            write_verdicts(tab)
    if sensitivity:
        write_sensitivity_tables(tab, att, spec.primary)
    return rep


def _event_study(spec: _Spec, rng: np.random.Generator, tab: Path) -> None:
    rows = []
    bias = {spec.primary: 0.0, "naive_before_after": spec.dip * 0.8, "twfe": -1.5}
    for est in spec.estimators:
        for k in EVENT_TIMES:
            if est == spec.primary and k in spec.refs and spec.design == "ancova":
                continue  # the months the ANCOVA adjusts for are not estimated
            if k == -1:
                rows.append((est, k, 0.0, 0.0, 0.0, 0.0, spec.n_treated))
                continue
            b = bias.get(est, 0.3) if k >= 0 else (0.0 if est != "naive_before_after" else 0.5)
            se = 0.4 + 0.05 * abs(k) + rng.uniform(0, 0.1)
            e = spec.path_effect(k) + b + rng.normal(0, 0.2)
            n = spec.n_treated - 40 * max(k, 0)
            if spec.small_cells and k == 9:
                n = 14  # too few students at the far end of the window
            rows.append((est, k, e, se, e - 1.96 * se, e + 1.96 * se, n))
    es = pd.DataFrame(rows, columns=EVENT_STUDY_COLUMNS)
    es.to_csv(tab / "event_study.csv", index=False)
    chronic = es.copy()
    chronic[["estimate", "ci_low", "ci_high"]] *= -1.4
    chronic.to_csv(tab / "event_study_chronic.csv", index=False)


def _event_means(spec: _Spec, rng: np.random.Generator, tab: Path) -> None:
    dip = spec.dip
    base = 88.0 + rng.normal(0, 0.5)
    em = []
    for k in EVENT_TIMES:
        d = dip if k == -1 else (dip / 3 if k == -2 else 0.0)
        t = base - d + (spec.path_effect(k) + (dip * 0.8 if k >= 0 else 0))
        c = base - d + (dip * 0.8 if k >= 0 else 0) + rng.normal(0, 0.2)
        n = spec.n_treated - 40 * max(k, 0)
        em.append(("treated", k, round(t, 4), 14 if (spec.small_cells and k == 9) else n))
        em.append(("comparison", k, round(c, 4), 3 * n))
    pd.DataFrame(em, columns=EVENT_MEANS_COLUMNS).to_csv(tab / "event_means.csv", index=False)


def _metrics(spec: _Spec, rng: np.random.Generator) -> tuple[float, dict]:
    """The fabricated window average (unrounded) and ``metrics.json``."""
    win = [spec.path_effect(k) for k in range(1, 7)]
    att = float(np.mean(win)) + rng.normal(0, 0.1)
    metrics = {
        "primary_estimator": spec.primary,
        "design": spec.design,
        "design_settings": {"ancova_fe": "district_code", "time_effects": "matched_set",
                            "reference": [-1], "cluster": "student_key"},
        "att": _ci(att, 0.45),
        "att_window": [1, 6],
        "n_treated": spec.n_treated,
        "n_comparison": spec.n_comparison,
        "max_abs_smd_after": round(0.02 + rng.uniform(0, 0.03), 4),
        "synthetic": spec.synthetic,
        "outcome": "attendance_rate",
        "pretrend_test": {
            "statistic": round(4.1 + rng.uniform(0, 2), 3),
            "df": 5 if spec.design == "differences" else 3,
            "p_value": 0.43,
            "event_times": [k for k in EVENT_TIMES if k < min(spec.refs)],
        },
        "naive": _ci(att + spec.dip * 0.8, 0.3),
        "twfe": _ci(att - 1.5, 0.5),
        "att_chronic": _ci(-1.4 * att, 0.9),
    }
    if spec.synthetic:
        metrics["truth"] = {"att_window": round(att + rng.normal(0, 0.3), 4)}
    return att, metrics


def _subgroups(spec: _Spec, rng: np.random.Generator, tab: Path, att: float) -> None:
    sg = []
    for sub, lv in LEVELS.items():
        left = spec.n_treated
        for j, (level, share) in enumerate(lv):
            n = left if j == len(lv) - 1 else int(round(spec.n_treated * share))
            if spec.small_cells and sub == "cohort" and level == "2020-21":
                n = 4
            left -= n
            se = 0.5 + 8 / np.sqrt(max(n, 1))
            e = att * (0.7 + 0.6 * rng.uniform()) if n else np.nan
            sg.append((sub, level, e, se, e - 1.96 * se, e + 1.96 * se, n, int(n * 2.8)))
    # the last level of each subgroup takes what is left, so the margins add up
    pd.DataFrame(sg, columns=required_columns("subgroups")).to_csv(
        tab / "subgroups.csv", index=False
    )


def _robustness(spec: _Spec, tab: Path, att: float, sensitivity: bool = False) -> None:
    rb = [
        ("caliper 0.1 sd", att + 0.2, 0.5, "narrower caliper"),
        ("exclude summer visits", att - 0.3, 0.55, "drops the summer 2021 cohort"),
        ("nearest 1:1", att + 0.1, 0.6, "one comparison per visited student"),
        ("no rate lags in match", att + spec.dip * 0.5, 0.45, "matching ignores the dip"),
    ]
    if sensitivity:
        rb.append(("placebo: first visits 6 school months earlier", -spec.dip * 0.6, 0.5, "moved"))
        rb.append(("relative magnitudes Mbar=1", att, 0.45, "Bonferroni"))
    pd.DataFrame(
        [(c, e, s, e - 1.96 * s, e + 1.96 * s, n) for c, e, s, n in rb],
        columns=required_columns("robustness"),
    ).to_csv(tab / "robustness.csv", index=False)


def _truth_comparison(spec: _Spec, tab: Path, truth: float) -> None:
    tr = []
    for est, b in ((spec.primary, 0.1), ("naive_before_after", spec.dip * 0.8), ("twfe", -1.5)):
        tr.append((est, "att_window", truth + b, truth, b, abs(b) < 1))
    pd.DataFrame(
        tr, columns=["estimator", "quantity", "estimate", "truth", "bias", "covered"]
    ).to_csv(tab / "truth_comparison.csv", index=False)


def _sample_flow_and_match_summary(spec: _Spec, rng: np.random.Generator, tab: Path) -> None:
    n_treated = spec.n_treated
    visited = n_treated + 37
    extract = 24000 + int(rng.integers(0, 500))
    flow = [
        ("extract", extract),
        ("eligible", extract - (4 if spec.small_cells else 812)),
        ("visited", visited),
        ("matched", n_treated),  # metrics.json's n_treated counts the matched visited
        ("analysed", n_treated - 22),
    ]
    pd.DataFrame(flow, columns=required_columns("sample_flow")).to_csv(
        tab / "sample_flow.csv", index=False
    )
    ms = []
    for dim, lv in (
        ("district", LEVELS["district"]),
        ("grade_band", LEVELS["grade_band"]),
        ("tier", LEVELS["prior_year_tier"]),
    ):
        unmatched = visited - n_treated
        left_t, left_u = visited, unmatched
        for j, (level, share) in enumerate(lv):
            last = j == len(lv) - 1
            t = left_t if last else int(round(visited * share))
            u = left_u if last else min(left_u, int(round(unmatched * share)))
            left_t -= t
            left_u -= u
            ms.append((dim, level, t, t - u, u))
    pd.DataFrame(ms, columns=["dimension", "level", "treated", "matched", "unmatched"]).to_csv(
        tab / "match_summary.csv", index=False
    )


def _chronic_by_month(spec: _Spec, rng: np.random.Generator, tab: Path) -> None:
    months = [f"{y}-{m:02d}" for y, ms_ in ((2020, range(9, 13)), (2021, range(1, 7))) for m in ms_]
    months += [
        f"{y}-{m:02d}" for y, ms_ in ((2021, range(9, 13)), (2022, range(1, 7))) for m in ms_
    ]
    cm = []
    for i, mo in enumerate(months):
        for leap in (True, False):
            n = 6000 if leap else 18000
            share = 0.2 + (0.08 if leap else 0.0) + 0.03 * np.sin(i / 3) + rng.normal(0, 0.005)
            if spec.small_cells and leap and i == 0:
                n = 15  # a tiny month: suppressed
            cm.append((mo, leap, n, int(round(n * share))))
    pd.DataFrame(cm, columns=CHRONIC_BY_MONTH_COLUMNS).to_csv(
        tab / "chronic_by_month.csv", index=False
    )


def _balance(rng: np.random.Generator, tab: Path) -> None:
    bal = []
    for c in BALANCE_COVARIATES:
        before = rng.uniform(-0.9, 0.9) if c.startswith("rate") else rng.uniform(-0.3, 0.3)
        after = rng.uniform(-0.04, 0.04)
        cls = "meets" if abs(after) <= 0.05 else "adjust"
        bal.append((c, before, after, 1 + rng.uniform(-0.1, 0.1), abs(after), cls))
    pd.DataFrame(
        bal,
        columns=[
            "covariate",
            "smd_before",
            "smd_after",
            "variance_ratio_after",
            "wwc_effect_size_after",
            "wwc_class_after",
        ],
    ).to_csv(tab / "balance.csv", index=False)


def _data_quality(spec: _Spec, tab: Path) -> None:
    dq = []
    for table, read in (("students", 24500), ("attendance_monthly", 480000), ("home_visits", 2600)):
        q = {"bad_value": 3 if spec.small_cells else 12, "broken_reference": 40}
        dup = 25
        dq.append((table, "read", read))
        dq.append((table, "kept", read - dup - sum(q.values())))
        dq.append((table, "duplicate_exact", dup))
        for k, v in q.items():
            dq.append((table, k, v))
    pd.DataFrame(dq, columns=["table", "reason", "rows"]).to_csv(
        tab / "data_quality.csv", index=False
    )
    pd.DataFrame(
        [("panel", "student_months", 230000), ("panel", "dropped_no_membership", 0)],
        columns=["table", "reason", "rows"],
    ).to_csv(tab / "data_quality_panel.csv", index=False)


def _validation(spec: _Spec, tab: Path) -> None:
    """``validation.csv`` as the later ``validate`` stage writes it."""
    from pipeline.analysis.scenarios import TABLE_COLUMNS

    primary = spec.primary
    rows = [
        # scenario, estimator, n_reps, truth_mean, estimate_mean, bias, rmse, coverage,
        # rejection_rate, mean_std_error, sd_estimate, sd_error, se_ratio,
        # pretrend_rejection, n_failed, targets_apply
        ("dip", primary, 12, 7.7, 7.75, 0.05, 0.41, 0.95, 1.0, 0.4, 0.39, 0.38,
         1.03, 0.0833, 0, True),
        ("dip", "naive_before_after", 12, 7.7, 14.8, 7.1, 7.11, 0.0, 1.0, 0.3, 0.31, 0.3,
         0.97, 1.0, 0, True),
        ("zero_effect", primary, 12, 0.0, -0.02, -0.02, 0.4, 0.92, 0.08, 0.4,
         0.41, 0.41, 0.98, 0.0, 0, True),
    ]
    v = pd.DataFrame(rows, columns=TABLE_COLUMNS[:16]).reindex(columns=TABLE_COLUMNS)
    # the verdict the validate stage writes for the primary design (pipeline/validation)
    from pipeline.validation import verdicts as vd

    v = v.astype({c: object for c in ("verdict", *vd.VERDICT_BASIS_COLUMNS, "verdict_reason")})
    for i in v.index[v["estimator"] == primary]:
        r = {**v.loc[i].to_dict(), "bias_mcse": v.at[i, "sd_error"] / np.sqrt(12),
             "needed": ""}
        r.update(vd.decide(r))
        for c in ("verdict", *vd.VERDICT_BASIS_COLUMNS):
            v.at[i, c] = r[c]
        v.at[i, "verdict_reason"] = vd.reason_text(r)
    v.to_csv(tab / "validation.csv", index=False)

#: The fabricated study's worlds: scenario, world, bias, its Monte Carlo SE, coverage,
#: pre-trend and placebo-date firing rates, what the world would need (for the verdicts'
#: rules, :func:`pipeline.validation.verdicts.decide`), and the verdict they give.
VERDICT_ROWS = [
    ("dip", "dip (default)", 0.05, 0.04, 0.95, 0.05, 0.97, "", "valid"),
    ("level_referral", "level referral", -1.1, 0.08, 0.39, 0.91, 0.99, "", "caught"),
    ("attrition", "attrition", -0.57, 0.09, 0.80, 0.04, 0.95,
     WORLD_SPECS["attrition"].needed, "not identified"),
]


def verdict_rows(worlds=VERDICT_ROWS, designs=("primary", "extended"),
                 uninformative="placebo", n_reps=100, **extra) -> pd.DataFrame:
    """A verdict table (columns of :data:`pipeline.validation.verdicts.VERDICT_COLUMNS`)
    scored by the verdicts' own rules from each world's numbers; ``extra`` sets further
    columns (e.g. ``bracketing``) of every row."""
    from pipeline.validation import verdicts as vd

    rows = []
    for design in designs:
        for scen, world, bias, mcse, cov, pre, placebo, needed, _ in worlds:
            r = {"scenario": scen, "world": world, "design": design, "n_reps": n_reps,
                 "bias": bias, "bias_mcse": mcse, "coverage": cov, "rate_pretrend": pre,
                 "rate_placebo": placebo, "targets_apply": not needed,
                 "uninformative": uninformative.split(), "needed": needed, **extra}
            r.update(vd.decide(r))
            r["reason"] = vd.reason_text(r)
            rows.append({**r, "uninformative": uninformative})
    return pd.DataFrame(rows).reindex(columns=vd.VERDICT_COLUMNS)


def write_verdicts(tab: Path) -> pd.DataFrame:
    """A small ``verdicts.csv`` for the primary and extended designs (:func:`verdict_rows`)."""
    v = verdict_rows()
    assert list(v["verdict"][:len(VERDICT_ROWS)]) == [w[-1] for w in VERDICT_ROWS]
    v.to_csv(tab / "verdicts.csv", index=False)
    return v


def write_sensitivity_tables(tab: Path, att: float, primary: str) -> None:
    """Fabricated sensitivity-suite tables with the columns of
    :data:`pipeline.analysis.schemas.SENSITIVITY_TABLES`: the required attendance measures
    all within 0.25 after adjustment, one other characteristic (grade K) beyond it."""
    from pipeline.analysis.schemas import SENSITIVITY_TABLES as S

    def w(name, rows):
        pd.DataFrame(rows).reindex(columns=S[name]).to_csv(tab / f"{name}.csv", index=False)

    w("sensitivity_ovb", [{"treatment": "treated", "estimate": att, "std_error": 0.7,
                           "t_statistic": att / 0.7, "dof": 700, "n_obs": 720, "q": 1,
                           "alpha": 0.05, "r2yd_x": 0.2, "rv_q": 0.31, "rv_qa": 0.27}])
    w("sensitivity_ovb_bounds", [
        {"benchmark": b, "label": f"{k}x {b}", "kd": k, "ky": k, "r2dz_x": 0.002 * k,
         "r2yz_dx": 0.15 * k, "adjusted_estimate": att - 0.4 * k,
         "adjusted_ci_low": att - 0.4 * k - 1.4, "adjusted_ci_high": att - 0.4 * k + 1.4}
        for b in ("prior_year_rate", "rate_lag1") for k in (1, 2)])
    grid = np.linspace(0, 0.5, 6)
    w("sensitivity_ovb_contour", [{"r2dz_x": x, "r2yz_dx": y, "value": att * (1 - 3 * x * y)}
                                  for y in grid for x in grid])
    w("sensitivity_rosenbaum", [
        *({"row": "gamma grid", "gamma": g, "pval": 10.0 ** (-8 / g), "n_sets": 300,
           "alpha": 0.05} for g in (1.0, 1.5, 2.0, 3.0)),
        {"row": "breakdown", "gamma": 3.4, "pval": 0.05, "n_sets": 300, "alpha": 0.05}])
    hd = [{"estimator": "matched_stacked", "Delta": "none", "method": "original", "M": np.nan,
           "lb": att - 1.5, "ub": att + 1.5}]
    for m in (0.5, 1.0):
        for meth in ("C-LF", "Conditional"):
            hd.append({"estimator": "matched_stacked", "Delta": "DeltaRM", "method": meth,
                       "M": m, "lb": att - 4 * m * 2, "ub": att + 4 * m * 2})
    for m in (0.0, 0.5):
        hd.append({"estimator": "matched_stacked", "Delta": "DeltaSD", "method": "FLCI", "M": m,
                   "lb": att - 1.6 - 12 * m, "ub": att + 1.6 + 12 * m})
    hd.append({"estimator": "matched_stacked", "Delta": "DeltaRM",
               "method": "breakdown (largest grid Mbar, C-LF)", "M": 0.5})
    hd.append({"estimator": "matched_stacked", "Delta": "DeltaSD", "method": "breakdown (FLCI)",
               "M": 0.4})
    w("sensitivity_honestdid", hd)
    w("sensitivity_falsification", [
        {"design": "primary", "estimator": primary, "n_placebo": 3, "pretrend_stat": 2.1,
         "pretrend_df": 3, "pretrend_p": 0.55, "pretrend_reject": False,
         "equivalence_bound": 1.9, "placebo_max_abs": 0.6, "effect": att,
         "bound_over_effect": 1.9 / att, "alpha": 0.05}])
    eq = []
    for k in range(1, 7):
        for c, g, cat in (("rate_lag1", 0.06, "satisfied with adjustment"),
                          ("prior_year_rate", 0.02, "satisfied"),
                          ("prior_year_tier=severe_chronic", 0.03, "satisfied"),
                          ("grade=K", 0.31, "not satisfied"),
                          ("frl", 0.04, "satisfied")):
            eq.append({"item": "baseline equivalence", "event_time": k, "characteristic": c,
                       "value": g, "category": cat, "reason": "fabricated",
                       "required": c.startswith(("rate_lag", "prior_year"))})
    eq += [{"item": "overall attrition", "event_time": 6, "value": 0.3, "category": "high",
            "reason": "cautious boundary: at most 0.041 differential", "required": False},
           {"item": "differential attrition", "event_time": 6, "value": 0.12,
            "category": "high", "reason": "cautious boundary: at most 0.041 differential",
            "required": False},
           {"item": "rating", "category": "Meets WWC Standards With Reservations",
            "reason": "quasi-experimental design", "required": False}]
    w("wwc", eq)
    w("effect_sizes", [
        {"measure": "hedges_g", "outcome": "attendance_rate", "estimate": 0.5, "std_error": 0.06,
         "ci_low": 0.38, "ci_high": 0.62, "improvement_index": 19.0},
        {"measure": "cox_index", "outcome": "chronic_absence", "estimate": -0.6,
         "std_error": 0.05, "ci_low": -0.7, "ci_high": -0.5, "improvement_index": -22.0}])
    w("subgroup_tests", [
        {"subgroup": "grade_band", "statistic": 4.2, "df": 1, "p_value": 0.04, "q_value": 0.12,
         "role": "causal"},
        {"subgroup": "cohort", "statistic": 1.9, "df": 3, "p_value": 0.59, "q_value": 0.59,
         "role": "causal"},
        {"subgroup": "dosage", "statistic": 0.1, "df": 2, "p_value": 0.93, "role": "descriptive"}])
    w("subgroup_contrasts", [
        {"subgroup": "grade_band", "level": "6-12", "reference": "PK-5", "difference": 3.4,
         "std_error": 1.7, "z": 2.0, "p_value": 0.04, "q_value": 0.19, "role": "causal"},
        {"subgroup": "cohort", "level": "2021-22", "reference": "2020-21", "difference": -1.2,
         "std_error": 4.3, "z": -0.3, "p_value": 0.78, "q_value": 0.84, "role": "causal"}])
