"""Run the ingest and panel stages on Apache Spark (``ingest.engine`` / ``panel.engine``).

The stage logic is written once, as DuckDB SQL in :mod:`pipeline.checks`,
:mod:`pipeline.ingest` and :mod:`pipeline.panel`.  This module lets the same Python code
run on Spark: :class:`SparkConnection` offers the small part of DuckDB's connection API
those modules use (``execute``, ``sql``, ``register``, ``unregister``, ``close`` and the
result methods ``fetchall``, ``fetchone``, ``fetchnumpy``, ``df``,
``to_arrow_table``), and every statement is transpiled from the DuckDB dialect to Spark
SQL with ``sqlglot`` (:func:`to_spark_sql`) and run through ``spark.sql`` on temporary
views.  What cannot be shared is isolated here:

* reading a raw extract file (:meth:`SparkConnection.source_select`): Spark's CSV or
  Parquet reader with every column as text, and the 1-based ``source_row`` numbered in
  file order (partition offsets, computed on the cluster);
* ``COPY (query) TO 'file.parquet'``: Spark writes the sorted result to a staging folder,
  and the driver concatenates the part files, in order, into the one Parquet file the
  next stage reads (streamed, one row group at a time);
* a few rewrites where ``sqlglot``'s translation is missing or wrong for our use
  (:func:`_rewrite`): DuckDB's 64-bit ``hash`` (→ ``xxhash64`` plus null flags, since
  Spark's hash skips nulls), ``isodow`` (→ ``weekday + 1``), ``regexp_full_match``
  (→ an anchored ``RLIKE``); and, for Spark 3.5, ``t.* EXCLUDE (…)`` expanded to the
  named columns and fresh column identities for materialized relations;
* ``CREATE TABLE`` materializes the relation at once (``SparkSettings.materialize``: a
  local checkpoint by default, which also cuts the lineage), so that a statement's errors
  surface where DuckDB would raise them; ``ORDER BY`` of a ``CREATE`` is dropped
  (relations are unordered; every order that matters is in the reading query).

Pseudonyms are computed exactly as on DuckDB: the distinct raw IDs are collected to the
driver and hashed by :func:`pipeline.pseudonym.pseudonymize` (HMAC-SHA256 under
``LEAP_ID_KEY``, collision check included); the key never leaves the driver.

See ``docs/distributed.md`` for the design and what a state configures.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

log = logging.getLogger(__name__)

#: Settings every session gets (they make Spark behave like DuckDB where it matters).
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}


MATERIALIZE = ("local_checkpoint", "checkpoint", "cache")
#: ``register``: larger pandas frames reach Spark through a Parquet file.
REGISTER_VIA_PARQUET_ROWS = 50_000

# --- settings and session ---------------------------------------------------------------


@dataclass(frozen=True)
class SparkSettings:
    """``params.yaml`` section ``spark`` (used when a stage's ``engine`` is ``spark``).

    ``master``
        Spark master URL: ``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://…``.
    ``app_name``
        Application name shown by the cluster manager.
    ``shuffle_partitions``
        ``spark.sql.shuffle.partitions`` (a few times the cluster's cores).
    ``driver_memory``
        ``spark.driver.memory`` when the session (its JVM) is started here.
    ``staging_dir``
        Where Spark writes results before the driver assembles the stage's Parquet
        files (and large driver-side frames before Spark reads them); on a cluster a
        folder that the driver and the executors see at the same path (default: a fresh
        folder in the driver's temporary folder, enough for ``local[N]``).
    ``csv_multiline``
        Read CSV files with quoted fields that span lines (the contract allows them).
        Such files are read by one task; set ``false`` for large CSV files without
        them, so that Spark splits the file.
    ``materialize``
        How a ``CREATE TABLE`` of the shared SQL is materialized: ``local_checkpoint``
        (kept on the executors, lineage cut: fast, but a lost executor fails the stage),
        ``checkpoint`` (written to ``checkpoint_dir``, e.g. on HDFS: survives lost
        executors) or ``cache`` (persisted, lineage kept: recomputed when lost).
    ``checkpoint_dir``
        Folder for ``materialize: checkpoint`` (shared by the cluster).
    ``conf``
        Further Spark settings, e.g. ``spark.executor.memory``, ``spark.local.dir``.
    """

    master: str = "local[2]"
    app_name: str = "leap-pipeline"
    shuffle_partitions: int = 8
    driver_memory: str | None = None
    staging_dir: str | None = None
    csv_multiline: bool = True
    materialize: str = "local_checkpoint"
    checkpoint_dir: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)

def start_session(settings: SparkSettings | None = None):
    """A Spark session for ``settings`` (an existing active session is reused).

    A reused session keeps its own master and memory settings; the SQL settings that
    the engine relies on (:data:`BASE_CONF`, shuffle partitions, ``conf``) are applied
    to it either way.
    """
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    conf = {
        **BASE_CONF,
        "spark.sql.shuffle.partitions": str(int(settings.shuffle_partitions)),
        **{
            str(k): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in settings.conf.items()
        },
    }
    if settings.driver_memory:
        conf.setdefault("spark.driver.memory", str(settings.driver_memory))
    # the stages use temporary views only: keep Spark's default warehouse folder out of
    # the working directory (a state's metastore settings, if any, go in ``conf``)
    conf.setdefault(
        "spark.sql.warehouse.dir", str(Path(tempfile.gettempdir()) / "leap-spark-warehouse")
    )
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    for k, v in conf.items():  # a reused session: apply what can change at run time
        if k.startswith("spark.sql.") and spark.conf.isModifiable(k):
            spark.conf.set(k, v)
    return spark


# --- DuckDB SQL → Spark SQL ---------------------------------------------------------------


def _rewrite(node: exp.Expression) -> exp.Expression:
    """Rewrite the DuckDB constructs that sqlglot does not translate as we need."""
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "hash":
        # DuckDB's hash is 64-bit and distinguishes nulls by position; Spark's xxhash64
        # skips null arguments, so add one is-null flag per argument.
        args = list(node.expressions)
        flags = [exp.Is(this=a.copy(), expression=exp.Null()) for a in args]
        return exp.Anonymous(this="xxhash64", expressions=[a.copy() for a in args] + flags)
    if isinstance(node, exp.DayOfWeekIso):
        # ISO day of week (Monday 1 … Sunday 7); Spark's weekday() is Monday 0 … Sunday 6
        return exp.Paren(
            this=exp.Add(
                this=exp.Anonymous(this="weekday", expressions=[node.this.copy()]),
                expression=exp.Literal.number(1),
            )
        )
    if isinstance(node, exp.RegexpFullMatch):
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string:
            pattern = exp.Literal.string(f"^(?:{pattern.this})$")
        else:
            pattern = exp.func(
                "concat", exp.Literal.string("^(?:"), pattern.copy(), exp.Literal.string(")$")
            )
        return exp.RegexpLike(this=node.this.copy(), expression=pattern)
    return node


def _spark(tree: exp.Expression) -> str:
    return tree.transform(_rewrite).sql(dialect="spark")


def to_spark_sql(sql: str) -> str:
    """One DuckDB query (``SELECT``/``WITH``/``FROM …``) as Spark SQL."""
    return _spark(sqlglot.parse_one(sql, read="duckdb"))


# --- types ------------------------------------------------------------------------------------


def _duckdb_type_name(dt) -> str:
    """A Spark data type as the DuckDB type name the shared code expects from DESCRIBE."""
    from pyspark.sql import types as T

    simple = {
        T.StringType: "VARCHAR",
        T.BooleanType: "BOOLEAN",
        T.ByteType: "TINYINT",
        T.ShortType: "SMALLINT",
        T.IntegerType: "INTEGER",
        T.LongType: "BIGINT",
        T.FloatType: "FLOAT",
        T.DoubleType: "DOUBLE",
        T.DateType: "DATE",
        T.TimestampType: "TIMESTAMP WITH TIME ZONE",
        T.TimestampNTZType: "TIMESTAMP",
        T.BinaryType: "BLOB",
    }
    for cls, name in simple.items():
        if isinstance(dt, cls):
            return name
    if isinstance(dt, T.DecimalType):
        return f"DECIMAL({dt.precision},{dt.scale})"
    return dt.simpleString().upper()


def _spark_schema(schema: pa.Schema):
    from pyspark.sql import types as T

    def one(t: pa.DataType):
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return T.StringType()
        if pa.types.is_boolean(t):
            return T.BooleanType()
        if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t):
            return T.IntegerType()
        if pa.types.is_integer(t):
            return T.LongType()
        if pa.types.is_floating(t):
            return T.DoubleType()
        if pa.types.is_date(t):
            return T.DateType()
        if pa.types.is_timestamp(t):
            return T.TimestampType()
        if pa.types.is_null(t):
            return T.StringType()
        raise TypeError(f"no Spark type for Arrow type {t}")

    return T.StructType([T.StructField(f.name, one(f.type), True) for f in schema])


def _nullable_plain(schema: pa.Schema) -> pa.Schema:
    """Every field nullable, text as ``string``, no Spark metadata (as DuckDB writes)."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        fields.append(pa.field(f.name, t, nullable=True))
    return pa.schema(fields)


# --- results ----------------------------------------------------------------------------------


class _Rows:
    """A small result computed on the driver (e.g. ``DESCRIBE``)."""

    def __init__(self, names: list[str], rows: list[tuple]) -> None:
        self.names, self.rows = names, rows

    def fetchall(self) -> list[tuple]:
        return list(self.rows)

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def df(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.names)


class SparkResult:
    """A query result with DuckDB's fetch methods (evaluated when fetched)."""

    def __init__(self, df) -> None:
        self._df = df

    @property
    def dataframe(self):
        """The underlying ``pyspark.sql.DataFrame``."""
        return self._df

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._df.collect()]

    def fetchone(self) -> tuple | None:
        rows = self._df.take(1)
        return tuple(rows[0]) if rows else None

    def to_arrow_table(self) -> pa.Table:
        if hasattr(self._df, "toArrow"):  # Spark ≥ 4.0
            table = self._df.toArrow()
        else:  # pragma: no cover - Spark 3.5
            batches = self._df._collect_as_arrow()
            if batches:
                table = pa.Table.from_batches(batches)
            else:
                table = pa.schema(
                    [pa.field(f.name, _arrow_type(f.dataType)) for f in self._df.schema.fields]
                ).empty_table()
        return table.cast(_nullable_plain(table.schema))

    arrow = to_arrow_table

    def df(self) -> pd.DataFrame:
        return self.to_arrow_table().to_pandas()

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        frame = self.df()
        return {c: frame[c].to_numpy() for c in frame.columns}


def _arrow_type(dt):  # pragma: no cover - Spark 3.5 only
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(dt)


# --- the connection -----------------------------------------------------------------------


_DROP_RE = re.compile(r"^\s*DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(\w+)\s*$", re.I)


class SparkConnection:
    """The part of a DuckDB connection the ingest and panel code uses, on Spark.

    Relations created with ``CREATE [TEMP] TABLE|VIEW name AS …`` become temporary views
    of the session (tables are materialized at once); ``DROP`` removes them; ``close``
    removes every view this connection made and its staging folder (the session stays
    up).  The views keep the shared SQL's names (``chk_students``, ``base``, …), so run one
    stage at a time per session.

    Parameters
    ----------
    spark
        The ``SparkSession``.
    settings
        :class:`SparkSettings` (staging folder, CSV reading).
    """

    def __init__(self, spark, settings: SparkSettings | None = None) -> None:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        self.spark = spark
        self.settings = settings or SparkSettings()
        #: Errors a statement may raise (``pipeline.checks`` maps them to IngestError).
        self.errors: tuple[type[BaseException], ...] = (PySparkException, Py4JError)
        self._views: dict[str, Any] = {}
        self._staging: Path | None = None
        # raw views names are unique per connection: several connections may share a session
        self._prefix = f"c{uuid.uuid4().hex[:8]}_"
        #: True when :func:`open_connection` started the session (stop_session stops it).
        self.owns_session = False

    # -- DuckDB API ----------------------------------------------------------------------------
    def execute(self, sql: str, parameters=None) -> SparkResult | None:
        """Run one or more statements; returns the last query's result (if any)."""
        if parameters:
            raise NotImplementedError("SparkConnection.execute: parameters are not supported")
        result = None
        for part in _split_statements(sql):
            result = self._one(part)
        return result

    def sql(self, sql: str) -> SparkResult:
        return SparkResult(self._query(sqlglot.parse_one(sql, read="duckdb")))

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """A pandas frame as a view (types via Arrow; empty frames keep their schema).

        Frames of more than :data:`REGISTER_VIA_PARQUET_ROWS` rows (the pseudonym map, the
        prior-year rates: one row per student) go through a Parquet file in the staging
        folder rather than inside Spark's tasks.
        """
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if table.num_rows > REGISTER_VIA_PARQUET_ROWS:
            path = self._staging_dir() / f"register-{uuid.uuid4().hex}.parquet"
            pq.write_table(table.cast(_nullable_plain(table.schema)), path)
            self._set_view(name, self.spark.read.parquet(str(path)))
            return
        schema = _spark_schema(table.schema)
        plain = table.to_pandas(types_mapper=None)
        for f in table.schema:
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
                plain[f.name] = plain[f.name].astype(object).where(plain[f.name].notna(), None)
        df = self.spark.createDataFrame(plain, schema=schema)
        self._set_view(name, df)

    def unregister(self, name: str) -> None:
        self._drop(name)

    def close(self) -> None:
        for name in list(self._views):
            self._drop(name)
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def stop_session(self, timeout: float = 120.0) -> None:
        """Close, and stop the Spark session if this connection's opener started it.

        Jobs still running are waited for first (up to ``timeout`` seconds): adaptive
        execution may leave a broadcast running after its query found the other side
        empty, and stopping under it only fills the log with errors.
        """
        self.close()
        if not self.owns_session:
            return
        tracker = self.spark.sparkContext.statusTracker()
        deadline = time.monotonic() + timeout
        while tracker.getActiveJobsIds() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.spark.stop()

    def __enter__(self) -> SparkConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- engine-specific pieces --------------------------------------------------------------
    def source_select(self, src) -> str:
        """A DuckDB-dialect SELECT of a raw extract file: ``__row`` and every column as text.

        The file is read by Spark (all columns as strings) into a view with ``__row``;
        Parquet columns of other types are turned into text by the same expressions
        DuckDB uses (:func:`pipeline.checks._parquet_text_exprs`).
        """
        from pipeline.checks import _parquet_text_exprs, _q

        raw = self._raw_view(src)
        if src.format == "csv":
            cols = ", ".join(_q(c) for c in src.columns)
        else:
            cols = ", ".join(_parquet_text_exprs(src))
        return f"SELECT __row, {cols} FROM {raw}"

    def _raw_view(self, src) -> str:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        path = str(src.path)
        reader = self.spark.read
        if src.format == "csv":
            schema = T.StructType([T.StructField(c, T.StringType(), True) for c in src.columns])
            df = (
                reader.schema(schema)
                .option("header", True)
                .option("enforceSchema", True)
                .option("multiLine", bool(self.settings.csv_multiline))
                .option("quote", '"')
                .option("escape", '"')
                .option("mode", "FAILFAST")
                .option("encoding", "UTF-8")
                .csv(path)
            )
        else:
            df = reader.parquet(path).select(*[_col(c) for c in src.columns])
        # 1-based record number in file order: monotonically_increasing_id is
        # (partition << 33) + position within the partition, and the partitions of one
        # file are its consecutive splits, so add the row counts of earlier partitions.
        mid = df.withColumn("__mid", F.monotonically_increasing_id())
        if df._jdf.rdd().getNumPartitions() <= 1:  # e.g. a multi-line CSV: one task
            numbered = mid.select(
                (F.col("__mid") + F.lit(1)).alias("__row"), *[_col(c) for c in src.columns]
            )
            name = f"{self._prefix}raw_{src.table}"
            self._set_view(name, numbered)
            return name
        part = F.shiftright(F.col("__mid"), 33)
        sizes = sorted(
            (int(r[0]), int(r[1])) for r in mid.groupBy(part.alias("p")).count().collect()
        )
        offsets, total = [], 0
        for p, n in sizes:
            offsets.append((p, total))
            total += n
        off = self.spark.createDataFrame(offsets or [(0, 0)], schema="__p long, __off long")
        numbered = (
            mid.join(F.broadcast(off), part == F.col("__p"), "left")
            .withColumn(
                "__row",
                F.col("__off") + (F.col("__mid") - F.col("__p") * F.lit(1 << 33)) + F.lit(1),
            )
            .select("__row", *[_col(c) for c in src.columns])
        )
        name = f"{self._prefix}raw_{src.table}"
        self._set_view(name, numbered)
        return name

    def _copy(self, query: exp.Expression, target: str) -> None:
        """``COPY (query) TO 'target'``: one Parquet file, rows in the query's order."""
        df = self._query(query)
        staging = self._staging_dir() / f"copy-{uuid.uuid4().hex}"
        df.write.mode("overwrite").option("compression", "zstd").parquet(str(staging))
        try:
            _concat_parts(staging, Path(target))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _staging_dir(self) -> Path:
        if self._staging is None:
            base = self.settings.staging_dir
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix="leap-spark-", dir=base or None))
        return self._staging

    # -- statements ----------------------------------------------------------------------------
    def _one(self, sql: str) -> SparkResult | None:
        m = _DROP_RE.match(sql)
        if m:
            self._drop(m.group(1))
            return None
        if re.match(r"^\s*SET\s", sql, re.I):
            return None  # DuckDB settings
        tree = sqlglot.parse_one(sql, read="duckdb")
        if isinstance(tree, exp.Create):
            kind = str(tree.args.get("kind") or "").upper()
            query = tree.expression.copy()
            if isinstance(query, exp.Query):
                query.set("order", None)  # relations are unordered
            df = self._query(query)
            if kind == "TABLE":
                df = self._materialize(df)
            self._set_view(tree.this.name, df)
            return None
        if isinstance(tree, exp.Describe):
            df = self._query(tree.this)
            rows = [(f.name, _duckdb_type_name(f.dataType)) for f in df.schema.fields]
            return _Rows(["column_name", "column_type"], rows)
        if isinstance(tree, exp.Copy):
            files = tree.args.get("files") or []
            query = tree.this.this if isinstance(tree.this, exp.Subquery) else tree.this
            self._copy(query, files[0].this)
            return None
        return SparkResult(self._query(tree))

    def _materialize(self, df):
        """Compute ``df`` now (so that its errors surface here), per ``materialize``.

        A checkpoint also cuts the lineage: the statements after it plan against a short
        plan, which matters for the long chains of the checks.
        """
        how = self.settings.materialize
        if how == "checkpoint":
            self.spark.sparkContext.setCheckpointDir(str(self.settings.checkpoint_dir))
            return _fresh_ids(df.checkpoint(eager=True))
        if how == "cache":
            from pyspark import StorageLevel

            df = df.persist(StorageLevel.MEMORY_AND_DISK)
            df.count()
            return df
        return _fresh_ids(df.localCheckpoint(eager=True))

    def _expand_star_except(self, tree: exp.Expression) -> exp.Expression:
        """``t.* EXCLUDE (a, b)`` → the named columns of ``t`` (Spark < 4 has no EXCEPT)."""
        for select in list(tree.find_all(exp.Select)):
            items, changed = [], False
            for e in select.expressions:
                star = e.this if isinstance(e, exp.Column) else e
                drop = star.args.get("except_") if isinstance(star, exp.Star) else None
                if not drop:
                    items.append(e)
                    continue
                alias = e.table if isinstance(e, exp.Column) else None
                tables = [
                    t
                    for t in select.find_all(exp.Table)
                    if t.parent_select is select and (alias is None or t.alias_or_name == alias)
                ]
                if len(tables) != 1:
                    raise NotImplementedError(f"cannot expand {e.sql('duckdb')} for Spark")
                dropped = {d.name.lower() for d in drop}
                cols = [
                    c for c in self.spark.table(tables[0].name).columns if c.lower() not in dropped
                ]
                items += [exp.column(c, table=alias, quoted=True) for c in cols]
                changed = True
            if changed:
                select.set("expressions", items)
        return tree

    def _query(self, tree: exp.Expression):
        tree = self._expand_star_except(tree)
        sql = _spark(tree)
        log.debug("spark sql: %s", sql)
        return self.spark.sql(sql)

    def _set_view(self, name: str, df) -> None:
        old = self._views.pop(name, None)
        df.createOrReplaceTempView(name)
        self._views[name] = df
        if old is not None and old.is_cached:
            old.unpersist()

    def _drop(self, name: str) -> None:
        df = self._views.pop(name, None)
        with contextlib.suppress(Exception):
            self.spark.catalog.dropTempView(name)
        if df is not None and df.is_cached:
            df.unpersist()


def _fresh_ids(df):
    """The checkpointed ``df`` with new column identities (Spark 3.5 cannot self-join
    checkpoints that share them, e.g. ``base`` derived from ``sdim`` and joined to it)."""
    return df.select(*[_col(c).alias(c) for c in df.columns])


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _split_statements(sql: str) -> list[str]:
    """Split on ``;`` outside quotes (the shared code never puts ``;`` in literals)."""
    parts, buf, quote = [], [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == ";":
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return [p for p in parts if p.strip()]


def _concat_parts(folder: Path, target: Path, row_group_size: int = 1_000_000) -> None:
    """Concatenate Spark's part files, in part order, into one Parquet file (streamed)."""

    def order(p: Path) -> tuple[int, int]:
        m = re.match(r"part-(\d+)-.*?(?:-c(\d+))?\.", p.name)
        return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, 0)

    parts = sorted(folder.glob("part-*.parquet"), key=order)
    if not parts:  # pragma: no cover - Spark writes a part file even for no rows
        raise RuntimeError(f"{folder}: Spark wrote no Parquet part file")
    schema = _nullable_plain(pq.ParquetFile(parts[0]).schema_arrow)
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for p in parts:
            f = pq.ParquetFile(p)
            for i in range(f.num_row_groups):
                writer.write_table(f.read_row_group(i).cast(schema), row_group_size=row_group_size)
        if all(pq.ParquetFile(p).metadata.num_rows == 0 for p in parts):
            writer.write_table(schema.empty_table())


def open_connection(settings: SparkSettings | None = None, spark=None) -> SparkConnection:
    """A :class:`SparkConnection` on ``spark`` (or a session started from ``settings``).

    Without ``spark``, the active session is reused if there is one; otherwise a session
    is started, and :meth:`SparkConnection.stop_session` stops it.
    """
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
    owns = False
    if spark is None:
        owns = SparkSession.getActiveSession() is None
        spark = start_session(settings)
    con = SparkConnection(spark, settings)
    con.owns_session = owns
    return con
