"""Stage ``estimate``: effects of the first home visit, side by side across designs.

``python -m pipeline.estimate`` reads ``data/processed/panel.parquet`` and
``data/processed/matched.parquet`` and writes the contract's event-study table and
metrics, the chronic-absence event study, subgroup and robustness tables, the data behind
the report's descriptive figures and — when the extract is synthetic — a comparison of
every estimate with the generator's truth.

Designs
-------
* **Primary: matched ANCOVA** (``design: ancova``, :func:`pipeline.did.ancova.matched_ancova`)
  on the matched stacks: attendance at each event time regressed on the treated indicator
  and the recorded months at the first visit (event times −1 to −3, with their squares,
  and the prior-year rate), with time effects per ``ancova_fe`` (district) × event time;
  matching weights × inverse-probability-of-censoring weights (:mod:`pipeline.censoring`)
  for comparison students visited later, errors clustered by student by default
  (comparison students serve in several matched sets; ``cluster`` switches to schools),
  wild cluster bootstrap (Webb weights) for every event time and the window average. The
  recorded months are the reference period; the months before them are placebo outcomes
  for the pre-trend test. Selection on a dip is selection on the recorded months, so the
  comparison that identifies the effect is between students with the same recorded
  months — levels, not changes from the month before. The chronic-absence outcome uses
  the same covariates: a month's chronic flag is a function of its rate, so the recorded
  months fix the flags of the reference period too.
* **Matched differences** (``design: differences``; always reported beside the primary as
  ``matched_stacked``): the stacked event study
  (:func:`pipeline.did.stacked.stacked_event_study`) with unit-by-matched-set and
  matched-set-by-event-time fixed effects (``time_effects="matched_set"``; ``"stratum"``
  pools them over the matching stratum), effects relative to ``reference``. It was the
  primary design until the simulation study (:mod:`pipeline.validate`,
  ``benchmarks/diagnose_design.py``) showed its small bias to be two biases cancelling:
  the imperfect match on the dip's depth, and the drop of later-visited comparison
  students that the censoring weights cannot undo within sets of three or four.
* **Comparators on the same students** (the matched students' own panels, each student
  first treated at their own first visit, never-visited students as controls): the naive
  before/after on visited students only, two-way fixed effects, Callaway–Sant'Anna with
  not-yet-treated controls (unconditional and doubly robust with baseline covariates;
  balanced students only, as the implemented panel estimator requires), Sun–Abraham and
  imputation.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.censoring import ipcw_weights
from pipeline.config import load_params
from pipeline.did.ancova import matched_ancova
from pipeline.did.cs import aggte, att_gt
from pipeline.did.honest import relative_magnitudes
from pipeline.did.imputation import imputation
from pipeline.did.naive import naive_before_after
from pipeline.did.results import TIDY_COLUMNS, EventStudyResult
from pipeline.did.stacked import stacked_event_study
from pipeline.did.sunab import sun_abraham
from pipeline.did.twfe import twfe_event_study
from pipeline.io import write_csv, write_json
from pipeline.match import read_panel_for_matching, read_panel_rows
from pipeline.matching.riskset import PropensityCache, RiskSetSpec, riskset_match, stack_panels

log = logging.getLogger("pipeline.estimate")

#: ``estimate.design`` → the estimator name its results carry.
DESIGNS = {"ancova": "matched_ancova", "differences": "matched_stacked"}
PRIMARY = DESIGNS["ancova"]  # the default design
OUTCOMES = {"attendance_rate": "attendance_rate", "chronic": "chronic_pp"}


@dataclass(frozen=True)
class EstimateConfig:
    att_window: tuple[int, int] = (1, 6)
    event_window: tuple[int, int] = (-6, 12)
    reference: tuple[int, ...] = (-1,)
    cluster: str = "student_key"
    design: str = "ancova"
    ancova_fe: str | None = "district_code"
    time_effects: str = "matched_set"
    ipcw: bool = True
    wild_bootstrap: bool = True
    bootstrap_draws: int = 999
    seed: int = 11
    alpha: float = 0.05
    comparators: tuple[str, ...] = (
        "naive_before_after",
        "twfe",
        "callaway_santanna_unconditional",
        "callaway_santanna_dr",
        "sun_abraham",
        "imputation",
    )
    subgroups: tuple[str, ...] = (
        "grade_band",
        "cohort",
        "first_visit_mode",
        "ell",
        "prior_year_tier",
        "district_code",
        "dosage",
    )
    placebo_shift: int = 6
    pools: tuple[str, ...] = ("program_districts", "non_program_districts")
    calipers: tuple[float, ...] = (0.1, 0.5)
    ratios: tuple[int, ...] = (1, 5)
    honest_mbar: tuple[float, ...] = (0.5, 1.0, 2.0)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> EstimateConfig:
        kw = dict(p)
        rob = kw.pop("robustness", {}) or {}
        kw.update(rob)
        unknown = set(kw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"params.yaml estimate: unknown key(s) {sorted(unknown)}")
        for k, v in list(kw.items()):
            if isinstance(v, list):
                kw[k] = tuple(v)
        return cls(**kw)

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(
                f"params.yaml estimate.design: must be one of {sorted(DESIGNS)},"
                f" not {self.design!r}"
            )
        if self.time_effects not in ("matched_set", "stratum"):
            raise ValueError(
                "params.yaml estimate.time_effects: must be 'matched_set' or 'stratum',"
                f" not {self.time_effects!r}"
            )

    @property
    def stack_column(self) -> str:
        """The column the differences design's time effects are interacted with."""
        return "match_id" if self.time_effects == "matched_set" else "stack_id"


# ----------------------------------------------------------------------------------------
# data preparation
# ----------------------------------------------------------------------------------------
def add_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """The chronic flag as percentage points (0/100) beside the attendance rate."""
    return df.assign(chronic_pp=100.0 * df["chronic"].astype(float))


class PanelAccess:
    """The panel, read by column and by student as each step needs it.

    Built from a data frame (tests, notebooks) or from the Parquet path (the stage): at
    state scale the whole panel is never held in memory with all its columns; matching
    reads its columns once (text as categoricals), the estimators read the rows of the
    students they use.
    """

    def __init__(self, source: pd.DataFrame | str | Path):
        self._df = source if isinstance(source, pd.DataFrame) else None
        self._path = None if self._df is not None else Path(source)
        self._match: pd.DataFrame | None = None

    def for_matching(self) -> pd.DataFrame:
        if self._df is not None:
            return self._df
        if self._match is None:
            self._match = read_panel_for_matching(self._path)
        return self._match

    def rows(self, keys) -> pd.DataFrame:
        keys = pd.Index(pd.unique(pd.Series(list(keys), dtype=object)))
        if self._df is not None:
            return self._df[self._df["student_key"].isin(keys)]
        return read_panel_rows(self._path, keys)

    def columns(self, cols: list[str]) -> pd.DataFrame:
        if self._df is not None:
            return self._df[cols]
        return pd.read_parquet(self._path, columns=cols)


def with_censoring_weights(matched: pd.DataFrame, use: bool) -> tuple[pd.DataFrame, dict]:
    m = matched.copy()
    if not use:
        m["ipcw"] = 1.0
        return m, {"ipcw": False}
    w, model = ipcw_weights(m)
    m["ipcw"] = w.to_numpy()
    return m, {"ipcw": True, **model.weight_summary}


def comparator_panel(panel: PanelAccess, students: pd.Index) -> pd.DataFrame:
    """Panel rows of the given students with ``g`` = own first visit month (0 = never)."""
    p = add_outcomes(panel.rows(students)).copy()
    p["g"] = p["first_visit_school_month"].astype("float64").fillna(0).astype("int64")
    p["t"] = p["school_month"].astype("int64")
    # a cluster constant within student (the school of the student's first month) for the
    # estimators that need one; students move between schools
    first = p.sort_values(["student_key", "t"]).drop_duplicates("student_key")
    p["school_base"] = p["student_key"].map(first.set_index("student_key")["school_code"])
    return p


def _baseline_covariates(p: pd.DataFrame) -> pd.DataFrame:
    first = p.sort_values(["student_key", "t"]).drop_duplicates("student_key")
    cov = pd.DataFrame(
        {
            "student_key": first["student_key"],
            "x_frl": first["frl"].astype(float),
            "x_ell": first["ell"].astype(float),
            "x_swd": first["swd"].astype(float),
            "x_hs": (first["grade_band"] == "6-12").astype(float),
        }
    )
    return p.merge(cov, on="student_key", how="left")


# ----------------------------------------------------------------------------------------
# estimators
# ----------------------------------------------------------------------------------------
def _inference(cfg: EstimateConfig, bootstrap: bool) -> dict[str, Any]:
    """The matched designs' shared inference options."""
    return dict(
        cluster=cfg.cluster,
        average_window=cfg.att_window,
        wild_bootstrap=bootstrap,
        B=cfg.bootstrap_draws,
        seed=cfg.seed,
        alpha=cfg.alpha,
    )


def differences(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig, *, bootstrap: bool
) -> EventStudyResult:
    """The matched differences design (``matched_stacked``) on the matched stacks."""
    return stacked_event_study(
        matched,
        yname=y,
        stack=cfg.stack_column,
        weights="ipcw",
        ref=cfg.reference,
        window=cfg.event_window,
        **_inference(cfg, bootstrap),
    )


def ancova(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig, *, bootstrap: bool
) -> EventStudyResult:
    """The matched ANCOVA (``matched_ancova``) on the matched stacks (``ipcw`` weights)."""
    return matched_ancova(
        matched, yname=y, window=cfg.event_window, fe=cfg.ancova_fe, **_inference(cfg, bootstrap)
    )


def primary(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig, *, bootstrap: bool
) -> EventStudyResult:
    """The design ``cfg.design`` names, with censoring weights from the ``ipcw`` column."""
    if cfg.design == "ancova":
        return ancova(matched, y, cfg, bootstrap=bootstrap)
    return differences(matched, y, cfg, bootstrap=bootstrap)


def other_design(
    matched: pd.DataFrame, y: str, cfg: EstimateConfig
) -> tuple[str, EventStudyResult | Exception]:
    """The design not chosen as primary (its kind and result), for the robustness table
    and the event-study figure; a failure is returned, to be reported, instead of raised."""
    kind = "differences" if cfg.design == "ancova" else "ancova"
    fit = differences if kind == "differences" else ancova
    try:
        return kind, fit(matched, y, cfg, bootstrap=False)
    except (ValueError, KeyError) as exc:
        return kind, exc


def comparators(cp: pd.DataFrame, y: str, cfg: EstimateConfig) -> tuple[list, dict]:
    """Run every comparator; failures are recorded, not hidden."""
    lo, hi = cfg.event_window
    common = dict(yname=y, tname="t", idname="student_key", gname="g")
    results, errors = [], {}
    runners = {
        "naive_before_after": lambda: naive_before_after(
            cp, **common, window=cfg.event_window, ref=cfg.reference, cluster=cfg.cluster
        ),
        "twfe": lambda: twfe_event_study(
            cp,
            **common,
            cluster=cfg.cluster,
            ref=cfg.reference[0],
            window=cfg.event_window,
            bin_endpoints=True,
        ),
        "sun_abraham": lambda: sun_abraham(
            cp,
            **common,
            control="lastcohort" if not (cp["g"] == 0).any() else "never",
            cluster=cfg.cluster,
            ref=cfg.reference[0],
            window=cfg.event_window,
            bin_endpoints=True,
        ),
        "imputation": lambda: imputation(
            cp,
            **common,
            cluster=cfg.cluster,
            horizons=list(range(0, hi + 1)),
            pretrends=list(range(lo, -1)),
        ),
        "callaway_santanna_unconditional": lambda: _cs(cp, y, cfg, "unconditional"),
        "callaway_santanna_dr": lambda: _cs(cp, y, cfg, "dr"),
    }
    for name in cfg.comparators:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r = runners[name]()
            if caught:
                # estimator warnings (e.g. 2x2 cells too small to estimate) are summarized,
                # not printed one by one; the count is kept with the result
                first = str(caught[0].message)
                log.info("%s: %d warnings, first: %s", name, len(caught), first[:160])
                r.info["warnings"] = len(caught)
        except Exception as exc:  # noqa: BLE001 - recorded and reported
            log.warning("comparator %s failed: %s", name, exc)
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        r.estimator = name
        r.info["seconds"] = round(time.perf_counter() - t0, 2)
        results.append(r)
    return results, errors


def _cs(cp: pd.DataFrame, y: str, cfg: EstimateConfig, method: str) -> EventStudyResult:
    # the implemented panel estimator needs a balanced panel: keep students observed in
    # every month of the extract
    periods = cp["t"].nunique()
    n = cp.groupby("student_key")["t"].transform("nunique")
    bal = _baseline_covariates(cp[n == periods])
    kw = {}
    if method == "dr":
        kw = dict(covariates=["x_frl", "x_ell", "x_swd", "x_hs"], est_method="dr")
    else:
        kw = dict(est_method="unconditional") if method == "unconditional" else {}
    gt = att_gt(
        bal,
        yname=y,
        tname="t",
        idname="student_key",
        gname="g",
        control_group="notyettreated",
        clustervars="school_base",
        alp=cfg.alpha,
        base_period="universal",
        **kw,
    )
    # cells whose 2x2 regression cannot be estimated (too few students) are left out of the
    # aggregation and counted, as R's na.rm = TRUE does
    att = np.asarray(gt.table()["att"], dtype=float) if hasattr(gt, "table") else None
    agg = aggte(gt, type="dynamic", min_e=cfg.event_window[0], max_e=cfg.event_window[1],
                na_rm=True)
    res = agg.to_event_study(f"callaway_santanna_{method}")
    res.info["balanced_students"] = int(bal["student_key"].nunique())
    if att is not None:
        res.info["att_gt_cells_not_estimable"] = int(np.isnan(att).sum())
    return res


# ----------------------------------------------------------------------------------------
# subgroups and robustness
# ----------------------------------------------------------------------------------------
def treated_attributes(matched: pd.DataFrame, window: tuple[int, int]) -> pd.DataFrame:
    """Subgroup attributes of each matched set's treated student, at event time 0."""
    t = matched[matched["role"] == "treated"]
    at0 = t[t["stack_event_time"] == 0].drop_duplicates("match_id").set_index("match_id")
    attrs = pd.DataFrame(index=at0.index)
    for c in ("grade_band", "cohort", "ell", "prior_year_tier", "district_code"):
        attrs[c] = at0[c].astype(object).where(at0[c].notna(), "missing").astype(str)
    mode = at0["first_visit_mode"].astype(object)
    attrs["first_visit_mode"] = np.where(
        mode == "in_person", "in_person", np.where(mode == "unknown", "unknown", "phone_or_virtual")
    )
    inwin = t[t["stack_event_time"].between(0, window[1])]
    dose = inwin.groupby("match_id")["visits_completed_to_date"].max()
    attrs["dosage"] = pd.cut(
        dose.reindex(attrs.index).fillna(1),
        [0, 1, 2, np.inf],
        labels=["1 visit", "2 visits", "3+ visits"],
    ).astype(str)
    return attrs


def subgroup_effects(matched: pd.DataFrame, y: str, cfg: EstimateConfig) -> pd.DataFrame:
    attrs = treated_attributes(matched, cfg.att_window)
    rows = []
    for sg in cfg.subgroups:
        for level, ids in attrs.groupby(sg).groups.items():
            sub = matched[matched["match_id"].isin(ids)]
            n_t = int(sub.loc[sub["role"] == "treated", "student_key"].nunique())
            n_c = int(sub.loc[sub["role"] == "comparison", "student_key"].nunique())
            row = {"subgroup": sg, "level": str(level), "n_treated": n_t, "n_comparison": n_c}
            try:
                avg = primary(sub, y, cfg, bootstrap=False).average(cfg.att_window)
                row.update(
                    estimate=avg.estimate,
                    std_error=avg.std_error,
                    ci_low=avg.ci_low,
                    ci_high=avg.ci_high,
                )
            except Exception as exc:  # noqa: BLE001 - too few students for this level
                row.update(
                    estimate=np.nan,
                    std_error=np.nan,
                    ci_low=np.nan,
                    ci_high=np.nan,
                    note=f"not estimable: {type(exc).__name__}",
                )
            rows.append(row)
    cols = [
        "subgroup",
        "level",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "n_treated",
        "n_comparison",
        "note",
    ]
    return pd.DataFrame(rows).reindex(columns=cols)


def rematch(
    panel: PanelAccess,
    spec: RiskSetSpec,
    shift: int = 0,
    ps_cache: PropensityCache | None = None,
) -> pd.DataFrame:
    """Match again with other settings (``shift``: first visits moved that many school
    months earlier, for the placebo check; ``ps_cache``: reuse identical propensity fits)."""
    pm = panel.for_matching()
    if shift:
        fv = pm["first_visit_school_month"].astype("float64")
        pm = pm.assign(first_visit_school_month=(fv - shift).astype("Float64"))
    res = riskset_match(pm, spec, ps_cache=ps_cache)
    rows = panel.rows(res.matches["student_key"].unique())
    if shift:
        fv = rows["first_visit_school_month"].astype("float64")
        rows = rows.assign(first_visit_school_month=(fv - shift).astype("Float64"))
    return stack_panels(rows, res.matches, window=spec.window)


def relative_magnitude_bounds(
    res: EventStudyResult, window: tuple[int, int], mbars, alpha: float
) -> list[dict]:
    """Rambachan–Roth relative-magnitude (Δ^RM) rows for the robustness table.

    One row per ``Mbar`` with the Bonferroni robust interval of
    :func:`pipeline.did.honest.relative_magnitudes` (valid under Δ^RM, conservative) and
    the plug-in identified set in the note, plus the breakdown ``Mbar``.
    """
    tab = relative_magnitudes(res, window, mbars, alpha=alpha)
    out = [
        {
            "check": f"relative magnitudes Mbar={r.mbar:g}",
            "estimate": r.estimate,
            "std_error": r.std_error,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "note": (
                f"robust {100 * (1 - alpha):.0f}% interval (Bonferroni) under Delta^RM; "
                f"identified set at the estimates {r.id_low:.2f} to {r.id_high:.2f}; largest "
                f"pre-period change {r.max_pre_change:.3f} (upper bound "
                f"{r.max_pre_change_upper:.3f})"
            ),
        }
        for r in tab.itertuples()
    ]
    out.append(
        {
            "check": "relative magnitudes breakdown Mbar",
            "estimate": tab.attrs["breakdown_mbar"],
            "note": "largest Mbar whose robust interval excludes zero",
        }
    )
    return out


OTHER_DESIGN_LABELS = {
    "differences": "matched differences (change from the month before the visit)",
    "ancova": "matched ANCOVA (levels on the months before the visit)",
}


def other_design_note(kind: str, cfg: EstimateConfig) -> str:
    """The robustness table's note on the other design, naming its settings."""
    if kind == "differences":
        per = "matched set" if cfg.time_effects == "matched_set" else "matching stratum"
        refs = ", ".join(str(r) for r in cfg.reference)
        return (
            f"the same matched students and weights, effects measured as the change from "
            f"event time {refs} with time effects per {per} (pipeline/did/stacked.py); "
            "differencing from the dip month counts any imperfect match on the dip's depth"
        )
    per = cfg.ancova_fe or "all matched sets together"
    return (
        "post-visit attendance adjusted for the recorded months at the first visit instead "
        f"of differenced from the month before it; time effects per {per} x event time; "
        "same censoring weights (pipeline/did/ancova.py)"
    )


def robustness(
    panel: PanelAccess,
    matched: pd.DataFrame,
    base: RiskSetSpec,
    prim: EventStudyResult,
    y: str,
    cfg: EstimateConfig,
    other: tuple[str, EventStudyResult | Exception] | None = None,
) -> pd.DataFrame:
    """The robustness table: the primary average, the pre-trend test, the other design
    (``other``: its kind and result or error, as :func:`other_design` gives; computed
    here when ``None``), the placebo, other pools, calipers and ratios, and the
    relative-magnitude sensitivity."""
    rows: list[dict] = []

    def add(check: str, m: pd.DataFrame | None, window=cfg.att_window, note: str = ""):
        if m is None or m.empty:
            rows.append({"check": check, "note": "no matches"})
            return
        m, _ = with_censoring_weights(add_outcomes(m), cfg.ipcw)
        try:
            avg = primary(m, y, cfg, bootstrap=False).average(window)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            rows.append({"check": check, "note": f"not estimable: {exc}"})
            return
        n_t = int(m.loc[m["role"] == "treated", "student_key"].nunique())
        rows.append(
            {
                "check": check,
                "estimate": avg.estimate,
                "std_error": avg.std_error,
                "ci_low": avg.ci_low,
                "ci_high": avg.ci_high,
                "n_treated": n_t,
                "note": note,
            }
        )

    avg = prim.average(cfg.att_window)
    rows.append(
        {
            "check": "primary",
            "estimate": avg.estimate,
            "std_error": avg.std_error,
            "ci_low": avg.ci_low,
            "ci_high": avg.ci_high,
            "n_treated": int(prim.n_treated.max()),
            "note": "as reported",
        }
    )
    pt = prim.pretrend_test()
    n_prim = int(prim.n_treated.max())
    rows.append(
        {
            "check": "joint pre-trend test",
            "estimate": pt.statistic,
            "n_treated": n_prim,
            "note": f"chi2({pt.df}) p = {pt.p_value:.4f}, event times {list(pt.event_times)}",
        }
    )
    # the other design on the same matched sets and weights
    kind, alt = other_design(matched, y, cfg) if other is None else other
    label = OTHER_DESIGN_LABELS[kind]
    oth = None
    if isinstance(alt, EventStudyResult):
        try:
            oth = alt.average(cfg.att_window)
        except KeyError as exc:  # the window is not fully estimated
            alt = exc
    if oth is None:
        rows.append({"check": label, "note": f"not estimable: {alt}"})
    else:
        rows.append(
            {
                "check": label,
                "estimate": oth.estimate,
                "std_error": oth.std_error,
                "ci_low": oth.ci_low,
                "ci_high": oth.ci_high,
                "n_treated": n_prim,
                "note": other_design_note(kind, cfg),
            }
        )
    # placebo: first visits moved earlier, effect measured before the real visit
    s = cfg.placebo_shift
    if s > 0:
        win = (1, max(1, s - 3))
        spec = replace(base, window=(max(base.window[0], -12), s - 1))
        add(
            f"placebo: first visits {s} school months earlier",
            rematch(panel, spec, shift=s),
            window=win,
            note=f"average over placebo event times {win[0]}-{win[1]} (real event times "
            f"{win[0] - s} to {win[1] - s}, before the months referral looks at). Near zero "
            "when visited students' attendance was not already drifting before the visit; a "
            "negative value means the coming dip began earlier than the three months the "
            "primary design matches on",
        )
    for pool in cfg.pools:
        add(f"comparison pool: {pool}", rematch(panel, replace(base, pool=pool, exact=None)))
    same_pool = PropensityCache()  # calipers and ratios share the primary pool's model
    for cal in cfg.calipers:
        add(f"caliper {cal} SD", rematch(panel, replace(base, caliper=cal), ps_cache=same_pool))
    for ratio in cfg.ratios:
        add(f"ratio {ratio}:1", rematch(panel, replace(base, ratio=ratio), ps_cache=same_pool))
    try:
        rows.extend({**r, "n_treated": n_prim} for r in relative_magnitude_bounds(
            prim, cfg.att_window, cfg.honest_mbar, cfg.alpha))
    except ValueError as exc:  # e.g. an event window with no months before the reference
        rows.append({"check": "relative magnitudes", "note": f"not estimable: {exc}"})
    return pd.DataFrame(rows).reindex(
        columns=["check", "estimate", "std_error", "ci_low", "ci_high", "n_treated", "note"]
    )


# ----------------------------------------------------------------------------------------
# descriptive tables and truth
# ----------------------------------------------------------------------------------------
def event_means(matched: pd.DataFrame, window: tuple[int, int]) -> pd.DataFrame:
    m = matched[~matched["censored"].astype(bool)]
    m = m[m["stack_event_time"].between(*window)]
    w = m["weight"] * m["ipcw"]
    g = m.assign(wy=w * m["attendance_rate"], w=w).groupby(["role", "stack_event_time"])
    out = g.agg(wy=("wy", "sum"), w=("w", "sum"), n_students=("student_key", "nunique"))
    out["mean_rate"] = out["wy"] / out["w"]
    out = out.reset_index().rename(columns={"stack_event_time": "event_time"})
    return out[["role", "event_time", "mean_rate", "n_students"]]


def chronic_by_month(panel: PanelAccess) -> pd.DataFrame:
    panel = panel.columns(["month", "leap_district", "student_key", "chronic"])
    g = panel.groupby(["month", "leap_district"], observed=True)
    out = g.agg(n_students=("student_key", "nunique"), n_chronic=("chronic", "sum"))
    out = out.reset_index()
    out["n_chronic"] = out["n_chronic"].astype(int)
    return out.sort_values(["month", "leap_district"]).reset_index(drop=True)


def sample_flow(panel: PanelAccess, matched: pd.DataFrame, prim: EventStudyResult) -> pd.DataFrame:
    panel = panel.columns(["student_key", "first_visit_school_month", "leap_district"])
    visited = panel.loc[panel["first_visit_school_month"].notna(), "student_key"].nunique()
    eligible = panel.loc[panel["leap_district"].astype(bool), "student_key"].nunique()
    t = matched[matched["role"] == "treated"]
    analysed = t.loc[t["stack_event_time"] >= 1, "student_key"].nunique()
    return pd.DataFrame(
        {
            "step": ["extract", "eligible", "visited", "matched", "analysed"],
            "students": [
                panel["student_key"].nunique(),
                eligible,
                visited,
                t["student_key"].nunique(),
                analysed,
            ],
            "definition": [
                "students with at least one school month in membership",
                "students in membership in a program district",
                "students with a completed home visit",
                "visited students matched to at least one comparison student",
                "matched visited students observed after their first visit",
            ],
        }
    )


def truth_comparison(
    results: dict[str, EventStudyResult],
    truth: dict,
    window: tuple[int, int],
    subgroups: pd.DataFrame,
    primary_name: str = PRIMARY,
) -> pd.DataFrame:
    rows = []
    tw = truth.get("att_window")
    by_e = truth.get("att_by_event_time", {})
    for name, r in results.items():
        try:
            a = r.average(window)
            rows.append(
                {
                    "estimator": name,
                    "quantity": f"average {window[0]}-{window[1]}",
                    "estimate": a.estimate,
                    "truth": tw,
                    "ci_low": a.ci_low,
                    "ci_high": a.ci_high,
                }
            )
        except KeyError:
            pass
        ci = r.conf_int()
        for e, est in zip(r.event_time, r.estimate, strict=True):
            if str(int(e)) in by_e:
                rows.append(
                    {
                        "estimator": name,
                        "quantity": f"event time {int(e)}",
                        "estimate": est,
                        "truth": by_e[str(int(e))]["att"],
                        "ci_low": ci.loc[e, "ci_low"],
                        "ci_high": ci.loc[e, "ci_high"],
                    }
                )
    tsub = truth.get("subgroups", {})
    for _, s in subgroups.iterrows():
        level = str(s["level"]).lower() if s["subgroup"] == "ell" else str(s["level"])
        t = tsub.get(s["subgroup"], {}).get(level)
        if t is not None and t.get("att_window") is not None:
            rows.append(
                {
                    "estimator": primary_name,
                    "quantity": f"{s['subgroup']}={s['level']}",
                    "estimate": s["estimate"],
                    "truth": t["att_window"],
                    "ci_low": s["ci_low"],
                    "ci_high": s["ci_high"],
                }
            )
    out = pd.DataFrame(
        rows, columns=["estimator", "quantity", "estimate", "truth", "ci_low", "ci_high"]
    )
    out["bias"] = out["estimate"] - out["truth"]
    out["covered"] = (out["ci_low"] <= out["truth"]) & (out["truth"] <= out["ci_high"])
    return out[
        ["estimator", "quantity", "estimate", "truth", "bias", "covered", "ci_low", "ci_high"]
    ]


def _avg_dict(r: EventStudyResult, window) -> dict:
    a = r.average(window)
    return {
        "estimate": a.estimate,
        "std_error": a.std_error,
        "ci_low": a.ci_low,
        "ci_high": a.ci_high,
    }


def _tidy_all(results: list[EventStudyResult]) -> pd.DataFrame:
    frames = [r.tidy() for r in results]
    return (
        pd.concat(frames, ignore_index=True)[TIDY_COLUMNS]
        if frames
        else pd.DataFrame(columns=TIDY_COLUMNS)
    )


# ----------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------
def run(
    panel: pd.DataFrame | str | Path,
    matched: pd.DataFrame,
    balance: pd.DataFrame,
    match_spec: RiskSetSpec,
    cfg: EstimateConfig,
    meta: dict,
) -> dict[str, Any]:
    """Everything the stage writes, as data frames and dicts (no output written).

    ``panel`` is the panel as a data frame or the path of ``panel.parquet``.
    """
    panel = PanelAccess(panel)
    matched, ipcw_info = with_censoring_weights(add_outcomes(matched), cfg.ipcw)
    log.info(
        "primary design on %d stacked rows (%d matched sets)",
        len(matched),
        matched["match_id"].nunique(),
    )
    prim = primary(matched, "attendance_rate", cfg, bootstrap=cfg.wild_bootstrap)
    prim_ch = primary(matched, "chronic_pp", cfg, bootstrap=False)
    other = other_design(matched, "attendance_rate", cfg)
    other_ch = other_design(matched, "chronic_pp", cfg)
    alts = [r for _, r in (other,) if isinstance(r, EventStudyResult)]
    alts_ch = [r for _, r in (other_ch,) if isinstance(r, EventStudyResult)]
    students = pd.Index(matched["student_key"].unique())
    cp = comparator_panel(panel, students)
    log.info("comparators on %d students", len(students))
    comps, errors = comparators(cp, "attendance_rate", cfg)
    comps_ch, errors_ch = comparators(cp, "chronic_pp", cfg)
    log.info("subgroups")
    subgroups = subgroup_effects(matched, "attendance_rate", cfg)
    log.info("robustness checks")
    rob = robustness(panel, matched, match_spec, prim, "attendance_rate", cfg, other=other)

    w = cfg.att_window
    avg = prim.average(w)
    pt = prim.pretrend_test()
    boot = prim.info.get("wild_bootstrap_average") if isinstance(prim.info, dict) else None
    by_name = {r.estimator: r for r in [prim, *alts, *comps]}
    metrics: dict[str, Any] = {
        "primary_estimator": prim.estimator,
        "design": cfg.design,
        "design_settings": {
            "ancova_fe": cfg.ancova_fe,
            "time_effects": cfg.time_effects,
            "reference": list(cfg.reference),
            "cluster": cfg.cluster,
        },
        "att": {
            "estimate": avg.estimate,
            "std_error": avg.std_error,
            "ci_low": avg.ci_low,
            "ci_high": avg.ci_high,
            "p_value": avg.p_value,
        },
        "att_window": list(w),
        "n_treated": int(matched.loc[matched["role"] == "treated", "student_key"].nunique()),
        "n_comparison": int(matched.loc[matched["role"] == "comparison", "student_key"].nunique()),
        "max_abs_smd_after": float(balance["smd_after"].abs().max()),
        "synthetic": bool(meta.get("synthetic", False)),
        "outcome": "attendance_rate",
        "att_chronic": _avg_dict(prim_ch, w),
        "pretrend_test": {
            **{k: getattr(pt, k) for k in ("statistic", "df", "p_value")},
            "event_times": list(pt.event_times),
        },
        "censoring": ipcw_info,
        "comparator_errors": {
            **errors,
            **{f"{k} (chronic)": v for k, v in errors_ch.items()},
            **{
                f"{DESIGNS[k]}{sfx}": f"{type(r).__name__}: {r}"
                for (k, r), sfx in ((other, ""), (other_ch, " (chronic)"))
                if isinstance(r, Exception)
            },
        },
    }
    if boot:
        metrics["att"]["wild_bootstrap"] = boot
    for key, name in (("naive", "naive_before_after"), ("twfe", "twfe")):
        if name in by_name:
            metrics[key] = _avg_dict(by_name[name], w)
    metrics["comparators"] = {
        n: _avg_dict(r, w)
        for n, r in by_name.items()
        if n != prim.estimator and set(range(w[0], w[1] + 1)) <= set(r.event_time.tolist())
    }
    out = {
        "event_study": _tidy_all([prim, *alts, *comps]),
        "event_study_chronic": _tidy_all([prim_ch, *alts_ch, *comps_ch]),
        "subgroups": subgroups,
        "robustness": rob,
        "event_means": event_means(matched, cfg.event_window),
        "chronic_by_month": chronic_by_month(panel),
        "sample_flow": sample_flow(panel, matched, prim),
        "metrics": metrics,
    }
    if meta.get("synthetic") and meta.get("truth"):
        truth = meta["truth"]
        tc = truth_comparison(by_name, truth, w, subgroups, prim.estimator)
        out["truth_comparison"] = tc
        metrics["truth"] = {
            "att_window": truth.get("att_window"),
            "att_window_chronic": truth.get("att_window_chronic"),
        }
    else:
        out["truth_comparison"] = pd.DataFrame(
            columns=[
                "estimator",
                "quantity",
                "estimate",
                "truth",
                "bias",
                "covered",
                "ci_low",
                "ci_high",
            ]
        )
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    params = load_params()
    cfg = EstimateConfig.from_params(params.get("estimate", {}))
    msec = params.get("match", {})
    spec = RiskSetSpec.from_params(
        {k: v for k, v in msec.items() if k in RiskSetSpec.__dataclass_fields__}
    )
    panel = Path("data/processed/panel.parquet")
    matched = pd.read_parquet("data/processed/matched.parquet")
    balance = pd.read_csv("reports/tables/balance.csv")
    meta_path = Path("data/interim/extract_meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    t0 = time.perf_counter()
    out = run(panel, matched, balance, spec, cfg, meta)
    tables = Path("reports/tables")
    for name in (
        "event_study",
        "event_study_chronic",
        "subgroups",
        "robustness",
        "event_means",
        "chronic_by_month",
        "sample_flow",
        "truth_comparison",
    ):
        write_csv(out[name], tables / f"{name}.csv", float_format="%.6g")
    write_json(out["metrics"], "reports/metrics.json")
    es = out["event_study"]
    m = out["metrics"]
    write_csv(
        es.loc[
            es["estimator"] == m["primary_estimator"],
            ["event_time", "estimate", "ci_low", "ci_high"],
        ],
        "reports/plots/event_study_primary.csv",
        float_format="%.6g",
    )
    log.info(
        "done in %.1f s: %s average over event times %s = %.2f (%.2f, %.2f)",
        time.perf_counter() - t0,
        m["primary_estimator"],
        m["att_window"],
        m["att"]["estimate"],
        m["att"]["ci_low"],
        m["att"]["ci_high"],
    )


if __name__ == "__main__":
    main()
