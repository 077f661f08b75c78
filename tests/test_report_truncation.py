"""What the report says about truncating the censoring weights comes from the setting the
estimate stage records (``estimate.ipcw_truncate``, in metrics ``censoring.truncate``),
never from typed text: no truncation is the default."""

from __future__ import annotations

import re

from pipeline.reporting import caveats as cv
from pipeline.reporting.render import TEMPLATES


def test_the_sentence_follows_the_setting():
    assert cv.truncation({"truncate": [None, None], "truncated_rows": 0}) == (
        "The censoring weights are not truncated.", False)
    assert cv.truncation({"truncate": [0.01, 0.99], "truncated_rows": 12}) == (
        "The censoring weights are truncated at the 1st and 99th percentiles of the "
        "uncensored weights (12 rows truncated).", True)
    text, on = cv.truncation({"truncate": [None, 0.995]})
    assert on and "at the 99.5th percentile of" in text
    assert "at the 2nd and 3rd percentiles" in cv.truncation({"truncate": [0.02, 0.03]})[0]
    assert "at the 11th and 12th percentiles" in cv.truncation({"truncate": [0.11, 0.12]})[0]
    assert cv.truncation({"weight_max": 3.0}) is None  # not recorded: nothing said


def test_the_uncertainty_caveat_says_it():
    m = {"att": {}, "design_settings": {"cluster": "school_code"},
         "censoring": {"weight_max": 434.6, "weight_mean": 1.1, "truncate": [None, None]}}
    c = cv.inference_caveat(m)
    assert c.text.endswith("The largest censoring weight is 434.6 (mean 1.10). "
                           "The censoring weights are not truncated.")
    m["censoring"]["truncate"] = [0.01, 0.99]
    assert "truncated at the 1st and 99th percentiles" in cv.inference_caveat(m).text
    del m["censoring"]["truncate"]
    assert "truncat" not in cv.inference_caveat(m).text


def test_no_typed_sentence_about_truncation_in_the_templates():
    for p in TEMPLATES.iterdir():
        text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", p.read_text(encoding="utf-8"), flags=re.S)
        assert not re.search(r"truncat|trimm|percentile", text, flags=re.I), p.name
