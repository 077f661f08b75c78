"""The simulation study is its own DVC target (validation/dvc.yaml): the default
`dvc repro` never runs it, `dvc repro validation/dvc.yaml` does, and the report depends
on the committed study, not on validate's outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _dag(proj: Path, target: str) -> str:
    r = subprocess.run(
        ["dvc", "dag", "--md", target],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_default_repro_never_runs_the_simulation_study(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=proj, check=True)
    for f in ("dvc.yaml", "params.yaml", "validation/dvc.yaml"):
        (proj / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, proj / f)
    for d in ("pipeline", "benchmarks/results/validation_history_n100"):
        shutil.copytree(ROOT / d, proj / d, ignore=shutil.ignore_patterns("__pycache__"))
    # the pipeline `dvc repro` runs: every root stage and what they depend on
    default = _dag(proj, "dvc.yaml")
    root_stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    for s in root_stages:
        assert s in default, s
    assert "validate" not in default
    assert "validation/dvc.yaml:validate" in _dag(proj, "validation/dvc.yaml:validate")
    # the report stage reads the committed study, never validate's outputs
    outs = {
        next(iter(o)) if isinstance(o, dict) else o
        for o in yaml.safe_load((ROOT / "validation/dvc.yaml").read_text())["stages"]["validate"][
            "outs"
        ]
    }
    report_deps = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["deps"])
    assert not outs & report_deps
    assert "benchmarks/results/validation_history_n100/validation.csv" in report_deps
