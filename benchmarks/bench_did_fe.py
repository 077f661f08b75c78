"""Benchmark the fixed-effects event-study estimators on a large staggered panel.

Balanced panel of ``--units`` units (default 200,000) × ``--periods`` periods (24) with
6 adoption cohorts and 40% never treated.  Each estimator runs in its own subprocess
(which generates the panel, then times the estimator); it reports the wall time of the
estimator call, the CPU time and the peak resident set size of the whole child process
(``resource.getrusage``; the peak includes the panel itself).

    .venv/bin/python benchmarks/bench_did_fe.py [--units 200000] [--estimators sun_abraham,imputation]
    .venv/bin/python benchmarks/bench_did_fe.py --estimators twfe,pyfixest_twfe,imputation,pyfixest_did2s \
        --peer-python /work/peers-cs/bin/python

Peers (pyfixest, not a project dependency) run in ``--peer-python``: ``pyfixest_twfe`` is
``feols("y ~ i(rel, ref=-1) | unit + time")`` (the same regression as our ``twfe``) and
``pyfixest_did2s`` is Gardner's two-stage estimator, whose post-period event-time estimates
equal the imputation estimator's (Borusyak, Jaravel & Spiess). Each pair is compared on
the same panel: time ratio and the largest difference in the event-time estimates.

Timings on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

ESTIMATORS = ["imputation", "sun_abraham", "twfe"]
PEERS = {"pyfixest_twfe": "twfe", "pyfixest_did2s": "imputation"}
COMPARE = list(range(0, 11))  # post-period event times compared between a peer and ours


def make_panel(n_units: int, n_periods: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units, dtype=np.int64), n_periods)
    t = np.tile(np.arange(1, n_periods + 1, dtype=np.int64), n_units)
    cohorts = np.array([5, 8, 11, 14, 17, 20], dtype=float)
    g_u = rng.choice(cohorts, size=n_units)
    g_u[rng.random(n_units) < 0.4] = 0.0
    g = g_u[unit]
    rel = t - g
    te = np.where((g > 0) & (rel >= 0), 1.0 + 0.1 * rel, 0.0)
    y = rng.normal(size=n_units)[unit] + 0.05 * t + te + rng.normal(size=unit.size)
    return pd.DataFrame({"unit": unit, "time": t, "g": g, "y": y, "district": unit % 150})


def _peer_child(name: str, n_units: int, n_periods: int) -> None:
    import pyfixest as pf

    def prep(n):
        df = make_panel(n, n_periods)
        df["rel"] = np.where(df["g"] > 0, df["time"] - df["g"], -1).astype(int)
        df["treat"] = ((df["g"] > 0) & (df["time"] >= df["g"])).astype(int)
        return df

    def est(df):
        if name == "pyfixest_twfe":
            return pf.feols("y ~ i(rel, ref=-1) | unit + time", data=df,
                            vcov={"CRV1": "district"})
        return pf.did2s(df, yname="y", first_stage="~ 0 | unit + time",
                        second_stage="~ i(rel, ref=-1)", treatment="treat",
                        cluster="district")

    est(prep(300))  # warm-up: numba compiles pyfixest's demeaning on first use (not timed)
    t0 = time.perf_counter()
    df = prep(n_units)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = est(df)
    t_est = time.perf_counter() - t0
    coef = fit.coef()
    out = {}
    for k, v in coef.items():
        digits = "".join(ch for ch in str(k).split("::")[-1] if ch in "-0123456789")
        if digits and int(digits) in COMPARE:
            out[int(digits)] = float(v)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "estimator": name, "rows": len(df), "gen_s": round(t_gen, 2),
        "estimate_s": round(t_est, 2),
        "avg_0_3": round(float(np.mean([out[h] for h in range(4)])), 4),
        "coef": {str(h): out[h] for h in sorted(out)},
        "child_cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "child_peak_rss_gb": round(ru.ru_maxrss / 1024**2, 2),
        "version": pf.__version__,
    }))


def _child(name: str, n_units: int, n_periods: int) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from pipeline.did.imputation import imputation
    from pipeline.did.sunab import sun_abraham
    from pipeline.did.twfe import twfe_event_study

    t0 = time.perf_counter()
    df = make_panel(n_units, n_periods)
    t_gen = time.perf_counter() - t0
    kw = dict(yname="y", tname="time", idname="unit", gname="g", cluster="district")
    fn = {"imputation": imputation, "sun_abraham": sun_abraham, "twfe": twfe_event_study}[name]
    t0 = time.perf_counter()
    res = fn(df, **kw)
    t_est = time.perf_counter() - t0
    avg = res.average((0, 3))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "estimator": name,
                "rows": len(df),
                "gen_s": round(t_gen, 2),
                "estimate_s": round(t_est, 2),
                "avg_0_3": round(avg.estimate, 4),
                "se_0_3": round(avg.std_error, 5),
                "truth_0_3": 1.15,
                "n_event_times": int(res.event_time.size),
                "coef": {str(int(e)): float(b) for e, b in zip(res.event_time, res.estimate, strict=True)
                         if int(e) in COMPARE},
                "child_cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                "child_peak_rss_gb": round(ru.ru_maxrss / 1024**2, 2),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=200_000)
    ap.add_argument("--periods", type=int, default=24)
    ap.add_argument("--estimators", default=",".join(ESTIMATORS[:2]))
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS/OMP/MKL_NUM_THREADS for the children (default: inherit)",
    )
    ap.add_argument(
        "--out",
        default=None,
        help="also write the records as JSON (e.g. benchmarks/results/bench_did_fe.json)",
    )
    ap.add_argument("--peer-python", default="/work/peers-cs/bin/python")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        (_peer_child if a.child in PEERS else _child)(a.child, a.units, a.periods)
        return
    print(
        f"panel: {a.units} units x {a.periods} periods = {a.units * a.periods} rows, "
        f"6 cohorts, 40% never treated; cpus visible: {os.cpu_count()}; "
        f"load average {os.getloadavg()[0]:.1f}; blas threads: {a.blas_threads or 'default'}"
    )
    env = dict(os.environ)
    if a.blas_threads:
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = str(a.blas_threads)
    records = []
    for name in a.estimators.split(","):
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                a.peer_python if name in PEERS else sys.executable,
                os.path.abspath(__file__),
                "--child",
                name,
                "--units",
                str(a.units),
                "--periods",
                str(a.periods),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            print(f"{name}: FAILED\n{out.stderr[-2000:]}")
            tail = out.stderr.strip().splitlines()
            records.append({"estimator": name, "error": tail[-1] if tail else "failed",
                            "process_wall_s": round(wall, 2)})
            continue
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["process_wall_s"] = round(wall, 2)
        print(json.dumps(rec))
        records.append(rec)
    by_name = {r["estimator"]: r for r in records if "error" not in r}
    comparisons = []
    for peer, ours in PEERS.items():
        if peer in by_name and ours in by_name:
            p, o = by_name[peer], by_name[ours]
            common = sorted(set(p["coef"]) & set(o["coef"]), key=int)
            comparisons.append({
                "peer": peer, "ours": ours, "peer_version": p.get("version"),
                "time_ratio_peer_over_ours": round(p["estimate_s"] / o["estimate_s"], 2),
                "rss_ratio_peer_over_ours": round(
                    p["child_peak_rss_gb"] / o["child_peak_rss_gb"], 2),
                "event_times_compared": len(common),
                "max_abs_diff_estimate": max(abs(p["coef"][h] - o["coef"][h]) for h in common),
            })
            print(json.dumps(comparisons[-1]))
        elif peer in {r["estimator"] for r in records}:
            err = next(r["error"] for r in records if r["estimator"] == peer)
            comparisons.append({"peer": peer, "ours": ours, "error": err})
    if a.out:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from pipeline.io import write_json

        write_json(
            {
                "units": a.units,
                "periods": a.periods,
                "blas_threads": a.blas_threads,
                "load_average_1min": round(os.getloadavg()[0], 1),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "records": records,
                "comparisons": comparisons,
            },
            a.out,
        )


if __name__ == "__main__":
    main()
