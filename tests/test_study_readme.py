"""The committed studies' README writer (benchmarks/study_readme.py): the table that judges
the completed-visit rows against the effect on the visited students the design matched."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sr():
    spec = importlib.util.spec_from_file_location(
        "study_readme", ROOT / "benchmarks" / "study_readme.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _table(**extra) -> pd.DataFrame:
    base = {
        "scenario": ["dip", "dip"],
        "estimator": ["matched_ancova", "itt_first_attempt"],
        "n_reps": [100, 100],
        "truth_mean": [7.5, 5.7],
        "bias": [-0.33, -0.08],
        "sd_error": [0.5, 0.5],
        "coverage": [0.91, 0.96],
    }
    return pd.DataFrame({**base, **extra})


def test_matched_table_needs_the_matched_truth(sr):
    assert sr.matched_table(_table(), sr.LABELS) == []
    nan = float("nan")
    assert sr.matched_table(_table(truth_matched_mean=[nan, nan], bias_matched=[nan, nan],
                                   sd_error_matched=[nan, nan], coverage_matched=[nan, nan]),
                            sr.LABELS) == []  # fmt: skip


def test_matched_table_rows(sr):
    v = _table(
        truth_matched_mean=[7.28, 5.7],
        bias_matched=[-0.12, -0.08],
        sd_error_matched=[0.4, 0.5],
        coverage_matched=[0.95, 0.96],
    )
    lines = sr.matched_table(v, sr.LABELS)
    rows = [x for x in lines if x.startswith("| dip")]
    # the attempt row, whose truth is already the matched one, is left out
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == sr.LABELS["matched_ancova"]
    # truths, bias with MC SE sd/sqrt(n), bias against the matched students, coverages
    assert cells[2:] == ["7.50", "7.28", "-0.33 (0.05)", "-0.12 (0.04)", "91%", "95%"]


def test_shared_shocks_target_lines_add_the_matched_students_coverage(sr):
    v = pd.DataFrame(
        {
            "scenario": ["shared_shocks"],
            "estimator": ["matched_ancova_district_wild"],
            "n_reps": [100],
            "truth_mean": [7.35],
            "truth_matched_mean": [7.10],
            "bias": [-0.45],
            "coverage": [0.88],
            "coverage_matched": [0.94],
            "se_ratio": [1.02],
        }
    )
    verdicts = pd.DataFrame(columns=["design", "verdict", "scenario"])
    (line,) = sr.inference_targets(v, verdicts)
    assert "coverage 88%" in line and "**not met**" in line
    assert line.endswith("(for reference, not the target: of the effect on the visited students the design matched, 94%).")
    # without the matched students' truth the line is the old one
    (old,) = sr.inference_targets(
        v.drop(columns=["truth_matched_mean", "coverage_matched"]), verdicts
    )
    assert old.endswith("**not met**.")
