"""Influence-function inference for :mod:`pipeline.did.cs`: analytic (optionally
cluster-robust) covariances and the multiplier bootstrap of R's ``did::mboot``.

Conventions (those of R's ``did``): an estimate's influence function ``psi`` has one
entry per unit and ``se = sqrt(sum(psi**2)) / n``.  With a cluster variable the unit
entries are first summed within clusters: ``se = sqrt(sum_c S_c**2) / n``.

The multiplier bootstrap draws ``d_b = (1/n) sum_c v_bc S_c`` with i.i.d. multipliers
``v`` (Rademacher, as ``BMisc::multiplier_bootstrap`` used by R's ``did``; Mammen's
two-point weights optionally).  Standard errors are the IQR-based scale
``(q75 − q25) / (z75 − z25)`` of the draws (R's ``bSigma``, rescaled), and the
uniform critical value is the ``1 − alp`` quantile (type 1) of ``max_j |d_bj| / se_j``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse, stats
from scipy.linalg import blas

_TINY = np.sqrt(np.finfo(float).eps) * 10
_Z_IQR = stats.norm.ppf(0.75) - stats.norm.ppf(0.25)


def cluster_sums(psi: np.ndarray, cluster_codes: np.ndarray | None) -> np.ndarray:
    """Sum the rows of ``psi`` (units × k) within clusters (codes ``0..C-1``)."""
    if cluster_codes is None:
        return psi
    n = psi.shape[0]
    c = int(cluster_codes.max()) + 1
    agg = sparse.csr_matrix((np.ones(n), (cluster_codes, np.arange(n))), shape=(c, n), dtype=float)
    return np.asarray(agg @ psi)


def if_vcov(psi: np.ndarray, n: int, cluster_codes: np.ndarray | None = None) -> np.ndarray:
    """Covariance of estimates with influence functions in the columns of ``psi``."""
    return gram(cluster_sums(psi, cluster_codes)) / float(n) ** 2


def gram(s: np.ndarray) -> np.ndarray:
    """``s.T @ s`` through BLAS ``dsyrk`` (numpy's matmul is erratic on tall inputs)."""
    s = np.asarray(s, dtype=np.float64)
    if s.shape[1] == 0:
        return np.zeros((0, 0))
    if s.flags.f_contiguous:
        g = blas.dsyrk(1.0, s, trans=1)
    elif s.flags.c_contiguous:
        g = blas.dsyrk(1.0, s.T, trans=0)
    else:
        g = blas.dsyrk(1.0, np.asfortranarray(s), trans=1)
    g = np.triu(g)
    return g + np.triu(g, 1).T


def if_se(psi: np.ndarray, n: int, cluster_codes: np.ndarray | None = None) -> np.ndarray:
    s = cluster_sums(psi, cluster_codes)
    return np.sqrt(np.einsum("ij,ij->j", s, s)) / float(n)


def _multipliers(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    if kind == "rademacher":
        nbits = shape[0] * shape[1]
        bits = np.unpackbits(np.frombuffer(rng.bytes((nbits + 7) // 8), dtype=np.uint8))
        v = bits[:nbits].reshape(shape).astype(np.float64)
        v *= 2.0
        v -= 1.0
        return v
    if kind == "mammen":
        s5 = np.sqrt(5.0)
        p = (s5 + 1) / (2 * s5)
        u = rng.random(shape)
        return np.where(u < p, (1 - s5) / 2, (1 + s5) / 2)
    raise ValueError(f"boot_weights must be 'rademacher' or 'mammen', not {kind!r}")


def multiplier_draws(
    psi,
    n: int,
    biters: int,
    seed,
    cluster_codes: np.ndarray | None = None,
    boot_weights: str = "rademacher",
    chunk_rows: int = 4096,
):
    """Bootstrap draws ``(biters × k)`` of the centred estimates ``(1/n) Σ_c v_c S_c``.

    ``psi`` is a units × k matrix, or a tuple of such matrices sharing the same
    multipliers (a list of draw matrices is then returned).  The draws are built as a
    matrix product in row chunks, so memory stays at ``biters × chunk_rows``
    multipliers whatever the number of units.
    """
    single = not isinstance(psi, tuple | list)
    mats = [psi] if single else list(psi)
    mats = [cluster_sums(np.asarray(m, dtype=float), cluster_codes) for m in mats]
    rng = np.random.default_rng(seed)
    m = mats[0].shape[0]
    outs = [np.zeros((biters, a.shape[1])) for a in mats]
    for r0 in range(0, m, chunk_rows):
        r1 = min(m, r0 + chunk_rows)
        v = _multipliers(rng, (biters, r1 - r0), boot_weights)
        for a, o in zip(mats, outs, strict=True):
            o += v @ a[r0:r1]
    for o in outs:
        o /= float(n)
    return outs[0] if single else outs


def _q1(x: np.ndarray, q: float) -> np.ndarray:
    return np.quantile(x, q, axis=0, method="inverted_cdf")


def boot_se(draws: np.ndarray) -> np.ndarray:
    """IQR-based bootstrap standard errors (NaN for degenerate columns)."""
    se = (_q1(draws, 0.75) - _q1(draws, 0.25)) / _Z_IQR
    deg = ~np.isfinite(se) | (se <= _TINY)
    se = np.where(deg, np.nan, se)
    return se


def uniform_crit(draws: np.ndarray, alp: float) -> float:
    """Sup-t critical value over the non-degenerate columns of ``draws``."""
    se = boot_se(draws)
    ok = np.isfinite(se)
    if not ok.any():
        return float("nan")
    t = np.max(np.abs(draws[:, ok] / se[ok]), axis=1)
    t = t[np.isfinite(t)]
    return float(np.quantile(t, 1 - alp, method="inverted_cdf"))


def normal_crit(alp: float) -> float:
    """The pointwise (normal) critical value at level ``1 − alp``."""
    return float(stats.norm.ppf(1 - alp / 2))


def checked_crit(c: float, alp: float) -> float:
    """A uniform critical value, falling back to the pointwise one (with a warning) when
    it is not finite or below it; warns when it is implausibly large (R's ``did``)."""
    z = normal_crit(alp)
    if not np.isfinite(c):
        warnings.warn(
            "uniform critical value is not finite (standard errors unavailable); "
            "reporting pointwise intervals",
            stacklevel=3,
        )
        return z
    if c < z:
        warnings.warn(
            "uniform critical value below the pointwise one; reporting pointwise intervals",
            stacklevel=3,
        )
        return z
    if c >= 7:
        warnings.warn(
            "uniform critical value >= 7: arguably too large to be reliable", stacklevel=3
        )
    return float(c)


def cohort_weights(G: np.ndarray, w: np.ndarray, glist: np.ndarray) -> np.ndarray:
    """Units × groups matrix with ``w_i 1{G_i = g}`` (the weight-estimation terms)."""
    out = np.zeros((G.size, glist.size))
    for j, g in enumerate(glist):
        m = G == g
        out[m, j] = w[m]
    return out
