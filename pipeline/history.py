"""Recorded attendance history beyond the three months the matching uses.

Referral can read more of the record than the last three months: a student's level over
the year, the year-to-date rate a school's report shows, or a number of recent months that
differs by district (the stress-test worlds of :mod:`pipeline.synth.worlds`). The primary
design (``estimate.history: true``, :func:`pipeline.analysis.design.ancova`) therefore also
conditions on, at the first visit:

``ytd_rate``
    the rate over the school year before the month (the prior year's rate in the first
    month of a year: what a year-to-date report shows then);
``level_rate``
    the rate over every recorded month before the month (the student's own mean);
``rate_lag4``
    the rate four school months before (so event time −4 joins the reference months,
    :data:`HISTORY_REFS`).

All three are computed from recorded days only (``days_present``, ``days_membership`` of
the panel), so they are available to the real evaluation. Without them the design was
biased by 1.1 to 1.5 points where referral read the level or the year-to-date rate
(``benchmarks/results/worlds_impute_n100``, the rows ``matched_ancova``); with them it met
its targets there (the rows ``matched_ancova_extended`` of that study, and
``benchmarks/results/worlds_history_n100``, the study of the design as the stage runs it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns :func:`recorded_history` adds.
HISTORY_COLUMNS = ("ytd_rate", "level_rate", "rate_lag4")
#: Event times whose outcome a history column records (``rate_lag4`` at the first visit is
#: the rate at event time −4): reference months of the design, not placebo outcomes.
HISTORY_REFS = (-4,)
#: The panel columns :func:`recorded_history` reads.
HISTORY_PANEL_COLUMNS = (
    "student_key",
    "school_month",
    "school_year",
    "days_present",
    "days_membership",
    "prior_year_rate",
)


def history_options(history: bool) -> dict:
    """:func:`pipeline.did.ancova.matched_ancova`'s options that condition on the recorded
    year (``extra``, ``extra_refs``); none when ``history`` is false."""
    if not history:
        return {}
    return {"extra": HISTORY_COLUMNS, "extra_refs": HISTORY_REFS}


def recorded_history(panel: pd.DataFrame) -> pd.DataFrame:
    """``student_key, school_month`` and :data:`HISTORY_COLUMNS` for every panel row.

    ``panel`` needs ``student_key, school_month, school_year, days_present,
    days_membership, prior_year_rate`` (one row per student and school month).
    """
    cols = list(HISTORY_PANEL_COLUMNS)
    missing = [c for c in cols if c not in panel.columns]
    if missing:
        raise KeyError(f"recorded_history: panel lacks column(s) {missing}")
    p = panel[cols].sort_values(["student_key", "school_month"], kind="stable")
    if p.duplicated(["student_key", "school_month"]).any():
        raise ValueError("recorded_history: more than one panel row per student and month")
    y = p["days_present"].to_numpy(dtype=float)
    n = p["days_membership"].to_numpy(dtype=float)
    key = p["student_key"].to_numpy()
    yr = p["school_year"].astype(str).to_numpy()

    def before(groups: list) -> tuple[np.ndarray, np.ndarray]:
        g = pd.DataFrame({"y": y, "n": n}).groupby(groups, sort=False)
        return (g["y"].cumsum().to_numpy() - y, g["n"].cumsum().to_numpy() - n)

    with np.errstate(invalid="ignore", divide="ignore"):
        yy, nn = before([key, yr])
        ytd = np.where(nn > 0, 100.0 * yy / np.where(nn > 0, nn, 1), np.nan)
        ytd = np.where(np.isnan(ytd), p["prior_year_rate"].to_numpy(dtype=float), ytd)
        ya, na = before([key])
        level = np.where(na > 0, 100.0 * ya / np.where(na > 0, na, 1), np.nan)
    out = pd.DataFrame(
        {
            "student_key": key,
            "school_month": p["school_month"].to_numpy(),
            "ytd_rate": ytd,
            "level_rate": level,
        }
    )
    rate = pd.DataFrame(
        {
            "student_key": key,
            "school_month": p["school_month"].to_numpy() + 4,
            "rate_lag4": np.where(n > 0, 100.0 * y / np.where(n > 0, n, 1), np.nan),
        }
    )
    return out.merge(rate, on=["student_key", "school_month"], how="left")


def with_history(stacked: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """The stacked matched rows with :data:`HISTORY_COLUMNS` joined on student and month."""
    h = recorded_history(panel)
    keys = ["student_key", "school_month"]
    h = h.astype({"school_month": stacked["school_month"].dtype})
    out = stacked.drop(columns=[c for c in HISTORY_COLUMNS if c in stacked.columns])
    return out.merge(h, on=keys, how="left", validate="many_to_one")


def extended_ancova(matched: pd.DataFrame, yname: str, **kw):
    """The matched ANCOVA that also conditions on :data:`HISTORY_COLUMNS` at the first
    visit (``matched`` from :func:`with_history`; ``kw`` as for
    :func:`pipeline.did.ancova.matched_ancova`), with :data:`HISTORY_REFS` among its
    reference months. The estimate stage fits the same design through
    :func:`pipeline.analysis.design.ancova` when ``estimate.history`` is on, and so does
    the simulation study, under this name, beside a primary without the history.

    Returns
    -------
    EventStudyResult
        As :func:`~pipeline.did.ancova.matched_ancova`, under the registered estimator
        name ``matched_ancova_extended`` (:data:`pipeline.registry.ESTIMATORS`).
    """
    from pipeline.did.ancova import matched_ancova

    res = matched_ancova(matched, yname=yname, extra=HISTORY_COLUMNS, extra_refs=HISTORY_REFS, **kw)
    res.estimator = "matched_ancova_extended"
    return res
