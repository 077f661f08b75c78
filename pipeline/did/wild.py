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
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from pipeline.runner import progress

__all__ = [
    "WEBB_POINTS",
    "WildTest",
    "FEW_CLUSTERS",
    "add_wild_bootstrap",
    "choose_weights",
    "partial_out",
    "prepare_fit",
    "webb_weights",
    "wild_cluster_bootstrap",
]

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


class _Fit:
    """Pieces of one weighted least-squares fit shared by every hypothesis on it."""

    def __init__(self, Xt, yt, w, cl, ssc):
        self.G = G = int(cl.max()) + 1
        self.ssc = ssc
        self.Xt = Xt
        self.XtW = XtW = Xt * w[:, None]
        self.A = np.linalg.inv(Xt.T @ XtW)
        self.beta = self.A @ (XtW.T @ yt)
        uhat = yt - Xt @ self.beta
        # rows sorted by cluster: per-cluster sums by np.add.reduceat (no Python loop)
        self.order = np.argsort(cl, kind="stable")
        counts = np.bincount(cl, minlength=G)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.Sh = self.cluster_sums(XtW * uhat[:, None])  # X_g'W û_g, G × k
        self.ASh = self.Sh @ self.A  # rows A Ŝ_g

    def cluster_sums(self, Z: np.ndarray) -> np.ndarray:
        return np.add.reduceat(Z[self.order], self.starts, axis=0)


class _WCR:
    """Cluster-level pieces of one hypothesis ``cᵀβ = θ``.

    Everything is linear in ``d = (cᵀβ̂ − θ)/cᵀAc``: the bootstrap numerators are
    ``n₀ + d n₁`` and the score matrix is ``S₀ + d S₁`` (B × G), so the squared CR1
    denominators are the quadratic ``q₀₀ + 2d q₀₁ + d² q₁₁``. Once the five B-vectors are
    computed (O(B·G·k), in blocks of draws, using that the cluster cross-products have rank
    k), each ``θ`` costs O(B) — the test-inversion interval is cheap at any G.
    """

    def __init__(self, Xt, yt, w, cl, c, ssc, fit: _Fit | None = None):
        f = fit if fit is not None else _Fit(Xt, yt, w, cl, ssc)
        self.fit = f
        A = f.A
        Ac = A @ c
        self.cAc = float(c @ Ac)
        self.est = float(c @ f.beta)
        self.ssc = f.ssc
        self.G = f.G
        # H_g A c = X_g'W X_g A c, without forming the G k×k blocks
        self.HAc = f.cluster_sums(f.XtW * (f.Xt @ Ac)[:, None])  # G × k
        self.a0 = f.Sh @ Ac  # cᵀA Ŝ_g
        self.a1 = self.HAc @ Ac  # cᵀA H_g A c
        self.AHAc = self.HAc @ A  # rows A H_h A c
        # unrestricted CR1 standard error of cᵀβ
        self.se = float(np.sqrt(f.ssc * np.sum(self.a0**2)))
        self._V = None

    def _prepare(self, V: np.ndarray) -> None:
        if self._V is V:
            return
        B, G = V.shape
        n0 = V @ self.a0
        n1 = V @ self.a1
        q00 = np.empty(B)
        q01 = np.empty(B)
        q11 = np.empty(B)
        step = max(1, int(2e7 // max(G, 1)))
        chunks = range(0, B, step)
        for s in progress(chunks, "bootstrap draws", total=len(chunks), unit="chunk"):
            Vb = V[s : s + step]
            # sc = V∘a − V Mᵀ with M = HAc (A Ŝ)ᵀ + d HAc (A H A c)ᵀ, both rank k
            S0 = Vb * self.a0[None, :] - (Vb @ self.fit.ASh) @ self.HAc.T
            S1 = Vb * self.a1[None, :] - (Vb @ self.AHAc) @ self.HAc.T
            q00[s : s + step] = np.einsum("bg,bg->b", S0, S0)
            q01[s : s + step] = np.einsum("bg,bg->b", S0, S1)
            q11[s : s + step] = np.einsum("bg,bg->b", S1, S1)
        self._q = (n0, n1, q00, q01, q11)
        self._V = V

    def tstats(self, theta: float, V: np.ndarray) -> tuple[float, np.ndarray]:
        self._prepare(V)
        n0, n1, q00, q01, q11 = self._q
        d = (self.est - theta) / self.cAc
        num = n0 + d * n1
        den2 = self.ssc * (q00 + 2.0 * d * q01 + d * d * q11)
        den = np.sqrt(np.maximum(den2, 0.0))
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
    fit: _Fit | None = None,
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
    fit
        The least-squares pieces from :func:`prepare_fit` on the same ``Xt``, ``yt``,
        ``cluster``, ``w`` and ``ssc`` (to share them between hypotheses).

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
    if fit is not None and (fit.G != G or fit.Xt.shape != Xt.shape):
        raise ValueError("fit was prepared on different data")
    h = _WCR(Xt, yt, w, cl, c, ssc, fit=fit)
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


def prepare_fit(
    Xt: np.ndarray,
    yt: np.ndarray,
    cluster: np.ndarray,
    *,
    w: np.ndarray | None = None,
    ssc: float = 1.0,
) -> _Fit:
    """Least-squares pieces shared by every hypothesis tested on one fit."""
    Xt = np.asarray(Xt, dtype=float)
    w = np.ones(Xt.shape[0]) if w is None else np.asarray(w, dtype=float)
    cl = np.unique(np.asarray(cluster), return_inverse=True)[1].astype(np.int64)
    return _Fit(Xt, np.asarray(yt, dtype=float), w, cl, ssc)


#: Below this many clusters ``weights="auto"`` draws Webb's six-point weights: Rademacher
#: weights give only ``2^G`` distinct draws (64 with six districts), too few for a
#: p-value's resolution (Webb 2023; MacKinnon & Webb 2018).
FEW_CLUSTERS = 12


def choose_weights(G: int, weights: str = "auto") -> str:
    """``weights`` itself, or for ``"auto"`` Webb below :data:`FEW_CLUSTERS` clusters and
    Rademacher from there on."""
    if weights != "auto":
        return weights
    return "webb" if G < FEW_CLUSTERS else "rademacher"


def draw_weights(G: int, *, B: int = 999, seed=None, weights: str = "webb") -> np.ndarray:
    """``B × G`` cluster weight draws (Webb six-point, Rademacher, or ``"auto"``:
    :func:`choose_weights`)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    weights = choose_weights(G, weights)
    if weights == "webb":
        return webb_weights(rng, (B, G))
    if weights == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=(B, G))
    raise ValueError(f"weights must be 'webb', 'rademacher' or 'auto', not {weights!r}")


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


def partial_out(
    Xt: np.ndarray, yt: np.ndarray, w: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The columns ``keep`` of ``Xt`` and ``yt`` with the other columns partialled out.

    Frisch–Waugh–Lovell in the weighted metric: the coefficients on the kept columns,
    the residuals, the restricted residuals under any hypothesis on them and the CR1
    t-statistics are those of the full regression. In the bootstrap draws the other
    columns are then not partialled out of ``ũ ∘ v_g`` again — the approximation boottest
    and fwildclusterboot make for fixed effects not nested in the clusters; the bootstrap
    numerators are exact and the denominators differ at the order of (columns removed) /
    (observations). It makes the bootstrap of a regression with many covariates (the
    matched ANCOVA) cost what one with the event-time columns alone costs.
    """
    keep = np.asarray(keep, dtype=np.int64)
    other = np.setdiff1d(np.arange(Xt.shape[1]), keep)
    if other.size == 0:
        return Xt[:, keep], yt
    Z = Xt[:, other]
    ZW = Z * w[:, None]
    coef = np.linalg.lstsq(ZW.T @ Z, ZW.T @ np.column_stack([Xt[:, keep], yt]), rcond=None)[0]
    R = np.column_stack([Xt[:, keep], yt]) - Z @ coef
    return R[:, :-1], R[:, -1]


def add_wild_bootstrap(
    res,
    Xt: np.ndarray,
    yt: np.ndarray,
    cluster: np.ndarray | None,
    *,
    w: np.ndarray,
    ssc: float,
    average_window: tuple[int, int] | None,
    B: int,
    seed,
    weights: str = "webb",
    alpha: float = 0.05,
    where: str = "event study",
) -> None:
    """WCR tests and intervals for each event-time coefficient and the window average.

    ``res`` is an ``EventStudyResult`` whose event times are the columns of ``Xt`` (any
    other columns already partialled out, :func:`partial_out`). Stores in it the bootstrap
    intervals (``ci_bounds``) and p-values, and in ``info`` the table
    (``"wild_bootstrap"``: one row per event time, then the row ``"average"``), the
    settings and the average as a plain dict (``"wild_bootstrap_average"``). The same
    draws serve every hypothesis.
    """
    if cluster is None:
        raise ValueError(f"{where}: the wild cluster bootstrap needs a cluster column")
    events = np.asarray(res.event_time, dtype=np.int64)
    k = events.size
    if Xt.shape[1] != k:
        raise ValueError(f"{where}: {Xt.shape[1]} regressors for {k} event times")
    G = int(np.unique(cluster).size)
    draws = draw_weights(G, B=B, seed=seed, weights=weights)
    tests: list[tuple[Any, np.ndarray]] = [(int(e), np.eye(k)[j]) for j, e in enumerate(events)]
    if average_window is not None:
        lo, hi = int(average_window[0]), int(average_window[1])
        m = (events >= lo) & (events <= hi)
        if m.sum() != hi - lo + 1:
            raise ValueError(f"{where}: average_window {average_window} not fully estimated")
        tests.append(("average", m / m.sum()))
    fit = prepare_fit(Xt, yt, cluster, w=w, ssc=ssc)
    rows = []
    for lab, c in tests:
        wt = wild_cluster_bootstrap(
            Xt, yt, cluster, c, w=w, draws=draws, alpha=alpha, ssc=ssc, weights=weights, fit=fit
        )
        rows.append(
            {
                "term": lab,
                "estimate": wt.estimate,
                "std_error": wt.std_error,
                "t_stat": wt.t_stat,
                "p_value": wt.p_value,
                "ci_low": wt.ci_low,
                "ci_high": wt.ci_high,
            }
        )
    tab = pd.DataFrame(rows)
    ev = tab.iloc[:k]
    res.ci_bounds = (ev["ci_low"].to_numpy(float), ev["ci_high"].to_numpy(float))
    res.p_values = ev["p_value"].to_numpy(float)
    res.info["wild_bootstrap"] = tab
    res.info["wild_bootstrap_settings"] = {
        "B": B,
        "seed": seed,
        "weights": weights,
        "clusters": G,
        "type": "WCR, symmetric",
    }
    if average_window is not None:
        a = tab.iloc[-1]
        res.info["wild_bootstrap_average"] = {
            "window": [int(average_window[0]), int(average_window[1])],
            **{
                c: float(a[c])
                for c in ("estimate", "std_error", "t_stat", "p_value", "ci_low", "ci_high")
            },
            "B": int(B),
            "weights": weights,
            "clusters": G,
            "seed": seed,
        }
