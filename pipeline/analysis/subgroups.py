"""Effects of the primary design by subgroup of the matched sets' treated students."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.analysis.design import primary
from pipeline.analysis.schemas import SUBGROUP_COLUMNS
from pipeline.analysis.settings import EstimateConfig


def treated_attributes(matched: pd.DataFrame, window: tuple[int, int]) -> pd.DataFrame:
    """Subgroup attributes of each matched set's treated student, at event time 0."""
    t = matched[matched["role"] == "treated"]
    at0 = t[t["stack_event_time"] == 0].drop_duplicates("match_id").set_index("match_id")
    attrs = pd.DataFrame(index=at0.index)
    for c in ("grade_band", "cohort", "ell", "prior_year_tier", "district_code"):
        attrs[c] = at0[c].astype(object).where(at0[c].notna(), "missing").astype(str)
    mode = at0["first_visit_mode"].astype(object)
    attrs["first_visit_mode"] = np.where(
        mode == "in_person", "in_person", np.where(mode == "unknown", "unknown", "phone_or_virtual")
    )
    inwin = t[t["stack_event_time"].between(0, window[1])]
    dose = inwin.groupby("match_id")["visits_completed_to_date"].max()
    attrs["dosage"] = pd.cut(
        dose.reindex(attrs.index).fillna(1),
        [0, 1, 2, np.inf],
        labels=["1 visit", "2 visits", "3+ visits"],
    ).astype(str)
    return attrs


def subgroup_effects(matched: pd.DataFrame, y: str, cfg: EstimateConfig) -> pd.DataFrame:
    attrs = treated_attributes(matched, cfg.att_window)
    rows = []
    for sg in cfg.subgroups:
        for level, ids in attrs.groupby(sg).groups.items():
            sub = matched[matched["match_id"].isin(ids)]
            n_t = int(sub.loc[sub["role"] == "treated", "student_key"].nunique())
            n_c = int(sub.loc[sub["role"] == "comparison", "student_key"].nunique())
            row = {"subgroup": sg, "level": str(level), "n_treated": n_t, "n_comparison": n_c}
            try:
                avg = primary(sub, y, cfg, bootstrap=False).average(cfg.att_window)
                row.update(
                    estimate=avg.estimate,
                    std_error=avg.std_error,
                    ci_low=avg.ci_low,
                    ci_high=avg.ci_high,
                )
            except Exception as exc:  # noqa: BLE001 - too few students for this level
                row.update(
                    estimate=np.nan,
                    std_error=np.nan,
                    ci_low=np.nan,
                    ci_high=np.nan,
                    note=f"not estimable: {type(exc).__name__}",
                )
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=SUBGROUP_COLUMNS)
