"""One source for every sample size the report prints.

:func:`sample_sizes` builds the table of populations (students in the extract, in a
program district, visited, matched, observed after the visit, matched comparison
students, and the differences between them) from the published sample flow and the
estimate stage's headline counts.  Every section of the report reads its counts from
this table (by population key), so no two places can disagree; when the inputs
themselves disagree the stage stops with a message naming both.
"""

from __future__ import annotations

import pandas as pd

from pipeline.reporting.inputs import ReportInputError

POPULATIONS = {
    "extract": "students in the extract",
    "eligible": "students in a program district",
    "visited": "students with a completed home visit",
    "matched": "visited students matched to comparison students",
    "analysed": "matched visited students observed after their first visit",
    "comparison": "matched comparison students",
    "not_matched": "visited students not matched",
    "not_observed": "matched visited students not observed after their first visit",
}


def sample_sizes(flow: pd.DataFrame, metrics: dict) -> pd.DataFrame:
    """The sample-size table: ``population, label, students``.

    Parameters
    ----------
    flow
        The published sample flow (``step, students``; suppressed counts missing).
    metrics
        ``metrics.json`` of the estimate stage (``n_treated``, ``n_comparison``).

    Raises
    ------
    ReportInputError
        When ``metrics.json``'s ``n_treated`` differs from the sample flow's
        ``matched`` step (the same population counted twice, differently).
    """
    f = flow.set_index("step")["students"]
    n = {k: (None if pd.isna(f.get(k)) else int(f[k])) for k in
         ("extract", "eligible", "visited", "matched", "analysed")}
    if n["matched"] is not None and int(metrics["n_treated"]) != n["matched"]:
        raise ReportInputError(
            f"metrics.json 'n_treated' ({metrics['n_treated']}) differs from the "
            f"'matched' step of sample_flow.csv ({n['matched']}): the same population "
            "is counted differently"
        )
    n["matched"] = int(metrics["n_treated"])
    n["comparison"] = int(metrics["n_comparison"])
    n["not_matched"] = (
        n["visited"] - n["matched"] if n["visited"] is not None else None
    )
    n["not_observed"] = (
        n["matched"] - n["analysed"] if n["analysed"] is not None else None
    )
    students = pd.array([n[k] for k in POPULATIONS], dtype="Int64")
    return pd.DataFrame(
        {
            "population": list(POPULATIONS),
            "label": [v[:1].upper() + v[1:] for v in POPULATIONS.values()],
            "students": students,
            "suppressed": ["students" if pd.isna(x) else "" for x in students],
        }
    )


def as_dict(sizes: pd.DataFrame) -> dict[str, int | None]:
    """``{population: students}`` for the templates (``None`` when suppressed)."""
    return {
        p: (None if pd.isna(v) else int(v))
        for p, v in zip(sizes["population"], sizes["students"], strict=True)
    }
