"""Shared fixtures: small synthetic extracts generated once per test session."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.config import load_params, section
from pipeline.synth import SynthConfig, generate

SMALL = dict(n_students=3000, n_districts=10, n_program_districts=3)


def small_config(**overrides) -> SynthConfig:
    """A small extract (≈3,000 students) for fast tests."""
    cfg = dataclasses.replace(SynthConfig(), **SMALL)
    program = overrides.pop("program", None)
    effects = overrides.pop("effects", None)
    if program:
        cfg = dataclasses.replace(cfg, program=dataclasses.replace(cfg.program, **program))
    if effects:
        cfg = dataclasses.replace(cfg, effects=dataclasses.replace(cfg.effects, **effects))
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(scope="session")
def default_config() -> SynthConfig:
    """The configuration ``dvc repro`` uses (``params.yaml``, scale ``default``)."""
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    return SynthConfig.from_params({**section("synthesize", params), "scale": "default"})


@pytest.fixture(scope="session")
def default_extract(default_config):
    """The default-size synthetic extract (in memory), generated once."""
    return generate(default_config)


@pytest.fixture(scope="session")
def small_extract():
    return generate(small_config())


@pytest.fixture(scope="session")
def published_project(tmp_path_factory):
    """A tiny copy of this project after ``dvc repro``, committed (read it, never write).

    Built once per test run and shared by the xdist workers (:mod:`tests.shared_project`).
    """
    from tests.shared_project import build_once, publish

    return build_once(tmp_path_factory, "published-tiny", publish)


#: The modules that take longest on two cores, longest first (measured with
#: ``--durations``; the ``slow`` ones, then the rest).  Under ``loadscope`` they are
#: handed out first, so that no worker picks up a long module when the other has run out
#: of work.  The tiny published project (:func:`published_project`) is built by the first
#: module that needs it (test_workflow); test_notebooks, which waits for it, comes after
#: other long modules.
LONG_FIRST = (
    "test_workflow",
    "test_end_to_end",
    "test_spark_engine",
    "test_ingest_properties",
    "test_checks",
    "test_report",
    "test_disclosure_ledger",
    "test_report_quality",
    "test_synthesize",
    "test_cli",
    "test_notebooks",
    "test_synth_worlds",
    "test_did_estimators",
    "test_ingest",
    "test_panel",
)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With ``-n`` (pytest-xdist) and no ``--dist``, run each module's tests on one worker
    (``loadscope``): module-scoped fixtures (the report inputs, the simulation study, the
    default extract) are then built once per test run, not once on every worker.  The
    modules are handed out in collection order (:data:`LONG_FIRST` first), not by their
    number of tests."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadscope"
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Put the modules of :data:`LONG_FIRST` first, in that order (the rest keep theirs)."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
