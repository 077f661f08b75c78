"""A synthetic extract run through ingest and panel, for tests that need a real panel."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from pipeline.synth import SynthConfig, generate, write_extract


def build_panel(cfg: SynthConfig) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The panel of the extract ``cfg`` generates, the generator's truth and its visits
    (``home_visits`` with ``student_key``, the pseudonym the panel uses)."""
    from pipeline.contract import DEMO_ID_KEY
    from pipeline.ingestion import run_ingest
    from pipeline.panel_build import write_panel
    from pipeline.pseudonym import pseudonym

    extract = generate(cfg)
    with tempfile.TemporaryDirectory(prefix="leap-test-panel-") as tmp:
        tmp = Path(tmp)
        write_extract(extract, tmp / "raw")
        run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=1, synthetic=True)
        write_panel(tmp / "interim", tmp / "panel.parquet", None)
        panel = pd.read_parquet(tmp / "panel.parquet")
    visits = extract.tables["home_visits"].copy()
    key = DEMO_ID_KEY.encode("utf-8")
    visits["student_key"] = [pseudonym(str(s), key) for s in visits["student_id"]]
    return panel, extract.truth, visits
