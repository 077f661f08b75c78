"""Ingest as a library: a raw extract → validated, pseudonymized interim tables.

:func:`run_ingest` is what the ``ingest`` stage (:mod:`pipeline.ingest`) runs and what the
validation study (:mod:`pipeline.analysis.simulation`) runs on each synthetic extract.
The checks are :mod:`pipeline.checks`; the pseudonyms :mod:`pipeline.pseudonym`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd

from pipeline.checks import (
    ValidationResult,
    _lit,
    _q,
    check_reject_rates,
    validate_extract,
)
from pipeline.io import atomic_dir, atomic_path
from pipeline.pseudonym import pseudonymize, resolve_key
from pipeline.scratch import stage_guard

log = logging.getLogger("pipeline.ingest")

INTERIM_DIR = Path("data/interim")
QUALITY_CSV = Path("reports/tables/data_quality.csv")
DEFAULT_MAX_REJECT_RATE = 0.05
INTERIM_TABLES = ("districts", "students", "enrollment", "attendance_monthly", "home_visits")


def _build_id_map(res: ValidationResult, key: bytes) -> int:
    """Hash every distinct raw ``student_id`` of the extract once; table ``idmap``."""
    con = res.con
    parts = [
        f"SELECT student_id FROM chk_{t}"
        for t in res.quarantine
        if "student_id" in res.sources[t].columns
    ]
    ids = con.execute(
        f"SELECT DISTINCT student_id FROM ({' UNION ALL '.join(parts)}) "
        f"WHERE student_id IS NOT NULL ORDER BY student_id"
    ).fetchnumpy()["student_id"]
    ids = [str(s) for s in ids]
    keys = pseudonymize(ids, key)
    idmap = pd.DataFrame({"student_id": ids, "student_key": keys})
    con.register("idmap_df", idmap)
    con.execute("CREATE TABLE idmap AS SELECT * FROM idmap_df")
    con.unregister("idmap_df")
    return len(ids)


def _columns(con, rel: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]


def _select_pseudonymized(con, rel: str, order: str, early: bool = False) -> str:
    """SELECT of ``rel`` with ``student_id`` replaced in place by ``student_key``.

    ``early``: the relation's ``student_id`` already holds the pseudonym (renamed only).
    """
    cols = [c for c in _columns(con, rel) if c != "__row"]
    if "student_id" not in cols:
        return f"SELECT {', '.join(_q(c) for c in cols)} FROM {rel} r ORDER BY {order}"
    if early:
        sel = ", ".join(
            "r.student_id AS student_key" if c == "student_id" else f"r.{_q(c)}" for c in cols
        )
        return f"SELECT {sel} FROM {rel} r ORDER BY {order}"
    sel = ", ".join("m.student_key" if c == "student_id" else f"r.{_q(c)}" for c in cols)
    return (
        f"SELECT {sel} FROM {rel} r LEFT JOIN idmap m ON m.student_id = r.student_id "
        f"ORDER BY {order}"
    )


def _copy(con, sql: str, target: Path) -> None:
    con.execute(
        f"COPY ({sql}) TO {_lit(str(target))} "
        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)"
    )


def run_ingest(
    extract_dir: str | Path,
    interim_dir: str | Path = INTERIM_DIR,
    quality_csv: str | Path = QUALITY_CSV,
    *,
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE,
    environ=None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_dir: str | Path | None = None,
    on_disk: bool | None = None,
    spark=None,
    synthetic: bool = False,
) -> pd.DataFrame:
    """Validate, pseudonymize and write an extract; returns the data-quality counts.

    Parameters
    ----------
    extract_dir
        The extract folder (``data.extract_dir``).
    interim_dir, quality_csv
        Output locations (``data/interim`` and ``reports/tables/data_quality.csv``).
    max_reject_rate
        Largest quarantined share of a table's rows that is tolerated.
    environ
        Environment to read ``LEAP_ID_KEY`` from (``os.environ`` by default).
    memory_limit, threads, temp_dir, on_disk
        DuckDB settings (see :func:`pipeline.checks.validate_extract`).
    spark
        A :class:`pipeline.spark_engine.SparkConnection`: run the stage on Spark (the
        same SQL, transpiled; see ``docs/distributed.md``) instead of DuckDB.

    Raises
    ------
    pipeline.checks.IngestError
        File-level faults, a missing key, a pseudonym collision or a reject rate above
        ``max_reject_rate``.  Nothing is written then.
    """
    extract_dir, interim_dir, quality_csv = Path(extract_dir), Path(interim_dir), Path(quality_csv)
    t0 = time.perf_counter()
    key, source = resolve_key(extract_dir, environ, synthetic=synthetic)
    log.info(
        "pseudonym key: %s",
        "public demo key (synthetic extract)" if source == "demo" else "LEAP_ID_KEY",
    )
    with (
        stage_guard("ingest", [interim_dir, quality_csv], temp_dir),
        validate_extract(
            extract_dir,
            memory_limit=memory_limit,
            threads=threads,
            temp_dir=temp_dir,
            on_disk=on_disk,
            spark=spark,
            pseudonymize_ids=lambda ids: pseudonymize(ids, key),
        ) as res,
    ):
        log.info("validated %s in %.1f s", extract_dir, time.perf_counter() - t0)
        check_reject_rates(res.counts, max_reject_rate)
        early = res.pseudonymized
        n_ids = res.n_ids if early else _build_id_map(res, key)
        log.info("pseudonymized %d distinct student IDs", n_ids)
        con = res.con
        with atomic_path(quality_csv, ".csv") as tmp_csv, atomic_dir(interim_dir) as tmp:
            (tmp / "quarantine").mkdir()
            for t in INTERIM_TABLES:
                sql = _select_pseudonymized(con, res.kept[t], "r.__row", early)
                _copy(con, sql, tmp / f"{t}.parquet")
                log.info("wrote %s.parquet", t)
            for t, rel in res.quarantine.items():
                sql = _select_pseudonymized(con, rel, "r.source_row", early)
                _copy(con, sql, tmp / "quarantine" / f"{t}.parquet")
            res.counts.to_csv(tmp_csv, index=False, lineterminator="\n")
            _write_meta(extract_dir, tmp / "extract_meta.json", synthetic, res.sources)
    log.info("ingest done in %.1f s", time.perf_counter() - t0)
    return res.counts


def _write_meta(extract_dir: Path, target: Path, synthetic: bool, sources: dict) -> None:
    """``extract_meta.json``: whether the extract is synthetic, its truth, dropped columns.

    Later stages read this instead of the raw extract folder, so that a synthetic run can
    compare estimates with the generator's truth and label every output as synthetic.
    ``synthetic`` comes from the configuration (never from a file in the extract); the
    truth is read only then.  ``dropped_columns`` names the extract's extra columns per
    table (names only: their values never leave ingest).
    """
    meta = {
        "synthetic": bool(synthetic),
        "truth": None,
        "dropped_columns": {
            t: list(s.extra_columns) for t, s in sources.items() if s.extra_columns
        },
    }
    truth = extract_dir / "truth.json"
    if synthetic and truth.is_file():
        with open(truth, encoding="utf-8") as fh:
            meta["truth"] = json.load(fh)
    with open(target, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.write("\n")
