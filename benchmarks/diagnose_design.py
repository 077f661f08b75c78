"""Where the matched differences design's bias comes from: matching × censoring handling.

(The evidence that made the matched ANCOVA the primary design in place of the matched
differences, the stacked event study that was primary before.)

    .venv/bin/python benchmarks/diagnose_design.py [--scenarios dip,zero_effect,no_dip]
                                                   [--reps 40] [--workers 2]

Draws replications exactly as the ``validate`` stage does (same sizes, scenarios and
seeds: ``pipeline.validate``), matches with the configured risk-set matching, and then
estimates the window average (event times 1–6) of the matched stacked event study on three
versions of the same matched sets —

``ps``     the matched sets as built (``ratio`` nearest neighbours on the propensity score);
``ps_r1``  only the comparison student nearest on the recorded lags (``rate_lag1``,
           ``rate_lag2``) among them;
``close``  only those comparison students within 4 points (sum of absolute differences)
           of their treated student on ``rate_lag1`` and ``rate_lag2``;

— each with the three ways of handling comparison students visited later: ``ipcw``
(dropped from their visit on, censoring weights), ``drop`` (dropped, no weights) and
``keep`` (kept as if unvisited), and with time effects per matched set (the matched
differences design's default) or per stratum (district × month × grade band). On the matched sets as built it
also fits the matched ANCOVA (:func:`pipeline.did.ancova.matched_ancova`: post-visit levels
adjusted for the baseline lags instead of differences from the month before the visit) with time effects per
matched set, per district or per event time only. Under ``zero_effect`` keeping them is harmless, so its bias
is the matching's alone; ``keep − drop`` under ``zero_effect`` is the selection that
dropping them introduces.

Writes ``benchmarks/results/diagnose_design.csv`` (replication level) and prints bias, the
spread of the estimates, the mean standard error and coverage per variant. Timings are
not the point; about 25 s per replication on one core.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "diagnose_design.csv"
HANDLING = {"ipcw": (True, True), "drop": (False, True), "keep": (False, False)}


def _subset(m: pd.DataFrame, how: str) -> pd.DataFrame:
    if how == "ps":
        return m
    b = m[m["stack_event_time"] == 0][["match_id", "student_key", "role", "rate_lag1",
                                        "rate_lag2"]]
    t = b[b["role"] == "treated"].set_index("match_id")[["rate_lag1", "rate_lag2"]]
    b = b.join(t.add_suffix("_t"), on="match_id")
    b = b.assign(d=(b["rate_lag1"] - b["rate_lag1_t"]).abs()
                 + (b["rate_lag2"] - b["rate_lag2_t"]).abs())
    c = b[b["role"] == "comparison"]
    if how == "ps_r1":
        keep = c.sort_values(["match_id", "d", "student_key"]).groupby("match_id").head(1)
    else:
        keep = c[c["d"] <= 4.0]
    ok = pd.concat([b[b["role"] == "treated"], keep])[["match_id", "student_key"]]
    m = m.merge(ok.drop_duplicates(), on=["match_id", "student_key"])
    with_c = m.loc[m["role"] == "comparison", "match_id"].unique()
    return m[m["match_id"].isin(with_c)]


def one(args) -> list[dict]:
    scenario, rep, seed = args
    from pipeline.analysis.design import add_outcomes, with_censoring_weights
    from pipeline.analysis.simulation import ValidateConfig, synth_config
    from pipeline.did.ancova import matched_ancova
    from pipeline.did.stacked import stacked_event_study
    from pipeline.ingestion import run_ingest
    from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
    from pipeline.panel_build import write_panel
    from pipeline.synth import generate, write_extract

    cfg = ValidateConfig()
    extract = generate(synth_config(cfg, scenario, seed))
    truth = float(extract.truth["att_window"])
    with tempfile.TemporaryDirectory(prefix="leap-diag-") as tmp:
        tmp = Path(tmp)
        write_extract(extract, tmp / "raw")
        run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=1, synthetic=True)
        write_panel(tmp / "interim", tmp / "panel.parquet", None)
        panel = pd.read_parquet(tmp / "panel.parquet")
    spec = RiskSetSpec()
    res = riskset_match(panel, spec)
    matched = add_outcomes(stack_panels(panel, res.matches, spec.window))
    rows = []
    for how in ("ps", "ps_r1", "close"):
        m = _subset(matched, how)
        for name, (ip, drop) in HANDLING.items():
            mm = with_censoring_weights(m, ip)[0]
            for stack, label in (("match_id", "matched_set"), ("stack_id", "stratum")):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = stacked_event_study(mm, yname="attendance_rate", weights="ipcw",
                                            stack=stack, cluster="student_key",
                                            drop_censored=drop, window=(-6, 12),
                                            average_window=(1, 6))
                a = r.average((1, 6), 0.05)
                rows.append({"scenario": scenario, "rep": rep, "model": "did",
                             "matching": how, "censoring": name, "time_effects": label,
                             "truth": truth, "estimate": a.estimate,
                             "std_error": a.std_error,
                             "covered": a.ci_low <= truth <= a.ci_high,
                             "pre_m3": float(r.params.get(-3, np.nan))})
            if how != "ps":
                continue
            for fe, label in (("match_id", "matched_set"), ("district_code", "district"),
                              (None, "event_time")):
                a = matched_ancova(mm, yname="attendance_rate", window=(1, 6), fe=fe,
                                   censored="censored" if drop else None).average((1, 6))
                est, se = a.estimate, a.std_error
                rows.append({"scenario": scenario, "rep": rep, "model": "ancova",
                             "matching": how, "censoring": name, "time_effects": label,
                             "truth": truth, "estimate": est, "std_error": se,
                             "covered": abs(est - truth) <= 1.96 * se, "pre_m3": np.nan})
    return rows


def main() -> None:
    from pipeline.analysis.simulation import ValidateConfig, replication_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="dip,zero_effect,no_dip")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    seeds = replication_seeds(ValidateConfig().seed, a.reps)
    tasks = [(s, r, seeds[r]) for s in a.scenarios.split(",") for r in range(a.reps)]
    with ProcessPoolExecutor(a.workers) as ex:
        df = pd.DataFrame([row for part in ex.map(one, tasks) for row in part])
    OUT.parent.mkdir(exist_ok=True)
    df.to_csv(OUT, index=False)
    err = df["estimate"] - df["truth"]
    summ = (df.assign(err=err)
            .groupby(["scenario", "model", "time_effects", "matching", "censoring"],
                     sort=False)
            .agg(n=("err", "size"), bias=("err", "mean"), sd_estimate=("estimate", "std"),
                 mean_se=("std_error", "mean"), coverage=("covered", "mean"),
                 pre_m3=("pre_m3", "mean")))
    summ["se_ratio"] = summ["mean_se"] / summ["sd_estimate"]
    print(summ.round(3).to_string())


if __name__ == "__main__":
    main()
