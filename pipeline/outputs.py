"""Readers of the stages' outputs, for the stages that consume them, the report's helpers,
the validation study and the notebooks.

A stage never imports another stage (``tests/test_architecture.py``): what a later stage
needs from an earlier one's outputs — where they are, how to read them economically —
lives here.  The paths are relative to the project root (``docs/interfaces.md``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.matching.riskset import PANEL_MATCH_COLUMNS

#: The ingest stage's folder and the extract's description (synthetic or not, truth).
INTERIM_DIR = Path("data/interim")
EXTRACT_META = INTERIM_DIR / "extract_meta.json"
QUARANTINE_DIR = INTERIM_DIR / "quarantine"
#: The panel stage's and the match stage's outputs.
PANEL = Path("data/processed/panel.parquet")
MATCHED = Path("data/processed/matched.parquet")
BALANCE = Path("reports/tables/balance.csv")
#: Where the stages write their tables and the estimate stage its metrics.
TABLES_DIR = Path("reports/tables")
METRICS = Path("reports/metrics.json")


def read_panel_for_matching(path: str | os.PathLike) -> pd.DataFrame:
    """The panel columns matching needs, text columns dictionary-encoded (categorical)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: panel not found (run `python -m pipeline.panel`)")
    names = pq.ParquetFile(path).schema_arrow.names
    missing = [c for c in PANEL_MATCH_COLUMNS if c not in names]
    if missing:
        raise KeyError(f"{path}: missing column(s) for matching: {', '.join(missing)}")
    pf = pq.ParquetFile(path)
    text = [
        c
        for c in PANEL_MATCH_COLUMNS
        if pa.types.is_string(pf.schema_arrow.field(c).type)
        or pa.types.is_large_string(pf.schema_arrow.field(c).type)
    ]
    # Row group by row group, text as dictionaries (pandas categoricals): the state-scale
    # panel (~15 million rows) then takes ~1 GB in memory instead of several.
    parts = []
    for i in range(pf.num_row_groups):
        t = pf.read_row_group(i, columns=PANEL_MATCH_COLUMNS)
        for c in text:
            j = t.schema.get_field_index(c)
            t = t.set_column(j, c, pc.dictionary_encode(t.column(j)))
        parts.append(t.to_pandas())
        del t
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PANEL_MATCH_COLUMNS)
    del parts
    for c in text:  # unify the categories across row groups
        if not isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype("category")
    df["first_visit_school_month"] = df["first_visit_school_month"].astype("Float64")
    pa.default_memory_pool().release_unused()  # give Arrow's buffers back to the system
    return df


def read_panel_rows(path: str | os.PathLike, keys) -> pd.DataFrame:
    """All panel columns of the students in ``keys`` (nullable dtypes)."""
    keys = sorted(set(map(str, keys)))
    if not keys:
        return pd.read_parquet(path, dtype_backend="numpy_nullable").iloc[0:0]
    return pd.read_parquet(
        path, filters=[("student_key", "in", keys)], dtype_backend="numpy_nullable"
    )


def read_panel_columns(path: str | os.PathLike, cols: list[str]) -> pd.DataFrame:
    """Columns ``cols`` of the panel, as ``pd.read_parquet(path, columns=cols)`` gives them
    (the same dtypes and values), with each column's Arrow buffers released as soon as it
    is converted (``self_destruct``): the read then peaks near the data frame's size
    rather than the frame's plus the Arrow table's (state scale: 4.2 GB, not 5.5 GB)."""
    table = pq.read_table(path, columns=list(cols))
    df = table.to_pandas(self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    return df


def read_extract_meta(path: str | os.PathLike = EXTRACT_META) -> dict:
    """``extract_meta.json`` (ingest): ``{"synthetic": bool, "truth": dict | None}``;
    an empty dict when the file is absent (an extract ingested before it was written)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


class PanelAccess:
    """The panel, read by column and by student as each step needs it.

    Built from a data frame (tests, notebooks) or from the Parquet path (the stage): at
    state scale the whole panel is never held in memory with all its columns; matching
    reads its columns once (text as categoricals), the estimators read the rows of the
    students they use.
    """

    def __init__(self, source: pd.DataFrame | str | Path):
        self._df = source if isinstance(source, pd.DataFrame) else None
        self._path = None if self._df is not None else Path(source)
        self._match: pd.DataFrame | None = None

    def for_matching(self) -> pd.DataFrame:
        if self._df is not None:
            return self._df
        if self._match is None:
            self._match = read_panel_for_matching(self._path)
        return self._match

    def rows(self, keys) -> pd.DataFrame:
        keys = pd.Index(pd.unique(pd.Series(list(keys), dtype=object)))
        if self._df is not None:
            return self._df[self._df["student_key"].isin(keys)]
        return read_panel_rows(self._path, keys)

    def columns(self, cols: list[str]) -> pd.DataFrame:
        if self._df is not None:
            return self._df[cols]
        return read_panel_columns(self._path, cols)
