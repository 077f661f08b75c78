"""The headline metrics file: at most 25 values, grouped by estimand, taken unchanged
(to six significant digits) from the estimate stage's metrics; the long table holds
every value of metrics.json."""

from __future__ import annotations

import json
import math

import pytest

from pipeline import headline as H
from tests.report_fixtures import build_report_inputs


@pytest.fixture
def metrics(tmp_path):
    rep = build_report_inputs(tmp_path, design="ancova")
    m = json.loads((rep / "metrics.json").read_text())
    m["att"]["wild_bootstrap"] = {"ci_low": 1.25, "ci_high": 3.5, "B": 999}
    m["censoring"] = {"weight_max": 12.345678901, "ipcw": True}
    return m


def _6g(x):
    return float(f"{x:.6g}")


def _leaves(d):
    return [v for g in d.values() for v in g.values()]


def test_headline_takes_the_values_of_metrics_json(metrics):
    h = H.headline(metrics)
    assert set(h) == {"attendance_effect", "chronic_effect", "n", "diagnostics", "truth"}
    assert len(_leaves(h)) <= H.MAX_KEYS
    att = metrics["att"]
    for k in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
        assert h["attendance_effect"][k] == _6g(att[k]), k
    assert h["attendance_effect"]["bootstrap_ci_low"] == 1.25
    assert h["attendance_effect"]["bootstrap_ci_high"] == 3.5
    assert h["chronic_effect"]["estimate"] == _6g(metrics["att_chronic"]["estimate"])
    assert h["n"] == {"treated": metrics["n_treated"], "comparison": metrics["n_comparison"]}
    assert h["diagnostics"]["max_censoring_weight"] == 12.3457  # six significant digits
    assert h["diagnostics"]["pretrend_p_value"] == _6g(metrics["pretrend_test"]["p_value"])
    assert h["truth"]["attendance_effect"] == _6g(metrics["truth"]["att_window"])
    # the interval contains the estimate: the keys were not mixed up
    a = h["attendance_effect"]
    assert a["ci_low"] < a["estimate"] < a["ci_high"]


def test_real_extract_has_no_truth_and_missing_values_are_null(metrics):
    m = dict(metrics, synthetic=False)
    m.pop("truth")
    m["att"] = {k: v for k, v in m["att"].items() if k != "wild_bootstrap"}
    m["att"]["p_value"] = float("nan")
    h = H.headline(m)
    assert "truth" not in h
    assert h["attendance_effect"]["bootstrap_ci_low"] is None
    assert h["attendance_effect"]["p_value"] is None  # NaN is not valid JSON
    json.dumps(h, allow_nan=False)


def test_long_table_holds_every_value(metrics):
    t = H.long_table(metrics)
    assert t["key"].is_unique
    flat = dict(zip(t["key"], t["value"], strict=True))
    assert flat["att.estimate"] == metrics["att"]["estimate"]
    assert flat["att_window"] == " ".join(str(x) for x in metrics["att_window"])
    assert flat["primary_estimator"] == metrics["primary_estimator"]

    def count(d):
        if isinstance(d, dict):
            return sum(count(v) for v in d.values())
        return 1

    assert len(t) == count(metrics)
    assert len(t) > H.MAX_KEYS  # the reason the headline exists


def test_write_is_stable_json(metrics, tmp_path):
    paths = H.write(metrics, tmp_path)
    first = paths["headline"].read_bytes()
    H.write(metrics, tmp_path)
    assert paths["headline"].read_bytes() == first
    back = json.loads(first)
    assert back == json.loads(json.dumps(H.headline(metrics)))
    assert all(v is None or math.isfinite(v) for v in _leaves(back))
    assert paths["long_table"].exists()


def test_too_many_keys_is_an_error(metrics, monkeypatch):
    monkeypatch.setattr(H, "MAX_KEYS", 5)
    with pytest.raises(ValueError, match="more than 5"):
        H.headline(metrics)
