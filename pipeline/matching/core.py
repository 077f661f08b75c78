"""Nearest-neighbour matching on a data frame, after R's MatchIt (``method = "nearest"``).

:func:`matchit` estimates the distance, matches treated units to controls (ATT) and
returns a :class:`MatchResult` holding MatchIt's ``match.matrix``, ``weights`` and
``subclass``; :meth:`MatchResult.match_data` is ``match.data()``,
:meth:`MatchResult.get_matches` is ``get_matches()`` and :meth:`MatchResult.summary` is
``summary()`` (balance before and after, sample sizes).

Semantics (MatchIt ≥ 4.6 defaults unless stated)
------------------------------------------------
* ``distance="glm"``: propensity score from an unpenalized logistic regression of the
  treatment on the covariates (:mod:`pipeline.matching.propensity`).  With
  ``link="logit"`` matching and the caliper use the score itself (MatchIt's default);
  with ``link="linear.logit"`` they use the logit of the score.
  ``distance="mahalanobis"``: Mahalanobis distance on the covariates, with the pooled
  within-group covariance matrix (MatchIt's ``transform_covariates``); the matching order
  defaults to ``"data"``.  ``distance`` may also be the name of a numeric column holding
  a precomputed score.
* Greedy matching (:mod:`pipeline.matching.nearest`): treated units in ``m_order``
  (default ``"largest"`` score first; ties in original row order), round by round
  (first match of every treated unit, then second …), each taking the closest
  available control; the left (lower-score) neighbour wins ties in distance.
* ``caliper``: with ``std_caliper=True`` in units of the standard deviation of the
  distance over all units (MatchIt: ``caliper * sd(distance)``), else in raw units.
* ``exact``: matching happens separately inside every combination of these columns.
* Weights (ATT): treated units 1; a control gets ``sum over the treated units it serves
  of 1 / k_i`` (``k_i``: controls matched to that treated unit), and control weights are
  then scaled to sum to the number of matched controls.  Unmatched units weigh 0.
* ``subclass``: the matched set (the treated unit's number, 1-based, in data order of
  the matched treated units).  Without replacement every matched unit has one; with
  replacement MatchIt gives none and :meth:`MatchResult.get_matches` stacks the matched
  sets instead (a control appears once per treated unit it serves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline import balance as bal
from pipeline.matching.nearest import (
    greedy_nn_1d,
    greedy_nn_mahalanobis,
    treated_order,
    whiten,
)
from pipeline.matching.propensity import (
    PropensityModel,
    design_matrix,
    fit_propensity,
    logit,
)

__all__ = ["MatchResult", "matchit", "matching_weights"]


def matching_weights(match_matrix: np.ndarray, n: int, treated_idx: np.ndarray) -> np.ndarray:
    """MatchIt's ATT weights from a match matrix of row positions (``-1`` = none).

    Parameters
    ----------
    match_matrix : ndarray (n_treated, ratio)
        Control row positions (0-based into the full data) per treated unit.
    n : int
        Number of rows of the data.
    treated_idx : ndarray
        Row positions of the treated units (same order as ``match_matrix``).
    """
    w = np.zeros(n, dtype=np.float64)
    k = (match_matrix >= 0).sum(axis=1)
    has = k > 0
    w[treated_idx[has]] = 1.0
    rows, cols = np.nonzero(match_matrix >= 0)
    ctrl = match_matrix[rows, cols]
    np.add.at(w, ctrl, 1.0 / k[rows])
    ctrl_u = np.unique(ctrl)
    if len(ctrl_u):
        s = w[ctrl_u].sum()
        w[ctrl_u] *= len(ctrl_u) / s
    return w


@dataclass
class MatchResult:
    """The outcome of :func:`matchit`.

    Attributes
    ----------
    data : DataFrame
        The input data (index reset to 0..n-1).
    treat : ndarray of bool
    covariates : list of str
    distance : ndarray or None
        Propensity score (or user score) per row; None for Mahalanobis matching.
    match_matrix : ndarray (n_treated, ratio)
        Row positions of each treated unit's controls (``-1``: none), treated units in
        data order.
    weights, subclass : ndarray
        MatchIt's weights; subclass (1-based, 0 = none).
    model : PropensityModel or None
    caliper : float or None
        The caliper in raw units of the matching scale.
    """

    data: pd.DataFrame
    treat: np.ndarray
    covariates: list[str]
    distance: np.ndarray | None
    match_matrix: np.ndarray
    weights: np.ndarray
    subclass: np.ndarray
    model: PropensityModel | None
    caliper: float | None
    info: dict = field(default_factory=dict)

    @property
    def treated_idx(self) -> np.ndarray:
        return np.nonzero(self.treat)[0]

    def match_data(self, distance_name: str = "distance") -> pd.DataFrame:
        """Matched units with ``distance``, ``weights`` and ``subclass`` (MatchIt's ``match.data``).

        ``subclass`` is nullable and missing for every unit when matching was with
        replacement (as in MatchIt).
        """
        keep = self.weights > 0
        out = self.data.loc[keep].copy()
        if self.distance is not None:
            out[distance_name] = self.distance[keep]
        out["weights"] = self.weights[keep]
        sub = pd.array(self.subclass[keep], dtype="Int64")
        if self.info.get("replace"):
            sub = pd.array([pd.NA] * int(keep.sum()), dtype="Int64")
        else:
            sub[sub == 0] = pd.NA
        out["subclass"] = sub
        return out

    def get_matches(self, id_name: str = "id") -> pd.DataFrame:
        """One row per unit and matched set (MatchIt's ``get_matches``).

        Columns added: ``id`` (row position in the data), ``subclass`` (matched set,
        1-based), ``weights`` (treated 1; a control ``c_k / k_i`` where ``k_i`` is the
        number of controls of its set and ``c_k`` the scaling that makes a control's
        weights over its rows sum to its :attr:`weights`).
        """
        ti = self.treated_idx
        k = (self.match_matrix >= 0).sum(axis=1)
        has = np.nonzero(k > 0)[0]
        pos_t, sub, w = [], [], []
        ctrl_w_total = self.weights
        # scaling constant: weights of controls = (sum 1/k_i) * c
        rows, cols = np.nonzero(self.match_matrix >= 0)
        raw = np.zeros(len(self.data))
        np.add.at(raw, self.match_matrix[rows, cols], 1.0 / k[rows])
        ctrl = np.unique(self.match_matrix[rows, cols])
        c = ctrl_w_total[ctrl].sum() / raw[ctrl].sum() if len(ctrl) else 1.0
        for s, i in enumerate(has, start=1):
            pos_t.append(ti[i])
            sub.append(s)
            w.append(1.0)
            for j in self.match_matrix[i][self.match_matrix[i] >= 0]:
                pos_t.append(j)
                sub.append(s)
                w.append(c / k[i])
        out = self.data.iloc[pos_t].copy()
        out.insert(0, id_name, np.asarray(pos_t, dtype=np.int64))
        if self.distance is not None:
            out["distance"] = self.distance[pos_t]
        out["subclass"] = np.asarray(sub, dtype=np.int64)
        out["weights"] = np.asarray(w)
        return out.reset_index(drop=True)

    def balance(self) -> pd.DataFrame:
        """Balance table (see :func:`pipeline.balance.balance_table`) incl. the distance."""
        X = design_matrix(self.data, self.covariates, drop_first=False)
        if self.distance is not None:
            X.insert(0, "distance", self.distance)
        return bal.balance_table(X, self.treat, weights_after=self.weights)

    def sample_sizes(self) -> pd.DataFrame:
        """MatchIt's sample-size table: All, Matched, Unmatched for Control and Treated."""
        t = self.treat
        w = self.weights
        matched = w > 0
        ess_c = (w[~t].sum() ** 2 / (w[~t] ** 2).sum()) if matched[~t].any() else 0.0
        return pd.DataFrame(
            {
                "Control": [
                    int((~t).sum()),
                    int((matched & ~t).sum()),
                    int((~matched & ~t).sum()),
                    ess_c,
                ],
                "Treated": [
                    int(t.sum()),
                    int((matched & t).sum()),
                    int((~matched & t).sum()),
                    float((matched & t).sum()),
                ],
            },
            index=["All", "Matched", "Unmatched", "Matched (ESS)"],
        )

    def summary(self) -> MatchSummary:
        """Balance before/after and sample sizes (MatchIt's ``summary()``)."""
        return MatchSummary(self.balance(), self.sample_sizes(), dict(self.info))


@dataclass
class MatchSummary:
    balance: pd.DataFrame
    sample_sizes: pd.DataFrame
    info: dict

    def __str__(self) -> str:
        cols = [
            "covariate",
            "smd_before",
            "smd_after",
            "variance_ratio_after",
            "wwc_effect_size_after",
            "wwc_class_after",
        ]
        desc = ", ".join(f"{k}={v}" for k, v in self.info.items())
        return (
            f"Nearest-neighbour matching ({desc})\n\nBalance (SMD: treated-group SD)\n"
            f"{self.balance[cols].to_string(index=False, float_format=lambda v: f'{v:.4f}')}"
            f"\n\nSample sizes\n{self.sample_sizes.to_string()}\n"
        )


def _mahalanobis_cov(X: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pooled within-group covariance matrix."""
    n1, n0 = t.sum(), (~t).sum()
    c1 = np.cov(X[t], rowvar=False) if n1 > 1 else 0.0
    c0 = np.cov(X[~t], rowvar=False) if n0 > 1 else 0.0
    return np.atleast_2d(((n1 - 1) * c1 + (n0 - 1) * c0) / (n1 + n0 - 2))


def matchit(
    data: pd.DataFrame,
    treat: str,
    covariates: Sequence[str],
    *,
    distance: str = "glm",
    link: str = "logit",
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    std_caliper: bool = True,
    exact: Sequence[str] | None = None,
    m_order: str | None = None,
    seed: int | None = None,
) -> MatchResult:
    """Greedy nearest-neighbour matching for the ATT (MatchIt's ``method = "nearest"``).

    Parameters
    ----------
    data : DataFrame
    treat : str
        Name of a 0/1 or boolean column (1 = treated).
    covariates : sequence of str
        Covariates of the propensity model (or of the Mahalanobis distance) and of the
        balance table.  Categorical columns are dummy coded.
    distance : {"glm", "mahalanobis"} or str
        ``"glm"``: logistic propensity score; ``"mahalanobis"``; or the name of a numeric
        column with a precomputed score.
    link : {"logit", "linear.logit"}
        Match on the score or on its logit (``"glm"`` only).
    ratio : int
        Controls per treated unit.
    replace : bool
    caliper : float, optional
        Caliper on the matching scale (SD units when ``std_caliper``).
    exact : sequence of str, optional
        Match only within identical values of these columns.
    m_order : {"largest", "smallest", "data", "random"}, optional
        Default ``"largest"`` for a score, ``"data"`` for Mahalanobis (and for matching
        with replacement, where the order is irrelevant).
    seed : int, optional
        Only for ``m_order="random"``.

    Returns
    -------
    MatchResult
    """
    df, t = _treatment(data, treat)
    if int(ratio) != ratio or ratio < 1:
        raise ValueError(f"matchit: ratio must be a positive integer, not {ratio!r}")
    ratio = int(ratio)
    covariates = list(covariates)
    model, score, scale = _distance(df, t, covariates, distance, link)

    if m_order is None:
        m_order = "data" if (scale is None or replace) else "largest"
    cal_raw = None
    if caliper is not None:
        if scale is None:
            raise ValueError("matchit: a caliper needs a scalar distance (not Mahalanobis)")
        cal_raw = float(caliper) * (float(np.std(scale, ddof=1)) if std_caliper else 1.0)

    strata = _strata(df, exact)
    Xw = None
    if scale is None:
        Xm = design_matrix(df, covariates, drop_first=True).to_numpy()
        Xw = whiten(Xm, _mahalanobis_cov(Xm, t))

    rng = np.random.default_rng(seed) if m_order == "random" else None
    ti = np.nonzero(t)[0]
    mm = _match_within_strata(
        t, strata, scale, Xw, m_order=m_order, ratio=ratio, replace=replace,
        caliper=cal_raw, rng=rng,
    )

    weights = matching_weights(mm, len(df), ti)
    subclass = np.zeros(len(df), dtype=np.int64)
    if not replace:
        has = np.nonzero((mm >= 0).any(axis=1))[0]
        for s, i in enumerate(has, start=1):
            subclass[ti[i]] = s
            subclass[mm[i][mm[i] >= 0]] = s
    info = {
        "distance": distance if isinstance(distance, str) else "user",
        "link": link if distance == "glm" else None,
        "ratio": ratio,
        "replace": bool(replace),
        "caliper": cal_raw,
        "exact": list(exact) if exact else None,
        "m_order": m_order,
    }
    return MatchResult(df, t, covariates, score, mm, weights, subclass, model, cal_raw, info)


def _treatment(data: pd.DataFrame, treat: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The data with a fresh index and the treatment as a boolean array (checked)."""
    if treat not in data.columns:
        raise KeyError(f"matchit: treatment column '{treat}' not found")
    df = data.reset_index(drop=True)
    tv = df[treat]
    if tv.isna().any() or not set(pd.unique(tv.astype("int64"))) <= {0, 1}:
        raise ValueError(f"matchit: treatment column '{treat}' must be 0/1 without missing values")
    t = tv.astype("int64").to_numpy() == 1
    if not (t.any() and (~t).any()):
        raise ValueError(f"matchit: column '{treat}' needs both treated and control units")
    return df, t


def _distance(df: pd.DataFrame, t: np.ndarray, covariates: list[str], distance, link: str):
    """The propensity model, the score and the scale matching uses (``None``:
    Mahalanobis)."""
    if distance == "glm":
        X = design_matrix(df, covariates, drop_first=True)
        model = fit_propensity(X, t)
        if link == "logit":
            return model, model.ps, model.ps
        if link == "linear.logit":
            return model, model.ps, logit(model.ps)
        raise ValueError(f"matchit: link must be 'logit' or 'linear.logit', not {link!r}")
    if distance == "mahalanobis":
        return None, None, None
    if isinstance(distance, str) and distance in df.columns:
        score = df[distance].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(score)):
            raise ValueError(f"matchit: distance column '{distance}' has missing/non-finite values")
        return None, score, score
    raise ValueError(
        f"matchit: distance must be 'glm', 'mahalanobis' or a column, not {distance!r}"
    )


def _strata(df: pd.DataFrame, exact: Sequence[str] | None) -> np.ndarray:
    """Stratum code of each row (one stratum without exact columns)."""
    if not exact:
        return np.zeros(len(df), dtype=np.int64)
    missing = [c for c in exact if c not in df.columns]
    if missing:
        raise KeyError(f"matchit: exact column(s) not found: {', '.join(missing)}")
    return df.groupby(list(exact), sort=True, dropna=False).ngroup().to_numpy()


def _match_within_strata(t, strata, scale, Xw, *, m_order, ratio, replace, caliper, rng):
    """Greedy matches (treated × ratio row indices, -1: none) within each stratum."""
    ti = np.nonzero(t)[0]
    mm = np.full((len(ti), ratio), -1, dtype=np.int64)
    t_pos = np.full(t.size, -1, dtype=np.int64)
    t_pos[ti] = np.arange(len(ti))
    by_stratum = np.argsort(strata, kind="stable")  # rows of a stratum stay in data order
    cuts = np.flatnonzero(np.diff(strata[by_stratum])) + 1
    for rows in np.split(by_stratum, cuts):
        it = rows[t[rows]]
        ic = rows[~t[rows]]
        if len(it) == 0 or len(ic) == 0:
            continue
        order = treated_order(None if scale is None else scale[it], m_order, len(it), rng)
        if scale is not None:
            res = greedy_nn_1d(
                scale[it],
                scale[ic],
                order=order,
                ratio=ratio,
                replace=replace,
                caliper=caliper,
                treated_rank=it,
                control_rank=ic,
            )
        else:
            res = greedy_nn_mahalanobis(Xw[it], Xw[ic], order=order, ratio=ratio, replace=replace)
        ok = res >= 0
        res[ok] = ic[res[ok]]
        mm[t_pos[it]] = res
    return mm
