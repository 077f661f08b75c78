"""Effect sizes as the What Works Clearinghouse computes them (Procedures and Standards
Handbook, version 5.0, Appendix E / the Supplement's effect-size formulas).

* **Hedges' g** for a continuous outcome: ``g = ω · Δ / S_pooled`` with the small-sample
  correction ``ω = 1 − 3 / (4N − 9)`` and ``S_pooled`` the unadjusted pooled within-group
  standard deviation ``sqrt(((n_t − 1) s_t² + (n_c − 1) s_c²) / (n_t + n_c − 2))``.
  ``Δ`` is the (covariate-adjusted) difference when the study adjusts for baseline
  differences. Its standard error is
  ``ω · sqrt((n_t + n_c) / (n_t n_c) + g² / (2 (n_t + n_c)))``; when the effect's own
  confidence interval is supplied (e.g. cluster-robust), the interval is that interval
  scaled by ``ω / S_pooled`` instead.
* **Cox index** for a binary outcome: ``d_Cox = ω · (logit p_t − logit p_c) / 1.65`` with
  standard error ``ω · sqrt(1/(n_t p_t (1 − p_t)) + 1/(n_c p_c (1 − p_c))) / 1.65``.
* **Improvement index**: ``100 · (Φ(g) − 0.5)``, the expected change in percentile rank of
  an average comparison-group student had they received the intervention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["EffectSize", "cox_index", "hedges_g", "improvement_index", "pooled_sd",
           "small_sample_omega"]


@dataclass(frozen=True)
class EffectSize:
    """An effect size with its standard error, interval and improvement index."""

    measure: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    improvement_index: float
    n_treated: int
    n_comparison: int

    def to_dict(self) -> dict:
        """The fields as a plain dict (one row of ``effect_sizes.csv``)."""
        return dict(self.__dict__)


def small_sample_omega(n_total: int) -> float:
    """Hedges' small-sample correction ``1 − 3 / (4N − 9)``."""
    if n_total < 3:
        raise ValueError("small_sample_omega: need at least 3 students")
    return 1.0 - 3.0 / (4.0 * n_total - 9.0)


def pooled_sd(sd_t: float, sd_c: float, n_t: int, n_c: int) -> float:
    """Unadjusted pooled within-group standard deviation."""
    if n_t < 1 or n_c < 1 or n_t + n_c < 3:
        raise ValueError("pooled_sd: need students in both groups")
    return float(np.sqrt(((n_t - 1) * sd_t**2 + (n_c - 1) * sd_c**2) / (n_t + n_c - 2)))


def improvement_index(g: float) -> float:
    """WWC improvement index, in percentile points."""
    return float(100.0 * (stats.norm.cdf(g) - 0.5))


def hedges_g(diff: float, sd_t: float, sd_c: float, n_t: int, n_c: int, *,
             ci: tuple[float, float] | None = None, alpha: float = 0.05) -> EffectSize:
    """Hedges' g of a (possibly adjusted) mean difference.

    Parameters
    ----------
    diff
        Intervention minus comparison mean (or the covariate-adjusted effect).
    sd_t, sd_c, n_t, n_c
        Standard deviations (unadjusted) and numbers of students in each group.
    ci
        The effect's own ``1 − alpha`` interval; when given the g interval is this scaled
        by ``ω / S_pooled`` (it then carries the effect's clustering and adjustment).
    """
    s = pooled_sd(sd_t, sd_c, n_t, n_c)
    if not s > 0:
        raise ValueError("hedges_g: pooled standard deviation must be positive")
    om = small_sample_omega(n_t + n_c)
    g = om * diff / s
    se = om * float(np.sqrt((n_t + n_c) / (n_t * n_c) + (g / om) ** 2 / (2 * (n_t + n_c))))
    if ci is not None:
        lo, hi = om * ci[0] / s, om * ci[1] / s
    else:
        z = stats.norm.ppf(1 - alpha / 2)
        lo, hi = g - z * se, g + z * se
    return EffectSize("hedges_g", float(g), se, float(lo), float(hi), improvement_index(g),
                      int(n_t), int(n_c))


def cox_index(p_t: float, p_c: float, n_t: int, n_c: int, *, alpha: float = 0.05,
              ci: tuple[float, float] | None = None) -> EffectSize:
    """Cox index of two proportions (e.g. chronic absence), with its interval.

    ``p_t`` may be the comparison proportion plus an adjusted difference; proportions must
    lie strictly between 0 and 1. With ``ci`` (the interval of ``p_t`` implied by the
    effect's own interval) the index's interval is the index at its ends (it then carries
    the effect's clustering and adjustment); otherwise the formula standard error's.
    """
    if not (0 < p_t < 1 and 0 < p_c < 1):
        raise ValueError(f"cox_index: proportions must be in (0, 1), got {p_t}, {p_c}")
    om = small_sample_omega(n_t + n_c)
    lo_t, lo_c = np.log(p_t / (1 - p_t)), np.log(p_c / (1 - p_c))
    d = om * (lo_t - lo_c) / 1.65
    se = om * float(np.sqrt(1 / (n_t * p_t * (1 - p_t)) + 1 / (n_c * p_c * (1 - p_c)))) / 1.65
    if ci is not None:
        ends = [om * (np.log(p / (1 - p)) - lo_c) / 1.65 for p in np.clip(ci, 1e-9, 1 - 1e-9)]
        lo, hi = float(min(ends)), float(max(ends))
    else:
        z = stats.norm.ppf(1 - alpha / 2)
        lo, hi = float(d - z * se), float(d + z * se)
    return EffectSize("cox_index", float(d), se, lo, hi, improvement_index(d), int(n_t),
                      int(n_c))
