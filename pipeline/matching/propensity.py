"""Design matrices and propensity scores for matching.

The propensity score is a logistic regression of the treatment indicator on the
covariates, fitted **without a penalty** so that it reproduces R's
``glm(treat ~ ..., family = binomial)`` (the model behind MatchIt's default
``distance = "glm"``).  It is fitted on standardized features (centring and scaling do
not change an unpenalized fit's predictions, only its conditioning) by Newton's method
with step halving (:func:`_logistic_newton`, R's IRLS in other words) to a tight
tolerance: a step that moves no standardized coefficient by more than ``tol``.

Categorical covariates (string, object or category dtype) enter the model as dummy
variables with the first level (in sorted order) as the reference, R's treatment
contrasts; :func:`design_matrix` with ``drop_first=False`` gives one dummy per level, as
MatchIt's balance tables show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

__all__ = [
    "PropensityModel",
    "categorical_levels",
    "design_columns",
    "design_matrix",
    "fit_propensity",
    "linear_predictor",
    "logit",
]


def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def categorical_levels(data: pd.DataFrame, covariates: Sequence[str]) -> dict[str, list[str]]:
    """Sorted levels (as text) present in each categorical covariate of ``data``."""
    levels: dict[str, list[str]] = {}
    for col in covariates:
        if col in data.columns and _is_categorical(data[col]):
            s = data[col]
            if isinstance(s.dtype, pd.CategoricalDtype):
                codes = np.unique(s.cat.codes.to_numpy())
                cats = s.cat.categories
                levels[col] = sorted(str(cats[c]) for c in codes if c >= 0)
            else:
                levels[col] = sorted(str(v) for v in pd.unique(s.dropna()))
    return levels


def _check_columns(data: pd.DataFrame, covariates: Sequence[str], name: str) -> None:
    missing = [c for c in covariates if c not in data.columns]
    if missing:
        raise KeyError(f"{name}: covariate column(s) not found: {', '.join(missing)}")


def _level_codes(s: pd.Series, lev: list[str]) -> np.ndarray:
    """Position of each value of ``s`` in ``lev`` (-1 when absent)."""
    cat = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("category")
    cats = [str(c) for c in cat.cat.categories]
    lookup = np.array([lev.index(c) if c in lev else -1 for c in cats] + [-1], dtype=np.int64)
    codes = cat.cat.codes.to_numpy().astype(np.int64)
    return lookup[codes]  # code -1 (missing) maps to the appended -1


def design_columns(
    data: pd.DataFrame,
    covariates: Sequence[str],
    *,
    drop_first: bool = True,
    levels: dict[str, list[str]] | None = None,
    name: str = "data",
):
    """Yield ``(column_name, covariate, float64 array)`` of the design matrix one by one.

    The lazy form of :func:`design_matrix`, for data too large to hold the whole
    matrix.  Same arguments; ``levels`` fixes the levels of categorical covariates
    (default: the levels present in ``data``).
    """
    _check_columns(data, covariates, name)
    levels = {} if levels is None else levels
    for col in covariates:
        s = data[col]
        if s.isna().any():
            n = int(s.isna().sum())
            raise ValueError(
                f"{name}: column '{col}' has {n} missing value(s); matching covariates "
                "must be complete (add a missing-value indicator and fill the column)"
            )
        if _is_categorical(s):
            lev = levels.get(col)
            if lev is None:
                lev = categorical_levels(data, [col])[col]
            codes = _level_codes(s, lev)
            keep = range(1, len(lev)) if drop_first else range(len(lev))
            for k in keep:
                yield f"{col}{lev[k]}", col, (codes == k).astype(np.float64)
        else:
            x = s.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(x)):
                raise ValueError(f"{name}: column '{col}' has non-finite values")
            yield col, col, x


def design_matrix(
    data: pd.DataFrame,
    covariates: Sequence[str],
    *,
    drop_first: bool = True,
    levels: dict[str, list[str]] | None = None,
    name: str = "data",
) -> pd.DataFrame:
    """Numeric design matrix (float64) for ``covariates`` of ``data``.

    Parameters
    ----------
    data : DataFrame
    covariates : sequence of str
        Column names.  Numeric and boolean columns are used as they are (booleans as
        0/1); other columns are expanded into one dummy per level named
        ``<column><level>`` (R's naming, e.g. ``raceblack``), levels sorted as text.
    drop_first : bool
        Drop the first level of each categorical column (treatment contrasts).
    levels : dict, optional
        Levels of categorical covariates to use (default: those present).
    name : str
        Used in error messages to name the input.

    Raises
    ------
    KeyError
        A covariate is not a column of ``data``.
    ValueError
        A covariate has missing or non-finite values.
    """
    cols = {
        n: x
        for n, _, x in design_columns(
            data, covariates, drop_first=drop_first, levels=levels, name=name
        )
    }
    return pd.DataFrame(cols, index=data.index)


def linear_predictor(
    data: pd.DataFrame,
    covariates: Sequence[str],
    model: PropensityModel,
    *,
    levels: dict[str, list[str]] | None = None,
) -> np.ndarray:
    """The model's logit propensity score for every row of ``data``, without building
    the design matrix (categorical coefficients are looked up by level code)."""
    coef = dict(zip(model.columns, model.coef, strict=True))
    lp = np.full(len(data), model.intercept, dtype=np.float64)
    levels = {} if levels is None else levels
    for col in covariates:
        s = data[col]
        if _is_categorical(s):
            lev = levels.get(col) or categorical_levels(data, [col])[col]
            b = np.array([coef.get(f"{col}{v}", 0.0) for v in lev] + [0.0])
            lp += b[_level_codes(s, lev)]
        else:
            lp += coef.get(col, 0.0) * s.to_numpy(dtype=np.float64)
    return lp


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[1e-15, 1 - 1e-15]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class PropensityModel:
    """A fitted propensity-score model.

    Attributes
    ----------
    columns : list of str
        Design-matrix columns (after dummy coding).
    intercept : float
    coef : ndarray
        Coefficients on the original (unstandardized) scale, comparable to ``glm``'s.
    ps : ndarray
        Fitted propensity scores of the rows the model was fitted on.
    """

    columns: list[str]
    intercept: float
    coef: np.ndarray
    ps: np.ndarray

    @property
    def linear_predictor(self) -> np.ndarray:
        """The fitted logit propensity scores."""
        return logit(self.ps)

    def params(self) -> pd.Series:
        """Intercept and coefficients as a Series (``glm``'s ``coef()``)."""
        return pd.Series(
            np.concatenate([[self.intercept], self.coef]), index=["(Intercept)", *self.columns]
        )


def _logistic_newton(
    Z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    beta: np.ndarray,
    steps: int,
    tol: float = 1e-10,
    l2: float = 0.0,
) -> np.ndarray:
    """Damped Newton steps for a weighted logistic regression (``Z``'s column 0 is the
    intercept, not penalized).

    Minimises ``−Σ w [y η − log(1 + e^η)] + (l2/2)‖β[1:]‖²`` (``l2 = 1/C`` is
    scikit-learn's ``C``), halving a step until the objective does not increase — so
    near-separated designs (a month with no event) converge to large finite coefficients
    as the stage's solver does, instead of overshooting. Stops when a step moves no
    coefficient by more than ``tol`` or when no component of the gradient of the mean loss
    exceeds ``tol`` (scikit-learn's criterion; it ends the slow drift of coefficients of
    near-separated columns towards infinity). ``Z`` may be a scipy.sparse matrix (a design
    of dummies: the Hessian then costs the nonzeros, not ``n × columns²``).
    """
    pen = np.full(beta.size, l2)
    pen[0] = 0.0

    def objective(b):
        eta = Z @ b
        return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) + 0.5 * np.sum(pen * b * b))

    b = beta.copy()
    f = objective(b)
    wsum = float(np.sum(w))
    for _ in range(steps):
        eta = Z @ b
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # expit without overflow
        g = Z.T @ (w * (y - p)) - pen * b
        if np.max(np.abs(g)) <= tol * wsum:  # scikit-learn's criterion (mean-loss gradient)
            break
        H = _weighted_gram(Z, w * p * (1 - p))
        H[np.diag_indices_from(H)] += pen + 1e-12
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        t = 1.0
        for _ in range(30):
            f_new = objective(b + t * step)
            if f_new <= f + 1e-12 * abs(f):
                break
            t *= 0.5
        b = b + t * step
        f = f_new
        if np.max(np.abs(t * step)) < tol:
            break
    return b


def _weighted_gram(Z, v: np.ndarray) -> np.ndarray:
    """``Z' diag(v) Z`` as a dense array (``Z`` dense or scipy.sparse)."""
    if sp.issparse(Z):
        return np.asarray((Z.T @ (sp.diags(v) @ Z)).toarray())
    return (Z * v[:, None]).T @ Z


def _non_aliased(A: np.ndarray, mu: np.ndarray, sd: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns that are not linear combinations of the intercept and earlier columns."""
    p = A.shape[1]
    keep = np.zeros(p, dtype=bool)
    ok = sd > 0
    if not ok.any():
        return keep
    Z = A[:, ok]  # a copy, centred and scaled in place (one copy, not two)
    Z -= mu[ok]
    Z /= sd[ok]
    G = Z.T @ Z  # Gram matrix of the centred, scaled columns
    del Z
    kept: list[int] = []
    for j in range(G.shape[0]):
        if kept:
            Gk = G[np.ix_(kept, kept)]
            g = G[kept, j]
            resid = G[j, j] - g @ np.linalg.solve(Gk, g)
        else:
            resid = G[j, j]
        if resid > tol * G[j, j]:
            kept.append(j)
    keep[np.flatnonzero(ok)[kept]] = True
    return keep


def _standardized_with_intercept(
    A: np.ndarray, keep: np.ndarray, mu: np.ndarray, sd: np.ndarray, block: int = 100_000
) -> np.ndarray:
    """``np.column_stack([1, (A[:, keep] - mu[keep]) / sd[keep]])`` — the same values in
    the same memory order (column-major when ``A`` is, as a data frame's values are), so
    the fit's BLAS sums are the same — filled a block of rows at a time: no temporary
    copy of ``A`` (at state scale each copy is gigabytes)."""
    Z1 = np.empty((A.shape[0], 1 + int(keep.sum())), order="F" if np.isfortran(A) else "C")
    Z1[:, 0] = 1.0
    m, s = mu[keep], sd[keep]
    for a in range(0, A.shape[0], block):
        Z1[a : a + block, 1:] = (A[a : a + block][:, keep] - m) / s
    return Z1


def fit_propensity(
    X: pd.DataFrame | np.ndarray,
    treat: np.ndarray | pd.Series,
    *,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> PropensityModel:
    """Fit an unpenalized logistic regression of ``treat`` on ``X``.

    Aliased columns are dropped, as ``glm`` does (it reports them as ``NA``; here their
    coefficient is 0): a column is aliased when it has zero variance or is (to a
    relative tolerance of 1e-7, ``glm``'s QR tolerance) a linear combination of the
    intercept and the columns *before* it.

    Parameters
    ----------
    X : DataFrame or ndarray
        Numeric design matrix (see :func:`design_matrix`).
    treat : array-like of 0/1 or bool
    tol, max_iter : the solver stops when a Newton step moves no standardized coefficient
        by more than ``tol``, or after ``max_iter`` steps.

    Returns
    -------
    PropensityModel
    """
    cols = list(X.columns) if isinstance(X, pd.DataFrame) else [f"x{i}" for i in range(X.shape[1])]
    A = np.asarray(X, dtype=np.float64)
    y = np.asarray(treat).astype(np.int8)
    if set(np.unique(y)) - {0, 1} or len(np.unique(y)) < 2:
        raise ValueError("propensity model: treatment must take both values 0 and 1")
    mu = A.mean(axis=0) if A.shape[1] else np.zeros(0)
    sd = A.std(axis=0) if A.shape[1] else np.zeros(0)
    keep = _non_aliased(A, mu, sd)
    if not keep.any():
        p = float(y.mean())
        ps = np.full(len(y), p)
        return PropensityModel([], float(np.log(p / (1 - p))), np.zeros(0), ps)
    Z1 = _standardized_with_intercept(A, keep, mu, sd)
    n_col = A.shape[1]
    del X, A  # the design matrix is freed here when the caller handed over its reference
    ybar = float(y.mean())
    start = np.zeros(Z1.shape[1])
    start[0] = np.log(ybar / (1 - ybar))
    # One BLAS thread: the fit is then bit-for-bit reproducible (multithreaded reductions
    # may sum in a different order from run to run) and does not oversubscribe shared CPUs.
    with threadpool_limits(limits=1):
        beta = _logistic_newton(Z1, y.astype(np.float64), np.ones(len(y)), start, max_iter, tol=tol)
    b_std = beta[1:]
    coef = np.zeros(n_col)
    coef[keep] = b_std / sd[keep]
    intercept = float(beta[0] - np.sum(b_std * mu[keep] / sd[keep]))
    eta = Z1 @ beta
    ps = 0.5 * (1.0 + np.tanh(0.5 * eta))
    return PropensityModel(cols, intercept, coef, ps)
