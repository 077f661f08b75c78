"""The robustness table: the primary design under other settings and assumptions.

:func:`robustness` builds the table (columns
:data:`pipeline.analysis.tables.ROBUSTNESS_COLUMNS`).  A new check is one more row: fit
what it needs (:func:`rematch` matches again with other settings) and append a row with
``check`` and the average's ``estimate, std_error, ci_low, ci_high, n_treated, note``.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from pipeline.analysis.design import (
    OTHER_DESIGN_LABELS,
    add_outcomes,
    other_design,
    other_design_note,
    primary,
    with_censoring_weights,
)
from pipeline.analysis.schemas import ROBUSTNESS_COLUMNS
from pipeline.analysis.settings import EstimateConfig
from pipeline.did.honest import relative_magnitudes
from pipeline.did.results import EventStudyResult
from pipeline.matching.riskset import PropensityCache, RiskSetSpec, riskset_match, stack_panels
from pipeline.outputs import PanelAccess


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
        m, _ = with_censoring_weights(add_outcomes(m), cfg.ipcw, cfg.ipcw_truncate)
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
        rows.extend(
            {**r, "n_treated": n_prim}
            for r in relative_magnitude_bounds(prim, cfg.att_window, cfg.honest_mbar, cfg.alpha)
        )
    except ValueError as exc:  # e.g. an event window with no months before the reference
        rows.append({"check": "relative magnitudes", "note": f"not estimable: {exc}"})
    return pd.DataFrame(rows).reindex(columns=ROBUSTNESS_COLUMNS)
