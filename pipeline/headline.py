"""The headline metrics (``reports/headline.json``) and the long metrics table.

``reports/metrics.json`` holds everything the estimate stage reports (design settings,
every comparator, censoring diagnostics, …: about 80 values), which is too much to
compare across runs.  :func:`headline` picks at most :data:`MAX_KEYS` of them, grouped
by estimand:

``attendance_effect``
    The primary design's average effect over ``estimate.att_window`` on the attendance
    rate (points): estimate, standard error, 95% interval, p-value and the wild cluster
    bootstrap interval.
``chronic_effect``
    The same average on chronic absence (points): estimate and interval.
``n``
    Visited and comparison students in the matched sample.
``diagnostics``
    Largest absolute standardized mean difference after matching, the pre-trend test's
    p-value, the largest censoring weight.
``truth``
    On a synthetic extract only: the generator's true averages.

That file is tracked by git (``.gitignore`` lets it through), so ``dvc metrics show``,
``dvc metrics diff`` and ``dvc exp show`` compare runs on a fresh clone.
:func:`long_table` flattens the whole of ``metrics.json`` into a ``key, value`` table
(``reports/tables/metrics_long.csv``).  :func:`write` writes both, atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import write_csv, write_json

#: Most leaf values the headline file may hold.
MAX_KEYS = 25
HEADLINE = "reports/headline.json"
LONG_TABLE = "reports/tables/metrics_long.csv"


def _num(x: Any) -> float | int | None:
    """A JSON-friendly number: ``None`` for missing or non-finite, 6 significant digits."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return float(f"{f:.6g}") if math.isfinite(f) else None


def _get(d: Mapping[str, Any] | None, *path: str) -> Any:
    for k in path:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def headline(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The headline metrics of one run, grouped by estimand.

    Parameters
    ----------
    metrics
        The estimate stage's metrics (the content of ``reports/metrics.json``).

    Returns
    -------
    dict
        ``{group: {name: value}}`` with at most :data:`MAX_KEYS` values; a value the run
        did not produce is ``None``.  The ``truth`` group appears only for a synthetic
        extract.
    """
    att = metrics.get("att") or {}
    boot = att.get("wild_bootstrap") or {}
    ch = metrics.get("att_chronic") or {}
    out: dict[str, dict[str, Any]] = {
        "attendance_effect": {
            "estimate": _num(att.get("estimate")),
            "std_error": _num(att.get("std_error")),
            "ci_low": _num(att.get("ci_low")),
            "ci_high": _num(att.get("ci_high")),
            "p_value": _num(att.get("p_value")),
            "bootstrap_ci_low": _num(boot.get("ci_low")),
            "bootstrap_ci_high": _num(boot.get("ci_high")),
        },
        "chronic_effect": {
            "estimate": _num(ch.get("estimate")),
            "ci_low": _num(ch.get("ci_low")),
            "ci_high": _num(ch.get("ci_high")),
        },
        "n": {
            "treated": _num(metrics.get("n_treated")),
            "comparison": _num(metrics.get("n_comparison")),
        },
        "diagnostics": {
            "max_abs_smd_after": _num(metrics.get("max_abs_smd_after")),
            "pretrend_p_value": _num(_get(metrics, "pretrend_test", "p_value")),
            "max_censoring_weight": _num(_get(metrics, "censoring", "weight_max")),
        },
    }
    if metrics.get("synthetic"):
        out["truth"] = {
            "attendance_effect": _num(_get(metrics, "truth", "att_window")),
            "chronic_effect": _num(_get(metrics, "truth", "att_window_chronic")),
        }
    n = sum(len(v) for v in out.values())
    if n > MAX_KEYS:  # a guard for whoever adds a key
        raise ValueError(f"headline metrics: {n} values, more than {MAX_KEYS}")
    return out


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, Mapping):
        rows: list[tuple[str, Any]] = []
        for k in d:
            rows += _flatten(d[k], f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(d, list | tuple) and d and any(isinstance(x, Mapping) for x in d):
        rows = []
        for i, x in enumerate(d):
            rows += _flatten(x, f"{prefix}.{i}")
        return rows
    if isinstance(d, list | tuple):
        return [(prefix, " ".join(str(x) for x in d))]
    return [(prefix, d)]


def long_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Every value of ``metrics`` as a ``key, value`` table (dotted keys, in file order).

    Lists of scalars become one space-separated value (``att_window`` → ``"1 6"``).
    """
    return pd.DataFrame(_flatten(metrics), columns=["key", "value"])


def write(metrics: Mapping[str, Any], root: str | Path = ".") -> dict[str, Path]:
    """Write :data:`HEADLINE` and :data:`LONG_TABLE` under ``root``; returns the paths."""
    root = Path(root)
    paths = {"headline": root / HEADLINE, "long_table": root / LONG_TABLE}
    write_json(headline(metrics), paths["headline"])
    write_csv(long_table(metrics), paths["long_table"])
    return paths
