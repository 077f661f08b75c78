"""Greedy nearest-neighbour matching: the algorithms, on plain arrays.

Two engines, both reproducing MatchIt's greedy ``method = "nearest"`` semantics:

:func:`greedy_nn_1d`
    On a scalar distance (a propensity score or its logit).  All units of a stratum are
    sorted by the score with a *stable* sort (ties keep the original row order).  The
    treated units are taken in the given order; in round ``r = 1 … ratio`` each treated
    unit in turn takes the closest control still available, looking at the nearest
    available control on its left (smaller or equal score, earlier in the stable order)
    and on its right.  The left one wins a tie in distance.  A control farther than the
    caliper is never taken.  Without replacement a taken control leaves the pool; with
    replacement it stays, but a treated unit never takes the same control twice.  This is
    MatchIt's ``nn_matchC_vec``, implemented with two "next available" union-find
    structures (path-halving) over the sorted controls, so each look-up costs nearly
    O(1) instead of a scan over the taken controls.

:func:`greedy_nn_mahalanobis`
    On covariates already whitened (Mahalanobis distance = Euclidean distance of the
    whitened vectors).  Treated units in the given order take the nearest available
    control; candidates come from a KD-tree (:class:`scipy.spatial.cKDTree`) queried with
    a growing number of neighbours; ties in distance go to the control with the lowest
    index.

Both return a ``(n_treated, ratio)`` integer array of control positions (``-1`` where a
treated unit got fewer than ``ratio`` matches).  Positions refer to the ``control``
arrays passed in.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["greedy_nn_1d", "greedy_nn_mahalanobis", "treated_order"]


def treated_order(
    score: np.ndarray | None, m_order: str, n: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The order in which treated units are matched (MatchIt's ``m.order``).

    ``"largest"``: descending score; ``"smallest"``: ascending; ties keep the original
    order in both (R's ``order(..., decreasing = TRUE)`` is stable).  ``"data"``: the
    original order.  ``"random"``: a permutation drawn from ``rng``.
    """
    if m_order == "data":
        return np.arange(n)
    if m_order == "random":
        if rng is None:
            raise ValueError("m_order='random' needs a seeded random generator")
        return rng.permutation(n)
    if score is None:
        raise ValueError(f"m_order={m_order!r} needs a scalar distance (propensity score)")
    if m_order == "largest":
        # stable descending: sort the negated score stably
        return np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    if m_order == "smallest":
        return np.argsort(np.asarray(score, dtype=np.float64), kind="stable")
    raise ValueError(f"m_order must be 'largest', 'smallest', 'data' or 'random', not {m_order!r}")


def _find(parent: np.ndarray, i: int) -> int:
    """Root of ``i`` with path halving (``parent[root] == root``)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def greedy_nn_1d(
    d_treated: np.ndarray,
    d_control: np.ndarray,
    *,
    order: np.ndarray,
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    treated_rank: np.ndarray | None = None,
    control_rank: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy nearest-neighbour matching on a scalar distance within one stratum.

    Parameters
    ----------
    d_treated, d_control : ndarray
        Scores of the treated and control units.
    order : ndarray of int
        Positions of treated units in matching order (see :func:`treated_order`).
    ratio : int
        Controls per treated unit (``k`` of k:1).
    replace : bool
        Match with replacement.
    caliper : float, optional
        Largest allowed ``|d_t - d_c|`` (raw units of the score).
    treated_rank, control_rank : ndarray of int, optional
        The units' original row positions, which break ties in the stable sort (MatchIt
        sorts all units of a stratum together, in data order).  Default: the rows'
        order within each group, with every treated unit before every control (as if
        the treated rows came first in the data).

    Returns
    -------
    ndarray of shape (n_treated, ratio)
        Control positions, ``-1`` where no (further) match was found.
    """
    d_treated = np.asarray(d_treated, dtype=np.float64)
    d_control = np.asarray(d_control, dtype=np.float64)
    n1, n0 = len(d_treated), len(d_control)
    out = np.full((n1, ratio), -1, dtype=np.int64)
    if n1 == 0 or n0 == 0:
        return out
    if treated_rank is None:
        treated_rank = np.arange(n1)
    if control_rank is None:
        control_rank = np.arange(n1, n1 + n0)
    # Stable sort of all units by (score, original row): controls in sorted order, and for
    # each treated unit the number of controls sorted before it (its insertion point).
    c_sort = np.lexsort((control_rank, d_control))
    cd = d_control[c_sort]
    cr = np.asarray(control_rank)[c_sort]
    # controls before treated t: score < d_t, or score == d_t and row < row_t
    lo = np.searchsorted(cd, d_treated, side="left")
    hi = np.searchsorted(cd, d_treated, side="right")
    ins = lo.copy()
    tied = np.nonzero(hi > lo)[0]
    for t in tied:  # rare with continuous scores
        ins[t] = lo[t] + int(np.searchsorted(cr[lo[t] : hi[t]], treated_rank[t], side="left"))
    cal = np.inf if caliper is None else float(caliper)

    if replace:
        _nn_1d_replace(d_treated, cd, ins, order, ratio, cal, out)
    else:
        _nn_1d_noreplace(d_treated, cd, ins, order, ratio, cal, out)
    valid = out >= 0
    out[valid] = c_sort[out[valid]]
    return out


def _nn_1d_noreplace(dt, cd, ins, order, ratio, cal, out) -> None:
    n0 = len(cd)
    # right[j]: next available sorted control at or after j (n0 = none)
    right = np.arange(n0 + 1, dtype=np.int64)
    # left[j + 1]: previous available sorted control at or before j (0 = none)
    left = np.arange(n0 + 1, dtype=np.int64)
    cd_l = cd.tolist()
    dt_l = dt.tolist()
    ins_l = ins.tolist()
    order_l = [int(i) for i in order]
    remaining = n0
    for r in range(ratio):
        for t in order_l:
            if remaining == 0:
                return
            p = ins_l[t]
            d = dt_l[t]
            jr = _find(right, p)
            jl = _find(left, p) - 1  # left index p covers sorted controls < p
            dl = d - cd_l[jl] if jl >= 0 else np.inf
            dr = cd_l[jr] - d if jr < n0 else np.inf
            if dl <= dr:
                j, dist = jl, dl
            else:
                j, dist = jr, dr
            if j < 0 or j >= n0 or not dist <= cal:
                continue
            out[t, r] = j
            right[j] = j + 1
            left[j + 1] = j
            remaining -= 1


def _nn_1d_replace(dt, cd, ins, order, ratio, cal, out) -> None:
    # Each treated unit independently takes its `ratio` nearest controls (merge of the
    # left and right runs from its insertion point, left first on ties).
    n0 = len(cd)
    li = ins - 1
    ri = ins.copy()
    alive = np.ones(len(dt), dtype=bool)
    for r in range(ratio):
        dl = np.where(li >= 0, dt - cd[np.clip(li, 0, n0 - 1)], np.inf)
        dr = np.where(ri < n0, cd[np.clip(ri, 0, n0 - 1)] - dt, np.inf)
        take_left = dl <= dr
        dist = np.where(take_left, dl, dr)
        ok = alive & np.isfinite(dist) & (dist <= cal)
        j = np.where(take_left, li, ri)
        out[ok, r] = j[ok]
        li = np.where(ok & take_left, li - 1, li)
        ri = np.where(ok & ~take_left, ri + 1, ri)
        alive &= ok
    del order  # order is irrelevant with replacement (MatchIt uses "data")


def greedy_nn_mahalanobis(
    x_treated: np.ndarray,
    x_control: np.ndarray,
    *,
    order: np.ndarray,
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
) -> np.ndarray:
    """Greedy nearest-neighbour matching on whitened covariates (Mahalanobis distance).

    Parameters
    ----------
    x_treated, x_control : ndarray of shape (n, p)
        Covariates multiplied by the inverse Cholesky factor of the covariance matrix
        (see :func:`whiten`), so Euclidean distance is Mahalanobis distance.
    order, ratio, replace : as in :func:`greedy_nn_1d`.
    caliper : float, optional
        Largest allowed Mahalanobis distance.

    Returns
    -------
    ndarray of shape (n_treated, ratio)
    """
    xt = np.asarray(x_treated, dtype=np.float64)
    xc = np.asarray(x_control, dtype=np.float64)
    n1, n0 = len(xt), len(xc)
    out = np.full((n1, ratio), -1, dtype=np.int64)
    if n1 == 0 or n0 == 0:
        return out
    tree = cKDTree(xc)
    available = np.ones(n0, dtype=bool)
    cal = np.inf if caliper is None else float(caliper)
    n_avail = n0
    for r in range(ratio):
        for t in order:
            t = int(t)
            if n_avail == 0:
                return out
            taken_by_t = set(out[t, :r][out[t, :r] >= 0].tolist())
            k = min(n0, 8 + ratio)
            while True:
                dist, idx = tree.query(xt[t], k=k)
                dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
                ok = (idx < n0) & available[np.clip(idx, 0, n0 - 1)]
                if taken_by_t:
                    ok &= ~np.isin(idx, list(taken_by_t))
                if ok.any() or k >= n0:
                    break
                k = min(n0, 4 * k)
            if not ok.any():
                continue
            best = float(dist[ok].min())
            if not best <= cal:
                continue
            # all controls at exactly the best distance (ties → lowest index)
            cand = tree.query_ball_point(xt[t], r=best * (1 + 1e-12) + 1e-300)
            cand = np.asarray(sorted(cand), dtype=np.int64)
            cand = cand[available[cand]]
            if taken_by_t:
                cand = cand[~np.isin(cand, list(taken_by_t))]
            dd = np.sqrt(((xc[cand] - xt[t]) ** 2).sum(axis=1))
            j = int(cand[np.argmin(dd)])  # argmin: first (lowest index) of equal minima
            out[t, r] = j
            if not replace:
                available[j] = False
                n_avail -= 1
    return out


def whiten(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``X @ inv(L).T`` with ``cov = L L'``: Euclidean distance becomes Mahalanobis."""
    L = np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
    return np.linalg.solve(L, np.asarray(X, dtype=np.float64).T).T
