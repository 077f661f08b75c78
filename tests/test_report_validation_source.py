"""The report reads the simulation study from ``report.validation_table`` (the committed
study, not an output of the default pipeline) and cites that file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from pipeline import report
from tests.report_fixtures import build_report_inputs

ROOT = Path(__file__).resolve().parents[1]


def test_report_reads_and_cites_the_committed_study(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    vt = params["report"]["validation_table"]
    assert vt.startswith("benchmarks/results/") and (ROOT / vt).exists()
    build_report_inputs(tmp_path, design="ancova", with_validation=False)
    (tmp_path / vt).parent.mkdir(parents=True)
    shutil.copy(ROOT / vt, tmp_path / vt)
    sec = {**params["report"], "pdf": False, "dpi": 72}
    out = report.run(tmp_path, {"report": sec, "disclosure": params["disclosure"]})
    html = out["html"].read_text(encoding="utf-8")
    assert 'id="simulation"' in html and vt in html
    n = int(pd.read_csv(ROOT / vt)["n_reps"].max())
    assert f"with {n} replications each" in html
    manifest = json.loads((out["figures"] / "manifest.json").read_text())
    fig = next(f for f in manifest["figures"] if f["id"] == "validation")
    assert fig["sources"] == [f"../{vt}"]
    # the default pipeline's validate outputs are not read
    assert not (tmp_path / "reports" / "tables" / "validation.csv").exists()
