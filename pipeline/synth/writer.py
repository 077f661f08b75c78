"""Write a synthetic extract to a folder, in CSV or Parquet, monthly or daily form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.io import _json_default, atomic_dir
from pipeline.synth.faults import PLANT_SCHOOL, plant_daily_faults, plant_faults
from pipeline.synth.generator import SyntheticExtract


def _arrow(df: pd.DataFrame) -> pa.Table:
    """Arrow table with text as strings, flags as booleans and counts as int32."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:
        if pa.types.is_integer(f.type):
            fields.append(pa.field(f.name, pa.int32()))
        elif pa.types.is_boolean(f.type):
            fields.append(f)
        else:
            fields.append(pa.field(f.name, pa.string()))
    return table.cast(pa.schema(fields))


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "csv":
        pacsv.write_csv(
            table,
            path.with_suffix(".csv"),
            write_options=pacsv.WriteOptions(quoting_style="needed"),
        )
    else:
        pq.write_table(table, path.with_suffix(".parquet"), compression="zstd")


def _daily_chunks(extract: SyntheticExtract, seed: int):
    """Yield the daily form month by month: each membership row becomes its school days,
    with exactly ``days_present`` of them marked present (chosen at random)."""
    src = extract.daily_source
    monthly = _arrow(extract.tables["attendance_monthly"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    t_all = src["t"].to_numpy()
    months = monthly.column("month")
    for t in np.unique(t_all):
        sel = np.flatnonzero(t_all == t)
        ords = extract.instructional_days[int(t) // 10]
        month = months[int(sel[0])].as_py()
        m0 = np.datetime64(month + "-01").astype(np.int64)
        n = src["n"].to_numpy()[sel]
        k = src["k"].to_numpy()[sel]
        entry = src["entry"].to_numpy()[sel]
        a = np.searchsorted(ords, np.maximum(entry, m0), side="left")
        total = int(n.sum())
        grp = np.repeat(np.arange(sel.size), n)
        offset = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
        day = ords[np.repeat(a, n) + offset]
        order = np.lexsort((rng.random(total), grp))
        # rank of each day's random key within its row: sorted by (row, key)
        rank = np.empty(total, dtype=np.int64)
        rank[order] = offset
        present = rank < np.repeat(k, n)
        uniq, inv = np.unique(day, return_inverse=True)
        labels = pa.array(np.datetime_as_string(uniq.astype("datetime64[D]"), unit="D"))
        idx = pa.array(np.repeat(sel, n))
        yield pa.table(
            {
                "student_id": monthly.column("student_id").take(idx),
                "district_code": monthly.column("district_code").take(idx),
                "school_code": monthly.column("school_code").take(idx),
                "date": labels.take(pa.array(inv)),
                "present": pa.array(present, pa.bool_()),
            }
        )


def write_extract(
    extract: SyntheticExtract,
    out_dir: str | Path,
    *,
    fmt: str = "csv",
    attendance_form: str = "monthly",
    faults_per_kind: int = 0,
    seed: int = 0,
) -> None:
    """Write every contract table and ``truth.json`` to ``out_dir`` (atomically)."""
    tables = dict(extract.tables)
    truth = dict(extract.truth)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))
    tables, expected = plant_faults(tables, faults_per_kind, rng, attendance_form)
    with atomic_dir(out_dir) as tmp:
        for name, df in tables.items():
            if name == "attendance_monthly" and attendance_form == "daily":
                continue
            _write_table(_arrow(df), tmp / name, fmt)
        if attendance_form == "daily":
            expected.update(plant_daily_faults(faults_per_kind))
            _write_daily(extract, tmp / "attendance_daily", fmt, seed, faults_per_kind)
        truth["attendance_form"] = attendance_form
        truth["format"] = fmt
        truth["planted_faults"] = expected
        with open(tmp / "truth.json", "w", encoding="utf-8") as fh:
            json.dump(truth, fh, indent=2, sort_keys=True, default=_json_default)
            fh.write("\n")


def _write_daily(extract: SyntheticExtract, path: Path, fmt: str, seed: int, k: int) -> None:
    schema = pa.schema(
        [
            ("student_id", pa.string()),
            ("district_code", pa.string()),
            ("school_code", pa.string()),
            ("date", pa.string()),
            ("present", pa.string() if k > 0 else pa.bool_()),
        ]
    )
    writer = None
    try:
        if fmt == "csv":
            writer = pacsv.CSVWriter(path.with_suffix(".csv"), schema)
        else:
            writer = pq.ParquetWriter(path.with_suffix(".parquet"), schema, compression="zstd")
        for chunk in _daily_chunks(extract, seed):
            if k > 0:
                chunk = chunk.set_column(
                    4,
                    "present",
                    pa.array(
                        np.where(chunk["present"].to_numpy(zero_copy_only=False), "true", "false"),
                        pa.string(),
                    ),
                )
            writer.write_table(chunk.cast(schema))
        if k > 0:
            s = extract.tables["attendance_monthly"].iloc[:1]
            sid, dc = s["student_id"].iloc[0], s["district_code"].iloc[0]
            saturdays = np.datetime64("2021-01-02") + 7 * np.arange(k)
            weekdays = np.busday_offset("2021-02-01", np.arange(k))
            rows = []
            for i in range(k):
                rows.append((sid, dc, PLANT_SCHOOL, str(saturdays[i]), "true"))
                rows.append((sid, dc, PLANT_SCHOOL, str(weekdays[i]), "perhaps"))
                rows.append((f"Z{i:09d}", dc, PLANT_SCHOOL, "2021-03-01", "true"))
            cols = list(zip(*rows, strict=True))
            writer.write_table(
                pa.table(
                    {
                        n: pa.array(list(c), pa.string())
                        for n, c in zip(schema.names, cols, strict=True)
                    }
                )
            )
    finally:
        if writer is not None:
            writer.close()
