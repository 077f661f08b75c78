"""Stage ``panel``: ``data/interim/*.parquet`` → ``data/processed/panel.parquet``.

``python -m pipeline.panel`` reads the ``panel`` (and, for ``engine: spark``, ``spark``)
section of ``params.yaml`` and writes the student-month panel and
``reports/tables/data_quality_panel.csv``.  The build, its definitions and the
data-quality table are described in :mod:`pipeline.panel_build`.
"""

from __future__ import annotations

import logging

from pipeline.panel_build import ENGINES, DuckDBSettings, write_panel


def main() -> None:
    """``python -m pipeline.panel``: params section ``panel`` → panel + data-quality table."""
    from pipeline.config import ConfigError, load_params, project_root, section

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    all_params = load_params()
    params = section("panel", all_params)
    root = project_root()
    paths = {
        "interim_dir": "data/interim",
        "output": "data/processed/panel.parquet",
        "quality_output": "reports/tables/data_quality_panel.csv",
    }
    paths.update({k: params[k] for k in paths if k in params})
    engine = params.get("engine", "duckdb")
    if engine not in ENGINES:
        raise ConfigError(f"params.yaml: panel.engine must be one of {ENGINES}, not {engine!r}")
    settings = DuckDBSettings.from_params(
        {k: v for k, v in params.items() if k not in paths and k != "engine"}
    )
    spark = None
    if engine == "spark":
        from pipeline.spark_engine import SparkSettings, open_connection

        spark = open_connection(SparkSettings.from_params(all_params.get("spark")))
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
    print(quality.to_string(index=False))


if __name__ == "__main__":
    main()
