"""Referral and home visits in the program districts.

Each calendar month from the program's start (including July and August, when home
visitors kept working), every program district has a limited number of home-visit
attempts.  Students are referred from *recorded* attendance: the district ranks the
students it is responsible for who have not yet been reached by a referral score built
from their last two recorded school months (low attendance ranks high) plus noise, and
attempts the top of the list.  Some attempts do not reach the family (``attempted``);
those students stay on later lists.  A reached family may get follow-up visits.

Because selection rides on the last recorded months, visited students are caught in a
transitory dip, and their attendance recovers afterwards without any help: the mean
reversion the evaluation design must not mistake for an effect.  With
``unobserved_weight > 0`` the score also follows the current month's shock, which is not
yet recorded when the list is made: a selection no design that conditions on recorded
attendance can remove (used by the simulation study).  The stress-test worlds of
:mod:`pipeline.synth.worlds` change what the score ranks on, make contact success depend
on the student, stagger the districts' start and add selection on gains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.synth import worlds as wd
from pipeline.synth.attendance import Months
from pipeline.synth.config import ProgramConfig

MODES = ("in_person", "phone", "virtual")


@dataclass
class StudentMonths:
    """Student-by-month matrices aggregated over the student's schools."""

    n: np.ndarray  # days in membership, int16 [N, T]
    y0: np.ndarray  # days present without the program, int16 [N, T]
    spell: np.ndarray  # spell of record (most days; ties: first spell), int32 [N, T], -1 none
    district: np.ndarray  # district of record, int16 [N, T], -1 none

    def rate(self, t: int) -> np.ndarray:
        n = self.n[:, t].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, 100.0 * self.y0[:, t] / n, np.nan)


def student_months(
    rows: pd.DataFrame, spells: pd.DataFrame, n_students: int, T: int, y0: np.ndarray
) -> StudentMonths:
    sp = rows["spell"].to_numpy()
    t = rows["t"].to_numpy()
    st = spells["student"].to_numpy()[sp]
    n = rows["n"].to_numpy()
    n_mat = np.zeros((n_students, T), dtype=np.int16)
    y_mat = np.zeros((n_students, T), dtype=np.int16)
    np.add.at(n_mat, (st, t), n)
    np.add.at(y_mat, (st, t), y0)
    # spell of record: most days; ties go to the spell listed first
    order = np.lexsort((sp, -n, t, st))
    first = np.ones(order.size, dtype=bool)
    key = st[order] * T + t[order]
    first[1:] = key[1:] != key[:-1]
    rec = order[first]
    spell_mat = np.full((n_students, T), -1, dtype=np.int32)
    spell_mat[st[rec], t[rec]] = sp[rec]
    dist_mat = np.full((n_students, T), -1, dtype=np.int16)
    dist_mat[st[rec], t[rec]] = spells["district"].to_numpy()[sp[rec]]
    return StudentMonths(n_mat, y_mat, spell_mat, dist_mat)


@dataclass
class Visits:
    table: pd.DataFrame  # student, district, date (ordinal), outcome, mode, t_eff
    first_t: np.ndarray  # effective month of the first completed visit, -1 if none [N]
    first_mode: np.ndarray  # index into MODES, -1 if none [N]
    first_date: np.ndarray  # ordinal date of the first completed visit [N]
    first_spell: np.ndarray  # enrollment spell the first completed visit was made in [N]
    completed_to_date: np.ndarray  # int8 [N, T] completed visits with t_eff ≤ t


def _calendar_months(start: str, months: Months) -> list[tuple[int, int]]:
    y, m = (int(x) for x in start.split("-"))
    last_y, last_m = int(months.year[-1]), int(months.month[-1])
    out = []
    while (y, m) <= (last_y, last_m):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def simulate_visits(
    rng: np.random.Generator,
    sm: StudentMonths,
    spells: pd.DataFrame,
    months: Months,
    leap: np.ndarray,
    cfg: ProgramConfig,
    u: np.ndarray,
    world: wd.WorldConfig | None = None,
    factors: wd.StudentFactors | None = None,
) -> Visits:
    """Referrals, attempts and visits month by month (see the module docstring); ``world``
    and ``factors`` are the stress-test world's knobs and unrecorded student factors
    (:mod:`pipeline.synth.worlds`; ``None``: the default world)."""
    world = world or wd.WorldConfig()
    factors = factors or wd.StudentFactors()
    N, T = sm.n.shape
    leap_idx = np.flatnonzero(leap)
    t_of = {
        (int(y), int(m)): t for t, (y, m) in enumerate(zip(months.year, months.month, strict=True))
    }
    cal = [ym for ym in _calendar_months(cfg.start_month, months)]
    # enrolment of each program district (average students of record per month)
    size = np.array([(sm.district == d).sum() / T for d in leap_idx])
    weights = []
    for y, m in cal:
        if m in (7, 8):
            weights.append(1.6 if y == 2021 else 0.6)
        elif (y, m) < (2021, 7):
            weights.append(0.5)
        else:
            weights.append(1.0)
    weights = np.array(weights)
    attempts_total = cfg.served_share / cfg.contact_rate * size
    if world.staggered_months:
        offset = wd.start_offsets(leap_idx.size, world.staggered_months)
        w_active = weights[None, :] * (np.arange(len(cal))[None, :] >= offset[:, None])
        mean_cap = attempts_total[:, None] * w_active / w_active.sum(axis=1, keepdims=True)
    else:
        mean_cap = attempts_total[:, None] * weights[None, :] / weights.sum()
    rates = (
        wd.RecordedRates(sm.n, sm.y0, months.year_idx)
        if world.referral != "recent" or world.reach
        else None
    )

    spell_entry = spells["entry"].to_numpy()
    spell_exit = spells["exit"].to_numpy()
    spell_student = spells["student"].to_numpy()
    spell_year = spells["year"].to_numpy()
    spell_district = spells["district"].to_numpy()

    reached = np.zeros(N, dtype=bool)
    first_t = np.full(N, -1, dtype=np.int64)
    first_mode = np.full(N, -1, dtype=np.int64)
    first_date = np.full(N, -1, dtype=np.int64)
    first_spell = np.full(N, -1, dtype=np.int64)
    records = []
    mode_p = np.array([cfg.mode_shares.get(k, 0.0) for k in MODES], dtype=float)
    mode_p = mode_p / mode_p.sum()

    for ci, (y, m) in enumerate(cal):
        summer = m in (7, 8)
        if summer:
            t_eff = t_of.get((y, 9))
            if t_eff is None or t_eff < 2:
                continue
            y_idx = months.year_idx[t_eff]
            july1 = np.datetime64(f"{y}-07-01").astype(np.int64)
            sel = (spell_year == y_idx) & (spell_entry == july1)
            cand_spell = np.full(N, -1, dtype=np.int64)
            cand_spell[spell_student[sel]] = np.flatnonzero(sel)
            has = cand_spell >= 0
            dist_now = np.where(has, spell_district[np.maximum(cand_spell, 0)], -1)
            lag1, lag2 = t_eff - 1, t_eff - 2
            elig_base = has & (sm.n[:, lag1] > 0)
            u_now = u[:, t_eff]
        else:
            t_eff = t_of[(y, m)]
            if t_eff < 2:
                continue
            cand_spell = sm.spell[:, t_eff].astype(np.int64)
            dist_now = sm.district[:, t_eff]
            lag1, lag2 = t_eff - 1, t_eff - 2
            elig_base = (sm.n[:, t_eff] > 0) & (sm.n[:, lag1] > 0)
            u_now = u[:, t_eff]
        r1 = sm.rate(lag1)
        r2 = sm.rate(lag2)
        r2 = np.where(np.isnan(r2), r1, r2)
        score = 0.6 * (100 - r1) + 0.4 * (100 - r2)
        if world.referral != "recent":
            score = wd.referral_base(world, rates, t_eff, score, dist_now, leap_idx)
        score = score + rng.normal(0, cfg.referral_noise, N)
        if world.gains and factors.gain is not None:
            score = score + 10.0 * world.gains * factors.gain
        p_contact = (
            wd.contact_probability(world, cfg.contact_rate, rates.level(t_eff), factors.family)
            if world.reach
            else None
        )
        score = score + cfg.unobserved_weight * (-10.0 * u_now)
        for k, d in enumerate(leap_idx):
            elig = np.flatnonzero(elig_base & ~reached & (dist_now == d))
            cap = int(rng.poisson(mean_cap[k, ci]))
            if cap <= 0 or elig.size == 0:
                continue
            cap = min(cap, elig.size)
            top = elig[np.argsort(-score[elig], kind="stable")[:cap]]
            ok = rng.random(cap) < (cfg.contact_rate if p_contact is None else p_contact[top])
            mode = rng.choice(3, size=cap, p=mode_p)
            date = _visit_dates(
                rng, top, cand_spell[top], summer, y, m, months, t_eff, spell_entry, spell_exit
            )
            records.append(
                pd.DataFrame(
                    {
                        "student": top,
                        "district": d,
                        "date": date,
                        "completed": ok,
                        "mode": mode,
                        "t_eff": t_eff,
                    }
                )
            )
            new = top[ok]
            reached[new] = True
            first_t[new] = t_eff
            first_mode[new] = mode[ok]
            first_date[new] = date[ok]
            first_spell[new] = cand_spell[new]
            # follow-up visits in later school months while still in the district
            active = new.copy()
            n_done = np.ones(active.size, dtype=np.int64)
            amode = mode[ok].copy()
            for t in range(t_eff + 1, T):
                go = rng.random(active.size) < cfg.followup_rate
                go &= (sm.district[active, t] == d) & (n_done < cfg.max_visits)
                active, n_done, amode = active[go], n_done[go], amode[go]
                if active.size == 0:
                    break
                keep_mode = rng.random(active.size) < 0.7
                amode = np.where(keep_mode, amode, rng.choice(3, size=active.size, p=mode_p))
                comp = rng.random(active.size) < 0.9
                dts = _visit_dates(
                    rng,
                    active,
                    sm.spell[active, t].astype(np.int64),
                    False,
                    int(months.year[t]),
                    int(months.month[t]),
                    months,
                    t,
                    spell_entry,
                    spell_exit,
                )
                records.append(
                    pd.DataFrame(
                        {
                            "student": active,
                            "district": d,
                            "date": dts,
                            "completed": comp,
                            "mode": amode,
                            "t_eff": t,
                        }
                    )
                )
                n_done = n_done + comp
    table = (
        pd.concat(records, ignore_index=True)
        if records
        else pd.DataFrame(columns=["student", "district", "date", "completed", "mode", "t_eff"])
    )
    table = table.sort_values(["date", "student"], kind="stable").reset_index(drop=True)
    ctd = _completed_to_date(table, N, T)
    return Visits(table, first_t, first_mode, first_date, first_spell, ctd)


def _completed_to_date(table: pd.DataFrame, N: int, T: int) -> np.ndarray:
    comp = table[table["completed"]]
    ctd = np.zeros((N, T), dtype=np.int8)
    np.add.at(ctd, (comp["student"].to_numpy(), comp["t_eff"].to_numpy()), 1)
    return np.cumsum(ctd, axis=1, dtype=np.int8)


def truncate_visits(visits: Visits, exit_day: np.ndarray, spell_renum: np.ndarray) -> Visits:
    """The visits of a world with exits (:func:`pipeline.synth.worlds.apply_exits`): visits
    after a student's exit day are dropped, a student whose first completed visit is
    dropped is untreated, and first-visit spells follow the spells' renumbering."""
    N, T = visits.completed_to_date.shape
    tab = visits.table
    ed = exit_day[tab["student"].to_numpy()]
    tab = tab[(ed < 0) | (tab["date"].to_numpy() <= ed)].reset_index(drop=True)
    lost = (visits.first_t >= 0) & (exit_day >= 0) & (visits.first_date > exit_day)
    first_t = np.where(lost, -1, visits.first_t)
    first_mode = np.where(lost, -1, visits.first_mode)
    first_date = np.where(lost, -1, visits.first_date)
    fs = visits.first_spell
    first_spell = np.where(lost | (fs < 0), -1, spell_renum[np.maximum(fs, 0)])
    if ((first_t >= 0) & (first_spell < 0)).any():
        raise AssertionError("a first completed visit in a dropped spell")
    return Visits(tab, first_t, first_mode, first_date, first_spell, _completed_to_date(tab, N, T))


def _visit_dates(rng, students, spell_idx, summer, y, m, months: Months, t, entry, exit_):
    """A random day on which each student is enrolled: a school day of the month within
    the spell, or (summer) a weekday of July or August."""
    if summer:
        start = np.datetime64(f"{y:04d}-{m:02d}")
        days = np.arange(
            start.astype("datetime64[D]"), (start + np.timedelta64(1, "M")).astype("datetime64[D]")
        )
        days = days[np.is_busday(days)].astype(np.int64)
        return rng.choice(days, size=students.size)
    ords = months.ordinals[months.year_idx[t]]
    m0 = np.datetime64(f"{y:04d}-{m:02d}-01").astype(np.int64)
    m1 = (
        (np.datetime64(f"{y:04d}-{m:02d}") + np.timedelta64(1, "M"))
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    e = entry[spell_idx]
    x = np.where(exit_[spell_idx] < 0, np.iinfo(np.int64).max // 2, exit_[spell_idx])
    a = np.searchsorted(ords, np.maximum(e, m0), side="left")
    b = np.searchsorted(ords, np.minimum(x, m1 - 1), side="right")
    if (b <= a).any():
        raise AssertionError("visit month without a school day in the spell")
    pos = a + (rng.random(students.size) * (b - a)).astype(np.int64)
    return ords[pos]
