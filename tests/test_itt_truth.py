"""The generator's intent-to-treat truth (first attempted visit) and the effect on families
reached as Bloom's adjustment targets it: by hand, and invariants on tiny worlds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pipeline.synth import generate
from pipeline.synth import worlds as wd
from pipeline.synth.effects import completed_truth_for, itt_truth_for, itt_truth_tables
from tests.conftest import small_config

TINY = dict(n_students=2500, n_districts=6, n_program_districts=3)


def test_itt_truth_by_hand_on_four_students():
    """Student 0 attempted at t 3, reached at t 4; student 1 attempted at t 5 and never
    reached (no effect); student 2 attempted and reached at t 4; student 3 never attempted
    (left out although it has an effect in the rows, which the generator never gives)."""
    rows = pd.DataFrame(
        {
            "student": [0, 0, 0, 1, 1, 2, 2, 3],
            "t": [3, 4, 5, 6, 7, 5, 6, 4],
            "n": [20, 20, 10, 20, 20, 10, 10, 20],
            "y0": [10, 12, 5, 18, 15, 8, 9, 10],
            "y1": [10, 16, 6, 18, 15, 9, 9, 20],
        }
    )
    first_attempt = np.array([3, 5, 4, -1])
    first_completed = np.array([4, -1, 4, -1])
    tr = itt_truth_tables(rows, first_attempt, first_completed, (1, 2), (-12, 30))
    e = tr["itt_by_event_time"]
    # e = 0: student 0 (t 3, not yet reached: 0)
    assert e["0"] == {"itt": 0.0, "share_reached": 0.0, "n_attempted": 1}
    # e = 1: student 0 (t 4: 20 points, reached), 1 (t 6: 0, not reached), 2 (t 5: 10)
    assert e["1"]["itt"] == pytest.approx((20 + 0 + 10) / 3)
    assert e["1"]["share_reached"] == pytest.approx(2 / 3)
    # e = 2: student 0 (t 5: 10 points), 1 (t 7: 0), 2 (t 6: 0)
    assert e["2"]["itt"] == pytest.approx(10 / 3)
    assert e["2"]["share_reached"] == pytest.approx(2 / 3)
    assert tr["itt_window"] == pytest.approx((10 + 10 / 3) / 2)
    # Bloom's target: window ITT over the mean share reached
    assert tr["reached_window"] == pytest.approx(tr["itt_window"] / (2 / 3))
    # a window not fully observed has no truth
    tr = itt_truth_tables(rows, first_attempt, first_completed, (1, 5), (-12, 30))
    assert tr["itt_window"] is None and tr["reached_window"] is None


def test_everyone_reached_at_the_first_attempt_itt_equals_att():
    """With every attempt reaching the family, the first attempt is the first completed
    visit: the ITT truth equals the completed-visit truth at every event time, exactly."""
    base = small_config(**TINY)
    cfg = dataclasses.replace(base, program=dataclasses.replace(base.program, contact_rate=1.0))
    tr = generate(cfg).truth
    att, itt = tr["att_by_event_time"], tr["itt_by_event_time"]
    assert set(att) == set(itt)
    for k in att:
        assert itt[k]["itt"] == att[k]["att"]
        assert itt[k]["share_reached"] == (1.0 if int(k) >= 0 else 0.0)
    assert tr["itt_window"] == tr["att_window"] == tr["reached_window"]


@pytest.mark.parametrize("world", [{}, {"family_sd": 0.3, "reach_level": 1.0, "reach_family": 1.0}])
def test_itt_truth_in_a_tiny_world(world):
    """Before the first attempt nobody is reached and nothing changes; after it the ITT is
    diluted by the families not reached (smaller than the effect on the reached); the
    existing completed-visit keys are unchanged."""
    tr = generate(small_config(**TINY, worlds=wd.WorldConfig(**world))).truth
    e = tr["itt_by_event_time"]
    for k, v in e.items():
        if int(k) < 0:
            assert v["itt"] == 0.0 and v["share_reached"] == 0.0
    shares = [e[str(k)]["share_reached"] for k in range(1, 7)]
    assert all(0.4 < s < 1.0 for s in shares)
    assert 0 < tr["itt_window"] < tr["reached_window"]
    assert tr["reached_window"] == pytest.approx(tr["itt_window"] / np.mean(shares))
    assert {"att_window", "att_by_event_time", "subgroups"} <= set(tr)


def test_zero_effect_world_has_zero_itt_truth():
    base = small_config(**TINY)
    cfg = dataclasses.replace(base, effects=dataclasses.replace(base.effects, zero=True))
    tr = generate(cfg).truth
    assert tr["itt_window"] == 0.0 and tr["reached_window"] == 0.0


def _three_students() -> pd.DataFrame:
    """Students a and c first reached at t 4, b attempted at t 5 and never reached."""
    return pd.DataFrame(
        {
            "student_id": ["a", "a", "a", "b", "b", "c", "c"],
            "t": [3, 4, 5, 6, 7, 5, 6],
            "n": [20, 20, 10, 20, 20, 10, 10],
            "y0": [10, 12, 5, 18, 15, 8, 9],
            "y1": [10, 16, 6, 18, 15, 9, 9],
            "first_attempt_t": [3, 3, 3, 5, 5, 4, 4],
            "first_completed_t": [4, 4, 4, -1, -1, 4, 4],
        }
    )


def test_itt_truth_over_some_students_by_hand():
    """``itt_truth_for`` on the four students above, keeping students 0 and 1 only: e = 1
    has student 0 (20 points) and student 1 (0), e = 2 student 0 (10) and student 1 (0)."""
    units = _three_students()
    tr = itt_truth_for(units, ["a", "b"], (1, 2))
    assert tr["itt_by_event_time"]["1"]["itt"] == pytest.approx(10.0)
    assert tr["itt_by_event_time"]["2"]["itt"] == pytest.approx(5.0)
    assert tr["itt_window"] == pytest.approx(7.5)
    assert tr["reached_window"] == pytest.approx(7.5 / 0.5)
    # all three: the generator's table on the same rows
    full = itt_truth_for(units, ["a", "b", "c"], (1, 2))
    assert full["itt_window"] == pytest.approx((10 + 10 / 3) / 2)


def test_itt_truth_over_every_attempted_student_is_the_generators():
    """The extract's per-student potential outcomes reproduce its ITT truth exactly when
    every attempted student is kept (what the study restricts to the matched ones)."""
    ex = generate(small_config(**TINY))
    u = ex.itt_units
    tr = itt_truth_for(u, u["student_id"].unique(), (1, 6))
    assert tr["itt_window"] == ex.truth["itt_window"]
    assert tr["reached_window"] == ex.truth["reached_window"]
    # the raw IDs are the extract's; only attempted students are in it
    visited = set(ex.tables["home_visits"]["student_id"].astype(str))
    assert set(u["student_id"]) == visited
    # a strict subset has its own (different) truth
    half = u["student_id"].unique()[::2]
    assert itt_truth_for(u, half, (1, 6))["itt_window"] != tr["itt_window"]


def test_completed_truth_over_some_students_by_hand():
    """Event time counts from the first completed visit (t 4 for a and c). e = 0: a at t 4,
    100 (16 − 12) / 20 = 20; e = 1: a at t 5, 100 (6 − 5) / 10 = 10, and c at t 5,
    100 (9 − 8) / 10 = 10; e = 2: c at t 6, 0. Student b, never reached, is never in it."""
    u = _three_students()
    assert completed_truth_for(u, ["a", "c"], (0, 1)) == pytest.approx((20 + 10) / 2)
    assert completed_truth_for(u, ["a", "c"], (1, 2)) == pytest.approx((10 + 0) / 2)
    assert completed_truth_for(u, ["a", "b", "c"], (1, 2)) == pytest.approx(5.0)
    assert completed_truth_for(u, ["c"], (1, 2)) == pytest.approx((10 + 0) / 2)
    # a alone is not observed at e = 2: the window's average does not exist
    assert completed_truth_for(u, ["a"], (1, 2)) is None
    assert completed_truth_for(u, ["b"], (0, 1)) is None


def test_completed_truth_over_every_visited_student_is_the_generators():
    """Over every student with a completed visit the matched design's truth is the
    generator's ``att_window``; over a part of them it is that part's own."""
    ex = generate(small_config(**TINY))
    u = ex.itt_units
    ids = u["student_id"].unique()
    assert completed_truth_for(u, ids, (1, 6)) == pytest.approx(ex.truth["att_window"], abs=1e-12)
    visited = u.loc[u["first_completed_t"] >= 0, "student_id"].unique()
    assert completed_truth_for(u, visited, (1, 6)) == pytest.approx(
        ex.truth["att_window"], abs=1e-12
    )
    assert completed_truth_for(u, visited[::2], (1, 6)) != pytest.approx(ex.truth["att_window"])


def test_matched_truths_by_row_kind():
    """``matched_truths``: the matched designs' rows get the effect over the treated
    students of the matched sets (a and c: 5.0 over event times 1-2, by hand above), even
    where ``b`` serves as a comparison student; the attempt rows keep their own truth; the
    comparators, whose treated group is not the matched one, get NaN; without the
    potential outcomes every row is NaN."""
    from pipeline.analysis.simulation import matched_truths
    from pipeline.validation.extras import ITT_UNITS

    rows = pd.DataFrame(
        {
            "estimator": ["matched_ancova", "matched_stacked", "twfe", "itt_first_attempt"],
            "truth": [9.0, 9.0, 9.0, 4.0],
        }
    )
    matches = pd.DataFrame(
        {"student_key": ["a", "b", "c", "b"], "role": ["treated", "comparison", "treated",
                                                      "comparison"]}
    )  # fmt: skip
    got = matched_truths(rows, {ITT_UNITS: _three_students()}, matches, (1, 2))
    assert got.tolist()[:2] == [pytest.approx(5.0), pytest.approx(5.0)]
    assert np.isnan(got.iloc[2]) and got.iloc[3] == 4.0
    assert matched_truths(rows, {}, matches, (1, 2)).isna().all()
