"""The estimate stage's table schemas (:mod:`pipeline.analysis.schemas`) and its outputs.

The schemas are the one list of every table's columns: the estimators' tidy frames must
produce them, the stage must write exactly the outputs ``dvc.yaml`` declares for it, and
the report's required columns are the schemas less the optional ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline import estimate, report
from pipeline.analysis.schemas import (
    ESTIMATE_TABLES,
    EVENT_STUDY_COLUMNS,
    OPTIONAL_COLUMNS,
    required_columns,
)
from pipeline.analysis.tables import tidy_all, truth_comparison
from pipeline.did.results import EventStudyResult

ROOT = Path(__file__).resolve().parents[1]


def _result(name: str, effects: dict[int, float]) -> EventStudyResult:
    e = np.array(sorted(effects), dtype=float)
    return EventStudyResult(
        estimator=name,
        event_time=e,
        estimate=np.array([effects[int(k)] for k in e]),
        vcov=np.diag(np.full(len(e), 0.25)),
        n_treated=np.full(len(e), 40),
    )


def test_tidy_frames_follow_the_event_study_schema():
    a = _result("a", {-2: 0.1, 0: 1.0, 1: 2.0})
    b = _result("b", {1: 3.0, 2: 4.0})
    assert list(a.tidy().columns) == EVENT_STUDY_COLUMNS
    both = tidy_all([a, b])
    assert list(both.columns) == EVENT_STUDY_COLUMNS
    assert both["estimator"].tolist() == ["a"] * 3 + ["b"] * 2
    assert list(tidy_all([]).columns) == EVENT_STUDY_COLUMNS


def test_truth_comparison_follows_its_schema_and_computes_bias_and_coverage():
    r = _result("m", {1: 2.0, 2: 4.0})  # standard errors 0.5
    truth = {"att_window": 3.5, "att_by_event_time": {"1": {"att": 2.5}, "2": {"att": 9.0}}}
    subgroups = pd.DataFrame(columns=ESTIMATE_TABLES["subgroups"])
    tc = truth_comparison({"m": r}, truth, (1, 2), subgroups, "m")
    assert list(tc.columns) == ESTIMATE_TABLES["truth_comparison"]
    by_q = tc.set_index("quantity")
    assert by_q.loc["average 1-2", "bias"] == 3.0 - 3.5
    assert bool(by_q.loc["event time 1", "covered"])  # 2.5 within 2 ± 1.96 * 0.5
    assert not bool(by_q.loc["event time 2", "covered"])  # 9 far outside 4 ± 0.98


def test_required_columns_are_the_schema_less_the_optional_ones():
    for name, cols in ESTIMATE_TABLES.items():
        req = required_columns(name)
        assert req == [c for c in cols if c not in OPTIONAL_COLUMNS.get(name, [])]
    for name, opt in OPTIONAL_COLUMNS.items():
        assert set(opt) <= set(ESTIMATE_TABLES[name]), name
    # the report requires what the schemas say, for every estimate table it reads
    for name in set(report.INPUT_COLUMNS) & set(ESTIMATE_TABLES):
        assert report.INPUT_COLUMNS[name] == required_columns(name)


def test_the_stage_writes_exactly_its_declared_outputs(tmp_path):
    out = {name: pd.DataFrame(columns=cols) for name, cols in ESTIMATE_TABLES.items()}
    out["event_study"] = tidy_all([_result("primary", {1: 1.0}), _result("other", {1: 2.0})])
    out["metrics"] = {"primary_estimator": "primary", "att": {"estimate": 1.0}}
    estimate.write_outputs(out, tmp_path)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    st = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["estimate"]
    declared = sorted(
        next(iter(o)) if isinstance(o, dict) else o
        for kind in ("outs", "metrics", "plots")
        for o in st.get(kind, [])
    )
    assert written == declared
    for name, cols in ESTIMATE_TABLES.items():
        got = pd.read_csv(tmp_path / "reports" / "tables" / f"{name}.csv")
        assert list(got.columns) == cols, name
    plot = pd.read_csv(tmp_path / "reports" / "plots" / "event_study_primary.csv")
    assert plot["estimate"].tolist() == [1.0]  # the primary's rows only
    assert json.loads((tmp_path / "reports" / "metrics.json").read_text())["att"] == {
        "estimate": 1.0
    }
