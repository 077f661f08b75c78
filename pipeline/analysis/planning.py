"""Planning the next study: the minimum detectable effect (MDE) of the primary design.

The primary design (:mod:`pipeline.analysis.design`) regresses each visited and matched
comparison student's attendance at event times 1-6 on the treated indicator, the three
recorded months at the first visit (with squares) and the prior year, with time effects
per district × event time, matching × censoring weights and errors clustered by the
students' home school (``estimate.cluster``); the headline is the average of the six
effects.  Its variance is that of a difference between the two arms' means of the
*adjusted* window average (Bloom 1995, 2005; Kish 1965 for the design effects)::

    SE² = σ² (1 - R²) (DE_t / n_t + DE_c / n_c),      MDE = M · SE,

with ``M = t_{1-α/2, df} + t_{power, df}`` (≈ 2.80 for a two-sided 5% test at 80% power)
and these inputs (each a planner can supply, or estimate as shown):

``sigma2`` (σ²) and ``r2`` (R²) — :func:`variance_components`, from a panel
    The variance of a comparison-like student's window-average attendance within its
    district (months observed in the window, up to the student's own first visit), and
    the share the design's covariates explain.  Comparison-like: program-district
    student-months *not yet* visited (students visited later included, as the design's
    comparison students are), nearest the visited students' first visits in the last
    recorded month, the prior year and the dip.  Centred by district only: the design's
    time effects are per district × *event* time, so calendar-month differences between
    the first visits stay in its residual.
``n_t``, ``ratio`` (``n_c = ratio · n_t``)
    Visited students analysed and *distinct* comparison students per visited student.
``DE_t``, ``DE_c`` — :class:`DesignEffects`, from an evaluation's matched data
    Each arm's variance over ``σ² (1 - R²) / n`` of its distinct students, as
    :meth:`SEDecomposition.design_effects_for` splits the design's own clustered standard
    error (:func:`decompose_std_error`): with them the formula gives that evaluation's
    standard error exactly.  They carry what the design does beyond two simple means:
    comparison students serving several visited students (matching with replacement,
    within a stack and across stacks), unequal matching (``1/k``) and censoring weights,
    partial windows of students who leave or are censored, the clustering of students
    in schools, and the gap between the panel's residual variance and the design's.  The
    comparison arm's may grow with the arm's size (:meth:`DesignEffects.comparison_at`,
    :func:`fit_design_effects`), a little with the imputation of comparison students
    visited later and much more with untruncated censoring weights, whose right tail is
    heavy.  Default: :data:`DEFAULT_DESIGN_EFFECTS` (:data:`WEIGHTED_DESIGN_EFFECTS` for
    ``estimate.censoring: weights``).
``icc_school``, ``n_schools``
    Only to plan a design whose design effects were measured with errors clustered by
    student: the school design effect ``1 + (m - 1) icc_school`` multiplies each arm's.
    Design effects measured with the primary's school clusters already include it.

``benchmarks/bench_plan.py`` checks the formula against the simulated design at three
sizes of the synthetic state, with design effects carried over from the other two sizes
(``benchmarks/results/plan_mde.md``, shown in ``docs/planning.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.neighbors import NearestNeighbors

from pipeline.did.ancova import _centred_interactions

LAGS = ["rate_lag1", "rate_lag2", "rate_lag3"]
COVARIATES = [*LAGS, "prior_year_rate"]
#: Columns of the planner's table.
PLAN_COLUMNS = [
    "n_treated",
    "ratio",
    "n_comparison",
    "n_districts",
    "n_schools",
    "design_effect_treated",
    "design_effect_comparison",
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
        Variance of a comparison-like student's window-average attendance rate (points²)
        within its district.
    r2
        Share of ``sigma2`` explained by the design's covariates (the three recorded months,
        their squares, the prior year).
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


@dataclass(frozen=True)
class DesignEffects:
    """How much the design's two arms' means vary beyond simple random samples.

    ``Var(arm mean) = DE · σ² / n`` with ``σ²`` the variance of the adjusted window mean
    and ``n`` the arm's distinct students (Kish's design effect, defined by the variance
    itself).  What drives them in the primary design: comparison students serve several
    visited students (matching with replacement, within and across stacks), matching
    weights ``1/k`` and censoring weights vary, and students seen for only part of the
    window count less.

    Attributes
    ----------
    treated
        The visited arm's design effect (below 1 in the synthetic state: ``σ²`` counts the
        noisier means of students seen for part of the window, whom the design weighs
        less).
    comparison
        The comparison arm's, over the number of *distinct* comparison students.
    """

    treated: float
    comparison: float
    comparison_growth: float = 0.0
    reference_n_comparison: float | None = None
    n_comparison_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not (self.treated > 0 and self.comparison > 0):
            raise ValueError("DesignEffects: both design effects must be positive")
        if self.comparison_growth != 0.0 and not (self.reference_n_comparison or 0) > 0:
            raise ValueError("DesignEffects: comparison_growth needs reference_n_comparison > 0")

    def comparison_at(self, n_comparison: float) -> float:
        """The comparison arm's design effect with ``n_comparison`` distinct students:
        ``comparison + comparison_growth · ln(n / reference_n_comparison)``, with ``n``
        held within ``n_comparison_range`` (the sizes the trend was fitted on: it is not
        extrapolated) and the result floored at 1/4 of ``comparison``.

        Untruncated censoring weights have a heavy right tail: the more comparison
        students, the larger the largest weights and the larger the arm's design effect
        (in ``benchmarks/results/plan_mde.csv`` it grew with the study's size). A
        log-linear trend in the arm's size, fitted on evaluations of other sizes
        (:func:`fit_design_effects`), carries that over to a planned size.
        """
        if self.comparison_growth == 0.0:
            return self.comparison
        assert self.reference_n_comparison is not None
        n = float(n_comparison)
        if self.n_comparison_range is not None:
            n = min(max(n, self.n_comparison_range[0]), self.n_comparison_range[1])
        de = self.comparison + self.comparison_growth * math.log(n / self.reference_n_comparison)
        return max(de, self.comparison / 4)


def fit_design_effects(
    n_comparison: Sequence[float],
    treated: Sequence[float],
    comparison: Sequence[float],
) -> DesignEffects:
    """Design effects with a log-linear trend in the comparison arm's size, from studies
    (or mean design effects of simulated studies) at two or more sizes.

    The visited arm's is their mean; the comparison arm's is the least-squares line in
    ``ln n_comparison`` through them, anchored at their geometric-mean size and held
    within the range of their sizes (not extrapolated).

    Parameters
    ----------
    n_comparison
        Distinct comparison students of each study.
    treated, comparison
        Each study's design effects (:meth:`SEDecomposition.design_effects`).

    Examples
    --------
    >>> d = fit_design_effects([400, 1600], [0.9, 0.9], [1.5, 2.1])
    >>> [round(d.comparison_at(n), 3) for n in (800, 1600, 3200)]
    [1.8, 2.1, 2.1]
    """
    n = np.asarray(n_comparison, dtype=float)
    x = np.log(n)
    y = np.asarray(comparison, dtype=float)
    if n.size < 2 or np.ptp(x) == 0:
        raise ValueError("fit_design_effects: need studies at two or more sizes")
    slope = float(np.polyfit(x, y, 1)[0])
    ref = float(np.exp(x.mean()))
    return DesignEffects(
        treated=float(np.mean(treated)),
        comparison=float(y.mean()),
        comparison_growth=slope,
        reference_n_comparison=ref,
        n_comparison_range=(float(n.min()), float(n.max())),
    )


@dataclass(frozen=True)
class SEDecomposition:
    """The primary design's standard error split by arm (:func:`decompose_std_error`).

    Attributes
    ----------
    std_error
        Standard error of the window average (clustered as ``cluster`` says).
    var_treated, var_comparison
        The two arms' contributions to its square (students in both roles count in
        each; the cross term is in ``std_error`` only).
    n_treated, n_comparison
        Distinct students of each arm in the window.
    sigma2_treated, sigma2_comparison
        Variance of the arm's (matched set, student) window means of the residuals.
    """

    std_error: float
    var_treated: float
    var_comparison: float
    n_treated: int
    n_comparison: int
    sigma2_treated: float
    sigma2_comparison: float

    @property
    def design_effects(self) -> DesignEffects:
        """Each arm's variance over ``σ²/n`` of a simple random sample of its size."""
        return DesignEffects(
            treated=self.var_treated * self.n_treated / self.sigma2_treated,
            comparison=self.var_comparison * self.n_comparison / self.sigma2_comparison,
        )

    def design_effects_for(
        self, vc: VarianceComponents, std_error: float | None = None
    ) -> DesignEffects:
        """The arms' design effects *as the planner's formula uses them*.

        Each arm's variance over ``(1 - R²) σ² / n`` with the planner's residual variance
        (``vc``, from the panel) instead of the arm's realized one, and with the cross-arm
        covariance (students of both arms in one cluster) shared between the arms in
        proportion to their variances. So on the evaluation they come from,
        :func:`mde` with them gives the design's standard error exactly; what a planner
        carries to another size is then only how the design effects change with it.
        ``std_error``: the standard error to reproduce instead of :attr:`std_error` (the
        design's reported one, e.g. with its CR2 or CR1 small-sample correction, which the
        split leaves out); the arms keep their shares.
        """
        rv = vc.residual_variance
        target = self.std_error if std_error is None else float(std_error)
        scale = target**2 / (self.var_treated + self.var_comparison)
        return DesignEffects(
            treated=self.var_treated * scale * self.n_treated / rv,
            comparison=self.var_comparison * scale * self.n_comparison / rv,
        )


#: The arms' design effects of the primary design in the synthetic state (comparison
#: students visited later imputed, ``estimate.censoring: impute``; errors clustered by home
#: school; as :meth:`SEDecomposition.design_effects_for` defines them):
#: :func:`fit_design_effects` on the mean design effects of the ``imputed`` rows of
#: ``benchmarks/results/plan_mde_reps.csv`` (20 replications at each of 6,000, 10,000 and
#: 16,000 students; 704-1,956 distinct comparison students).  Rounded.  The comparison
#: arm's varies between replications, so a single evaluation's is uncertain; re-estimate
#: them on your own evaluation's matched data (``leap plan --matched``).
DEFAULT_DESIGN_EFFECTS = DesignEffects(
    treated=1.0,
    comparison=2.7,
    comparison_growth=0.77,
    reference_n_comparison=1183.0,
    n_comparison_range=(704.0, 1956.0),
)
#: The same for the option ``estimate.censoring: weights`` (untruncated; the ``untruncated``
#: rows, 667-1,846 distinct comparison students, whose comparison-arm design effect has a
#: standard deviation of 1.4-2.3 around means of 3.6-5.8 between replications).
WEIGHTED_DESIGN_EFFECTS = DesignEffects(
    treated=1.2,
    comparison=4.4,
    comparison_growth=2.2,
    reference_n_comparison=1120.0,
    n_comparison_range=(667.0, 1846.0),
)


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


def _window_means(
    wide: pd.DataFrame,
    keys: pd.Series,
    months: np.ndarray,
    window: tuple[int, int],
    stop: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean attendance over school months ``t+a … t+b`` before ``stop`` (observed ones only).

    Returns the means (NaN when no month is observed) and the number of months averaged.
    """
    cols = wide.columns.to_numpy()
    base = int(cols.min())
    arr = wide.reindex(columns=range(base, int(cols.max()) + 1)).to_numpy(dtype=float)
    row = wide.index.get_indexer(keys)
    ys = []
    for k in range(window[0], window[1] + 1):
        at = months + k
        ok = (at - base < arr.shape[1]) & ~(at >= stop)
        v = np.full(len(months), np.nan)
        v[ok] = arr[row[ok], at[ok] - base]
        ys.append(v)
    ys = np.vstack(ys)
    seen = (~np.isnan(ys)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(seen > 0, np.nansum(ys, axis=0) / np.maximum(seen, 1), np.nan), seen


def pseudo_visits(
    panel: pd.DataFrame,
    window: tuple[int, int] = (1, 6),
    seed: int = 0,
    neighbours: int = 3,
) -> pd.DataFrame:
    """One pseudo-visit month per comparison-like student, with the window's outcome.

    The design's comparison students are program-district students *not yet* visited at
    the visited student's first visit (some are visited later; their months from then on
    are censored), matched on what referral rides on.  The pseudo visits mimic them: for
    each visited student, the ``neighbours`` not-yet-visited program-district
    student-months nearest in the last recorded month, the prior year and the dip; one
    of them per student, at random.

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
        Student-months kept per visited student.

    Returns
    -------
    pandas.DataFrame
        One row per student: district, school and month at the pseudo visit, the
        covariates there, ``y`` (the mean attendance over the window's months observed
        before the student's own first visit, as the design's censoring does) and
        ``n_months`` (how many).
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
    p = panel.loc[panel["leap_district"].astype(bool), need]
    p = p.astype({"attendance_rate": float, "school_month": int})
    visited0 = p[p["event_time"] == 0].dropna(subset=COVARIATES)
    if len(visited0) < 20:
        raise ValueError("panel: fewer than 20 visited students with recorded months before")
    first = p["first_visit_school_month"].to_numpy(dtype=float, na_value=np.nan)
    pool = p[~(first <= p["school_month"].to_numpy())]  # not yet visited (NaN: never)
    cand = pool.dropna(subset=COVARIATES)
    target = _profile(visited0).to_numpy()
    mu, sd = target.mean(axis=0), target.std(axis=0) + 1e-9
    prof = (_profile(cand).to_numpy() - mu) / sd
    nn = NearestNeighbors(n_neighbors=min(neighbours, len(cand))).fit(prof)
    _, idx = nn.kneighbors((target - mu) / sd)
    cand = cand.iloc[np.unique(idx.ravel())]
    rng = np.random.default_rng(seed)
    cand = cand.sample(frac=1.0, random_state=rng).drop_duplicates("student_key").copy()
    wide = p.pivot_table(
        index="student_key", columns="school_month", values="attendance_rate", observed=True
    )
    stop = cand["first_visit_school_month"].to_numpy(dtype=float, na_value=np.nan)
    cand["y"], cand["n_months"] = _window_means(
        wide,
        cand["student_key"],
        cand["school_month"].to_numpy(),
        window,
        np.where(np.isnan(stop), np.inf, stop),
    )
    return cand.dropna(subset=["y"]).reset_index(drop=True)


def design_covariates(frame: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """The primary design's baseline covariates as a matrix.

    The three recorded months, their squares (/100) and the prior-year rate with a
    missing indicator, as :func:`pipeline.did.ancova.matched_ancova` uses them.

    Parameters
    ----------
    frame
        Rows with the columns ``prefix + c`` for ``c`` in :data:`COVARIATES`.
    prefix
        Column-name prefix.

    Returns
    -------
    numpy.ndarray
        ``len(frame)`` × 8 (constant columns are kept; callers drop them).
    """
    lags = [frame[prefix + c].to_numpy(dtype=float) for c in LAGS]
    prior = frame[prefix + "prior_year_rate"].to_numpy(dtype=float)
    miss = np.isnan(prior)
    return np.column_stack(
        [*lags, *[x * x / 100.0 for x in lags], np.where(miss, 0.0, prior), miss.astype(float)]
    )


def _within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Columns of ``values`` less their group means."""
    df = pd.DataFrame(values)
    return (df - df.groupby(groups).transform("mean")).to_numpy()


def variance_components(
    panel: pd.DataFrame, window: tuple[int, int] = (1, 6), seed: int = 0
) -> VarianceComponents:
    """Variance components of the adjusted window average (see the module docstring).

    The outcome and covariates are centred within districts only: the design's time
    effects are per district × *event time*, so differences between the calendar months
    of different first visits stay in its residual.

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
    district = d["district_code"].astype(str).to_numpy()
    y = _within(d[["y"]].to_numpy(dtype=float), district)[:, 0]
    x = _within(design_covariates(d), district)
    x = x[:, x.std(axis=0) > 0]
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    e = y - x @ beta
    n_d = len(set(district))
    sigma2 = float((y**2).sum() / max(len(d) - n_d, 1))
    resid = float((e**2).sum() / max(len(d) - n_d - x.shape[1], 1))
    # the district share: residuals of the covariate-only regression, before centring
    xr = design_covariates(d)
    xr = np.column_stack([np.ones(len(d)), xr[:, xr.std(axis=0) > 0]])
    br, *_ = np.linalg.lstsq(xr, d["y"].to_numpy(dtype=float), rcond=None)
    er = d["y"].to_numpy(dtype=float) - xr @ br
    return VarianceComponents(
        sigma2=sigma2,
        r2=max(0.0, 1.0 - resid / sigma2) if sigma2 > 0 else 0.0,
        icc_school=float(_icc(e, d["school_code"].astype(str).to_numpy())),
        icc_district=float(_icc(er, district)),
        n_students=len(d),
        window=tuple(window),
    )


def _ancova_rows(
    matched: pd.DataFrame,
    y: str,
    window: tuple[int, int],
    fe: str,
    weights: str,
    cluster: str = "student_key",
    effect_strata: str | None = None,
):
    """The primary design's analysed rows at event times in ``window``, with weights,
    their cluster (``_cl``) and, with ``effect_strata``, the matched set's stratum
    (``_st``)."""
    need = [
        "match_id",
        "student_key",
        "role",
        "stack_event_time",
        "censored",
        "weight",
        weights,
        fe,
        y,
        cluster,
        *([effect_strata] if effect_strata else []),
        *COVARIATES,
    ]
    missing = [c for c in need if c not in matched.columns]
    if missing:
        raise KeyError(f"matched: missing column(s) for the planner: {', '.join(missing)}")
    et = matched["stack_event_time"].to_numpy()
    base = matched.loc[et == 0, ["match_id", "student_key", *COVARIATES]]
    base = base.rename(columns={c: f"_b_{c}" for c in COVARIATES})
    at0 = matched[(et == 0) & (matched["role"] == "treated").to_numpy()]
    at0 = at0.drop_duplicates("match_id").set_index("match_id")
    base["_fe"] = base["match_id"].map(at0[fe])
    if effect_strata:
        base["_st"] = base["match_id"].map(at0[effect_strata]).astype(str)
    rows = (et >= window[0]) & (et <= window[1]) & ~matched["censored"].astype(bool).to_numpy()
    d = matched.loc[rows, ["match_id", "student_key", "role", "stack_event_time", y]].assign(
        _w=matched.loc[rows, "weight"].to_numpy(float) * matched.loc[rows, weights].to_numpy(float),
        _cl=matched.loc[rows, cluster].astype(str).to_numpy(),
    )
    d = d.merge(base, on=["match_id", "student_key"], how="inner")
    lags = d[[f"_b_{c}" for c in LAGS]].to_numpy(dtype=float)
    keep = (d["_w"] > 0).to_numpy() & np.isfinite(lags).all(axis=1) & d["_fe"].notna().to_numpy()
    return d[keep]


def decompose_std_error(
    matched: pd.DataFrame,
    y: str = "attendance_rate",
    window: tuple[int, int] = (1, 6),
    fe: str = "district_code",
    weights: str = "ipcw",
    cluster: str = "student_key",
    effect_strata: str | None = None,
) -> SEDecomposition:
    """The primary design's standard error of the window average, split by arm.

    The matched ANCOVA (:func:`pipeline.did.ancova.matched_ancova`) interacts everything
    with event time, so each event time's effect is a separate weighted regression; by
    Frisch-Waugh-Lovell each row's influence on it is ``w·D̃·û / Σ w·D̃²`` (``D̃``: the
    treated indicator net of the covariates and time effects).  The window average's
    influence per student (the design's cluster) is the mean of its rows' over event
    times; the squared influences summed over the treated and the comparison students
    are the two arms' variances (CR1 small-sample factors left out, a fraction of a
    percent).  Dividing each by ``σ²/n`` of its arm (``σ²``: the variance of the
    students' window means of ``û``) gives the arm's design effect.

    Parameters
    ----------
    matched
        Stacked matched panels with outcomes and the censoring weights (``matched.parquet``
        with :func:`pipeline.analysis.design.with_censoring_weights` applied).
    y
        Outcome column.
    window
        Event times averaged (the headline window).
    fe
        The design's time-effect column (``estimate.ancova_fe``).
    weights
        The censoring-weight column (multiplied by ``weight``, the matching weight).
    cluster
        The design's error clusters (``estimate.cluster``): influences are summed within
        a cluster before squaring, per arm; with ``home_school_code`` the arms' design
        effects therefore include the school clustering at the evaluation's students
        per school, and the cross-arm covariance within schools stays in ``std_error``
        only.
    effect_strata
        The design's effect strata (``estimate.effect_strata``): time effects per ``fe``
        × stratum and the treated indicator interacted with the strata, centred at the
        visited mix, as :func:`pipeline.did.ancova.matched_ancova` fits them.

    Returns
    -------
    SEDecomposition
    """
    d = _ancova_rows(matched, y, window, fe, weights, cluster, effect_strata)
    parts = []
    for k, g in d.groupby("stack_event_time", sort=True):
        treat = (g["role"] == "treated").to_numpy(dtype=float)
        if not 0 < treat.sum() < len(g):
            continue
        cell = g["_fe"].astype(str)
        strata = None
        if effect_strata:
            cell = cell + "|" + g["_st"]
            strata = pd.get_dummies(g["_st"]).to_numpy(float)[:, 1:]
        # the treated indicator x (strata - the visited mix), as the design fits it
        inter = _centred_interactions(
            treat > 0, np.zeros(len(g), dtype=np.int64), g["_w"].to_numpy(float), strata
        )
        z = np.column_stack(
            [design_covariates(g, "_b_"), inter, pd.get_dummies(cell).to_numpy(float)]
        )
        z = z[:, z.std(axis=0) > 0]
        z = np.column_stack([np.ones(len(g)), z])
        w = g["_w"].to_numpy(dtype=float)
        sw = np.sqrt(w)
        x = np.column_stack([treat, z])
        b, *_ = np.linalg.lstsq(x * sw[:, None], g[y].to_numpy(float) * sw, rcond=None)
        u = g[y].to_numpy(float) - x @ b
        gz, *_ = np.linalg.lstsq(z * sw[:, None], treat * sw, rcond=None)
        dt = treat - z @ gz
        parts.append(
            g[["match_id", "student_key", "role", "_cl"]].assign(
                psi=w * dt * u / np.sum(w * dt * dt), u=u, k=k
            )
        )
    if not parts:
        raise ValueError("matched: no event time in the window has both arms")
    r = pd.concat(parts, ignore_index=True)
    n_k = r["k"].nunique()
    arms = {}
    for arm in ("treated", "comparison"):
        a = r[r["role"] == arm]
        psi = a.groupby("_cl")["psi"].sum() / n_k
        ubar = a.groupby(["match_id", "student_key"])["u"].mean()
        arms[arm] = (float((psi**2).sum()), int(a["student_key"].nunique()), float(ubar.var()))
    total = float(((r.groupby("_cl")["psi"].sum() / n_k) ** 2).sum())
    return SEDecomposition(
        std_error=math.sqrt(total),
        var_treated=arms["treated"][0],
        var_comparison=arms["comparison"][0],
        n_treated=arms["treated"][1],
        n_comparison=arms["comparison"][1],
        sigma2_treated=arms["treated"][2],
        sigma2_comparison=arms["comparison"][2],
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
    ratio: float = 1.6,
    n_districts: int = 4,
    n_schools: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    design_effects: DesignEffects | None = None,
) -> dict[str, float]:
    """The analytic MDE of the primary design's window average (points).

    ``SE² = (1 - r2) σ² (DE_t · S_t / n_t + DE_c · S_c / n_c)`` with ``n_c = ratio · n_t``,
    the arms' design effects ``DE`` (:class:`DesignEffects`) and, only when the inference
    clusters by school, the school design effects ``S = 1 + (m - 1) icc_school``.

    Parameters
    ----------
    vc
        Variance components (:func:`variance_components`).
    n_treated
        Visited students analysed.
    ratio
        *Distinct* comparison students per visited student.  Matching 3:1 with
        replacement within the visited student's district and month gave about 1.6 in
        the synthetic state (``benchmarks/results/plan_mde.csv``, ``n_comparison`` /
        ``n_treated``).
    n_districts
        Program districts (degrees of freedom of the multiplier: students less the
        district time effects).
    n_schools
        Schools the visited (and, separately, the comparison) students are spread over:
        only with design effects measured with errors clustered by student, to add a
        school design effect; ``None`` (design effects measured with the primary's
        school clusters, which include it): none.
    alpha, power
        Two-sided test level and power.
    design_effects
        The arms' design effects; ``None``: :data:`DEFAULT_DESIGN_EFFECTS`.  Estimate
        them from an evaluation's matched data with :func:`decompose_std_error` and
        :meth:`SEDecomposition.design_effects_for`.

    Returns
    -------
    dict
        The inputs, the design effects, ``std_error`` and ``mde`` (:data:`PLAN_COLUMNS`).
    """
    if not (n_treated > 1 and ratio > 0 and n_districts >= 1):
        raise ValueError("mde: n_treated must be > 1, ratio > 0 and n_districts >= 1")
    des = design_effects or DEFAULT_DESIGN_EFFECTS
    n_c = ratio * n_treated

    def school(n: float) -> float:
        if not n_schools:
            return 1.0
        return 1.0 + max(n / n_schools - 1.0, 0.0) * vc.icc_school

    de_t, de_c = des.treated * school(n_treated), des.comparison_at(n_c) * school(n_c)
    se = math.sqrt(vc.residual_variance * (de_t / n_treated + de_c / n_c))
    df = n_treated + n_c - n_districts - len(COVARIATES) - 1
    return {
        "n_treated": float(n_treated),
        "ratio": float(ratio),
        "n_comparison": float(n_c),
        "n_districts": int(n_districts),
        "n_schools": int(n_schools) if n_schools else 0,
        "design_effect_treated": de_t,
        "design_effect_comparison": de_c,
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
    design_effects: DesignEffects | None = None,
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
            design_effects,
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
