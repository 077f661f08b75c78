"""The ``leap`` command (``[project.scripts]`` in ``pyproject.toml``).

::

    leap run [--quiet] [--force] [STAGE ...]   # dvc repro (the whole pipeline or stages)
    leap report [--open] [--no-repro]          # bring the report up to date, open it
    leap check-extract DIR                     # check an extract against the data contract
    leap plan [--n-treated N ...] [...]        # MDE of the next study, power curves
    leap --version

``leap run`` and ``leap report`` run ``dvc repro`` in the project root (the folder
holding ``params.yaml``), so that DVC skips what is up to date and records what it ran;
the simulation study is not part of them (``dvc repro validation/dvc.yaml``).
``leap check-extract`` runs ingest's checks only (:mod:`pipeline.extract_check`) and
writes nothing; its exit status is 0 for a clean extract, 1 when rows would be
quarantined and 2 when ingest would stop.  ``leap plan`` is :mod:`pipeline.plan` (it reads
an existing panel and writes to ``reports/planning/``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import webbrowser
from pathlib import Path

from pipeline import __version__, config
from pipeline.runner import QUIET_ENV


def _dvc(args: list[str], quiet: bool = False) -> int:
    """Run ``dvc ARGS`` in the project root; returns its exit status."""
    exe = shutil.which("dvc")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "dvc", *args]
    env = dict(os.environ)
    if quiet:
        env[QUIET_ENV] = "1"
        cmd.append("--quiet")
    root = config.project_root()
    print(f"+ (cd {root} && {' '.join(['dvc', *args])})", file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=root, env=env, check=False).returncode


def cmd_run(args: argparse.Namespace) -> int:
    """``leap run``: ``dvc repro`` of the pipeline (``dvc.yaml``) or of the given stages."""
    dvc_args = ["repro", *(["--force"] if args.force else []), *args.stages]
    return _dvc(dvc_args, quiet=args.quiet)


def cmd_report(args: argparse.Namespace) -> int:
    """``leap report``: ``dvc repro report``, then (``--open``) the HTML in a browser."""
    if not args.no_repro:
        rc = _dvc(["repro", "report"], quiet=args.quiet)
        if rc:
            return rc
    rsec = config.load_params().get("report") or {}
    html = config.project_root() / rsec.get("reports_dir", "reports") / "report.html"
    if not html.exists():
        print(f"leap report: {html} does not exist (run `leap run`)", file=sys.stderr)
        return 1
    print(html)
    if args.open:
        webbrowser.open(html.resolve().as_uri())
    return 0


def cmd_check_extract(args: argparse.Namespace) -> int:
    """``leap check-extract DIR``: every problem of an extract, nothing written."""
    from pipeline import extract_check as xc

    rate = args.max_reject_rate
    if rate is None:
        try:
            rate = float((config.load_params().get("quality") or {}).get("max_reject_rate", 0.05))
        except config.ConfigError:
            rate = 0.05
    problems = xc.check_extract(args.extract_dir, max_reject_rate=rate)
    print(xc.format_problems(args.extract_dir, problems))
    return xc.exit_status(problems)


def cmd_plan(args: argparse.Namespace) -> int:
    """``leap plan``: the MDE of the next study by size, and power curves (pipeline/plan.py)."""
    from pipeline import plan

    plan.run(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``leap`` argument parser."""
    p = argparse.ArgumentParser(
        prog="leap",
        description="LEAP home-visit evaluation pipeline: run it, open the report, "
        "check an extract, plan the next study.",
    )
    p.add_argument("--version", action="version", version=f"leap {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help, quiet=True):
        c = sub.add_parser(name, help=help, description=(func.__doc__ or "").replace("``", ""))
        if quiet:
            c.add_argument("-q", "--quiet", action="store_true", help="warnings, errors, summaries")
        c.set_defaults(func=func)
        return c

    r = command("run", cmd_run, "run the pipeline (dvc repro)")
    r.add_argument("stages", nargs="*", help="stages to bring up to date (default: all)")
    r.add_argument("-f", "--force", action="store_true", help="rerun even if up to date")
    rep = command("report", cmd_report, "bring the report up to date and print its path")
    rep.add_argument("--open", action="store_true", help="open reports/report.html in a browser")
    rep.add_argument("--no-repro", action="store_true", help="do not run dvc repro first")
    c = command(
        "check-extract",
        cmd_check_extract,
        "check an extract against the data contract (nothing else runs)",
        quiet=False,
    )
    c.add_argument("extract_dir", type=Path, metavar="DIR", help="the extract folder")
    c.add_argument(
        "--max-reject-rate",
        type=float,
        default=None,
        help="largest quarantined share of a table (default: quality.max_reject_rate)",
    )
    from pipeline.plan import add_arguments

    add_arguments(
        command("plan", cmd_plan, "minimum detectable effect of the next study", quiet=False)
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``leap`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
