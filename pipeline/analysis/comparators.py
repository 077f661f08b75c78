"""Comparator estimators on the matched students' own panels.

Each student is first treated at their own first visit, never-visited students are
controls: the naive before/after on visited students only, two-way fixed effects,
Callaway–Sant'Anna with not-yet-treated controls (unconditional and doubly robust with
baseline covariates; balanced students only, as the implemented panel estimator
requires), Sun–Abraham and imputation.  A comparator that fails is recorded, not hidden.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd

from pipeline.analysis.design import add_outcomes
from pipeline.analysis.settings import EstimateConfig
from pipeline.did.cs import aggte, att_gt
from pipeline.did.imputation import imputation
from pipeline.did.naive import naive_before_after
from pipeline.did.results import EventStudyResult
from pipeline.did.sunab import sun_abraham
from pipeline.did.twfe import twfe_event_study
from pipeline.outputs import PanelAccess

log = logging.getLogger("pipeline.estimate")


def comparator_panel(panel: PanelAccess, students: pd.Index) -> pd.DataFrame:
    """Panel rows of the given students with ``g`` = own first visit month (0 = never)."""
    p = add_outcomes(panel.rows(students)).copy()
    p["g"] = p["first_visit_school_month"].astype("float64").fillna(0).astype("int64")
    p["t"] = p["school_month"].astype("int64")
    # a cluster constant within student (the school of the student's first month) for the
    # estimators that need one; students move between schools
    first = p.sort_values(["student_key", "t"]).drop_duplicates("student_key")
    p["school_base"] = p["student_key"].map(first.set_index("student_key")["school_code"])
    return p


def _baseline_covariates(p: pd.DataFrame) -> pd.DataFrame:
    first = p.sort_values(["student_key", "t"]).drop_duplicates("student_key")
    cov = pd.DataFrame(
        {
            "student_key": first["student_key"],
            "x_frl": first["frl"].astype(float),
            "x_ell": first["ell"].astype(float),
            "x_swd": first["swd"].astype(float),
            "x_hs": (first["grade_band"] == "6-12").astype(float),
        }
    )
    return p.merge(cov, on="student_key", how="left")


def comparators(cp: pd.DataFrame, y: str, cfg: EstimateConfig) -> tuple[list, dict]:
    """Run every comparator; failures are recorded, not hidden."""
    lo, hi = cfg.event_window
    common = dict(yname=y, tname="t", idname="student_key", gname="g")
    results, errors = [], {}
    runners = {
        "naive_before_after": lambda: naive_before_after(
            cp, **common, window=cfg.event_window, ref=cfg.reference, cluster=cfg.cluster
        ),
        "twfe": lambda: twfe_event_study(
            cp,
            **common,
            cluster=cfg.cluster,
            ref=cfg.reference[0],
            window=cfg.event_window,
            bin_endpoints=True,
        ),
        "sun_abraham": lambda: sun_abraham(
            cp,
            **common,
            control="lastcohort" if not (cp["g"] == 0).any() else "never",
            cluster=cfg.cluster,
            ref=cfg.reference[0],
            window=cfg.event_window,
            bin_endpoints=True,
        ),
        "imputation": lambda: imputation(
            cp,
            **common,
            cluster=cfg.cluster,
            horizons=list(range(0, hi + 1)),
            pretrends=list(range(lo, -1)),
        ),
        "callaway_santanna_unconditional": lambda: _cs(cp, y, cfg, "unconditional"),
        "callaway_santanna_dr": lambda: _cs(cp, y, cfg, "dr"),
    }
    for name in cfg.comparators:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r = runners[name]()
            if caught:
                # estimator warnings (e.g. 2x2 cells too small to estimate) are summarized,
                # not printed one by one; the count is kept with the result
                first = str(caught[0].message)
                log.info("%s: %d warnings, first: %s", name, len(caught), first[:160])
                r.info["warnings"] = len(caught)
        except Exception as exc:  # noqa: BLE001 - recorded and reported
            log.warning("comparator %s failed: %s", name, exc)
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        r.estimator = name
        r.info["seconds"] = round(time.perf_counter() - t0, 2)
        results.append(r)
    return results, errors


def _cs(cp: pd.DataFrame, y: str, cfg: EstimateConfig, method: str) -> EventStudyResult:
    # the implemented panel estimator needs a balanced panel: keep students observed in
    # every month of the extract
    periods = cp["t"].nunique()
    n = cp.groupby("student_key")["t"].transform("nunique")
    bal = _baseline_covariates(cp[n == periods])
    kw = {}
    if method == "dr":
        kw = dict(covariates=["x_frl", "x_ell", "x_swd", "x_hs"], est_method="dr")
    else:
        kw = dict(est_method="unconditional") if method == "unconditional" else {}
    gt = att_gt(
        bal,
        yname=y,
        tname="t",
        idname="student_key",
        gname="g",
        control_group="notyettreated",
        clustervars="school_base",
        alp=cfg.alpha,
        base_period="universal",
        **kw,
    )
    # cells whose 2x2 regression cannot be estimated (too few students) are left out of the
    # aggregation and counted, as R's na.rm = TRUE does
    att = np.asarray(gt.table()["att"], dtype=float) if hasattr(gt, "table") else None
    agg = aggte(
        gt, type="dynamic", min_e=cfg.event_window[0], max_e=cfg.event_window[1], na_rm=True
    )
    res = agg.to_event_study(f"callaway_santanna_{method}")
    res.info["balanced_students"] = int(bal["student_key"].nunique())
    if att is not None:
        res.info["att_gt_cells_not_estimable"] = int(np.isnan(att).sum())
    return res
