"""Planning the next study: the minimum detectable effect (MDE) of the primary design.

The primary design compares each visited student's attendance over the headline window
(school months 1-6 after the first visit) with that of matched comparison students, adjusting
for the three months before the visit and the prior year, with time effects per district
(:mod:`pipeline.analysis.design`).  Its precision is that of a difference between two
means of the *adjusted* window average, so the planner needs (Bloom 1995, 2005):

* ``sigma2`` — the variance of a student's window-average attendance around its district
  and month, and ``r2`` — the share of it the baseline covariates explain;
* ``icc_school`` and ``icc_district`` — the shares of the residual variance between
  schools and between districts.  With comparison students drawn from the visited
  student's own district the district share is absorbed by the time effects per district;
  the school share inflates the variance by the design effect ``1 + (m - 1) icc_school``,
  ``m`` students per school in each arm.

:func:`variance_components` estimates them from a panel (``data/processed/panel.parquet``)
on students *like those visited*: never-visited students of program districts at the
months nearest the visited students' first visits in what referral rides on (the last
recorded month, the prior year and the dip), one month per student.

:func:`mde` is then ``M · sqrt((1 - r2) · sigma2 · (DE_t / n_t + DE_c / n_c))`` with
``M = t_{1-α/2, df} + t_{power, df}`` (≈ 2.80 for a two-sided 5% test at 80% power and
many degrees of freedom) and ``n_c = ratio · n_t``.

Status: the analytic MDE does NOT yet agree with the simulated design within 10%.
``nice python benchmarks/bench_plan.py --reps 3 --sizes 6000 10000 16000``
(``benchmarks/results/plan_mde.csv``; 14 minutes on two shared cores) gives analytic /
simulated ratios of 0.93, 0.63 and 0.76 for about 400, 700 and 1,140 analysed visited
students: the primary design's mean standard error barely falls with size (0.66, 0.65,
0.54 points), so something that does not scale with the number of visited students
(censoring weights, time effects per district with four program districts, partial
windows) dominates it and is not in this model.  Read the MDE as a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.neighbors import NearestNeighbors

LAGS = ["rate_lag1", "rate_lag2", "rate_lag3"]
COVARIATES = [*LAGS, "prior_year_rate"]
#: Columns of the planner's table.
PLAN_COLUMNS = [
    "n_treated",
    "ratio",
    "n_districts",
    "n_schools",
    "design_effect",
    "std_error",
    "mde",
    "alpha",
    "power",
]


@dataclass(frozen=True)
class VarianceComponents:
    """What the MDE needs from a panel (see the module docstring).

    Attributes
    ----------
    sigma2
        Variance of the window-average attendance rate (points²) within district-months.
    r2
        Share of ``sigma2`` explained by the three months before and the prior year.
    icc_school, icc_district
        Shares of the residual variance between schools and between districts.
    n_students
        Students the components were estimated on.
    window
        The event-time window averaged.
    """

    sigma2: float
    r2: float
    icc_school: float
    icc_district: float
    n_students: int
    window: tuple[int, int]

    @property
    def residual_variance(self) -> float:
        """``(1 - r2) · sigma2``: the adjusted window average's variance."""
        return (1.0 - self.r2) * self.sigma2

    def to_dict(self) -> dict[str, Any]:
        """The components as a plain dict (for JSON)."""
        d = asdict(self)
        d["window"] = list(self.window)
        return d


def _icc(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA (method-of-moments) intra-class correlation, truncated at 0."""
    df = pd.DataFrame({"y": values, "g": groups})
    g = df.groupby("g")["y"]
    n_i = g.size().to_numpy(dtype=float)
    k, n = len(n_i), n_i.sum()
    if k < 2 or n <= k:
        return 0.0
    grand = df["y"].mean()
    ssb = float((n_i * (g.mean().to_numpy() - grand) ** 2).sum())
    ssw = float(((df["y"] - g.transform("mean")) ** 2).sum())
    msb, msw = ssb / (k - 1), ssw / (n - k)
    n0 = (n - (n_i**2).sum() / n) / (k - 1)
    between = max((msb - msw) / n0, 0.0)
    return between / (between + msw) if between + msw > 0 else 0.0


def _profile(rows: pd.DataFrame) -> pd.DataFrame:
    """What referral rides on: the last recorded month, the prior year and the dip."""
    x = rows[COVARIATES].astype(float)
    return pd.DataFrame(
        {
            "last": x["rate_lag1"],
            "prior": x["prior_year_rate"],
            "dip": x["rate_lag1"] - x[["rate_lag2", "rate_lag3"]].mean(axis=1),
        }
    )


def pseudo_visits(
    panel: pd.DataFrame,
    window: tuple[int, int] = (1, 6),
    seed: int = 0,
    neighbours: int = 3,
) -> pd.DataFrame:
    """One pseudo-visit month per never-visited program-district student, with outcome.

    Parameters
    ----------
    panel
        The panel (columns ``student_key``, ``school_month``, ``district_code``,
        ``school_code``, ``leap_district``, ``first_visit_school_month``,
        ``attendance_rate``, ``event_time`` and :data:`COVARIATES`).
    window
        Event times averaged into the outcome.
    seed
        Seed of the random choice of month.
    neighbours
        Never-visited students kept per visited student (nearest in the last recorded
        month, the prior year and the dip before the visit).

    Returns
    -------
    pandas.DataFrame
        One row per student: district, school and month at the pseudo visit, the
        covariates there and ``y``, the mean attendance over the window's observed months, for the students nearest the visited ones at their first visit.
    """
    need = [
        "student_key",
        "school_month",
        "district_code",
        "school_code",
        "leap_district",
        "first_visit_school_month",
        "attendance_rate",
        "event_time",
        *COVARIATES,
    ]
    missing = [c for c in need if c not in panel.columns]
    if missing:
        raise KeyError(f"panel: missing column(s) for the planner: {', '.join(missing)}")
    p = panel[need]
    visited0 = p[p["event_time"] == 0].dropna(subset=COVARIATES)
    if len(visited0) < 20:
        raise ValueError("panel: fewer than 20 visited students with recorded months before")
    target = _profile(visited0).to_numpy()
    pool = p[p["leap_district"].astype(bool) & p["first_visit_school_month"].isna()]
    pool = pool.astype({"attendance_rate": float, "school_month": int})
    # window means: for each row, mean attendance over school months t+a..t+b, all present
    a, b = window
    wide = pool.pivot_table(
        index="student_key", columns="school_month", values="attendance_rate", observed=True
    )
    cols = wide.columns.to_numpy()
    arr = wide.reindex(columns=range(cols.min(), cols.max() + 1)).to_numpy()
    base = cols.min()
    cand = pool.dropna(subset=COVARIATES).copy()
    # the never-visited students nearest the visited ones in what referral rides on
    prof = _profile(cand).to_numpy()
    mu, sd = target.mean(axis=0), target.std(axis=0) + 1e-9
    nn = NearestNeighbors(n_neighbors=min(neighbours, len(cand))).fit((prof - mu) / sd)
    _, idx = nn.kneighbors((target - mu) / sd)
    cand = cand.iloc[np.unique(idx.ravel())]
    rng = np.random.default_rng(seed)
    cand = cand.sample(frac=1.0, random_state=rng).drop_duplicates("student_key")
    row = wide.index.get_indexer(cand["student_key"])
    t = cand["school_month"].to_numpy() - base
    ys = []
    for k in range(a, b + 1):
        idx = t + k
        ok = idx < arr.shape[1]
        v = np.full(len(t), np.nan)
        v[ok] = arr[row[ok], idx[ok]]
        ys.append(v)
    ys = np.vstack(ys)
    seen = (~np.isnan(ys)).sum(axis=0)
    # the design uses every month observed in the window (students leave, move, graduate)
    cand["y"] = np.where(seen > 0, np.nansum(ys, axis=0) / np.maximum(seen, 1), np.nan)
    return cand.dropna(subset=["y"]).reset_index(drop=True)


def variance_components(
    panel: pd.DataFrame, window: tuple[int, int] = (1, 6), seed: int = 0
) -> VarianceComponents:
    """Variance components of the adjusted window average (see the module docstring).

    Parameters
    ----------
    panel
        The panel (:func:`pseudo_visits` lists the columns).
    window
        Event times averaged.
    seed
        Seed of the pseudo-visit months.

    Returns
    -------
    VarianceComponents
    """
    d = pseudo_visits(panel, window, seed)
    if len(d) < 50:
        raise ValueError(f"panel: only {len(d)} comparison-like students for the planner")
    cell = d["district_code"].astype(str) + "|" + d["school_month"].astype(str)
    y = d["y"] - d.groupby(cell)["y"].transform("mean")
    x = d[COVARIATES].astype(float)
    x = x - x.groupby(cell).transform("mean")
    beta, *_ = np.linalg.lstsq(x.to_numpy(), y.to_numpy(), rcond=None)
    e = y.to_numpy() - x.to_numpy() @ beta
    # degrees of freedom: the cells' means and the slopes
    dof = len(d) - cell.nunique() - x.shape[1]
    sigma2 = float((y**2).sum() / max(len(d) - cell.nunique(), 1))
    resid = float((e**2).sum() / max(dof, 1))
    # school and district shares of the residual variance before the district-month
    # centring removed the district's share: residuals of the covariate-only regression
    yr = d["y"] - d["y"].mean()
    xr = d[COVARIATES].astype(float) - d[COVARIATES].astype(float).mean()
    br, *_ = np.linalg.lstsq(xr.to_numpy(), yr.to_numpy(), rcond=None)
    er = yr.to_numpy() - xr.to_numpy() @ br
    return VarianceComponents(
        sigma2=sigma2,
        r2=max(0.0, 1.0 - resid / sigma2) if sigma2 > 0 else 0.0,
        icc_school=float(_icc(e, d["school_code"].astype(str).to_numpy())),
        icc_district=float(_icc(er, d["district_code"].astype(str).to_numpy())),
        n_students=len(d),
        window=tuple(window),
    )


def multiplier(alpha: float = 0.05, power: float = 0.8, df: float = math.inf) -> float:
    """Bloom's MDE multiplier ``t_{1-α/2, df} + t_{power, df}`` (two-sided test).

    Examples
    --------
    >>> round(multiplier(0.05, 0.8), 3)
    2.802
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("multiplier: alpha and power must lie in (0, 1)")
    if math.isinf(df):
        return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))


def mde(
    vc: VarianceComponents,
    n_treated: float,
    ratio: float = 3.0,
    n_districts: int = 4,
    n_schools: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict[str, float]:
    """The analytic MDE of the primary design's window average (points).

    Parameters
    ----------
    vc
        Variance components (:func:`variance_components`).
    n_treated
        Visited students analysed.
    ratio
        Comparison students per visited student.
    n_districts
        Program districts (degrees of freedom of the multiplier: students less the
        district time effects).
    n_schools
        Schools the visited (and, separately, the comparison) students are spread over;
        ``None``: no school clustering (design effect 1).
    alpha, power
        Two-sided test level and power.

    Returns
    -------
    dict
        ``design_effect``, ``std_error`` and ``mde`` with the inputs (:data:`PLAN_COLUMNS`).
    """
    if not (n_treated > 1 and ratio > 0 and n_districts >= 1):
        raise ValueError("mde: n_treated must be > 1, ratio > 0 and n_districts >= 1")
    n_c = ratio * n_treated

    def de(n: float) -> float:
        if not n_schools:
            return 1.0
        return 1.0 + max(n / n_schools - 1.0, 0.0) * vc.icc_school

    var = vc.residual_variance * (de(n_treated) / n_treated + de(n_c) / n_c)
    se = math.sqrt(var)
    df = n_treated + n_c - n_districts - len(COVARIATES) - 1
    return {
        "n_treated": float(n_treated),
        "ratio": float(ratio),
        "n_districts": int(n_districts),
        "n_schools": int(n_schools) if n_schools else 0,
        "design_effect": de(n_treated),
        "std_error": se,
        "mde": multiplier(alpha, power, df) * se,
        "alpha": alpha,
        "power": power,
    }


def mde_table(
    vc: VarianceComponents,
    n_treated: list[float],
    ratios: list[float],
    n_districts: list[int],
    n_schools_per_district: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> pd.DataFrame:
    """:func:`mde` over a grid of sizes (:data:`PLAN_COLUMNS`)."""
    rows = [
        mde(
            vc,
            n,
            r,
            j,
            None if n_schools_per_district is None else j * n_schools_per_district,
            alpha,
            power,
        )
        for n in n_treated
        for r in ratios
        for j in n_districts
    ]
    return pd.DataFrame(rows)[PLAN_COLUMNS]


def power_at(effect: float, std_error: float, alpha: float = 0.05) -> float:
    """Power of the two-sided test against ``effect`` for an estimate with ``std_error``."""
    z = stats.norm.ppf(1 - alpha / 2)
    d = effect / std_error
    return float(stats.norm.sf(z - d) + stats.norm.cdf(-z - d))
