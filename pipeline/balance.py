"""Covariate balance between treated and comparison groups, before and after matching.

Three families of statistics, each available weighted (matching weights) or not:

Standardized mean difference (SMD)
    ``(mean_t - mean_c) / sd_t`` where ``sd_t`` is the standard deviation of the
    **treated group in the unmatched sample** (unweighted), MatchIt's ``summary()``
    default for the ATT (``s.d.denom = "treated"``).  The same denominator is used before
    and after matching, so the two SMDs differ only through the means.  For a binary
    (0/1) variable the SD is ``sqrt(p_t (1 - p_t))``; otherwise it is the usual sample
    SD (denominator ``n - 1``).
Variance ratio
    Weighted variance of the treated over that of the comparison group, for continuous
    variables (``NaN`` for binary ones, whose variance is fixed by the mean — MatchIt and
    cobalt leave them blank too).  The weighted variance is
    ``sum w (x - m)^2 / (sum w - sum w^2 / sum w)``, which is the sample variance when
    all weights are equal.
What Works Clearinghouse (WWC) baseline-equivalence effect size
    Continuous variables: Hedges' g, ``omega (m_t - m_c) / s_pooled`` with
    ``s_pooled = sqrt(((n_t - 1) s_t^2 + (n_c - 1) s_c^2) / (n_t + n_c - 2))`` and the
    small-sample correction ``omega = 1 - 3 / (4 N - 9)``, ``N = n_t + n_c``.
    Binary variables: the Cox index
    ``omega (ln(p_t / (1 - p_t)) - ln(p_c / (1 - p_c))) / 1.65``; the WWC Procedures
    Handbook (v4.1 and 5.0, appendix on effect sizes) applies the same small-sample
    correction ``omega`` to it.  Proportions of exactly 0 or 1 are moved by
    ``0.5 / n`` so that the index stays finite.
    With weights, means, proportions and variances are weighted; ``n_t`` and ``n_c``
    are the numbers of units with positive weight.
    Classification (:func:`wwc_class`): ``|es| <= 0.05`` "meets"; ``0.05 < |es| <= 0.25``
    "adjust" (baseline equivalence requires statistical adjustment for the variable);
    ``|es| > 0.25`` "fails".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "balance_table",
    "cox_index",
    "hedges_g",
    "is_binary",
    "smd",
    "variance_ratio",
    "weighted_mean",
    "weighted_var",
    "wwc_class",
    "wwc_effect_size",
]

WWC_MEETS = 0.05
WWC_ADJUST = 0.25
COX_DIVISOR = 1.65


def is_binary(x: np.ndarray) -> bool:
    """True when every value is 0 or 1."""
    x = np.asarray(x, dtype=np.float64)
    return bool(np.all((x == 0) | (x == 1)))


def _w(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    w = np.ones(len(x)) if w is None else np.asarray(w, dtype=np.float64)
    if len(w) != len(x):
        raise ValueError("weights and values differ in length")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    return x, w


def weighted_mean(x: np.ndarray, w: np.ndarray | None = None) -> float:
    """Weighted mean (plain mean without weights)."""
    x, w = _w(x, w)
    sw = w.sum()
    return float(np.dot(w, x) / sw) if sw > 0 else np.nan


def weighted_var(
    x: np.ndarray, w: np.ndarray | None = None, *, binary: bool | None = None
) -> float:
    """Weighted variance.

    Continuous: ``sum w (x - m)^2 / (sum w - sum w^2 / sum w)`` (the unbiased sample
    variance when weights are equal).  Binary (0/1; detected when ``binary`` is None):
    ``p (1 - p)``.
    """
    x, w = _w(x, w)
    if binary is None:
        binary = is_binary(x)
    m = weighted_mean(x, w)
    if binary:
        return float(m * (1 - m))
    sw = w.sum()
    denom = sw - np.dot(w, w) / sw if sw > 0 else 0.0
    if denom <= 0:
        return np.nan
    return float(np.dot(w, (x - m) ** 2) / denom)


def smd(
    x: np.ndarray,
    treat: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    sd: float | None = None,
) -> float:
    """Standardized mean difference (treated − comparison) / SD of the treated.

    Parameters
    ----------
    x : array
    treat : array of 0/1 or bool
    weights : array, optional
        Weights for the means (e.g. matching weights).
    sd : float, optional
        Denominator.  Default: the **unweighted** SD of ``x`` among the treated units
        given (``sqrt(p(1-p))`` for binary ``x``), MatchIt's ATT convention.  Pass the
        SD from the unmatched sample when ``x`` is a matched sample.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(treat).astype(bool)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    if sd is None:
        sd = np.sqrt(weighted_var(x[t], None, binary=is_binary(x)))
    diff = weighted_mean(x[t], w[t]) - weighted_mean(x[~t], w[~t])
    if sd == 0 or not np.isfinite(sd):
        return 0.0 if diff == 0 else np.nan
    return float(diff / sd)


def variance_ratio(x: np.ndarray, treat: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted variance of the treated over that of the comparison group."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(treat).astype(bool)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    vt = weighted_var(x[t], w[t], binary=False)
    vc = weighted_var(x[~t], w[~t], binary=False)
    return float(vt / vc) if vc > 0 else np.nan


def _omega(n: float) -> float:
    return 1.0 - 3.0 / (4.0 * n - 9.0)


def hedges_g(x: np.ndarray, treat: np.ndarray, weights: np.ndarray | None = None) -> float:
    """WWC Hedges' g with pooled SD and small-sample correction (weighted if given)."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(treat).astype(bool)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    pos = w > 0
    nt, nc = int((t & pos).sum()), int((~t & pos).sum())
    if nt < 2 or nc < 2:
        return np.nan
    mt, mc = weighted_mean(x[t], w[t]), weighted_mean(x[~t], w[~t])
    vt = weighted_var(x[t & pos], w[t & pos], binary=False)
    vc = weighted_var(x[~t & pos], w[~t & pos], binary=False)
    sp = np.sqrt(((nt - 1) * vt + (nc - 1) * vc) / (nt + nc - 2))
    if sp == 0:
        return 0.0 if mt == mc else np.nan
    return float(_omega(nt + nc) * (mt - mc) / sp)


def cox_index(x: np.ndarray, treat: np.ndarray, weights: np.ndarray | None = None) -> float:
    """WWC Cox index for a binary variable (weighted if given), with the correction omega."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(treat).astype(bool)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    pos = w > 0
    nt, nc = int((t & pos).sum()), int((~t & pos).sum())
    if nt < 1 or nc < 1 or nt + nc < 3:
        return np.nan
    pt, pc = weighted_mean(x[t], w[t]), weighted_mean(x[~t], w[~t])
    pt = min(max(pt, 0.5 / nt), 1 - 0.5 / nt)
    pc = min(max(pc, 0.5 / nc), 1 - 0.5 / nc)
    lor = np.log(pt / (1 - pt)) - np.log(pc / (1 - pc))
    return float(_omega(nt + nc) * lor / COX_DIVISOR)


def wwc_effect_size(x: np.ndarray, treat: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Cox index for a binary variable, Hedges' g otherwise."""
    if is_binary(x):
        return cox_index(x, treat, weights)
    return hedges_g(x, treat, weights)


def wwc_class(es: float) -> str:
    """``'meets'`` (|es| ≤ 0.05), ``'adjust'`` (≤ 0.25), ``'fails'`` (> 0.25); ``''`` for NaN."""
    if es is None or not np.isfinite(es):
        return ""
    a = abs(es)
    if a <= WWC_MEETS:
        return "meets"
    if a <= WWC_ADJUST:
        return "adjust"
    return "fails"


BALANCE_COLUMNS = [
    "covariate",
    "smd_before",
    "smd_after",
    "variance_ratio_after",
    "type",
    "mean_treated_before",
    "mean_comparison_before",
    "mean_treated_after",
    "mean_comparison_after",
    "variance_ratio_before",
    "wwc_effect_size_before",
    "wwc_class_before",
    "wwc_effect_size_after",
    "wwc_class_after",
]


def repeats_missing_indicator(name: str, x, missing) -> bool:
    """Whether the balance row ``name`` (values ``x``) is the prior-year tier's "missing"
    level and holds the same students as the prior-year missing indicator ``missing``
    (``None`` when there is none): the balance and WWC tables then list them once, as
    ``prior_year_missing``."""
    return (
        name == "prior_year_tier=missing"
        and missing is not None
        and np.array_equal(np.asarray(x, float), np.asarray(missing, float))
    )


def balance_table(
    X_before: pd.DataFrame,
    treat_before: np.ndarray,
    X_after: pd.DataFrame | None = None,
    treat_after: np.ndarray | None = None,
    weights_after: np.ndarray | None = None,
) -> pd.DataFrame:
    """Balance of every column of ``X_before`` before and after matching.

    Parameters
    ----------
    X_before : DataFrame
        Numeric covariates of the unmatched sample (dummy-code categories first, e.g.
        with :func:`pipeline.matching.propensity.design_matrix` and ``drop_first=False``).
    treat_before : array of 0/1 or bool
    X_after, treat_after, weights_after : optional
        The matched sample and its matching weights.  Defaults: ``X_before`` and
        ``treat_before`` with ``weights_after`` (so one can pass only weights that are
        zero for unmatched units, as MatchIt does).

    Returns
    -------
    DataFrame
        One row per covariate, columns :data:`BALANCE_COLUMNS`: the contract's
        ``covariate, smd_before, smd_after, variance_ratio_after`` first.  SMDs use the
        SD of the treated in the unmatched sample (see the module docstring).
    """
    tb = np.asarray(treat_before).astype(bool)
    if X_after is None:
        X_after = X_before
        treat_after = tb if treat_after is None else treat_after
    ta = np.asarray(treat_after).astype(bool)
    wa = np.ones(len(X_after)) if weights_after is None else np.asarray(weights_after, float)
    if len(wa) != len(X_after) or len(ta) != len(X_after):
        raise ValueError("balance_table: X_after, treat_after and weights_after differ in length")
    if np.any(wa < 0) or not np.all(np.isfinite(wa)):
        raise ValueError("balance_table: weights must be finite and non-negative")
    # split the samples once; the after sample keeps only units with positive weight
    pos = np.flatnonzero(wa > 0)
    ta_p, wa_p = ta[pos], wa[pos]
    wt, wc = wa_p[ta_p], wa_p[~ta_p]
    rows = []
    for col in X_before.columns:
        xb = X_before[col].to_numpy(dtype=np.float64)
        xa = X_after[col].to_numpy(dtype=np.float64)[pos]
        binary = is_binary(xb) and is_binary(xa)
        bt, bc = _Group(xb[tb], None, binary), _Group(xb[~tb], None, binary)
        at, ac = _Group(xa[ta_p], wt, binary), _Group(xa[~ta_p], wc, binary)
        sd_t = np.sqrt(bt.var)
        es_b, es_a = _wwc(bt, bc, binary), _wwc(at, ac, binary)
        rows.append(
            {
                "covariate": col,
                "smd_before": _ratio(bt.mean - bc.mean, sd_t),
                "smd_after": _ratio(at.mean - ac.mean, sd_t),
                "variance_ratio_after": np.nan if binary else _ratio(at.cvar, ac.cvar),
                "type": "binary" if binary else "continuous",
                "mean_treated_before": bt.mean,
                "mean_comparison_before": bc.mean,
                "mean_treated_after": at.mean,
                "mean_comparison_after": ac.mean,
                "variance_ratio_before": np.nan if binary else _ratio(bt.cvar, bc.cvar),
                "wwc_effect_size_before": es_b,
                "wwc_class_before": wwc_class(es_b),
                "wwc_effect_size_after": es_a,
                "wwc_class_after": wwc_class(es_a),
            }
        )
    return pd.DataFrame(rows, columns=BALANCE_COLUMNS)


class _Group:
    """Weighted summary of one group: n (units with weight > 0), mean, variances."""

    __slots__ = ("n", "mean", "var", "cvar")

    def __init__(self, x: np.ndarray, w: np.ndarray | None, binary: bool) -> None:
        self.n = len(x)
        if self.n == 0:
            self.mean = self.var = self.cvar = np.nan
            return
        if w is None:
            self.mean = float(x.mean())
            self.cvar = float(x.var(ddof=1)) if self.n > 1 else np.nan
        else:
            sw = w.sum()
            self.mean = float(np.dot(w, x) / sw)
            denom = sw - np.dot(w, w) / sw
            self.cvar = float(np.dot(w, (x - self.mean) ** 2) / denom) if denom > 0 else np.nan
        self.var = self.mean * (1 - self.mean) if binary else self.cvar


def _ratio(a: float, b: float) -> float:
    if b == 0 or not np.isfinite(b):
        return 0.0 if a == 0 else np.nan
    return float(a / b)


def _wwc(t: _Group, c: _Group, binary: bool) -> float:
    """WWC effect size from group summaries (as :func:`hedges_g` / :func:`cox_index`)."""
    nt, nc = t.n, c.n
    if binary:
        if nt < 1 or nc < 1 or nt + nc < 3:
            return np.nan
        pt = min(max(t.mean, 0.5 / nt), 1 - 0.5 / nt)
        pc = min(max(c.mean, 0.5 / nc), 1 - 0.5 / nc)
        lor = np.log(pt / (1 - pt)) - np.log(pc / (1 - pc))
        return float(_omega(nt + nc) * lor / COX_DIVISOR)
    if nt < 2 or nc < 2:
        return np.nan
    sp = np.sqrt(((nt - 1) * t.cvar + (nc - 1) * c.cvar) / (nt + nc - 2))
    if sp == 0:
        return 0.0 if t.mean == c.mean else np.nan
    return float(_omega(nt + nc) * (t.mean - c.mean) / sp)
