"""Stress-test worlds: generator knobs that break the evaluation design's assumptions.

The default generator builds the world the matched design was made for: referral looks
at the last two recorded months plus noise, contact success is random, exits are random,
there are no school or district shocks, every program district starts together and
effects do not depend on who is referred.  Each knob here (``synthesize.worlds`` in
``params.yaml``, :class:`WorldConfig`) changes one of those, and every knob is off by
default — with all of them off the extract is byte-identical to the default generator's.

``referral``
    What the referral score ranks on (low attendance ranks high):

    * ``recent`` — the last two recorded months (``0.6 × lag 1 + 0.4 × lag 2``; default);
    * ``level`` — the persistent level: the mean of the prior school year's rate and of
      every recorded month before the list (the student's own mean);
    * ``year_to_date`` — the rate over the school year so far (the prior year's rate in
      September and over the summer);
    * ``district_window`` — the mean of the last ``w`` recorded months, with ``w`` 1 to 4
      differing by program district (``1 + k mod 4`` for the ``k``-th program district).

``family_sd``, ``reach_level``, ``reach_family``
    Reachability.  An unrecorded family factor ``f ~ N(0, 1)`` moves attendance (its
    logit by ``family_sd × f`` in every month) and contact success: the logit of the
    chance that an attempt reaches the family is ``logit(contact_rate) + reach_level ×
    (level − 80) / 10 + reach_family × f``, where ``level`` is the student's recorded rate
    over every month before the attempt (80, near the referred students' typical level,
    keeps the overall contact rate close to ``contact_rate``).

``exit_base``, ``exit_attendance``, ``exit_visited``
    Attrition.  After each school month a student leaves the state's schools with hazard
    ``exit_base × exp(exit_attendance × (100 − rate) / 10 + exit_visited × visited)``,
    ``rate`` the month's attendance without the program and ``visited`` whether a home
    visit was completed by then; the spell ends on the month's last school day, later
    spells and visits disappear (a student who leaves before the first completed visit is
    never treated).

``school_month_sd``, ``district_month_sd``
    Shocks on the logit of attendance shared by every student of a school (district) in a
    school month, independent across months.

``staggered_months``
    Program districts join at different months: the ``k``-th of ``K`` program districts
    starts ``round(k × staggered_months / (K − 1))`` calendar months after
    ``program.start_month`` (its yearly capacity spread over its own months).

``gains``
    Selection on gains.  A student-level factor ``g ~ N(0, 1)`` (unrecorded: the home
    visitor's judgement of who would respond) adds ``10 × gains × g`` to the referral
    score and multiplies the student's effect by ``exp(0.4 gains g − 0.08 gains²)`` (mean
    one over all students), so the students most likely to be referred gain most.

The truth stays the one of :mod:`pipeline.synth.effects`: computed from both potential
outcomes of the treated students actually observed, whatever the world.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import special

from pipeline.config import ConfigError

REFERRALS = ("recent", "level", "year_to_date", "district_window")
#: Recorded level (percent) at which reachability leaves the contact rate unchanged.
LEVEL_CENTER = 80.0


@dataclass(frozen=True)
class WorldConfig:
    """The ``synthesize.worlds`` section of ``params.yaml`` (all off by default).

    Parameters
    ----------
    referral
        One of :data:`REFERRALS`.
    family_sd, reach_level, reach_family
        Reachability (logit scale; see the module docstring).
    exit_base, exit_attendance, exit_visited
        Attrition: monthly hazard and its log hazard ratios.
    school_month_sd, district_month_sd
        Shared monthly shocks (logit scale).
    staggered_months
        Spread of the program districts' start months (calendar months).
    gains
        Strength of selection on gains.
    """

    referral: str = "recent"
    family_sd: float = 0.0
    reach_level: float = 0.0
    reach_family: float = 0.0
    exit_base: float = 0.0
    exit_attendance: float = 0.0
    exit_visited: float = 0.0
    school_month_sd: float = 0.0
    district_month_sd: float = 0.0
    staggered_months: int = 0
    gains: float = 0.0

    def __post_init__(self) -> None:
        if self.referral not in REFERRALS:
            raise ConfigError(
                f"params.yaml: synthesize.worlds.referral must be one of {list(REFERRALS)}, "
                f"not {self.referral!r}"
            )
        for name in ("family_sd", "school_month_sd", "district_month_sd", "exit_base"):
            if getattr(self, name) < 0:
                raise ConfigError(f"params.yaml: synthesize.worlds.{name} must be ≥ 0")
        if self.exit_base >= 1:
            raise ConfigError("params.yaml: synthesize.worlds.exit_base must be below 1")
        if int(self.staggered_months) != self.staggered_months or self.staggered_months < 0:
            raise ConfigError(
                "params.yaml: synthesize.worlds.staggered_months must be a whole number ≥ 0"
            )

    @property
    def is_default(self) -> bool:
        """True when every knob is off (the default generator)."""
        return self == WorldConfig()

    @property
    def reach(self) -> bool:
        return self.reach_level != 0 or self.reach_family != 0

    @classmethod
    def from_params(cls, p: dict | None) -> WorldConfig:
        kw = dict(p or {})
        unknown = set(kw) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(
                f"params.yaml: synthesize.worlds has unknown key(s) {sorted(unknown)}"
            )
        return cls(**kw)


@dataclass
class StudentFactors:
    """Unrecorded student-level factors of a world (``None`` when the world has none)."""

    family: np.ndarray | None = None  # [N]
    gain: np.ndarray | None = None  # [N]


def student_factors(ss: np.random.SeedSequence, n_students: int, cfg: WorldConfig):
    """Draw the family and gain factors and return them with a generator for the rest.

    ``ss`` is a child of the extract's seed sequence reserved for the worlds; the family
    factor, the gain factor, the shocks and the exits each take their own stream, so
    turning one knob on leaves the others' draws unchanged.
    """
    r_family, r_gain, r_shock, r_exit = (np.random.default_rng(s) for s in ss.spawn(4))
    family = r_family.normal(0, 1, n_students) if (cfg.family_sd or cfg.reach_family) else None
    gain = r_gain.normal(0, 1, n_students) if cfg.gains else None
    return StudentFactors(family, gain), r_shock, r_exit


def attendance_terms(
    rng: np.random.Generator,
    cfg: WorldConfig,
    factors: StudentFactors,
    row_student: np.ndarray,
    row_school: np.ndarray,
    row_district: np.ndarray,
    row_t: np.ndarray,
    n_schools: int,
    n_districts: int,
    T: int,
) -> np.ndarray | None:
    """What the world adds to the logit of attendance of every membership row (``None``:
    nothing)."""
    add = np.zeros(row_t.size)
    on = False
    if cfg.family_sd and factors.family is not None:
        add += cfg.family_sd * factors.family[row_student]
        on = True
    if cfg.school_month_sd:
        add += rng.normal(0, cfg.school_month_sd, (n_schools, T))[row_school, row_t]
        on = True
    if cfg.district_month_sd:
        add += rng.normal(0, cfg.district_month_sd, (n_districts, T))[row_district, row_t]
        on = True
    return add if on else None


class RecordedRates:
    """Recorded attendance rates over ranges of school months, from cumulative sums of
    the student-by-month days (``n``, ``y`` as ``[N, T]``)."""

    def __init__(self, n: np.ndarray, y: np.ndarray, year_idx: np.ndarray):
        z = np.zeros((n.shape[0], 1), dtype=np.int64)
        self.cn = np.concatenate([z, np.cumsum(n, axis=1, dtype=np.int64)], axis=1)
        self.cy = np.concatenate([z, np.cumsum(y, axis=1, dtype=np.int64)], axis=1)
        self.year_idx = np.asarray(year_idx)

    def rate(self, a: int, b: int) -> np.ndarray:
        """Rate (percent) over months ``a ≤ t < b``; NaN without membership."""
        a, b = max(a, 0), max(b, 0)
        n = (self.cn[:, b] - self.cn[:, a]).astype(np.float64)
        y = (self.cy[:, b] - self.cy[:, a]).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, 100.0 * y / n, np.nan)

    def year_bounds(self, t: int) -> tuple[int, int]:
        """First month of ``t``'s school year and of the prior school year."""
        yi = self.year_idx[t]
        start = int(np.flatnonzero(self.year_idx == yi)[0])
        prev = np.flatnonzero(self.year_idx == yi - 1)
        return start, int(prev[0]) if prev.size else start

    def level(self, t: int) -> np.ndarray:
        """Every recorded month before ``t``."""
        return self.rate(0, t)

    def prior_year(self, t: int) -> np.ndarray:
        start, prev = self.year_bounds(t)
        return self.rate(prev, start)

    def year_to_date(self, t: int) -> np.ndarray:
        start, _ = self.year_bounds(t)
        ytd = self.rate(start, t)
        return np.where(np.isnan(ytd), self.prior_year(t), ytd)


def district_windows(n_program: int) -> np.ndarray:
    """Recent months each program district's referral looks at (1–4)."""
    return 1 + np.arange(n_program) % 4


def referral_base(
    cfg: WorldConfig,
    rates: RecordedRates,
    t_eff: int,
    recent: np.ndarray,
    district_now: np.ndarray,
    leap_idx: np.ndarray,
) -> np.ndarray:
    """Referral score before noise (higher = referred first) for ``cfg.referral``.

    ``recent`` is the default score (last two recorded months); missing inputs fall back
    to it.
    """
    if cfg.referral == "recent":
        return recent
    if cfg.referral == "level":
        lev = rates.level(t_eff)
        py = rates.prior_year(t_eff)
        py = np.where(np.isnan(py), lev, py)
        score = 100 - 0.5 * (py + lev)
    elif cfg.referral == "year_to_date":
        score = 100 - rates.year_to_date(t_eff)
    else:  # district_window
        score = np.full(recent.shape, np.nan)
        for k, d in enumerate(leap_idx):
            w = int(district_windows(len(leap_idx))[k])
            sel = district_now == d
            score[sel] = 100 - rates.rate(t_eff - w, t_eff)[sel]
    return np.where(np.isnan(score), recent, score)


def contact_probability(
    cfg: WorldConfig, base: float, level: np.ndarray, family: np.ndarray | None
) -> np.ndarray:
    """Chance that an attempt reaches the family (see the module docstring)."""
    level = np.nan_to_num(level, nan=LEVEL_CENTER)
    lg = special.logit(base) + cfg.reach_level * (level - LEVEL_CENTER) / 10.0
    if cfg.reach_family and family is not None:
        lg = lg + cfg.reach_family * family
    return special.expit(lg)


def start_offsets(n_program: int, spread: int) -> np.ndarray:
    """Calendar months after the program's start at which each program district joins."""
    if spread <= 0 or n_program <= 1:
        return np.zeros(n_program, dtype=np.int64)
    return np.round(np.arange(n_program) * spread / (n_program - 1)).astype(np.int64)


def gain_multiplier(cfg: WorldConfig, gain: np.ndarray) -> np.ndarray:
    """Effect multiplier under selection on gains (mean one over all students)."""
    s = cfg.gains
    return np.exp(0.4 * s * gain - 0.08 * s**2)


def exit_months(
    rng: np.random.Generator,
    cfg: WorldConfig,
    n: np.ndarray,
    y0: np.ndarray,
    visited: np.ndarray,
) -> np.ndarray:
    """School month after which each student leaves (``-1``: stays), from ``[N, T]`` days
    in membership, days present without the program and completed visits to date."""
    N, T = n.shape
    nn = n.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(nn > 0, 100.0 * y0 / nn, 100.0)
    h = cfg.exit_base * np.exp(
        cfg.exit_attendance * (100.0 - rate) / 10.0 + cfg.exit_visited * (visited > 0)
    )
    leave = (rng.random((N, T)) < np.clip(h, 0, 1)) & (n > 0)
    first = np.where(leave.any(axis=1), leave.argmax(axis=1), -1)
    return first.astype(np.int64)


def month_last_day(months, t: int) -> int:
    """Last instructional day (ordinal) of school month ``t``."""
    ords = months.ordinals[months.year_idx[t]]
    y, m = int(months.year[t]), int(months.month[t])
    m1 = (np.datetime64(f"{y:04d}-{m:02d}") + np.timedelta64(1, "M")).astype("datetime64[D]")
    return int(ords[np.searchsorted(ords, m1.astype(np.int64), side="left") - 1])


def apply_exits(
    exit_t: np.ndarray, months, spells: pd.DataFrame, rows: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """End every leaver's enrollment after its exit month.

    Returns the new spells (same index; later spells dropped, the open one closed on the
    exit month's last school day; spell numbers kept), a keep mask over the membership
    ``rows``, the spell renumbering (old → new, ``-1`` dropped) and each student's exit
    day (ordinal, ``-1`` none).
    """
    T = months.T
    last = np.array([month_last_day(months, t) for t in range(T)], dtype=np.int64)
    exit_day = np.where(exit_t >= 0, last[np.maximum(exit_t, 0)], -1)
    st = spells["student"].to_numpy()
    d = exit_day[st]
    has = d >= 0
    entry = spells["entry"].to_numpy()
    ex = spells["exit"].to_numpy()
    exit_year = np.where(exit_t >= 0, months.year_idx[np.maximum(exit_t, 0)], -1)[st]
    drop = has & (entry > d)
    # an open spell (exit −1) runs to the end of its own school year
    close = has & ~drop & (spells["year"].to_numpy() == exit_year) & ((ex < 0) | (ex > d))
    new = spells.copy()
    new.loc[close, "exit"] = d[close]
    renum = np.full(len(spells), -1, dtype=np.int64)
    renum[~drop] = np.arange(int((~drop).sum()))
    new = new[~drop].reset_index(drop=True)
    sp = rows["spell"].to_numpy()
    rs = st[sp]
    et = exit_t[rs]
    keep = ~drop[sp] & ((et < 0) | (rows["t"].to_numpy() <= et))
    return new, keep, renum, exit_day
