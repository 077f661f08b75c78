"""Notebook hygiene: the pre-commit hooks strip notebook outputs and run ruff, with the
tools installed from PyPI (local hooks, nothing downloaded), and the README's developer
setup installs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    shutil.which("pre-commit") is None, reason="pip install -e '.[dev]' provides pre-commit"
)


def _repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=r, check=True)
    shutil.copy(ROOT / ".pre-commit-config.yaml", r)
    shutil.copy(ROOT / "pyproject.toml", r)  # ruff's settings
    return r


def _run(repo: Path, hook: str, *files: str) -> subprocess.CompletedProcess:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(repo.parent / "pre-commit-home")}
    return subprocess.run(
        ["pre-commit", "run", hook, "--files", *files],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_hooks_are_local_nbstripout_and_ruff():
    cfg = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in cfg["repos"] for h in repo["hooks"]}
    assert {"nbstripout", "ruff"} <= set(hooks)
    assert all(repo["repo"] == "local" for repo in cfg["repos"])  # no download


def test_nbstripout_hook_strips_outputs(tmp_path):
    repo = _repo(tmp_path)
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 3,
                "metadata": {},
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["000101\n"]}],
                "source": ["print(student_id)"],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (repo / "a.ipynb").write_text(json.dumps(nb))
    r = _run(repo, "nbstripout", "a.ipynb")
    assert r.returncode == 1, r.stdout + r.stderr  # the hook changed the file
    cell = json.loads((repo / "a.ipynb").read_text())["cells"][0]
    assert cell["outputs"] == [] and cell["execution_count"] is None
    assert _run(repo, "nbstripout", "a.ipynb").returncode == 0  # now clean


def test_ruff_hook_fails_on_lint_errors(tmp_path):
    repo = _repo(tmp_path)
    (repo / "bad.py").write_text("import os\n")
    r = _run(repo, "ruff", "bad.py")
    assert r.returncode == 1 and "F401" in r.stdout, r.stdout + r.stderr
    (repo / "bad.py").write_text("import os\n\nprint(os.sep)\n")
    assert _run(repo, "ruff", "bad.py").returncode == 0


def test_readme_developer_setup_installs_the_hooks():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- dev-setup-command -->\n```sh\n(.+?)\n```", text, re.S)
    assert m, "README.md: no developer setup command after <!-- dev-setup-command -->"
    cmd = m.group(1)
    assert re.search(r"-e '?\.\[[a-z,]*dev", cmd) and "pre-commit install" in cmd and "nbstripout --install" in cmd
