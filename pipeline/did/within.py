"""Weighted least squares with one categorical fixed effect swept out (the within transform).

With a single fixed effect, Frisch–Waugh–Lovell needs no solver: the weighted projection
on the fixed effect's dummies is the weighted mean of each cell, so every column is swept
by subtracting its cell mean (``np.bincount``; no dummy matrix, no ``n × levels`` memory).
Used by the matched ANCOVA (:mod:`pipeline.did.ancova`: one small regression per event
time, fixed effects nested in event time) and by the design bootstrap's per-draw ANCOVA
(:mod:`pipeline.design_bootstrap`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_codes", "sweep", "wls_within"]


def cell_codes(fe: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes ``0 … L−1`` of the distinct values of ``fe`` and ``L``."""
    u, inv = np.unique(fe, return_inverse=True)
    return inv.reshape(-1), int(u.size)


def sweep(codes: np.ndarray, n_levels: int, w: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """The columns of ``Z`` minus their ``w``-weighted means within each cell of ``codes``.

    Parameters
    ----------
    codes : ndarray of int
        Cell of each row, ``0 … n_levels−1``.
    n_levels : int
        Number of cells.
    w : ndarray
        Non-negative row weights (a cell whose weights sum to 0 is left as it is).
    Z : ndarray
        ``n`` values or an ``n × p`` matrix.

    Returns
    -------
    ndarray
        Same shape as ``Z``: the residuals of the weighted projection of each column on
        the cell dummies.
    """
    Z = np.asarray(Z, dtype=float)
    Z2 = Z.reshape(codes.size, -1)
    sw = np.bincount(codes, weights=w, minlength=n_levels)
    sw = np.where(sw > 0, sw, 1.0)
    out = np.empty_like(Z2)
    for j in range(Z2.shape[1]):
        m = np.bincount(codes, weights=w * Z2[:, j], minlength=n_levels) / sw
        out[:, j] = Z2[:, j] - m[codes]
    return out.reshape(Z.shape)


def wls_within(y: np.ndarray, X: np.ndarray, w: np.ndarray, fe: np.ndarray) -> np.ndarray:
    """Coefficients of the weighted least squares of ``y`` on ``X`` with fixed effects
    ``fe`` (any labels) swept out.

    Parameters
    ----------
    y : ndarray
        Outcome (``n``).
    X : ndarray
        Regressors (``n × k``), without an intercept (the fixed effects hold it).
    w : ndarray
        Non-negative weights.
    fe : ndarray
        Fixed-effect label of each row.

    Returns
    -------
    ndarray
        The ``k`` coefficients (minimum-norm least squares if ``X`` is rank deficient).
    """
    codes, n = cell_codes(fe)
    Z = sweep(codes, n, w, np.column_stack([y, X]))
    sq = np.sqrt(w)
    return np.linalg.lstsq(Z[:, 1:] * sq[:, None], Z[:, 0] * sq, rcond=None)[0]
