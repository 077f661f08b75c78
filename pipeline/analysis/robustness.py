"""The robustness table: the primary design under other settings and assumptions.

:func:`robustness` builds the table (columns
:data:`pipeline.analysis.tables.ROBUSTNESS_COLUMNS`).  A new check is one more row: fit
what it needs (:func:`rematch` matches again with other settings) and append a row with
``check`` and the average's ``estimate, std_error, ci_low, ci_high, n_treated, note``.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import pandas as pd
from threadpoolctl import threadpool_limits

from pipeline.analysis.design import (
    OTHER_DESIGN_LABELS,
    add_outcomes,
    censoring_adjusted,
    other_design,
    other_design_note,
    primary,
)
from pipeline.analysis.schemas import ROBUSTNESS_COLUMNS
from pipeline.analysis.settings import EstimateConfig
from pipeline.clusters import HOME_COLUMNS, add_home_clusters, home_clusters
from pipeline.did.honest import relative_magnitudes
from pipeline.did.results import EventStudyResult
from pipeline.history import with_history
from pipeline.matching.riskset import PropensityCache, RiskSetMatcher, RiskSetSpec, stack_panels
from pipeline.outputs import PanelAccess


def shifted_panel(panel: PanelAccess, shift: int) -> pd.DataFrame:
    """The panel's matching columns with first visits moved ``shift`` school months
    earlier (the placebo check)."""
    pm = panel.for_matching()
    if not shift:
        return pm
    fv = pm["first_visit_school_month"].astype("float64")
    return pm.assign(first_visit_school_month=(fv - shift).astype("Float64"))


def rematch(
    panel: PanelAccess,
    spec: RiskSetSpec,
    shift: int = 0,
    ps_cache: PropensityCache | None = None,
    matcher: RiskSetMatcher | None = None,
    history: bool = False,
) -> pd.DataFrame:
    """Match again with other settings (``shift``: first visits moved that many school
    months earlier, for the placebo check; ``ps_cache``: reuse identical propensity fits;
    ``matcher``: a :class:`RiskSetMatcher` on the (shifted) panel, to share the risk-set
    rows and scores across settings that differ only in caliper or ratio; ``history``:
    the stacks carry the recorded year at each (shifted) first visit,
    :func:`pipeline.history.with_history`, as ``estimate.history`` needs)."""
    if matcher is None:
        matcher = RiskSetMatcher(shifted_panel(panel, shift), ps_cache=ps_cache)
    res = matcher.match(spec, balance=False)
    rows = panel.rows(res.matches["student_key"].unique())
    if shift:
        fv = rows["first_visit_school_month"].astype("float64")
        rows = rows.assign(first_visit_school_month=(fv - shift).astype("Float64"))
    stacked = stack_panels(rows, res.matches, window=spec.window)
    return with_history(stacked, rows) if history and not stacked.empty else stacked


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


@dataclass(frozen=True)
class RematchCheck:
    """A robustness row that matches again: its label, matching settings, first-visit
    shift (placebo), averaging window and note."""

    check: str
    spec: RiskSetSpec
    shift: int = 0
    window: tuple[int, int] | None = None
    note: str = ""


def check_row(
    check: str,
    m: pd.DataFrame | None,
    y: str,
    cfg: EstimateConfig,
    window: tuple[int, int] | None = None,
    note: str = "",
    homes: pd.DataFrame | None = None,
) -> dict:
    """The robustness row of the primary design on the re-matched stacks ``m`` (with the
    students' home clusters from ``homes`` when the errors are clustered by one of them,
    as the estimate stage adds them to the primary's stacks)."""
    window = cfg.att_window if window is None else window
    if m is None or m.empty:
        return {"check": check, "note": "no matches"}
    if homes is not None and cfg.cluster in homes.columns and cfg.cluster not in m.columns:
        m = add_home_clusters(m, homes)
    m = censoring_adjusted(add_outcomes(m), cfg, (y,))[0]
    try:
        avg = primary(m, y, cfg, bootstrap=False).average(window)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return {"check": check, "note": f"not estimable: {exc}"}
    n_t = int(m.loc[m["role"] == "treated", "student_key"].nunique())
    return {
        "check": check,
        "estimate": avg.estimate,
        "std_error": avg.std_error,
        "ci_low": avg.ci_low,
        "ci_high": avg.ci_high,
        "n_treated": n_t,
        "note": note,
    }


def panel_homes(panel: PanelAccess) -> pd.DataFrame:
    """Every student's home school and district (:func:`pipeline.clusters.home_clusters`),
    read from the panel as the estimate stage reads them."""
    return home_clusters(panel.columns(["student_key", "school_month", *HOME_COLUMNS]))


def run_checks(
    panel: PanelAccess,
    checks: list[RematchCheck],
    y: str,
    cfg: EstimateConfig,
    homes: pd.DataFrame | None = None,
) -> list[dict]:
    """Rows of ``checks``, in order; consecutive checks with the same shift share one
    :class:`RiskSetMatcher` (the panel checked once; settings that differ only in caliper
    or ratio re-match on the same scores). ``homes``: the students' home clusters
    (:func:`panel_homes`; read from the panel when not given)."""
    rows: list[dict] = []
    matcher, shift = None, None
    homes = panel_homes(panel) if homes is None else homes
    for c in checks:
        if matcher is None or c.shift != shift:
            matcher = None  # drop the previous one's rows and scores first
            matcher, shift = RiskSetMatcher(shifted_panel(panel, c.shift), keep=1), c.shift
        m = rematch(panel, c.spec, shift=c.shift, matcher=matcher, history=cfg.history)
        rows.append(check_row(c.check, m, y, cfg, c.window, c.note, homes))
        del m
    return rows


def rematch_checks(base: RiskSetSpec, cfg: EstimateConfig) -> list[list[RematchCheck]]:
    """The checks that match again, in two groups that share no work (each runs in one
    process): the placebo and other pools (a propensity model each), and the primary
    pool's calipers and ratios (one model, re-matched)."""
    first: list[RematchCheck] = []
    s = cfg.placebo_shift
    if s > 0:
        win = (1, max(1, s - 3))
        first.append(
            RematchCheck(
                f"placebo: first visits {s} school months earlier",
                replace(base, window=(max(base.window[0], -12), s - 1)),
                shift=s,
                window=win,
                note=f"average over placebo event times {win[0]}-{win[1]} (real event times "
                f"{win[0] - s} to {win[1] - s}, before the months referral looks at). Near "
                "zero when visited students' attendance was not already drifting before the "
                "visit; a negative value means the coming dip began earlier than the three "
                "months the primary design matches on",
            )
        )
    first += [
        RematchCheck(f"comparison pool: {pool}", replace(base, pool=pool, exact=None))
        for pool in cfg.pools
    ]
    second = [RematchCheck(f"caliper {cal} SD", replace(base, caliper=cal)) for cal in cfg.calipers]
    second += [RematchCheck(f"ratio {r}:1", replace(base, ratio=r)) for r in cfg.ratios]
    return [first, second]


_FORKED: dict = {}


def _run_group(i: int) -> list[dict]:
    panel, groups, y, cfg, homes = _FORKED["args"]
    with threadpool_limits(limits=1):
        return run_checks(panel, groups[i], y, cfg, homes)


def run_check_groups(
    panel: PanelAccess,
    groups: list[list[RematchCheck]],
    y: str,
    cfg: EstimateConfig,
    homes: pd.DataFrame | None = None,
) -> list[dict]:
    """Rows of every group's checks, groups in order; with ``cfg.rematch_workers`` > 1 the
    groups run in forked processes (each group's rows do not depend on the others', so
    the table is the same whatever the number of workers). ``homes``: as
    :func:`run_checks` (read once here when not given)."""
    groups = [g for g in groups if g]
    homes = panel_homes(panel) if homes is None else homes
    workers = min(int(cfg.rematch_workers), len(groups))
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        return [r for g in groups for r in run_checks(panel, g, y, cfg, homes)]
    panel.for_matching()  # read once in this process; the workers share its pages
    _FORKED["args"] = (panel, groups, y, cfg, homes)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
            parts = list(ex.map(_run_group, range(len(groups))))
    finally:
        _FORKED.clear()
    return [r for part in parts for r in part]


def robustness(
    panel: PanelAccess,
    matched: pd.DataFrame,
    base: RiskSetSpec,
    prim: EventStudyResult,
    y: str,
    cfg: EstimateConfig,
    other: tuple[str, EventStudyResult | Exception] | None = None,
    homes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The robustness table: the primary average, the pre-trend test, the other design
    (``other``: its kind and result or error, as :func:`other_design` gives; computed
    here when ``None``), the placebo, other pools, calipers and ratios, and the
    relative-magnitude sensitivity. ``homes``: the students' home clusters for the
    re-matched stacks (:func:`panel_homes`; read from the panel when not given)."""
    rows: list[dict] = []
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
            "note": (
                f"chi2({pt.df}) p = {pt.p_value:.4f}" if pt.f_statistic is None
                else f"F({pt.df}, {pt.clusters - pt.df}) = {pt.f_statistic:.3f}, "
                f"p = {pt.p_value:.4f}"
            ) + f", event times {list(pt.event_times)}",
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
    # placebo (first visits moved earlier, effect measured before the real visit), other
    # pools, calipers and ratios: each matches again
    rows.extend(run_check_groups(panel, rematch_checks(base, cfg), y, cfg, homes))
    try:
        rows.extend(
            {**r, "n_treated": n_prim}
            for r in relative_magnitude_bounds(prim, cfg.att_window, cfg.honest_mbar, cfg.alpha)
        )
    except ValueError as exc:  # an event window with no months before the reference
        rows.append({"check": "relative magnitudes", "note": f"not estimable: {exc}"})
    return pd.DataFrame(rows).reindex(columns=ROBUSTNESS_COLUMNS)
