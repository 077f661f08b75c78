"""The estimate stage's descriptive tables, the truth comparison and table helpers.

The columns of every table the stage writes are in :mod:`pipeline.analysis.schemas`.
"""

from __future__ import annotations

import pandas as pd

from pipeline.analysis.schemas import (
    EVENT_MEANS_COLUMNS,
    EVENT_STUDY_COLUMNS,
    FLOW_STEPS,
    TRUTH_COLUMNS,
)
from pipeline.analysis.settings import PRIMARY
from pipeline.did.results import EventStudyResult
from pipeline.outputs import PanelAccess


def event_means(matched: pd.DataFrame, window: tuple[int, int]) -> pd.DataFrame:
    m = matched[~matched["censored"].astype(bool)]
    m = m[m["stack_event_time"].between(*window)]
    w = m["weight"] * m["ipcw"]
    g = m.assign(wy=w * m["attendance_rate"], w=w).groupby(["role", "stack_event_time"])
    out = g.agg(wy=("wy", "sum"), w=("w", "sum"), n_students=("student_key", "nunique"))
    out["mean_rate"] = out["wy"] / out["w"]
    out = out.reset_index().rename(columns={"stack_event_time": "event_time"})
    return out[EVENT_MEANS_COLUMNS]


def chronic_by_month(panel: PanelAccess) -> pd.DataFrame:
    panel = panel.columns(["month", "leap_district", "student_key", "chronic"])
    g = panel.groupby(["month", "leap_district"], observed=True)
    out = g.agg(n_students=("student_key", "nunique"), n_chronic=("chronic", "sum"))
    out = out.reset_index()
    out["n_chronic"] = out["n_chronic"].astype(int)
    return out.sort_values(["month", "leap_district"]).reset_index(drop=True)


def sample_flow(panel: PanelAccess, matched: pd.DataFrame, prim: EventStudyResult) -> pd.DataFrame:
    panel = panel.columns(["student_key", "first_visit_school_month", "leap_district"])
    visited = panel.loc[panel["first_visit_school_month"].notna(), "student_key"].nunique()
    eligible = panel.loc[panel["leap_district"].astype(bool), "student_key"].nunique()
    t = matched[matched["role"] == "treated"]
    analysed = t.loc[t["stack_event_time"] >= 1, "student_key"].nunique()
    return pd.DataFrame(
        {
            "step": FLOW_STEPS,
            "students": [
                panel["student_key"].nunique(),
                eligible,
                visited,
                t["student_key"].nunique(),
                analysed,
            ],
            "definition": [
                "students with at least one school month in membership",
                "students in membership in a program district",
                "students with a completed home visit",
                "visited students matched to at least one comparison student",
                "matched visited students observed after their first visit",
            ],
        }
    )


def truth_comparison(
    results: dict[str, EventStudyResult],
    truth: dict,
    window: tuple[int, int],
    subgroups: pd.DataFrame,
    primary_name: str = PRIMARY,
) -> pd.DataFrame:
    rows = []
    tw = truth.get("att_window")
    by_e = truth.get("att_by_event_time", {})
    for name, r in results.items():
        try:
            a = r.average(window)
            rows.append(
                {
                    "estimator": name,
                    "quantity": f"average {window[0]}-{window[1]}",
                    "estimate": a.estimate,
                    "truth": tw,
                    "ci_low": a.ci_low,
                    "ci_high": a.ci_high,
                }
            )
        except KeyError:
            pass
        ci = r.conf_int()
        for e, est in zip(r.event_time, r.estimate, strict=True):
            if str(int(e)) in by_e:
                rows.append(
                    {
                        "estimator": name,
                        "quantity": f"event time {int(e)}",
                        "estimate": est,
                        "truth": by_e[str(int(e))]["att"],
                        "ci_low": ci.loc[e, "ci_low"],
                        "ci_high": ci.loc[e, "ci_high"],
                    }
                )
    tsub = truth.get("subgroups", {})
    for _, s in subgroups.iterrows():
        level = str(s["level"]).lower() if s["subgroup"] == "ell" else str(s["level"])
        t = tsub.get(s["subgroup"], {}).get(level)
        if t is not None and t.get("att_window") is not None:
            rows.append(
                {
                    "estimator": primary_name,
                    "quantity": f"{s['subgroup']}={s['level']}",
                    "estimate": s["estimate"],
                    "truth": t["att_window"],
                    "ci_low": s["ci_low"],
                    "ci_high": s["ci_high"],
                }
            )
    out = pd.DataFrame(
        rows, columns=["estimator", "quantity", "estimate", "truth", "ci_low", "ci_high"]
    )
    out["bias"] = out["estimate"] - out["truth"]
    out["covered"] = (out["ci_low"] <= out["truth"]) & (out["truth"] <= out["ci_high"])
    return out[TRUTH_COLUMNS]


def average_dict(r: EventStudyResult, window) -> dict:
    """The average of ``r`` over ``window``: estimate, std_error, ci_low, ci_high."""
    a = r.average(window)
    return {
        "estimate": a.estimate,
        "std_error": a.std_error,
        "ci_low": a.ci_low,
        "ci_high": a.ci_high,
    }


def tidy_all(results: list[EventStudyResult]) -> pd.DataFrame:
    """The tidy event-study rows of ``results``, stacked (:data:`EVENT_STUDY_COLUMNS`)."""
    frames = [r.tidy() for r in results]
    return (
        pd.concat(frames, ignore_index=True)[EVENT_STUDY_COLUMNS]
        if frames
        else pd.DataFrame(columns=EVENT_STUDY_COLUMNS)
    )
