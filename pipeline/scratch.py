"""Run-private scratch space and kill safety for the stages.

A stage that needs scratch space (DuckDB's spill files, an on-disk scratch database)
takes it from :func:`private_dir`: a folder with owner-only permissions (0700) under
one per-user base folder (itself 0700), named ``<stage>-<pid>-<random>``.  It is
removed

* when the stage ends, normally or by an exception;
* on ``SIGTERM``, ``SIGHUP`` and ``SIGINT``: :func:`stage_guard` turns these signals into
  :class:`SystemExit`, so every ``finally`` block and context manager runs (Python's
  default ``SIGTERM`` action ends the process without running any of them);
* at the next start of any stage, for a ``SIGKILL`` (or a power cut), which no process
  can intercept: :func:`clean_stale` removes every scratch folder whose process is gone.

:func:`stage_guard` also removes, at the start, what an earlier killed run of the same
stage left beside its declared outputs: the temporary files and folders of
:func:`pipeline.io.atomic_path` and :func:`pipeline.io.atomic_dir` (``.<name>.*``).
A stage's outputs are written only by that stage, one run at a time (DVC holds its
repository lock while it runs a stage), so such debris never belongs to a live run.

The ingest stage additionally pseudonymizes student IDs as it reads the extract
(:func:`pipeline.checks.validate_extract`), so scratch files never hold a raw ID, even
while the stage runs.

The base folder is ``$LEAP_SCRATCH_DIR`` when set, else ``leap-scratch-<uid>`` in the
system's temporary folder; a stage's ``temp_dir`` setting overrides both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

BASE_ENV = "LEAP_SCRATCH_DIR"
#: Signals turned into SystemExit inside :func:`stage_guard`.
GUARDED_SIGNALS = tuple(
    s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None), signal.SIGINT) if s is not None
)
_NAME = re.compile(r"^(?P<stage>[a-z0-9_]+)-(?P<pid>\d+)-[^/]+$")


class ScratchError(RuntimeError):
    """The scratch base folder is unsafe (not ours, or open to others and not fixable)."""


def scratch_base(base: str | os.PathLike | None = None) -> Path:
    """The per-user scratch base folder, created 0700 (and checked to be the user's)."""
    if base is None:
        base = os.environ.get(BASE_ENV) or Path(tempfile.gettempdir()) / f"leap-scratch-{_uid()}"
    p = Path(base)
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = p.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ScratchError(f"{p}: scratch folder belongs to another user; set {BASE_ENV}")
    if st.st_mode & 0o077:
        os.chmod(p, 0o700)
    return p


def _uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(base: str | os.PathLike | None = None) -> list[Path]:
    """Remove scratch folders of processes that no longer exist; returns them."""
    root = scratch_base(base)
    removed = []
    for d in root.iterdir():
        m = _NAME.match(d.name)
        if m is None or _alive(int(m["pid"])):
            continue
        shutil.rmtree(d, ignore_errors=True)
        if not d.exists():
            removed.append(d)
            log.info("removed the scratch folder of an earlier run that was killed: %s", d)
    return removed


def clean_debris(outputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporary siblings (``.<name>.*``) an earlier killed run left."""
    removed = []
    for out in outputs:
        out = Path(out)
        if not out.parent.is_dir():
            continue
        for p in out.parent.glob(f".{glob_escape(out.name)}.*"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            removed.append(p)
            log.info("removed a half-written output of an earlier run: %s", p)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextlib.contextmanager
def private_dir(stage: str, base: str | os.PathLike | None = None) -> Iterator[Path]:
    """A fresh 0700 scratch folder for ``stage``, removed when the block ends."""
    d = make_private_dir(stage, base)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def make_private_dir(stage: str, base: str | os.PathLike | None = None) -> Path:
    """A fresh 0700 scratch folder for ``stage``; the caller removes it."""
    if not re.fullmatch(r"[a-z0-9_]+", stage):
        raise ValueError(f"stage name {stage!r}: lower-case letters, digits and _ only")
    d = Path(tempfile.mkdtemp(prefix=f"{stage}-{os.getpid()}-", dir=scratch_base(base)))
    os.chmod(d, 0o700)
    return d


def _raise_exit(signum, frame):  # pragma: no cover - exercised in a subprocess
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Inside the block, SIGTERM/SIGHUP/SIGINT raise SystemExit so cleanups run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_exit) for s in GUARDED_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stage_guard(
    stage: str,
    outputs: Iterable[str | os.PathLike] = (),
    base: str | os.PathLike | None = None,
) -> Iterator[None]:
    """Clean what killed runs left (scratch, output debris); make signals run cleanups.

    Parameters
    ----------
    stage
        The stage's name (for the log).
    outputs
        The stage's declared outputs (files or folders).
    base
        The scratch base folder (see :func:`scratch_base`).
    """
    clean_stale(base)
    clean_debris(outputs)
    log.debug("%s: scratch base %s", stage, scratch_base(base))
    with terminate_on_signals():
        yield
