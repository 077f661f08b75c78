"""Do the censoring weights restore the comparison group?  An oracle check.

    python benchmarks/diagnose_censoring.py [--scenario dip] [--reps 24] [--workers 2]
                                            [--n-students 6000] [--seed 20210404]

Comparison students who are visited later are dropped from their visit on and the others
are weighted up (inverse-probability-of-censoring weights, :mod:`pipeline.censoring`). In
a synthetic extract the dropped rows' *untreated* attendance is known: the generator keeps
every attempted student's potential outcomes (``truth[ITT_UNITS]``). The **oracle** gives
every censored comparison row that untreated attendance, so nobody needs to be censored
or weighted; it is what the weights try to reproduce.

For the completed-visit design (``completed``) and the intent-to-treat design at the first
attempt (``itt``), each replication records the matched ANCOVA's window average (event times
1–6, as the estimate stage fits it) with

``ipcw``      the censoring weights (the pipeline's setting, untruncated);
``oracle``    untreated attendance for the censored rows, no weights;
``drop``      censored rows dropped, no weights;
``by_month``  the censoring weights from a hazard fitted separately in each school month
              (its own slopes on the recent months; district and grade band within it):
              a more flexible hazard than the pipeline's;
``ice``       censored rows' untreated attendance predicted by iterated conditional
              expectations from the history before their censoring
              (:func:`pipeline.censoring_ice.ice_impute`), no weights;

the truth over the same matched students (:func:`pipeline.synth.effects.itt_truth_for`)
and, per event time, the comparison group's mean attendance under ``ipcw``, ``oracle`` and
``drop`` and the share of comparison rows censored.

Writes ``benchmarks/results/censoring_oracle.csv`` (one row per replication, design and
event time) and prints the means of ``ipcw − oracle``, ``by_month − oracle`` and
``ice − oracle`` with their Monte Carlo standard errors.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.design import add_outcomes
from pipeline.analysis.simulation import (
    ValidateConfig,
    replication_seeds,
    synth_config,
    synthetic_panel_truth,
)
from pipeline.attempts import itt_design
from pipeline.censoring import (
    DEFAULT_HISTORY,
    _design,
    cumulative_weights,
    fit_hazard,
    hazard_probabilities,
    ipcw_weights,
    risk_sets,
)
from pipeline.censoring_ice import ice_impute
from pipeline.did.ancova import matched_ancova
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from pipeline.synth.effects import itt_truth_for
from pipeline.validation.extras import ITT_UNITS

OUT = Path("benchmarks/results/censoring_oracle.csv")
WINDOW = (1, 6)


def _window(m: pd.DataFrame) -> dict[int, float]:
    td = matched_ancova(m, yname="attendance_rate", cluster=None, average_window=WINDOW).tidy()
    return {int(a): float(b) for a, b in zip(td["event_time"], td["estimate"], strict=True)}


def _untreated(units: pd.DataFrame, attempts: pd.DataFrame) -> pd.Series:
    """Untreated attendance rate by (student_key, school_month) for attempted students; the
    generator's month index is mapped to school months through the first attempts
    (``attempts``: the panel with the first attempt as the event, ``ITTDesign.panel``)."""
    fa = units.groupby("student_id")["first_attempt_t"].first()
    fv = attempts.groupby("student_key")["first_visit_school_month"].first().dropna()
    common = fa.index.intersection(fv.index)
    off = (fv[common].astype(float) - fa[common].astype(float)).round()
    if off.nunique() != 1:
        raise RuntimeError("the generator's months do not map to school months by one offset")
    sm = units["t"] + int(off.iloc[0])
    rate = 100.0 * units["y0"] / units["n"]
    return pd.Series(rate.to_numpy(), index=pd.MultiIndex.from_arrays([units["student_id"], sm]))


def by_month_weights(m: pd.DataFrame) -> np.ndarray:
    """Stabilized censoring weights as :func:`pipeline.censoring.ipcw_weights` computes them
    (untruncated), but with the hazard fitted separately in each school month."""
    comp = (m["role"] == "comparison").to_numpy()
    k = m["stack_event_time"].to_numpy()
    first = m["first_visit_school_month"].to_numpy(dtype=float, na_value=np.nan)
    censored, event, at_risk = risk_sets(comp, k, first, m["school_month"].to_numpy(float))
    risk = m.loc[at_risk]
    y = event[at_risk].astype(int)
    h = np.zeros(len(risk))
    month = risk["school_month"].to_numpy()
    for g in np.unique(month):
        i = month == g
        if y[i].sum() == 0:
            continue
        X, D = _design(risk.loc[i], DEFAULT_HISTORY, ("district_code", "grade_band"),
                       "prior_year_rate")  # fmt: skip
        X = X[:, X.std(axis=0) > 0]
        h[i] = hazard_probabilities(fit_hazard(X, D, y[i]), X, D)
    w = np.ones(len(m))
    w[at_risk] = cumulative_weights(
        risk["match_id"].to_numpy(), risk["student_key"].to_numpy(), k[at_risk],
        event[at_risk], h,
    )  # fmt: skip
    w[censored] = 0.0
    return w


def _design_rows(m: pd.DataFrame, y0: pd.Series, truth: float | None) -> list[dict]:
    w, _ = ipcw_weights(m, truncate=None)
    m = m.assign(ipcw=w.to_numpy())
    cen = ((m["role"] == "comparison") & m["censored"].astype(bool)).to_numpy()
    idx = pd.MultiIndex.from_arrays(
        [m.loc[cen, "student_key"], m.loc[cen, "school_month"].astype(int)]
    )
    vals = y0.reindex(idx).to_numpy()
    if np.isnan(vals).any():
        raise RuntimeError("a censored comparison row has no untreated outcome in the truth")
    y = m["attendance_rate"].to_numpy(dtype=float).copy()
    y[np.flatnonzero(cen)] = vals
    oracle = m.assign(attendance_rate=y, censored=False, ipcw=1.0)
    fits = {
        "ipcw": _window(m),
        "oracle": _window(oracle),
        "drop": _window(m.assign(ipcw=1.0)),
        "by_month": _window(m.assign(ipcw=by_month_weights(m))),
        "ice": _window(ice_impute(m, "attendance_rate")[0]),
    }
    rows = []
    comp = (m["role"] == "comparison").to_numpy()
    et = m["stack_event_time"].to_numpy()
    mw = m["weight"].to_numpy(dtype=float)
    for k in range(WINDOW[0], WINDOW[1] + 1):
        at = comp & (et == k)
        live = at & ~cen
        row = {
            "event_time": k,
            "truth_window": truth,
            "censored_share": float(cen[at].mean()) if at.any() else np.nan,
            "mean_ipcw": np.average(m["attendance_rate"].to_numpy(float)[live],
                                    weights=mw[live] * m["ipcw"].to_numpy(float)[live]),
            "mean_oracle": np.average(y[at], weights=mw[at]),
            "mean_drop": np.average(m["attendance_rate"].to_numpy(float)[live],
                                    weights=mw[live]),
        }  # fmt: skip
        for name, f in fits.items():
            row[f"effect_{name}"] = f.get(k, np.nan)
            row[f"window_{name}"] = float(np.mean([f[j] for j in range(WINDOW[0], WINDOW[1] + 1)]))
        rows.append(row)
    return rows


def replication(args: tuple[str, int, int, int]) -> pd.DataFrame:
    scenario, n_students, rep, seed = args
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel, truth = synthetic_panel_truth(
            synth_config(ValidateConfig(n_students=n_students), scenario, seed)
        )
        units = truth[ITT_UNITS]
        spec = RiskSetSpec()
        itt = itt_design(panel, spec)  # its attempt panel maps the generator's months too
        y0 = _untreated(units, itt.panel)
        res = riskset_match(panel, spec)
        designs = {
            "completed": (
                add_outcomes(stack_panels(panel, res.matches, spec.window)),
                units[units["first_completed_t"] >= 0].assign(
                    first_attempt_t=lambda u: u["first_completed_t"]
                ),
            ),
            "itt": (itt.matched, units),
        }
        out = []
        for name, (m, u) in designs.items():
            keys = pd.Index(m.loc[m["role"] == "treated", "student_key"].unique())
            t = itt_truth_for(u, keys, WINDOW)["itt_window"]
            for r in _design_rows(m, y0, t):
                out.append({"scenario": scenario, "rep": rep, "seed": seed, "design": name, **r})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="dip")
    ap.add_argument("--reps", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-students", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=20210404)
    a = ap.parse_args()
    seeds = replication_seeds(a.seed, a.reps)
    jobs = [(a.scenario, a.n_students, r, int(s)) for r, s in enumerate(seeds)]
    with ProcessPoolExecutor(max_workers=a.workers) as ex:
        df = pd.concat(list(ex.map(replication, jobs)), ignore_index=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT, index=False)
    per_rep = df[df["event_time"] == WINDOW[0]]
    for d, g in per_rep.groupby("design"):
        n = len(g)
        for name in ("ipcw", "oracle", "drop", "by_month", "ice"):
            e = g[f"window_{name}"] - g["truth_window"]
            print(f"{d:9s} {name:6s} bias {e.mean():+.3f} (MC SE {e.std() / np.sqrt(n):.3f})")
        for name in ("ipcw", "by_month", "ice"):
            diff = g[f"window_{name}"] - g["window_oracle"]
            se = diff.std() / np.sqrt(n)
            print(f"{d:9s} {name} - oracle {diff.mean():+.3f} (MC SE {se:.3f})")
    by_k = df.groupby(["design", "event_time"])[["censored_share", "mean_ipcw", "mean_oracle",
                                                  "mean_drop"]].mean()  # fmt: skip
    print(by_k.round(3).to_string())


if __name__ == "__main__":
    main()
