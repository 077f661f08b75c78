"""Stage ``ingest``: raw extract → validated, pseudonymized tables.

``python -m pipeline.ingest`` reads ``params.yaml`` sections ``data`` (``extract_dir``),
``quality`` (``max_reject_rate``, default 0.05) and, optionally, ``ingest``
(``engine``: ``duckdb`` or ``spark``; ``memory_limit``, ``threads``, ``temp_dir`` for
DuckDB) and ``spark`` (for ``engine: spark``, see :mod:`pipeline.spark_engine`), and
writes

* ``data/interim/<table>.parquet`` — kept rows, typed, ``student_id`` → ``student_key``;
* ``data/interim/quarantine/<source table>.parquet`` — quarantined rows, as text, with
  ``source_row`` and ``reason``; raw IDs replaced by ``student_key``;
* ``reports/tables/data_quality.csv`` — ``table, reason, rows``.

All of it is written to temporary locations and moved into place only when everything
succeeded; a file-level fault or a reject rate above the limit leaves the previous
outputs untouched.  See ``docs/interfaces.md`` and :mod:`pipeline.checks`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from pipeline import config, runner
from pipeline import contract as C
from pipeline.checks import IngestError
from pipeline.ingestion import (  # noqa: F401  (run_ingest, INTERIM_TABLES: re-exported)
    INTERIM_DIR,
    INTERIM_TABLES,
    QUALITY_CSV,
    run_ingest,
)
from pipeline.pseudonym import synthetic_from_params
from pipeline.settings import IngestSettings, Settings, SparkSettingsModel, stage_settings

log = logging.getLogger("pipeline.ingest")


def main() -> runner.Summary:
    s = stage_settings()
    root = config.project_root()
    spark = _engine(s.ingest, s.spark)
    try:
        counts = _run_from_settings(root, s, spark)
    except IngestError as exc:
        raise SystemExit(f"ingest failed: {exc}") from None
    finally:
        if spark is not None:
            spark.stop_session()
    summary = counts[counts["reason"].isin([C.READ, C.KEPT])].pivot(
        index="table", columns="reason", values="rows"
    )
    log.info("rows read / kept:\n%s", summary.to_string())
    return runner.Summary(
        rows_in=int(summary[C.READ].sum()),
        rows_out=int(summary[C.KEPT].sum()),
        detail=f"{int(counts.loc[counts['reason'].isin(list(C.REASONS)), 'rows'].sum()):,} "
        "quarantined",
    )


def _engine(opts: IngestSettings, spark: SparkSettingsModel):
    """``ingest.engine``: None for DuckDB, a SparkConnection for ``spark``."""
    if opts.engine == "duckdb":
        return None
    from pipeline.spark_engine import SparkSettings, open_connection

    log.info("engine: spark")
    return open_connection(SparkSettings(**spark.kwargs()))


def _run_from_settings(root: Path, s: Settings, spark=None) -> pd.DataFrame:
    extract = Path(s.data.extract_dir)
    synthetic = synthetic_from_params(
        {
            "data": {"extract_dir": s.data.extract_dir},
            "synthesize": {"output_dir": s.synthesize.output_dir},
        },
        root,
    )
    return run_ingest(
        extract if extract.is_absolute() else root / extract,
        root / INTERIM_DIR,
        root / QUALITY_CSV,
        max_reject_rate=s.quality.max_reject_rate,
        memory_limit=s.ingest.memory_limit,
        threads=s.ingest.threads,
        temp_dir=s.ingest.temp_dir,
        on_disk=s.ingest.on_disk,
        spark=spark,
        synthetic=synthetic,
    )


if __name__ == "__main__":
    sys.exit(runner.main("ingest", __doc__, main))
