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


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With ``-n`` (pytest-xdist) and no ``--dist``, run each module's tests on one worker
    (``loadscope``): module-scoped fixtures (the report inputs, the simulation study, the
    default extract) are then built once per test run, not once on every worker."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadscope"
