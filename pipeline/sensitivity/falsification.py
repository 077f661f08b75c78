"""Falsification checks that can tell a valid design from a broken one.

For a design whose placebo (pre-period) estimates ``b_j`` (event times before the
reference period) should be zero:

* the **pre-trend test**: the joint Wald test that every placebo estimate is zero,
  conditional on the design's covariates (for the matched ANCOVA the placebo outcomes are
  months before the recorded months it adjusts for);
* the **equivalence bound**: the largest pre-period violation the data rule out. By the
  two one-sided tests (TOST) at level α, ``|β_j| < |b_j| + z_{1−α} s_j`` is established
  for each placebo month, and by the intersection–union principle all of them jointly at
  level α: ``bound = max_j (|b_j| + z_{1−α} s_j)`` (with a t quantile when the result has
  degrees of freedom). A small bound relative to the effect says the placebo months are
  informative; a large one says the check has no power to detect a violation of that size.

:func:`falsification_summary` returns both for one event-study result — the function the
validation study calls per replication to measure each check's power in each world.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.did.results import EventStudyResult

__all__ = ["equivalence_bound", "falsification_summary", "placebo_event_times"]


def placebo_event_times(res: EventStudyResult) -> list[int]:
    """Estimated event times before the reference period (the placebo outcomes)."""
    refs = [int(r) for r in res.reference]
    first = min(refs) if refs else 0
    return [int(e) for e in res.event_time if e < first and int(e) not in refs]


def _one_sided(alpha: float, df: float | None) -> float:
    if df is not None and np.isfinite(df) and df > 0:
        return float(stats.t.ppf(1 - alpha, df))
    return float(stats.norm.ppf(1 - alpha))


def equivalence_bound(res: EventStudyResult, alpha: float = 0.05,
                      event_times: list[int] | None = None) -> pd.DataFrame:
    """Per placebo event time: estimate, standard error and TOST bound ``|b| + c s``.

    The frame's ``attrs["bound"]`` is the joint bound (the maximum), ``attrs["alpha"]``
    the level.
    """
    ets = placebo_event_times(res) if event_times is None else list(event_times)
    if not ets:
        raise ValueError(f"{res.estimator}: no placebo event times for an equivalence bound")
    c = _one_sided(alpha, res.df)
    b = res.params.loc[ets].to_numpy(float)
    s = res.std_errors.loc[ets].to_numpy(float)
    out = pd.DataFrame({"event_time": ets, "estimate": b, "std_error": s,
                        "bound": np.abs(b) + c * s})
    out.attrs["bound"] = float(out["bound"].max())
    out.attrs["alpha"] = alpha
    return out


def falsification_summary(res: EventStudyResult, window: tuple[int, int] = (1, 6),
                          alpha: float = 0.05) -> dict:
    """Pre-trend test and equivalence bound of one result, beside its window effect.

    Returns a dict: ``pretrend_stat, pretrend_df, pretrend_p, pretrend_reject,
    equivalence_bound, placebo_max_abs, effect, bound_over_effect, n_placebo``.
    """
    ets = placebo_event_times(res)
    test = res.pretrend_test(ets)
    eq = equivalence_bound(res, alpha, ets)
    eff = res.average(window, alpha).estimate
    bound = eq.attrs["bound"]
    return {
        "pretrend_stat": test.statistic, "pretrend_df": test.df, "pretrend_p": test.p_value,
        "pretrend_reject": bool(test.p_value < alpha),
        "equivalence_bound": bound,
        "placebo_max_abs": float(np.abs(eq["estimate"]).max()),
        "effect": float(eff),
        "bound_over_effect": float(bound / abs(eff)) if eff else float("nan"),
        "n_placebo": len(ets),
    }
