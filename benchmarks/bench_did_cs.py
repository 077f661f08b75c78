"""Benchmark: Callaway & Sant'Anna ATT(g,t) + dynamic aggregation, ours vs PyPI peers.

Generates a balanced panel (default 200,000 units × 24 periods, 6 cohorts, 40% never
treated), then runs each implementation in its own subprocess — so wall time and peak
resident memory (``resource.getrusage(...).ru_maxrss``, which includes reading the
data) are measured per implementation — with doubly robust estimation, never-treated
comparisons, no covariates, analytic standard errors (or ``--biters`` multiplier
bootstrap draws), ATT(g,t) plus the dynamic (event-study) aggregation.  Numbers are
checked against ours and the ratios printed.

Peers (``csdid``, ``moderndid``, ``differences``, ``diff-diff``) are not project
dependencies; install them in a separate environment and point ``--peer-python`` at it
(missing ones are skipped)::

    python3 -m venv /work/peers-cs
    /work/peers-cs/bin/pip install moderndid csdid differences diff-diff
    .venv/bin/python benchmarks/bench_did_cs.py                     # ours only, full size
    .venv/bin/python benchmarks/bench_did_cs.py --peers all --units 20000
    .venv/bin/python benchmarks/bench_did_cs.py --biters 999

Each implementation runs ``--repeats`` times (default 3), interleaved with the others, and
its median time is reported with every run's: on a shared 2-core machine one run of a
one-second job can vary 2× (seen here: ours 2.5 s then 1.3 s, diff-diff 6.0 s then 4.7 s).
Timings are upper bounds on a shared 2-core machine.  Results are appended as JSON
lines to ``benchmarks/results/bench_did_cs.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("csdid", "moderndid", "differences", "diff_diff")
DEFAULT_PEER_PYTHON = "/work/peers-cs/bin/python"


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_panel(n_units: int, n_periods: int, seed: int = 12345) -> pd.DataFrame:
    """Balanced panel: 40% never treated, 6 equal cohorts spread over the periods."""
    rng = np.random.default_rng(seed)
    cohorts = np.linspace(4, n_periods - 2, 6).round().astype(int)
    p = np.r_[0.4, np.full(6, 0.1)]
    g = rng.choice(np.r_[0, cohorts], size=n_units, p=p)
    alpha = rng.normal(size=n_units)
    t = np.arange(1, n_periods + 1)
    gamma = 0.05 * t + 0.2 * np.sin(t)
    exposure = t[None, :] - g[:, None]
    treated = (g[:, None] > 0) & (exposure >= 0)
    eff = np.where(treated, 0.1 + 0.02 * exposure, 0.0)
    y = alpha[:, None] + gamma[None, :] + eff + rng.normal(size=(n_units, n_periods))
    return pd.DataFrame(
        {
            "id": np.repeat(np.arange(1, n_units + 1), n_periods),
            "t": np.tile(t, n_units),
            "g": np.repeat(g, n_periods),
            "y": y.ravel(),
        }
    )


# --------------------------------------------------------------------------------------
# workers (run in a subprocess; only the chosen implementation is imported)
# --------------------------------------------------------------------------------------
def _run_ours(d: pd.DataFrame, biters: int):
    sys.path.insert(0, str(ROOT))
    from pipeline.did.cs import aggte, att_gt

    t0 = time.perf_counter()
    r = att_gt(
        d,
        yname="y",
        tname="t",
        idname="id",
        gname="g",
        est_method="dr",
        bstrap=biters > 0,
        biters=max(biters, 1),
        cband=biters > 0,
        seed=1,
    )
    es = aggte(r, "dynamic")
    wall = time.perf_counter() - t0
    gt = pd.DataFrame({"group": r.group, "time": r.time, "att": r.att, "se": r.se})
    ev = pd.DataFrame({"e": es.egt, "att": es.att_egt, "se": es.se_egt})
    return wall, gt, ev


def _run_csdid(d: pd.DataFrame, biters: int):
    import contextlib
    import io

    from csdid.att_gt import ATTgt

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        m = ATTgt(
            yname="y",
            tname="t",
            idname="id",
            gname="g",
            data=d,
            biters=max(biters, 1),
            cband=biters > 0,
        ).fit(est_method="dr", bstrap=biters > 0)
        m.aggte(typec="dynamic", bstrap=biters > 0, cband=biters > 0)
    wall = time.perf_counter() - t0
    res = m.results
    flat = np.ravel
    gt = pd.DataFrame(
        {
            "group": flat(res["group"]),
            "time": flat(res["year"]),
            "att": flat(res["att"]),
            "se": flat(res["se"]),
        }
    )
    ev = pd.DataFrame(
        {"e": flat(m.atte["egt"]), "att": flat(m.atte["att_egt"]), "se": flat(m.atte["se_egt"])}
    )
    return wall, gt, ev


def _run_moderndid(d: pd.DataFrame, biters: int):
    import polars as pl
    from moderndid import aggte, att_gt

    dp = pl.from_pandas(d)
    t0 = time.perf_counter()
    r = att_gt(
        dp,
        yname="y",
        tname="t",
        idname="id",
        gname="g",
        est_method="dr",
        boot=biters > 0,
        biters=max(biters, 1),
        cband=biters > 0,
        random_state=1,
    )
    es = aggte(r, type="dynamic", boot=biters > 0, cband=biters > 0)
    wall = time.perf_counter() - t0
    gt = pd.DataFrame({"group": r.groups, "time": r.times, "att": r.att_gt, "se": r.se_gt})
    ev = pd.DataFrame({"e": es.event_times, "att": es.att_by_event, "se": es.se_by_event})
    return wall, gt, ev


def _run_differences(d: pd.DataFrame, biters: int):
    from differences import ATTgt

    d2 = d.assign(g=d["g"].replace(0, np.nan)).set_index(["id", "t"])
    t0 = time.perf_counter()
    a = ATTgt(data=d2, cohort_column="g")
    r = a.fit(
        formula="y",
        est_method="dr",
        control_group="never_treated",
        boot_iterations=biters,
        random_state=1,
        progress_bar=False,
    )
    e = a.aggregate("event", boot_iterations=biters, random_state=1)
    wall = time.perf_counter() - t0

    def col(df, last):
        c = [k for k in df.columns if k[-1] == last]
        return df[c[0]].to_numpy()

    rd = r if isinstance(r, pd.DataFrame) else a.results()
    rd = rd.reset_index()
    gt = pd.DataFrame(
        {
            "group": rd["cohort"].to_numpy(),
            "time": rd["time"].to_numpy(),
            "att": col(rd, "ATT"),
            "se": col(rd, "std_error"),
        }
    )
    ed = e.reset_index()
    ecol = [k for k in ed.columns if "relative_period" in str(k) or k[0] == "relative_period"]
    ev = pd.DataFrame(
        {"e": ed[ecol[0]].to_numpy(), "att": col(ed, "ATT"), "se": col(ed, "std_error")}
    )
    return wall, gt, ev


def _run_diff_diff(d: pd.DataFrame, biters: int):
    from diff_diff import CallawaySantAnna

    t0 = time.perf_counter()
    cs = CallawaySantAnna(
        control_group="never_treated",
        estimation_method="dr",
        n_bootstrap=biters,
        seed=1,
        cband=biters > 0,
    )
    res = cs.fit(d, outcome="y", unit="id", time="t", first_treat="g", aggregate="event_study")
    wall = time.perf_counter() - t0
    gt = pd.DataFrame(
        [
            {"group": g, "time": t, "att": v["effect"], "se": v["se"]}
            for (g, t), v in res.group_time_effects.items()
        ]
    )
    ev = pd.DataFrame(
        [{"e": e, "att": v["effect"], "se": v["se"]} for e, v in res.event_study_effects.items()]
    )
    return wall, gt, ev


def worker(name: str, data: str, biters: int, out: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    d = pd.read_parquet(data)
    data_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fn = {
        "ours": _run_ours,
        "csdid": _run_csdid,
        "moderndid": _run_moderndid,
        "differences": _run_differences,
        "diff_diff": _run_diff_diff,
    }[name]
    cpu0 = time.process_time()
    wall, gt, ev = fn(d, biters)
    cpu = time.process_time() - cpu0  # all threads; includes the peers' import time
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gt.to_csv(out + ".gt.csv", index=False)
    ev.to_csv(out + ".ev.csv", index=False)
    Path(out + ".json").write_text(
        json.dumps(
            {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss_mb, "data_rss_mb": data_rss_mb}
        )
    )


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------
def _available(python: str, module: str) -> bool:
    if not Path(python).exists():
        return False
    r = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return r.returncode == 0


def _compare(ours, theirs) -> dict:
    out = {}
    for key, on in (("gt", ["group", "time"]), ("ev", ["e"])):
        a, b = ours[key], theirs[key]
        for df in (a, b):
            for c in on:
                df[c] = pd.to_numeric(df[c]).astype(float)
        m = a.merge(b, on=on, suffixes=("", "_p"))
        out[f"{key}_matched"] = f"{len(m)}/{len(a)}"
        out[f"{key}_max_abs_diff_att"] = float(np.nanmax(np.abs(m["att"] - m["att_p"])))
        ok = m["se"].notna() & m["se_p"].notna()
        out[f"{key}_max_rel_diff_se"] = float(
            np.nanmax(np.abs(m.loc[ok, "se"] / m.loc[ok, "se_p"] - 1)) if ok.any() else np.nan
        )
    return out


def _run_all(runs: list, data: Path, tmp: Path, a: argparse.Namespace) -> dict:
    """Every implementation's runs; ``meta`` holds the medians over them."""
    # Each implementation runs ``--repeats`` times, the implementations interleaved (ours,
    # peer, ours, peer, ...) so that a busy spell of a shared machine falls on both; the
    # reported time is each one's median and the ratio is of medians.
    results: dict = {}
    for rep in range(max(1, a.repeats)):
        for name, py in runs:
            out = str(tmp / f"{name}.{rep}")
            cmd = [
                py,
                __file__,
                "--worker",
                name,
                "--data",
                str(data),
                "--out",
                out,
                "--biters",
                str(a.biters),
            ]
            t1 = time.perf_counter()
            try:
                pr = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            except subprocess.TimeoutExpired:
                print(f"  {name}: timed out after {a.timeout}s")
                continue
            if pr.returncode != 0:
                print(f"  {name}: failed ({pr.returncode}): {pr.stderr.strip()[-800:]}")
                continue
            meta = json.loads(Path(out + ".json").read_text())
            meta["process_s"] = time.perf_counter() - t1
            if name not in results:  # numbers are compared on the first run's output
                results[name] = {
                    "meta": meta,
                    "runs": [],
                    "gt": pd.read_csv(out + ".gt.csv"),
                    "ev": pd.read_csv(out + ".ev.csv"),
                }
            results[name]["runs"].append(meta)
            print(
                f"  {name} (run {rep + 1}): {meta['wall_s']:.2f}s estimation "
                f"(CPU {meta.get('cpu_s', 0):.1f}s), peak RSS {meta['peak_rss_mb']:.0f} MB "
                f"(after reading the data {meta.get('data_rss_mb', 0):.0f} MB; "
                f"process {meta['process_s']:.1f}s)"
            )
    for r in results.values():  # medians over the runs
        runs_ = r["runs"]
        r["meta"] = {
            **r["meta"],
            "wall_s": float(np.median([m["wall_s"] for m in runs_])),
            "cpu_s": float(np.median([m.get("cpu_s", np.nan) for m in runs_])),
            "peak_rss_mb": float(max(m["peak_rss_mb"] for m in runs_)),
            "wall_s_runs": [round(m["wall_s"], 2) for m in runs_],
        }

    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=200_000)
    ap.add_argument("--periods", type=int, default=24)
    ap.add_argument("--biters", type=int, default=0, help="bootstrap draws (0: analytic)")
    ap.add_argument("--peers", default="", help="comma list or 'all' (default: none)")
    ap.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per implementation, interleaved (ratios use the medians)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker, a.data, a.biters, a.out)
        return

    peers = list(PEERS) if a.peers == "all" else [p for p in a.peers.split(",") if p]
    tmp = Path(tempfile.mkdtemp(prefix="bench_cs_"))
    data = tmp / "panel.parquet"
    t0 = time.perf_counter()
    make_panel(a.units, a.periods).to_parquet(data)
    print(
        f"panel {a.units:,} units x {a.periods} periods generated in "
        f"{time.perf_counter() - t0:.1f}s; biters={a.biters}; cores={os.cpu_count()}"
    )

    runs = [("ours", sys.executable)]
    for p in peers:
        if _available(a.peer_python, p):
            runs.append((p, a.peer_python))
        else:
            print(f"  {p}: not installed in {a.peer_python}; skipped")
    results = _run_all(runs, data, tmp, a)

    if "ours" not in results:
        raise SystemExit("our run failed")
    ours = results["ours"]
    rows = []
    for name, r in results.items():
        row = {
            "impl": name,
            "wall_s": round(r["meta"]["wall_s"], 2),
            "cpu_s": round(r["meta"].get("cpu_s", np.nan), 2),
            "peak_rss_mb": round(r["meta"]["peak_rss_mb"]),
            "rss_after_data_mb": round(r["meta"].get("data_rss_mb", np.nan)),
            "time_ratio_vs_ours": round(r["meta"]["wall_s"] / ours["meta"]["wall_s"], 1),
            "rss_ratio_vs_ours": round(r["meta"]["peak_rss_mb"] / ours["meta"]["peak_rss_mb"], 2),
            "wall_s_runs": r["meta"]["wall_s_runs"],
        }
        if name != "ours":
            row.update(_compare(ours, r))
        rows.append(row)
    table = pd.DataFrame(rows)
    # agreement: identical point estimates; identical analytic standard errors (bootstrap
    # standard errors are Monte Carlo estimates and only reported)
    verdicts = []
    for row in rows[1:]:
        ok = row["gt_max_abs_diff_att"] < 1e-8 and row["ev_max_abs_diff_att"] < 1e-8
        if a.biters == 0:
            ok = ok and row["gt_max_rel_diff_se"] < 1e-6 and row["ev_max_rel_diff_se"] < 1e-6
        matched = row["gt_matched"].split("/")
        ok = ok and matched[0] == matched[1]
        verdicts.append(f"{row['impl']}: {'AGREES' if ok else 'DISAGREES'}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    if verdicts:
        print("numbers vs ours: " + "; ".join(verdicts))
    resdir = ROOT / "benchmarks" / "results"
    resdir.mkdir(exist_ok=True)
    with open(resdir / "bench_did_cs.jsonl", "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "units": a.units,
                    "periods": a.periods,
                    "biters": a.biters,
                    "repeats": a.repeats,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "rows": rows,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
