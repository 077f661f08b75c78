"""Helpers shared by the analyst notebooks in ``notebooks/``.

The notebooks only *read* what the DVC pipeline wrote; they never recompute a stage's
output by hand and never run the pipeline.  This module

* finds the project root: ``LEAP_PROJECT_ROOT`` when set (tests point the notebooks at a
  temporary output tree this way), otherwise the nearest directory at or above the working
  directory that holds ``params.yaml``;
* loads the outputs (tables, metrics, panels, quarantine files).  A missing output raises
  :class:`MissingOutputError`, whose message names the file and the ``dvc repro <stage>``
  command that writes it (the stage is looked up in ``dvc.yaml``);
* summarises alternative matching specifications for the matching notebook;
* draws the few figures several notebooks share, in the report's colours and labels
  (:mod:`pipeline.figures`).

Typical use in a notebook::

    from pipeline import notebook_helpers as nh
    nh.setup_plots()
    es = nh.table("event_study")
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cycler import cycler

from pipeline import outputs
from pipeline.config import PARAMS_FILE, load_params

ROOT_ENV = "LEAP_PROJECT_ROOT"
DVC_FILE = "dvc.yaml"

# the stages' output paths (pipeline.outputs), as the relative strings used here
PANEL = outputs.PANEL.as_posix()
MATCHED = outputs.MATCHED.as_posix()
METRICS = outputs.METRICS.as_posix()
EXTRACT_META = outputs.EXTRACT_META.as_posix()
INTERIM = outputs.INTERIM_DIR.as_posix()
QUARANTINE = outputs.QUARANTINE_DIR.as_posix()
TABLES = outputs.TABLES_DIR.as_posix()

__all__ = [
    "MissingOutputError",
    "ROOT_ENV",
    "balance_by_spec",
    "compare_specs",
    "extract_meta",
    "figures",
    "forest",
    "interim",
    "is_synthetic",
    "label_estimator",
    "match",
    "matched",
    "metrics",
    "not_yet_visited",
    "output_path",
    "outputs_overview",
    "panel",
    "panel_for_matching",
    "params",
    "plot_event_study",
    "producing_stage",
    "project_root",
    "published",
    "quarantine",
    "read_csv",
    "read_json",
    "read_parquet",
    "setup_plots",
    "stage_outputs",
    "summarise_match",
    "table",
    "watermark",
]


class MissingOutputError(FileNotFoundError):
    """A pipeline output the notebook needs does not exist (yet)."""


# ----------------------------------------------------------------------------- paths


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The project root: ``$LEAP_PROJECT_ROOT``, else the nearest folder with params.yaml.

    The search starts at ``start`` (default: the working directory, which is
    ``notebooks/`` when Jupyter opens a notebook) and walks up.
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{ROOT_ENV}={env}: no such directory")
        return root
    here = Path(start if start is not None else Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PARAMS_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"no {PARAMS_FILE} in {here} or any folder above it: open the notebook from the "
        f"project's notebooks/ folder, or set {ROOT_ENV} to the folder holding {PARAMS_FILE}"
    )


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root).resolve() if root is not None else project_root()


def _dvc_file(root: Path) -> Path | None:
    """``dvc.yaml`` of ``root``, else the one next to this package (an output tree
    written outside the repository, e.g. by the tests, has no ``dvc.yaml``)."""
    for cand in (root / DVC_FILE, Path(__file__).resolve().parents[1] / DVC_FILE):
        if cand.is_file():
            return cand
    return None


def stage_outputs(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every output declared in ``dvc.yaml``: ``stage, output, kind`` (outs/metrics/plots)."""
    import yaml

    dvc = _dvc_file(_root(root))
    if dvc is None:
        return pd.DataFrame(columns=["stage", "output", "kind"])
    with open(dvc, encoding="utf-8") as fh:
        stages = (yaml.safe_load(fh) or {}).get("stages", {})
    rows = []
    for stage, spec in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in spec.get(kind) or []:
                path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                rows.append({"stage": stage, "output": path, "kind": kind})
    return pd.DataFrame(rows, columns=["stage", "output", "kind"])


def producing_stage(relpath: str, root: str | os.PathLike | None = None) -> str | None:
    """The ``dvc.yaml`` stage that writes ``relpath`` (a declared output or a file in one)."""
    rel = Path(relpath).as_posix().strip("/")
    for stage, out in stage_outputs(root)[["stage", "output"]].itertuples(index=False):
        out = out.strip("/")
        if rel == out or rel.startswith(out + "/"):
            return stage
    return None


def output_path(relpath: str, root: str | os.PathLike | None = None) -> Path:
    """Absolute path of a pipeline output; :class:`MissingOutputError` if it is absent."""
    base = _root(root)
    path = base / relpath
    if path.exists():
        return path
    stage = producing_stage(relpath, base)
    how = (
        f"it is written by the `{stage}` stage: run `dvc repro {stage}` in a terminal in "
        f"{base} (this also runs any stage before it that is out of date), then re-run "
        "this cell"
        if stage
        else f"run `dvc repro` in a terminal in {base}, then re-run this cell"
    )
    raise MissingOutputError(f"{relpath} not found under {base}: {how}.")


def read_csv(relpath: str, root: str | os.PathLike | None = None, **kwargs: Any) -> pd.DataFrame:
    """A CSV output (``relpath`` from the project root)."""
    return pd.read_csv(output_path(relpath, root), **kwargs)


def read_parquet(
    relpath: str, root: str | os.PathLike | None = None, **kwargs: Any
) -> pd.DataFrame:
    """A Parquet output; ``columns=`` and ``filters=`` are passed to pandas."""
    return pd.read_parquet(output_path(relpath, root), **kwargs)


def read_json(relpath: str, root: str | os.PathLike | None = None) -> Any:
    """A JSON output."""
    with open(output_path(relpath, root), encoding="utf-8") as fh:
        return json.load(fh)


def table(name: str, root: str | os.PathLike | None = None, **kwargs: Any) -> pd.DataFrame:
    """``reports/tables/<name>.csv`` (e.g. ``table("event_study")``).

    ``district_code`` and ``school_code`` are read as text, so that codes keep their
    leading zeros.
    """
    dtype = {"district_code": str, "school_code": str, **kwargs.pop("dtype", {})}
    return read_csv(f"{TABLES}/{name}.csv", root, dtype=dtype, **kwargs)


def metrics(root: str | os.PathLike | None = None) -> dict:
    """``reports/metrics.json`` (what ``dvc metrics show`` prints)."""
    return read_json(METRICS, root)


def params(root: str | os.PathLike | None = None) -> dict:
    """The whole ``params.yaml`` of the project root."""
    return load_params(_root(root) / PARAMS_FILE)


def extract_meta(root: str | os.PathLike | None = None) -> dict:
    """``data/interim/extract_meta.json``: whether the extract is synthetic, and its truth."""
    return read_json(EXTRACT_META, root)


def is_synthetic(root: str | os.PathLike | None = None) -> bool:
    """True when the outputs come from the synthetic extract."""
    return bool(extract_meta(root).get("synthetic", False))


def panel(
    columns: Iterable[str] | None = None,
    filters: Any = None,
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The student × month panel (``data/processed/panel.parquet``), optionally in part.

    At state scale (≈15 million rows) read only the columns you need.
    """
    cols = list(columns) if columns is not None else None
    return read_parquet(PANEL, root, columns=cols, filters=filters)


def matched(
    columns: Iterable[str] | None = None,
    filters: Any = None,
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The stacked matched panels (``data/processed/matched.parquet``)."""
    cols = list(columns) if columns is not None else None
    return read_parquet(MATCHED, root, columns=cols, filters=filters)


def not_yet_visited(panel_df: pd.DataFrame) -> pd.Series:
    """Rows of students not (yet) reached: no first completed visit, or a later one.

    These are the rows that could serve as comparisons in their month (before any
    matching); the panel's ``first_visit_school_month`` is null for students never visited.
    """
    fv = panel_df["first_visit_school_month"].astype("Float64")
    return (fv.isna() | (fv > panel_df["school_month"])).fillna(True).astype(bool)


def interim(name: str, root: str | os.PathLike | None = None, **kwargs: Any) -> pd.DataFrame:
    """A validated, pseudonymized table written by ingest (``data/interim/<name>.parquet``)."""
    return read_parquet(f"{INTERIM}/{name}.parquet", root, **kwargs)


def panel_for_matching(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The panel columns risk-set matching reads, as the ``match`` stage reads them."""
    return outputs.read_panel_for_matching(output_path(PANEL, root))


def quarantine(root: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """The quarantined rows of every table (``data/interim/quarantine/<table>.parquet``)."""
    qdir = output_path(QUARANTINE, root)
    return {p.stem: pd.read_parquet(p) for p in sorted(qdir.glob("*.parquet"))}


def outputs_overview(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Each output declared in ``dvc.yaml``: whether it exists, when it was written, size.

    This only looks at the files; ``dvc status`` (in a terminal) says which stages are out
    of date with respect to their code, data and parameters.
    """
    base = _root(root)
    out = stage_outputs(base)
    rows = []
    for stage, path, kind in out.itertuples(index=False):
        p = base / path
        exists = p.exists()
        files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p] if exists else []
        rows.append(
            {
                "stage": stage,
                "output": path,
                "kind": kind,
                "exists": exists,
                "files": len(files),
                "size_mb": round(sum(f.stat().st_size for f in files) / 1e6, 2),
                "written": (
                    pd.Timestamp(max(f.stat().st_mtime for f in files), unit="s").floor("s")
                    if files
                    else pd.NaT
                ),
            }
        )
    return pd.DataFrame(rows)


def published(name: str, root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, str]:
    """Table ``name`` as the report publishes it, after small-cell suppression.

    Reads ``reports/tables/published/<name>.csv`` when the ``report`` stage has written
    it; otherwise applies the report's own disclosure control
    (:func:`pipeline.report.publish`, rules from ``params.yaml`` section ``disclosure``)
    to the current outputs in memory, writing nothing.  Returns the table and a note
    saying which of the two it is.
    """
    base = _root(root)
    path = base / TABLES / "published" / f"{name}.csv"
    if path.exists():
        text = {"level": str, "district_code": str, "school_code": str}
        return pd.read_csv(path, dtype=text), f"read from {path.relative_to(base)}"
    from pipeline import report
    from pipeline.disclosure import Rules

    output_path(METRICS, base)
    for table_name in report.INPUT_COLUMNS:
        output_path(f"{TABLES}/{table_name}.csv", base)
    inputs = report.load_inputs(base / "reports")
    pubs = report.publish(inputs, Rules.from_params(params(base)["disclosure"]))
    if name not in pubs:
        raise KeyError(f"the report publishes no table {name!r}; it publishes {sorted(pubs)}")
    return pubs[name].table, (
        "computed in memory with the report's disclosure rules "
        "(the report stage has not written reports/tables/published/ yet)"
    )


# -------------------------------------------------------------------------- matching


def summarise_match(res, spec=None) -> dict[str, Any]:
    """One row describing a :class:`~pipeline.matching.riskset.RiskSetResult`.

    Treated students by status, comparison students, the comparison group's effective
    sample size (Kish, over the matching units: (stack, comparison student) with its
    summed weight), and the largest and mean absolute SMD after matching.
    """
    status = res.treated["status"].value_counts()
    comp = res.matches[res.matches["role"] == "comparison"]
    units = comp.groupby(["stack_id", "student_key"], observed=True)["weight"].sum()
    ess = float(units.sum() ** 2 / (units**2).sum()) if len(units) else np.nan
    smd = res.balance.set_index("covariate")["smd_after"].abs()
    row = {
        "treated": int(len(res.treated)),
        "matched": int(status.get("matched", 0)),
        "no_match_in_caliper": int(status.get("no_match_in_caliper", 0)),
        "no_candidates": int(status.get("no_candidates", 0)),
        "not_in_membership": int(status.get("not_in_membership", 0)),
        "comparison_students": int(comp["student_key"].nunique()),
        "comparison_ess": round(ess, 1),
        "max_abs_smd": float(smd.drop("logit_propensity_score", errors="ignore").max()),
        "mean_abs_smd": float(smd.drop("logit_propensity_score", errors="ignore").mean()),
        "abs_smd_pscore": float(smd.get("logit_propensity_score", np.nan)),
    }
    if spec is not None:
        row = {"pool": spec.pool, "ratio": spec.ratio, "caliper": spec.caliper, **row}
    return row


#: Propensity models fitted by :func:`match`, by fingerprint of the design (a few MB each).
_PS_CACHE = None


def match(panel_df: pd.DataFrame, spec=None):
    """:func:`pipeline.matching.riskset.riskset_match`, reusing identical propensity fits.

    The results are those of ``riskset_match(panel_df, spec)``; trying several calipers or
    ratios on the same pool is faster because the propensity model is fitted once
    (:class:`pipeline.matching.riskset.PropensityCache`).
    """
    global _PS_CACHE
    from pipeline.matching.riskset import PropensityCache, riskset_match

    if _PS_CACHE is None:
        _PS_CACHE = PropensityCache()
    return riskset_match(panel_df, spec, ps_cache=_PS_CACHE)


def compare_specs(
    panel_df: pd.DataFrame,
    base,
    variants: Mapping[str, Mapping[str, Any]],
    done: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run risk-set matching once per variant of ``base`` (a ``RiskSetSpec``).

    ``variants`` maps a label to the fields that differ from ``base`` (``{}`` for the
    base itself); ``done`` holds results already computed, by label, which are reused.
    Returns a summary table (one row per variant, :func:`summarise_match`) and the
    results by label.
    """
    results, rows = {}, []
    for label, changes in variants.items():
        spec = replace(base, **dict(changes))
        res = (done or {}).get(label)
        results[label] = res if res is not None else match(panel_df, spec)
        rows.append({"variant": label, **summarise_match(results[label], spec)})
    return pd.DataFrame(rows).set_index("variant"), results


def balance_by_spec(results: Mapping[str, Any], stat: str = "smd_after") -> pd.DataFrame:
    """One column per variant: a balance statistic by covariate (default the SMD after)."""
    return pd.DataFrame(
        {label: res.balance.set_index("covariate")[stat] for label, res in results.items()}
    )


# -------------------------------------------------------------------------- plotting


def _figures_module():
    """:mod:`pipeline.figures`, imported without losing a notebook's plotting backend.

    ``pipeline.figures`` selects the non-interactive Agg backend when imported (the report
    stage runs headless); in a notebook that would stop figures from being shown inline,
    so inside IPython the backend in use before the import is restored.  Elsewhere (scripts,
    tests) the package's choice stands.
    """
    import matplotlib

    before = matplotlib.rcParams._get("backend")
    from pipeline import figures

    ip = _ipython()
    if ip is not None and matplotlib.rcParams._get("backend") != before:
        if "inline" in str(before):
            # switching back is not enough: IPython must re-register its display hooks
            ip.run_line_magic("matplotlib", "inline")
        else:
            matplotlib.use(before)
    return figures


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


#: :mod:`pipeline.figures`: the report's figure functions work on the unsuppressed tables
#: too, e.g. ``nh.figures.event_study_figure(es, "matched_ancova", (1, 6), synthetic)``.
figures = _figures_module()
OKABE_ITO = figures.OKABE_ITO
COLOURS = figures.SERIES_COLOURS
SUBGROUP_LABELS = figures.SUBGROUP_LABELS
label_estimator = figures.label_estimator

#: Notebook figure style: the report's, a little larger on screen.
RC = {
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=COLOURS),
}


def setup_plots() -> None:
    """Apply the notebook figure style (colour-blind-safe Okabe–Ito colours)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(RC)
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 120)


def watermark(fig, synthetic: bool) -> None:
    """The report's diagonal "synthetic data" watermark, when ``synthetic``."""
    if synthetic:
        figures.watermark(fig)


def plot_event_study(
    ax,
    df: pd.DataFrame,
    *,
    label: str | None = None,
    color: str | None = None,
    offset: float = 0.0,
    band: bool = False,
    x: str = "event_time",
    marker: str = "o",
) -> None:
    """Estimates by event time with 95% intervals (error bars, or a shaded ``band``).

    ``df`` has ``event_time`` (or ``x``), ``estimate``, ``ci_low`` and ``ci_high``.  The
    first-visit month is marked by a dashed line at −0.5 and zero by a solid line.
    """
    d = df.sort_values(x)
    xs = d[x].to_numpy(float) + offset
    y = d["estimate"].to_numpy(float)
    lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
    if band:
        (line,) = ax.plot(xs, y, "-" + marker, color=color, ms=4, lw=1.8, label=label, zorder=3)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
    else:
        ax.errorbar(xs, y, yerr=[y - lo, hi - y], fmt=marker, ms=4, lw=1, color=color, label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(-0.5, color="#555555", lw=0.8, ls="--")
    ax.set_xlabel("School months since the first completed visit (event time)")


def forest(
    ax,
    df: pd.DataFrame,
    *,
    labels: str | Iterable[str] = "level",
    reference: float | None = None,
    truth: pd.Series | None = None,
    color: str | None = None,
) -> None:
    """Horizontal 95% intervals, one row per row of ``df`` (top to bottom).

    ``labels`` is a column (or a list of labels); ``reference`` draws a dashed vertical
    line (e.g. the overall estimate); ``truth`` (aligned with ``df``) adds the true values
    of a synthetic run as crosses.
    """
    d = df.reset_index(drop=True)
    names = d[labels].astype(str).tolist() if isinstance(labels, str) else list(labels)
    y = np.arange(len(d))[::-1]
    color = color or OKABE_ITO["blue"]
    ax.hlines(y, d["ci_low"], d["ci_high"], color=color, lw=1.6)
    ax.plot(d["estimate"], y, "s", color=color, ms=5, label="estimate, 95% CI")
    if truth is not None:
        t = np.asarray(truth, dtype=float)
        ax.plot(t, y, "x", color=OKABE_ITO["vermillion"], ms=7, mew=2, label="truth (synthetic)")
    if reference is not None:
        ax.axvline(reference, color="#555555", lw=0.9, ls="--", label="overall estimate")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, names)
    ax.grid(axis="y", visible=False)
