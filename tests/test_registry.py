"""The registry of estimators and estimands (pipeline/registry.py)."""

from __future__ import annotations

import inspect

import pytest

from pipeline import registry
from pipeline.did.results import EventStudyResult


def test_every_target_resolves_to_a_function():
    for e in registry.ESTIMATORS.values():
        f = e.function
        assert callable(f), e.name
        assert f.__name__ == e.target.split(":")[1]
        assert e.assumptions and all(a.endswith(".") for a in e.assumptions), e.name


def test_labels_are_not_internal_names():
    for e in registry.ESTIMATORS.values():
        assert e.label != e.name
        assert "_" not in e.label, e.label
    with pytest.raises(KeyError, match="unknown estimator 'nope'; registered"):
        registry.label("nope")


def test_designs_and_comparators():
    assert registry.DESIGNS == {"ancova": "matched_ancova", "differences": "matched_stacked"}
    assert registry.design_estimator("ancova").name == "matched_ancova"
    assert registry.other_design("ancova") == "differences"
    assert registry.other_design("differences") == "ancova"
    with pytest.raises(KeyError, match="unknown design"):
        registry.design_estimator("did")
    assert set(registry.COMPARATORS).isdisjoint(registry.DESIGNS.values())
    assert {e.role for e in registry.ESTIMATORS.values()} == {"design", "comparator", "variant"}


def test_estimator_functions_document_their_results():
    # every registered function is an estimator returning a results object (numpydoc)
    for e in registry.ESTIMATORS.values():
        doc = inspect.getdoc(e.function) or ""
        assert "Returns" in doc or "EventStudyResult" in doc or "ATTgt" in doc, e.name
    assert EventStudyResult.__name__ in registry.__doc__


def test_estimands():
    assert set(registry.ESTIMANDS) == {"attendance_rate", "chronic_pp"}
    for e in registry.ESTIMANDS.values():
        assert e.unit == "percentage points"


def test_figure_labels_agree_with_the_registry():
    from pipeline import figures

    for name, label in figures.ESTIMATOR_LABELS.items():
        assert registry.label(name) == label, name


def test_design_variants_follow_the_design():
    assert registry.variants("ancova") == ("matched_ancova_no_ipcw", "matched_ancova_keep_censored")
    assert registry.variants("differences") == (
        "matched_stacked_no_ipcw",
        "matched_stacked_keep_censored",
    )
    for d in registry.DESIGNS:
        for v in registry.variants(d):
            assert registry.estimator(v).role == "variant"
            assert registry.label(v).startswith(registry.design_estimator(d).label)
