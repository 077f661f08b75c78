"""Districts, schools, students and their enrollment spells.

Students are simulated year by year: grades advance, seniors graduate, kindergartners
arrive, students leave and enter between years and in the middle of a year, and some
move between schools and districts mid-year (closing one spell and opening another).
Demographics are correlated with the type of district (urban, suburban, rural) the way
they are in Connecticut's data: meal eligibility, English learners and the share of
Black and Hispanic students are far higher in the urban districts that ran LEAP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.calendar import instructional_days
from pipeline.contract import RACE_CODES

URBAN, SUBURBAN, RURAL = 0, 1, 2
DISTRICT_TYPES = ("urban", "suburban", "rural")

_ROOTS = (
    "Alder Ashby Barrow Birch Bramble Brook Cedar Chester Clay Cliff Cobble Copper Dale Elm "
    "Fair Fern Fox Glen Granite Green Hazel Heron Holly Iron Juniper Kettle Lake Laurel Maple "
    "Marsh Mill Moss Oak Orchard Pine Quarry Raven Ridge River Rock Rowan Salt Sandy Silver "
    "Spring Stone Thorn Willow Wolf Wren"
).split()
_SUFFIXES = ("ford", "field", "ton", "bury", "haven", "port", "wick", "mouth", "ham", "dale")

# Race/ethnicity shares by district type (order of contract.RACE_CODES:
# AIAN, ASIAN, BLACK, HISPANIC, NHPI, MULTI, WHITE).
_RACE_SHARES = np.array(
    [
        [0.004, 0.040, 0.270, 0.470, 0.002, 0.044, 0.170],  # urban
        [0.002, 0.080, 0.060, 0.140, 0.001, 0.050, 0.667],  # suburban
        [0.004, 0.020, 0.030, 0.090, 0.001, 0.035, 0.820],  # rural
    ]
)
_FRL_LOGIT = np.array([0.9, -1.5, -0.9])  # by district type
_FRL_RACE = np.array([0.6, -0.3, 0.8, 0.8, 0.5, 0.2, 0.0])
_ELL_LOGIT = np.array([-1.9, -3.0, -3.6])
_ELL_RACE = np.array([0.0, 1.2, -0.6, 1.6, 0.5, -0.5, -1.5])
_GRADE_WEIGHTS = np.array([1.0] * 10 + [0.97, 0.94, 0.92])  # K..12


@dataclass
class Geography:
    """Districts and schools."""

    districts: pd.DataFrame  # district_code, district_name, leap, type, weight
    schools: pd.DataFrame  # school_code, district (index), level
    school_start: np.ndarray  # [district, level] → first school index
    school_count: np.ndarray  # [district, level] → number of schools


@dataclass
class Population:
    """Students and their enrollment spells (one row per student, year and spell)."""

    students: pd.DataFrame  # sex, race (codes), home district type at first sight
    spells: pd.DataFrame  # student, year, district, school, grade, entry, exit, frl, ell, swd


def level_of(grade: np.ndarray) -> np.ndarray:
    """0 = elementary (K–5), 1 = middle (6–8), 2 = high (9–12)."""
    return np.where(grade <= 5, 0, np.where(grade <= 8, 1, 2))


def make_geography(
    rng: np.random.Generator, n_districts: int, n_program: int, n_students: int
) -> Geography:
    if n_program >= n_districts:
        raise ValueError("n_program_districts must be smaller than n_districts")
    n_other = n_districts - n_program
    types = np.concatenate(
        [
            np.full(n_program, URBAN),
            rng.choice([URBAN, SUBURBAN, RURAL], size=n_other, p=[0.1, 0.55, 0.35]),
        ]
    )
    mu = np.array([np.log(5.0), np.log(3.0), np.log(1.0)])[types]
    mu[:n_program] = np.log(10.0)
    sd = np.where(types == URBAN, 0.35, 0.6)
    weight = np.exp(rng.normal(mu, sd))
    weight /= weight.sum()
    # Shuffle the order so that program districts are not simply the first codes.
    order = rng.permutation(n_districts)
    types, weight = types[order], weight[order]
    leap = np.zeros(n_districts, dtype=bool)
    leap[np.argsort(order)[:n_program]] = True
    combos = [r + s for r in _ROOTS for s in _SUFFIXES]
    if n_districts > len(combos):
        raise ValueError(f"at most {len(combos)} districts supported")
    names = rng.choice(combos, size=n_districts, replace=False)
    label = np.where(types == RURAL, " Regional Schools", " Public Schools")
    districts = pd.DataFrame(
        {
            "district_code": [f"{i + 1:03d}" for i in range(n_districts)],
            "district_name": [str(n) + str(lab) for n, lab in zip(names, label, strict=True)],
            "leap": leap,
            "type": types,
            "weight": weight,
        }
    )
    # Schools: enrolment per level divided by a typical school size.
    size = weight * n_students
    per_level = np.stack([size * 6 / 13 / 420, size * 3 / 13 / 550, size * 4 / 13 / 900], 1)
    count = np.maximum(1, np.round(per_level)).astype(np.int64)
    rows = []
    for d in range(n_districts):
        k = 0
        for lev in range(3):
            for _ in range(count[d, lev]):
                k += 1
                rows.append((f"{districts.district_code[d]}{k:02d}", d, lev))
    schools = pd.DataFrame(rows, columns=["school_code", "district", "level"])
    start = np.zeros((n_districts, 3), dtype=np.int64)
    flat = np.cumsum(np.concatenate([[0], count.ravel()]))[:-1]
    start[:] = flat.reshape(n_districts, 3)
    return Geography(districts, schools, start, count)


def _pick_school(geo: Geography, district: np.ndarray, grade: np.ndarray, rng) -> np.ndarray:
    lev = level_of(grade)
    n = geo.school_count[district, lev]
    return geo.school_start[district, lev] + (rng.random(district.size) * n).astype(np.int64)


def _new_students(rng, geo: Geography, district: np.ndarray, grade: np.ndarray) -> dict:
    """Demographics for new students placed in ``district`` at ``grade``."""
    n = district.size
    dtype_ = geo.districts["type"].to_numpy()[district]
    race = np.empty(n, dtype=np.int64)
    for t in range(3):
        sel = dtype_ == t
        race[sel] = rng.choice(len(RACE_CODES), size=sel.sum(), p=_RACE_SHARES[t])
    sex = rng.choice(3, size=n, p=[0.487, 0.511, 0.002])  # F, M, X
    frl = rng.random(n) < _sigmoid(_FRL_LOGIT[dtype_] + _FRL_RACE[race] + rng.normal(0, 0.3, n))
    ell = rng.random(n) < _sigmoid(_ELL_LOGIT[dtype_] + _ELL_RACE[race] - 0.12 * grade)
    swd = rng.random(n) < np.where(sex == 1, 0.19, 0.12)
    return {"sex": sex, "race": race, "frl": frl, "ell": ell, "swd": swd}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _district_draw(rng, geo: Geography, n: int, like_type: np.ndarray | None = None):
    w = geo.districts["weight"].to_numpy()
    if like_type is None:
        return rng.choice(w.size, size=n, p=w)
    # Movers go to a district of the same type with probability 0.6.
    out = rng.choice(w.size, size=n, p=w)
    types = geo.districts["type"].to_numpy()
    same = rng.random(n) < 0.6
    for t in range(3):
        sel = same & (like_type == t)
        wt = np.where(types == t, w, 0.0)
        if sel.any() and wt.sum() > 0:
            out[sel] = rng.choice(w.size, size=sel.sum(), p=wt / wt.sum())
    return out


def simulate_population(rng, geo: Geography, n_students: int, start_years: list[int]) -> Population:
    """Simulate enrollment spells for consecutive school years starting in ``start_years``."""
    n_d = len(geo.districts)
    weights = geo.districts["weight"].to_numpy()
    gw = _GRADE_WEIGHTS / _GRADE_WEIGHTS.sum()

    demo: dict[str, list[np.ndarray]] = {k: [] for k in ("sex", "race", "frl", "ell", "swd")}
    n_total = 0

    def add(district, grade):
        nonlocal n_total
        d = _new_students(rng, geo, district, grade)
        for k in demo:
            demo[k].append(d[k])
        ids = np.arange(n_total, n_total + district.size)
        n_total += district.size
        return ids

    # Current state of active students (continuing into the next year).
    district = rng.choice(n_d, size=n_students, p=weights)
    grade = rng.choice(13, size=n_students, p=gw)
    sid = add(district, grade)
    school = _pick_school(geo, district, grade, rng)
    frl_all = lambda: np.concatenate(demo["frl"])  # noqa: E731
    spells = []

    for yi, y0 in enumerate(start_years):
        days = instructional_days(y0)
        ordinals = days.values.astype("datetime64[D]").astype(np.int64)
        july1 = np.datetime64(f"{y0}-07-01").astype(np.int64)
        first_day = ordinals[0]
        # current-year demographics (can change between years)
        frl = frl_all()
        ell = np.concatenate(demo["ell"])
        swd = np.concatenate(demo["swd"])
        entry = np.full(sid.size, july1 if yi > 0 else july1)

        if yi > 0:
            # new kindergartners and new entrants at the start of the year
            n_k = rng.poisson(n_students / 13.3)
            kd = rng.choice(n_d, size=n_k, p=weights)
            kg = np.zeros(n_k, dtype=np.int64)
            n_e = rng.poisson(0.025 * n_students)
            ed = rng.choice(n_d, size=n_e, p=weights)
            eg = rng.choice(13, size=n_e, p=gw)
            nd = np.concatenate([kd, ed])
            ng = np.concatenate([kg, eg])
            nid = add(nd, ng)
            frl, ell, swd = frl_all(), np.concatenate(demo["ell"]), np.concatenate(demo["swd"])
            sid = np.concatenate([sid, nid])
            district = np.concatenate([district, nd])
            grade = np.concatenate([grade, ng])
            school = np.concatenate([school, _pick_school(geo, nd, ng, rng)])
            entry = np.concatenate([entry, np.full(nid.size, first_day)])

        # mid-year exits: half move (new spell elsewhere), half leave the state
        n = sid.size
        exits = rng.random(n) < 0.025 + 0.01 * (grade >= 9)
        window = ordinals[
            (ordinals >= np.datetime64(f"{y0}-10-01").astype(np.int64))
            & (ordinals <= np.datetime64(f"{y0 + 1}-05-31").astype(np.int64))
        ]
        exit_day = np.full(n, -1, dtype=np.int64)
        exit_day[exits] = rng.choice(window, size=exits.sum())
        mover = exits & (rng.random(n) < 0.5)
        leaver = exits & ~mover
        spells.append(
            pd.DataFrame(
                {
                    "student": sid,
                    "year": yi,
                    "district": district,
                    "school": school,
                    "grade": grade,
                    "entry": entry,
                    "exit": exit_day,
                    "frl": frl[sid],
                    "ell": ell[sid],
                    "swd": swd[sid],
                }
            )
        )
        # movers' second spell
        mi = np.flatnonzero(mover)
        same_district = rng.random(mi.size) < 0.3
        new_d = _district_draw(rng, geo, mi.size, geo.districts["type"].to_numpy()[district[mi]])
        new_d = np.where(same_district, district[mi], new_d)
        new_s = _pick_school(geo, new_d, grade[mi], rng)
        # a move never returns to the same school (one attendance row per school and month)
        same = new_s == school[mi]
        lev = level_of(grade[mi])
        cnt = geo.school_count[new_d, lev]
        start_ = geo.school_start[new_d, lev]
        shift = same & (cnt > 1)
        new_s = np.where(shift, start_ + (new_s - start_ + 1) % np.maximum(cnt, 1), new_s)
        other = same & (cnt == 1)
        new_d = np.where(other, (new_d + 1) % n_d, new_d)
        new_s = np.where(other, geo.school_start[new_d, lev], new_s)
        pos = np.searchsorted(ordinals, exit_day[mi], side="right")
        gap = rng.integers(0, 6, size=mi.size)
        new_entry = ordinals[np.minimum(pos + gap, ordinals.size - 1)]
        ok = new_entry > exit_day[mi]
        mi, new_d, new_s, new_entry = mi[ok], new_d[ok], new_s[ok], new_entry[ok]
        spells.append(
            pd.DataFrame(
                {
                    "student": sid[mi],
                    "year": yi,
                    "district": new_d,
                    "school": new_s,
                    "grade": grade[mi],
                    "entry": new_entry,
                    "exit": -1,
                    "frl": frl[sid[mi]],
                    "ell": ell[sid[mi]],
                    "swd": swd[sid[mi]],
                }
            )
        )
        district[mi] = new_d
        school[mi] = new_s
        # mid-year entrants from outside the state
        n_m = rng.poisson(0.02 * n_students)
        md = rng.choice(n_d, size=n_m, p=weights)
        mg = rng.choice(13, size=n_m, p=gw)
        mid_ = add(md, mg)
        ms = _pick_school(geo, md, mg, rng)
        win2 = ordinals[
            (ordinals >= np.datetime64(f"{y0}-10-01").astype(np.int64))
            & (ordinals <= np.datetime64(f"{y0 + 1}-04-30").astype(np.int64))
        ]
        spells.append(
            pd.DataFrame(
                {
                    "student": mid_,
                    "year": yi,
                    "district": md,
                    "school": ms,
                    "grade": mg,
                    "entry": rng.choice(win2, size=n_m),
                    "exit": -1,
                    "frl": np.concatenate(demo["frl"])[mid_],
                    "ell": np.concatenate(demo["ell"])[mid_],
                    "swd": np.concatenate(demo["swd"])[mid_],
                }
            )
        )

        # end of year: graduation, leaving, retention, moves, demographic changes
        keep = ~leaver & (grade < 12)
        keep &= rng.random(n) >= np.where(grade >= 9, 0.04, 0.025)
        sid_n = np.concatenate([sid[keep], mid_[mg < 12]])
        dist_n = np.concatenate([district[keep], md[mg < 12]])
        grade_old = np.concatenate([grade[keep], mg[mg < 12]])
        school_old = np.concatenate([school[keep], ms[mg < 12]])
        retained = rng.random(sid_n.size) < np.where(np.isin(grade_old, [0, 9]), 0.03, 0.01)
        grade_n = np.where(retained, grade_old, grade_old + 1)
        move = rng.random(sid_n.size) < 0.04
        dist_n = np.where(
            move,
            _district_draw(rng, geo, sid_n.size, geo.districts["type"].to_numpy()[dist_n]),
            dist_n,
        )
        redo = move | (level_of(grade_n) != level_of(grade_old))
        school_n = np.where(redo, _pick_school(geo, dist_n, grade_n, rng), school_old)
        # demographic changes between years
        ell_all = np.concatenate(demo["ell"])
        ell_all[sid_n[rng.random(sid_n.size) < 0.14]] = False  # reclassified
        demo["ell"] = [ell_all]
        frl_all_ = np.concatenate(demo["frl"])
        flip = sid_n[rng.random(sid_n.size) < 0.04]
        frl_all_[flip] = ~frl_all_[flip]
        demo["frl"] = [frl_all_]
        swd_all = np.concatenate(demo["swd"])
        swd_all[sid_n[rng.random(sid_n.size) < 0.015]] = True
        demo["swd"] = [swd_all]
        for k in ("sex", "race"):
            demo[k] = [np.concatenate(demo[k])]
        sid, district, grade, school = sid_n, dist_n, grade_n, school_n

    students = pd.DataFrame(
        {"sex": np.concatenate(demo["sex"]), "race": np.concatenate(demo["race"])}
    )
    spells_df = pd.concat(spells, ignore_index=True)
    spells_df = spells_df.sort_values(["student", "year", "entry"], kind="stable")
    spells_df = spells_df.reset_index(drop=True)
    return Population(students, spells_df)
