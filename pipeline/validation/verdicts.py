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
#: The ``design`` label of the intent-to-treat design at the first attempted visit
#: (issue 17): judged against its own truth; bracketing (a property of the
#: completed-visit designs) does not apply to it.
ATTEMPT_DESIGN = "intent to treat"

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


def judge(row: dict) -> tuple[str, str]:
    """The verdict and its reason for one scenario and design (see the module docstring).

    ``row`` holds ``n_reps, bias, bias_mcse, coverage, rate_<diagnostic>, bracketing`` and
    ``needed`` (what a world not identified would need).
    """
    n = int(row["n_reps"])
    if n == 0:
        return "not identified", "no replication gave an estimate"
    lo, hi = wilson_interval(int(round(row["coverage"] * n)), n)
    bias_ok = abs(row["bias"]) <= BIAS_TARGET + 2 * (row["bias_mcse"] or 0.0)
    cov_ok = lo <= COVERAGE_TARGET[1] and hi >= COVERAGE_TARGET[0]
    if bias_ok and cov_ok:
        return "valid", (
            f"bias {row['bias']:+.2f} (Monte Carlo SE {row['bias_mcse']:.2f}), coverage "
            f"{100 * row['coverage']:.0f}% over {n} replications"
        )
    skip = set(row.get("uninformative") or ())
    fired = {d: row.get(f"rate_{d}") for d in DIAGNOSTICS if d not in skip}
    fired = {d: v for d, v in fired.items() if v is not None and np.isfinite(v)}
    best = max(fired, key=fired.get) if fired else None
    if best is not None and fired[best] >= CAUGHT_RATE:
        return "caught", (
            f"the {DIAGNOSTIC_LABELS[best]} fires in {100 * fired[best]:.0f}% of replications"
        )
    br = row.get("bracketing")
    if br is not None and np.isfinite(br) and br >= BRACKET_RATE:
        return "bracketed", (
            f"the truth lies between the matched ANCOVA and the matched differences design "
            f"in {100 * br:.0f}% of replications"
        )
    miss = f"bias {row['bias']:+.2f}, coverage {100 * row['coverage']:.0f}%"
    if best is not None:
        miss += (
            f"; the most frequent informative diagnostic ({DIAGNOSTIC_LABELS[best]}) fires in "
            f"{100 * fired[best]:.0f}%"
        )
    if row.get("targets_apply") is True and not row.get("needed"):
        # the world depends only on what the extract records: the design, not the data, fails
        return "not identified", (
            f"{miss}; the extract records what this world depends on, so the design, not "
            "the data, falls short here"
        )
    needed = row.get("needed") or "information the extract does not record"
    return "not identified", f"{miss}; would need {needed}"


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
            row["verdict"], row["reason"] = judge(row)
            rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS)
    out["uninformative"] = out["uninformative"].map(lambda v: " ".join(v) if v else "")
    return out
