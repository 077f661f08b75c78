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
from pathlib import Path

import pandas as pd

from pipeline import config
from pipeline import contract as C
from pipeline.checks import IngestError
from pipeline.ingestion import (  # noqa: F401  (run_ingest, INTERIM_TABLES: re-exported)
    DEFAULT_MAX_REJECT_RATE,
    INTERIM_DIR,
    INTERIM_TABLES,
    QUALITY_CSV,
    run_ingest,
)

log = logging.getLogger("pipeline.ingest")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    params = config.load_params()
    data = config.section("data", params)
    quality = params.get("quality") or {}
    opts = params.get("ingest") or {}
    root = config.project_root()
    extract = Path(data["extract_dir"])
    spark = _engine(opts, params.get("spark"))
    try:
        counts = _run_from_params(root, extract, quality, opts, spark)
    except IngestError as exc:
        raise SystemExit(f"ingest failed: {exc}") from None
    finally:
        if spark is not None:
            spark.stop_session()
    summary = counts[counts["reason"].isin([C.READ, C.KEPT])].pivot(
        index="table", columns="reason", values="rows"
    )
    log.info("rows read / kept:\n%s", summary.to_string())


ENGINES = ("duckdb", "spark")


def _engine(opts: dict, spark_params: dict | None):
    """``ingest.engine``: None for DuckDB, a SparkConnection for ``spark``."""
    engine = opts.get("engine", "duckdb")
    if engine not in ENGINES:
        raise config.ConfigError(
            f"params.yaml: ingest.engine must be one of {ENGINES}, not {engine!r}"
        )
    if engine == "duckdb":
        return None
    from pipeline.spark_engine import SparkSettings, open_connection

    log.info("engine: spark")
    return open_connection(SparkSettings.from_params(spark_params))


def _run_from_params(
    root: Path, extract: Path, quality: dict, opts: dict, spark=None
) -> pd.DataFrame:
    return run_ingest(
        extract if extract.is_absolute() else root / extract,
        root / INTERIM_DIR,
        root / QUALITY_CSV,
        max_reject_rate=float(quality.get("max_reject_rate", DEFAULT_MAX_REJECT_RATE)),
        memory_limit=opts.get("memory_limit"),
        threads=opts.get("threads"),
        temp_dir=opts.get("temp_dir"),
        on_disk=opts.get("on_disk"),
        spark=spark,
    )


if __name__ == "__main__":
    main()
