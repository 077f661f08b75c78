"""Monthly membership and attendance without the program (the untreated potential outcome).

Each student-month's attendance probability is, on the logit scale,

``mu[year] + alpha[student, year] + district_type + grade + season[month]
+ year_month[year, month] + u[student, t]``

* ``alpha`` is a persistent propensity (lower with meal eligibility and disability,
  drifting a little from year to year);
* ``mu[year]`` carries the year effects (2020-21 remote and hybrid, 2021-22 the worst
  year) and is *calibrated* so that the statewide chronic-absence rate of each year lands
  on its target (Connecticut's published rates by default);
* ``u`` is a transitory AR(1) shock over school months (persistence ``rho`` a month, so a
  dip lasts a few months and then fades: the mean reversion that makes naive before/after
  comparisons of referred students look like large effects);
* ``year_month`` holds one-off months (January 2022's Omicron wave).

Days present are binomial given the days in membership, so recorded monthly rates carry
the sampling noise real rates do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline.calendar import SCHOOL_MONTHS, instructional_days, school_month_index
from pipeline.contract import CHRONIC_THRESHOLD

GRADE_EFFECT = np.array(
    [-0.10, 0.15, 0.18, 0.18, 0.15, 0.12, 0.05, 0.0, -0.05, -0.25, -0.35, -0.45, -0.65]
)  # K..12
SEASON = dict(
    zip(
        SCHOOL_MONTHS,
        (0.30, 0.15, 0.0, -0.15, -0.22, -0.15, -0.05, -0.05, -0.12, -0.35),
        strict=True,
    )
)
TYPE_EFFECT = np.array([-0.30, 0.20, 0.05])  # urban, suburban, rural
YEAR_MONTH = {(2022, 1): -0.35}  # the Omicron January
RHO = 0.6
SHOCK_SD = 0.42
ALPHA_SD = 0.78
DRIFT_SD = 0.2


@dataclass
class Months:
    """The school months of the extract (``T`` of them, consecutive in school-month time)."""

    index: np.ndarray  # absolute school-month index, length T
    year: np.ndarray  # calendar year
    month: np.ndarray  # calendar month
    year_idx: np.ndarray  # 0-based school-year number
    ordinals: list[np.ndarray]  # instructional days (days since epoch) per school year

    @property
    def T(self) -> int:
        return self.index.size

    def labels(self) -> list[str]:
        return [f"{y:04d}-{m:02d}" for y, m in zip(self.year, self.month, strict=True)]


def make_months(start_years: list[int]) -> Months:
    years, months, yidx, ords = [], [], [], []
    for yi, y0 in enumerate(start_years):
        for m in SCHOOL_MONTHS:
            years.append(y0 if m >= 9 else y0 + 1)
            months.append(m)
            yidx.append(yi)
        ords.append(instructional_days(y0).values.astype("datetime64[D]").astype(np.int64))
    years_a, months_a = np.array(years), np.array(months)
    return Months(school_month_index(years_a, months_a), years_a, months_a, np.array(yidx), ords)


def membership_rows(spells: pd.DataFrame, months: Months) -> pd.DataFrame:
    """Days in membership of every spell in every school month (rows with days > 0).

    Returns ``spell, t, n`` where ``t`` is the 0-based month of the extract.
    """
    out = []
    for yi, ords in enumerate(months.ordinals):
        sel = np.flatnonzero(spells["year"].to_numpy() == yi)
        entry = spells["entry"].to_numpy()[sel]
        exit_ = spells["exit"].to_numpy()[sel]
        exit_ = np.where(exit_ < 0, np.iinfo(np.int64).max // 2, exit_)
        lo_pos = np.searchsorted(ords, entry, side="left")
        hi_pos = np.searchsorted(ords, exit_, side="right")
        ts = np.flatnonzero(months.year_idx == yi)
        for t in ts:
            m0 = np.datetime64(f"{months.year[t]:04d}-{months.month[t]:02d}-01").astype(np.int64)
            m1 = (
                (
                    np.datetime64(f"{months.year[t]:04d}-{months.month[t]:02d}")
                    + np.timedelta64(1, "M")
                )
                .astype("datetime64[D]")
                .astype(np.int64)
            )
            a = np.searchsorted(ords, m0, side="left")
            b = np.searchsorted(ords, m1, side="left")
            n = np.minimum(hi_pos, b) - np.maximum(lo_pos, a)
            keep = n > 0
            out.append(pd.DataFrame({"spell": sel[keep], "t": t, "n": n[keep].astype(np.int32)}))
    rows = pd.concat(out, ignore_index=True)
    return rows.sort_values(["spell", "t"], kind="stable").reset_index(drop=True)


def transitory_shocks(rng, n_students: int, months: Months) -> np.ndarray:
    """AR(1) shocks ``u[student, t]`` (float32); summers add two months of decay."""
    T = months.T
    u = np.empty((n_students, T), dtype=np.float32)
    sd0 = SHOCK_SD / np.sqrt(1 - RHO**2)
    u[:, 0] = rng.normal(0, sd0, n_students)
    for t in range(1, T):
        rho = RHO if months.year_idx[t] == months.year_idx[t - 1] else RHO**3
        u[:, t] = rho * u[:, t - 1] + rng.normal(0, SHOCK_SD, n_students)
    return u


def persistent_propensity(rng, spells: pd.DataFrame, n_students: int, n_years: int) -> np.ndarray:
    """``alpha[student, year]``: lower with meal eligibility and disability."""
    first = spells.drop_duplicates("student")
    frl = np.zeros(n_students)
    swd = np.zeros(n_students)
    frl[first["student"]] = first["frl"]
    swd[first["student"]] = first["swd"]
    base = rng.normal(0, ALPHA_SD, n_students) - 0.40 * frl - 0.35 * swd
    drift = np.cumsum(rng.normal(0, DRIFT_SD, (n_students, n_years)), axis=1)
    return (base[:, None] + drift).astype(np.float32)


def linear_predictor(
    rows: pd.DataFrame,
    spells: pd.DataFrame,
    types: np.ndarray,
    alpha: np.ndarray,
    u: np.ndarray,
    months: Months,
) -> np.ndarray:
    """Logit of attendance without ``mu[year]`` for every membership row."""
    sp = rows["spell"].to_numpy()
    t = rows["t"].to_numpy()
    student = spells["student"].to_numpy()[sp]
    year = months.year_idx[t]
    ym = np.array(
        [YEAR_MONTH.get((y, m), 0.0) for y, m in zip(months.year, months.month, strict=True)]
    )
    season = np.array([SEASON[m] for m in months.month])
    eta = (
        alpha[student, year]
        + TYPE_EFFECT[types[spells["district"].to_numpy()[sp]]]
        + GRADE_EFFECT[spells["grade"].to_numpy()[sp]]
        + season[t]
        + ym[t]
        + u[student, t]
    )
    return eta.astype(np.float64)


def calibrate_year_effects(
    eta: np.ndarray, n: np.ndarray, student: np.ndarray, year: np.ndarray, targets: list[float]
) -> np.ndarray:
    """Solve ``mu[year]`` so that the expected share of chronically absent students
    (yearly rate ≤ 90%) equals each target (percent).

    The share is computed over every student with membership that year, with the normal
    approximation to the sum of the student's binomial days present (with a continuity
    correction); the bisection is deterministic.
    """
    mus = np.zeros(len(targets))
    for yi, target in enumerate(targets):
        sel = year == yi
        e, nn, s = eta[sel], n[sel].astype(np.float64), student[sel]
        _, inv = np.unique(s, return_inverse=True)
        N = np.bincount(inv, nn)

        def share(mu, e=e, nn=nn, inv=inv, N=N):
            p = special.expit(e + mu)
            m = np.bincount(inv, nn * p)
            v = np.bincount(inv, nn * p * (1 - p))
            cut = np.floor(CHRONIC_THRESHOLD / 100 * N + 1e-9) + 0.5
            return 100 * stats.norm.cdf((cut - m) / np.sqrt(np.maximum(v, 1e-9))).mean()

        lo, hi = -3.0, 8.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if share(mid) > target:
                lo = mid
            else:
                hi = mid
        mus[yi] = (lo + hi) / 2
    return mus
