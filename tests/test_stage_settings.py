"""Every stage checks the whole params.yaml before any work (issue 21 item 7).

Each stage's entry point is run in a project whose params.yaml has one bad value; it must
stop with a message naming the key, the value and what is allowed, and write nothing.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["synthesize", "ingest", "panel", "match", "estimate", "validate", "report"]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_stops_on_a_bad_value_before_any_work(stage, tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["estimate"]["alpha"] = 1.5  # a section most stages do not even read
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.setenv("LEAP_PROJECT_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"pipeline.{stage}"])
    module = importlib.import_module(f"pipeline.{stage}")
    with pytest.raises(SystemExit) as info:
        module.main()
    message = str(info.value)
    assert "estimate.alpha = 1.5: Input should be less than 1 (allowed: > 0 and < 1)" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
