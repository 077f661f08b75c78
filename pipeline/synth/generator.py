"""Assemble the synthetic extract: contract tables plus the ground truth."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import special

from pipeline.calendar import school_year_label
from pipeline.contract import CHRONIC_THRESHOLD, GRADES, RACE_CODES, SEX_CODES
from pipeline.synth import attendance as att
from pipeline.synth import worlds as wd
from pipeline.synth.config import SynthConfig
from pipeline.synth.effects import (
    coupled_treated_outcome,
    itt_truth_tables,
    student_attributes,
    treatment_effects,
    truth_tables,
)
from pipeline.synth.population import make_geography, simulate_population
from pipeline.synth.visits import MODES, simulate_visits, student_months, truncate_visits

log = logging.getLogger(__name__)

PRIMARY_WINDOW = (1, 6)
GRADE_LABELS = np.array(GRADES[1:])  # K, 1 … 12 (grade 0 = K)


@dataclass
class SyntheticExtract:
    """Contract tables (as typed data frames) and the ground truth."""

    tables: dict[str, pd.DataFrame]
    truth: dict
    #: Internal arrays needed to write the daily form (membership rows with dates).
    daily_source: pd.DataFrame | None = None
    instructional_days: list[np.ndarray] | None = None
    #: Per attempted student and month in membership (raw ``student_id``, ``t``, ``n``,
    #: ``y0``, ``y1``, ``first_attempt_t``, ``first_completed_t``): the potential outcomes
    #: behind the intent-to-treat truth, so a study can compute it over the students a
    #: design actually matched (:func:`pipeline.synth.effects.itt_truth_for`). In memory
    #: only; never written with the extract.
    itt_units: pd.DataFrame | None = None


def _student_ids(rng, n: int) -> np.ndarray:
    """Unique 10-digit state IDs with leading zeros (SASID-like)."""
    ids = np.unique(rng.integers(0, 10**10, size=int(n * 1.2) + 100))
    ids = rng.permutation(ids)[:n]
    if ids.size < n:  # pragma: no cover - astronomically unlikely
        raise RuntimeError("could not draw unique student IDs")
    return np.array([f"{x:010d}" for x in ids], dtype=object)


def _take(labels, idx: np.ndarray) -> pd.Series:
    """``labels[idx]`` as an Arrow-backed string column (no per-row Python objects)."""
    arr = pa.array(list(labels) if not isinstance(labels, np.ndarray) else labels, pa.string())
    return pd.Series(pd.arrays.ArrowExtensionArray(arr.take(pa.array(np.asarray(idx)))))


def _iso(ordinals: np.ndarray, empty: np.ndarray | None = None) -> pd.Series:
    """ISO dates (``YYYY-MM-DD``) from day ordinals; ``""`` where ``empty``."""
    ords = np.asarray(ordinals, dtype=np.int64)
    uniq, inv = np.unique(ords, return_inverse=True)
    labels = np.datetime_as_string(uniq.astype("datetime64[D]"), unit="D").astype(object)
    out = _take(labels, inv)
    if empty is not None and empty.any():
        out = out.where(~pd.Series(empty), "")
    return out


def _config_record(cfg: SynthConfig) -> dict:
    """The configuration for ``truth.json``; the worlds only when a knob is on (so the
    default extract is unchanged by their existence)."""
    rec = asdict(cfg)
    if cfg.worlds.is_default:
        rec.pop("worlds")
    return rec


def _itt_truth(visits, rs, rt, rn, y0, y1, N: int, T: int) -> tuple[dict, pd.DataFrame]:
    """The intent-to-treat truth (:func:`pipeline.synth.effects.itt_truth_tables`) from
    the membership rows of every student with a visit of either outcome, and those rows
    (student index, ``t, n, y0, y1``, first attempt and first completed month)."""
    vt = visits.table
    first_attempt = np.full(N, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(
        first_attempt, vt["student"].to_numpy(dtype=np.int64), vt["t_eff"].to_numpy(np.int64)
    )
    first_attempt[first_attempt == np.iinfo(np.int64).max] = -1
    sel = first_attempt[rs] >= 0
    rows = pd.DataFrame({"student": rs[sel], "t": rt[sel], "n": rn[sel], "y0": y0[sel],
                         "y1": y1[sel]})  # fmt: skip
    rows = rows.groupby(["student", "t"], as_index=False).sum()
    truth = itt_truth_tables(rows, first_attempt, visits.first_t, PRIMARY_WINDOW, (-12, T))
    s = rows["student"].to_numpy()
    units = rows.assign(
        first_attempt_t=first_attempt[s], first_completed_t=np.asarray(visits.first_t)[s]
    )
    return truth, units


def generate(cfg: SynthConfig) -> SyntheticExtract:
    """Generate a synthetic state extract following the data contract."""
    ss = np.random.SeedSequence(cfg.seed)
    (r_geo, r_pop, r_alpha, r_shock, r_y0, r_visit, r_y1, r_ids) = (
        np.random.default_rng(s) for s in ss.spawn(8)
    )
    world = cfg.worlds
    # the worlds' own streams (child 8): the default draws above are unchanged
    world_ss = ss.spawn(1)[0]
    log.info("districts, schools and %d students", cfg.n_students)
    geo = make_geography(r_geo, cfg.n_districts, cfg.n_program_districts, cfg.n_students)
    pop = simulate_population(r_pop, geo, cfg.n_students, cfg.start_years)
    spells = pop.spells
    N = len(pop.students)
    months = att.make_months(cfg.start_years)
    T = months.T

    log.info("membership and attendance without the program")
    rows = att.membership_rows(spells, months)
    sp = rows["spell"].to_numpy()
    rt = rows["t"].to_numpy()
    rn = rows["n"].to_numpy().astype(np.int64)
    rs = spells["student"].to_numpy()[sp]
    alpha = att.persistent_propensity(r_alpha, spells, N, len(cfg.start_years))
    u = att.transitory_shocks(r_shock, N, months)
    eta = att.linear_predictor(rows, spells, geo.districts["type"].to_numpy(), alpha, u, months)
    factors, r_wshock, r_exit = wd.student_factors(world_ss, N, world)
    extra = wd.attendance_terms(
        r_wshock,
        world,
        factors,
        rs,
        spells["school"].to_numpy()[sp],
        spells["district"].to_numpy()[sp],
        rt,
        len(geo.schools),
        len(geo.districts),
        T,
    )
    if extra is not None:
        eta = eta + extra
    targets = [cfg.chronic_targets[y] for y in cfg.school_years]
    mu = att.calibrate_year_effects(eta, rn, rs, months.year_idx[rt], targets)
    p0 = special.expit(eta + mu[months.year_idx[rt]])
    y0 = r_y0.binomial(rn, p0)

    log.info("referrals and home visits")
    sm = student_months(rows, spells, N, T, y0)
    visits = simulate_visits(
        r_visit,
        sm,
        spells,
        months,
        geo.districts["leap"].to_numpy(),
        cfg.program,
        u,
        world,
        factors,
    )
    if world.exit_base > 0:
        exit_t = wd.exit_months(r_exit, world, sm.n, sm.y0, visits.completed_to_date)
        spells, keep, renum, exit_day = wd.apply_exits(exit_t, months, spells, rows)
        rows = rows[keep].reset_index(drop=True)
        rows["spell"] = renum[rows["spell"].to_numpy()]
        sp, rt, rn, rs = rows["spell"].to_numpy(), rt[keep], rn[keep], rs[keep]
        eta, p0, y0 = eta[keep], p0[keep], y0[keep]
        visits = truncate_visits(visits, exit_day, renum)
    fs = visits.first_spell
    grade_first = np.where(fs >= 0, spells["grade"].to_numpy()[np.maximum(fs, 0)], -1)
    ell_first = np.where(fs >= 0, spells["ell"].to_numpy()[np.maximum(fs, 0)], False)
    attrs = student_attributes(
        visits.first_t, visits.first_mode, visits.first_date, grade_first, ell_first
    )

    log.info("effects for %d treated students", len(attrs))
    gain_mult = wd.gain_multiplier(world, factors.gain) if factors.gain is not None else None
    tau = treatment_effects(
        rs, rt, attrs, visits.completed_to_date, N, cfg.effects, multiplier=gain_mult
    )
    y1 = coupled_treated_outcome(r_y1, rn, y0, p0, tau)
    p1 = np.clip(p0 + tau / 100.0, 1e-6, 1 - 1e-6)
    p1 = np.where(tau == 0, p0, p1)

    treated_rows = np.isin(rs, attrs["student"].to_numpy())
    st = pd.DataFrame(
        {
            "student": rs[treated_rows],
            "t": rt[treated_rows],
            "n": rn[treated_rows],
            "y0": y0[treated_rows],
            "y1": y1[treated_rows],
            "p0n": (p0 * rn)[treated_rows],
            "p1n": (p1 * rn)[treated_rows],
        }
    )
    st = st.groupby(["student", "t"], as_index=False).sum()
    st["p0"] = st["p0n"] / st["n"]
    st["p1"] = st["p1n"] / st["n"]
    truth = truth_tables(st, attrs, PRIMARY_WINDOW, (-12, T))
    itt_truth, itt_units = _itt_truth(visits, rs, rt, rn, y0, y1, N, T)
    truth.update(itt_truth)

    # ---- contract tables ------------------------------------------------------------
    # Text columns are Arrow strings taken from small dictionaries (compact at state scale);
    # rows are ordered by integer keys (student ID order, month, school code order).
    sid = _student_ids(r_ids, N)
    rank = np.empty(N, dtype=np.int64)
    rank[np.argsort(sid, kind="stable")] = np.arange(N)
    dcode = geo.districts["district_code"].to_numpy()
    scode = geo.schools["school_code"].to_numpy()  # generated in code order
    year_labels = [school_year_label(y) for y in cfg.start_years]
    month_labels = months.labels()
    districts = geo.districts[["district_code", "district_name", "leap"]].copy()
    s_order = np.argsort(rank, kind="stable")
    students = pd.DataFrame(
        {
            "student_id": _take(sid, s_order),
            "sex": _take(SEX_CODES, pop.students["sex"].to_numpy()[s_order]),
            "race_ethnicity": _take(RACE_CODES, pop.students["race"].to_numpy()[s_order]),
        }
    )
    e_order = np.lexsort(
        (spells["entry"].to_numpy(), spells["year"].to_numpy(), rank[spells["student"].to_numpy()])
    )
    sp_e = spells.iloc[e_order]
    exit_ = sp_e["exit"].to_numpy()
    enrollment = pd.DataFrame(
        {
            "student_id": _take(sid, sp_e["student"].to_numpy()),
            "school_year": _take(year_labels, sp_e["year"].to_numpy()),
            "district_code": _take(dcode, sp_e["district"].to_numpy()),
            "school_code": _take(scode, sp_e["school"].to_numpy()),
            "grade": _take(GRADE_LABELS, sp_e["grade"].to_numpy()),
            "entry_date": _iso(sp_e["entry"].to_numpy()),
            "exit_date": _iso(exit_, empty=exit_ < 0),
            "frl": sp_e["frl"].to_numpy(),
            "ell": sp_e["ell"].to_numpy(),
            "swd": sp_e["swd"].to_numpy(),
        }
    )
    school_row = spells["school"].to_numpy()[sp]
    order = np.lexsort((school_row, rt, rank[rs]))
    attendance_monthly = pd.DataFrame(
        {
            "student_id": _take(sid, rs[order]),
            "school_year": _take(year_labels, months.year_idx[rt[order]]),
            "district_code": _take(dcode, spells["district"].to_numpy()[sp[order]]),
            "school_code": _take(scode, school_row[order]),
            "month": _take(month_labels, rt[order]),
            "days_membership": rn[order].astype(np.int32),
            "days_present": y1[order].astype(np.int32),
        }
    )
    vt = visits.table
    home_visits = pd.DataFrame(
        {
            "visit_id": [f"V{i + 1:08d}" for i in range(len(vt))],
            "student_id": _take(sid, vt["student"].to_numpy()),
            "district_code": _take(dcode, vt["district"].to_numpy()),
            "visit_date": _iso(vt["date"].to_numpy()),
            "outcome": np.where(vt["completed"].to_numpy(), "completed", "attempted"),
            "mode": _take(MODES, vt["mode"].to_numpy().astype(int)),
        }
    )

    # ---- calibration check and metadata --------------------------------------------
    yearly = pd.DataFrame({"s": rs, "y": months.year_idx[rt], "n": rn, "k": y1})
    yearly = yearly.groupby(["y", "s"])[["n", "k"]].sum()
    chronic = (100 * yearly["k"] / yearly["n"] <= CHRONIC_THRESHOLD).groupby(level="y").mean()
    truth.update(
        {
            "synthetic": True,
            "generator": "pipeline.synth",
            "seed": cfg.seed,
            "config": _config_record(cfg),
            "primary_window": list(PRIMARY_WINDOW),
            "effect_units": "percentage points of the monthly attendance rate",
            "event_time": "school months relative to the first completed visit's effective "
            "school month (July/August visits take effect in September)",
            "subgroup_definition": "grade band, English-learner status and mode are those of "
            "the first completed visit; cohort from its date",
            "chronic_absence": {
                y: {"target": cfg.chronic_targets[y], "realized": round(100 * float(chronic[i]), 3)}
                for i, y in enumerate(cfg.school_years)
            },
            "year_effects_logit": [float(m) for m in mu],
            "counts": {
                "students": int(N),
                "districts": int(len(districts)),
                "program_districts": int(districts["leap"].sum()),
                "schools": int(len(geo.schools)),
                "enrollment_rows": int(len(enrollment)),
                "attendance_monthly_rows": int(len(attendance_monthly)),
                "home_visits": int(len(home_visits)),
                "treated_students": int(len(attrs)),
            },
        }
    )
    daily_source = pd.DataFrame(
        {
            "row": np.arange(len(rows)),
            "t": rt,
            "n": rn,
            "k": y1,
            "entry": spells["entry"].to_numpy()[sp],
            "exit": spells["exit"].to_numpy()[sp],
        }
    )
    return SyntheticExtract(
        tables={
            "districts": districts,
            "students": students,
            "enrollment": enrollment,
            "attendance_monthly": attendance_monthly,
            "home_visits": home_visits,
        },
        truth=truth,
        daily_source=daily_source.iloc[order].reset_index(drop=True),
        instructional_days=months.ordinals,
        itt_units=itt_units.assign(
            student_id=np.asarray(sid, dtype=object)[itt_units["student"].to_numpy()]
        ).drop(columns="student"),
    )
