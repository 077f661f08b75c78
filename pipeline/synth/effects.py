"""Effects of the program and the ground truth.

After a student's first completed visit (effective school month ``F``; a summer visit
takes effect in September) the attendance probability rises by ``tau`` percentage
points at event time ``e = t − F``:

``base(0) = visit_month_share × first_month``;
``base(e ≥ 1) = long_run − (long_run − first_month) × exp(−(e − 1) / ramp_months)``;
``tau = base(e) × m_grade × m_mode × m_ell × m_cohort + per_extra_visit × (visits − 1)``

with multipliers for grades 6–12 versus PK–5, in-person versus phone or virtual first
visits, English learners and the cohort, and a dosage term for each further completed
visit to date.  The treated potential outcome is drawn *coupled* to the untreated one:
each day absent without the program becomes a day present with probability
``q = (p1 − p0) / (1 − p0)``, so ``Y1 ~ Binomial(n, p1)`` exactly and ``Y1 ≥ Y0``.
The truth is computed from both potential outcomes of the students actually observed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.calendar import cohort_label
from pipeline.synth.config import EffectConfig

MODE_GROUP = np.array(["in_person", "phone_or_virtual", "phone_or_virtual"])


def effect_profile(e: np.ndarray, cfg: EffectConfig) -> np.ndarray:
    e = np.asarray(e, dtype=float)
    later = cfg.long_run - (cfg.long_run - cfg.first_month) * np.exp(
        -(np.maximum(e, 1) - 1) / cfg.ramp_months
    )
    out = np.where(e == 0, cfg.visit_month_share * cfg.first_month, later)
    return np.where(e < 0, 0.0, out)


def student_attributes(first_t, first_mode, first_date, grade_at_first, ell_at_first):
    """Subgroup attributes of each treated student, fixed at event time 0."""
    treated = np.flatnonzero(first_t >= 0)
    d = first_date[treated].astype("datetime64[D]")
    years = d.astype("datetime64[Y]").astype(int) + 1970
    months = d.astype("datetime64[M]").astype(int) % 12 + 1
    return pd.DataFrame(
        {
            "student": treated,
            "first_t": first_t[treated],
            "cohort": cohort_label(years, months),
            "grade_band": np.where(grade_at_first[treated] >= 6, "6-12", "PK-5"),
            "first_visit_mode": MODE_GROUP[first_mode[treated]],
            "ell": ell_at_first[treated],
        }
    )


def treatment_effects(
    rows_student: np.ndarray,
    rows_t: np.ndarray,
    attrs: pd.DataFrame,
    completed_to_date: np.ndarray,
    n_students: int,
    cfg: EffectConfig,
    multiplier: np.ndarray | None = None,
) -> np.ndarray:
    """``tau`` in points for every membership row (0 before treatment / never treated);
    ``multiplier`` (per student) scales each student's effect profile (selection on gains,
    :mod:`pipeline.synth.worlds`)."""
    if cfg.zero:
        return np.zeros(rows_student.size)
    N = n_students
    first_t = np.full(N, -1, dtype=np.int64)
    mult = np.zeros(N)
    first_t[attrs["student"]] = attrs["first_t"]
    m = np.where(attrs["grade_band"] == "6-12", cfg.grade_6_12, cfg.grade_pk_5)
    m = m * np.where(attrs["first_visit_mode"] == "in_person", cfg.in_person, cfg.remote)
    m = m * np.where(attrs["ell"], cfg.ell, 1.0)
    m = m * attrs["cohort"].map(lambda c: cfg.cohort.get(c, 1.0)).to_numpy(dtype=float)
    mult[attrs["student"]] = m
    if multiplier is not None:
        mult = mult * multiplier
    ft = first_t[rows_student]
    e = rows_t - ft
    post = (ft >= 0) & (e >= 0)
    tau = np.zeros(rows_student.size)
    visits = completed_to_date[rows_student[post], rows_t[post]].astype(float)
    tau[post] = effect_profile(e[post], cfg) * mult[rows_student[post]] + (
        cfg.per_extra_visit * np.maximum(visits - 1, 0)
    )
    return tau


def coupled_treated_outcome(
    rng, n: np.ndarray, y0: np.ndarray, p0: np.ndarray, tau: np.ndarray
) -> np.ndarray:
    """Draw ``Y1`` coupled to ``Y0`` (see module docstring)."""
    y1 = y0.copy()
    p1 = np.clip(p0 + tau / 100.0, 1e-6, 1 - 1e-6)
    up = tau > 0
    q = (p1[up] - p0[up]) / (1 - p0[up])
    y1[up] = y0[up] + rng.binomial(n[up] - y0[up], np.clip(q, 0, 1))
    down = tau < 0
    y1[down] = rng.binomial(y0[down], np.clip(p1[down] / p0[down], 0, 1))
    return y1


def truth_tables(
    student_t: pd.DataFrame,
    attrs: pd.DataFrame,
    window: tuple[int, int],
    event_range: tuple[int, int],
) -> dict:
    """Truth by event time, overall and by subgroup.

    ``student_t`` has one row per treated student and month in membership with columns
    ``student, t, n, y0, y1, p0, p1`` (summed / day-weighted over the student's schools).
    The effect of a student-month is ``100 (y1 − y0) / n`` (realized) and
    ``100 (p1 − p0)`` day-weighted (expected).  ``att[e]`` averages over the treated
    students observed at ``e``; the window average is the equal-weight mean of
    ``att[e]`` over the window's event times (as the estimators' window averages are).
    """
    df = student_t.merge(attrs, on="student", how="inner")
    df["e"] = df["t"] - df["first_t"]
    df = df[(df["e"] >= event_range[0]) & (df["e"] <= event_range[1])]
    df["effect"] = 100.0 * (df["y1"] - df["y0"]) / df["n"]
    df["effect_expected"] = 100.0 * (df["p1"] - df["p0"])
    r0, r1 = 100.0 * df["y0"] / df["n"], 100.0 * df["y1"] / df["n"]
    df["effect_chronic"] = 100.0 * ((r1 <= 90).astype(float) - (r0 <= 90).astype(float))

    def by_e(d: pd.DataFrame) -> dict:
        g = d.groupby("e")
        out = {}
        for e, grp in g:
            out[str(int(e))] = {
                "att": float(grp["effect"].mean()),
                "att_expected": float(grp["effect_expected"].mean()),
                "att_chronic": float(grp["effect_chronic"].mean()),
                "n_treated": int(grp["student"].nunique()),
            }
        return out

    def window_avg(table: dict, key: str = "att") -> float | None:
        vals = [table[str(e)][key] for e in range(window[0], window[1] + 1) if str(e) in table]
        if len(vals) < window[1] - window[0] + 1:
            return None
        return float(np.mean(vals))

    overall = by_e(df)
    win = df[(df["e"] >= window[0]) & (df["e"] <= window[1])]
    result = {
        "att_by_event_time": overall,
        "att_window": window_avg(overall),
        "att_window_expected": window_avg(overall, "att_expected"),
        "att_window_chronic": window_avg(overall, "att_chronic"),
        "att_window_pooled": float(win["effect"].mean()) if len(win) else None,
        "subgroups": {},
    }
    for col in ("grade_band", "first_visit_mode", "cohort", "ell"):
        sub = {}
        for level, d in df.groupby(col):
            t = by_e(d)
            sub[str(level).lower() if isinstance(level, (bool, np.bool_)) else str(level)] = {
                "att_window": window_avg(t),
                "n_treated": int(d.loc[d["e"] == 0, "student"].nunique()),
                "att_by_event_time": {k: v["att"] for k, v in t.items()},
            }
        result["subgroups"][col] = sub
    return result


def itt_truth_tables(
    rows: pd.DataFrame,
    first_attempt_t: np.ndarray,
    first_completed_t: np.ndarray,
    window: tuple[int, int],
    event_range: tuple[int, int],
) -> dict:
    """Truth of the intent-to-treat effect at the first *attempted* visit, and of the
    effect on families reached as Bloom's adjustment targets it.

    Parameters
    ----------
    rows : DataFrame
        One row per student and month in membership (summed over the student's schools)
        with columns ``student, t, n, y0, y1``: days in membership and days present
        without and with the program.
    first_attempt_t : ndarray
        Per student, the effective school month of the first home visit of either outcome
        (completed or attempted; a July or August visit takes effect in September), ``-1``
        when never attempted. This is the event of :func:`pipeline.attempts.attempt_panel`.
    first_completed_t : ndarray
        Per student, the effective school month of the first completed visit, ``-1`` if
        none.
    window, event_range : (int, int)
        The averaging window and the event times tabulated.

    Returns
    -------
    dict
        ``itt_by_event_time`` (per event time ``e``: ``itt``, the mean over the attempted
        students observed at ``e`` of the realized effect ``100 (y1 − y0) / n`` — zero where
        the family has not been reached, since in the generator only completed visits move
        attendance —, ``share_reached``, the share of them whose first completed visit is at
        or before that month, and ``n_attempted``); ``itt_window``, the equal-weight mean of
        ``itt`` over the window's event times (as the estimators' window averages), ``None``
        unless every event time of the window is observed; ``reached_window``, the window
        ITT divided by the equal-weight mean share reached over the window — exactly what
        :func:`pipeline.attempts.bloom` estimates (ITT ÷ mean share). Because an attempt
        without contact changes nothing, ``itt(e) = share(e) × effect among the reached at
        e``, so ``reached_window`` is the share-weighted mean over the window of the effect
        on the families reached by each event time.
    """
    fa = np.asarray(first_attempt_t)
    fc = np.asarray(first_completed_t)
    s = rows["student"].to_numpy()
    keep = fa[s] >= 0
    d = rows.loc[keep, ["student", "t", "n", "y0", "y1"]]
    s = s[keep]
    t = d["t"].to_numpy()
    e = t - fa[s]
    inside = (e >= event_range[0]) & (e <= event_range[1]) & (d["n"].to_numpy() > 0)
    df = pd.DataFrame(
        {
            "student": s[inside],
            "e": e[inside],
            "effect": 100.0
            * (d["y1"].to_numpy() - d["y0"].to_numpy())[inside]
            / d["n"].to_numpy()[inside],
            "reached": ((fc[s] >= 0) & (fc[s] <= t))[inside].astype(float),
        }
    )
    g = df.groupby("e")
    table = {
        str(int(k)): {
            "itt": float(grp["effect"].mean()),
            "share_reached": float(grp["reached"].mean()),
            "n_attempted": int(grp["student"].nunique()),
        }
        for k, grp in g
    }
    keys = [str(k) for k in range(window[0], window[1] + 1)]
    if all(k in table for k in keys):
        itt = float(np.mean([table[k]["itt"] for k in keys]))
        share = float(np.mean([table[k]["share_reached"] for k in keys]))
        reached = itt / share if share > 0 else None
    else:
        itt = reached = None
    return {
        "itt_by_event_time": table,
        "itt_window": itt,
        "reached_window": reached,
        "itt_event_time": "school months relative to the first home visit of either outcome "
        "(completed or attempted; July/August visits take effect in September)",
    }


def itt_truth_for(
    units: pd.DataFrame,
    student_ids,
    window: tuple[int, int],
    event_range: tuple[int, int] = (-12, 1000),
) -> dict:
    """:func:`itt_truth_tables` over some of the attempted students only.

    The generator's ``itt_window`` averages over *every* student with an attempt; a matched
    design estimates the effect among the attempted students it could match (those with
    the recorded months and a comparison student in their stratum). This is the truth of
    that estimand: the same table, computed from the same potential outcomes
    (``SyntheticExtract.itt_units``), over ``student_ids`` (raw IDs) alone.

    Parameters
    ----------
    units : DataFrame
        ``student_id, t, n, y0, y1, first_attempt_t, first_completed_t`` per attempted
        student and month in membership.
    student_ids : iterable of str
        The students to average over (others are left out).
    window, event_range : (int, int)
        As in :func:`itt_truth_tables`.
    """
    codes, uniq = pd.factorize(units["student_id"])
    n = len(uniq)
    fa = np.full(n, -1, dtype=np.int64)
    fc = np.full(n, -1, dtype=np.int64)
    fa[codes] = units["first_attempt_t"].to_numpy(dtype=np.int64)
    fc[codes] = units["first_completed_t"].to_numpy(dtype=np.int64)
    keep = np.asarray(pd.Index(uniq).isin(pd.Index(list(student_ids))))
    fa[~keep] = -1
    rows = pd.DataFrame(
        {"student": codes, **{c: units[c].to_numpy() for c in ("t", "n", "y0", "y1")}}
    )
    return itt_truth_tables(rows, fa, fc, window, event_range)


def completed_truth_for(
    units: pd.DataFrame,
    student_ids,
    window: tuple[int, int],
    event_range: tuple[int, int] = (-12, 1000),
) -> float | None:
    """The completed-visit truth (``att_window``) over some of the visited students only.

    The generator's ``att_window`` averages over *every* student with a completed visit;
    a matched design estimates the effect on the visited students it could match (those
    with the recorded months and a comparison student close enough in their stratum), and
    the two differ when the students left out gain more or less than the rest. This is the
    truth of the matched design's own estimand: the equal-weight mean over the window's
    event times (relative to the first completed visit) of the mean realized effect
    ``100 (y1 − y0) / n`` over the listed students observed at each, from the same
    potential outcomes (``SyntheticExtract.itt_units``, which hold every visited student,
    since a completed visit is an attempt). Over every visited student it equals the
    generator's ``att_window``.

    Parameters
    ----------
    units : DataFrame
        As in :func:`itt_truth_for`.
    student_ids : iterable of str
        The students to average over (others, and students never visited, are left out).
    window, event_range : (int, int)
        As in :func:`itt_truth_tables`.

    Returns
    -------
    float or None
        ``None`` unless every event time of the window is observed.
    """
    # the ITT table keyed on the first *completed* visit is the completed-visit truth
    # (every listed student is "reached" from event time 0 on)
    as_attempt = units.assign(first_attempt_t=units["first_completed_t"])
    return itt_truth_for(as_attempt, student_ids, window, event_range)["itt_window"]
