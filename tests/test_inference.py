"""School clustering and the district-level wild cluster bootstrap check."""

import warnings

import numpy as np
import pytest

from pipeline.censoring import ipcw_weights
from pipeline.clusters import add_home_clusters, home_clusters
from pipeline.did.ancova import matched_ancova
from pipeline.did.wild import FEW_CLUSTERS, WEBB_POINTS, choose_weights, draw_weights
from pipeline.inference import DISTRICT, SCHOOL, district_wild_check
from pipeline.matching.riskset import RiskSetSpec, riskset_match, stack_panels
from tests.conftest import small_config
from tests.panel_factory import build_panel


def test_auto_weights_are_webb_for_few_clusters():
    assert choose_weights(5) == "webb" and choose_weights(FEW_CLUSTERS) == "rademacher"
    assert choose_weights(5, "rademacher") == "rademacher"
    few = draw_weights(5, B=50, seed=1, weights="auto")
    assert np.isin(few, WEBB_POINTS).all() and not np.isin(few, [-1.0, 1.0]).all()
    many = draw_weights(30, B=50, seed=1, weights="auto")
    assert np.isin(many, [-1.0, 1.0]).all()


@pytest.fixture(scope="module")
def matched():
    panel, _, _ = build_panel(small_config())
    spec = RiskSetSpec()
    res = riskset_match(panel, spec)
    m = stack_panels(panel, res.matches, spec.window)
    m = add_home_clusters(m, home_clusters(panel))
    return m.assign(ipcw=ipcw_weights(m)[0].to_numpy())


def test_school_clusters_nest_students_and_sets(matched):
    assert matched.groupby("student_key")[SCHOOL].nunique().max() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_student = matched_ancova(matched, yname="attendance_rate", cluster="student_key")
        by_school = matched_ancova(matched, yname="attendance_rate", cluster=SCHOOL)
    a, b = by_student.average((1, 6)), by_school.average((1, 6))
    assert a.estimate == pytest.approx(b.estimate)
    assert by_school.info["n_clusters"] == matched[SCHOOL].nunique()
    assert by_school.info["n_clusters"] < by_student.info["n_clusters"]


def test_district_wild_check(matched):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = district_wild_check(matched, B=999, seed=3).iloc[0]
    G = matched[DISTRICT].nunique()
    assert row["clusters"] == G and row["weights"] == "webb"
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    # coarser clusters, fewer of them: the interval is wider than the school-clustered one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        school = matched_ancova(matched, yname="attendance_rate", cluster=SCHOOL).average((1, 6))
    assert row["ci_high"] - row["ci_low"] > school.ci_high - school.ci_low
