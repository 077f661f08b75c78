"""A synthetic extract run through ingest and panel, for tests that need a real panel."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from pipeline.synth import SynthConfig, generate, write_extract


def build_panel(cfg: SynthConfig) -> tuple[pd.DataFrame, dict]:
    """The panel of the extract ``cfg`` generates, and the generator's truth."""
    from pipeline.ingest import run_ingest
    from pipeline.panel import write_panel

    extract = generate(cfg)
    with tempfile.TemporaryDirectory(prefix="leap-test-panel-") as tmp:
        tmp = Path(tmp)
        write_extract(extract, tmp / "raw")
        run_ingest(tmp / "raw", tmp / "interim", tmp / "dq.csv", threads=1)
        write_panel(tmp / "interim", tmp / "panel.parquet", None)
        panel = pd.read_parquet(tmp / "panel.parquet")
    return panel, extract.truth
