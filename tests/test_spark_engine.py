"""The Spark engine (``ingest.engine`` / ``panel.engine: spark``) gives DuckDB's results.

On a local Spark session (``local[2]``), small synthetic extracts with planted faults, in
the monthly form (CSV, run through the stages' entry points and the ``params.yaml``
switch) and the daily form (Parquet, through the library functions), are ingested and
turned into panels by both engines; the kept tables, the quarantine, the data-quality
tables and the panel must be equal.  See ``docs/distributed.md``.
"""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import ConfigError
from pipeline.settings import section_settings


def _spark_available() -> bool:
    from importlib.util import find_spec

    found = all(find_spec(m) is not None for m in ("pyspark", "sqlglot"))
    return found and (bool(os.environ.get("JAVA_HOME")) or shutil.which("java") is not None)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),  # pyspark on pandas 3
    pytest.mark.skipif(
        not _spark_available(), reason="needs pyspark, sqlglot and Java (pip install -e '.[spark]')"
    ),
]

#: Students of the synthetic extracts (small_config's 3,000 would only add data time).
N_STUDENTS = 1500
FAULTS = 2  # planted faulty rows of each kind
TEST_CONF = {
    "spark.ui.enabled": False,
    "spark.ui.showConsoleProgress": False,
    "spark.sql.adaptive.enabled": False,  # tiny data: fewer planning steps
    "spark.default.parallelism": 2,
}


@pytest.fixture(scope="session")
def spark():
    from pipeline.spark_engine import SparkSettings, start_session

    session = start_session(
        SparkSettings(master="local[2]", shuffle_partitions=2, driver_memory="2g", conf=TEST_CONF)
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def extract():
    from pipeline.synth import generate
    from tests.conftest import small_config

    return generate(small_config(n_students=N_STUDENTS))


def _connection(spark):
    from pipeline.spark_engine import SparkSettings, open_connection

    return open_connection(SparkSettings(shuffle_partitions=2, conf=TEST_CONF), spark=spark)


def _duckdb_run(x, out):
    from pipeline.ingest import run_ingest
    from pipeline.panel_build import write_panel

    run_ingest(x, out / "interim", out / "dq.csv", max_reject_rate=1.0, environ={}, synthetic=True)
    write_panel(out / "interim", out / "panel.parquet", out / "dq_panel.csv")


def _read(path):
    return pd.read_parquet(path, dtype_backend="numpy_nullable")


def _types(path):
    """Column names and Arrow types of a Parquet file (DuckDB marks some columns REQUIRED
    that Spark cannot prove non-null; readers do not care)."""
    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


def _assert_same_outputs(duck, spark_out):
    """Interim tables, quarantine, data-quality tables and panel of two runs are equal."""
    # data_quality.csv: the same bytes (every table and reason, zeros included)
    assert (spark_out / "dq.csv").read_bytes() == (duck / "dq.csv").read_bytes()
    dq = pd.read_csv(duck / "dq.csv")
    assert dq.loc[~dq["reason"].isin(["read", "kept"]), "rows"].sum() > 0  # faults were found
    # kept tables and quarantine: same rows in the same order, same types
    files = sorted(p.relative_to(duck / "interim") for p in (duck / "interim").rglob("*.parquet"))
    got = sorted(
        p.relative_to(spark_out / "interim") for p in (spark_out / "interim").rglob("*.parquet")
    )
    assert got == files
    for rel in files:
        a, b = duck / "interim" / rel, spark_out / "interim" / rel
        assert _types(b) == _types(a), rel
        pd.testing.assert_frame_equal(_read(b), _read(a), check_exact=True, obj=str(rel))
    # quarantine counts by reason, from the quarantine files themselves
    for rel in files:
        if rel.parts[0] == "quarantine":
            qa = _read(duck / "interim" / rel)["reason"].value_counts().sort_index()
            qb = _read(spark_out / "interim" / rel)["reason"].value_counts().sort_index()
            pd.testing.assert_series_equal(qb, qa, obj=str(rel))
    assert (spark_out / "interim" / "extract_meta.json").read_bytes() == (
        duck / "interim" / "extract_meta.json"
    ).read_bytes()
    # the panel: same schema, same rows
    assert (spark_out / "dq_panel.csv").read_bytes() == (duck / "dq_panel.csv").read_bytes()
    assert _types(spark_out / "panel.parquet") == _types(duck / "panel.parquet")
    keys = ["student_key", "month"]
    pa_ = _read(duck / "panel.parquet").sort_values(keys, ignore_index=True)
    pb = _read(spark_out / "panel.parquet").sort_values(keys, ignore_index=True)
    assert len(pa_) > 1000
    assert pa_["event_time"].notna().any() and pa_["first_visit_date"].notna().any()
    dtypes = {c: str(t) for c, t in pa_.dtypes.items()}
    assert dtypes["days_present"] == "Int32" and dtypes["chronic"] == "boolean"
    assert dtypes["student_key"] == "string" and dtypes["attendance_rate"] == "Float64"
    pd.testing.assert_frame_equal(pb, pa_, check_dtype=True, check_exact=True)


def test_monthly_csv_extract_via_stage_switch(spark, extract, tmp_path, monkeypatch):
    """``engine: spark`` in params.yaml: the stage entry points give DuckDB's outputs."""
    from pipeline import ingest, panel
    from pipeline.synth import write_extract

    proj = tmp_path / "proj"
    x = proj / "data" / "raw" / "synthetic"
    write_extract(extract, x, fmt="csv", attendance_form="monthly", faults_per_kind=FAULTS)
    # an extra column with quoted line breaks, quotes, commas and empty values
    students = pd.read_csv(x / "students.csv", dtype=str, keep_default_na=False)
    notes = ["line 1\nline 2", "", 'say "hi", twice', "x", " padded "]
    students["note"] = [notes[i % len(notes)] for i in range(len(students))]
    students.to_csv(x / "students.csv", index=False, lineterminator="\n")
    params = {
        "data": {"extract_dir": "data/raw/synthetic"},
        "quality": {"max_reject_rate": 1.0},
        "ingest": {"engine": "spark"},
        "panel": {"engine": "spark", "chunk_students": 1000},  # two chunks
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "conf": TEST_CONF},
    }
    (proj / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.setenv("LEAP_PROJECT_ROOT", str(proj))
    ingest.main()
    panel.main()
    assert not spark.sparkContext._jsc.sc().isStopped()  # the stage reused, not stopped, it

    out = tmp_path / "spark"
    out.mkdir()
    shutil.copytree(proj / "data" / "interim", out / "interim")
    shutil.copy(proj / "reports" / "tables" / "data_quality.csv", out / "dq.csv")
    shutil.copy(proj / "data" / "processed" / "panel.parquet", out / "panel.parquet")
    shutil.copy(proj / "reports" / "tables" / "data_quality_panel.csv", out / "dq_panel.csv")
    _duckdb_run(x, tmp_path / "duck")
    _assert_same_outputs(tmp_path / "duck", out)


def test_daily_parquet_extract(spark, extract, tmp_path, monkeypatch):
    """The daily form (aggregated to months on Spark) from Parquet files."""
    from pipeline import spark_engine

    # driver-side frames (pseudonym map, prior-year rates) reach Spark as at state scale
    monkeypatch.setattr(spark_engine, "REGISTER_VIA_PARQUET_ROWS", 100)
    from pipeline.ingest import run_ingest
    from pipeline.panel_build import write_panel
    from pipeline.synth import write_extract

    x = tmp_path / "x"
    write_extract(extract, x, fmt="parquet", attendance_form="daily", faults_per_kind=FAULTS)
    out = tmp_path / "spark"
    # small splits: the daily file is read by several tasks, so source_row is numbered
    # across partitions (partition offsets), as for any large file
    key = "spark.sql.files.maxPartitionBytes"
    old = spark.conf.get(key)
    spark.conf.set(key, str(64 * 1024))
    try:
        daily = spark.read.parquet(str(x / "attendance_daily.parquet"))
        assert daily.rdd.getNumPartitions() > 1
        run_ingest(
            x,
            out / "interim",
            out / "dq.csv",
            max_reject_rate=1.0,
            environ={},
            synthetic=True,
            spark=_connection(spark),
        )
    finally:
        spark.conf.set(key, old)
    write_panel(
        out / "interim", out / "panel.parquet", out / "dq_panel.csv", spark=_connection(spark)
    )
    _duckdb_run(x, tmp_path / "duck")
    _assert_same_outputs(tmp_path / "duck", out)
    dq = pd.read_csv(out / "dq.csv").set_index(["table", "reason"])["rows"]
    assert dq["attendance_daily", "not_a_weekday"] == FAULTS  # Saturdays, via weekday()


# --- the shared SQL, expression by expression ---------------------------------------------

VALUES = [
    None,
    "",
    " ",
    "  ",
    "7",
    "+7",
    "-7",
    " 7 ",
    "07",
    "7.0",
    "7.",
    "2.5",
    "1e3",
    "0x10",
    "99999999999999999999",
    "true",
    "FALSE",
    " Yes ",
    "n",
    "maybe",
    "2021-02-28",
    "2021-02-30",
    "2021-2-28",
    "2021-02-28 ",
    "20210228",
    "2021-02",
    "2021-2",
    "2021-13",
    "2021-22",
    "2020-21",
    "2020-2021",
    "1999-00",
    "0999-00",
    "9999-00",
    "2021-01-02",
    "2021-01-03",
    "2021-01-04",
    "a'b",
    "é",
    "x\ny",
]


def test_value_parsers_agree(spark):
    """Every parser and rule helper of pipeline.checks gives the same answers on Spark."""
    import duckdb

    from pipeline import checks as K
    from pipeline.spark_engine import to_spark_sql

    c = '"v"'
    exprs = {
        "int_val": K._int_val(c),
        "int_whole": K._int_whole(c),
        "date_val": K._date_val(c),
        "month_val": K._month_val(c),
        "sy_start": K._sy_start(c),
        "bool_val": K._bool_val(c),
        "empty": K._empty(c),
        "isodow": f"isodow({K._date_val(c)})",
        "sy_of_date": K._school_year_of_date(K._date_val(c)),
        "strftime": f"strftime({K._month_val(c)}, '%Y-%m')",
        "full_match": "regexp_full_match(v, '[0-9]{4}-[0-9]{2}')",
    }
    select = ", ".join(f"CAST({e} AS VARCHAR) AS {k}" for k, e in exprs.items())
    frame = pd.DataFrame({"i": range(len(VALUES)), "v": pd.array(VALUES, dtype="string")})
    sql = f"SELECT i, {select} FROM vals ORDER BY i"
    con = duckdb.connect()
    con.register("vals", frame)
    want = con.execute(sql).df()
    con.close()
    spark.createDataFrame(
        [(i, v) for i, v in enumerate(VALUES)], "i long, v string"
    ).createOrReplaceTempView("vals")
    got = spark.sql(to_spark_sql(sql)).toPandas()
    for k in exprs:
        a = [None if pd.isna(x) else str(x) for x in want[k]]
        b = [None if pd.isna(x) else str(x) for x in got[k]]
        assert b == a, (k, list(zip(VALUES, a, b, strict=True)))


def test_hash_tells_null_positions_apart(spark):
    """DuckDB's hash(a, b) differs for ('x', NULL) and (NULL, 'x'); so must Spark's."""
    from pipeline.spark_engine import to_spark_sql

    sql = "SELECT hash(a, b) = hash(b, a) AS same FROM (SELECT 'x' AS a, NULL AS b)"
    assert "xxhash64" in to_spark_sql(sql).lower()
    assert spark.sql(to_spark_sql(sql)).collect()[0][0] is False


def test_unreadable_csv_is_a_file_level_error(spark, tmp_path):
    from pipeline.checks import IngestError
    from pipeline.ingest import run_ingest
    from tests.extract_factory import make_extract

    x = make_extract(tmp_path / "x")
    (x / "students.csv").write_text("student_id,sex,race_ethnicity\n000101,F\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"students\.csv: unreadable file") as err:
        run_ingest(x, tmp_path / "i", tmp_path / "dq.csv", environ={}, synthetic=True, spark=_connection(spark))
    assert "000101" not in str(err.value)  # no raw ID in the message
    assert not (tmp_path / "i").exists() and not (tmp_path / "dq.csv").exists()


# --- configuration (no Spark needed) ---------------------------------------------------------


def test_unknown_engine_and_spark_settings_are_config_errors():
    from pipeline.ingest import _engine
    from pipeline.spark_engine import SparkSettings

    with pytest.raises(ConfigError, match="ingest.engine"):
        section_settings("ingest", {"engine": "flink"})
    with pytest.raises(ConfigError, match="mastr"):
        section_settings("spark", {"mastr": "local[1]"})
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        section_settings("spark", {"materialize": "checkpoint"})
    spark = section_settings("spark", {})
    assert SparkSettings(**spark.kwargs()) == SparkSettings()
    assert _engine(section_settings("ingest", {}), spark) is None
    assert _engine(section_settings("ingest", {"engine": "duckdb"}), spark) is None


def test_params_yaml_has_the_switches():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    assert params["ingest"]["engine"] == "duckdb" and params["panel"]["engine"] == "duckdb"
    SparkSettings = pytest.importorskip("pipeline.spark_engine").SparkSettings
    SparkSettings(**section_settings("spark", params["spark"]).kwargs())
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for stage in ("ingest", "panel"):
        assert stage in stages[stage]["params"] and "spark" in stages[stage]["params"]
