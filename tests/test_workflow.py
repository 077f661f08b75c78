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
import sys
from pathlib import Path

import pytest
import yaml

from tests.shared_project import sh as _sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(published_project) -> Path:
    """A tiny project as published: code and the committed results of one run
    (built once per test run, :mod:`tests.shared_project`)."""
    return published_project


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
