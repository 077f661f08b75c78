"""Reading panel columns with Arrow's buffers released early gives pandas' own read."""

import pandas as pd

from pipeline.outputs import PanelAccess, read_panel_columns
from tests.conftest import small_config
from tests.panel_factory import build_panel


def test_read_panel_columns_is_pandas_read(tmp_path):
    panel = build_panel(small_config())[0]
    path = tmp_path / "panel.parquet"
    panel.to_parquet(path, index=False, row_group_size=5_000)
    cols = ["student_key", "school_month", "grade_band", "first_visit_school_month",
            "prior_year_rate", "frl", "attendance_rate"]  # fmt: skip
    want = pd.read_parquet(path, columns=cols)
    assert want["first_visit_school_month"].isna().any()  # nulls survive the same way
    got = read_panel_columns(path, cols)
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(PanelAccess(path).columns(cols), want)
