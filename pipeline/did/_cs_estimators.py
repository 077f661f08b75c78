"""Two-period (2×2) DiD estimators for panel data used by :mod:`pipeline.did.cs`.

These are numpy transcriptions of the panel estimators in Sant'Anna & Zhao's R package
``DRDID`` that R's ``did::att_gt`` calls for every group-time cell:

* :func:`drdid_panel` — the locally efficient doubly robust estimator
  (``DRDID::drdid_panel``: logit propensity score by maximum likelihood, linear outcome
  regression for the change in outcomes among comparison units, propensity-score
  trimming of comparison units at 0.995);
* :func:`reg_did_panel` — outcome regression (``DRDID::reg_did_panel``);
* :func:`std_ipw_did_panel` — normalised (Hájek) inverse probability weighting
  (``DRDID::std_ipw_did_panel``);
* :func:`unconditional_did_panel` — the closed form all three reduce to without
  covariates (difference of weighted mean changes).

Every function returns ``(att, influence)`` where ``influence`` has one entry per unit of
the 2×2 sample and is scaled as in ``DRDID`` (``se = sqrt(mean(influence**2) / n)``).
Weights are normalised to mean one inside the 2×2 sample, as ``DRDID`` does.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit

TRIM_LEVEL = 0.995
_EPS = np.finfo(float).eps


class CellEstimationError(ValueError):
    """A 2×2 cell cannot be estimated (overlap violated, singular design)."""


def _rcond(a: np.ndarray) -> float:
    """Reciprocal 1-norm condition number (R's ``rcond`` up to the estimate)."""
    try:
        c = np.linalg.cond(a, 1)
    except np.linalg.LinAlgError:
        return 0.0
    return 0.0 if not np.isfinite(c) or c == 0 else 1.0 / c


def logit_mle(
    X: np.ndarray, D: np.ndarray, w: np.ndarray, *, max_iter: int = 100, tol: float = 1e-11
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Weighted logistic regression by Newton–Raphson.

    Returns ``(coefficients, fitted probabilities, converged)``.
    """
    k = X.shape[1]
    beta = np.zeros(k)
    pbar = float(np.sum(w * D) / np.sum(w))
    if 0 < pbar < 1 and np.allclose(X[:, 0], 1.0):
        beta[0] = np.log(pbar / (1 - pbar))
    converged = False
    for _ in range(max_iter):
        p = expit(X @ beta)
        grad = X.T @ (w * (D - p))
        h = X.T @ ((w * p * (1 - p))[:, None] * X)
        if _rcond(h) < _EPS:  # (quasi-)separation: fitted probabilities at 0 or 1
            break
        step = np.linalg.solve(h, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            converged = True
            break
    return beta, expit(X @ beta), converged


def _wls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    xtwx = X.T @ (w[:, None] * X)
    if _rcond(xtwx) < _EPS:
        raise CellEstimationError("not enough comparison units to run the outcome regression")
    return np.linalg.solve(xtwx, X.T @ (w * y))


def _pscore(X: np.ndarray, D: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, ps, converged = logit_mle(X, D, w)
    if np.max(ps) >= 0.999:
        raise CellEstimationError("overlap condition violated (propensity score >= 0.999)")
    if not converged:
        warnings.warn("propensity score estimation did not converge", RuntimeWarning, stacklevel=3)
    return np.minimum(ps, 1 - 1e-6)


def _trim(ps: np.ndarray, D: np.ndarray) -> np.ndarray:
    trim = np.ones(D.shape[0], dtype=float)
    c = D == 0
    trim[c] = (ps[c] < TRIM_LEVEL).astype(float)
    return trim


def drdid_panel(dy: np.ndarray, D: np.ndarray, X: np.ndarray, w: np.ndarray):
    """Locally efficient doubly robust DiD (``DRDID::drdid_panel``)."""
    n = D.shape[0]
    w = w / w.mean()
    ps = _pscore(X, D, w)
    trim = _trim(ps, D)
    ctrl = D == 0
    coef = _wls(X[ctrl], dy[ctrl], w[ctrl])
    out = X @ coef
    resid = dy - out
    w_treat = trim * w * D
    w_cont = trim * w * ps * (1 - D) / (1 - ps)
    mt, mc = w_treat.mean(), w_cont.mean()
    eta_t = np.mean(w_treat * resid) / mt
    eta_c = np.mean(w_cont * resid) / mc
    att = eta_t - eta_c
    # influence function
    wols = w * (1 - D)
    xpx = X.T @ (wols[:, None] * X) / n
    if _rcond(xpx) < _EPS:
        raise CellEstimationError("the regression design matrix is singular")
    wols_e = wols * resid  # asy.lin.rep.wols = wols_e * X @ inv(xpx)
    W = ps * (1 - ps) * w
    xtwx = X.T @ (W[:, None] * X)
    if _rcond(xtwx) < _EPS:
        raise CellEstimationError("the propensity score design matrix is singular")
    hess = np.linalg.inv(xtwx) * n
    score_w = w * (D - ps)  # score.ps = score_w * X
    M1 = (w_treat[:, None] * X).mean(axis=0)
    M2 = ((w_cont * (resid - eta_c))[:, None] * X).mean(axis=0)
    M3 = (w_cont[:, None] * X).mean(axis=0)
    inf_treat_2 = wols_e * (X @ np.linalg.solve(xpx, M1))
    inf_cont_2 = score_w * (X @ (hess @ M2))
    inf_cont_3 = wols_e * (X @ np.linalg.solve(xpx, M3))
    inf_treat = (w_treat * (resid - eta_t) - inf_treat_2) / mt
    inf_control = (w_cont * (resid - eta_c) + inf_cont_2 - inf_cont_3) / mc
    return float(att), inf_treat - inf_control


def reg_did_panel(dy: np.ndarray, D: np.ndarray, X: np.ndarray, w: np.ndarray):
    """Outcome-regression DiD (``DRDID::reg_did_panel``)."""
    n = D.shape[0]
    w = w / w.mean()
    ctrl = D == 0
    coef = _wls(X[ctrl], dy[ctrl], w[ctrl])
    out = X @ coef
    w_treat = w * D
    w_cont = w * D
    mt, mc = w_treat.mean(), w_cont.mean()
    eta_t = np.mean(w_treat * dy) / mt
    eta_c = np.mean(w_cont * out) / mc
    att = eta_t - eta_c
    wols = w * (1 - D)
    xpx = X.T @ (wols[:, None] * X) / n
    M1 = (w_cont[:, None] * X).mean(axis=0)
    inf_cont_2 = wols * (dy - out) * (X @ np.linalg.solve(xpx, M1))
    inf_treat = w_treat * (dy - eta_t) / mt
    inf_control = (w_cont * (out - eta_c) + inf_cont_2) / mc
    return float(att), inf_treat - inf_control


def std_ipw_did_panel(dy: np.ndarray, D: np.ndarray, X: np.ndarray, w: np.ndarray):
    """Normalised inverse-probability-weighted DiD (``DRDID::std_ipw_did_panel``)."""
    n = D.shape[0]
    w = w / w.mean()
    ps = _pscore(X, D, w)
    trim = _trim(ps, D)
    w_treat = trim * w * D
    w_cont = trim * w * ps * (1 - D) / (1 - ps)
    mt, mc = w_treat.mean(), w_cont.mean()
    eta_t = np.mean(w_treat * dy) / mt
    eta_c = np.mean(w_cont * dy) / mc
    att = eta_t - eta_c
    W = ps * (1 - ps) * w
    xtwx = X.T @ (W[:, None] * X)
    if _rcond(xtwx) < _EPS:
        raise CellEstimationError("the propensity score design matrix is singular")
    hess = np.linalg.inv(xtwx) * n
    M2 = ((w_cont * (dy - eta_c))[:, None] * X).mean(axis=0)
    inf_cont_2 = w * (D - ps) * (X @ (hess @ M2))
    inf_treat = w_treat * (dy - eta_t) / mt
    inf_control = (w_cont * (dy - eta_c) + inf_cont_2) / mc
    return float(att), inf_treat - inf_control


def unconditional_did_panel(
    dy: np.ndarray, n_treated: int, w: np.ndarray | None = None, *, trim_controls: bool = True
):
    """Closed form of the three estimators without covariates.

    ``dy`` holds the outcome changes of the ``n_treated`` treated units first, then the
    comparison units.  ``att = Δ̄_treated − Δ̄_comparison`` (weighted means) with
    influence function ``n1 [w D (Δ − Δ̄_T) / W_T − w (1 − D)(Δ − Δ̄_C) / W_C]`` (``n1``
    units in the cell).  With ``trim_controls`` (DR and IPW) a treated share ≥ 0.995
    trims every comparison unit, as ``DRDID`` does, and the cell is not estimable.
    """
    n1 = dy.shape[0]
    dt, dc = dy[:n_treated], dy[n_treated:]
    if w is None:
        WT, WC = float(n_treated), float(n1 - n_treated)
        mt, mc = dt.sum() / WT, dc.sum() / WC
    else:
        wt, wc = w[:n_treated], w[n_treated:]
        WT, WC = wt.sum(), wc.sum()
        mt, mc = float(wt @ dt) / WT, float(wc @ dc) / WC
    p = WT / (WT + WC)
    if trim_controls and p >= 0.999:
        raise CellEstimationError("overlap condition violated (propensity score >= 0.999)")
    if trim_controls and p >= TRIM_LEVEL:
        return float("nan"), np.zeros(n1)
    inf = np.empty(n1)
    it, ic = inf[:n_treated], inf[n_treated:]
    np.subtract(dt, mt, out=it)
    it *= n1 / WT
    np.subtract(dc, mc, out=ic)
    ic *= -n1 / WC
    if w is not None:
        it *= wt
        ic *= wc
    return float(mt - mc), inf
