"""Omitted-variable sensitivity of a regression coefficient (Cinelli & Hazlett, 2020).

For the coefficient ``β̂`` of a treatment ``D`` in a (weighted) least-squares regression
of ``Y`` on ``D`` and observed covariates ``X``, an omitted confounder ``Z`` is described
by two partial R²: ``R²_{D~Z|X}`` (how much of the treatment's residual variance it
explains) and ``R²_{Y~Z|D,X}`` (how much of the outcome's). The bias it induces is at most

    |bias| = se(β̂) · sqrt(dof) · sqrt(R²_{Y~Z|D,X} · R²_{D~Z|X} / (1 − R²_{D~Z|X}))

and the standard error of the adjusted estimate is
``se · sqrt((1 − R²_{Y~Z|D,X}) / (1 − R²_{D~Z|X})) · sqrt(dof / (dof − 1))``
(Cinelli & Hazlett 2020, eqs. 4 and 5 and §4). From these:

* the partial R² of the treatment with the outcome, ``t² / (t² + dof)``;
* the robustness value ``RV_q``: the equal strength of both partial R² that would move the
  estimate by ``100·q`` % (to zero for ``q = 1``); ``RV_{q,α}`` the strength that would make
  the adjusted ``(1 − α)`` interval include ``(1 − q)·β̂``;
* bounds benchmarked on observed covariates: a confounder ``k_D`` times as strong as
  covariate ``X_j`` in explaining the treatment and ``k_Y`` times as strong in explaining
  the outcome (Cinelli & Hazlett 2020, §6.1, eq. 11 and its generalisation in their
  appendix);
* the contour grid of adjusted estimates (or t-values) over both partial R².

The regression is the classical (homoskedastic, weighted) least-squares fit, as R's ``lm``
with ``weights``; one set of fixed effects may be absorbed (its levels count in the
degrees of freedom). The functions reproduce R ``sensemakr`` on its Darfur example and
PyPI ``PySensemakr`` on the same regressions (``tests/test_sensitivity_ovb.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.did.fe import FixedEffects, factorize

__all__ = [
    "OVBResult",
    "adjusted_estimate",
    "adjusted_se",
    "benchmark_bounds",
    "ovb_contour_grid",
    "ovb_sensitivity",
    "partial_r2",
    "robustness_value",
]


def partial_r2(t_statistic, dof):
    """Partial R² of a regressor with the outcome from its t-statistic: ``t² / (t² + dof)``."""
    t = np.asarray(t_statistic, dtype=float)
    return t * t / (t * t + dof)


def robustness_value(t_statistic, dof: float, q: float = 1.0, alpha: float | None = None):
    """Robustness value ``RV_q`` (``alpha=None``) or ``RV_{q,α}``.

    Parameters
    ----------
    t_statistic
        t-value of the treatment coefficient.
    dof
        Residual degrees of freedom of the regression.
    q
        Share of the estimate that a confounder would have to remove (1: all of it).
    alpha
        With a level, the strength at which the adjusted ``1 − α`` interval reaches
        ``(1 − q)·β̂`` (Cinelli & Hazlett 2020, eq. 19; when the constraint
        ``R²_{D~Z|X} < 1`` binds, the extreme value ``(f_q² − f*²)/(1 + f_q²)``).

    Returns
    -------
    float or ndarray
        A value in ``[0, 1]``.
    """
    if q <= 0:
        raise ValueError("robustness_value: q must be > 0")
    fq = q * np.abs(np.asarray(t_statistic, dtype=float)) / np.sqrt(dof)
    if alpha is None:
        return 0.5 * (np.sqrt(fq**4 + 4 * fq**2) - fq**2)
    if not 0 < alpha < 1:
        raise ValueError("robustness_value: alpha must be in (0, 1)")
    f_crit = abs(stats.t.ppf(alpha / 2, dof - 1)) / np.sqrt(dof - 1)
    fqa = fq - f_crit
    rv = 0.5 * (np.sqrt(fqa**4 + 4 * fqa**2) - fqa**2)
    rvx = (fq**2 - f_crit**2) / (1 + fq**2)
    out = np.where(fqa < 0, 0.0, np.where(fq > 1 / f_crit, rvx, rv))
    return out if out.ndim else float(out)


def _check_r2(r2dz_x, r2yz_dx):
    a = np.asarray(r2dz_x, dtype=float)
    b = np.asarray(r2yz_dx, dtype=float)
    if np.any((a < 0) | (a >= 1)) or np.any((b < 0) | (b > 1)):
        raise ValueError("partial R2 of the confounder must be in [0, 1) (treatment) and [0, 1]")
    return a, b


def bias(r2dz_x, r2yz_dx, se: float, dof: float):
    """Largest absolute bias of a confounder with the given partial R² (eq. 4)."""
    a, b = _check_r2(r2dz_x, r2yz_dx)
    return np.sqrt(b * a / (1 - a)) * se * np.sqrt(dof)


def adjusted_estimate(r2dz_x, r2yz_dx, estimate: float, se: float, dof: float,
                      reduce: bool = True):
    """Estimate after removing (``reduce``) or adding the largest bias, keeping its sign."""
    b = bias(r2dz_x, r2yz_dx, se, dof)
    s = np.sign(estimate) if estimate != 0 else 1.0
    return estimate - s * b if reduce else estimate + s * b


def adjusted_se(r2dz_x, r2yz_dx, se: float, dof: float):
    """Standard error of the adjusted estimate (Cinelli & Hazlett 2020, eq. 5)."""
    a, b = _check_r2(r2dz_x, r2yz_dx)
    return np.sqrt((1 - b) / (1 - a)) * se * np.sqrt(dof / (dof - 1))


def benchmark_bounds(r2dxj_x: float, r2yxj_dx: float, kd: Sequence[float] | float = (1, 2, 3),
                     ky: Sequence[float] | float | None = None) -> pd.DataFrame:
    """Partial R² of a confounder ``k_D``/``k_Y`` times as strong as an observed covariate.

    Parameters
    ----------
    r2dxj_x
        Partial R² of the benchmark covariate ``X_j`` with the treatment, given the other
        covariates.
    r2yxj_dx
        Partial R² of ``X_j`` with the outcome, given the treatment and other covariates.
    kd, ky
        Multipliers (``ky`` defaults to ``kd``).

    Returns
    -------
    DataFrame
        ``kd, ky, r2dz_x, r2yz_dx`` (``r2yz_dx`` capped at 1).

    Raises
    ------
    ValueError
        When a multiplier implies ``R²_{D~Z|X} ≥ 1`` (an impossible confounder).
    """
    kd = np.atleast_1d(np.asarray(kd, dtype=float))
    ky = kd if ky is None else np.broadcast_to(np.asarray(ky, dtype=float), kd.shape)
    r2dz_x = kd * r2dxj_x / (1 - r2dxj_x)
    r2zxj = kd * r2dxj_x**2 / ((1 - kd * r2dxj_x) * (1 - r2dxj_x))
    if np.any(r2dz_x >= 1) or np.any((r2zxj >= 1) | (r2zxj < 0)):
        raise ValueError(f"benchmark_bounds: kd {kd.tolist()} implies R2 >= 1; use a lower kd")
    r2yz_dx = ((np.sqrt(ky) + np.sqrt(r2zxj)) / np.sqrt(1 - r2zxj)) ** 2 * r2yxj_dx / (1 - r2yxj_dx)
    return pd.DataFrame({"kd": kd, "ky": np.asarray(ky, dtype=float), "r2dz_x": r2dz_x,
                         "r2yz_dx": np.minimum(r2yz_dx, 1.0)})


def ovb_contour_grid(estimate: float, se: float, dof: float, *, lim: float = 0.4,
                     n: int = 41, what: str = "estimate", reduce: bool = True) -> pd.DataFrame:
    """Adjusted estimate (or t-value) on a grid of the two partial R² (the contour plot's data).

    Returns a long frame ``r2dz_x, r2yz_dx, value`` over ``[0, lim)`` × ``[0, lim]``.
    """
    if what not in ("estimate", "t"):
        raise ValueError("ovb_contour_grid: what must be 'estimate' or 't'")
    gx = np.linspace(0.0, min(lim, 0.999), n)
    gy = np.linspace(0.0, min(lim, 1.0), n)
    a, b = np.meshgrid(gx, gy, indexing="ij")
    val = adjusted_estimate(a, b, estimate, se, dof, reduce)
    if what == "t":
        val = val / adjusted_se(a, b, se, dof)
    return pd.DataFrame({"r2dz_x": a.ravel(), "r2yz_dx": b.ravel(), "value": val.ravel()})


def _wls(y: np.ndarray, X: np.ndarray, w: np.ndarray, dof: float):
    """Coefficients, classical standard errors and t-values of a weighted least-squares fit."""
    sw = np.sqrt(w)
    Xs, ys = X * sw[:, None], y * sw
    beta, *_ = np.linalg.lstsq(Xs, ys, rcond=None)
    resid = ys - Xs @ beta
    sigma2 = float(resid @ resid) / dof
    xtx_inv = np.linalg.pinv(Xs.T @ Xs)
    se = np.sqrt(np.diag(xtx_inv) * sigma2)
    return beta, se, beta / se


@dataclass
class OVBResult:
    """Cinelli–Hazlett sensitivity of one treatment coefficient.

    Attributes
    ----------
    estimate, std_error, t_statistic, dof
        The treatment coefficient of the (weighted) regression, its classical standard
        error, t-value and residual degrees of freedom.
    r2yd_x
        Partial R² of the treatment with the outcome.
    rv_q, rv_qa
        Robustness values ``RV_q`` and ``RV_{q,α}``.
    bounds
        Benchmark bounds: ``benchmark, kd, ky, r2dz_x, r2yz_dx, adjusted_estimate,
        adjusted_se, adjusted_t, adjusted_ci_low, adjusted_ci_high``.
    """

    treatment: str
    estimate: float
    std_error: float
    t_statistic: float
    dof: float
    q: float
    alpha: float
    r2yd_x: float
    rv_q: float
    rv_qa: float
    bounds: pd.DataFrame
    benchmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_obs: int = 0

    def contour(self, **kw) -> pd.DataFrame:
        """The contour grid around this estimate (see :func:`ovb_contour_grid`)."""
        return ovb_contour_grid(self.estimate, self.std_error, self.dof, **kw)

    def tidy(self) -> pd.DataFrame:
        """One row of sensitivity statistics (columns as the attributes)."""
        return pd.DataFrame([{
            "treatment": self.treatment, "estimate": self.estimate,
            "std_error": self.std_error, "t_statistic": self.t_statistic, "dof": self.dof,
            "n_obs": self.n_obs, "q": self.q, "alpha": self.alpha, "r2yd_x": self.r2yd_x,
            "rv_q": self.rv_q, "rv_qa": self.rv_qa,
        }])

    def summary(self) -> str:
        """Plain-text summary in the spirit of ``sensemakr``'s print method."""
        lines = [
            f"Omitted-variable sensitivity of {self.treatment!r}: estimate "
            f"{self.estimate:.5f} (SE {self.std_error:.5f}, t {self.t_statistic:.3f}, "
            f"dof {self.dof:g})",
            f"  partial R2 of treatment with outcome: {self.r2yd_x:.5f}",
            f"  robustness value, q = {self.q:g}: {self.rv_q:.5f}",
            f"  robustness value, q = {self.q:g}, alpha = {self.alpha:g}: {self.rv_qa:.5f}",
        ]
        for r in self.bounds.itertuples():
            lines.append(f"  {r.label}: R2dz.x {r.r2dz_x:.5f}, R2yz.dx {r.r2yz_dx:.5f}, "
                         f"adjusted {r.adjusted_estimate:.5f} "
                         f"[{r.adjusted_ci_low:.5f}, {r.adjusted_ci_high:.5f}]")
        return "\n".join(lines)


def ovb_sensitivity(
    data: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    weights: str | None = None,
    fe: str | None = None,
    benchmarks: Sequence[str] = (),
    kd: Sequence[float] = (1, 2, 3),
    ky: Sequence[float] | None = None,
    q: float = 1.0,
    alpha: float = 0.05,
    reduce: bool = True,
) -> OVBResult:
    """Cinelli–Hazlett sensitivity of ``treatment`` in the WLS regression of ``outcome``.

    Parameters
    ----------
    data
        One row per observation; every named column must be present and finite in the
        rows used (rows with zero weight are dropped).
    outcome, treatment, covariates
        Regression ``outcome ~ treatment + covariates`` (with an intercept, or the fixed
        effects ``fe`` absorbed).
    weights
        Column of non-negative observation weights (``lm``'s ``weights``).
    fe
        One categorical column whose levels are absorbed (counted in the degrees of freedom).
    benchmarks
        Covariates (each in ``covariates``) to benchmark the confounder against.
    kd, ky
        Multipliers of the benchmark's strength with the treatment and the outcome.
    q, alpha, reduce
        As in :func:`robustness_value`; ``reduce`` moves the estimate towards zero.

    Returns
    -------
    OVBResult
    """
    cols = [outcome, treatment, *covariates, *([weights] if weights else []),
            *([fe] if fe else [])]
    miss = [c for c in cols if c not in data.columns]
    if miss:
        raise ValueError(f"ovb_sensitivity: missing columns {miss}")
    bad = [b for b in benchmarks if b not in covariates]
    if bad:
        raise ValueError(f"ovb_sensitivity: benchmark covariates {bad} are not covariates")
    w = (np.ones(len(data)) if weights is None
         else pd.to_numeric(data[weights], errors="coerce").to_numpy(dtype=float))
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"ovb_sensitivity: weights {weights!r} must be finite and >= 0")
    keep = w > 0
    d = data.loc[keep]
    w = w[keep]
    num = [outcome, treatment, *covariates]
    M = d[num].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(M)):
        bad_c = [c for c, ok in zip(num, np.isfinite(M).all(axis=0), strict=True) if not ok]
        raise ValueError(f"ovb_sensitivity: non-finite values in columns {bad_c}")
    n = len(d)
    if fe is not None:
        codes, n_lev = factorize(d[fe])
        M = FixedEffects([codes], w).demean(M)
        n_absorbed = n_lev
    else:
        M = np.column_stack([M, np.ones(n)])
        n_absorbed = 0
    y, Z = M[:, 0], M[:, 1:]
    rank = np.linalg.matrix_rank(Z * np.sqrt(w)[:, None])
    if rank < Z.shape[1]:
        raise ValueError("ovb_sensitivity: the treatment and covariates are collinear")
    dof = float(n - Z.shape[1] - n_absorbed)
    if dof < 2:
        raise ValueError("ovb_sensitivity: too few observations for the regression")
    beta, se, tv = _wls(y, Z, w, dof)
    est, s, t = float(beta[0]), float(se[0]), float(tv[0])
    r2yd = float(partial_r2(t, dof))
    rvq = float(robustness_value(t, dof, q))
    rvqa = float(robustness_value(t, dof, q, alpha))
    # treatment regression on the covariates, for the benchmark's partial R² with D
    _, _, t_d = _wls(Z[:, 0], Z[:, 1:], w, dof + 1) if Z.shape[1] > 1 else (None, None, [])
    rows, bench = [], []
    crit = stats.t.ppf(1 - alpha / 2, dof)
    for b in benchmarks:
        j = list(covariates).index(b)
        r2y = float(partial_r2(tv[1 + j], dof))
        r2d = float(partial_r2(t_d[j], dof + 1))
        bench.append({"benchmark": b, "r2dxj_x": r2d, "r2yxj_dx": r2y})
        bb = benchmark_bounds(r2d, r2y, kd, ky)
        for r in bb.itertuples():
            ae = float(adjusted_estimate(r.r2dz_x, r.r2yz_dx, est, s, dof, reduce))
            ase = float(adjusted_se(r.r2dz_x, r.r2yz_dx, s, dof))
            h0 = est * (1 - q)
            kx = f"{r.kd:g}" if r.kd == r.ky else f"{r.kd:g}/{r.ky:g}"
            rows.append({
                "benchmark": b, "label": f"{kx}x {b}", "kd": r.kd, "ky": r.ky,
                "r2dz_x": r.r2dz_x, "r2yz_dx": r.r2yz_dx, "adjusted_estimate": ae,
                "adjusted_se": ase, "adjusted_t": (ae - h0) / ase,
                "adjusted_ci_low": ae - crit * ase, "adjusted_ci_high": ae + crit * ase,
            })
    cols_b = ["benchmark", "label", "kd", "ky", "r2dz_x", "r2yz_dx", "adjusted_estimate",
              "adjusted_se", "adjusted_t", "adjusted_ci_low", "adjusted_ci_high"]
    return OVBResult(
        treatment=treatment, estimate=est, std_error=s, t_statistic=t, dof=dof, q=q,
        alpha=alpha, r2yd_x=r2yd, rv_q=rvq, rv_qa=rvqa,
        bounds=pd.DataFrame(rows, columns=cols_b),
        benchmarks=pd.DataFrame(bench, columns=["benchmark", "r2dxj_x", "r2yxj_dx"]), n_obs=n,
    )
