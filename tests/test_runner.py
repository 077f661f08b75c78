"""The shared stage runner: --help runs nothing, one log format with stage and elapsed
time, --quiet, progress bars, the one-line summary."""

from __future__ import annotations

import logging
import re

import pytest

from pipeline import runner


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    monkeypatch.delenv(runner.QUIET_ENV, raising=False)
    monkeypatch.delenv(runner.PROGRESS_ENV, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


DOC = """Stage ``demo``: does a demonstration.

More text that is not the one-line description.
"""


def test_help_prints_and_runs_nothing(capsys):
    def run():
        raise AssertionError("the stage ran")

    with pytest.raises(SystemExit) as exc:
        runner.main("demo", DOC, run, ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m pipeline.demo" in out
    assert "Stage ``demo``: does a demonstration." in out
    assert "--quiet" in out and "More text" not in out


def test_log_format_and_summary(capsys):
    def run():
        logging.getLogger("pipeline.demo").info("working on %d rows", 3)
        return runner.Summary(rows_in=1234, rows_out=56)

    assert runner.main("demo", DOC, run, []) == 0
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d demo \+\s*\d+\.\ds INFO pipeline\.demo: working on 3 rows", err[0]
    ), err[0]
    assert re.fullmatch(r"demo done: 1,234 rows in, 56 rows out, \d+\.\d s", err[-1]), err[-1]


def test_quiet_keeps_warnings_and_the_summary(capsys):
    def run():
        log = logging.getLogger("pipeline.demo")
        log.info("chatter")
        log.warning("something to know")
        list(runner.progress(range(3), "steps", delay=0))
        return runner.Summary(rows_out=2, detail="estimate 1.0")

    assert runner.main("demo", DOC, run, ["--quiet"]) == 0
    err = capsys.readouterr().err
    assert "chatter" not in err and "steps" not in err
    assert "WARNING pipeline.demo: something to know" in err
    assert re.search(r"demo done: 2 rows out, \d+\.\d s \(estimate 1\.0\)", err)
    assert runner.is_quiet()  # worker processes inherit it


def test_progress_bar_shows_unless_quiet(capsys, monkeypatch):
    runner.setup_logging("demo")
    assert list(runner.progress(iter(range(4)), "tables", total=4, unit="table", delay=0)) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "demo: tables" in err and "4/4" in err
    monkeypatch.setenv(runner.PROGRESS_ENV, "0")
    assert list(runner.progress(range(2), "tables", delay=0)) == [0, 1]
    assert capsys.readouterr().err == ""
    monkeypatch.delenv(runner.PROGRESS_ENV)
    assert list(runner.progress(range(2), "tables")) == [0, 1]  # quick: no bar
    assert capsys.readouterr().err == ""


def test_summary_without_counts():
    assert runner.Summary().line("report", 2.04) == "report done: 2.0 s"


def test_parquet_rows(tmp_path):
    import pandas as pd

    pd.DataFrame({"a": range(7)}).to_parquet(tmp_path / "x.parquet")
    assert runner.parquet_rows(tmp_path / "x.parquet") == 7
