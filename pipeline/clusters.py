"""Clusters that nest students: each student's home school and district.

Students move between schools, and a comparison student may serve in several matched
sets at different months. Clustering the errors by the school of each *row* would then
split one student across clusters, so the clustered variance would treat two rows of the
same student as independent. Here every student gets one school for the whole analysis —
the school of record in their first panel month (``home``) — so students, and with them
every matched set a student serves in, stay nested within one school and one district.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["HOME_COLUMNS", "add_home_clusters", "home_clusters"]

#: The columns whose first-month values are a student's home clusters.
HOME_COLUMNS = ("school_code", "district_code")


def home_clusters(
    panel: pd.DataFrame,
    *,
    unit: str = "student_key",
    time: str = "school_month",
    columns: tuple[str, ...] = HOME_COLUMNS,
) -> pd.DataFrame:
    """One row per student: the values of ``columns`` in the student's first month.

    Returns a frame indexed by ``unit`` with columns ``home_<column>``.
    """
    missing = [c for c in (unit, time, *columns) if c not in panel.columns]
    if missing:
        raise KeyError(f"home_clusters: column(s) {missing} missing")
    first = panel[[unit, time, *columns]].sort_values([unit, time], kind="stable")
    first = first.drop_duplicates(unit).set_index(unit)[list(columns)]
    return first.rename(columns={c: f"home_{c}" for c in columns})


def add_home_clusters(
    data: pd.DataFrame,
    homes: pd.DataFrame,
    *,
    unit: str = "student_key",
) -> pd.DataFrame:
    """``data`` with the ``home_*`` columns of :func:`home_clusters` joined by ``unit``."""
    out = data.copy()
    keys = out[unit].astype(str)
    h = homes.copy()
    h.index = h.index.astype(str)
    for c in h.columns:
        out[c] = keys.map(h[c]).to_numpy()
        if out[c].isna().any():
            raise KeyError(f"add_home_clusters: {int(out[c].isna().sum())} rows without a {c}")
    return out
