"""The import contract of the pipeline package and the completeness of dvc.yaml's deps.

* A stage module (a module named by a ``python -m pipeline.<stage>`` cmd in ``dvc.yaml``)
  imports no other stage module, directly or through library modules: what two stages
  share lives in a library module (``pipeline/analysis/``, ``pipeline/outputs.py``, …).
* Every pipeline file a stage's module imports, transitively, is in that stage's
  ``deps`` (a directory dep covers the files under it), so that ``dvc repro`` reruns the
  stage when any code it runs changes.
* Tests import nothing from ``benchmarks/``.

The imports are read with :mod:`ast` (every ``import`` statement, including the deferred
ones inside functions), not by importing the modules.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipeline"


#: Pipeline files besides ``dvc.yaml`` (their stages run from the root: ``wdir: ..``).
OTHER_DVC_FILES = ("validation/dvc.yaml",)


def dvc_stages(root: Path = ROOT) -> dict[str, dict]:
    """``dvc.yaml``'s stages (and those of :data:`OTHER_DVC_FILES`, when present): name →
    {"module": dotted module of the cmd, "deps": [...]}."""
    stages = dict(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    for f in OTHER_DVC_FILES:
        if (root / f).exists():
            stages.update(yaml.safe_load((root / f).read_text())["stages"])
    out = {}
    for name, st in stages.items():
        m = re.search(r"python\s+-m\s+([\w.]+)", st["cmd"])
        assert m, f"dvc.yaml: stage {name}: cmd {st['cmd']!r} is not `python -m <module>`"
        deps = [d if isinstance(d, str) else next(iter(d)) for d in st.get("deps", [])]
        out[name] = {"module": m.group(1), "deps": deps}
    return out


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of a module of the package (``None`` for other modules)."""
    base = root.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _is_package(module: str, root: Path) -> bool:
    f = module_file(module, root)
    return f is not None and f.name == "__init__.py"


def direct_imports(module: str, root: Path = ROOT) -> set[str]:
    """The package's modules that ``module`` imports (anywhere in its body), with the
    packages they are in (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``)."""
    path = module_file(module, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_pkg else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # ``from pipeline import io``: io is a module of the package
            names.update(f"{base}.{a.name}" for a in node.names)
    found: set[str] = set()
    for name in names:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if module_file(sub, root) is not None:
                found.add(sub)
    found.discard(module)
    return found


@cache
def _direct(module: str, root: Path) -> frozenset[str]:
    return frozenset(direct_imports(module, root))


def import_paths(module: str, root: Path = ROOT) -> dict[str, list[str]]:
    """Every package module ``module`` imports transitively → one (shortest) import chain
    to it, ``module`` included."""
    chains = {module: [module]}
    todo = [module]
    while todo:
        m = todo.pop(0)
        for d in sorted(_direct(m, root)):
            if d not in chains:
                chains[d] = [*chains[m], d]
                todo.append(d)
    return chains


STAGES = dvc_stages()
STAGE_MODULES = {s["module"]: name for name, s in STAGES.items()}


def test_every_stage_cmd_is_a_module_of_the_package():
    for name, st in STAGES.items():
        assert module_file(st["module"]) is not None, f"stage {name}: {st['module']} not found"
        assert not _is_package(st["module"], ROOT), f"stage {name}: cmd names a package"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_no_stage_imports_another_stage(stage):
    module = STAGES[stage]["module"]
    bad = {
        m: " -> ".join(chain)
        for m, chain in import_paths(module).items()
        if m in STAGE_MODULES and m != module
    }
    assert not bad, (
        f"stage {stage} ({module}) imports other stage module(s); move what they share "
        f"into a library module: {sorted(bad.values())}"
    )


def covered(path: str, deps: list[str]) -> bool:
    """Whether the file ``path`` (relative to the root) is one of ``deps`` or under one."""
    for d in deps:
        d = d.rstrip("/")
        if path == d or path.startswith(d + "/"):
            return True
    return False


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_the_code_it_imports(stage):
    st = STAGES[stage]
    files = {
        module_file(m).relative_to(ROOT).as_posix(): " -> ".join(chain)
        for m, chain in import_paths(st["module"]).items()
    }
    missing = {f: chain for f, chain in files.items() if not covered(f, st["deps"])}
    assert not missing, (
        f"dvc.yaml: stage {stage} runs code that is not in its deps (add the file or its "
        f"folder): " + "; ".join(f"{f} (via {c})" for f, c in sorted(missing.items()))
    )


def test_tests_do_not_import_benchmarks():
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module or ""]
            offenders += [
                f"{path.name}: import {m}" for m in mods if m.split(".")[0] == "benchmarks"
            ]
        if re.search(r"sys\.path\.\w+\([^)]*benchmarks", text):
            offenders.append(f"{path.name}: adds benchmarks/ to sys.path")
    assert not offenders, offenders


# --- the checks themselves catch what they are meant to ----------------------------------


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_the_import_reader_sees_deferred_relative_and_from_package_imports(tmp_path):
    _write(tmp_path, "pipeline/__init__.py", "")
    _write(tmp_path, "pipeline/lib/__init__.py", "")
    _write(tmp_path, "pipeline/lib/a.py", "from . import b\n")
    _write(tmp_path, "pipeline/lib/b.py", "def f():\n    from pipeline import stage_two\n")
    _write(tmp_path, "pipeline/stage_one.py", "import numpy\nfrom pipeline.lib.a import x\n")
    _write(tmp_path, "pipeline/stage_two.py", "")
    assert direct_imports("pipeline.stage_one", tmp_path) == {
        "pipeline",
        "pipeline.lib",
        "pipeline.lib.a",
    }
    assert direct_imports("pipeline.lib.a", tmp_path) == {
        "pipeline",
        "pipeline.lib",
        "pipeline.lib.b",
    }
    assert "pipeline.stage_two" in direct_imports("pipeline.lib.b", tmp_path)
    # the transitive chain the stage-import test reports
    chains = import_paths("pipeline.stage_one", tmp_path)
    assert chains["pipeline.stage_two"] == [
        "pipeline.stage_one",
        "pipeline.lib.a",
        "pipeline.lib.b",
        "pipeline.stage_two",
    ]


def test_dvc_stages_reads_cmds_and_deps(tmp_path):
    _write(
        tmp_path,
        "dvc.yaml",
        "stages:\n  s:\n    cmd: python -m pipeline.s\n    deps:\n      - pipeline/lib\n"
        "      - pipeline/s.py\n",
    )
    st = dvc_stages(tmp_path)
    assert st == {"s": {"module": "pipeline.s", "deps": ["pipeline/lib", "pipeline/s.py"]}}
    assert covered("pipeline/lib/a.py", st["s"]["deps"])
    assert covered("pipeline/s.py", st["s"]["deps"])
    assert not covered("pipeline/library.py", st["s"]["deps"])  # a prefix is not a folder
    assert not covered("pipeline/t.py", st["s"]["deps"])
