"""What every stage entry point shares: command line, log format, progress bars, summary.

A stage's ``__main__`` part is one call::

    if __name__ == "__main__":
        sys.exit(runner.main("estimate", __doc__, _main))

:func:`main` parses ``--help`` (prints the stage's help and runs nothing), ``--quiet``
(warnings and errors only, no progress bars) and ``--verbose``; sets up one log format
for every stage (``HH:MM:SS stage +elapsed level logger: message``); runs the stage
function; and ends with a one-line summary (``<stage> done: N rows in, M rows out,
S s``), which ``--quiet`` keeps.  The stage function returns a :class:`Summary` (or
nothing, when it has no row counts to report).

:func:`progress` wraps an iterable in a ``tqdm`` bar on standard error for the steps
that can take more than about ten seconds (ingest by table, matching by month,
bootstrap draws, validation replications); it is silent under ``--quiet`` (the
``LEAP_QUIET`` environment variable, which worker processes inherit) and when
``LEAP_PROGRESS=0``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: Environment variable set by ``--quiet``; worker processes inherit it.
QUIET_ENV = "LEAP_QUIET"
#: ``LEAP_PROGRESS=0`` turns the progress bars off without silencing the log.
PROGRESS_ENV = "LEAP_PROGRESS"

LOG_FORMAT = "%(asctime)s %(stage)s +%(elapsed)6.1fs %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"

#: A progress bar appears only once its loop has run this long (seconds).
DELAY_S = 5.0

_state: dict[str, Any] = {"stage": "leap", "t0": time.perf_counter()}


@dataclass(frozen=True)
class Summary:
    """What a stage reports in its last line.

    Parameters
    ----------
    rows_in
        Rows the stage read (its main input).
    rows_out
        Rows it wrote (its main output).
    detail
        A short free text appended to the line (e.g. the headline estimate).
    """

    rows_in: int | None = None
    rows_out: int | None = None
    detail: str = ""

    def line(self, stage: str, seconds: float) -> str:
        """The one-line summary, e.g. ``panel done: 1,234 rows in, 567 rows out, 8.1 s``."""
        parts = []
        if self.rows_in is not None:
            parts.append(f"{self.rows_in:,} rows in")
        if self.rows_out is not None:
            parts.append(f"{self.rows_out:,} rows out")
        parts.append(f"{seconds:.1f} s")
        text = f"{stage} done: " + ", ".join(parts)
        return f"{text} ({self.detail})" if self.detail else text


class _StageFilter(logging.Filter):
    """Adds ``stage`` and ``elapsed`` (seconds since the stage started) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.stage = _state["stage"]
        record.elapsed = time.perf_counter() - _state["t0"]
        return True


def is_quiet() -> bool:
    """Whether ``--quiet`` is in force (in this process or the one that started it)."""
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def setup_logging(stage: str, *, quiet: bool = False, verbose: bool = False) -> None:
    """Configure the root logger with the shared format for ``stage``.

    Parameters
    ----------
    stage
        Name shown in every line.
    quiet
        Warnings and errors only; also sets ``LEAP_QUIET`` for worker processes.
    verbose
        Debug messages too.
    """
    _state["stage"] = stage
    _state["t0"] = time.perf_counter()
    if quiet:
        os.environ[QUIET_ENV] = "1"
    quiet = quiet or is_quiet()
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(_StageFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter stays at warnings
    for name in ("matplotlib", "PIL", "fontTools", "py4j", "numba"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def progress(
    iterable: Iterable[T],
    desc: str,
    *,
    total: int | None = None,
    unit: str = "it",
    delay: float | None = None,
) -> Iterator[T]:
    """``iterable`` with a progress bar on standard error (none under ``--quiet``).

    Parameters
    ----------
    iterable
        What to iterate over.
    desc
        Label of the bar (e.g. ``"ingest tables"``).
    total
        Number of items, when ``iterable`` has no ``len``.
    unit
        Name of one item (``"table"``, ``"month"``, ``"draw"``, ``"replication"``).
    delay
        Seconds before the bar appears (:data:`DELAY_S` by default), so that quick
        loops print nothing.
    """
    if is_quiet() or os.environ.get(PROGRESS_ENV, "1") == "0":
        yield from iterable
        return
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    yield from tqdm(
        iterable,
        desc=f"{_state['stage']}: {desc}",
        total=total,
        unit=unit,
        file=sys.stderr,
        mininterval=0.5 if tty else 10.0,
        delay=DELAY_S if delay is None else delay,
        dynamic_ncols=tty,
        leave=True,
    )


def parquet_rows(path: str | os.PathLike) -> int:
    """Rows of a Parquet file (from its footer, without reading the data)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a module docstring (the stage's one-line description)."""
    text = (doc or "").strip()
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


def parser(stage: str, doc: str | None) -> argparse.ArgumentParser:
    """The command-line parser every stage shares (``--quiet``, ``--verbose``)."""
    desc = first_paragraph(doc)
    p = argparse.ArgumentParser(
        prog=f"python -m pipeline.{stage}",
        description=desc,
        epilog=(
            f"Reads its section of params.yaml and writes its outputs as declared in "
            f"dvc.yaml; normally run by `dvc repro {stage}`."
        ),
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    g.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    return p


def main(
    stage: str,
    doc: str | None,
    run: Callable[[], Summary | None],
    argv: list[str] | None = None,
) -> int:
    """Run one stage from the command line; returns the exit status.

    Parameters
    ----------
    stage
        The stage's name (``dvc.yaml``).
    doc
        The stage module's docstring: its first paragraph is the ``--help`` text.
    run
        The stage itself, called with no arguments after the command line is parsed
        and logging is set up; returns a :class:`Summary` or ``None``.
    argv
        Command-line arguments (``sys.argv[1:]`` by default).
    """
    args = parser(stage, doc).parse_args(argv)
    setup_logging(stage, quiet=args.quiet, verbose=args.verbose)
    t0 = time.perf_counter()
    summary = run() or Summary()
    # the summary line is printed even under --quiet: one line per stage
    print(summary.line(stage, time.perf_counter() - t0), file=sys.stderr, flush=True)
    return 0
