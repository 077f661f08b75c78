"""A verdict per world of the simulation study, written by code.

For the primary design (and the extended design, when it ran) in each scenario:

*valid*
    the design meets its targets: |bias| ≤ 0.3 points and coverage of the 95% intervals
    within 93–97%. With ``n`` replications both are judged with their Monte Carlo error:
    the bias within 0.3 + 2 × its standard error (``sd_error / √n``) and the Wilson 95%
    interval of the coverage overlapping 93–97% (``meets_targets`` is the strict check);
*caught*
    not valid, and a diagnostic the report prints fires in at least 80% of replications
    (:mod:`pipeline.validation.diagnostics`) — one that fires in at most 20% of the
    replications of the reference world (``dip``, which the design handles), since a
    diagnostic that fires there too cannot tell the worlds apart;
*bracketed*
    not valid nor caught, and the truth lies between the matched ANCOVA and the matched
    differences estimates in at least 90% of replications — the bracketing property of
    Angrist & Pischke, *Mostly Harmless Econometrics* §5.4 (when selection is on the
    lagged outcome, the differences design overstates a positive effect; when it is on a
    fixed level, the lagged-outcome design understates it);
*not identified*
    none of these, with what would be needed (:mod:`pipeline.validation.scenarios`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.validation.diagnostics import (
    DIAGNOSTIC_COLUMNS,
    DIAGNOSTIC_LABELS,
    DIAGNOSTICS,
    FIRES_COLUMNS,
    fires,
)
from pipeline.validation.scenarios import spec_of

BIAS_TARGET = 0.3
COVERAGE_TARGET = (0.93, 0.97)
CAUGHT_RATE = 0.8
#: Firing rate in the reference world above which a diagnostic is uninformative.
FALSE_ALARM = 0.2
BRACKET_RATE = 0.9
VERDICTS = ("valid", "caught", "bracketed", "not identified")
#: Which rule decided a verdict (the ``verdict_basis`` column of the verdict table).
TARGETS_MET = "targets_met"
DIAGNOSTIC_FIRES = "diagnostic_fires"
BRACKETED = "bracketed"
DESIGN_FALLS_SHORT = "design_falls_short"
NEEDS_DATA = "needs_unrecorded_data"
NO_ESTIMATES = "no_estimates"
#: Each basis and the verdict it gives.
BASES = {
    TARGETS_MET: "valid",
    DIAGNOSTIC_FIRES: "caught",
    BRACKETED: "bracketed",
    DESIGN_FALLS_SHORT: "not identified",
    NEEDS_DATA: "not identified",
    NO_ESTIMATES: "not identified",
}
#: The ``design`` label of the intent-to-treat design at the first attempted visit
#: (issue 17): judged against its own truth; bracketing (a property of the
#: completed-visit designs) does not apply to it.
ATTEMPT_DESIGN = "intent to treat"

#: The structured columns saying which rule decided a verdict (:func:`decide`).
VERDICT_BASIS_COLUMNS = ["verdict_basis", "top_diagnostic", "top_diagnostic_rate", "needed"]
VERDICT_COLUMNS = [
    "scenario",
    "world",
    "design",
    "n_reps",
    "bias",
    "bias_mcse",
    "coverage",
    "se_ratio",
    "meets_targets",
    *[f"rate_{d}" for d in DIAGNOSTICS],
    "bracketing",
    "targets_apply",
    "uninformative",
    "verdict",
    *VERDICT_BASIS_COLUMNS,
    "reason",
]


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``k / n``."""
    if n == 0:
        return np.nan, np.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(mid - half), float(mid + half)


def diagnostic_rates(reps: pd.DataFrame, estimator: str, alpha: float = 0.05) -> pd.DataFrame:
    """Share of replications in which each diagnostic fires, per scenario (rows of
    ``estimator``, whose own pre-trend test is the ``pretrend`` diagnostic)."""
    r = reps[reps["estimator"] == estimator]
    f = fires(r.reindex(columns=["pretrend_p", *DIAGNOSTIC_COLUMNS]), alpha)
    out = f.groupby(r["scenario"].to_numpy(), sort=False).mean()
    return out.rename(columns={c: c.replace("fires_", "rate_") for c in FIRES_COLUMNS})


def bracketing_rate(reps: pd.DataFrame, ancova: str, differences: str) -> pd.Series:
    """Per scenario, the share of replications whose truth lies between the two designs'
    estimates (inclusive)."""
    w = reps.pivot_table(
        index=["scenario", "rep"], columns="estimator", values="estimate", aggfunc="first"
    )
    # the completed-visit truth (the study's extras carry truths of other estimands)
    r = reps[reps["estimator"].isin([ancova, differences])]
    truth = r.groupby(["scenario", "rep"])["truth"].first()
    if ancova not in w.columns or differences not in w.columns:
        return pd.Series(dtype=float)
    lo = np.minimum(w[ancova], w[differences])
    hi = np.maximum(w[ancova], w[differences])
    t = truth.reindex(w.index)
    ok = lo.notna() & hi.notna() & t.notna()
    inside = ((lo <= t) & (t <= hi))[ok]
    return inside.groupby(level="scenario", sort=False).mean()


def decide(row: Mapping[str, Any]) -> dict[str, Any]:
    """Which rule decides the verdict of one scenario and design (see the module docstring).

    ``row`` holds ``n_reps, bias, bias_mcse, coverage, rate_<diagnostic>, bracketing``,
    ``uninformative`` (diagnostics that do not count), ``targets_apply`` and ``needed``
    (what a world not identified would need).  Returns the structured columns of the
    verdict table: ``verdict``, ``verdict_basis`` (one of :data:`BASES`),
    ``top_diagnostic`` and ``top_diagnostic_rate`` (the informative diagnostic that fires
    most often, and how often; it decides a *caught* verdict) and ``needed`` (for a world
    the extract cannot identify, what would be needed; else empty).
    """
    out = {"verdict": "not identified", "verdict_basis": NO_ESTIMATES,
           "top_diagnostic": "", "top_diagnostic_rate": np.nan, "needed": ""}
    n = int(row["n_reps"])
    if n == 0:
        return out
    skip = set(row.get("uninformative") or ())
    fired = {d: _num(row.get(f"rate_{d}")) for d in DIAGNOSTICS if d not in skip}
    fired = {d: v for d, v in fired.items() if np.isfinite(v)}
    if fired:
        best = max(fired, key=fired.get)
        out.update(top_diagnostic=best, top_diagnostic_rate=fired[best])
    lo, hi = wilson_interval(int(round(row["coverage"] * n)), n)
    # no Monte Carlo SE (one replication: NaN) cannot show the bias within its target
    mcse = row.get("bias_mcse")
    bias_ok = abs(row["bias"]) <= BIAS_TARGET + 2 * (0.0 if mcse is None else float(mcse))
    cov_ok = lo <= COVERAGE_TARGET[1] and hi >= COVERAGE_TARGET[0]
    if bias_ok and cov_ok:
        return {**out, "verdict": "valid", "verdict_basis": TARGETS_MET}
    if fired and out["top_diagnostic_rate"] >= CAUGHT_RATE:
        return {**out, "verdict": "caught", "verdict_basis": DIAGNOSTIC_FIRES}
    if _num(row.get("bracketing")) >= BRACKET_RATE:
        return {**out, "verdict": "bracketed", "verdict_basis": BRACKETED}
    needed = row.get("needed")
    needed = "" if needed is None or (isinstance(needed, float) and np.isnan(needed)) \
        else str(needed)
    if _is_true(row.get("targets_apply")) and not needed:
        # the world depends only on what the extract records: the design, not the data, fails
        return {**out, "verdict_basis": DESIGN_FALLS_SHORT}
    return {**out, "verdict_basis": NEEDS_DATA,
            "needed": needed or "information the extract does not record"}


def _plain(x: float, nd: int, signed: bool = False) -> str:
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


def reason_text(row: Mapping[str, Any],
                num: Callable[[float, int, bool], str] = _plain) -> str:
    """The verdict's reason in words, composed from the structured columns of one row of
    the verdict table (:func:`decide`'s, with ``n_reps, bias, bias_mcse, coverage`` and
    ``bracketing``); ``num(x, decimals, signed)`` writes each number (the report passes
    its own, with a true minus sign)."""
    basis = row["verdict_basis"]

    def pct(x: Any) -> str:
        return f"{num(100 * float(x), 0, False)}%"

    if basis == NO_ESTIMATES:
        return "no replication gave an estimate"
    if basis == TARGETS_MET:
        # how wide the interval is against the spread (a valid world can over-cover)
        se = _num(row.get("se_ratio"))
        width = (f"; standard errors {num(se, 2, False)} times the spread of the estimates"
                 if np.isfinite(se) else "")  # fmt: skip
        return (f"bias {num(row['bias'], 2, True)} (Monte Carlo SE "
                f"{num(_num(row.get('bias_mcse')), 2, False)}), coverage "
                f"{pct(row['coverage'])} over {int(row['n_reps'])} replications{width}")
    top, rate = row.get("top_diagnostic"), _num(row.get("top_diagnostic_rate"))
    label = DIAGNOSTIC_LABELS.get(str(top)) if np.isfinite(rate) else None
    if basis == DIAGNOSTIC_FIRES:
        return f"the {label} fires in {pct(rate)} of replications"
    if basis == BRACKETED:
        br = _num(row.get("bracketing"))  # (a validation table has no bracketing rate)
        return ("the truth lies between the matched ANCOVA and the matched differences design"
                + (f" in {pct(br)} of replications" if np.isfinite(br) else ""))
    miss = f"bias {num(row['bias'], 2, True)}, coverage {pct(row['coverage'])}"
    if label is not None:
        miss += f"; the most frequent informative diagnostic ({label}) fires in {pct(rate)}"
    if basis == DESIGN_FALLS_SHORT:
        return (f"{miss}; the extract records what this world depends on, so the design, not "
                "the data, falls short here")
    return f"{miss}; would need {row['needed']}"


def judge(row: Mapping[str, Any]) -> tuple[str, str]:
    """The verdict and its reason in words for one scenario and design (:func:`decide`,
    :func:`reason_text`)."""
    d = decide(row)
    return d["verdict"], reason_text({**row, **d})


def _num(v: Any) -> float:
    """``v`` as a float; NaN when missing or not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _is_true(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1", "1.0")


def verdict_table(
    summary: pd.DataFrame,
    reps: pd.DataFrame,
    designs: dict[str, str],
    ancova: str,
    differences: str,
    reference: str = "dip",
    attempt_designs: tuple[str, ...] = (),
) -> pd.DataFrame:
    """One row per scenario and design (``designs``: label → estimator name) with the
    targets, the diagnostic firing rates, the bracketing rate and the verdict.

    A diagnostic that fires in more than :data:`FALSE_ALARM` of the replications of the
    ``reference`` scenario (a world the design handles) cannot tell a broken world from a
    sound one: it does not make a world *caught* (listed in ``uninformative``).
    ``attempt_designs`` are the labels of designs whose estimand is the effect of the
    first *attempted* visit: no bracketing, and their targets apply where
    :attr:`~pipeline.validation.scenarios.WorldSpec.attempt_targets_apply` says."""
    br = bracketing_rate(reps, ancova, differences)
    rows = []
    for label, est in designs.items():
        rates = diagnostic_rates(reps, est)
        uninformative = []
        if reference in rates.index:
            ref = rates.loc[reference]
            uninformative = [d for d in DIAGNOSTICS if ref.get(f"rate_{d}", 0) > FALSE_ALARM]
        s = summary[summary["estimator"] == est]
        for _, r in s.iterrows():
            scen = r["scenario"]
            spec = spec_of(scen)
            n = int(r["n_reps"])
            mcse = float(r["sd_error"]) / np.sqrt(n) if n > 1 else np.nan
            row = {
                "scenario": scen,
                "world": spec.world,
                "design": label,
                "n_reps": n,
                "bias": float(r["bias"]),
                "bias_mcse": mcse,
                "coverage": float(r["coverage"]),
                "se_ratio": float(r["se_ratio"]),
                "meets_targets": bool(
                    abs(r["bias"]) <= BIAS_TARGET
                    and COVERAGE_TARGET[0] <= r["coverage"] <= COVERAGE_TARGET[1]
                ),
                "bracketing": np.nan if label in attempt_designs else float(br.get(scen, np.nan)),
                "targets_apply": (
                    spec.attempt_targets if label in attempt_designs else spec.targets_apply
                ),
                "needed": spec.needed,
                "uninformative": uninformative,
            }
            for d in DIAGNOSTICS:
                col = f"rate_{d}"
                row[col] = (
                    float(rates.loc[scen, col])
                    if (scen in rates.index and col in rates.columns)
                    else np.nan
                )
            row.update(decide(row))
            row["reason"] = reason_text(row)
            rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS)
    out["uninformative"] = out["uninformative"].map(lambda v: " ".join(v) if v else "")
    return out
