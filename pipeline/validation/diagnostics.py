"""Whether each diagnostic the report prints fires in one replication of the study.

A diagnostic *fires* when it would make a reader of the report doubt the primary
estimate:

``pretrend``
    the primary design's joint pre-trend test (placebo event times before the reference
    months) rejects at ``alpha``;
``placebo``
    the placebo-date check (first visits moved ``placebo_shift`` school months earlier,
    :func:`pipeline.estimate.robustness`) has an interval that excludes zero;
``balance``
    the largest absolute standardised difference after matching exceeds
    :data:`SMD_THRESHOLD` (0.1, the usual threshold);
``attrition``
    the share of matched students still observed at the end of the averaging window
    differs between visited and (not yet visited) comparison students, two-sample test at
    ``alpha`` (:func:`attrition_test`);
``censoring``
    the censoring weights are extreme: the largest stabilised weight exceeds
    :data:`WEIGHT_MAX` (10).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

SMD_THRESHOLD = 0.1
WEIGHT_MAX = 10.0
DIAGNOSTICS = ("pretrend", "placebo", "balance", "attrition", "censoring")
#: How the report and the verdicts name each diagnostic.
DIAGNOSTIC_LABELS = {
    "pretrend": "pre-trend test",
    "placebo": "placebo-date check",
    "balance": "balance check",
    "attrition": "attrition check",
    "censoring": "censoring-weight check",
}
#: Replication-level raw values the diagnostics are judged from (:func:`fires`).
DIAGNOSTIC_COLUMNS = [
    "placebo_ci_low",
    "placebo_ci_high",
    "max_abs_smd_after",
    "attrition_p",
    "censoring_weight_max",
]
#: Columns :func:`fires` returns (1 fires, 0 does not, NaN not computable).
FIRES_COLUMNS = [f"fires_{d}" for d in DIAGNOSTICS]


def attrition_test(
    matched: pd.DataFrame, window: tuple[int, int] = (1, 6)
) -> tuple[float, float, float]:
    """Differential attrition among the matched students by the end of ``window``.

    A matched student (one per matched set and student) is *retained* when it has a row
    at event time ``window[1]``; comparison students visited by then (censored) are left
    out, as the design leaves them out. Returns the retained shares of visited and
    comparison students and the p-value of the two-sample test of equal shares.
    """
    hi = int(window[1])
    e = pd.to_numeric(matched["stack_event_time"], errors="coerce").to_numpy()
    d = pd.DataFrame(
        {
            "m": matched["match_id"].to_numpy(),
            "u": matched["student_key"].to_numpy(),
            "t": (matched["role"].astype(str) == "treated").to_numpy(),
            "obs": e == hi,
            "cens": matched["censored"].astype(bool).to_numpy() & (e <= hi),
        }
    )
    g = d.groupby(["m", "u"], sort=False).agg(
        t=("t", "first"), obs=("obs", "any"), cens=("cens", "any")
    )
    g = g[~g["cens"]]
    a, b = g.loc[g["t"], "obs"], g.loc[~g["t"], "obs"]
    if len(a) == 0 or len(b) == 0:
        return np.nan, np.nan, np.nan
    p1, p2 = float(a.mean()), float(b.mean())
    pool = (a.sum() + b.sum()) / (len(a) + len(b))
    se = np.sqrt(pool * (1 - pool) * (1 / len(a) + 1 / len(b)))
    p = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(p1 - p2) / se))
    return p1, p2, p


def replication_diagnostics(
    *,
    placebo_ci: tuple[float, float],
    balance: pd.DataFrame,
    matched: pd.DataFrame,
    weight_info: dict,
    window: tuple[int, int],
) -> dict[str, float]:
    """The raw :data:`DIAGNOSTIC_COLUMNS` of one replication (the pre-trend p-value is
    the estimator rows' own ``pretrend_p``)."""
    smd = pd.to_numeric(balance.get("smd_after"), errors="coerce").abs()
    wmax = weight_info.get("weight_max")
    return {
        "placebo_ci_low": float(placebo_ci[0]),
        "placebo_ci_high": float(placebo_ci[1]),
        "max_abs_smd_after": float(smd.max()) if smd.notna().any() else np.nan,
        "attrition_p": attrition_test(matched, window)[2],
        # no censoring event: every weight is one
        "censoring_weight_max": 1.0 if wmax is None else float(wmax),
    }


def fires(rows: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Whether each diagnostic fires (:data:`FIRES_COLUMNS`) in replication rows holding
    ``pretrend_p`` and :data:`DIAGNOSTIC_COLUMNS` (see the module docstring)."""

    def flag(cond: pd.Series, valid: pd.Series) -> pd.Series:
        return cond.astype(float).where(valid)

    lo, hi = rows["placebo_ci_low"], rows["placebo_ci_high"]
    return pd.DataFrame(
        {
            "fires_pretrend": flag(rows["pretrend_p"] < alpha, rows["pretrend_p"].notna()),
            "fires_placebo": flag((lo > 0) | (hi < 0), lo.notna() & hi.notna()),
            "fires_balance": flag(
                rows["max_abs_smd_after"] > SMD_THRESHOLD, rows["max_abs_smd_after"].notna()
            ),
            "fires_attrition": flag(rows["attrition_p"] < alpha, rows["attrition_p"].notna()),
            "fires_censoring": flag(
                rows["censoring_weight_max"] > WEIGHT_MAX, rows["censoring_weight_max"].notna()
            ),
        },
        index=rows.index,
    )
