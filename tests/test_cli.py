"""The `leap` command: --version, report --open, stage entry points' --help (running
the pipeline through `leap run` is in tests/test_workflow.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline.cli import main as leap

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_console_script_and_version(capsys):
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = proj["project"]["scripts"]["leap"]
    mod, func = target.split(":")
    assert getattr(import_module(mod), func) is leap
    with pytest.raises(SystemExit) as exc:
        leap(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"leap {proj['project']['version']}" == f"leap {pipeline.__version__}"


def test_report_open_opens_the_html(tmp_path):
    (tmp_path / "params.yaml").write_text("report: {reports_dir: out}\n")
    html = tmp_path / "out" / "report.html"
    html.parent.mkdir()
    html.write_text("<html></html>")
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys; open({str(seen)!r}, 'w').write(sys.argv[1])\n")
    env = {**_env(), "BROWSER": f"{sys.executable} {browser} %s", "LEAP_PROJECT_ROOT": ""}
    r = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "report", "--open", "--no-repro"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(html)
    assert seen.read_text() == html.resolve().as_uri()


def test_report_without_html_fails_clearly(tmp_path):
    (tmp_path / "params.yaml").write_text("report: {}\n")
    r = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "report", "--no-repro"],
        cwd=tmp_path,
        env={**_env(), "LEAP_PROJECT_ROOT": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "report.html does not exist" in r.stderr


def _stages():
    names = []
    for f in (ROOT / "dvc.yaml", ROOT / "validation" / "dvc.yaml"):
        if f.exists():
            for stage in yaml.safe_load(f.read_text())["stages"].values():
                cmd = stage["cmd"]
                assert cmd.startswith("python -m pipeline."), cmd
                names.append(cmd.split()[2].removeprefix("pipeline."))
    return names


@pytest.mark.parametrize("stage", _stages())
def test_stage_help_prints_help_and_runs_nothing(stage, tmp_path):
    # an empty folder: a stage that ran would fail (no params.yaml) or write something
    r = subprocess.run(
        [sys.executable, "-m", f"pipeline.{stage}", "--help"],
        cwd=tmp_path,
        env={**_env(), "LEAP_PROJECT_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,  # the imports alone took over 120 s on two cores under a load of 20
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: python -m pipeline.{stage}"), r.stdout
    assert "--quiet" in r.stdout
    assert list(tmp_path.iterdir()) == []
