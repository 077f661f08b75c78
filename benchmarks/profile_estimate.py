"""Profile of the ``estimate`` stage: seconds and peak memory per step, and the hot functions.

    python benchmarks/profile_estimate.py --project /work/statescale \\
        [--design-bootstrap-draws 0] [--cprofile] [--top 40] \\
        [--out benchmarks/results/profile_estimate_state_monthly.json]

``--project`` is a project folder on which the stages up to ``match`` have run (e.g. the
work folder of ``benchmarks/run_state_scale.py --workdir DIR --stages
synthesize,ingest,panel,match``); its ``params.yaml`` is used. The stage runs as
``python -m pipeline.estimate`` runs it (:func:`pipeline.analysis.estimation.run_estimation`
and :func:`pipeline.estimate.write_outputs`, the latter into a temporary folder so the
project's outputs are left alone), with every step of interest wrapped by a timer:

* ``wall_s`` / ``cpu_s`` (this process; worker processes' CPU is reported separately),
* ``rss_start_gb`` and ``peak_rss_gb``: resident memory when the step started and the
  largest sampled (every 10 ms) while it ran; the process's high-water mark is
  ``max_rss_gb``.

Steps nest (``robustness/rematch``); a step called several times is aggregated (calls,
total seconds, largest peak). ``--design-bootstrap-draws`` overrides
``estimate.estimands.design_bootstrap_draws`` (issue 24's 45 s target is without the design
bootstrap). ``--cprofile`` runs the same under :mod:`cProfile` and adds the ``--top``
functions by own time and by cumulative time (cProfile slows Python-heavy code, so the
step times of a ``--cprofile`` run are inflated; the step table of a run without it is
the one to quote).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import importlib
import io
import json
import logging
import os
import platform
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: a run can profile another checkout

PAGE = os.sysconf("SC_PAGE_SIZE")

#: (module, attribute, label): the functions timed. A label's parent is the step that was
#: running when it was called.
STEPS = [
    ("pipeline.outputs", "read_panel_for_matching", "read panel (matching columns)"),
    ("pipeline.outputs", "read_panel_rows", "read panel rows"),
    ("pipeline.analysis.estimation", "home_clusters", "home clusters"),
    ("pipeline.analysis.estimation", "with_censoring_weights", "censoring weights"),
    ("pipeline.analysis.estimation", "censoring_weights_model", "censoring weights"),
    ("pipeline.did.ancova", "add_wild_bootstrap", "wild bootstrap"),
    ("pipeline.analysis.estimation", "primary", "primary design"),
    ("pipeline.analysis.estimation", "other_design", "other design"),
    ("pipeline.analysis.estimation", "comparator_panel", "comparator panel"),
    ("pipeline.analysis.estimation", "comparators", "comparators"),
    ("pipeline.analysis.estimation", "subgroup_effects", "subgroups"),
    ("pipeline.analysis.estimation", "robustness", "robustness"),
    ("pipeline.analysis.estimation", "event_means", "event means"),
    ("pipeline.analysis.estimation", "chronic_by_month", "chronic by month"),
    ("pipeline.analysis.estimation", "sample_flow", "sample flow"),
    ("pipeline.analysis.estimation", "estimands", "estimands"),
    ("pipeline.analysis.estimation", "sensitivity_suite", "sensitivity suite"),
    ("pipeline.analysis.estimation", "truth_comparison", "truth comparison"),
    ("pipeline.analysis.robustness", "rematch", "rematch"),
    ("pipeline.analysis.robustness", "riskset_match", "risk-set matching"),
    ("pipeline.matching.riskset.RiskSetMatcher", "scored", "risk-set rows and scores"),
    ("pipeline.matching.riskset.RiskSetMatcher", "match", "matching"),
    ("pipeline.analysis.robustness", "stack_panels", "stack panels"),
    ("pipeline.analysis.robustness", "with_censoring_weights", "censoring weights"),
    ("pipeline.analysis.robustness", "primary", "primary design"),
    ("pipeline.analysis.robustness", "relative_magnitude_bounds", "relative magnitudes"),
    ("pipeline.analysis.comparators", "naive_before_after", "naive before/after"),
    ("pipeline.analysis.comparators", "twfe_event_study", "two-way fixed effects"),
    ("pipeline.analysis.comparators", "sun_abraham", "Sun-Abraham"),
    ("pipeline.analysis.comparators", "imputation", "imputation"),
    ("pipeline.analysis.comparators", "_cs", "Callaway-Sant'Anna"),
    ("pipeline.sensitivity.suite", "student_window", "student window means"),
    ("pipeline.sensitivity.suite", "_ovb", "omitted-variable bias"),
    ("pipeline.sensitivity.suite", "_rosenbaum", "Rosenbaum bounds"),
    ("pipeline.sensitivity.suite", "_honest", "HonestDiD"),
    ("pipeline.estimands", "ipcw_weights", "censoring weights"),
    ("pipeline.estimands", "home_clusters", "home clusters"),
    ("pipeline.estimands", "_ancova", "matched ANCOVA"),
    ("pipeline.estimands", "district_wild_check", "district wild bootstrap"),
    ("pipeline.estimands", "itt_design", "intent-to-treat matching"),
    ("pipeline.estimands", "attrition_table", "attrition table"),
    ("pipeline.estimands", "lee_bounds_matched", "Lee bounds"),
    ("pipeline.estimands", "chronic_absence_yearly", "chronic absence (state measure)"),
    ("pipeline.design_bootstrap.DesignBootstrap", "__init__", "design bootstrap setup"),
    ("pipeline.design_bootstrap.DesignBootstrap", "run", "design bootstrap draws"),
    ("pipeline.estimate", "write_outputs", "write outputs"),
]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Recorder:
    """Step timers with a memory sampler thread."""

    def __init__(self, interval: float = 0.01, stream: Path | None = None) -> None:
        self.stream = stream  # every finished call appended here (a killed run keeps them)
        self.stack: list[dict] = []
        self.records: dict[str, dict] = {}
        self.order: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            r = rss_bytes()
            for f in list(self.stack):
                if r > f["peak"]:
                    f["peak"] = r

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def wrap(self, fn, label: str):
        @functools.wraps(fn)
        def timed(*a, **k):
            path = "/".join([*(f["label"] for f in self.stack), label])
            r0 = rss_bytes()
            frame = {"label": label, "peak": r0}
            self.stack.append(frame)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                self.stack.pop()
                frame["peak"] = max(frame["peak"], rss_bytes())
                for f in self.stack:  # the parents saw this step's peak too
                    f["peak"] = max(f["peak"], frame["peak"])
                rec = self.records.get(path)
                if rec is None:
                    rec = self.records[path] = {
                        "step": path, "calls": 0, "wall_s": 0.0, "cpu_s": 0.0,
                        "rss_start_gb": r0 / 2**30, "peak_rss_gb": 0.0,
                    }  # fmt: skip
                    self.order.append(path)
                if self.stream is not None:
                    with open(self.stream, "a") as f:
                        f.write(json.dumps({"step": path, "wall_s": round(wall, 2),
                                            "cpu_s": round(cpu, 2),
                                            "peak_rss_gb": round(frame["peak"] / 2**30, 2),
                                            "at": time.strftime("%H:%M:%S")}) + "\n")
                rec["calls"] += 1
                rec["wall_s"] += wall
                rec["cpu_s"] += cpu
                rec["peak_rss_gb"] = max(rec["peak_rss_gb"], frame["peak"] / 2**30)

        return timed

    def table(self) -> list[dict]:
        out = []
        for p in self.order:
            r = dict(self.records[p])
            for k in ("wall_s", "cpu_s"):
                r[k] = round(r[k], 2)
            for k in ("rss_start_gb", "peak_rss_gb"):
                r[k] = round(r[k], 2)
            out.append(r)
        return out


def instrument(rec: Recorder) -> None:
    """Wrap every function of :data:`STEPS` that this checkout has."""
    for modname, attr, label in STEPS:
        try:
            owner = importlib.import_module(modname)
        except ModuleNotFoundError:  # a class: module.Class
            mod, cls = modname.rsplit(".", 1)
            owner = getattr(importlib.import_module(mod), cls, None)
        if owner is not None and hasattr(owner, attr):
            setattr(owner, attr, rec.wrap(getattr(owner, attr), label))


def run_stage(draws: int | None, out_dir: Path) -> dict:
    """``python -m pipeline.estimate`` without its command line (outputs to ``out_dir``)."""
    import pandas as pd

    from pipeline import estimate, outputs
    from pipeline.analysis.settings import EstimateConfig
    from pipeline.matching.riskset import RiskSetSpec
    from pipeline.settings import stage_settings

    s = stage_settings()
    cfg = EstimateConfig(**s.estimate.flat())
    if draws is not None:
        cfg = dataclasses.replace(
            cfg, estimands={**cfg.estimands, "design_bootstrap_draws": draws}
        )
    spec = RiskSetSpec(**s.match.spec_kwargs())
    matched = pd.read_parquet(outputs.MATCHED)
    balance = pd.read_csv(outputs.BALANCE)
    meta = outputs.read_extract_meta()
    out = estimate.run_estimation(outputs.PANEL, matched, balance, spec, cfg, meta)
    estimate.write_outputs(out, out_dir)
    m = out["metrics"]
    return {
        "att": m["att"]["estimate"],
        "ci": [m["att"]["ci_low"], m["att"]["ci_high"]],
        "matched_rows": len(matched),
        "n_treated": m["n_treated"],
        "design_bootstrap_draws": cfg.estimands.get("design_bootstrap_draws"),
    }


def top_functions(prof: cProfile.Profile, n: int) -> dict:
    st = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _) in st.stats.items():
        rel = file.replace(str(ROOT) + "/", "")
        if "site-packages/" in rel:
            rel = rel.split("site-packages/", 1)[1]
        rows.append({"function": f"{rel}:{line}({func})", "calls": nc,
                     "own_s": round(tt, 2), "cumulative_s": round(ct, 2)})  # fmt: skip
    by_own = sorted(rows, key=lambda r: -r["own_s"])[:n]
    by_cum = sorted(rows, key=lambda r: -r["cumulative_s"])[:n]
    return {"by_own_time": by_own, "by_cumulative_time": by_cum}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--design-bootstrap-draws", type=int, default=None)
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--label", default="")
    ap.add_argument("--keep-outputs", type=Path, default=None,
                    help="write the stage's outputs here (default: a temporary folder)")
    args = ap.parse_args()
    if args.out:
        args.out = args.out.resolve()
    if args.keep_outputs:
        args.keep_outputs = args.keep_outputs.resolve()
    os.chdir(args.project)
    rec = Recorder(stream=args.out.with_suffix(".calls.jsonl") if args.out else None)
    if rec.stream is not None and rec.stream.exists():
        rec.stream.unlink()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    instrument(rec)
    from pipeline.estimate import run_estimation  # noqa: F401 - import before timing

    prof = cProfile.Profile() if args.cprofile else None
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="leap-prof-") as tmp:
        if prof:
            prof.enable()
        dest = args.keep_outputs or Path(tmp)
        result = rec.wrap(run_stage, "estimate")(args.design_bootstrap_draws, dest)
        if prof:
            prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rec.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "benchmark": "estimate stage, per step (benchmarks/profile_estimate.py)",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "label": args.label,
        "project": str(args.project),
        "cprofile": bool(prof),
        "pipeline": str(Path(importlib.import_module("pipeline").__file__).parent),
        "result": result,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "worker_processes_cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "worker_processes_max_rss_gb": round(children.ru_maxrss / 2**20, 2),
        "steps": rec.table(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load0, "load_average_at_end": os.getloadavg()},
        "started_at": started,
    }  # fmt: skip
    if prof:
        out["functions"] = top_functions(prof, args.top)
    text = json.dumps(out, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(json.dumps({k: out[k] for k in ("wall_s", "max_rss_gb", "result")}))
    for r in out["steps"]:
        print(f"{r['wall_s']:8.2f} s {r['peak_rss_gb']:6.2f} GB x{r['calls']:<3} {r['step']}")


if __name__ == "__main__":
    main()
