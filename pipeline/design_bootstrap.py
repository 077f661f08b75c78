"""Design bootstrap: reweight or resample schools within districts and redo the whole design.

The analytic standard error of the matched ANCOVA treats the propensity model, the
matched sets and the censoring weights as known. This bootstrap perturbs the sampling
units instead — schools, within each district (a stratified cluster bootstrap; every
student belongs to their *home* school, :mod:`pipeline.clusters`) — and in every draw

1. re-fits the propensity model (weighted logistic regression on the same design matrix,
   built once; the draw's multiplicities are the weights),
2. re-matches within the strata (district × month × grade band, greedy 3:1 on the logit
   score with the caliper re-computed),
3. re-fits the censoring hazard and re-computes the censoring weights (or, with
   ``censoring="impute"``, re-fits the imputation of the comparison students visited
   later, :mod:`pipeline.censoring_ice`),
4. re-estimates the matched ANCOVA and its average over the headline window.

Schemes (``scheme``) and the visited mix (``hold_mix``)
    ``multinomial`` (the class's default) resamples the ``n_d`` schools of each district
    with replacement (:func:`school_multiplicities`). The ``dirichlet_*`` schemes give
    every school a smooth random weight instead (:func:`school_weights`), with the weight
    variance the name says. ``benchmarks/compare_boot_schemes.py`` takes the resampled
    bootstrap's excess apart (100 replications of the default world, about three schools
    per district): its standard error is 1.13 times the spread of the estimates; weights
    of the same variance that keep every school in the matching's pool give 1.06, so
    leaving a third of the schools out of each draw (the failure Abadie and Imbens 2008
    describe for matching estimators) accounts for about 7 points; weights of variance 1
    (unbiased for a linear statistic, where a resampled count's ``(n - 1) / n`` is 2/3
    here) give 1.27, and Rubin's flat weights (variance ``(n - 1) / (n + 1)``) 0.95, close
    only because their weights vary less. The rest is whose effect is averaged: a draw
    over schools changes the visited students' grade-band mix, and the effect differs by
    band, while the estimate is of the effect on the students actually visited. Holding
    that mix (``hold_mix``, :meth:`DesignBootstrap._held`) with unit-variance weights
    gives 1.02. The estimate stage runs ``dirichlet_unit`` holding ``grade_band``
    (``estimate.estimands.design_bootstrap_scheme``, ``design_bootstrap_hold_mix``).
How a draw is represented
    A school drawn ``c`` times (or given weight ``c``) contributes its students with
    multiplicity ``c`` (weight), and schools not drawn drop out; rows are never copied.
    In the propensity and hazard fits the multiplicity is a frequency weight. In the
    matching, the students of drawn schools are matched as in the full sample; a visited
    student drawn ``c`` times is a matched set of weight ``c``; within a set the
    comparison students share the set's weight in proportion to their multiplicity (two
    copies of a comparison student would have taken two of its places).
Speed
    The propensity design matrix (standardised, aliased columns dropped) is built once;
    each draw re-fits the model by one Newton step from the full-sample estimate, with the
    full-sample Hessian and the draw's weighted score (a one-step, k = 1, bootstrap in
    the sense of Andrews 2002, in its score form: one step from a √n-consistent start has
    the re-fitted estimator's first-order distribution). ``newton_steps = k`` takes ``k``
    full Newton steps with the draw's own Hessian instead (slower; for checking). The stacked rows are indices
    into a student × month table, a draw's matched rows a (member × event time) grid, the
    censoring weights a cumulative product along it, and the ANCOVA — fully interacted
    with event time — one small weighted regression per event time with the fixed
    effects swept out. Draws run in ``workers`` processes (fork; one BLAS thread each).

Memory
    Both designs are held compactly and formed only where a draw needs them
    (:class:`PropensityDesign`: numeric columns dense, dummies as level codes;
    :class:`HazardDesign`: the rates and level codes, each draw's at-risk rows built as a
    sparse matrix): at state scale (2.6 million matching rows, 3.8 million hazard rows)
    the dense designs took about 7.9 GB (68 and 212 columns of float64), these about
    0.35 GB. Draws equal those on the dense designs up to rounding (tested to 1e-10).

``DesignBootstrap.estimate(ones)`` reproduces the stage's window average on the full
sample (up to the solvers' tolerances; tested), which anchors the draws to the estimator
they resample.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from pipeline.censoring import DEFAULT_TRUNCATE, _truncation
from pipeline.censoring_ice import (
    CENSORING_METHODS,
    _features,
    chain_models,
    predict_censored,
)
from pipeline.clusters import home_clusters
from pipeline.did.within import wls_within
from pipeline.history import HISTORY_COLUMNS, recorded_history
from pipeline.matching.propensity import (
    _is_categorical,
    _level_codes,
    _logistic_newton,
    _non_aliased,
    design_columns,
    design_matrix,
    fit_propensity,
)
from pipeline.matching.riskset import (
    PropensityCache,
    RiskSetSpec,
    match_in_strata,
    riskset_work,
)

__all__ = [
    "BootstrapResult",
    "DesignBootstrap",
    "HazardDesign",
    "PropensityDesign",
    "CONCENTRATIONS",
    "SCHEMES",
    "school_multiplicities",
    "school_weights",
]

LAGS = ("rate_lag1", "rate_lag2", "rate_lag3")


def school_multiplicities(school_district: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Times each school is drawn when ``n_d`` schools are drawn with replacement from
    each district's ``n_d`` schools (``school_district``: district code per school)."""
    counts = np.zeros(school_district.size, dtype=np.int64)
    for d in np.unique(school_district):
        idx = np.flatnonzero(school_district == d)
        counts[idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size))
    return counts


#: Dirichlet concentration per district of ``n`` schools, by the weight variance it gives:
#: ``n`` times a Dirichlet(α, …, α) draw has mean 1 and variance ``(n - 1) / (n α + 1)``.
CONCENTRATIONS = {
    # Rubin's (1981) Bayesian bootstrap: variance (n - 1) / (n + 1)
    "flat": lambda n: 1.0,
    # the variance of a resampled school's count, (n - 1) / n: resampling made smooth
    "resampling": lambda n: (n - 1) / n,
    # variance 1, unbiased for a linear statistic (the aim of Rao and Wu's 1988 rescaling);
    # needs n >= 3 (two schools: as "resampling")
    "unit": lambda n: (n - 2) / n if n >= 3 else (n - 1) / n,
}


def school_weights(
    school_district: np.ndarray, rng: np.random.Generator, variance: str = "flat"
) -> np.ndarray:
    """Smooth random weights of the schools, stratified by district: within each district
    of ``n_d`` schools, ``n_d`` times a Dirichlet draw whose concentration
    :data:`CONCENTRATIONS` [``variance``] sets (independent gammas scaled to sum ``n_d``).
    Every school stays in the draw, so the matching sees the same students as the full
    sample; a district of one school keeps weight 1."""
    alpha_of = CONCENTRATIONS[variance]
    out = np.ones(school_district.size, dtype=float)
    for d in np.unique(school_district):
        idx = np.flatnonzero(school_district == d)
        if idx.size < 2:
            continue
        g = rng.gamma(alpha_of(idx.size), size=idx.size)
        out[idx] = idx.size * g / g.sum()
    return out


#: How a draw weighs the schools: ``multinomial`` (resampled, :func:`school_multiplicities`;
#: the default) or smooth weights (:func:`school_weights`) of the named variance.
SCHEMES = {
    "multinomial": school_multiplicities,
    **{f"dirichlet_{k}": (lambda sd, rng, k=k: school_weights(sd, rng, k)) for k in CONCENTRATIONS},
}


@dataclass
class BootstrapResult:
    """Design-bootstrap draws of the window average and their summary."""

    estimate: float
    draws: np.ndarray
    alpha: float
    seconds: float
    workers: int
    info: dict = field(default_factory=dict)

    @property
    def std_error(self) -> float:
        d = self.draws[np.isfinite(self.draws)]
        return float(np.std(d, ddof=1)) if d.size > 1 else float("nan")

    def conf_int(self) -> tuple[float, float]:
        """Percentile interval of the draws."""
        d = self.draws[np.isfinite(self.draws)]
        lo, hi = np.quantile(d, [self.alpha / 2, 1 - self.alpha / 2])
        return float(lo), float(hi)

    def tidy(self) -> pd.DataFrame:
        """One row: estimate, bootstrap SE, percentile interval, draws used."""
        lo, hi = self.conf_int()
        return pd.DataFrame(
            [
                {
                    "estimate": self.estimate,
                    "std_error": self.std_error,
                    "ci_low": lo,
                    "ci_high": hi,
                    "draws": int(self.draws.size),
                    "failed_draws": int((~np.isfinite(self.draws)).sum()),
                    "interval": "percentile, design bootstrap (schools within districts)",
                }
            ]
        )

    def summary(self) -> str:
        lo, hi = self.conf_int()
        return (
            f"design bootstrap: {self.estimate:.3f}, SE {self.std_error:.3f}, "
            f"{100 * (1 - self.alpha):.0f}% percentile interval {lo:.3f} to {hi:.3f} "
            f"({self.draws.size} draws, {self.seconds:.1f} s on {self.workers} workers)"
        )


def _design_columns_index(work: pd.DataFrame, covariates, levels: dict) -> list[tuple]:
    """The columns of the design matrix of ``covariates``
    (:func:`~pipeline.matching.propensity.design_matrix`, first levels dropped) in order:
    ``(covariate, level index)`` for a dummy, ``(covariate, None)`` for a numeric column."""
    cols: list[tuple[str, int | None]] = []
    for c in covariates:
        if _is_categorical(work[c]):
            cols += [(c, k) for k in range(1, len(levels[c]))]
        else:
            cols.append((c, None))
    return cols


def _design_array(work: pd.DataFrame, covariates, levels: dict) -> np.ndarray:
    """``design_matrix(work, covariates, levels=levels).to_numpy()`` (the same values and
    the same column-major layout) filled column by column into one array."""
    n_col = len(_design_columns_index(work, covariates, levels))
    A = np.empty((len(work), n_col), order="F")
    j = -1
    for j, (_, _, x) in enumerate(design_columns(work, covariates, levels=levels, name="panel")):
        A[:, j] = x
    if j + 1 != n_col:
        raise RuntimeError("design bootstrap: design columns do not match the covariates")
    return A


class PropensityDesign:
    """The propensity model's standardised design, held compactly.

    ``Z = [1, (A[:, keep] - mu[keep]) / sd[keep]]`` — the matrix
    :func:`~pipeline.matching.propensity.fit_propensity` fits on, aliased columns dropped —
    with ``A`` the design matrix of the matching rows. Its numeric columns are kept dense
    and its dummies as one integer level code per row and categorical covariate, so the
    memory is rows × (numeric columns + categorical covariates) instead of rows × all
    columns (at state scale ~70 columns, most of them dummies). A draw needs only ``Z β``
    (:meth:`lp`) and ``Z' v`` (:meth:`zt`), computed on the unstandardised columns
    (``Z β = γ₀ + A γ``, ``Z' v = (A' v − mu Σv) / sd``; the dummies' parts by level
    lookup and ``np.bincount``); equal to the dense products up to rounding.

    Parameters
    ----------
    A : ndarray
        The design matrix (:func:`~pipeline.matching.propensity.design_matrix` of
        ``work``, as an array).
    work : DataFrame
        The matching rows' covariates (``riskset_work(...).work``).
    covariates : list of str
        The model's covariates, in the design matrix's order.
    levels : dict
        Levels of the categorical covariates (as the design matrix was built with).
    """

    #: rows per block when dense rows of ``Z`` are formed (:meth:`weighted_gram`)
    BLOCK = 100_000

    def __init__(self, A: np.ndarray, work: pd.DataFrame, covariates, levels: dict):
        self.mu, self.sd = A.mean(axis=0), A.std(axis=0)
        self.keep = _non_aliased(A, self.mu, self.sd)
        cols = _design_columns_index(work, covariates, levels)
        if len(cols) != A.shape[1]:
            raise RuntimeError("design bootstrap: design columns do not match the covariates")
        kept = np.flatnonzero(self.keep)
        self.k = 1 + kept.size  # columns of Z
        self._m = self.mu[kept]  # mean and SD of Z's columns 1..k-1
        self._s = self.sd[kept]
        num = [i for i, j in enumerate(kept) if cols[j][1] is None]
        self.num_pos = np.array(num, dtype=np.int64)  # positions among Z's columns 1..
        self.num = np.ascontiguousarray(A[:, kept[num]]) if num else np.zeros((len(A), 0))
        # per categorical covariate: level code per row (-1: none) and, per level, the
        # position of its dummy among Z's columns 1.. (-1: reference level or aliased)
        self.cats: list[tuple[np.ndarray, np.ndarray]] = []
        for c in dict.fromkeys(cols[j][0] for j in kept if cols[j][1] is not None):
            pos = np.full(len(levels[c]) + 1, -1, dtype=np.int64)  # last: code -1
            for i, j in enumerate(kept):
                if cols[j][0] == c:
                    pos[cols[j][1]] = i
            codes = _level_codes(work[c], levels[c])
            self.cats.append((codes.astype(np.int16 if len(pos) < 2**15 else np.int64), pos))

    def lp(self, beta: np.ndarray) -> np.ndarray:
        """``Z @ beta`` for every row."""
        g = beta[1:] / self._s
        out = self.num @ g[self.num_pos] + (beta[0] - np.sum(g * self._m))
        for codes, pos in self.cats:
            out += np.where(pos >= 0, g[pos], 0.0)[codes]
        return out

    def zt(self, v: np.ndarray) -> np.ndarray:
        """``Z.T @ v``."""
        sv = float(np.sum(v))
        s = np.zeros(self.k - 1)
        s[self.num_pos] = self.num.T @ v
        for codes, pos in self.cats:
            by_level = np.bincount(codes.astype(np.int64) + 1, weights=v, minlength=len(pos))
            lev = np.flatnonzero(pos[:-1] >= 0)
            s[pos[lev]] = by_level[1 + lev]
        return np.r_[sv, (s - self._m * sv) / self._s]

    def rows(self, idx) -> np.ndarray:
        """The dense rows ``Z[idx]`` (an index array or a slice)."""
        num = self.num[idx]
        Z = np.empty((len(num), self.k))
        Z[:, 0] = 1.0
        Z[:, 1 + self.num_pos] = (num - self._m[self.num_pos]) / self._s[self.num_pos]
        for codes, pos in self.cats:
            cd = codes[idx]
            for lev in np.flatnonzero(pos[:-1] >= 0):
                i = pos[lev]
                Z[:, 1 + i] = ((cd == lev).astype(np.float64) - self._m[i]) / self._s[i]
        return Z

    def weighted_gram(self, w: np.ndarray) -> np.ndarray:
        """``Z' diag(w) Z``, a block of rows at a time."""
        G = np.zeros((self.k, self.k))
        for a in range(0, len(w), self.BLOCK):
            Zb = self.rows(slice(a, a + self.BLOCK))
            G += (Zb * w[a : a + self.BLOCK, None]).T @ Zb
        return G


class HazardDesign:
    """The censoring hazard's design (as :func:`pipeline.censoring.ipcw_weights`) for a set
    of panel rows, held compactly: the history and prior-year rates as they are, and one
    level code per row for the calendar month, district and grade band.

    Columns of the design (:meth:`rows`): the intercept; each of the three lags and the
    prior-year rate as ``(x − 90) / 10``, its square and a missing flag (0 when missing);
    then dummies of the month, district and grade band, levels coded over the whole panel
    (sorted, the first the reference), only the levels present among the selected rows
    (a dummy 0 on all of them would keep a coefficient of 0).

    Parameters
    ----------
    p : DataFrame
        The panel.
    sel : boolean array
        The rows to hold (the rows a draw can stack).
    """

    NUMERIC = (*LAGS, "prior_year_rate")
    CATEGORICAL = ("month", "district_code", "grade_band")

    def __init__(self, p: pd.DataFrame, sel: np.ndarray):
        sel = np.asarray(sel, dtype=bool)
        self.raw = np.column_stack([p[h].astype("float64").to_numpy()[sel] for h in self.NUMERIC])
        base = 1 + 3 * len(self.NUMERIC)
        self.codes: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []  # column of each level's dummy (-1: none)
        for c in self.CATEGORICAL:
            codes, _ = pd.factorize(p[c].astype(str), sort=True)
            sub = codes[sel]
            lev = np.unique(sub[sub > 0])
            pos = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
            pos[lev] = base + np.arange(lev.size)
            base += lev.size
            self.codes.append(sub.astype(np.int16 if pos.size < 2**15 else np.int64))
            self.pos.append(pos)
        self.k = base  # columns of the design

    def rows(self, r: np.ndarray) -> sp.csr_matrix:
        """The design of held rows ``r`` (positions among the selected rows), sparse."""
        x = self.raw[r]
        miss = np.isnan(x)
        x = np.where(miss, 0.0, (x - 90.0) / 10.0)
        num = np.empty((len(r), 1 + 3 * x.shape[1]))
        num[:, 0] = 1.0
        num[:, 1::3], num[:, 2::3], num[:, 3::3] = x, x**2, miss
        cols = [pos[codes[r]] for codes, pos in zip(self.codes, self.pos, strict=True)]
        col = np.concatenate(cols)
        row = np.tile(np.arange(len(r)), len(cols))
        on = col >= 0
        dummies = sp.csr_matrix(
            (np.ones(int(on.sum())), (row[on], col[on] - num.shape[1])),
            shape=(len(r), self.k - num.shape[1]),
        )
        return sp.hstack([sp.csr_matrix(num), dummies], format="csr")


class DesignBootstrap:
    """The matched ANCOVA design, set up once and re-run on weighted school draws.

    Parameters
    ----------
    panel : DataFrame
        The student-month panel (``pipeline.panel``), sorted by student and month.
    spec : RiskSetSpec
        Matching settings (as the ``match`` stage).
    att_window : (int, int)
        The headline window (post-visit event times) whose average is resampled.
    yname : str
        Outcome column.
    truncate : quantiles or None
        Censoring-weight truncation (as :func:`pipeline.censoring.ipcw_weights`).
    newton_steps : int
        Propensity re-fit per draw: 0 (default) one Newton step from the full-sample fit
        with the full-sample Hessian (the draw's weighted score; first-order equivalent to
        re-fitting); ``k > 0``: ``k`` damped Newton steps with the draw's own Hessian.
    ipcw : bool
        Censoring weights (``False``: censored comparison rows are dropped, others weigh 1).
    censoring : {"weights", "impute"}
        Comparison students visited later (``estimate.censoring``): ``weights`` as
        ``ipcw`` says; ``impute``: in every draw their untreated attendance is predicted
        from their recorded months by the iterated regressions of
        :func:`pipeline.censoring_ice.ice_impute`, re-fitted on the draw (matching weights
        × multiplicities), and no weights are used.
    scheme : str
        How a draw weighs the schools (:data:`SCHEMES`): ``multinomial`` (the default)
        resamples them within districts (a school drawn ``c`` times has multiplicity ``c``,
        one not drawn drops out); ``dirichlet_flat``, ``dirichlet_resampling`` and
        ``dirichlet_unit`` give every school a smooth weight (:func:`school_weights`), so
        no student leaves the matching's pool, with the weight variance the name says
        (:data:`CONCENTRATIONS`). The estimate stage runs ``dirichlet_unit`` (the module
        docstring says why).
    hold_mix : str, optional
        A panel column (e.g. ``grade_band``) whose mix among the visited students each draw
        keeps at the full sample's: a draw's matched sets are re-weighted, stratum by
        stratum, so that their weights' shares equal the full sample's (strata a draw
        lacks cannot be held; the others keep their full-sample proportions). The estimator
        is unchanged (the full-sample draw is the stage's estimate); the draws then vary
        the schools but not whose effect is averaged.
    effect_strata : str, optional
        Column of effect strata (``estimate.effect_strata``, e.g. ``grade_band``): as
        :func:`pipeline.did.ancova.matched_ancova` with ``effect_strata``, each draw's
        effect is the average of the strata's effects over the *full sample's* visited
        mix at each event time (time effects per district × stratum), so the draws hold
        the mix fixed as the analytic standard error does.
    history : bool
        The ANCOVA also conditions on the recorded year at the first visit
        (``estimate.history``; :data:`pipeline.history.HISTORY_COLUMNS` at each matching
        row, each linear with a missing flag, as
        :func:`pipeline.did.ancova.matched_ancova` takes them). The panel then needs
        :data:`pipeline.history.HISTORY_PANEL_COLUMNS`.
    ps_cache : PropensityCache, optional
        A cache (:class:`pipeline.matching.riskset.PropensityCache`) already holding the
        full-sample propensity fit of a :func:`~pipeline.matching.riskset.riskset_match`
        run on the same panel and settings: the fit is reused instead of repeated (it is
        keyed by the whole design matrix, so a reused fit is the fit that would be made).
    """

    def __init__(
        self,
        panel: pd.DataFrame,
        spec: RiskSetSpec | None = None,
        *,
        att_window: tuple[int, int] = (1, 6),
        yname: str = "attendance_rate",
        truncate=DEFAULT_TRUNCATE,
        newton_steps: int = 0,
        ipcw: bool = True,
        ps_cache: PropensityCache | None = None,
        effect_strata: str | None = None,
        censoring: str = "weights",
        scheme: str = "multinomial",
        hold_mix: str | None = None,
        history: bool = False,
    ):
        self.spec = spec = RiskSetSpec() if spec is None else spec
        self.window = (int(att_window[0]), int(att_window[1]))
        if self.window[0] < 1:
            raise ValueError("design bootstrap: att_window must start at event time 1 or later")
        self.truncate = _truncation(truncate)
        self.newton_steps = int(newton_steps)
        self.ipcw = bool(ipcw)
        if censoring not in CENSORING_METHODS:
            raise ValueError(
                f"design bootstrap: censoring must be one of {list(CENSORING_METHODS)}, "
                f"not {censoring!r}"
            )
        self.censoring = censoring
        if scheme not in SCHEMES:
            raise ValueError(
                f"design bootstrap: scheme must be one of {list(SCHEMES)}, not {scheme!r}"
            )
        self.scheme = scheme
        p = panel.reset_index(drop=True)
        # student codes in order of appearance (no array of Python strings: ~1 GB at
        # state scale); with the panel sorted by student, equal neighbours = equal keys
        scode, ukeys = pd.factorize(p["student_key"].astype(str))
        sm = p["school_month"].to_numpy(dtype=np.int64)
        if len(p) > 1 and np.any((scode[1:] == scode[:-1]) & (sm[1:] <= sm[:-1])):
            raise ValueError("design bootstrap: panel not sorted by student_key, school_month")
        self.n_students = len(ukeys)
        # home school and district per student; schools nested in districts
        homes = home_clusters(p).reindex(ukeys)
        sch, self.schools = pd.factorize(homes["home_school_code"].astype(str))
        self.student_school = sch.astype(np.int64)
        dist_of_school = (
            pd.Series(homes["home_district_code"].astype(str).to_numpy())
            .groupby(sch)
            .first()
            .sort_index()
        )
        self.school_district = pd.factorize(dist_of_school.to_numpy())[0]

        # --- matching rows and the propensity design (once) ----------------------------
        rs = riskset_work(p, spec)
        self.work_t = rs.work_t
        self.work_s = rs.work_s
        self.work_student = scode[rs.idx]
        self.work_month = sm[rs.idx]
        # the stage's own fit is the start of every draw's Newton steps; the design matrix
        # is built as one array (a data frame's columns and its block were two copies),
        # as a data frame only to look the fit up in a cache (keyed by its columns)
        # The standardised design is kept compactly (numeric columns dense, dummies as
        # level codes; the dense matrix was rows x ~70 columns, ~1.4 GB at state scale),
        # built before the fit, which is handed the only reference to the design matrix
        # and frees it once it has its standardised copy.
        if ps_cache is None:
            A = [_design_array(rs.work, rs.covs_ps, rs.levels)]
            self.ps = PropensityDesign(A[0], rs.work, rs.covs_ps, rs.levels)
            model = fit_propensity(A.pop(), self.work_t)
        else:
            X = design_matrix(rs.work, rs.covs_ps, levels=rs.levels, name="panel")
            model = ps_cache.fit(X, self.work_t)
            self.ps = PropensityDesign(X.to_numpy(), rs.work, rs.covs_ps, rs.levels)
            del X
        keep, mu, sd = self.ps.keep, self.ps.mu, self.ps.sd
        b = model.coef[keep]
        self.beta0 = np.r_[model.intercept + np.sum(b * mu[keep]), b * sd[keep]]
        # score step: residuals and the inverse Hessian at the full-sample estimate
        eta0 = self.ps.lp(self.beta0)
        p0 = 0.5 * (1.0 + np.tanh(0.5 * eta0))
        self.resid0 = self.work_t.astype(float) - p0
        with threadpool_limits(limits=1):
            H0 = self.ps.weighted_gram(p0 * (1 - p0))
        H0[np.diag_indices_from(H0)] += 1e-9 * np.trace(H0) / H0.shape[0]
        self.H0inv = np.linalg.inv(H0)
        # baseline covariates of each work row (its own row at m)
        lagv = rs.work[list(LAGS)].to_numpy(dtype=float)
        prior = p["prior_year_rate"].astype("float64").to_numpy()[rs.idx]
        linear = [prior]
        if history:  # the recorded year at the row's month (pipeline/history.py)
            at = pd.DataFrame(
                {"student_key": p["student_key"].to_numpy()[rs.idx], "school_month": sm[rs.idx]}
            )
            h = recorded_history(p)
            h = h.astype({"student_key": at["student_key"].dtype, "school_month": np.int64})
            hv = at.merge(h, on=["student_key", "school_month"], how="left", validate="m:1")
            linear += [hv[c].to_numpy(dtype=float) for c in HISTORY_COLUMNS]
            del h, hv, at
        self.base_cov = np.column_stack(
            [
                lagv,
                lagv**2 / 100.0,
                *[v for x in linear for v in (np.where(np.isnan(x), 0.0, x), np.isnan(x) * 1.0)],
            ]
        )
        self.work_fe = pd.factorize(p["district_code"].astype(str).to_numpy()[rs.idx])[0]
        self.work_st: np.ndarray | None = None
        self.n_strata = 1
        self._mix: dict[int, np.ndarray] = {}  # the full sample's visited mix per event time
        if effect_strata is not None:
            if effect_strata not in p.columns:
                raise KeyError(f"design bootstrap: panel has no column {effect_strata!r}")
            st, levels = pd.factorize(p[effect_strata].astype(str).to_numpy()[rs.idx], sort=True)
            self.work_st, self.n_strata = st.astype(np.int64), max(len(levels), 1)
        self.hold_st: np.ndarray | None = None
        self._hold_share: np.ndarray | None = None  # the full sample's visited mix
        if hold_mix is not None:
            if hold_mix not in p.columns:
                raise KeyError(f"design bootstrap: panel has no column {hold_mix!r}")
            hs, hold_levels = pd.factorize(p[hold_mix].astype(str).to_numpy()[rs.idx], sort=True)
            self.hold_st = hs.astype(np.int64)
            self.n_hold = len(hold_levels)

        # --- student x month row table, outcome, own first visit, hazard design --------
        self.m0 = int(sm.min())
        n_m = int(sm.max()) - self.m0 + 1
        self.row_of = np.full((self.n_students, n_m), -1, dtype=np.int64)
        self.row_of[scode, sm - self.m0] = np.arange(len(p))
        self.y = p[yname].astype("float64").to_numpy()
        if censoring == "impute":
            # each row's recorded history for the imputation (pipeline/censoring_ice.py):
            # before the row's month, and through it (its own outcome, two earlier months)
            lag = p[list(LAGS)].to_numpy(dtype=float)
            pr = p["prior_year_rate"].astype("float64").to_numpy()
            self.h_before = _features(lag, pr)
            # the history is the attendance rate the lags are of, whatever ``yname``
            rate = p["attendance_rate"].astype("float64").to_numpy()
            self.h_through = _features(np.column_stack([rate, lag[:, 0], lag[:, 1]]), pr)
        self.fv = p["first_visit_school_month"].astype("float64").to_numpy()
        self.sm = sm
        # the hazard's design only for the rows a draw can stack (the students of the
        # matching rows), compactly (HazardDesign): each draw builds its at-risk rows'
        # design, sparse; the dense design of all these rows was ~9 GB at state scale
        needed = np.isin(scode, np.unique(self.work_student))
        self.h_row = np.full(len(p), -1, dtype=np.int64)
        self.h_row[needed] = np.arange(int(needed.sum()))
        self.hazard = HazardDesign(p, needed)
        self._hazard0: np.ndarray | None = None

    # ----------------------------------------------------------------------------------
    def propensity(self, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Matching rows in the draw (positions) and their re-fitted logit scores."""
        om_w = omega[self.work_student].astype(float)
        act = np.flatnonzero(om_w > 0)
        if np.array_equal(omega, np.ones_like(omega)):
            beta = self.beta0
        elif self.newton_steps == 0:
            # one Newton step from the full-sample fit with its Hessian: the draw's score
            beta = self.beta0 + self.H0inv @ self.ps.zt(om_w * self.resid0)
        else:
            t = self.work_t[act].astype(float)
            beta = _logistic_newton(self.ps.rows(act), t, om_w[act], self.beta0,
                                    self.newton_steps)  # fmt: skip
        return act, self.ps.lp(beta)[act]

    def estimate(self, omega: np.ndarray) -> float:
        """The window average on the draw with student multiplicities ``omega``."""
        spec = self.spec
        om_w = omega[self.work_student].astype(float)
        act, lp = self.propensity(omega)
        cal = None
        if spec.caliper is not None and lp.size > 1:
            w = om_w[act]
            mean = np.sum(w * lp) / w.sum()
            var = np.sum(w * (lp - mean) ** 2) / (w.sum() - 1)
            cal = float(spec.caliper) * float(np.sqrt(var))
        mm, _, t_pos = match_in_strata(lp, self.work_t[act], self.work_s[act], spec, cal)
        k = (mm >= 0).sum(axis=1)
        has = np.flatnonzero(k > 0)
        if has.size == 0:
            return float("nan")
        # members: treated then comparisons, positions in `act`
        t_rows = act[t_pos[has]]
        mmh = mm[has]
        c_ok = mmh >= 0
        c_rows = np.where(c_ok, act[np.where(c_ok, mmh, 0)], -1)
        full = bool(np.all(omega == 1))
        om_t = om_w[t_rows]
        if self.hold_st is not None:
            om_t = om_t * self._held(om_t, self.hold_st[t_rows], full)
        om_c = np.where(c_ok, om_w[np.maximum(c_rows, 0)], 0.0)
        pairs = np.unique(np.column_stack([self.work_s[c_rows[c_ok]], c_rows[c_ok]]), axis=0)
        scale = om_w[pairs[:, 1]].sum() / om_t.sum()
        w_c = scale * om_t[:, None] * om_c / om_c.sum(axis=1, keepdims=True)
        n_set = has.size
        mem_row = np.concatenate([t_rows, c_rows[c_ok]])
        mem_set = np.concatenate([np.arange(n_set), np.nonzero(c_ok)[0]])
        mem_treated = np.concatenate([np.ones(n_set, bool), np.zeros(int(c_ok.sum()), bool)])
        mem_w = np.concatenate([om_t, w_c[c_ok]])
        mem_om = np.concatenate([om_t, om_c[c_ok]])
        # --- stacked rows: member x event time 1..K ----------------------------------
        # the hazard is fitted on every event time of the stacks, as in the stage
        K = max(int(spec.window[1]), self.window[1])
        stu = self.work_student[mem_row]
        mon = self.work_month[mem_row]
        ks = np.arange(1, K + 1)
        col = mon[:, None] + ks[None, :] - self.m0
        inside = (col >= 0) & (col < self.row_of.shape[1])
        colc = np.clip(col, 0, self.row_of.shape[1] - 1)
        rows = np.where(inside, self.row_of[stu[:, None], colc], -1)
        present = rows >= 0
        fv = np.where(present, self.fv[np.maximum(rows, 0)], np.nan)
        smr = np.where(present, self.sm[np.maximum(rows, 0)], 0)
        comp = ~mem_treated[:, None] & present
        censored = comp & ~np.isnan(fv) & (fv <= smr)
        event = comp & ~np.isnan(fv) & (fv == smr)
        if self.censoring == "impute":
            Y = self._impute(rows, present, comp, censored, mem_w)
            W = np.ones(rows.shape)
            censored = np.zeros_like(censored)
        else:
            Y = None
            at_risk = comp & (~censored | event)
            W = self._censoring_weights(rows, at_risk, event, censored, mem_om, ks)
        # --- ANCOVA per event time --------------------------------------------------
        betas = []
        for j, kk in enumerate(ks):
            if kk < self.window[0] or kk > self.window[1]:
                continue
            use = present[:, j] & ~censored[:, j]
            wt = mem_w * W[:, j]
            use &= wt > 0
            if not (use & mem_treated).any() or not (use & ~mem_treated).any():
                return float("nan")
            r = rows[use, j]
            yk = self.y[r] if Y is None else Y[use, j]
            D = mem_treated[use].astype(float)
            X = np.column_stack([D, self.base_cov[mem_row[use]]])
            fe = self.work_fe[t_rows[mem_set[use]]]
            if self.work_st is not None:
                st = self.work_st[t_rows[mem_set[use]]]
                fe = fe * self.n_strata + st
                X = np.column_stack([X, self._interactions(D, st, wt[use], int(kk), full)])
            betas.append(wls_within(yk, X, wt[use], fe)[0])
        return float(np.mean(betas))

    def _held(self, om_t: np.ndarray, st: np.ndarray, full: bool) -> np.ndarray:
        """Factors on the matched sets' weights that give their strata (``st``) the full
        sample's shares (set by the full-sample estimate; ones there)."""
        tot = np.bincount(st, weights=om_t, minlength=self.n_hold)
        share = tot / tot.sum()
        if full or self._hold_share is None:
            self._hold_share = share
            return np.ones_like(om_t)
        present = tot > 0
        target = np.where(present, self._hold_share, 0.0)
        target = target / target.sum()
        f = np.where(present, target / np.where(present, share, 1.0), 0.0)
        return f[st]

    def _interactions(
        self, D: np.ndarray, st: np.ndarray, w: np.ndarray, k: int, full: bool
    ) -> np.ndarray:
        """``D × (stratum indicators − the visited mix)`` (strata after the first), the mix
        being the full sample's at event time ``k`` (set by the full-sample estimate; a
        draw before it, or a stratum without visited rows in the draw, uses the draw's)."""
        onehot = (st[:, None] == np.arange(self.n_strata)[None, :]).astype(float)
        t = D > 0
        own = np.average(onehot[t], axis=0, weights=w[t])
        if full or k not in self._mix:
            self._mix[k] = own
        mix = self._mix[k]
        present = onehot[t].any(axis=0)
        out = D[:, None] * (onehot - mix[None, :])
        return out[:, 1:][:, present[1:]]

    def _impute(self, rows, present, comp, censored, w) -> np.ndarray:
        """The grid's outcomes with each censored comparison row's untreated attendance
        imputed up to the headline window's end, as
        :func:`pipeline.censoring_ice.ice_impute` does on the stage's stacks (event time
        ``k`` is column ``k - 1``; ``w`` the members' matching weights in the draw)."""
        r0 = np.maximum(rows, 0)
        Y = np.where(present, self.y[r0], np.nan)
        cen = censored & comp
        if not cen.any():
            return Y
        n_mem, K = rows.shape
        kmax = min(self.window[1], K)
        # each member's first censored event time (column) and its row there
        has = cen.any(axis=1)
        c_col = np.where(has, np.argmax(cen, axis=1), -1)
        c_row = np.where(has, rows[np.arange(n_mem), np.maximum(c_col, 0)], -1)
        live = comp & present & ~cen

        def live_at(j: int) -> tuple[np.ndarray, np.ndarray] | None:
            if not (comp[:, j - 1] & present[:, j - 1]).any():
                return None
            mem = np.flatnonzero(live[:, j - 1])
            return rows[mem, j - 1], w[mem]

        for k in range(1, kmax + 1):
            target = np.flatnonzero(cen[:, k - 1])
            if target.size == 0:
                continue
            q_at = chain_models(k, live_at, self.y, self.h_before, self.h_through,
                                "design bootstrap")  # fmt: skip
            Y[target, k - 1] = predict_censored(c_row[target], c_col[target] + 1,
                                                self.h_before, q_at)  # fmt: skip
        return Y

    def _censoring_weights(self, rows, at_risk, event, censored, mem_om, ks) -> np.ndarray:
        n_mem, K = rows.shape
        W = np.ones((n_mem, K))
        if not at_risk.any() or not self.ipcw:
            return np.where(censored, 0.0, W)
        r_idx = rows[at_risk]
        yv = event[at_risk].astype(float)
        wv = np.broadcast_to(mem_om[:, None], rows.shape)[at_risk]
        ratio = np.ones((n_mem, K))
        if 0 < yv.sum() < yv.size:
            Hm = self.hazard.rows(self.h_row[r_idx])
            if self._hazard0 is None:
                b = np.zeros(Hm.shape[1])
                b[0] = np.log(yv.mean() / (1 - yv.mean()))
            else:
                b = self._hazard0
            # scikit-learn's C = 1e6 (as ipcw_weights); empty dummies stay at 0
            b = _logistic_newton(Hm, yv, wv, b, 100, tol=1e-9, l2=1e-6)
            if self._hazard0 is None and np.all(mem_om == 1):
                self._hazard0 = b  # the full-sample fit starts every draw's
            h = 1.0 / (1.0 + np.exp(-(Hm @ b)))
            kk = np.broadcast_to(ks[None, :], rows.shape)[at_risk]
            h0 = np.zeros(K + 1)
            for k in ks:
                m = kk == k
                if m.any():
                    h0[k] = np.sum(wv[m] * yv[m]) / np.sum(wv[m])
            num = 1.0 - h0[kk]
            ratio[at_risk] = np.where(yv > 0, 1.0, num / np.clip(1.0 - h, 1e-6, None))
        W = np.cumprod(np.where(at_risk, ratio, 1.0), axis=1)
        live = at_risk & ~censored
        lo_q, hi_q = self.truncate
        if live.any() and (lo_q is not None or hi_q is not None):
            lw = W[live]
            lo = np.quantile(lw, lo_q) if lo_q is not None else -np.inf
            hi = np.quantile(lw, hi_q) if hi_q is not None else np.inf
            W = np.where(live, np.clip(W, lo, hi), W)
        return np.where(censored, 0.0, W)

    # ----------------------------------------------------------------------------------
    def run(
        self, draws: int = 199, *, seed: int = 0, workers: int = 2, alpha: float = 0.05
    ) -> BootstrapResult:
        """``draws`` school draws (deterministic given ``seed``, whatever ``workers``)."""
        t0 = time.perf_counter()
        with threadpool_limits(limits=1):
            est = self.estimate(np.ones(self.n_students, dtype=np.int64))
        seeds = np.random.SeedSequence(seed).spawn(draws)
        chunks = [list(range(i, draws, workers)) for i in range(workers)]
        if workers > 1 and draws > 1:
            global _ACTIVE
            _ACTIVE = self
            import multiprocessing as mp

            ctx = mp.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
                parts = list(ex.map(_run_chunk, [[(i, seeds[i]) for i in c] for c in chunks]))
            _ACTIVE = None
            out = np.full(draws, np.nan)
            for part in parts:
                for i, v in part:
                    out[i] = v
        else:
            out = np.array([v for _, v in self._chunk([(i, seeds[i]) for i in range(draws)])])
        return BootstrapResult(
            est,
            out,
            alpha,
            time.perf_counter() - t0,
            workers,
            {"schools": int(len(self.schools)), "newton_steps": self.newton_steps,
             "seed": seed, "scheme": self.scheme},
        )  # fmt: skip

    def _chunk(self, items) -> list[tuple[int, float]]:
        res = []
        with threadpool_limits(limits=1):
            for i, ss in items:
                rng = np.random.default_rng(ss)
                c = SCHEMES[self.scheme](self.school_district, rng)
                omega = c[self.student_school]
                try:
                    v = self.estimate(omega)
                except (np.linalg.LinAlgError, ValueError):
                    v = float("nan")
                res.append((i, v))
        return res


_ACTIVE: DesignBootstrap | None = None


def _run_chunk(items):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return _ACTIVE._chunk(items)
