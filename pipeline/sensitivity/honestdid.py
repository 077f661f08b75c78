"""Rambachan–Roth (2023) robust inference for event studies, as the R ``HonestDiD`` package.

For event-study coefficients ``β̂ = (β̂_pre, β̂_post)`` (reference period omitted; the
``numPre`` pre-period coefficients first) with covariance ``Σ``, and a target
``θ = l'τ_post``, the parallel-trends violation ``δ`` is restricted to a set ``Δ``:

``Δ^SD(M)`` (smoothness)
    second differences of ``δ`` (with ``δ_0 = 0`` at the reference period) at most ``M``;
``Δ^RM(M̄)`` (relative magnitudes)
    every post-period first difference of ``δ`` at most ``M̄`` times the largest
    pre-period first difference — a union over which pre-period change is the largest
    (``s``) and its sign of polyhedra ``{A δ ≤ 0}``.

Confidence sets:

* :func:`flci` — the optimal fixed-length confidence interval for ``Δ^SD(M)``
  (Armstrong–Kolesár affine estimator; ``HonestDiD::findOptimalFLCI``), minimising the
  folded-normal half-length over the standard deviation bound ``h`` of the estimator.
* :func:`conditional_cs_sd`, :func:`conditional_cs_rm` — test inversion over a grid of
  ``θ`` of the Andrews–Roth–Pakes (2023) moment-inequality test with nuisance parameters:
  ``hybrid="ARP"`` the conditional test, ``hybrid="LF"`` the conditional/least-favourable
  hybrid (first stage at ``κ = α/10`` with the least-favourable critical value from 1,000
  simulated draws, second stage conditional at ``(α − κ)/(1 − κ)``). As in the R package
  only the moments involving post-period coefficients enter the test
  (``postPeriodMomentsOnly = TRUE``), the grid is ``1,000`` points over ``±20`` standard
  deviations of ``θ̂`` around the identified set under ``β = 0``, and the set is reported
  by its smallest and largest accepted grid points.
* :func:`breakdown_value` — the largest ``M`` (or ``M̄``) whose confidence set excludes zero.

The least-favourable critical values and the FLCI's folded-normal quantile use R's
random-number stream (``set.seed(0)``; Mersenne-Twister, inversion normals — reproduced by
:func:`r_rnorm`) so that results match R's exactly, not only in distribution. The test
reproduces the R package's README example (Medicaid expansion) and its ``BCdata`` results
(``tests/test_honestdid.py``). A single post period (R's no-nuisance branch) is not
implemented; the FLCI hybrid (``C-F``) for ``Δ^SD`` is not implemented either.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import ndtri

__all__ = [
    "breakdown_value",
    "conditional_cs_rm",
    "conditional_cs_sd",
    "flci",
    "original_cs",
    "r_rnorm",
    "sensitivity_table",
]

# -- R's random numbers ------------------------------------------------------------------


@lru_cache(maxsize=4)
def _r_unif(n: int, seed: int) -> np.ndarray:
    """``set.seed(seed); runif(n)`` with R's default Mersenne-Twister."""
    s = seed & 0xFFFFFFFF
    for _ in range(50):  # R's initial scrambling
        s = (69069 * s + 1) & 0xFFFFFFFF
    key = np.empty(625, dtype=np.uint32)
    for j in range(625):
        s = (69069 * s + 1) & 0xFFFFFFFF
        key[j] = s
    bg = np.random.MT19937()
    bg.state = {"bit_generator": "MT19937", "state": {"key": key[1:], "pos": 624}}
    u = bg.random_raw(n).astype(np.float64) * 2.3283064365386963e-10
    half = 0.5 * 2.328306437080797e-10
    u[u <= 0] = half
    u[1 - u <= 0] = 1 - half
    u.setflags(write=False)
    return u


def r_rnorm(n: int, seed: int = 0) -> np.ndarray:
    """``set.seed(seed); rnorm(n)`` exactly (inversion from two uniforms per draw)."""
    u = _r_unif(2 * n, seed)
    big = 134217728.0
    return ndtri((np.floor(big * u[0::2]) + u[1::2]) / big)


def _r_rmvnorm(n: int, sigma: np.ndarray, seed: int = 0) -> np.ndarray:
    """``set.seed(seed); mvtnorm::rmvnorm(n, sigma = sigma)`` (method "eigen")."""
    p = sigma.shape[0]
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    root = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T
    z = r_rnorm(n * p, seed).reshape(n, p)  # R fills by row
    return z @ root


def _quantile7(x: np.ndarray, p: float) -> float:
    return float(np.quantile(x, p))  # R's default type 7


# -- helpers -----------------------------------------------------------------------------


def _check(betahat, sigma, n_pre: int, n_post: int, l_vec) -> tuple:
    b = np.asarray(betahat, dtype=float).ravel()
    S = np.asarray(sigma, dtype=float)
    if b.size != n_pre + n_post or S.shape != (b.size, b.size):
        raise ValueError(f"betahat ({b.size}) and sigma {S.shape} must have numPre + numPost "
                         f"= {n_pre + n_post} entries")
    lv = (np.eye(n_post)[0] if l_vec is None else np.asarray(l_vec, dtype=float).ravel())
    if lv.size != n_post:
        raise ValueError(f"l_vec has {lv.size} entries, expected numPost = {n_post}")
    if n_pre < 1 or n_post < 1:
        raise ValueError("need at least one pre- and one post-period coefficient")
    return b, S, lv


def original_cs(betahat, sigma, n_pre: int, n_post: int, l_vec=None,
                alpha: float = 0.05) -> tuple[float, float]:
    """Conventional interval for ``θ = l'β_post`` (``HonestDiD::constructOriginalCS``)."""
    b, S, lv = _check(betahat, sigma, n_pre, n_post, l_vec)
    est = float(lv @ b[n_pre:])
    se = float(np.sqrt(lv @ S[n_pre:, n_pre:] @ lv))
    z = stats.norm.ppf(1 - alpha / 2)
    return est - z * se, est + z * se


# -- FLCI for Δ^SD -----------------------------------------------------------------------


def _flci_pieces(S, n_pre, n_post, lv):
    """Matrices of R's (U, W) parametrisation: bias = const + Σ|cumsum(W)|,
    variance = quadratic in W; Σ W = Σ t·l_t."""
    post = np.arange(1, n_post + 1)
    const = sum(abs(float(np.arange(1, s + 1) @ lv[n_post - s:])) for s in range(1, n_post + 1))
    const -= float(post @ lv)
    total = float(post @ lv)
    D = np.eye(n_pre) - np.eye(n_pre, k=-1)  # l_pre = D W (first differences)
    Q = D.T @ S[:n_pre, :n_pre] @ D
    q = 2 * D.T @ S[:n_pre, n_pre:] @ lv
    c0 = float(lv @ S[n_pre:, n_pre:] @ lv)
    return const, total, D, Q, q, c0


def _var(W, Q, q, c0):
    return float(W @ Q @ W + q @ W + c0)


def _min_var_w(Q, q, total):
    """Minimum-variance W subject to Σ W = total (a QP with one equality)."""
    k = Q.shape[0]
    K = np.block([[2 * Q, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    sol = np.linalg.lstsq(K, np.r_[-q, total], rcond=None)[0]
    return sol[:k]


def _min_bias_given_h(h, const, total, Q, q, c0, w_start):
    """Smallest worst-case bias (per unit M) of estimators with standard deviation ≤ h."""
    k = Q.shape[0]
    L = np.tril(np.ones((k, k)))
    # variables x = (W, P, N): cumsum(W)[:-1] = P - N, P, N >= 0; objective Σ(P + N) + |total|
    m = k - 1

    def obj(x):
        return float(x[k:].sum())

    def jac(x):
        g = np.zeros_like(x)
        g[k:] = 1.0
        return g

    cons = [
        {"type": "eq", "fun": lambda x: np.r_[(L @ x[:k])[:m] - x[k:k + m] + x[k + m:],
                                              x[:k].sum() - total],
         "jac": lambda x: np.vstack([np.hstack([L[:m], -np.eye(m), np.eye(m)]),
                                     np.r_[np.ones(k), np.zeros(2 * m)][None, :]])},
        {"type": "ineq", "fun": lambda x: h * h - _var(x[:k], Q, q, c0),
         "jac": lambda x: np.r_[-(2 * Q @ x[:k] + q), np.zeros(2 * m)]},
    ]
    cs = (L @ w_start)[:m]
    x0 = np.r_[w_start, np.maximum(cs, 0), np.maximum(-cs, 0)]
    res = optimize.minimize(obj, x0, jac=jac, constraints=cons, method="SLSQP",
                            bounds=[(None, None)] * k + [(0, None)] * (2 * m),
                            options={"ftol": 1e-14, "maxiter": 1000})
    W = res.x[:k]
    bias = const + float(np.abs(np.cumsum(W)[:m]).sum()) + abs(total)
    return bias, W


def _qfoldednormal(p: float, mu: float) -> float:
    """``HonestDiD:::.qfoldednormal``: quantile (type 7) of |N(0,1) + mu| over R's 10^6
    draws (``set.seed(0); rnorm(1e6)``), found on the sorted draws by counting instead of
    partitioning the folded sample at every call."""
    s = _fold_draws_sorted()
    n = s.size
    h = (n - 1) * p
    j = int(np.floor(h))

    def count(q):  # #{|d + mu| <= q}
        return int(np.searchsorted(s, q - mu, "right") - np.searchsorted(s, -q - mu, "left"))

    # invariant: count(lo) <= j < j + 1 < count(hi), so the j-th and (j+1)-th smallest
    # folded values lie in (lo, hi]
    lo, hi = 0.0, float(max(abs(s[0] + mu), abs(s[-1] + mu)))
    while count(hi) - count(lo) > 64:
        mid = (lo + hi) / 2
        c = count(mid)
        if c >= j + 2:
            hi = mid
        elif c <= j:
            lo = mid
        else:
            break
    base = count(lo)
    a, b = np.searchsorted(s, -hi - mu, "left"), np.searchsorted(s, -lo - mu, "left")
    c, d = np.searchsorted(s, lo - mu, "right"), np.searchsorted(s, hi - mu, "right")
    cand = np.abs(np.r_[s[a:b], s[c:d]] + mu)
    cand = np.sort(cand[(cand > lo) & (cand <= hi)])
    k = j - base
    x0, x1 = cand[k], cand[min(k + 1, cand.size - 1)]
    return float(x0 + (h - j) * (x1 - x0))


@lru_cache(maxsize=1)
def _fold_draws_sorted() -> np.ndarray:
    d = np.sort(r_rnorm(10**6, 0))
    d.setflags(write=False)
    return d


def _flci_h_star(f, a: float, b: float, n_points: int = 100) -> float:
    """R's search for the optimal h (``.findOptimalCIDerivativeBisection``): bisection on
    numerical derivatives of the convex half-length; a grid of ``n_points`` if it fails."""
    eps = np.finfo(float).eps
    failtol = eps ** 0.5
    dif = min((b - a) / n_points, abs(b) * eps ** (1 / 3))
    fa, fb = f(a), f(b)
    fpa = (f(a + dif) - fa) / dif
    fpb = (f(b - dif) - fb) / -dif
    maxiter = 10 * int(np.ceil(np.log(abs(b - a) / dif) / np.log(2)))
    failed = bool(fpa > fpb or not np.isfinite(fa) or not np.isfinite(fb))
    if not failed:
        if fpb < 0:
            return b
        if fpa > 0:
            return a
        it = 1
        while not failed and abs(b - a) > dif:
            it += 1
            x = (a + b) / 2
            fpx = (f(x + dif) - f(x - dif)) / (2 * dif)
            failed = bool(fpx > fpb + failtol or fpx + failtol < fpa or it > maxiter)
            if fpx > 0:
                b = x
            else:
                a = x
        if not failed:
            return (a + b) / 2
    grid = np.linspace(a, b, n_points)
    vals = np.array([f(h) for h in grid])
    return float(grid[int(np.nanargmin(vals))])


def flci(betahat, sigma, n_pre: int, n_post: int, l_vec=None, M: float = 0.0,
         alpha: float = 0.05) -> dict:
    """Optimal FLCI for ``θ = l'τ_post`` under ``Δ^SD(M)``.

    Returns a dict with ``lb, ub, half_length, optimal_vec`` (weights on all of ``β̂``),
    ``h`` (the estimator's standard deviation) and ``max_bias``.
    """
    b, S, lv = _check(betahat, sigma, n_pre, n_post, l_vec)
    const, total, D, Q, q, c0 = _flci_pieces(S, n_pre, n_post, lv)
    w_min = _min_var_w(Q, q, total)
    h_min = np.sqrt(_var(w_min, Q, q, c0))
    w0 = np.r_[np.zeros(n_pre - 1), total]
    h0 = np.sqrt(_var(w0, Q, q, c0))

    def solve(h):
        if h <= h_min * (1 + 1e-12):
            W = w_min
            return const + float(np.abs(np.cumsum(W)[:-1]).sum()) + abs(total), W
        return _min_bias_given_h(h, const, total, Q, q, c0, w_min)

    def half(h):
        bias, _ = solve(h)
        return _qfoldednormal(1 - alpha, M * bias / h) * h

    h_star = _flci_h_star(half, h_min, h0) if M > 0 and h0 > h_min else h_min
    bias, W = solve(h_star)
    hl = _qfoldednormal(1 - alpha, M * bias / h_star) * h_star
    v = np.r_[D @ W, lv]
    centre = float(v @ b)
    return {"lb": centre - hl, "ub": centre + hl, "half_length": hl, "optimal_vec": v,
            "h": float(h_star), "max_bias": float(M * bias)}


# -- ARP test with nuisance parameters ------------------------------------------------


def _gamma_matrix(lv: np.ndarray) -> np.ndarray:
    """Invertible matrix with ``l'`` as its first row (pivot columns of ``[l, I]``)."""
    rows = [lv]
    for e in np.eye(lv.size):
        if np.linalg.matrix_rank(np.vstack([*rows, e])) > len(rows):
            rows.append(e)
        if len(rows) == lv.size:
            break
    return np.vstack(rows)


def _highs_model(cost, col_lo, col_hi, row_lo, row_hi, A: np.ndarray):
    """A HiGHS model min cost'x s.t. row_lo <= A x <= row_hi, col_lo <= x <= col_hi,
    quiet and without presolve (re-solved warm many times); returns (highs, optimal)."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    lp = highspy.HighsLp()
    lp.num_row_, lp.num_col_ = A.shape
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    starts, idx, vals = [0], [], []
    for j in range(A.shape[1]):
        nz = np.flatnonzero(A[:, j])
        idx.extend(nz.tolist())
        vals.extend(A[nz, j].tolist())
        starts.append(len(idx))
    lp.a_matrix_.start_ = np.asarray(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(idx, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(vals, dtype=float)
    h.passModel(lp)
    return h, highspy.HighsModelStatus.kOptimal


class _MaxLP:
    """max_γ≥0 f'γ s.t. W'γ = e1 for a fixed W and many f (HiGHS, warm-started)."""

    def __init__(self, W: np.ndarray):
        m, p = W.shape
        e1 = np.r_[1.0, np.zeros(p - 1)]
        self.h, self.ok_status = _highs_model(np.zeros(m), np.zeros(m), np.full(m, np.inf),
                                              e1, e1, W.T)
        self.m = m
        self.cols = np.arange(m, dtype=np.int32)

    def solve(self, f: np.ndarray):
        h = self.h
        h.changeColsCost(self.m, self.cols, -np.asarray(f, float))
        h.run()
        if h.getModelStatus() != self.ok_status:
            return np.nan, None
        return float(-h.getInfo().objective_function_value), np.asarray(h.getSolution().col_value)


class _EtaLP:
    """min η s.t. y − X ξ ≤ η·sd for a fixed (X, sd) and many y (HiGHS, warm-started).

    ``solve(y)`` returns (ok, η, λ) with λ ≥ 0 the dual vertex (Lagrange multipliers).
    """

    def __init__(self, X: np.ndarray, sd: np.ndarray):
        m, k = X.shape
        self.m, self.inf = m, np.inf
        self.h, self.ok_status = _highs_model(
            np.r_[1.0, np.zeros(k)], np.full(k + 1, -np.inf), np.full(k + 1, np.inf),
            np.full(m, -np.inf), np.zeros(m), -np.column_stack([sd, X]))
        self.rows = np.arange(m, dtype=np.int32)

    def solve(self, y: np.ndarray):
        h = self.h
        h.changeRowsBounds(self.m, self.rows, np.full(self.m, -self.inf), -np.asarray(y, float))
        h.run()
        if h.getModelStatus() != self.ok_status:
            return False, np.nan, None
        eta = h.getInfo().objective_function_value
        lam = -np.asarray(h.getSolution().row_dual, dtype=float)
        return True, float(eta), lam


def _lp_eta(y, X, sd):
    """min η s.t. y − X δ ≤ η sd; returns (ok, η, λ) with λ the dual vertex."""
    return _EtaLP(X, sd).solve(y)


def _vlo_vup_dual(eta, s_T, gt, sigma, W):
    """Truncation points by the bisection of ARP (2023, App. D, Alg. 1), as R: the range
    of c over which max_γ γ'(s_T + Σγ̃ c / γ̃'Σγ̃) s.t. W'γ = e1, γ ≥ 0 equals c."""
    tol = 1e-6
    sig_b = float(np.sqrt(max(float(gt @ sigma @ gt), 0.0)))
    lo0, hi0 = min(-100.0, eta - 20 * sig_b), max(100.0, eta + 20 * sig_b)
    bvec = (sigma @ gt) / float(gt @ sigma @ gt)
    lp = _MaxLP(W)

    def check(c):
        val, x = lp.solve(s_T + bvec * c)
        return (np.isfinite(val) and abs(c - val) <= tol), x

    ok, _ = check(eta)
    if not ok:
        return eta, np.inf

    def side(start, toward_up):
        good, x = check(start)
        if good:
            return np.inf if toward_up else -np.inf
        it, dif = 1, 0.0
        a = float(x @ s_T)
        a = 0.0 if abs(a) < np.finfo(float).eps ** 0.75 else a
        mid = a / (1 - float(x @ bvec))
        while True:
            good, x = check(mid)
            if good:
                break
            it += 1
            if it >= 10:
                dif = tol + 1
                break
            a = float(x @ s_T)
            a = 0.0 if abs(a) < np.finfo(float).eps ** 0.75 else a
            mid = a / (1 - float(x @ bvec))
        lo, hi = (eta, mid) if toward_up else (mid, eta)
        while dif > tol and it < 10000:
            it += 1
            mid = (hi + lo) / 2
            good, _ = check(mid)
            if toward_up:
                lo, hi = (mid, hi) if good else (lo, mid)
            else:
                lo, hi = (lo, mid) if good else (mid, hi)
            dif = hi - lo
        return mid

    return side(lo0, False), side(hi0, True)


def _truncnorm_q(p, lo, hi):
    return float(stats.truncnorm.ppf(p, lo, hi))


def _arp_test(y, X, sigma, alpha, hybrid, kappa, lf_cv, lp=None):
    """One ARP (or LF-hybrid) test of E[y − X ξ] ≤ 0 for some ξ; returns reject (bool)."""
    k = X.shape[1]
    sd = np.sqrt(np.diag(sigma))
    ok, eta, lam = (lp or _EtaLP(X, sd)).solve(y)
    if not ok:
        return False
    if hybrid == "LF":
        size = (alpha - kappa) / (1 - kappa)
        if eta > lf_cv:
            return True
    else:
        size = alpha
    B = lam > 1e-6
    XB = X[B]
    degenerate = B.sum() != k + 1
    full_rank = XB.shape[0] > 0 and np.linalg.matrix_rank(XB) == min(XB.shape)
    if degenerate or not full_rank:
        W = np.column_stack([sd, X])
        gt = lam
        s2 = float(gt @ sigma @ gt)
        if not s2 > 1e-20:  # zero (or numerically negative) variance: R's rule
            return bool(eta > 0)
        sig_b = np.sqrt(s2)
        s_T = y - (sigma @ gt) * float(gt @ y) / s2
        vlo, vup = _vlo_vup_dual(eta, s_T, gt, sigma, W)
        maxstat = eta / sig_b
        zlo = vlo / sig_b
        zup = (min(vup, lf_cv) if hybrid == "LF" else vup) / sig_b
    else:
        Bc = ~B
        M_ = np.column_stack([sd[B], XB])
        Minv = np.linalg.inv(M_)
        n = y.size
        SB, SBc = np.eye(n)[B], np.eye(n)[Bc]
        G = np.column_stack([sd[Bc], X[Bc]]) @ Minv @ SB - SBc
        vB = (Minv[0] @ SB)
        s2 = float(vB @ sigma @ vB)
        if not s2 > 1e-20:  # as the dual branch: a degenerate statistic, reject iff η > 0
            return bool(eta > 0)
        sig_b = np.sqrt(s2)
        rho = G @ sigma @ vB / s2
        with np.errstate(divide="ignore", invalid="ignore"):
            mm = (-G @ y) / rho + float(vB @ y)
        vlo = mm[rho > 0].max() if (rho > 0).any() else -np.inf
        vup = mm[rho < 0].min() if (rho < 0).any() else np.inf
        zlo = vlo / sig_b
        zup = (min(vup, lf_cv) if hybrid == "LF" else vup) / sig_b
        maxstat = eta / sig_b
    if not (zlo <= maxstat <= zup):
        return False
    cval = max(0.0, _truncnorm_q(1 - size, zlo, zup))
    return bool(maxstat > cval)


def _lf_cv(X, sigma, kappa, sims=1000):
    """Least-favourable critical value (ARP 2023, §6.2) from R's draws (seed 0)."""
    sd = np.sqrt(np.diag(sigma))
    xi = _r_rmvnorm(sims, sigma, 0)
    lp = _EtaLP(X, sd)
    etas = np.array([lp.solve(x)[1] for x in xi])
    etas = etas[np.isfinite(etas)]
    return _quantile7(etas, 1 - kappa)


def _arp_ci_accept(b, S, n_pre, n_post, A, d, lv, alpha, hybrid, kappa, grid, rows,
                   skip=None) -> np.ndarray:
    """Acceptance of each grid value of θ (``HonestDiD:::.ARP_computeCI``)."""
    G = _gamma_matrix(lv)
    AG = A[:, n_pre:] @ np.linalg.inv(G)
    a1, Xfull = AG[:, 0], AG[:, 1:]
    Y = A @ b - d
    SY = A @ S @ A.T
    X = Xfull[rows]
    SYr = SY[np.ix_(rows, rows)]
    acc = np.zeros(grid.size, dtype=bool)
    if skip is not None and skip.all():
        return acc
    lf = _lf_cv(X, SYr, kappa) if hybrid == "LF" else np.inf
    lp = _EtaLP(X, np.sqrt(np.diag(SYr)))
    for i, th in enumerate(grid):
        if skip is not None and skip[i]:
            continue
        y = (Y - a1 * th)[rows]
        acc[i] = not _arp_test(y, X, SYr, alpha, hybrid, kappa, lf, lp)
    return acc


def _post_rows(A, n_pre):
    return np.flatnonzero((A[:, n_pre:] != 0).any(axis=1))


def _a_sd(n_pre, n_post):
    n = n_pre + n_post
    At = np.zeros((n - 1, n + 1))
    for r in range(n - 1):
        At[r, r:r + 3] = [1, -2, 1]
    At = np.delete(At, n_pre, axis=1)
    return np.vstack([At, -At])


def _a_rm(n_pre, n_post, mbar, s, positive):
    n = n_pre + n_post
    At = np.zeros((n, n + 1))
    for r in range(n):
        At[r, r:r + 2] = [-1, 1]
    v = np.zeros(n + 1)
    v[n_pre + s - 1:n_pre + s + 1] = [-1, 1]
    if not positive:
        v = -v
    UB = np.vstack([np.tile(v, (n_pre, 1)), np.tile(mbar * v, (n_post, 1))])
    A = np.vstack([At - UB, -At - UB])
    A = A[(A * A).sum(axis=1) > 1e-10]
    return np.delete(A, n_pre, axis=1)


def _sd_theta(S, n_pre, lv):
    return float(np.sqrt(lv @ S[n_pre:, n_pre:] @ lv))


def _idset_sd_zero(M, n_pre, n_post, lv):
    """Identified set of θ under Δ^SD(M) when β = 0 (R's grid centre)."""
    A = _a_sd(n_pre, n_post)
    n = n_pre + n_post
    c = np.r_[np.zeros(n_pre), lv]
    Aeq = np.hstack([np.eye(n_pre), np.zeros((n_pre, n_post))])
    kw = dict(A_ub=A, b_ub=np.full(A.shape[0], M), A_eq=Aeq, b_eq=np.zeros(n_pre),
              bounds=[(None, None)] * n, method="highs")
    mx = optimize.linprog(-c, **kw)
    mn = optimize.linprog(c, **kw)
    if mx.status != 0 or mn.status != 0:
        return 0.0, 0.0
    return float(mx.fun), float(-mn.fun)  # (−max, −min) of l′δ: the set is θ − l′δ


def _grid_result(grid, acc):
    if not acc.any():
        return np.nan, np.nan
    return float(grid[acc].min()), float(grid[acc].max())


def conditional_cs_sd(betahat, sigma, n_pre: int, n_post: int, l_vec=None, M: float = 0.0,
                      alpha: float = 0.05, hybrid: str = "ARP", grid_points: int = 1000,
                      grid_lb: float | None = None, grid_ub: float | None = None) -> dict:
    """Conditional (``hybrid="ARP"``) or conditional-LF hybrid (``"LF"``) set, ``Δ^SD(M)``.

    Returns ``lb, ub`` (smallest and largest accepted grid values), ``grid``, ``accept``.
    """
    if hybrid not in ("ARP", "LF"):
        raise ValueError("conditional_cs_sd: hybrid must be 'ARP' or 'LF'")
    b, S, lv = _check(betahat, sigma, n_pre, n_post, l_vec)
    if n_post < 2:
        raise NotImplementedError("conditional sets need at least two post periods")
    A = _a_sd(n_pre, n_post)
    d = np.full(A.shape[0], float(M))
    if grid_lb is None or grid_ub is None:
        lo, hi = _idset_sd_zero(M, n_pre, n_post, lv)
        sdt = _sd_theta(S, n_pre, lv)
        grid_lb = lo - 20 * sdt if grid_lb is None else grid_lb
        grid_ub = hi + 20 * sdt if grid_ub is None else grid_ub
    grid = np.linspace(grid_lb, grid_ub, grid_points)
    acc = _arp_ci_accept(b, S, n_pre, n_post, A, d, lv, alpha, hybrid, alpha / 10, grid,
                         _post_rows(A, n_pre))
    lb, ub = _grid_result(grid, acc)
    return {"lb": lb, "ub": ub, "grid": grid, "accept": acc}


def conditional_cs_rm(betahat, sigma, n_pre: int, n_post: int, l_vec=None,
                      Mbar: float = 0.0, alpha: float = 0.05, hybrid: str = "LF",
                      grid_points: int = 1000, grid_lb: float | None = None,
                      grid_ub: float | None = None) -> dict:
    """Conditional or conditional-LF hybrid set under ``Δ^RM(M̄)``: the union over the
    location and sign of the largest pre-period change (``computeConditionalCS_DeltaRM``).
    """
    if hybrid not in ("ARP", "LF"):
        raise ValueError("conditional_cs_rm: hybrid must be 'ARP' or 'LF'")
    b, S, lv = _check(betahat, sigma, n_pre, n_post, l_vec)
    if n_post < 2:
        raise NotImplementedError("conditional sets need at least two post periods")
    sdt = _sd_theta(S, n_pre, lv)
    grid = np.linspace(-20 * sdt if grid_lb is None else grid_lb,
                       20 * sdt if grid_ub is None else grid_ub, grid_points)
    acc = np.zeros(grid.size, dtype=bool)
    d = None
    for s in range(-(n_pre - 1), 1):
        for positive in (True, False):
            A = _a_rm(n_pre, n_post, Mbar, s, positive)
            d = np.zeros(A.shape[0])
            acc |= _arp_ci_accept(b, S, n_pre, n_post, A, d, lv, alpha, hybrid, alpha / 10,
                                  grid, _post_rows(A, n_pre), skip=acc.copy())
    lb, ub = _grid_result(grid, acc)
    return {"lb": lb, "ub": ub, "grid": grid, "accept": acc}


# -- tables and breakdown ----------------------------------------------------------------


def sensitivity_table(betahat, sigma, n_pre: int, n_post: int, l_vec=None, *,
                      delta: str = "RM", values: Sequence[float] = (0.5, 1.0, 1.5, 2.0),
                      method: str | None = None, alpha: float = 0.05,
                      grid_points: int = 1000) -> pd.DataFrame:
    """Robust confidence sets over ``values`` of ``M̄`` (``delta="RM"``) or ``M`` (``"SD"``).

    ``method``: for RM ``"C-LF"`` (default) or ``"Conditional"``; for SD ``"FLCI"``
    (default), ``"Conditional"`` or ``"C-LF"``. Columns ``lb, ub, method, Delta, M``
    as ``HonestDiD::createSensitivityResults*``.
    """
    rows = []
    for m in values:
        if delta == "RM":
            meth = method or "C-LF"
            hyb = {"C-LF": "LF", "Conditional": "ARP"}[meth]
            r = conditional_cs_rm(betahat, sigma, n_pre, n_post, l_vec, Mbar=m, alpha=alpha,
                                  hybrid=hyb, grid_points=grid_points)
        elif delta == "SD":
            meth = method or "FLCI"
            if meth == "FLCI":
                r = flci(betahat, sigma, n_pre, n_post, l_vec, M=m, alpha=alpha)
            else:
                hyb = {"C-LF": "LF", "Conditional": "ARP"}[meth]
                r = conditional_cs_sd(betahat, sigma, n_pre, n_post, l_vec, M=m, alpha=alpha,
                                      hybrid=hyb, grid_points=grid_points)
        else:
            raise ValueError("sensitivity_table: delta must be 'RM' or 'SD'")
        rows.append({"lb": r["lb"], "ub": r["ub"], "method": meth, "Delta": f"Delta{delta}",
                     "M": float(m)})
    return pd.DataFrame(rows, columns=["lb", "ub", "method", "Delta", "M"])


def breakdown_value(ci_fn, lo: float = 0.0, hi: float = 10.0, tol: float = 1e-3) -> float:
    """Largest ``M`` in ``[lo, hi]`` at which ``ci_fn(M) = (lb, ub)`` excludes zero.

    Bisection assumes the sets grow with ``M`` (they do: the restrictions nest). Returns
    ``nan`` when the set already includes zero at ``lo`` and ``hi`` when it never does.
    """
    def excludes(m):
        lb, ub = ci_fn(m)
        return bool(np.isfinite(lb) and np.isfinite(ub) and (lb > 0 or ub < 0))

    if not excludes(lo):
        return float("nan")
    if excludes(hi):
        return float(hi)
    a, b = lo, hi
    while b - a > tol:
        mid = (a + b) / 2
        a, b = (mid, b) if excludes(mid) else (a, mid)
    return float(a)
