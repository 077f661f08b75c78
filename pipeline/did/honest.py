"""Rambachan–Roth relative-magnitude sensitivity (Δ^RM) for a window average of effects.

Under Δ^RM(M̄) the change in the parallel-trends violation from one post period to the
next is at most ``M̄`` times the largest change between consecutive pre periods, ``Δ``.
With the reference period ``r`` normalized to zero, the violation at event time
``t > r`` is then at most ``(t − r) · M̄ · Δ`` in absolute value, and that of the average
over a window at most ``M̄ · Δ · mean(t − r)`` (Rambachan & Roth 2023, §2.4).

Two quantities per ``M̄``:

``identified set (plug-in)``
    ``θ̂ ± M̄ · Δ̂ · mean(t − r)`` with the estimated ``Δ̂`` taken as known — the
    identified set at the point estimates, with no sampling error.
``robust interval (Bonferroni)``
    A confidence interval that is valid under Δ^RM(M̄) with the sampling error of both
    pieces accounted for: with probability at least ``1 − α/2`` every true pre-period
    change is below ``Δ⁺ = maxⱼ(|d̂ⱼ| + c_{α/(2m)} sⱼ)`` (Bonferroni over the ``m``
    changes), and with probability at least ``1 − α/2`` the window average lies within
    ``c_{α/2}`` standard errors; by the union bound the interval
    ``θ̂ ± (M̄ · Δ⁺ · mean(t − r) + c_{α/2} SE)`` covers the effect with probability at least
    ``1 − α``. It is wider than the HonestDiD package's conditional/hybrid intervals
    (which are not implemented here) — conservative, not approximate.

The *breakdown* ``M̄`` is the largest ``M̄`` whose robust interval still excludes zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.did.results import EventStudyResult

__all__ = ["relative_magnitudes"]


def _pre_changes(res: EventStudyResult) -> tuple[np.ndarray, np.ndarray, int]:
    """Consecutive pre-period changes ``d̂ⱼ``, their standard errors, and the reference."""
    refs = [int(r) for r in res.reference]
    if not refs:
        raise ValueError(f"{res.estimator}: relative magnitudes need a reference period")
    r = max(refs)
    pos = {int(e): i for i, e in enumerate(res.event_time)}
    k = len(res.event_time)

    def vec(e: int) -> np.ndarray | None:
        """Selector of the estimate at ``e`` (zero vector at a reference period)."""
        v = np.zeros(k)
        if e in refs:
            return v
        if e not in pos:
            return None
        v[pos[e]] = 1.0
        return v

    pre = sorted({int(e) for e in res.event_time if e < r} | set(refs))
    d, s = [], []
    for a, b in zip(pre[:-1], pre[1:], strict=True):
        va, vb = vec(a), vec(b)
        if b - a != 1 or va is None or vb is None or (a in refs and b in refs):
            continue  # not consecutive, not estimated, or zero by construction
        c = vb - va
        d.append(float(c @ res.estimate))
        s.append(float(np.sqrt(max(c @ res.vcov @ c, 0.0))))
    if not d:
        raise ValueError(f"{res.estimator}: no consecutive pre-period estimates")
    return np.array(d), np.array(s), r


def relative_magnitudes(
    res: EventStudyResult,
    window: tuple[int, int],
    mbars,
    *,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Δ^RM sensitivity of the average effect over ``window`` (inclusive).

    Returns one row per ``M̄`` (``mbar, estimate, std_error, max_pre_change,
    max_pre_change_upper, id_low, id_high, ci_low, ci_high``) and the breakdown value in
    ``attrs["breakdown_mbar"]``.
    """
    d, s, r = _pre_changes(res)
    lo, hi = int(window[0]), int(window[1])
    if lo <= r:
        raise ValueError(f"window {window} must start after the reference period {r}")
    avg = res.average((lo, hi), alpha)
    m = d.size
    c_pre = res.crit(alpha / (2 * m))  # two-sided at α/(2m) each: Bonferroni over m changes
    c_avg = res.crit(alpha / 2)
    delta_hat = float(np.max(np.abs(d)))
    delta_up = float(np.max(np.abs(d) + c_pre * s))
    mult = float(np.mean([t - r for t in range(lo, hi + 1)]))
    rows = []
    for mbar in mbars:
        b_hat = float(mbar) * delta_hat * mult
        b_up = float(mbar) * delta_up * mult
        rows.append(
            {
                "mbar": float(mbar),
                "estimate": avg.estimate,
                "std_error": avg.std_error,
                "max_pre_change": delta_hat,
                "max_pre_change_upper": delta_up,
                "id_low": avg.estimate - b_hat,
                "id_high": avg.estimate + b_hat,
                "ci_low": avg.estimate - b_up - c_avg * avg.std_error,
                "ci_high": avg.estimate + b_up + c_avg * avg.std_error,
            }
        )
    out = pd.DataFrame(rows)
    slack = abs(avg.estimate) - c_avg * avg.std_error
    out.attrs["breakdown_mbar"] = max(slack, 0.0) / (delta_up * mult) if delta_up > 0 else np.inf
    return out
