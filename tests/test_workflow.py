"""The researcher's workflow on a fresh clone of a tiny project (slow).

A copy of this repository with a tiny synthetic extract (``synthesize.scale: tiny``) is
committed with the results of one run (``dvc.lock``, ``reports/headline.json``), as a
project is published; then

* a fresh ``git clone`` reruns the pipeline with ``leap run`` (``dvc repro``): every
  stage prints its one-line summary, the simulation study does not run, and afterwards
  ``git status`` and ``dvc status`` of the pipeline are clean — the run reproduced the
  committed results byte for byte, PDF included;
* ``leap report --open`` opens the report;
* two experiments (``dvc exp run -S match.ratio=1`` and ``=2``) show in ``dvc exp show``
  with their parameters and headline metrics, and ``dvc exp diff`` reports the
  difference: more comparison students with two per visited student, the same visited
  students.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = {"n_students": 5000, "n_districts": 8, "n_program_districts": 4}


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": "",  # the clone runs its own code (python -m from its root)
        "DVC_NO_ANALYTICS": "1",
        "LEAP_PROJECT_ROOT": "",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        **extra,
    }


def _sh(args: list[str], cwd: Path, timeout: int = 1200, quiet_stderr: str = "", **env: str) -> str:
    """Run a command; its standard output and error (only the output if quiet_stderr)."""
    r = subprocess.run(
        args, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"{' '.join(args)}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r.stdout if quiet_stderr else r.stdout + r.stderr


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def _tiny_params(text: str) -> str:
    p = yaml.safe_load(text)
    p["synthesize"]["scale"] = "tiny"
    p["synthesize"]["sizes"]["tiny"] = TINY
    p["synthesize"]["program"]["served_share"] = 0.12
    p["estimate"]["bootstrap_draws"] = 199
    p["report"]["dpi"] = 72
    return yaml.safe_dump(p, sort_keys=False)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A tiny project as published: code and the committed results of one run."""
    origin = tmp_path_factory.mktemp("wf") / "origin"
    for f in _tracked_files():
        (origin / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, origin / f)
    (origin / "params.yaml").write_text(_tiny_params((ROOT / "params.yaml").read_text()))
    (origin / "dvc.lock").unlink(missing_ok=True)
    (origin / "reports" / "headline.json").unlink(missing_ok=True)
    _sh(["git", "init", "-q"], origin)
    _sh(["git", "add", "-A"], origin)
    _sh(["git", "commit", "-qm", "code"], origin)
    _sh(["dvc", "repro"], origin)
    _sh(["git", "add", "-A"], origin)
    _sh(["git", "commit", "-qm", "results"], origin)
    assert (origin / "reports" / "headline.json").exists()
    return origin


@pytest.fixture(scope="module")
def clone(published, tmp_path_factory) -> tuple[Path, str]:
    """A fresh clone after ``leap run``; returns it and the run's output."""
    c = tmp_path_factory.mktemp("wf") / "clone"
    _sh(["git", "clone", "-q", str(published), str(c)], published.parent)
    assert not (c / "data").exists()  # nothing from the first run but what git holds
    out = _sh([sys.executable, "-m", "pipeline.cli", "run"], c)
    return c, out


def test_fresh_clone_reproduces_the_committed_results(clone):
    c, out = clone
    stages = list(yaml.safe_load((c / "dvc.yaml").read_text())["stages"])
    for stage in stages:
        assert f"Running stage '{stage}'" in out, stage
    assert "validation/dvc.yaml" not in out and "pipeline.validate" not in out
    dirty = _sh(["git", "status", "--porcelain"], c).strip()
    # on failure, the outputs whose hashes changed (until the report's PDF carries fixed
    # dates, reports/report.pdf)
    assert dirty == "", dirty + "\n" + _sh(["git", "diff", "--", "dvc.lock"], c)
    status = _sh(["dvc", "status", "dvc.yaml"], c)
    assert "Data and pipelines are up to date" in status, status
    # the simulation study is the only other target, and it did not run here
    everything = _sh(["dvc", "status"], c)
    assert all(
        line.startswith(("validation/dvc.yaml:validate", "\t", " ")) or not line.strip()
        for line in everything.splitlines()
    ), everything
    for stage in stages:
        assert f"{stage} done: " in out, stage  # the one-line summary


def test_leap_report_open(clone, tmp_path):
    c, _ = clone
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys; open({str(seen)!r}, 'w').write(sys.argv[1])\n")
    _sh(
        [sys.executable, "-m", "pipeline.cli", "report", "--open"],
        c,
        BROWSER=f"{sys.executable} {browser} %s",
    )
    assert seen.read_text() == (c / "reports" / "report.html").resolve().as_uri()


def test_two_experiments_compared(clone):
    c, _ = clone
    for ratio in (1, 2):
        _sh(["dvc", "exp", "run", "-n", f"ratio{ratio}", "-S", f"match.ratio={ratio}"], c)
    show = json.loads(_sh(["dvc", "exp", "show", "--json"], c, quiet_stderr="1"))
    exps: dict[str, dict] = {}

    def walk(x):
        if isinstance(x, dict):
            if x.get("name") in ("ratio1", "ratio2") and "params" in (x.get("data") or {}):
                exps[x["name"]] = x["data"]
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(show)
    assert set(exps) == {"ratio1", "ratio2"}, show
    for n, d in exps.items():
        ratio = d["params"]["params.yaml"]["data"]["match"]["ratio"]
        assert ratio == int(n[-1])
        assert "attendance_effect" in d["metrics"]["reports/headline.json"]["data"]
    diff = json.loads(
        _sh(["dvc", "exp", "diff", "ratio1", "ratio2", "--json"], c, quiet_stderr="1")
    )
    assert diff["params"]["params.yaml"]["match.ratio"] == {"old": 1, "new": 2, "diff": 1}
    m = diff["metrics"]["reports/headline.json"]
    assert m["n.comparison"]["new"] > m["n.comparison"]["old"]
    assert "n.treated" not in m or m["n.treated"]["diff"] == 0
