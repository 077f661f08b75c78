"""The simulation study's verdict per world, as the report prints it.

The report reads which rule decided each verdict from the structured columns the study
writes (:data:`pipeline.validation.verdicts.VERDICT_BASIS_COLUMNS`: the basis code, the
informative diagnostic that fires most often and its rate, what a world not identified
would need), never from the reason in words.  A table scored before those columns
existed is re-scored here from its own rates by the same rules
(:func:`pipeline.validation.verdicts.decide`); when that does not give the verdict the
table records, :class:`StaleVerdicts` names the file, the column and the command that
rescores it.

The first page groups the worlds by verdict, one line per kind of verdict
(:func:`first_page_lines`); the appendix gives each world's reason in full
(:func:`appendix_items`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import labels
from pipeline.reporting.fmt import fmt_num, fmt_pct, join_words
from pipeline.validation import verdicts as vd
from pipeline.validation.diagnostics import DIAGNOSTIC_LABELS, DIAGNOSTICS
from pipeline.validation.scenarios import BASE_SPECS, WORLD_SPECS, spec_of

#: Rescores a committed study from its replications (benchmarks/run_worlds_study.py).
RESCORE = "python benchmarks/run_worlds_study.py --rescore --out {dir}"
#: Reruns the validate stage, which writes the table afresh.
REVALIDATE = "dvc repro validation/dvc.yaml"


class StaleVerdicts(ValueError):
    """A verdict table without the basis columns whose verdicts its rates do not give."""


def rescore_command(path: Path) -> str:
    """The command that writes ``path``'s verdicts afresh: the rescoring script when the
    study's replications (or its checkpoint) lie beside it, else the validate stage."""
    d = Path(path).parent
    if (d / "replications.csv").exists() or (d / "checkpoint.csv").exists():
        return RESCORE.format(dir=d)
    return REVALIDATE


def _mcse(r: Mapping[str, Any]) -> float | None:
    """The bias's Monte Carlo SE: the table's, else ``sd_error / √n`` as the verdict table
    computes it (a validation table has only ``sd_error``)."""
    mcse, n = r.get("bias_mcse"), r.get("n_reps")
    if (mcse is None or pd.isna(mcse)) and pd.notna(r.get("sd_error")) and n and int(n) > 1:
        mcse = float(r["sd_error"]) / np.sqrt(int(n))
    return mcse


def _row(r: Mapping[str, Any]) -> dict[str, Any]:
    """One table row as :func:`~pipeline.validation.verdicts.decide` reads it."""
    n = int(r["n_reps"])
    mcse = _mcse(r)
    unin = r.get("uninformative")
    scen = str(r["scenario"])
    return {
        **{f"rate_{d}": r.get(f"rate_{d}") for d in DIAGNOSTICS},
        "n_reps": n,
        "bias": float(r["bias"]),
        "bias_mcse": None if mcse is None or pd.isna(mcse) else float(mcse),
        "coverage": float(r["coverage"]),
        "bracketing": r.get("bracketing"),
        "uninformative": str(unin).split() if isinstance(unin, str) else [],
        "targets_apply": r.get("targets_apply"),
        "needed": spec_of(scen).needed if scen in WORLD_SPECS else "",
    }


def with_basis(v: pd.DataFrame, path: Path, command: str | None = None) -> pd.DataFrame:
    """``v`` with the verdict basis columns: as read when the table has them for every
    verdict, else re-scored from the table's own rates by the verdicts' rules (a table
    scored before the columns existed), with a notice on standard error naming
    ``command`` (by default :func:`rescore_command`).

    Raises
    ------
    StaleVerdicts
        When a re-scored verdict differs from the one the table records (or a column the
        rules read is missing): names ``path``, the missing column and ``command``.
    """
    if "verdict" not in v.columns:
        return v
    out = v.copy()
    for c in vd.VERDICT_BASIS_COLUMNS:
        if c not in out.columns:
            out[c] = pd.Series(np.nan, index=out.index, dtype=object)
        out[c] = out[c].astype(object)
    todo = out[out["verdict"].notna() & out["verdict_basis"].isna()]
    if todo.empty:
        return out
    command = command or rescore_command(path)
    stale = (f"{path}: column 'verdict_basis' is missing or empty (a table scored before the "
             f"verdicts recorded which rule decided them); rescore it with `{command}`")
    need = [c for c in ("scenario", "n_reps", "bias", "coverage") if c not in v.columns]
    if need:
        raise StaleVerdicts(f"{stale}; its verdicts cannot be re-derived without {need}")
    for i, r in todo.iterrows():
        d = vd.decide(_row(r))
        if d["verdict"] != str(r["verdict"]):
            who = " / ".join(str(r[c]) for c in ("scenario", "design", "estimator") if c in r)
            raise StaleVerdicts(
                f"{stale}; re-deriving the verdict of {who} from its rates gives "
                f"'{d['verdict']}', not the '{r['verdict']}' the table records")
        for c in vd.VERDICT_BASIS_COLUMNS:
            out.at[i, c] = d[c]
    print(f"leap report: {path}: no verdict basis (column 'verdict_basis'); each verdict's "
          f"basis is re-derived from the table's rates (rescore with `{command}`)",
          file=sys.stderr)
    return out


def _primary(v: pd.DataFrame, primary: str | None) -> pd.DataFrame:
    """The primary design's rows with a verdict, one per scenario."""
    if "design" in v.columns:
        v = v[v["design"].astype(str) == "primary"]
    elif primary is not None and "estimator" in v.columns and (v["estimator"] == primary).any():
        v = v[v["estimator"] == primary]
    return v.dropna(subset=["verdict"]).drop_duplicates("scenario")


def _world(r: Mapping[str, Any]) -> str:
    w = r.get("world")
    if isinstance(w, str) and w:
        return w
    scen = str(r["scenario"])
    known = scen in WORLD_SPECS or scen in BASE_SPECS
    return spec_of(scen).world if known else labels.scenario(scen)


def _diag(r: Mapping[str, Any]) -> str:
    return DIAGNOSTIC_LABELS.get(str(r.get("top_diagnostic")), "a diagnostic")


def _rate(x: Any) -> str:
    return fmt_pct(100 * float(x)) if pd.notna(x) else "‡"


def _miss(r: Mapping[str, Any]) -> str:
    return f"bias {fmt_num(r['bias'], 2, True)}, coverage {_rate(r['coverage'])}"


#: Each kind of line on the first page: the verdict basis it holds, its heading (given
#: its worlds' rows) and how one world reads in it.
_KINDS: tuple[tuple[str, Callable, Callable], ...] = (
    (vd.TARGETS_MET,
     lambda rows: "Valid (bias and coverage within the targets up to simulation error)",
     _world),
    (vd.DIAGNOSTIC_FIRES,
     lambda rows: f"Caught by the {_diag(rows[0])} (share of replications it fires in)",
     lambda r: f"{_world(r)} {_rate(r['top_diagnostic_rate'])}"),
    (vd.BRACKETED,
     lambda rows: ("Bracketed: the truth lies between the matched ANCOVA and the matched "
                   "differences estimates (share of replications)"),
     lambda r: f"{_world(r)} {_rate(r.get('bracketing'))}"),
    (vd.DESIGN_FALLS_SHORT,
     lambda rows: ("Not identified, though the extract records what "
                   f"{'this world depends' if len(rows) == 1 else 'these worlds depend'} "
                   "on (the design, not the data, falls short)"),
     lambda r: f"{_world(r)} ({_miss(r)})"),
    (vd.NEEDS_DATA,
     lambda rows: "Not identified from the records",
     lambda r: f"{_world(r)} ({_miss(r)}), would need {r['needed']}"),
    (vd.NO_ESTIMATES,
     lambda rows: "Not identified: no replication gave an estimate",
     lambda r: _world(r)),
)


def first_page_lines(v: pd.DataFrame, primary: str | None = None) -> tuple[str, ...]:
    """One line per kind of verdict for the primary design (worlds caught by different
    diagnostics on separate lines), in the order valid, caught, bracketed, not
    identified; each world with the numbers that decided it."""
    p = _primary(v, primary)
    lines = []
    for basis, head, item in _KINDS:
        groups: dict[str, list] = {}
        for _, r in p[p["verdict_basis"] == basis].iterrows():
            key = str(r.get("top_diagnostic")) if basis == vd.DIAGNOSTIC_FIRES else ""
            groups.setdefault(key, []).append(r)
        for rows in groups.values():
            items = [item(r) for r in rows]
            # items that hold commas themselves are separated by semicolons
            text = "; ".join(items) if basis == vd.NEEDS_DATA else join_words(items)
            lines.append(f"{head(rows)}: {text}")
    return tuple(lines)


def appendix_items(v: pd.DataFrame, primary: str | None = None) -> list[dict[str, str]]:
    """Per world (primary design): its label, verdict and reason in words, composed from
    the structured columns (:func:`pipeline.validation.verdicts.reason_text`)."""
    return [{"world": _world(r), "verdict": str(r["verdict"]),
             "reason": vd.reason_text({**r.to_dict(), "bias_mcse": _mcse(r)}, fmt_num)}
            for _, r in _primary(v, primary).iterrows()]


def any_not_identified(v: pd.DataFrame, primary: str | None = None) -> bool:
    """Whether the primary design is not identified in some world."""
    return bool((_primary(v, primary)["verdict"].astype(str) == "not identified").any())


def min_reps(v: pd.DataFrame, primary: str | None = None) -> int | None:
    """The fewest replications of any world that gave estimates (primary design);
    ``None`` without the column or such a world."""
    p = _primary(v, primary)
    n = pd.to_numeric(p["n_reps"], errors="coerce") if "n_reps" in p else pd.Series([])
    n = n[n > 0]
    return int(n.min()) if len(n) else None
