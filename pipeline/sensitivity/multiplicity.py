"""Subgroup effects: joint tests of equality and multiplicity-adjusted contrasts.

* :func:`equality_wald` — Wald test that the effects are equal across the levels of one
  subgroup variable: ``(C b)' (C V C')⁻¹ (C b)`` with ``C`` the contrasts of each level
  against the first, χ² with ``k − 1`` degrees of freedom. Without a covariance matrix the
  levels' estimates are taken as independent (disjoint matched sets).
* :func:`bh_qvalues` — Benjamini–Hochberg (1995) adjusted p-values (q-values): the
  smallest false discovery rate at which each hypothesis is rejected.
* :func:`subgroup_contrasts` — every level against its variable's reference level (the
  first in the declared order), with z-tests, BH q-values over all contrasts together and
  the equality tests; descriptive variables (e.g. dosage, which conditions on what happened
  after the first visit) are kept in the table but flagged and left out of the q-values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["bh_qvalues", "equality_wald", "subgroup_contrasts"]


def bh_qvalues(p: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg q-values (as R's ``p.adjust(p, "BH")``; NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)[::-1]
    ranks = np.arange(m, 0, -1)
    adj = np.minimum.accumulate(pv[order] * m / ranks)
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    q[ok] = out
    return q


def equality_wald(estimate: Sequence[float], vcov: np.ndarray | Sequence[float]) -> tuple[float, int, float]:
    """Wald statistic, degrees of freedom and p-value for equal effects across levels.

    ``vcov`` is a covariance matrix or a vector of variances (independent levels).
    """
    b = np.asarray(estimate, dtype=float)
    V = np.asarray(vcov, dtype=float)
    if V.ndim == 1:
        V = np.diag(V)
    k = b.size
    if k < 2:
        return float("nan"), 0, float("nan")
    C = np.hstack([-np.ones((k - 1, 1)), np.eye(k - 1)])
    d = C @ b
    stat = float(d @ np.linalg.solve(C @ V @ C.T, d))
    return stat, k - 1, float(stats.chi2.sf(stat, k - 1))


def subgroup_contrasts(
    table: pd.DataFrame,
    order: dict[str, Sequence[str]] | None = None,
    descriptive: Sequence[str] = ("dosage",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contrasts against each variable's reference level, q-values and equality tests.

    Parameters
    ----------
    table
        Subgroup estimates with columns ``subgroup, level, estimate, std_error``.
    order
        Declared order of the levels per variable (the first is the reference); variables
        or levels not listed keep the table's order after the listed ones.
    descriptive
        Variables that are reported but excluded from the causal family of contrasts.

    Returns
    -------
    (contrasts, tests)
        ``contrasts``: ``subgroup, level, reference, difference, std_error, z, p_value,
        q_value, role`` (``role``: ``causal`` or ``descriptive``);
        ``tests``: ``subgroup, statistic, df, p_value, q_value, role``.
    """
    need = {"subgroup", "level", "estimate", "std_error"}
    if not need <= set(table.columns):
        raise ValueError(f"subgroup_contrasts: table needs columns {sorted(need)}")
    order = order or {}
    crows, trows = [], []
    for sg in dict.fromkeys(table["subgroup"]):
        t = table[(table["subgroup"] == sg) & np.isfinite(table["estimate"])
                  & np.isfinite(table["std_error"])]
        levels = [str(x) for x in t["level"]]
        declared = [str(x) for x in order.get(sg, []) if str(x) in levels]
        levels = declared + [x for x in levels if x not in declared]
        t = t.set_index(t["level"].astype(str)).loc[levels]
        role = "descriptive" if sg in descriptive else "causal"
        if len(t) < 2:
            continue
        b, se = t["estimate"].to_numpy(float), t["std_error"].to_numpy(float)
        stat, df, p = equality_wald(b, se**2)
        trows.append({"subgroup": sg, "statistic": stat, "df": df, "p_value": p, "role": role})
        for i in range(1, len(t)):
            diff = b[i] - b[0]
            s = float(np.hypot(se[i], se[0]))
            z = diff / s
            crows.append({"subgroup": sg, "level": levels[i], "reference": levels[0],
                          "difference": diff, "std_error": s, "z": z,
                          "p_value": float(2 * stats.norm.sf(abs(z))), "role": role})
    cols_c = ["subgroup", "level", "reference", "difference", "std_error", "z", "p_value",
              "q_value", "role"]
    cols_t = ["subgroup", "statistic", "df", "p_value", "q_value", "role"]
    c = pd.DataFrame(crows, columns=[x for x in cols_c if x != "q_value"])
    tt = pd.DataFrame(trows, columns=[x for x in cols_t if x != "q_value"])
    for f in (c, tt):
        f["q_value"] = np.nan
        causal = (f["role"] == "causal").to_numpy()
        f.loc[causal, "q_value"] = bh_qvalues(f.loc[causal, "p_value"].to_numpy())
    return c.reindex(columns=cols_c), tt.reindex(columns=cols_t)
