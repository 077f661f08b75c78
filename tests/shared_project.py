"""A tiny published project, built once per test run and shared by the tests that read it.

A copy of this repository with a tiny synthetic extract (``synthesize.scale: tiny``) is
committed with the results of one ``dvc repro`` (``dvc.lock``, ``reports/headline.json``
and the outputs in the DVC cache), as a project is published.  The researcher's workflow
(``tests/test_workflow.py``) clones it; the notebooks (``tests/test_notebooks.py``) and
the end-to-end checks (``tests/test_end_to_end.py``) read its outputs.  Under
pytest-xdist the workers share one build through a file lock in the session's temporary
directory (:func:`build_once`); no test may write into it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: The tiny extract: large enough for every stage, the report and the experiments.
TINY = {"n_students": 5000, "n_districts": 8, "n_program_districts": 4}


def env(**extra: str) -> dict[str, str]:
    """The environment of a command run in a copy of the project."""
    return {
        **os.environ,
        "PYTHONPATH": "",  # the copy runs its own code (python -m from its root)
        "DVC_NO_ANALYTICS": "1",
        "LEAP_PROJECT_ROOT": "",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        **extra,
    }


def sh(args: list[str], cwd: Path, timeout: int = 1200, quiet_stderr: str = "", **extra: str) -> str:
    """Run a command; its standard output and error (only the output if quiet_stderr)."""
    r = subprocess.run(
        args, cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"{' '.join(args)}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r.stdout if quiet_stderr else r.stdout + r.stderr


def tracked_files() -> list[str]:
    """The repository's files as git sees them (tracked, or new and not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def tiny_params(text: str) -> str:
    """``params.yaml`` with the tiny extract, fewer bootstrap draws (each still seeded and
    run on two workers: the workflow test checks that they reproduce) and the report at
    screen resolution."""
    p = yaml.safe_load(text)
    p["synthesize"]["scale"] = "tiny"
    p["synthesize"]["sizes"]["tiny"] = TINY
    p["synthesize"]["program"]["served_share"] = 0.12
    p["estimate"]["bootstrap_draws"] = 199
    p["estimate"]["estimands"]["design_bootstrap_draws"] = 19
    p["report"]["dpi"] = 72
    return yaml.safe_dump(p, sort_keys=False)


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """An exclusive file lock (POSIX); no locking where ``fcntl`` is unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """``base/name`` built by ``build`` once per test run, whichever worker asks first.

    ``base`` is the session's temporary directory (the parent of the workers' own under
    pytest-xdist).  A failed build is recorded, so that the other workers report it
    instead of building again.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session
    root = base / name
    done, failed = base / f"{name}.done", base / f"{name}.failed"
    with exclusive(base / f"{name}.lock"):
        if failed.exists():
            pytest.fail(f"building {name} failed (in another worker):\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            try:
                build(root)
            except BaseException:
                failed.write_text(traceback.format_exc()[-6000:], encoding="utf-8")
                raise
            done.touch()
    return root


def publish(origin: Path) -> None:
    """Copy the repository to ``origin`` with tiny params, run it and commit the results."""
    for f in tracked_files():
        (origin / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, origin / f)
    (origin / "params.yaml").write_text(tiny_params((ROOT / "params.yaml").read_text()))
    (origin / "dvc.lock").unlink(missing_ok=True)
    (origin / "reports" / "headline.json").unlink(missing_ok=True)
    sh(["git", "init", "-q"], origin)
    sh(["git", "add", "-A"], origin)
    sh(["git", "commit", "-qm", "code"], origin)
    sh(["dvc", "repro"], origin)
    sh(["git", "add", "-A"], origin)
    sh(["git", "commit", "-qm", "results"], origin)
    assert (origin / "reports" / "headline.json").exists()
