"""Clustering by school, and the district-level wild cluster bootstrap as a check.

The matched ANCOVA's analytic interval is clustered by each student's *home school*
(:mod:`pipeline.clusters`): students share schools, and a comparison student serving in
several matched sets stays within one cluster. With few districts running the program,
district-level shocks are not covered by school clusters; the check is a restricted wild
cluster bootstrap with *districts* as clusters (WCR, Webb's six-point weights when there
are fewer than :data:`pipeline.did.wild.FEW_CLUSTERS` districts), whose test-inversion
interval is reported beside the analytic one.
"""

from __future__ import annotations

import pandas as pd

from pipeline.did.ancova import matched_ancova
from pipeline.did.wild import choose_weights
from pipeline.history import history_options

__all__ = ["SCHOOL", "DISTRICT", "district_wild_check"]

SCHOOL = "home_school_code"
DISTRICT = "home_district_code"


def district_wild_check(
    matched: pd.DataFrame,
    *,
    yname: str = "attendance_rate",
    window: tuple[int, int] = (-6, 12),
    att_window: tuple[int, int] = (1, 6),
    fe: str | None = "district_code",
    effect_strata: str | None = None,
    district: str = DISTRICT,
    B: int = 9999,
    seed: int | None = None,
    alpha: float = 0.05,
    history: bool = False,
) -> pd.DataFrame:
    """The window average with a district-level WCR wild cluster bootstrap interval.

    ``matched`` is the stacked matched panel with ``ipcw`` and the ``district`` column
    (:func:`pipeline.clusters.add_home_clusters`); with ``history`` the design also
    conditions on the recorded year (:func:`pipeline.history.history_options`; ``matched``
    from :func:`pipeline.history.with_history`). Returns one row: ``cluster, clusters,
    weights, B, estimate, std_error, p_value, ci_low, ci_high, distinct_draws``.
    """
    if district not in matched.columns:
        raise KeyError(f"district_wild_check: column '{district}' missing (add home clusters)")
    G = int(matched[district].nunique())
    kind = choose_weights(G)
    r = matched_ancova(
        matched, yname=yname, window=window, fe=fe, cluster=district, effect_strata=effect_strata,
        average_window=att_window, wild_bootstrap=True, B=B, seed=seed,
        bootstrap_weights=kind, alpha=alpha, **history_options(history),
    )  # fmt: skip
    a = r.info["wild_bootstrap_average"]
    return pd.DataFrame(
        [
            {
                "cluster": "district",
                "clusters": G,
                "weights": kind,
                "B": int(B),
                "estimate": a["estimate"],
                "std_error": a["std_error"],
                "p_value": a["p_value"],
                "ci_low": a["ci_low"],
                "ci_high": a["ci_high"],
                "distinct_draws": float(6.0**G if kind == "webb" else 2.0**G),
            }
        ]
    )
