"""Wild cluster bootstrap (restricted, WCR) for linear hypotheses in least squares.

Follows Roodman, MacKinnon, Nielsen & Webb (2019, "Fast and wild", the algorithm behind
Stata's ``boottest`` and R's ``fwildclusterboot``):

* the null ``H₀: cᵀβ = θ`` is imposed when generating the bootstrap samples
  (restricted residuals ``ũ``; ``y* = Xβ̃ + ũ ∘ v_g``);
* ``v_g`` are cluster-level weights: Webb's six-point distribution (default;
  ``±√(1/2), ±1, ±√(3/2)``, each with probability 1/6) or Rademacher (``±1``);
* the statistic is the CR1 t-statistic, re-computed in every replication in closed form
  from cluster-level sums (cost independent of the number of observations);
* the p-value is symmetric: ``P*(|t*| ≥ |t|)``;
* the confidence interval inverts the test: the set of ``θ`` not rejected at ``α``, found
  by root-finding on ``p(θ) − α`` with the same draws for every ``θ``.

Fixed effects are handled by Frisch–Waugh–Lovell: pass the partialled-out regressors and
outcome (``FEOLSResult.extra["Xt"]``/``["yt"]``) — the bootstrap then runs in the
projected space, as boottest does for absorbed fixed effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["WEBB_POINTS", "WildTest", "webb_weights", "wild_cluster_bootstrap"]

WEBB_POINTS = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


def webb_weights(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Draws from Webb's six-point distribution (mean 0, variance 1)."""
    return WEBB_POINTS[rng.integers(0, 6, size=size)]


@dataclass(frozen=True)
class WildTest:
    """Result of a wild cluster bootstrap test of ``cᵀβ = θ₀``."""

    estimate: float
    std_error: float
    t_stat: float
    p_value: float
    ci_low: float
    ci_high: float
    B: int
    weights: str
    n_clusters: int


class _WCR:
    """Precomputed cluster-level pieces of one hypothesis ``cᵀβ = θ``."""

    def __init__(self, Xt, yt, w, cl, c, ssc):
        G = int(cl.max()) + 1
        XtW = Xt * w[:, None]
        A = np.linalg.inv(Xt.T @ XtW)
        beta = A @ (XtW.T @ yt)
        uhat = yt - Xt @ beta
        k = Xt.shape[1]
        # per-cluster X_g'W X_g and X_g'W û_g
        order = np.argsort(cl, kind="stable")
        bounds = np.searchsorted(cl[order], np.arange(G + 1))
        H = np.empty((G, k, k))
        Sh = np.empty((G, k))
        for gi in range(G):
            idx = order[bounds[gi] : bounds[gi + 1]]
            Xg = Xt[idx]
            H[gi] = Xg.T @ XtW[idx]
            Sh[gi] = XtW[idx].T @ uhat[idx]
        Ac = A @ c
        cAc = float(c @ Ac)
        self.est = float(c @ beta)
        self.ssc = ssc
        # unrestricted CR1 standard error of cᵀβ
        sc = Sh @ Ac
        self.se = float(np.sqrt(ssc * np.sum(sc**2)))
        # restricted pieces are linear in d = (cᵀβ̂ − θ)/cᵀAc:
        # S_g(θ) = Ŝ_g + H_g A c d
        HAc = H @ Ac  # G × k
        self.a0 = Sh @ Ac  # cᵀA Ŝ_g
        self.a1 = HAc @ Ac  # cᵀA H_g A c
        # M[g,h] = cᵀA H_g A S_h(θ)
        cAH = HAc  # (cᵀ A H_g) as rows, H symmetric
        ASh = Sh @ A  # rows A Ŝ_h
        AHAc = HAc @ A  # rows A H_h A c
        self.M0 = cAH @ ASh.T
        self.M1 = cAH @ AHAc.T
        self.cAc = cAc
        self.G = G

    def tstats(self, theta: float, V: np.ndarray) -> tuple[float, np.ndarray]:
        d = (self.est - theta) / self.cAc
        a = self.a0 + self.a1 * d
        M = self.M0 + self.M1 * d
        num = V @ a
        sc = V * a[None, :] - V @ M.T
        den = np.sqrt(self.ssc * np.sum(sc**2, axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = np.where(den > 0, num / den, 0.0)
        t0 = (self.est - theta) / self.se if self.se > 0 else np.inf
        return float(t0), tb

    def pvalue(self, theta: float, V: np.ndarray) -> float:
        t0, tb = self.tstats(theta, V)
        return float(np.mean(np.abs(tb) >= abs(t0) - 1e-12 * max(1.0, abs(t0))))


def wild_cluster_bootstrap(
    Xt: np.ndarray,
    yt: np.ndarray,
    cluster: np.ndarray,
    c: np.ndarray,
    *,
    theta0: float = 0.0,
    w: np.ndarray | None = None,
    B: int = 999,
    seed: int | np.random.Generator | None = None,
    weights: str = "webb",
    alpha: float = 0.05,
    ssc: float = 1.0,
    ci: bool = True,
    draws: np.ndarray | None = None,
) -> WildTest:
    """WCR wild cluster bootstrap test and test-inversion interval for ``cᵀβ``.

    Parameters
    ----------
    Xt, yt
        Regressors (n × k) and outcome with any fixed effects partialled out.
    cluster
        Integer cluster codes (n).
    c
        Linear combination (k); e.g. a unit vector for one coefficient, ``1/m`` on the
        window for a window average.
    theta0
        Null value for the p-value.
    w
        Observation weights (``None``: 1).
    B, seed, weights
        Replications, random seed, and ``"webb"`` or ``"rademacher"`` cluster weights.
    alpha
        Level of the confidence interval.
    ssc
        Small-sample factor of the CR1 variance (it cancels in the bootstrap p-value but
        sets the reported standard error).
    ci
        Compute the test-inversion interval.
    draws
        Precomputed ``B × G`` weight draws (to share draws between hypotheses).

    Returns
    -------
    WildTest
    """
    Xt = np.asarray(Xt, dtype=float)
    n, k = Xt.shape
    yt = np.asarray(yt, dtype=float)
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    cl = np.unique(np.asarray(cluster), return_inverse=True)[1].astype(np.int64)
    G = int(cl.max()) + 1
    if G < 2:
        raise ValueError("wild cluster bootstrap needs at least 2 clusters")
    c = np.asarray(c, dtype=float).ravel()
    if c.size != k:
        raise ValueError(f"hypothesis vector has {c.size} entries for {k} coefficients")
    if draws is None:
        draws = draw_weights(G, B=B, seed=seed, weights=weights)
    V = np.asarray(draws, dtype=float)
    if V.shape[1] != G:
        raise ValueError(f"draws have {V.shape[1]} columns for {G} clusters")
    h = _WCR(Xt, yt, w, cl, c, ssc)
    p = h.pvalue(theta0, V)
    t0 = (h.est - theta0) / h.se if h.se > 0 else np.inf
    lo = hi = float("nan")
    if ci and h.se > 0:
        lo = _invert(h, V, alpha, -1)
        hi = _invert(h, V, alpha, +1)
    return WildTest(
        estimate=h.est,
        std_error=h.se,
        t_stat=float(t0),
        p_value=p,
        ci_low=lo,
        ci_high=hi,
        B=V.shape[0],
        weights=weights,
        n_clusters=G,
    )


def draw_weights(G: int, *, B: int = 999, seed=None, weights: str = "webb") -> np.ndarray:
    """``B × G`` cluster weight draws (Webb six-point or Rademacher)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if weights == "webb":
        return webb_weights(rng, (B, G))
    if weights == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=(B, G))
    raise ValueError(f"weights must be 'webb' or 'rademacher', not {weights!r}")


def _invert(h: _WCR, V: np.ndarray, alpha: float, side: int) -> float:
    """Boundary of ``{θ : p(θ) > α}`` on one side of the estimate."""
    f = lambda th: h.pvalue(th, V) - alpha  # noqa: E731
    step = h.se
    inner = h.est
    outer = h.est + side * 2.0 * step
    it = 0
    while f(outer) > 0:
        inner = outer
        step *= 2
        outer = h.est + side * 2.0 * step
        it += 1
        if it > 60:
            return side * float("inf")
    a, b = sorted((inner, outer))
    return float(optimize.brentq(f, a, b, xtol=1e-10 * max(1.0, h.se), maxiter=200))
