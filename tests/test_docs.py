"""The documentation site: every public module is in the API reference, and
``mkdocs build --strict`` (no warnings, no broken links) documents every public function
and class of every public module."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def public_modules() -> list[str]:
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "pipeline").rglob("*.py")
        if not p.name.startswith("_")
    )


def public_definitions(module: str) -> list[str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    return [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not n.name.startswith("_")
    ]


def test_api_pages_list_every_public_module():
    pages = "\n".join(p.read_text() for p in (ROOT / "docs/api").glob("*.md"))
    listed = set(re.findall(r"^::: (pipeline[\w.]*)$", pages, flags=re.M))
    missing = [m for m in public_modules() if m not in listed]
    assert not missing, f"docs/api/*.md: add ::: {missing}"
    stale = [m for m in listed if m not in public_modules() and m.count(".") > 0]
    stale = [m for m in stale if not (ROOT / m.replace(".", "/") / "__init__.py").exists()]
    assert not stale, f"docs/api/*.md lists modules that do not exist: {stale}"


@pytest.mark.slow  # about 20-30 s on two shared cores
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    html = "\n".join(p.read_text() for p in (site / "api").rglob("*.html"))
    undocumented = [
        f"{m}.{name}"
        for m in public_modules()
        for name in public_definitions(m)
        if f'id="{m}.{name}"' not in html
    ]
    assert not undocumented, f"not in the API reference: {undocumented}"
