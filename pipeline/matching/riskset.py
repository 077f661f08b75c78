"""Risk-set matching of first-visited students on the student-month panel.

Design
------
A student first reached (first completed home visit) in school month ``m`` — panel
column ``first_visit_school_month`` — is matched to comparison students drawn from the
**risk set** of month ``m``:

* in membership in school months ``m-3 … m``: the candidate has a panel row at ``m``
  and ``rate_lag1``, ``rate_lag2`` and ``rate_lag3`` are all present at ``m`` (they are
  null when the student was not in membership in that month);
* of the same grade band (at ``m``) — always exact;
* from the pool chosen by ``pool``: ``"same_district"`` (default; exact on the district
  of record at ``m``), ``"program_districts"`` (any district that ran the program) or
  ``"non_program_districts"`` (districts that did not);
* **not reached before** ``m``: ``first_visit_school_month`` null or greater than ``m``.

The treated student must satisfy the same membership condition at its own ``m``;
treated students who do not (no row at ``m``, or a missing lag) cannot be matched and
are counted in the match summary.

Censoring of later-treated comparisons
    A candidate reached later (``first_visit_school_month > m``) can serve as a
    comparison until then.  In the stacked output its rows at and after its own first
    visit are flagged ``censored = True``: the estimation stage drops those rows and
    applies inverse-probability-of-censoring weights so that the comparison group keeps
    representing "not (yet) reached" students.  Treated rows are never censored.

Strata, propensity score, matching
    Matching is exact within strata ``(exact columns…, m, grade band)``; ``exact``
    defaults to ``["district_code"]`` for the same-district pool and to nothing for the
    other pools.  The propensity score is **one pooled logistic model** fitted on all
    eligible treated rows and the candidates, with main-effect dummies for the stratum
    variables (district, month, grade band) next to the matching covariates: a model per
    stratum would have a handful of treated units per stratum (separation, unstable
    fits), while within-stratum matching needs only the within-stratum ranking, which the
    additive stratum effects leave to the covariates.  When there are more candidate rows
    than ``ps_max_controls``, the model is fitted on all treated rows plus a uniform
    random sample of that many candidates (drawn with ``seed``; this shifts only the
    intercept, i.e. every logit score by the same constant, which changes neither the
    within-stratum ranking nor the caliper in SD units), and scored on every row.

    Matching covariates: ``rate_lag1``–``rate_lag3``; the prior-year rate (0 when
    missing) with a missing indicator and the prior-year tier (with a ``missing``
    level — the prior year is null in the extract's first year); grade; sex,
    race/ethnicity, FRL, ELL, SWD.

    Greedy nearest-neighbour matching on the logit propensity score inside every stratum
    (:func:`pipeline.matching.nearest.greedy_nn_1d`; MatchIt's algorithm): treated
    students in descending score order (ties: ``student_key`` order), ``ratio``
    comparisons each (default 3), **with replacement within a stratum** (default), caliper
    ``0.2`` SD of the logit score (SD over all eligible treated and candidate rows).

    Why 3:1 with replacement: first-visited students are selected on very low recent
    attendance, so in a district-month-band stratum only a few candidates resemble the
    most extreme treated students.  Without replacement the first treated students use
    those up and the later ones get worse matches or none; with replacement every
    treated student gets its own nearest candidates.  On the default synthetic extract
    (645 treated students, same-district pool, caliper 0.2) 3:1 with replacement matched
    414 treated students with max |SMD| 0.16 and a comparison effective sample size of
    828, against 381 / 0.26 / 572 for 3:1 without replacement and 414 / 0.14 / 414 for
    1:1 with replacement: three comparisons double the effective sample size of 1:1 at
    a small cost in balance (variance factor of the comparison mean ``1 + 1/k``; the gain
    flattens beyond three).  A comparison student reused within a stack carries the
    MatchIt with-replacement weight, split across its rows (one per treated student it
    serves); the estimation stage should cluster standard errors by student.  Across
    strata (different months) a student may serve again in another stack — the usual
    stacked risk-set design.

Weights
    MatchIt's ATT weights with every (stack, comparison student) as a unit: treated
    rows weigh 1; a comparison weighs ``1 / k_i`` for its treated student's ``k_i``
    comparisons, scaled so that comparison weights sum to the number of comparison
    units.  All rows of a stacked student carry the weight of its unit.

Output (:func:`stack_panels`)
    All panel rows of each matched student within the event window (default ``-12 …
    18`` school months around the stack's ``m``), with ``match_id`` (matched set),
    ``stack_id`` (the stratum, ``"<district>|<m>|<grade band>"``; district ``*`` for the
    pooled pools), ``role``, ``stack_event_time = school_month - m``, ``weight`` and
    ``censored``.  Comparison students take their treated student's ``m`` as a pseudo
    event month.

Determinism
    Rows are processed in ``(stratum, student_key)`` order, so results do not depend on
    the panel's row order; the only randomness is the propensity-model subsample, drawn
    from ``seed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline import balance as bal
from pipeline.matching.nearest import greedy_nn_1d, treated_order
from pipeline.matching.propensity import (
    categorical_levels,
    design_columns,
    design_matrix,
    fit_propensity,
    linear_predictor,
)
from pipeline.runner import progress

__all__ = [
    "MATCH_COLUMNS",
    "PANEL_MATCH_COLUMNS",
    "RiskSetMatcher",
    "RiskSetResult",
    "RiskSetSpec",
    "riskset_match",
    "stack_panels",
]

POOLS = ("same_district", "program_districts", "non_program_districts")

#: Panel columns risk-set matching reads.
PANEL_MATCH_COLUMNS = [
    "student_key",
    "school_month",
    "district_code",
    "leap_district",
    "grade",
    "grade_band",
    "sex",
    "race_ethnicity",
    "frl",
    "ell",
    "swd",
    "first_visit_school_month",
    "prior_year_rate",
    "prior_year_tier",
    "rate_lag1",
    "rate_lag2",
    "rate_lag3",
]

#: Columns the stacked output adds to the panel's.
MATCH_COLUMNS = ["match_id", "stack_id", "role", "stack_event_time", "weight", "censored"]

#: Matching covariates (after the derived prior-year columns are added).
COVARIATES = [
    "rate_lag1",
    "rate_lag2",
    "rate_lag3",
    "prior_year_rate_filled",
    "prior_year_missing",
    "prior_year_tier_filled",
    "grade",
    "sex",
    "race_ethnicity",
    "frl",
    "ell",
    "swd",
]
LAGS = ["rate_lag1", "rate_lag2", "rate_lag3"]


@dataclass(frozen=True)
class RiskSetSpec:
    """Parameters of risk-set matching (``params.yaml`` section ``match``)."""

    pool: str = "same_district"
    exact: tuple[str, ...] | None = None  # None: district for same_district, else none
    ratio: int = 3
    replace: bool = True
    caliper: float | None = 0.2
    m_order: str = "largest"
    window: tuple[int, int] = (-12, 18)
    ps_max_controls: int = 250_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"params.yaml match.pool must be one of {POOLS}, not {self.pool!r}")
        if int(self.ratio) != self.ratio or self.ratio < 1:
            raise ValueError(
                f"params.yaml match.ratio must be a positive integer, not {self.ratio!r}"
            )
        if self.caliper is not None and not self.caliper > 0:
            raise ValueError(
                f"params.yaml match.caliper must be positive or null, not {self.caliper!r}"
            )
        lo, hi = self.window
        if not lo <= 0 <= hi:
            raise ValueError(f"params.yaml match.window must contain 0, not {self.window!r}")
        if self.pool != "same_district" and "district_code" in (self.exact or ()):
            raise ValueError(
                "params.yaml match.exact: exact matching on district_code needs "
                "pool = same_district"
            )

    @property
    def exact_columns(self) -> list[str]:
        if self.exact is None:
            return ["district_code"] if self.pool == "same_district" else []
        # the first-visit month and the grade band are always exact
        return [c for c in self.exact if c not in ("school_month", "grade_band")]

    @classmethod
    def from_params(cls, section: dict) -> RiskSetSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"params.yaml match: unknown key(s) {sorted(unknown)}")
        kw = dict(section)
        if "window" in kw:
            kw["window"] = tuple(int(v) for v in kw["window"])
        if kw.get("exact") is not None:
            kw["exact"] = tuple(kw["exact"])
        return cls(**kw)


@dataclass
class RiskSetResult:
    """Outcome of :func:`riskset_match`.

    Attributes
    ----------
    matches : DataFrame
        One row per member of a matched set: ``match_id, stack_id, student_key, role,
        event_school_month, weight, distance`` (logit propensity score at ``m``).
    treated : DataFrame
        One row per treated student: ``student_key, first_visit_school_month,
        district_code, grade_band, prior_year_tier, status, n_comparisons`` with
        ``status`` one of ``matched``, ``not_in_membership`` (no baseline history at
        ``m``), ``no_candidates`` (no eligible candidate in the stratum),
        ``no_match_in_caliper``.
    balance : DataFrame
        :func:`pipeline.balance.balance_table` at ``m``: eligible treated vs all
        candidates before, matched sets (weighted) after.
    caliper : float or None
        Caliper in logit units.
    """

    matches: pd.DataFrame
    treated: pd.DataFrame
    balance: pd.DataFrame
    caliper: float | None
    info: dict = field(default_factory=dict)

    def summary_table(self) -> pd.DataFrame:
        """Counts of treated students by district, grade band and prior-year tier."""
        t = self.treated.copy()
        keys = ["district_code", "grade_band", "prior_year_tier"]
        for k in keys:
            t[k] = t[k].astype(object).where(t[k].notna(), "missing")
        t["n"] = 1
        t["full"] = (t["n_comparisons"] >= self.info.get("ratio", 1)).astype(int)
        wide = t.pivot_table(
            index=keys, columns="status", values="n", aggfunc="sum", fill_value=0, observed=True
        )
        for s in STATUSES:
            if s not in wide.columns:
                wide[s] = 0
        wide = wide[list(STATUSES)]
        wide.columns = [f"n_{s}" for s in STATUSES]
        full = t.groupby(keys, observed=True)["full"].sum().rename("n_matched_full_ratio")
        out = wide.join(full)
        out.insert(0, "n_treated", out[[f"n_{s}" for s in STATUSES]].sum(axis=1))
        out = out.reset_index()
        total = out.drop(columns=keys).sum().to_frame().T
        for k in keys:
            total[k] = "ALL"
        out = pd.concat([out, total[out.columns]], ignore_index=True)
        return out.astype({c: "int64" for c in out.columns if c.startswith("n_")})


STATUSES = ("matched", "not_in_membership", "no_candidates", "no_match_in_caliper")


def _check_panel(panel: pd.DataFrame, name: str = "panel") -> None:
    missing = [c for c in PANEL_MATCH_COLUMNS if c not in panel.columns]
    if missing:
        raise KeyError(f"{name}: missing column(s) for matching: {', '.join(missing)}")
    if panel.duplicated(["student_key", "school_month"]).any():
        raise ValueError(f"{name}: duplicate (student_key, school_month) rows")


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def _prepare(rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index)
    for c in LAGS:
        out[c] = rows[c].astype("float64")
    py = rows["prior_year_rate"].astype("float64")
    out["prior_year_missing"] = py.isna().astype("float64")
    out["prior_year_rate_filled"] = py.fillna(0.0)
    tier = rows["prior_year_tier"].astype(object)
    out["prior_year_tier_filled"] = tier.where(tier.notna(), "missing").astype("category")
    for c in ("grade", "sex", "race_ethnicity", "district_code", "grade_band"):
        out[c] = rows[c].astype("category")
    for c in ("frl", "ell", "swd"):
        v = rows[c]
        if v.isna().any():
            raise ValueError(f"panel: column '{c}' has {int(v.isna().sum())} missing value(s)")
        out[c] = v.astype(bool).astype("float64")
    out["school_month_cat"] = rows["school_month"].astype("int64").astype("category")
    return out


class PropensityCache:
    """Fitted propensity models keyed by a fingerprint of their design matrix.

    The model depends on the candidate pool (and the exact-matching columns), not on the
    caliper, ratio or replacement, and its fit is most of a matching run's time. Passing
    one cache to several :func:`riskset_match` calls that differ only in those settings
    fits each distinct model once. The key hashes the whole design matrix and treatment
    vector, so a reused fit is the fit that would have been made.
    """

    def __init__(self, max_size: int = 6) -> None:
        self.max_size = max_size
        self._fits: dict[tuple, object] = {}
        self.hits = 0

    def fit(self, X, treat):
        A = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        y = np.ascontiguousarray(np.asarray(treat).astype(np.int8))
        h = hashlib.blake2b(A.tobytes(), digest_size=20)
        h.update(y.tobytes())
        cols = tuple(X.columns) if isinstance(X, pd.DataFrame) else ()
        key = (cols, A.shape, h.hexdigest())
        if key in self._fits:
            self.hits += 1
            return self._fits[key]
        while len(self._fits) >= self.max_size:
            self._fits.pop(next(iter(self._fits)))
        self._fits[key] = fit_propensity(X, treat)
        return self._fits[key]


@dataclass
class RiskSetWork:
    """The rows risk-set matching works on (treated rows at ``m`` and their candidates).

    ``idx`` are positions in the panel (reset index), in the deterministic matching order
    (stratum, then student); ``work`` the prepared covariates of those rows; ``work_t``
    whether a row is a treated student's row at ``m``; ``work_s`` its stratum code.
    """

    idx: np.ndarray
    work: pd.DataFrame
    work_t: np.ndarray
    work_s: np.ndarray
    exact: list[str]
    strat_cols: list[str]
    t_strata: np.ndarray
    covs_ps: list[str]
    levels: dict
    ever: pd.DataFrame
    t_row: np.ndarray
    t_ok: np.ndarray


def riskset_work(p: pd.DataFrame, spec: RiskSetSpec) -> RiskSetWork:
    """Treated rows, candidate rows, strata and covariates of risk-set matching.

    ``p`` is the panel with a fresh ``RangeIndex``. Shared by :func:`riskset_match` and
    the design bootstrap (:mod:`pipeline.design_bootstrap`), which re-fits the propensity
    model and re-matches on these rows in every draw.
    """
    sm = p["school_month"].to_numpy(dtype=np.int64)
    fv_s = p["first_visit_school_month"].astype("float64")
    fv = fv_s.to_numpy()
    lags_ok = np.logical_and.reduce([p[c].notna().to_numpy() for c in LAGS])

    # --- treated students and their rows at m ---------------------------------------
    ever = p.loc[~np.isnan(fv), ["student_key", "first_visit_school_month"]].drop_duplicates(
        "student_key"
    )
    t_row = (fv == sm) & ~np.isnan(fv)
    t_ok = t_row & lags_ok
    months = np.unique(sm[t_ok])

    # --- candidate rows ---------------------------------------------------------------
    cand = np.isin(sm, months) & lags_ok & (np.isnan(fv) | (fv > sm))
    leap = p["leap_district"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if spec.pool == "program_districts":
        cand &= leap
    elif spec.pool == "non_program_districts":
        cand &= ~leap

    # --- strata -------------------------------------------------------------------------
    exact = spec.exact_columns
    for c in exact:
        if c not in p.columns:
            raise KeyError(f"params.yaml match.exact: panel has no column '{c}'")
    strat_cols = [*exact, "school_month", "grade_band"]
    use = t_ok | cand
    sub = p.loc[use, strat_cols]
    key = np.zeros(int(use.sum()), dtype=np.int64)
    for c in strat_cols:
        codes, uniq = _codes(sub[c])
        key = key * (len(uniq) + 1) + codes + 1
    stratum = np.full(len(p), -1, dtype=np.int64)
    stratum[use] = key
    t_strata = np.unique(stratum[t_ok])
    cand &= np.isin(stratum, t_strata)

    idx = np.nonzero(t_ok | cand)[0]
    # deterministic order: stratum, then student_key
    srt = pd.DataFrame({"s": stratum[idx], "k": p["student_key"].iloc[idx].astype(str).to_numpy()})
    idx = idx[srt.sort_values(["s", "k"], kind="stable").index.to_numpy()]
    work = _prepare(p.iloc[idx])
    stratum_covs = [c for c in exact if c not in (*COVARIATES, "school_month", "grade_band")]
    stratum_covs += ["school_month_cat", "grade_band"]
    for c in exact:
        if c not in work.columns:
            work[c] = p[c].iloc[idx].astype("category").to_numpy()
    covs_ps = COVARIATES + stratum_covs
    levels = categorical_levels(work, covs_ps)
    return RiskSetWork(
        idx, work, t_ok[idx], stratum[idx], exact, strat_cols, t_strata, covs_ps, levels,
        ever, t_row, t_ok,
    )  # fmt: skip


def match_in_strata(
    lp: np.ndarray,
    work_t: np.ndarray,
    work_s: np.ndarray,
    spec: RiskSetSpec,
    cal: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy nearest-neighbour matching on ``lp`` within each stratum.

    Rows must be ordered by stratum. Returns ``mm`` (treated × ratio positions of the
    matched rows, ``-1`` for none), ``no_cand`` (treated with no candidate in the stratum)
    and ``t_pos`` (positions of the treated rows).
    """
    bounds = np.flatnonzero(np.diff(work_s)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(work_s)]])
    ratio = int(spec.ratio)
    t_pos = np.nonzero(work_t)[0]
    mm = np.full((len(t_pos), ratio), -1, dtype=np.int64)
    where_t = np.full(len(work_t), -1, dtype=np.int64)
    where_t[t_pos] = np.arange(len(t_pos))
    no_cand = np.zeros(len(t_pos), dtype=bool)
    rng_order = np.random.default_rng(spec.seed)
    for a, b in progress(
        zip(starts, ends, strict=True),
        "matching (district x month x grade band)",
        total=len(starts),
        unit="stratum",
    ):
        sl = np.arange(a, b)
        it = sl[work_t[a:b]]
        if len(it) == 0:
            continue
        ic = sl[~work_t[a:b]]
        if len(ic) == 0:
            no_cand[where_t[it]] = True
            continue
        order_t = treated_order(lp[it], spec.m_order, len(it), rng_order)
        res = greedy_nn_1d(
            lp[it],
            lp[ic],
            order=order_t,
            ratio=ratio,
            replace=spec.replace,
            caliper=cal,
            treated_rank=it,
            control_rank=ic,
        )
        ok = res >= 0
        res[ok] = ic[res[ok]]
        mm[where_t[it]] = res
    return mm, no_cand, t_pos


@dataclass
class ScoredRiskSet:
    """The risk-set rows of one pool with their logit propensity scores.

    What :func:`riskset_match` computes before it matches, and all that the matching
    needs besides the caliper, ratio, replacement and order: :class:`RiskSetMatcher`
    keeps it across specs that differ only in those.
    """

    rs: RiskSetWork
    lp: np.ndarray
    model: object
    n_candidates: int


def _scored(p: pd.DataFrame, spec: RiskSetSpec, ps_cache: PropensityCache | None) -> ScoredRiskSet:
    rs = riskset_work(p, spec)
    work, work_t = rs.work, rs.work_t
    n_c = int((~work_t).sum())
    if n_c == 0 or not work_t.any():
        return ScoredRiskSet(rs, np.zeros(len(work)), None, n_c)
    fit_rows = np.arange(len(work))
    if n_c > spec.ps_max_controls:
        rng = np.random.default_rng(spec.seed)
        cpos = np.nonzero(~work_t)[0]
        pick = np.sort(rng.choice(cpos, size=spec.ps_max_controls, replace=False))
        fit_rows = np.sort(np.concatenate([np.nonzero(work_t)[0], pick]))
    X = design_matrix(work.iloc[fit_rows], rs.covs_ps, levels=rs.levels, name="panel")
    if ps_cache is None:
        model = fit_propensity(X, work_t[fit_rows])
    else:
        model = ps_cache.fit(X, work_t[fit_rows])
    del X
    lp = linear_predictor(work, rs.covs_ps, model, levels=rs.levels)
    return ScoredRiskSet(rs, lp, model, n_c)


class RiskSetMatcher:
    """Risk-set matching of one panel under several specs, sharing the work they share.

    The panel is checked and re-indexed once; the risk-set rows, the propensity model and
    the scores depend only on the pool, the exact-matching columns, the seed and
    ``ps_max_controls``, so specs that differ only in caliper, ratio, replacement or
    order (the robustness table's calipers and ratios) reuse them and only re-match.
    ``matcher.match(spec)`` returns exactly what ``riskset_match(panel, spec)`` returns.

    Parameters
    ----------
    panel : DataFrame
        The student-month panel (at least :data:`PANEL_MATCH_COLUMNS`).
    ps_cache : PropensityCache, optional
        Reuse propensity models fitted on identical designs.
    keep : int
        Scored pools kept (the oldest is dropped beyond it; each holds the prepared
        covariates of the pool's rows).
    """

    def __init__(
        self, panel: pd.DataFrame, *, ps_cache: PropensityCache | None = None, keep: int = 1
    ) -> None:
        _check_panel(panel)
        self.p = panel.reset_index(drop=True)
        self.ps_cache = ps_cache
        self.keep = max(int(keep), 1)
        self._scored: dict[tuple, ScoredRiskSet] = {}

    @staticmethod
    def _key(spec: RiskSetSpec) -> tuple:
        return (spec.pool, tuple(spec.exact_columns), spec.seed, spec.ps_max_controls)

    def scored(self, spec: RiskSetSpec) -> ScoredRiskSet:
        """The pool's rows and scores for ``spec`` (computed once per pool)."""
        key = self._key(spec)
        if key not in self._scored:
            while len(self._scored) >= self.keep:
                self._scored.pop(next(iter(self._scored)))
            self._scored[key] = _scored(self.p, spec, self.ps_cache)
        return self._scored[key]

    def match(self, spec: RiskSetSpec | None = None, *, balance: bool = True) -> RiskSetResult:
        """:func:`riskset_match` on this panel (``balance=False``: no balance table)."""
        spec = RiskSetSpec() if spec is None else spec
        sc = self.scored(spec)
        return _match_scored(self.p, spec, sc, balance=balance)


def riskset_match(
    panel: pd.DataFrame,
    spec: RiskSetSpec | None = None,
    *,
    ps_cache: PropensityCache | None = None,
) -> RiskSetResult:
    """Risk-set matching of first-visited students (see the module docstring).

    Parameters
    ----------
    panel : DataFrame
        The student-month panel (at least :data:`PANEL_MATCH_COLUMNS`).
    spec : RiskSetSpec
    ps_cache : PropensityCache, optional
        Reuse propensity models already fitted on the same design (same results).

    Returns
    -------
    RiskSetResult
    """
    return RiskSetMatcher(panel, ps_cache=ps_cache).match(spec)


def _match_scored(
    p: pd.DataFrame, spec: RiskSetSpec, sc: ScoredRiskSet, *, balance: bool = True
) -> RiskSetResult:
    rs, lp, model, n_c = sc.rs, sc.lp, sc.model, sc.n_candidates
    idx, work, work_t, work_s = rs.idx, rs.work, rs.work_t, rs.work_s
    exact, strat_cols, t_strata, levels = rs.exact, rs.strat_cols, rs.t_strata, rs.levels
    ever, t_row, t_ok = rs.ever, rs.t_row, rs.t_ok
    cal = None
    if spec.caliper is not None and len(lp) > 1:
        cal = float(spec.caliper) * float(np.std(lp, ddof=1))

    # --- greedy matching within strata --------------------------------------------------
    ratio = int(spec.ratio)
    mm, no_cand, t_pos = match_in_strata(lp, work_t, work_s, spec, cal)

    # --- matched sets, weights ------------------------------------------------------------
    keys_w = p["student_key"].iloc[idx].astype(str).to_numpy(dtype=object)
    k = (mm >= 0).sum(axis=1)
    has = np.nonzero(k > 0)[0]
    rows_t, rows_c, mid_t, mid_c, w_c = _matched_sets(mm, k, has, t_pos, work_s)
    work_sm = p["school_month"].to_numpy(dtype=np.int64)[idx]
    matches = pd.DataFrame(
        {
            "match_id": np.concatenate([mid_t, mid_c]).astype(np.int64),
            "stack_id": _stack_labels(p.iloc[idx[np.concatenate([rows_t, rows_c])]], exact),
            "student_key": np.concatenate([keys_w[rows_t], keys_w[rows_c]]),
            "role": ["treated"] * len(rows_t) + ["comparison"] * len(rows_c),
            "event_school_month": np.concatenate([work_sm[rows_t], work_sm[rows_c]]).astype(
                np.int64
            ),
            "weight": np.concatenate([np.ones(len(rows_t)), w_c]),
            "distance": np.concatenate([lp[rows_t], lp[rows_c]]),
        }
    )
    matches["stack_id"] = matches["stack_id"].astype("string")
    matches["student_key"] = matches["student_key"].astype("string")
    matches["role"] = matches["role"].astype("string")
    matches = matches.sort_values(
        ["match_id", "role", "student_key"], ascending=[True, False, True], kind="stable"
    )
    matches = matches.reset_index(drop=True)

    # --- treated status -------------------------------------------------------------------
    treated = _treated_status(p, ever, t_row, t_ok, idx, t_pos, k, no_cand, keys_w)

    # --- balance --------------------------------------------------------------------------
    if balance:
        bal_tab = _balance(work, work_t, lp, rows_t, rows_c, w_c, levels)
    else:
        bal_tab = pd.DataFrame()

    info = {
        "pool": spec.pool,
        "exact": strat_cols,
        "ratio": ratio,
        "replace": spec.replace,
        "caliper_sd": spec.caliper,
        "caliper_logit": cal,
        "n_candidate_rows": n_c,
        "n_strata_with_treated": len(t_strata),
        "ps_fit_rows": 0 if model is None else int(len(model.ps)),
    }
    return RiskSetResult(matches, treated, bal_tab, cal, info)


def _matched_sets(mm, k, has, t_pos, work_s):
    """Rows (positions in the work rows), matched-set ids and comparison weights.

    Comparison units are (stack, student) pairs; with replacement a pair can serve several
    treated students of its stack (MatchIt: sum of ``1/k_i``, then scaled so that
    comparison weights add up to the number of comparison units).
    """
    sel = mm[has]
    ok = sel >= 0
    used = sel[ok]
    n_pairs = len(np.unique(used)) if used.size else 0  # a work row is one (stack, student)
    scale = n_pairs / len(has) if len(has) else 1.0
    mids = np.arange(1, len(has) + 1, dtype=np.int64)
    rows_t = t_pos[has].astype(np.int64)
    rows_c = used.astype(np.int64)  # row-major: each treated student's matches in order
    mid_c = np.repeat(mids, ok.sum(axis=1))
    w_c = np.repeat(scale / k[has], ok.sum(axis=1)).astype(np.float64)
    return rows_t, rows_c, mids, mid_c, w_c


def _stack_labels(rows: pd.DataFrame, exact: list[str]) -> np.ndarray:
    dist = (
        rows["district_code"].astype(str).to_numpy(dtype=object)
        if "district_code" in exact
        else np.full(len(rows), "*", dtype=object)
    )
    extra = [c for c in exact if c != "district_code"]
    parts = [dist]
    for c in extra:
        parts.append(rows[c].astype(str).to_numpy(dtype=object))
    parts.append(rows["school_month"].astype("int64").astype(str).to_numpy(dtype=object))
    parts.append(rows["grade_band"].astype(str).to_numpy(dtype=object))
    out = parts[0]
    for q in parts[1:]:
        out = out + "|" + q
    return np.asarray(out, dtype=object)


def _treated_status(p, ever, t_row, t_ok, idx, t_pos, k, no_cand, keys_w) -> pd.DataFrame:
    # descriptors at m (or, without a row at m, the student's row closest before m, else
    # the first one after)
    keys = ever["student_key"].astype(str).to_numpy()
    fvm = ever["first_visit_school_month"].astype("int64").to_numpy()
    desc_cols = ["district_code", "grade_band", "prior_year_tier"]
    sub = p.loc[p["student_key"].isin(keys), ["student_key", "school_month", *desc_cols]].copy()
    sub["student_key"] = sub["student_key"].astype(str)
    sub = sub.merge(pd.DataFrame({"student_key": keys, "m": fvm}), on="student_key")
    d = sub["school_month"].astype("int64") - sub["m"]
    sub["rank"] = np.where(d <= 0, -d * 2, d * 2 + 1)
    best = sub.sort_values(["student_key", "rank"], kind="stable").drop_duplicates("student_key")
    out = pd.DataFrame({"student_key": keys, "first_visit_school_month": fvm})
    out = out.merge(best[["student_key", *desc_cols]], on="student_key", how="left")
    status = pd.Series("not_in_membership", index=out.index, dtype=object)
    ncomp = pd.Series(0, index=out.index, dtype="int64")
    tk = pd.Series(np.arange(len(t_pos)), index=keys_w[t_pos].astype(str))
    pos = out["student_key"].map(tk)
    has = pos.notna().to_numpy()
    pv = pos[has].astype("int64").to_numpy()
    st = np.where(
        k[pv] > 0, "matched", np.where(no_cand[pv], "no_candidates", "no_match_in_caliper")
    )
    status[has] = st
    ncomp[has] = k[pv]
    out["status"] = status.to_numpy()
    out["n_comparisons"] = ncomp.to_numpy()
    for c in desc_cols:
        out[c] = out[c].astype("string")
    out["student_key"] = out["student_key"].astype("string")
    return out.sort_values("student_key", kind="stable").reset_index(drop=True)


_BALANCE_NAMES = {"prior_year_tier_filled": "prior_year_tier"}


def _balance(work, work_t, lp, rows_t, rows_c, w_c, levels) -> pd.DataFrame:
    bal_covs = COVARIATES
    before_t = work_t.astype(bool)
    after_rows = np.concatenate([rows_t, rows_c])
    after_t = np.concatenate([np.ones(len(rows_t), bool), np.zeros(len(rows_c), bool)])
    after_w = np.concatenate([np.ones(len(rows_t)), w_c])
    frames = [
        bal.balance_table(
            pd.DataFrame({"logit_propensity_score": lp}),
            before_t,
            pd.DataFrame({"logit_propensity_score": lp[after_rows]}),
            after_t,
            after_w,
        )
    ]
    for name, col, x in design_columns(
        work, bal_covs, drop_first=False, levels=levels, name="panel"
    ):
        if name != col:  # a level of a categorical covariate: "<covariate>=<level>"
            name = f"{_BALANCE_NAMES.get(col, col)}={name[len(col) :]}"
            if bal.repeats_missing_indicator(name, x, work.get("prior_year_missing")):
                continue  # the prior_year_missing row already lists these students
        if name == "prior_year_rate_filled":
            # balance the observed prior-year rate among rows that have one
            have = work["prior_year_missing"].to_numpy() == 0
            xb = pd.DataFrame({"prior_year_rate": x[have]})
            sel = have[after_rows]
            xa = pd.DataFrame({"prior_year_rate": x[after_rows][sel]})
            frames.append(bal.balance_table(xb, before_t[have], xa, after_t[sel], after_w[sel]))
            continue
        frames.append(
            bal.balance_table(
                pd.DataFrame({name: x}),
                before_t,
                pd.DataFrame({name: x[after_rows]}),
                after_t,
                after_w,
            )
        )
    return pd.concat(frames, ignore_index=True)


def stack_panels(
    panel_rows: pd.DataFrame,
    matches: pd.DataFrame,
    window: tuple[int, int] = (-12, 18),
) -> pd.DataFrame:
    """Stack the panels of the matched students (the ``match`` stage's output).

    Parameters
    ----------
    panel_rows : DataFrame
        Panel rows (all columns) of at least the matched students.
    matches : DataFrame
        :attr:`RiskSetResult.matches`.
    window : (int, int)
        Inclusive range of ``stack_event_time`` kept.

    Returns
    -------
    DataFrame
        Panel columns followed by :data:`MATCH_COLUMNS`, sorted by ``match_id``, role
        (treated first), ``student_key``, ``school_month``.
    """
    lo, hi = window
    m = matches[["match_id", "stack_id", "student_key", "role", "event_school_month", "weight"]]
    rows = panel_rows[panel_rows["student_key"].isin(m["student_key"].unique())]
    out = rows.merge(m, on="student_key", how="inner", validate="many_to_many")
    et = out["school_month"].astype("int64") - out["event_school_month"]
    out = out.loc[(et >= lo).to_numpy() & (et <= hi).to_numpy()].copy()
    out["stack_event_time"] = (
        out["school_month"].astype("int64") - out["event_school_month"]
    ).astype("int32")
    fv = out["first_visit_school_month"].astype("float64").to_numpy()
    smv = out["school_month"].astype("int64").to_numpy()
    out["censored"] = (
        (out["role"] == "comparison").to_numpy()
        & ~np.isnan(fv)
        & (smv >= np.nan_to_num(fv, nan=np.inf))
    )
    out = out.drop(columns=["event_school_month"])
    out["role_order"] = (out["role"] != "treated").astype(int)
    out = out.sort_values(
        ["match_id", "role_order", "student_key", "school_month"], kind="stable"
    ).drop(columns="role_order")
    panel_cols = [c for c in panel_rows.columns if c not in MATCH_COLUMNS]
    out = out[panel_cols + MATCH_COLUMNS].reset_index(drop=True)
    out["match_id"] = out["match_id"].astype("int64")
    out["weight"] = out["weight"].astype("float64")
    out["censored"] = out["censored"].astype(bool)
    return out
