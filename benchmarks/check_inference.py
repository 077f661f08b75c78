"""Small simulation check of the issue-17 estimands and intervals (not the stage).

Worlds (small extracts as the ``validate`` stage draws them: 10,000 students, 8
districts, 4 running the program):

``zero_half_contact``
    Every effect zero and half of the attempts reach the family: the attempt ITT, the
    effect on families reached and the completed-visit effect are all 0.
``dip``
    The default world (effects on; contact rate 0.78): the completed-visit truth is the
    generator's ``att_window``; the ITT truth is not recorded by the generator, so only
    its spread is reported.
``reachability_zero``
    Every effect zero; reachable families share an unrecorded factor that also raises
    their attendance (the generator's ``synthesize.worlds``: ``family_sd``,
    ``reach_family``): the completed-visit design is biased, the attempt ITT is not.

Per replication: the completed-visit matched ANCOVA (censoring weights; intervals
clustered by student and by home school), the ITT at the first attempt with Bloom's
effect on families reached, and the design bootstrap's standard error (``--draws``).
Writes replication rows and a summary (bias, coverage, SD of the estimates, mean
standard errors and their ratio to the SD) as JSON.

Usage::

    python benchmarks/check_inference.py --reps 20 --draws 99 --workers 2 \
        --out benchmarks/results/check_inference.json

Each replication is also appended to ``<out>.jsonl`` as it finishes
(:func:`summarize_file` summarises a run cut short).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORLDS = {
    "zero_half_contact": {"program": {"contact_rate": 0.5}, "effects": {"zero": True}},
    "dip": {},
    # needs the generator's stress-test worlds (synthesize.worlds): reachable families
    # share an unrecorded factor that also raises attendance; every effect zero
    "reachability_zero": {
        "worlds": {"family_sd": 0.5, "reach_family": 1.5},
        "effects": {"zero": True},
    },
}
ZERO_TRUTH = ("zero_half_contact", "reachability_zero")


def _panel(world: str, seed: int):
    import dataclasses

    try:  # after the architecture refactor (issue 22) the library lives in ingestion
        from pipeline.ingestion import run_ingest
    except ImportError:
        from pipeline.ingest import run_ingest
    from pipeline.synth import SynthConfig, generate, write_extract

    try:
        from pipeline.panel_build import write_panel
    except ImportError:
        from pipeline.panel import write_panel

    over = WORLDS[world]
    base = SynthConfig()
    program = dataclasses.replace(base.program, served_share=0.12, **over.get("program", {}))
    effects = dataclasses.replace(base.effects, **over.get("effects", {}))
    extra = {}
    if "worlds" in over:
        if not hasattr(base, "worlds"):
            raise RuntimeError("this generator has no stress-test worlds (synthesize.worlds)")
        extra["worlds"] = dataclasses.replace(base.worlds, **over["worlds"])
    cfg = dataclasses.replace(
        base, seed=seed, program=program, effects=effects,
        n_students=10000, n_districts=8, n_program_districts=4, **extra,
    )  # fmt: skip
    ex = generate(cfg)
    with tempfile.TemporaryDirectory(prefix="leap-check-") as tmp:
        tmp = Path(tmp)
        write_extract(ex, tmp / "raw")
        run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=1, synthetic=True)
        write_panel(tmp / "interim", tmp / "panel.parquet", None)
        panel = pd.read_parquet(tmp / "panel.parquet")
    return panel, ex.truth


def replication(args) -> dict:
    world, rep, seed, draws = args
    warnings.simplefilter("ignore")
    from pipeline.attempts import bloom, itt_design, reach_shares
    from pipeline.censoring import ipcw_weights
    from pipeline.clusters import add_home_clusters, home_clusters
    from pipeline.design_bootstrap import DesignBootstrap
    from pipeline.did.ancova import matched_ancova
    from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels

    t0 = time.perf_counter()
    panel, truth = _panel(world, seed)
    homes = home_clusters(panel)
    spec = RiskSetSpec()
    row: dict = {"world": world, "rep": rep, "seed": seed}
    row["truth_completed"] = 0.0 if world in ZERO_TRUTH else truth.get("att_window")
    row["truth_itt"] = 0.0 if world in ZERO_TRUTH else np.nan

    def fit(m, cluster):
        r = matched_ancova(m, yname="attendance_rate", window=(-6, 12), cluster=cluster)
        return r.average((1, 6))

    res = riskset_match(panel, spec)
    m = stack_panels(panel, res.matches, spec.window)
    m = add_home_clusters(m, homes).assign(ipcw=ipcw_weights(m)[0].to_numpy())
    a = fit(m, "student_key")
    b = fit(m, "home_school_code")
    row.update(
        completed=a.estimate, completed_se_student=a.std_error, completed_se_school=b.std_error,
        completed_ci_student=[a.ci_low, a.ci_high], completed_ci_school=[b.ci_low, b.ci_high],
    )  # fmt: skip
    des = itt_design(panel, spec)
    mi = des.matched.assign(ipcw=ipcw_weights(des.matched)[0].to_numpy())
    mi = add_home_clusters(mi, homes)
    i = fit(mi, "home_school_code")
    bl = bloom(i.estimate, i.std_error, reach_shares(mi))
    row.update(
        itt=i.estimate, itt_se_school=i.std_error, itt_ci_school=[i.ci_low, i.ci_high],
        bloom=bl.estimate, bloom_se=bl.std_error, bloom_ci=[bl.ci_low, bl.ci_high],
        share_reached=bl.share_reached,
    )  # fmt: skip
    if draws:
        bs = DesignBootstrap(panel).run(draws, seed=seed, workers=1)
        row["completed_boot_se"] = bs.std_error
        row["completed_boot_ci"] = list(bs.conf_int())
        row["boot_seconds"] = round(bs.seconds, 1)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _cover(ci, truth) -> float:
    if truth is None or not np.isfinite(truth):
        return np.nan
    return float(ci[0] <= truth <= ci[1])


def summarize(rows: list[dict]) -> list[dict]:
    df = pd.DataFrame(rows)
    out = []
    for world, d in df.groupby("world"):
        s = {"world": world, "reps": int(len(d))}
        for est, truth, ses, cis in (
            ("completed", "truth_completed",
             ["completed_se_student", "completed_se_school", "completed_boot_se"],
             ["completed_ci_student", "completed_ci_school", "completed_boot_ci"]),
            ("itt", "truth_itt", ["itt_se_school"], ["itt_ci_school"]),
            ("bloom", "truth_itt", ["bloom_se"], ["bloom_ci"]),
        ):  # fmt: skip
            sd = float(d[est].std(ddof=1))
            s[f"{est}_mean"] = float(d[est].mean())
            s[f"{est}_sd"] = sd
            t = d[truth].astype(float)
            s[f"{est}_bias"] = float((d[est] - t).mean()) if t.notna().all() else None
            for se in ses:
                if se in d:
                    s[f"{se}_mean"] = float(d[se].mean())
                    s[f"{se}_ratio_to_sd"] = float(d[se].mean() / sd)
            for ci in cis:
                if ci in d:
                    cov = [_cover(c, tt) for c, tt in zip(d[ci], t, strict=True)]
                    s[f"{ci}_coverage"] = None if np.isnan(cov).any() else float(np.mean(cov))
        out.append(s)
    return out


def summarize_file(path: Path) -> list[dict]:
    """The summary of the replications written so far to a ``.jsonl`` file."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return summarize(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--draws", type=int, default=99)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--worlds", nargs="+", default=["zero_half_contact", "dip"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(args.seed).spawn(args.reps)
    ]
    # worlds interleaved, so that a run cut short has replications of each
    tasks = [(w, r, seeds[r], args.draws) for r in range(args.reps) for w in args.worlds]
    t0 = time.perf_counter()
    rows = []
    log = args.out.with_suffix(".jsonl") if args.out else None
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        futures = [ex.submit(replication, t) for t in tasks]
        for f in as_completed(futures):
            row = f.result()
            rows.append(row)
            if log:  # each replication as it finishes
                with log.open("a") as fh:
                    fh.write(json.dumps(row, default=float) + "\n")
    rows.sort(key=lambda r: (r["world"], r["rep"]))
    result = {
        "summary": summarize(rows),
        "replications": rows,
        "settings": vars(args) | {"out": str(args.out)},
        "seconds": round(time.perf_counter() - t0, 1),
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    text = json.dumps(result, indent=2, default=float)
    print(json.dumps(result["summary"], indent=2, default=float))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
