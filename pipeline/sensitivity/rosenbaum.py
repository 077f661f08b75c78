"""Rosenbaum sensitivity analysis for matched sets with one treated and several controls.

The test is Rosenbaum's (2007) M-test as in R ``sensitivitymv::senmv``: within each
matched set, every member's score is the mean of Huber's ψ applied to its differences from
the other members, scaled by the ``lambda`` quantile of all within-set absolute differences
(``mscorev``); the statistic is the sum of the treated members' scores. Under a bias in
treatment assignment of at most Γ (odds of treatment of two members of a set differ by at
most a factor Γ), the upper bound on the one-sided P-value uses the separable approximation
of Gastwirth, Krieger & Rosenbaum (2000): in each set the maximum expectation over
assignments ``u`` with the first ``a`` sorted scores at 1 and the rest at Γ, and among
those, the maximum variance (``separable1v``). The large-sample deviate
``(T − E_max) / sqrt(V_max)`` is compared with the standard normal.

:func:`gamma_breakdown` finds the largest Γ at which the effect is still significant at α
(the "sensitivity value").

``method`` selects ``senmv``'s named settings: ``"h"`` (Huber's ψ, the default: inner = 0,
trim = 2.5, λ = 1/2), ``"i"`` (inner trimming, inner = 1/2) and ``"t"`` (the permutational
t-test: no trimming, each set's treated-minus-mean-control difference averaged over sets).

Checked against R (``tests/test_sensitivity_rosenbaum.py``, fixture
``tests/fixtures/senmv_reference.json``): ``sensitivitymv`` 1.4.3's ``senmv``, ``mscorev`` and
the sensitivity value (``uniroot`` on its P-value bound) on the lead-exposure pairs of
Morton et al. (1982) printed in Rosenbaum (2002, ch. 4) and on matched sets with one or two
controls printed in ``sensitivityfull``'s examples agree to within 1e-9 (relative). The
package's own worked examples (Rosenbaum 2007, Tables 1 and 3) ship their data only in
binary form and are not reproduced.

References
----------
Rosenbaum, P. R. (2007). Sensitivity analysis for m-estimates, tests and confidence
intervals in matched observational studies. *Biometrics* 63, 456–464.
Gastwirth, J. L., Krieger, A. M. & Rosenbaum, P. R. (2000). Asymptotic separability in
sensitivity analysis. *JRSS-B* 62, 545–555.
Morton, D. E. et al. (1982). Lead absorption in children of employees in a lead-related
industry. *American Journal of Epidemiology* 115, 549–555.
Rosenbaum, P. R. (2002). *Observational Studies*, 2nd ed. Springer, ch. 4.
Rosenbaum, P. R. (2015). Two R packages for sensitivity analysis in observational studies.
*Observational Studies* 1, 1–17.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["METHODS", "SenResult", "gamma_breakdown", "matched_sets_matrix", "mscores", "senmv"]

#: ``senmv``'s named methods without set weights: (inner, trim, λ, TonT).
METHODS: dict[str, tuple[float, float, float, bool]] = {
    "h": (0.0, 2.5, 0.5, False),
    "i": (0.5, 2.5, 0.5, False),
    "t": (0.0, np.inf, 0.5, True),
}


def mscores(ymat: np.ndarray, inner: float = 0.0, trim: float = 2.5, lam: float = 0.5,
            TonT: bool = False) -> np.ndarray:
    """M-scores of every member of every matched set (``sensitivitymv::mscorev``).

    ``ymat`` has one row per matched set, the treated response first and the controls
    after it, NaN where a set has fewer controls. Returns an array of the same shape.
    """
    y = np.asarray(ymat, dtype=float)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError("mscores: ymat must be a matrix with a treated and >= 1 control column")
    if not 0 <= inner <= trim:
        raise ValueError("mscores: need 0 <= inner <= trim")
    if not 0 < lam < 1:
        raise ValueError("mscores: lambda must be in (0, 1)")
    # differences of each member from each other member: (n, m, m), diagonal excluded
    d = y[:, :, None] - y[:, None, :]
    m = y.shape[1]
    off = ~np.eye(m, dtype=bool)
    d = d[:, off].reshape(y.shape[0], m, m - 1)
    if trim < np.inf or inner > 0:
        a = np.abs(d[np.isfinite(d)])
        h = float(np.quantile(a, lam)) if a.size else 0.0  # R's quantile type 7
        if h > 0:
            d = d / h
            ab = np.abs(d)
            if trim < np.inf and inner < trim:
                ab = np.minimum(1.0, np.maximum(0.0, ab - inner) / (trim - inner))
            elif trim < np.inf:
                ab = (ab > inner).astype(float)
            else:
                ab = np.maximum(0.0, ab - inner)
            d = np.sign(d) * ab
        else:
            raise ValueError("mscores: the scale (lambda quantile of |differences|) is zero")
    s = np.nansum(d, axis=2)
    s[~np.isfinite(y)] = np.nan
    ni = np.isfinite(y).sum(axis=1)
    use = (ni >= 2) & np.isfinite(y[:, 0])
    s, ni = s[use], ni[use]
    if TonT:
        return s / (ni - 1)[:, None] / s.shape[0]
    return s / ni[:, None]


@dataclass(frozen=True)
class SenResult:
    """Upper bound on the one-sided P-value at one Γ (fields as ``senmv``'s value)."""

    gamma: float
    pval: float
    deviate: float
    statistic: float
    expectation: float
    variance: float
    n_sets: int


def _separable(ms: np.ndarray, gamma: float) -> tuple[float, float, float]:
    """Statistic, maximum expectation and its maximum variance (``separable1v``)."""
    tstat = mu = var = 0.0
    for row in ms:
        rk = np.sort(row[np.isfinite(row)])
        mi = rk.size
        best_mu, best_var = -np.inf, -np.inf
        cs, cs2 = np.cumsum(rk), np.cumsum(rk * rk)
        tot, tot2 = cs[-1], cs2[-1]
        for a in range(1, mi):
            den = a + gamma * (mi - a)
            mua = (cs[a - 1] + gamma * (tot - cs[a - 1])) / den
            vara = (cs2[a - 1] + gamma * (tot2 - cs2[a - 1])) / den - mua * mua
            if mua > best_mu:
                best_mu, best_var = mua, vara
            elif mua == best_mu:
                best_var = max(best_var, vara)
        mu += best_mu
        var += best_var
        tstat += row[0]
    return float(tstat), float(mu), float(var)


def senmv(ymat: np.ndarray, gamma: float = 1.0, *, inner: float = 0.0, trim: float = 2.5,
          lam: float = 0.5, tau: float = 0.0, TonT: bool = False,
          method: str | None = None) -> SenResult:
    """Upper bound on the one-sided P-value of no effect (or an additive effect ``tau``)
    against a larger effect, at sensitivity parameter ``gamma``.

    As R's ``sensitivitymv::senmv``: the defaults ``inner=0, trim=2.5, lambda=1/2`` are
    Huber's ψ (``method="h"``); ``method`` (one of :data:`METHODS`) overrides ``inner``,
    ``trim``, ``lam`` and ``TonT`` as R does. ``ymat`` is a matrix of matched sets (treated
    first, NaN-padded) or a vector of treated-minus-control pair differences.
    """
    if gamma < 1:
        raise ValueError("senmv: gamma must be >= 1")
    if method is not None:
        if method not in METHODS:
            raise ValueError(f"senmv: method must be one of {sorted(METHODS)} "
                             f"(the weighted methods are not implemented), got {method!r}")
        inner, trim, lam, TonT = METHODS[method]
    y = np.array(ymat, dtype=float, copy=True)
    if y.ndim == 1:  # pair differences
        y = y[np.isfinite(y)]
        y = np.column_stack([y / 2, -y / 2])
    y[:, 0] = y[:, 0] - tau
    ms = mscores(y, inner, trim, lam, TonT)
    t, e, v = _separable(ms, gamma)
    dev = (t - e) / np.sqrt(v) if v > 0 else np.nan
    return SenResult(float(gamma), float(stats.norm.sf(dev)), float(dev), t, e, v, ms.shape[0])


def gamma_breakdown(ymat: np.ndarray, alpha: float = 0.05, *, gamma_max: float = 100.0,
                    **kw) -> float:
    """Largest Γ at which the upper-bound P-value is still ≤ ``alpha``.

    Returns 1.0 when the randomization test (Γ = 1) is not significant (with ``pval`` at
    Γ = 1 above alpha: nothing to explain away) — check :func:`senmv` at Γ = 1 to tell — and
    ``gamma_max`` when significance holds up to it. Otherwise the crossing of ``alpha`` is
    found by bisection on log Γ, as R's ``uniroot`` on ``senmv(...)$pval - alpha`` finds it.
    The bound can step where a set's maximising assignment changes (its variance jumps);
    the crossing is then at the step (the matched sets of the R check cross 0.05 at such a
    step, Γ = 2.625). Where the statistic is below its maximal expectation (P > 1/2) a jump
    up in variance lowers the bound, so the bound is not monotone in Γ there; ``alpha`` must
    be below 1/2.
    """
    if not 0 < alpha < 0.5:
        raise ValueError("gamma_breakdown: alpha must be in (0, 1/2)")
    f = lambda lg: senmv(ymat, float(np.exp(lg)), **kw).pval - alpha  # noqa: E731
    if f(0.0) > 0:
        return 1.0
    if f(np.log(gamma_max)) <= 0:
        return float(gamma_max)
    return float(np.exp(optimize.brentq(f, 0.0, np.log(gamma_max), xtol=1e-10)))


def matched_sets_matrix(data: pd.DataFrame, *, outcome: str, match: str = "match_id",
                        treated: str = "role", treated_value: str = "treated") -> np.ndarray:
    """One row per matched set: the treated outcome first, then the controls (NaN-padded).

    ``data`` has one row per student and matched set with the outcome already summarised
    (e.g. the mean over the post-visit window). Sets without a treated student or without
    a control are dropped.
    """
    for c in (outcome, match, treated):
        if c not in data.columns:
            raise ValueError(f"matched_sets_matrix: missing column {c!r}")
    d = data[[match, treated, outcome]].dropna(subset=[outcome])
    is_t = (d[treated].astype(str) == treated_value).to_numpy()
    d = d.assign(_t=~is_t).sort_values([match, "_t"], kind="stable")
    d["_k"] = d.groupby(match).cumcount()
    first_t = d.groupby(match)["_t"].transform("first")
    n = d.groupby(match)[outcome].transform("size")
    d = d[(~first_t) & (n >= 2)]
    wide = d.pivot(index=match, columns="_k", values=outcome)
    return wide.to_numpy(dtype=float)
