"""Stage ``panel``: ``data/interim/*.parquet`` → ``data/processed/panel.parquet``.

``python -m pipeline.panel`` reads the ``panel`` (and, for ``engine: spark``, ``spark``)
section of ``params.yaml`` and writes the student-month panel and
``reports/tables/data_quality_panel.csv``.  The build, its definitions and the
data-quality table are described in :mod:`pipeline.panel_build`.
"""

from __future__ import annotations

import logging
import sys

from pipeline import runner
from pipeline.config import project_root
from pipeline.panel_build import DuckDBSettings, write_panel
from pipeline.settings import stage_settings


def main() -> runner.Summary:
    """``python -m pipeline.panel``: params section ``panel`` → panel + data-quality table."""

    s = stage_settings()
    root = project_root()
    paths = s.panel.paths()
    settings = DuckDBSettings(**s.panel.duckdb_kwargs())
    spark = None
    if s.panel.engine == "spark":
        from pipeline.spark_engine import SparkSettings, open_connection

        spark = open_connection(SparkSettings(**s.spark.kwargs()))
    try:
        quality = write_panel(
            root / paths["interim_dir"],
            root / paths["output"],
            root / paths["quality_output"],
            settings,
            spark=spark,
        )
    finally:
        if spark is not None:
            spark.stop_session()
    logging.getLogger("pipeline.panel").info("data quality:\n%s", quality.to_string(index=False))
    monthly = root / paths["interim_dir"] / "attendance_monthly.parquet"
    return runner.Summary(
        rows_in=runner.parquet_rows(monthly) if monthly.exists() else None,
        rows_out=runner.parquet_rows(root / paths["output"]),
    )


if __name__ == "__main__":
    sys.exit(runner.main("panel", __doc__, main))
