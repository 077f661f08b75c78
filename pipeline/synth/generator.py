"""Assemble the synthetic extract: contract tables plus the ground truth."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special

from pipeline.calendar import school_year_label
from pipeline.contract import CHRONIC_THRESHOLD, GRADES, RACE_CODES, SEX_CODES
from pipeline.synth import attendance as att
from pipeline.synth.config import SynthConfig
from pipeline.synth.effects import (
    coupled_treated_outcome,
    student_attributes,
    treatment_effects,
    truth_tables,
)
from pipeline.synth.population import make_geography, simulate_population
from pipeline.synth.visits import MODES, simulate_visits, student_months

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


def _student_ids(rng, n: int) -> np.ndarray:
    """Unique 10-digit state IDs with leading zeros (SASID-like)."""
    ids = np.unique(rng.integers(0, 10**10, size=int(n * 1.2) + 100))
    ids = rng.permutation(ids)[:n]
    if ids.size < n:  # pragma: no cover - astronomically unlikely
        raise RuntimeError("could not draw unique student IDs")
    return np.array([f"{x:010d}" for x in ids], dtype=object)


def _iso(ordinals: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(ordinals.astype("datetime64[D]"), unit="D").astype(object)


def generate(cfg: SynthConfig) -> SyntheticExtract:
    """Generate a synthetic state extract following the data contract."""
    ss = np.random.SeedSequence(cfg.seed)
    (r_geo, r_pop, r_alpha, r_shock, r_y0, r_visit, r_y1, r_ids) = (
        np.random.default_rng(s) for s in ss.spawn(8)
    )
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
    targets = [cfg.chronic_targets[y] for y in cfg.school_years]
    mu = att.calibrate_year_effects(eta, rn, rs, months.year_idx[rt], targets)
    p0 = special.expit(eta + mu[months.year_idx[rt]])
    y0 = r_y0.binomial(rn, p0)

    log.info("referrals and home visits")
    sm = student_months(rows, spells, N, T, y0)
    visits = simulate_visits(r_visit, sm, spells, months, geo.districts["leap"].to_numpy(),
                             cfg.program, u)
    fs = visits.first_spell
    grade_first = np.where(fs >= 0, spells["grade"].to_numpy()[np.maximum(fs, 0)], -1)
    ell_first = np.where(fs >= 0, spells["ell"].to_numpy()[np.maximum(fs, 0)], False)
    attrs = student_attributes(visits.first_t, visits.first_mode, visits.first_date,
                               grade_first, ell_first)

    log.info("effects for %d treated students", len(attrs))
    tau = treatment_effects(rs, rt, attrs, visits.completed_to_date, N, cfg.effects)
    y1 = coupled_treated_outcome(r_y1, rn, y0, p0, tau)
    p1 = np.clip(p0 + tau / 100.0, 1e-6, 1 - 1e-6)
    p1 = np.where(tau == 0, p0, p1)

    treated_rows = np.isin(rs, attrs["student"].to_numpy())
    st = pd.DataFrame({"student": rs[treated_rows], "t": rt[treated_rows],
                       "n": rn[treated_rows], "y0": y0[treated_rows], "y1": y1[treated_rows],
                       "p0n": (p0 * rn)[treated_rows], "p1n": (p1 * rn)[treated_rows]})
    st = st.groupby(["student", "t"], as_index=False).sum()
    st["p0"] = st["p0n"] / st["n"]
    st["p1"] = st["p1n"] / st["n"]
    truth = truth_tables(st, attrs, PRIMARY_WINDOW, (-12, T))

    # ---- contract tables ------------------------------------------------------------
    sid = _student_ids(r_ids, N)
    dcode = geo.districts["district_code"].to_numpy()
    scode = geo.schools["school_code"].to_numpy()
    year_labels = np.array([school_year_label(y) for y in cfg.start_years], dtype=object)
    month_labels = np.array(months.labels(), dtype=object)
    districts = geo.districts[["district_code", "district_name", "leap"]].copy()
    students = pd.DataFrame({
        "student_id": sid,
        "sex": np.array(SEX_CODES, dtype=object)[pop.students["sex"].to_numpy()],
        "race_ethnicity": np.array(RACE_CODES, dtype=object)[pop.students["race"].to_numpy()],
    })
    exit_ = spells["exit"].to_numpy()
    enrollment = pd.DataFrame({
        "student_id": sid[spells["student"].to_numpy()],
        "school_year": year_labels[spells["year"].to_numpy()],
        "district_code": dcode[spells["district"].to_numpy()],
        "school_code": scode[spells["school"].to_numpy()],
        "grade": GRADE_LABELS[spells["grade"].to_numpy()],
        "entry_date": _iso(spells["entry"].to_numpy()),
        "exit_date": np.where(exit_ >= 0, _iso(np.maximum(exit_, 0)), ""),
        "frl": spells["frl"].to_numpy(),
        "ell": spells["ell"].to_numpy(),
        "swd": spells["swd"].to_numpy(),
    })
    attendance_monthly = pd.DataFrame({
        "student_id": sid[rs],
        "school_year": year_labels[months.year_idx[rt]],
        "district_code": dcode[spells["district"].to_numpy()[sp]],
        "school_code": scode[spells["school"].to_numpy()[sp]],
        "month": month_labels[rt],
        "days_membership": rn.astype(np.int32),
        "days_present": y1.astype(np.int32),
    })
    vt = visits.table
    home_visits = pd.DataFrame({
        "visit_id": [f"V{i + 1:08d}" for i in range(len(vt))],
        "student_id": sid[vt["student"].to_numpy()],
        "district_code": dcode[vt["district"].to_numpy()],
        "visit_date": _iso(vt["date"].to_numpy()),
        "outcome": np.where(vt["completed"].to_numpy(), "completed", "attempted"),
        "mode": np.array(MODES, dtype=object)[vt["mode"].to_numpy().astype(int)],
    })
    order = np.lexsort((attendance_monthly["school_code"], attendance_monthly["month"],
                        attendance_monthly["student_id"]))
    attendance_monthly = attendance_monthly.iloc[order].reset_index(drop=True)
    enrollment = enrollment.sort_values(["student_id", "school_year", "entry_date"],
                                        kind="stable").reset_index(drop=True)
    students = students.sort_values("student_id", kind="stable").reset_index(drop=True)

    # ---- calibration check and metadata --------------------------------------------
    yearly = pd.DataFrame({"s": rs, "y": months.year_idx[rt], "n": rn, "k": y1})
    yearly = yearly.groupby(["y", "s"])[["n", "k"]].sum()
    chronic = (100 * yearly["k"] / yearly["n"] <= CHRONIC_THRESHOLD).groupby(level="y").mean()
    truth.update({
        "synthetic": True,
        "generator": "pipeline.synth",
        "seed": cfg.seed,
        "config": asdict(cfg),
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
    })
    daily_source = pd.DataFrame({
        "row": np.arange(len(rows)), "t": rt, "n": rn, "k": y1,
        "entry": spells["entry"].to_numpy()[sp], "exit": exit_[sp],
    })
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
    )
