"""Fast weighted least squares with absorbed fixed effects and cluster-robust covariance.

The event-study estimators of this package are linear regressions with one or two
high-dimensional categorical fixed effects (unit, time, unit-by-stack, stack-by-event-time)
and a few to a few hundred dummy regressors.  This module estimates them without ever
building dense dummy matrices for the fixed effects:

* Fixed effects are integer codes (``0 … L-1``).  Everything the fixed effects touch is
  computed in *coefficient space*: ``D_f' W Z`` (weighted sums of the columns of ``Z`` by
  level) and the fixed-effect coefficients ``γ`` solving the normal equations
  ``(D' W D) γ = D' W Z``.  The partialled-out columns are ``Z̃ = Z − D γ``.
* With one fixed effect the solution is a weighted group mean.  With two fixed effects
  the larger one is eliminated exactly and the Schur complement in the smaller one is
  factorised once (a sparse direct solver; one level is pinned per connected component of
  the bipartite level graph, which removes exactly the redundancies).  With three or more
  fixed effects (or ``method="ap"``) the normal equations are solved by alternating
  projections (block Gauss–Seidel over the fixed effects, i.e. the method of alternating
  projections written in coefficient space) to a tolerance.
* The cross products ``Z̃' W Z̃`` and the cluster scores ``Σ_{i∈g} w_i û_i x̃_i`` are
  obtained from ``γ`` and sparse level-by-cluster sums, so memory stays
  ``O(n + L k)`` even when ``X`` has hundreds of (sparse) columns.

The cluster-robust covariance is the CR1 sandwich with fixest's default small-sample
correction (``ssc(adj = TRUE, fixef.K = "nested", cluster.adj = TRUE)``)::

    V = G/(G−1) · (n−1)/(n−K) · (X̃'WX̃)⁻¹ (Σ_g s_g s_g') (X̃'WX̃)⁻¹,

where ``K`` counts the regressors plus the fixed-effect coefficients, computed like
fixest: ``Σ_f L_f − (F − 1)``, minus the levels of fixed effects nested in the clusters,
plus one per nested fixed effect (``k_fixef="nonnested"``); ``"full"`` counts every
fixed effect, ``"none"`` none.  Stata's ``reghdfe``/``areg`` conventions differ slightly
in how nested fixed effects are counted; pass ``k_fixef`` to change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

__all__ = [
    "FixedEffects",
    "FEOLSResult",
    "factorize",
    "feols",
    "cluster_codes",
]


def factorize(*columns: Any) -> tuple[np.ndarray, int]:
    """Integer codes ``0 … L−1`` for the combinations of one or more key columns.

    Missing values are an error (fixed effects and clusters must be observed).
    """
    if not columns:
        raise ValueError("factorize needs at least one column")
    codes = []
    for col in columns:
        c, uniques = pd.factorize(col, sort=True)
        if (c < 0).any():
            raise ValueError("missing values in a fixed-effect or cluster column")
        codes.append(c.astype(np.int64))
        if len(columns) == 1:
            return codes[0], len(uniques)
    combo = np.zeros(codes[0].size, dtype=np.int64)
    for c in codes:
        combo = combo * (int(c.max()) + 1 if c.size else 1) + c
    out, uniq = pd.factorize(combo, sort=True)
    return out.astype(np.int64), len(uniq)


def cluster_codes(data: pd.DataFrame, cluster: str | Sequence[str] | None) -> np.ndarray | None:
    """Integer cluster codes from one column (or the combination of several)."""
    if cluster is None:
        return None
    cols = [cluster] if isinstance(cluster, str) else list(cluster)
    for c in cols:
        if c not in data.columns:
            raise KeyError(f"cluster column {c!r} not in data")
        if data[c].isna().any():
            raise ValueError(f"cluster column {c!r} has {int(data[c].isna().sum())} missing values")
    return factorize(*[data[c] for c in cols])[0]


def _onehot(codes: np.ndarray, n_levels: int, values: np.ndarray | None = None) -> sp.csr_matrix:
    n = codes.size
    vals = np.ones(n) if values is None else np.asarray(values, dtype=float)
    return sp.csr_matrix((vals, (np.arange(n), codes)), shape=(n, n_levels))


def group_sums(
    codes: np.ndarray, n_levels: int, Z: np.ndarray | sp.spmatrix, w: np.ndarray | None = None
) -> np.ndarray:
    """Dense ``levels × columns`` sums of ``w_i Z_ij`` by level (sparse or dense ``Z``)."""
    codes = np.asarray(codes, dtype=np.int64)
    if sp.issparse(Z):
        Zc = sp.coo_matrix(Z)
        k = Zc.shape[1]
        vals = Zc.data if w is None else Zc.data * w[Zc.row]
        flat = codes[Zc.row] * k + Zc.col
        out = np.bincount(flat, weights=vals, minlength=n_levels * k)
        return out.reshape(n_levels, k)
    Z2 = np.asarray(Z, dtype=float).reshape(codes.size, -1)
    out = np.empty((n_levels, Z2.shape[1]))
    for j in range(Z2.shape[1]):
        v = Z2[:, j] if w is None else w * Z2[:, j]
        out[:, j] = np.bincount(codes, weights=v, minlength=n_levels)
    return out


class FixedEffects:
    """Weighted projection onto the space of one or more categorical fixed effects.

    Parameters
    ----------
    codes
        One integer array (codes ``0 … L_f−1``, every level present) per fixed effect.
    weights
        Positive observation weights (``None``: 1).
    method
        ``"auto"`` (exact for one or two fixed effects, alternating projections for more)
        or ``"ap"`` (alternating projections always).
    tol, maxiter
        Convergence tolerance (maximum change of any coefficient, relative to the scale
        of the right-hand side) and iteration cap of the alternating projections.
    """

    def __init__(
        self,
        codes: Sequence[np.ndarray],
        weights: np.ndarray | None = None,
        *,
        method: str = "auto",
        tol: float = 1e-12,
        maxiter: int = 100_000,
    ) -> None:
        self.codes = [np.ascontiguousarray(c, dtype=np.int64) for c in codes]
        if not self.codes:
            raise ValueError("FixedEffects needs at least one fixed effect")
        n = self.codes[0].size
        if any(c.size != n for c in self.codes):
            raise ValueError("fixed-effect code arrays differ in length")
        self.n = n
        self.w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        if self.w.shape != (n,):
            raise ValueError("weights must have one entry per observation")
        if not np.all(np.isfinite(self.w)) or np.any(self.w <= 0):
            raise ValueError("fixed-effect weights must be finite and > 0")
        self.levels = [int(c.max()) + 1 if n else 0 for c in self.codes]
        self.cnt = [
            np.bincount(c, weights=self.w, minlength=L)
            for c, L in zip(self.codes, self.levels, strict=True)
        ]
        if any((cn <= 0).any() for cn in self.cnt):
            raise ValueError("fixed-effect codes must be 0..L-1 with every level present")
        if method not in ("auto", "ap"):
            raise ValueError(f"method must be 'auto' or 'ap', not {method!r}")
        self.method = "direct" if (method == "auto" and len(self.codes) <= 2) else "ap"
        self.tol, self.maxiter = tol, maxiter
        self.iterations = 0
        self._cross: dict[tuple[int, int], sp.csr_matrix] = {}
        self.n_components = self._components()
        if self.method == "direct" and len(self.codes) == 2:
            self._setup_schur()

    # -- structure -----------------------------------------------------------------------
    def cross(self, f: int, h: int) -> sp.csr_matrix:
        """``D_f' W D_h`` (levels of f × levels of h), cached."""
        key = (f, h)
        if key not in self._cross:
            m = sp.csr_matrix(
                (self.w, (self.codes[f], self.codes[h])), shape=(self.levels[f], self.levels[h])
            )
            m.sum_duplicates()
            self._cross[key] = m
            self._cross[(h, f)] = m.T.tocsr()
        return self._cross[key]

    def _components(self) -> int:
        if len(self.codes) == 1:
            return 1
        # connected components of the graph linking levels that share an observation
        offs = np.cumsum([0] + self.levels)
        rows, cols = [], []
        for f in range(1, len(self.codes)):
            rows.append(self.codes[0] + offs[0])
            cols.append(self.codes[f] + offs[f])
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        adj = sp.csr_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(offs[-1], offs[-1]))
        ncomp, labels = connected_components(adj, directed=False)
        self._labels = labels
        return int(ncomp)

    @property
    def n_params(self) -> int:
        """Fixed-effect coefficients counted like fixest: ``Σ L_f − (F − 1)``."""
        return int(sum(self.levels) - (len(self.levels) - 1))

    @property
    def rank(self) -> int:
        """Exact rank of the fixed-effect dummies (exact for one or two fixed effects)."""
        if len(self.levels) <= 2:
            return int(sum(self.levels) - self.n_components)
        return self.n_params

    def nested_in(self, clusters: np.ndarray) -> list[bool]:
        """Whether each fixed effect is nested in the clusters (each level in one cluster)."""
        out = []
        g = np.asarray(clusters, dtype=np.int64)
        for c, L in zip(self.codes, self.levels, strict=True):
            pairs = np.unique(c * (int(g.max()) + 1) + g)
            out.append(pairs.size == L)
        return out

    def _setup_schur(self) -> None:
        # eliminate the fixed effect with more levels (a); factorise the Schur complement
        # in the other one (b), pinning one level of b per connected component.
        a, b = (0, 1) if self.levels[0] >= self.levels[1] else (1, 0)
        self._a, self._b = a, b
        C_ba = self.cross(b, a)
        inv_a = 1.0 / self.cnt[a]
        S = sp.diags(self.cnt[b]) - (C_ba @ sp.diags(inv_a) @ C_ba.T)
        S = sp.csc_matrix(S)
        lab_b = self._labels[self.levels[0] :] if b == 1 else self._labels[: self.levels[0]]
        _, first = np.unique(lab_b, return_index=True)
        free = np.ones(self.levels[b], dtype=bool)
        free[first] = False
        self._free = free
        Sff = S[free][:, free]
        self._dense = Sff.shape[0] <= 400
        if self._dense:
            self._fac = sla.cho_factor(Sff.toarray(), lower=False, check_finite=False)
        else:
            self._fac = splu(sp.csc_matrix(Sff))
        self._C_ba = C_ba
        self._inv_a = inv_a

    # -- solving -------------------------------------------------------------------------
    def rhs(self, Z: np.ndarray | sp.spmatrix) -> list[np.ndarray]:
        """``D_f' W Z`` for each fixed effect (levels × columns, dense)."""
        return [group_sums(c, L, Z, self.w) for c, L in zip(self.codes, self.levels, strict=True)]

    def solve(self, B: list[np.ndarray]) -> list[np.ndarray]:
        """Coefficients ``γ`` solving ``(D'WD) γ = B`` (``B`` as returned by :meth:`rhs`).

        The right-hand side must be consistent (orthogonal to the redundancies), as any
        ``D'WZ`` is.  For one or two fixed effects the solution has one level pinned at 0
        per connected component; alternating projections return another solution with
        the same fitted values ``Dγ``.
        """
        B = [np.asarray(b, dtype=float).reshape(L, -1) for b, L in zip(B, self.levels, strict=True)]
        if len(B) == 1:
            return [B[0] / self.cnt[0][:, None]]
        if self.method == "direct":
            a, b = self._a, self._b
            r = B[b] - self._C_ba @ (self._inv_a[:, None] * B[a])
            gb = np.zeros_like(B[b])
            if self._dense:
                gb[self._free] = sla.cho_solve(self._fac, r[self._free], check_finite=False)
            else:
                gb[self._free] = self._fac.solve(np.ascontiguousarray(r[self._free]))
            ga = (B[a] - self._C_ba.T @ gb) * self._inv_a[:, None]
            out: list[np.ndarray] = [None, None]  # type: ignore[list-item]
            out[a], out[b] = ga, gb
            return out
        return self._solve_ap(B)

    def _solve_ap(self, B: list[np.ndarray]) -> list[np.ndarray]:
        F = len(B)
        k = B[0].shape[1]
        gam = [np.zeros((L, k)) for L in self.levels]
        scale = max(
            1.0,
            max(
                float(np.abs(b / cn[:, None]).max()) if b.size else 0.0
                for b, cn in zip(B, self.cnt, strict=True)
            ),
        )
        for it in range(1, self.maxiter + 1):
            delta = 0.0
            for f in range(F):
                acc = B[f].copy()
                for h in range(F):
                    if h != f:
                        acc -= self.cross(f, h) @ gam[h]
                new = acc / self.cnt[f][:, None]
                delta = max(delta, float(np.abs(new - gam[f]).max()) if new.size else 0.0)
                gam[f] = new
            if delta <= self.tol * scale:
                self.iterations = it
                return gam
        raise RuntimeError(
            f"alternating projections did not converge in {self.maxiter} iterations "
            f"(last change {delta:.3g})"
        )

    def fitted(self, gammas: list[np.ndarray]) -> np.ndarray:
        """``D γ`` (observations × columns)."""
        out = gammas[0][self.codes[0]]
        for g, c in zip(gammas[1:], self.codes[1:], strict=True):
            out = out + g[c]
        return out

    def demean(self, Z: np.ndarray) -> np.ndarray:
        """Residuals of the weighted projection of the columns of ``Z`` on the fixed effects."""
        Z2 = np.asarray(Z, dtype=float).reshape(self.n, -1)
        res = Z2 - self.fitted(self.solve(self.rhs(Z2)))
        return res.reshape(np.shape(Z))


@dataclass
class FEOLSResult:
    """Weighted least squares with absorbed fixed effects.

    Attributes
    ----------
    coef, vcov
        Coefficients of the regressors (in ``names`` order) and their covariance.
    names
        Regressor names kept (collinear ones are dropped and listed in ``dropped``).
    resid
        Residuals (observation order).
    n, k, n_clusters, df_k, ssc
        Observations, regressors, clusters, the ``K`` of the small-sample correction and
        the correction factor applied.
    """

    coef: np.ndarray
    vcov: np.ndarray
    names: list[str]
    resid: np.ndarray
    n: int
    k: int
    n_clusters: int | None
    df_k: int
    ssc: float
    dropped: list[str] = field(default_factory=list)
    bread: np.ndarray | None = None
    scores: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.vcov), 0, None))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"estimate": self.coef, "std_error": self.std_errors},
            index=pd.Index(self.names, name="term"),
        )


def _independent_columns(M: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Greedy selection of linearly independent columns of a Gram matrix ``M``.

    Incremental Cholesky: column ``j`` is kept if its squared residual after projection
    on the columns kept so far exceeds ``rtol`` times its squared norm.
    """
    k = M.shape[0]
    keep: list[int] = []
    L = np.zeros((k, k))
    m = 0
    for j in range(k):
        d = M[j, j]
        if d <= 0:
            continue
        if m:
            z = sla.solve_triangular(L[:m, :m], M[keep, j], lower=True, check_finite=False)
            r = d - z @ z
        else:
            z = np.zeros(0)
            r = d
        if r > rtol * d:
            L[m, :m] = z
            L[m, m] = np.sqrt(r)
            keep.append(j)
            m += 1
    return np.asarray(keep, dtype=np.int64)


def feols(
    y: np.ndarray,
    X: np.ndarray | sp.spmatrix,
    fe: FixedEffects | None,
    *,
    weights: np.ndarray | None = None,
    cluster: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    k_fixef: str = "nonnested",
    k_adj: bool = True,
    G_adj: bool = True,
    keep_tilde: bool = False,
) -> FEOLSResult:
    """Weighted OLS of ``y`` on ``X`` with the fixed effects ``fe`` absorbed.

    Parameters
    ----------
    y, X
        Outcome (n) and regressors (n × k; dense or scipy.sparse).
    fe
        The fixed effects (built with the same ``weights``), or ``None`` for none (then
        ``X`` must contain whatever intercept is wanted).
    weights
        Observation weights (must equal ``fe``'s weights).
    cluster
        Integer cluster codes; ``None`` gives heteroskedasticity-robust (HC1) errors.
    names
        Regressor names.
    k_fixef, k_adj, G_adj
        Small-sample correction, as fixest's ``ssc()`` (see module docstring).
    keep_tilde
        Also return the partialled-out regressors and outcome (``extra["Xt"]``,
        ``extra["yt"]``), needed by the wild cluster bootstrap.

    Returns
    -------
    FEOLSResult
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    if not np.all(np.isfinite(y)):
        raise ValueError(f"outcome has {int((~np.isfinite(y)).sum())} missing/non-finite values")
    Xs = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X, dtype=float).reshape(n, -1)
    k_all = Xs.shape[1]
    names = [f"x{j}" for j in range(k_all)] if names is None else list(names)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if fe is not None and not np.array_equal(fe.w, w):
        raise ValueError("feols: weights differ from the weights of the fixed effects")
    ZWZ, gam = _partialled_cross_products(y, Xs, w, fe)
    Mxx = ZWZ[1:, 1:]
    keep = _independent_columns(Mxx)
    dropped = [names[j] for j in range(k_all) if j not in set(keep.tolist())]
    full = keep.size == k_all
    Mkk = Mxx if full else Mxx[np.ix_(keep, keep)]
    bread = np.linalg.inv(Mkk)
    bread = (bread + bread.T) / 2
    beta = bread @ ZWZ[1:, 0][keep]
    # residuals: y - X b - D (γ_y - γ_X b)
    Xk = Xs if full else Xs[:, keep]

    def gx(g: np.ndarray) -> np.ndarray:  # fixed-effect coefficients of the kept regressors
        return g[:, 1:] if full else g[:, 1:][:, keep]

    fit = np.asarray(Xk @ beta).ravel()
    resid = y - fit
    if gam is not None:
        gr = [g[:, 0] - gx(g) @ beta for g in gam]
        resid = resid - fe.fitted([np.ascontiguousarray(g) for g in gr])
    # cluster scores s_g = Σ_{i∈g} w_i u_i x̃_i
    wu = w * resid
    cl, G = _cluster_codes(cluster, n)
    S = group_sums(cl, G, Xk, wu)
    if gam is not None:
        for c, L, g in zip(fe.codes, fe.levels, gam, strict=True):
            CD = sp.csr_matrix((wu, (cl, c)), shape=(G, L))
            CD.sum_duplicates()
            S = S - CD @ gx(g)
    meat = S.T @ S
    # small-sample correction (fixest conventions)
    k = keep.size
    df_k = _df_k(k, fe, k_fixef, cl if cluster is not None else None)
    factor = 1.0
    if k_adj:
        factor *= (n - 1) / (n - df_k) if cluster is not None else n / (n - df_k)
    if cluster is not None and G_adj:
        factor *= G / (G - 1)
    V = factor * bread @ meat @ bread
    V = (V + V.T) / 2
    extra: dict[str, Any] = {"cluster_codes": cl if cluster is not None else None}
    if keep_tilde:
        extra["Xt"], extra["yt"] = _partialled_out(y, Xk, fe, gam, gx)
    return FEOLSResult(
        coef=beta,
        vcov=V,
        names=[names[j] for j in keep],
        resid=resid,
        n=n,
        k=k,
        n_clusters=G if cluster is not None else None,
        df_k=int(df_k),
        ssc=float(factor),
        dropped=dropped,
        bread=bread,
        scores=S,
        extra=extra,
    )


def _partialled_cross_products(y, Xs, w, fe):
    """``[y X]' W [y X]`` with the fixed effects partialled out, and the fixed-effect
    coefficients ``γ`` of every column of ``[y X]`` (``None`` without fixed effects)."""
    if sp.issparse(Xs):
        Z = sp.hstack([sp.csr_matrix(y[:, None]), Xs], format="csr")
        ZWZ = np.asarray((Z.T @ sp.diags(w) @ Z).todense())
    else:
        Z = np.column_stack([y, Xs])
        ZWZ = Z.T @ (w[:, None] * Z)
    if fe is None:
        return ZWZ, None
    B = fe.rhs(Z)
    gam = fe.solve(B)
    for b, g in zip(B, gam, strict=True):
        ZWZ = ZWZ - b.T @ g
    return (ZWZ + ZWZ.T) / 2, gam


def _cluster_codes(cluster, n: int) -> tuple[np.ndarray, int]:
    """Cluster codes ``0..G-1`` and ``G`` (each observation its own cluster if None)."""
    if cluster is None:
        return np.arange(n), n
    cl = np.asarray(cluster, dtype=np.int64)
    if cl.shape != (n,):
        raise ValueError("cluster codes must have one entry per observation")
    cl = pd.factorize(cl)[0]
    return cl, int(cl.max()) + 1


def _df_k(k: int, fe, k_fixef: str, cl: np.ndarray | None) -> int:
    """Parameters counted by the small-sample correction (fixest's ``ssc(fixef.K)``)."""
    if fe is None or k_fixef == "none":
        return k
    if k_fixef == "full" or (k_fixef == "nonnested" and cl is None):
        return k + fe.n_params
    if k_fixef == "nonnested":
        nested = fe.nested_in(cl)
        n_nested_levels = sum(L for L, m in zip(fe.levels, nested, strict=True) if m)
        return k + fe.n_params - n_nested_levels + sum(nested)
    raise ValueError(f"k_fixef must be 'nonnested', 'full' or 'none', not {k_fixef!r}")


def _partialled_out(y, Xk, fe, gam, gx):
    """The regressors and outcome with the fixed effects partialled out."""
    Xt = np.asarray(Xk.todense()) if sp.issparse(Xk) else np.array(Xk, dtype=float)
    yt = y.copy()
    if gam is not None:
        Xt = Xt - fe.fitted([np.ascontiguousarray(gx(g)) for g in gam])
        yt = yt - fe.fitted([np.ascontiguousarray(g[:, 0]) for g in gam])
    return Xt, yt


# -- helpers shared by the panel event-study estimators -------------------------------------
def require_columns(data: pd.DataFrame, columns: Sequence[str | None], where: str) -> None:
    """Raise a clear error naming the missing columns."""
    missing = [c for c in columns if c is not None and c not in data.columns]
    if missing:
        raise KeyError(
            f"{where}: column(s) {missing} not in data (available: {list(data.columns)[:30]})"
        )


def panel_arrays(
    data: pd.DataFrame,
    *,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    weights: str | None,
    where: str,
) -> dict[str, np.ndarray]:
    """Validated arrays of a long panel with a first-treatment-period column.

    ``gname`` holds the first treated period on the ``tname`` scale; ``0``, missing or
    infinite mean never treated.  Returns ``y``, ``t``, ``g`` (``inf`` for never treated),
    ``rel`` (``t − g``, ``nan`` for never treated), ``w`` and ``treated`` (``t ≥ g``).
    """
    require_columns(data, [yname, tname, idname, gname, weights], where)
    y = pd.to_numeric(data[yname], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(
            f"{where}: outcome {yname!r} has {int(bad.sum())} missing or "
            f"non-numeric values; drop them first"
        )
    t = pd.to_numeric(data[tname], errors="coerce").to_numpy(dtype=float)
    if np.isnan(t).any() or np.any(t != np.round(t)):
        raise ValueError(
            f"{where}: time column {tname!r} must be integer-valued without missing values"
        )
    g = pd.to_numeric(data[gname], errors="coerce").to_numpy(dtype=float)
    g = np.where(np.isnan(g) | (g == 0), np.inf, g)
    fin = np.isfinite(g)
    if np.any(g[fin] != np.round(g[fin])):
        raise ValueError(f"{where}: cohort column {gname!r} must hold integer periods")
    if data[idname].isna().any():
        raise ValueError(f"{where}: unit id column {idname!r} has missing values")
    ids = factorize(data[idname])[0]
    # the cohort must be constant within unit
    gg = np.where(fin, g, -1.0)
    per_unit = pd.Series(gg).groupby(ids).nunique()
    if (per_unit > 1).any():
        raise ValueError(
            f"{where}: cohort column {gname!r} varies within unit "
            f"({int((per_unit > 1).sum())} units)"
        )
    if weights is None:
        w = np.ones(y.size)
    else:
        w = pd.to_numeric(data[weights], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{where}: weights column {weights!r} must be finite and >= 0")
    # duplicate unit-period rows make the panel ill-defined
    key = ids * (int(np.ptp(t)) + 1 if t.size else 1) + (t - (t.min() if t.size else 0))
    if pd.Series(key).duplicated().any():
        raise ValueError(f"{where}: duplicate ({idname}, {tname}) rows")
    rel = np.where(fin, t - g, np.nan)
    return {"y": y, "t": t, "g": g, "rel": rel, "w": w, "ids": ids, "treated": fin & (t >= g)}


def as_tuple(ref: int | Sequence[int]) -> tuple[int, ...]:
    """A reference period or window as a tuple of ints."""
    if np.isscalar(ref):
        return (int(ref),)  # type: ignore[arg-type]
    return tuple(int(r) for r in ref)  # type: ignore[union-attr]


def window_rel(
    rel: np.ndarray,
    window: tuple[int, int] | None,
    bin_endpoints: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply an event window to relative times.

    Returns the (possibly binned) relative times and a mask of rows to keep: with
    ``bin_endpoints`` the relative times beyond the window are moved into its end bins
    (all rows kept); otherwise rows with relative times outside the window are dropped.
    Rows with ``nan`` relative time (never treated) are always kept.
    """
    keep = np.ones(rel.size, dtype=bool)
    if window is None:
        return rel, keep
    lo, hi = int(window[0]), int(window[1])
    if lo > hi:
        raise ValueError(f"window {window}: start after end")
    fin = np.isfinite(rel)
    if bin_endpoints:
        out = rel.copy()
        out[fin] = np.clip(rel[fin], lo, hi)
        return out, keep
    keep = ~fin | ((rel >= lo) & (rel <= hi))
    return rel, keep


def dummies(values: np.ndarray, active: np.ndarray, levels: Sequence[float]) -> sp.csr_matrix:
    """Sparse 0/1 columns ``1[values == level] · active`` for each (numeric) level."""
    lv = np.asarray(levels, dtype=float)
    order = np.argsort(lv, kind="stable")
    idx = np.flatnonzero(active & np.isfinite(values))
    v = values[idx].astype(float)
    pos = np.searchsorted(lv[order], v)
    pos = np.clip(pos, 0, max(lv.size - 1, 0))
    ok = lv[order][pos] == v if lv.size else np.zeros(v.size, dtype=bool)
    cols = order[pos[ok]]
    return sp.csr_matrix((np.ones(int(ok.sum())), (idx[ok], cols)), shape=(values.size, lv.size))
