"""Reading and checking the report stage's inputs (the estimate stage's outputs).

:func:`load_inputs` reads ``metrics.json`` and the tables under ``reports/tables``;
a missing file, key or column, or a malformed value, raises :class:`ReportInputError`
naming the file and the key or column.  Tables written by later analyses
(:data:`OPTIONAL_TABLES`) are read when present; the report says what was not
assessed when they are absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.analysis.schemas import EST_COLUMNS as EST_COLS
from pipeline.analysis.schemas import FLOW_STEPS, required_columns
from pipeline.reporting import worlds

INPUT_COLUMNS: dict[str, list[str]] = {
    "event_study": required_columns("event_study"),
    "event_study_chronic": required_columns("event_study_chronic"),
    "subgroups": required_columns("subgroups"),
    "robustness": required_columns("robustness"),
    "event_means": required_columns("event_means"),
    "sample_flow": required_columns("sample_flow"),
    "chronic_by_month": required_columns("chronic_by_month"),
    "balance": ["covariate", "smd_before", "smd_after", "variance_ratio_after"],
    "data_quality": ["table", "reason", "rows"],
    "data_quality_panel": ["table", "reason", "rows"],
    "match_summary": [],  # either format, see normalise_match_summary
}
SYNTHETIC_ONLY = {"truth_comparison": required_columns("truth_comparison")}
MATCH_SUMMARY_LONG = ["dimension", "level", "treated", "matched", "unmatched"]
# the match stage's cross-tabulation: one row per district × grade band × tier (+ "ALL")
MATCH_SUMMARY_CROSSTAB = {
    "district": "district_code",
    "grade_band": "grade_band",
    "tier": "prior_year_tier",
}
# Tables other analyses write when they run (the estimate stage's estimands and
# sensitivity suite, issues 17-18; the costs stage, issue 23); each is optional: the
# report leaves out what is absent.  The columns are those of their schemas
# (pipeline/analysis/schemas.py; columns a reader may find missing excepted).
#: The estimands beside the headline (pipeline/analysis/estimands), read when present.
ESTIMAND_INPUTS = ("estimands", "attrition", "censoring_diagnostics", "chronic_yearly")
#: The sensitivity suite and evidence standards (pipeline/sensitivity).
SENSITIVITY_INPUTS = (
    "sensitivity_ovb", "sensitivity_ovb_bounds", "sensitivity_ovb_contour",
    "sensitivity_rosenbaum", "sensitivity_honestdid", "sensitivity_falsification",
    "wwc", "effect_sizes", "subgroup_contrasts", "subgroup_tests",
)  # fmt: skip
#: The costs stage's tables (pipeline/analysis/costs_report.py).
COST_INPUTS = ("cost_effectiveness", "cost_sensitivity")
OPTIONAL_TABLES: dict[str, list[str]] = {
    **{n: required_columns(n) for n in (*ESTIMAND_INPUTS, *SENSITIVITY_INPUTS)},
    **{n: [] for n in COST_INPUTS},
}
#: Columns of the simulation study's verdict table the report reads (``verdicts.csv``
#: beside ``report.validation_table``; :mod:`pipeline.validation.verdicts`).
VERDICT_COLUMNS = ["scenario", "world", "design", "n_reps", "verdict", "reason"]
METRIC_KEYS = [
    "primary_estimator",
    "att",
    "att_window",
    "n_treated",
    "n_comparison",
    "max_abs_smd_after",
    "synthetic",
    "outcome",
    "pretrend_test",
    "naive",
    "twfe",
    "att_chronic",
]


class ReportInputError(ValueError):
    """A missing or malformed input of the report stage."""


@dataclass
class Inputs:
    """The estimate stage's outputs, as read."""

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    paths: dict[str, Path] = field(default_factory=dict)
    #: how the simulation studies ran (the primary's error clusters and censoring-weight
    #: truncation; :func:`read_study_settings`), by table (``validation``, ``verdicts``),
    #: for the studies that recorded it
    study_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return bool(self.metrics["synthetic"])


def validation_source(inputs: Inputs, name: str = "validation") -> str:
    """The simulation table's path (or the table ``name``'s) as the report cites it
    (relative to the reports dir)."""
    p = inputs.paths.get(name)
    rep = inputs.paths["metrics"].parent
    return os.path.relpath(p, rep) if p is not None else "tables/validation.csv"


# --------------------------------------------------------------------------- reading


def _with_basis(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The verdict table with its basis columns (:func:`pipeline.reporting.worlds.with_basis`)."""
    try:
        return worlds.with_basis(table, path)
    except worlds.StaleVerdicts as exc:
        raise ReportInputError(str(exc)) from exc


def _read_csv(path: Path, cols: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise ReportInputError(f"{path}: required input file is missing")
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except Exception as exc:  # pragma: no cover - pandas' own message is kept
        raise ReportInputError(f"{path}: cannot be read as CSV ({exc})") from exc
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing required column(s) {missing}")
    return df


def _check_numeric(name: str, path: Path, df: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            conv = pd.to_numeric(df[c], errors="coerce")
            bad = df[c].notna() & conv.isna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise ReportInputError(
                    f"{path}: column '{c}' must be numeric; row {i + 2} holds {df[c].iloc[i]!r}"
                )
            df[c] = conv


def read_metrics(mpath: Path) -> dict[str, Any]:
    """``metrics.json``, checked for every key and shape the report reads."""
    if not mpath.exists():
        raise ReportInputError(f"{mpath}: required input file is missing")
    metrics = json.loads(mpath.read_text(encoding="utf-8"))
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing:
        raise ReportInputError(f"{mpath}: missing key(s) {missing}")
    for k in ("att", "naive", "twfe", "att_chronic"):
        lack = [c for c in EST_COLS if c not in (metrics[k] or {})]
        if lack:
            raise ReportInputError(f"{mpath}: '{k}' lacks {lack}")
    for k in ("statistic", "df", "p_value"):
        if k not in (metrics["pretrend_test"] or {}):
            raise ReportInputError(f"{mpath}: 'pretrend_test' lacks '{k}'")
    if not isinstance(metrics["synthetic"], bool):
        raise ReportInputError(f"{mpath}: 'synthetic' must be true or false")
    w = metrics["att_window"]
    if not (isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) for x in w)):
        raise ReportInputError(f"{mpath}: 'att_window' must be a list of two integers")
    if metrics["synthetic"] and "att_window" not in (metrics.get("truth") or {}):
        raise ReportInputError(f"{mpath}: synthetic run without 'truth.att_window'")
    return metrics


def load_inputs(
    reports_dir: str | os.PathLike,
    validation_table: str | os.PathLike | None = None,
    verdicts: str | os.PathLike | None = None,
) -> Inputs:
    """Read and validate ``metrics.json`` and the input tables under ``reports_dir``.

    ``validation_table`` is the simulation study's table (``report.validation_table``:
    the committed study, ``benchmarks/results/validation_history_n100/validation.csv``); by
    default ``tables/validation.csv`` under ``reports_dir``.  Optional: without it the
    report has no simulation section.  ``verdicts`` is the stress-test study's verdict per
    world (``report.worlds_verdicts``); by default a ``verdicts.csv`` beside the
    simulation study's table, read when present.

    Raises
    ------
    ReportInputError
        Naming the file and the key or column that is missing or malformed.
    """
    rep = Path(reports_dir)
    mpath = rep / "metrics.json"
    metrics = read_metrics(mpath)

    tabdir = rep / "tables"
    wanted = dict(INPUT_COLUMNS)
    if metrics["synthetic"]:
        wanted.update(SYNTHETIC_ONLY)
    tables, paths = {}, {"metrics": mpath}
    for name, cols in wanted.items():
        p = tabdir / f"{name}.csv"
        tables[name], paths[name] = _read_csv(p, cols), p
    vpath = Path(validation_table) if validation_table is not None else tabdir / "validation.csv"
    study_settings: dict[str, dict[str, Any]] = {}
    if vpath.exists():
        tables["validation"], paths["validation"] = _read_csv(vpath, []), vpath
        # the study's verdict per world, written beside its table (benchmarks/run_worlds_study.py)
        vd = Path(verdicts) if verdicts is not None else vpath.parent / "verdicts.csv"
        if vd.exists():
            tables["verdicts"], paths["verdicts"] = _read_csv(vd, VERDICT_COLUMNS), vd
        for name in ("validation", "verdicts"):  # which rule decided each verdict
            if name in tables:
                tables[name] = _with_basis(tables[name], paths[name])
        study_settings = _study_settings(paths)
    for name, cols in OPTIONAL_TABLES.items():
        p = tabdir / f"{name}.csv"
        if p.exists():
            tables[name], paths[name] = _read_csv(p, cols), p

    numeric = {
        "event_study": ["event_time", *EST_COLS, "n_treated"],
        "event_study_chronic": ["event_time", *EST_COLS, "n_treated"],
        "subgroups": [*EST_COLS, "n_treated", "n_comparison"],
        "robustness": EST_COLS,
        "event_means": ["event_time", "mean_rate", "n_students"],
        "sample_flow": ["students"],
        "chronic_by_month": ["n_students", "n_chronic"],
        "balance": ["smd_before", "smd_after", "variance_ratio_after"],
        "data_quality": ["rows"],
        "data_quality_panel": ["rows"],
    }
    for name, cols in numeric.items():
        _check_numeric(name, paths[name], tables[name], cols)

    es = tables["event_study"]
    if metrics["primary_estimator"] not in set(es["estimator"]):
        raise ReportInputError(
            f"{paths['event_study']}: no rows for the primary estimator "
            f"'{metrics['primary_estimator']}' named in metrics.json"
        )
    steps = list(tables["sample_flow"]["step"])
    if steps != FLOW_STEPS:
        raise ReportInputError(
            f"{paths['sample_flow']}: column 'step' must list {FLOW_STEPS} in order, got {steps}"
        )
    tables["match_reasons"] = match_reasons(tables["match_summary"])
    tables["match_summary"] = normalise_match_summary(
        tables["match_summary"], paths["match_summary"]
    )
    if "truth_comparison" in tables:
        tables["truth_comparison"] = _complete_truth(tables["truth_comparison"])
    roles = set(tables["event_means"]["role"])
    if not roles <= {"treated", "comparison"}:
        raise ReportInputError(f"{paths['event_means']}: column 'role' has {sorted(roles)}")
    return Inputs(metrics=metrics, tables=tables, paths=paths, study_settings=study_settings)


def _study_settings(paths: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """:func:`read_study_settings` of the folders of the studies' tables that have them."""
    out = {}
    for name in ("validation", "verdicts"):
        got = read_study_settings(paths[name].parent) if name in paths else None
        if got is not None:
            out[name] = got
    return out


#: Files beside a simulation study's table that record how it ran: ``timing.json``
#: (written by ``benchmarks/run_worlds_study.py``), else ``study.json``.
STUDY_SETTINGS = ("timing.json", "study.json")


def read_study_settings(folder: Path) -> dict[str, Any] | None:
    """How the simulation study in ``folder`` ran (``cluster``: the primary's error
    clusters, ``ipcw_truncate``: its censoring-weight truncation or ``null``), from the
    first of :data:`STUDY_SETTINGS` there; ``None`` when the study did not record it.

    Raises
    ------
    ReportInputError
        When the file is not a JSON object with those two keys.
    """
    path = next((folder / n for n in STUDY_SETTINGS if (folder / n).exists()), None)
    if path is None:
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(d, dict) or not {"cluster", "ipcw_truncate"} <= set(d):
        raise ReportInputError(f"{path}: needs the keys 'cluster' and 'ipcw_truncate'")
    return d


def normalise_match_summary(
    df: pd.DataFrame, path: Path | str = "match_summary.csv"
) -> pd.DataFrame:
    """``dimension, level, treated, matched, unmatched`` from either accepted format.

    The long format is taken as is.  The match stage's cross-tabulation (one row per
    ``district_code`` × ``grade_band`` × ``prior_year_tier`` with ``n_treated`` and
    ``n_matched``, plus an ``ALL`` total row) is reduced to its one-way margins, which
    is what the report publishes (a three-way table of small cells would be mostly
    suppressed).
    """
    if set(MATCH_SUMMARY_LONG) <= set(df.columns):
        out = df[MATCH_SUMMARY_LONG].copy()
    elif set(MATCH_SUMMARY_CROSSTAB.values()) | {"n_treated", "n_matched"} <= set(df.columns):
        keys = list(MATCH_SUMMARY_CROSSTAB.values())
        body = df[~(df[keys].astype(str) == "ALL").all(axis=1)]
        parts = []
        for dim, col in MATCH_SUMMARY_CROSSTAB.items():
            g = body.groupby(body[col].astype(str), sort=True)[["n_treated", "n_matched"]].sum()
            parts.append(
                pd.DataFrame(
                    {
                        "dimension": dim,
                        "level": g.index.astype(str),
                        "treated": g["n_treated"].to_numpy(),
                        "matched": g["n_matched"].to_numpy(),
                    }
                )
            )
        out = pd.concat(parts, ignore_index=True)
        out["unmatched"] = out["treated"] - out["matched"]
    else:
        raise ReportInputError(
            f"{path}: expected columns {MATCH_SUMMARY_LONG} or the match stage's "
            f"{[*MATCH_SUMMARY_CROSSTAB.values(), 'n_treated', 'n_matched']}; "
            f"got {list(df.columns)}"
        )
    for c in ("treated", "matched", "unmatched"):
        v = pd.to_numeric(out[c], errors="coerce")
        if v.isna().any() or (v < 0).any():
            raise ReportInputError(f"{path}: column '{c}' must hold counts ≥ 0")
        out[c] = v.astype("int64")
    if (out["matched"] + out["unmatched"] != out["treated"]).any():
        raise ReportInputError(f"{path}: treated ≠ matched + unmatched in some rows")
    return out.reset_index(drop=True)


MATCH_REASONS = {
    "n_not_in_membership": "not enrolled in the month of the first visit",
    "n_no_candidates": "no student of the same district, month and grade band left to compare",
    "n_no_match_in_caliper": "no comparison student close enough on the matching score",
}


def match_reasons(df: pd.DataFrame) -> pd.DataFrame:
    """Why visited students were not matched: ``reason, students`` (empty when unknown).

    Read from the match stage's cross-tabulation (its ``n_not_in_membership``,
    ``n_no_candidates`` and ``n_no_match_in_caliper`` columns, summed over the body
    rows); the long format does not record reasons.
    """
    cols = [c for c in MATCH_REASONS if c in df.columns]
    if not cols:
        return pd.DataFrame({"reason": pd.Series(dtype=str), "students": pd.Series(dtype=int)})
    keys = [k for k in MATCH_SUMMARY_CROSSTAB.values() if k in df.columns]
    body = df[~(df[keys].astype(str) == "ALL").all(axis=1)] if keys else df
    sums = body[cols].apply(pd.to_numeric, errors="coerce").fillna(0).sum()
    return pd.DataFrame({"reason": cols, "students": [int(sums[c]) for c in cols]})


def _complete_truth(tc: pd.DataFrame) -> pd.DataFrame:
    """Add ``bias`` and ``covered`` when the truth table gives only estimates and CIs."""
    tc = tc.copy()
    if "bias" not in tc.columns:
        tc["bias"] = pd.to_numeric(tc["estimate"]) - pd.to_numeric(tc["truth"])
    if "covered" not in tc.columns and {"ci_low", "ci_high"} <= set(tc.columns):
        tc["covered"] = (tc["ci_low"] <= tc["truth"]) & (tc["truth"] <= tc["ci_high"])
    return tc
