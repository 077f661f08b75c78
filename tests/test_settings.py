"""The typed configuration (pipeline/settings.py): params.yaml checked before any work."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline import registry
from pipeline.config import ConfigError
from pipeline.settings import (
    STATE_MIN_COUNT,
    STATE_MIN_DENOMINATOR,
    Settings,
    SettingsError,
    load_settings,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params() -> dict:
    with open(ROOT / "params.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def with_value(params: dict, path: str, value) -> dict:
    p = copy.deepcopy(params)
    *parents, key = path.split(".")
    d = p
    for k in parents:
        d = d.setdefault(k, {})
    d[key] = value
    return p


def problem(params: dict) -> str:
    with pytest.raises(SettingsError) as info:
        parse_settings(params)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def test_project_params_are_valid_and_typed():
    s = load_settings(ROOT / "params.yaml")
    assert isinstance(s, Settings)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    # every value of the file arrives unchanged (lists as tuples where typed so)
    assert s.estimate.alpha == raw["estimate"]["alpha"]
    assert list(s.estimate.att_window) == raw["estimate"]["att_window"]
    assert s.match.caliper == raw["match"]["caliper"]
    assert s.disclosure.min_count == raw["disclosure"]["min_count"]
    assert s.validate_section.n_reps == raw["validate"]["n_reps"]
    assert s.synthesize.sizes["state"].n_students == raw["synthesize"]["sizes"]["state"]["n_students"]
    # the dump round-trips to the file's own sections and keys
    dumped = s.model_dump(by_alias=True, exclude_unset=True)
    assert set(dumped) == set(raw)
    for name, sec in raw.items():
        assert set(dumped[name]) == set(sec), name


# issue 21 item 7: each of these was accepted before; each must name key, value and rule
@pytest.mark.parametrize(
    ("path", "value", "expect"),
    [
        ("estimate.alpha", 1.5, "estimate.alpha = 1.5: Input should be less than 1 (allowed: > 0 and < 1)"),
        ("estimate.bootstrap_draws", -5, "estimate.bootstrap_draws = -5: Input should be greater than or equal to 1 (allowed: >= 1)"),
        ("estimate.att_window", [6, 1], "estimate.att_window = [6, 1]: the first event time must not be after the second"),
        ("match.caliper", "abc", "match.caliper = 'abc': Input should be a valid number (allowed: > 0 or null)"),
        ("quality.max_reject_rate", 1.2, "quality.max_reject_rate = 1.2: Input should be less than or equal to 1 (allowed: >= 0 and <= 1)"),
        ("disclosure.min_count", 1, "disclosure.min_count = 1: Input should be greater than or equal to 6 (allowed: >= 6)"),
        ("disclosure.min_denominator", 19, "disclosure.min_denominator = 19: Input should be greater than or equal to 20 (allowed: >= 20)"),
    ],
)
def test_issue21_bad_values_rejected_with_key_value_and_rule(params, path, value, expect):
    assert problem(with_value(params, path, value)) == expect


def test_disclosure_may_be_raised_not_lowered(params):
    s = parse_settings(with_value(with_value(params, "disclosure.min_count", 11),
                                  "disclosure.min_denominator", 50))
    assert (s.disclosure.min_count, s.disclosure.min_denominator) == (11, 50)
    assert (STATE_MIN_COUNT, STATE_MIN_DENOMINATOR) == (6, 20)
    for k, v in (("min_count", 5), ("min_denominator", 19)):
        with pytest.raises(SettingsError, match=rf"disclosure\.{k} = {v}"):
            parse_settings(with_value(params, f"disclosure.{k}", v))


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("estimate.typo", 1, "estimate.typo = 1: unknown key (allowed here: seed, att_window"),
        ("bogus", {"x": 1}, "bogus = {'x': 1}: unknown key (allowed here: data, synthesize"),
        ("synthesize.sizes.default.zz", 3, "synthesize.sizes.default.zz = 3: unknown key (allowed here: n_students, n_districts, n_program_districts)"),
        ("validate.n_rep", 3, "validate.n_rep = 3: unknown key"),
        ("estimate.design", "did", "estimate.design = 'did': Input should be 'ancova' or 'differences'"),
        ("estimate.comparators", ["twfe", "foo"], "estimate.comparators[1] = 'foo': Input should be"),
        ("estimate.robustness.ratios", [1, 0], "estimate.robustness.ratios[1] = 0: Input should be greater than or equal to 1"),
        ("estimate.att_window", [1, 20], "estimate: att_window [1, 20] must lie within event_window [-6, 12]"),
        ("estimate.reference", [0], "estimate: reference [0]: event times [0] must be before the visit"),
        ("match.ratio", True, "match.ratio = True: Input should be a valid integer"),
        ("match.window", [2, 18], "match: window [2, 18] must contain event time 0"),
        ("match.pool", "anywhere", "match.pool = 'anywhere': Input should be 'same_district'"),
        ("panel.memory_limit", "lots", "panel.memory_limit = 'lots': String should match pattern"),
        ("panel.threads", 0, "panel.threads = 0: Input should be greater than or equal to 1"),
        ("ingest.engine", "pandas", "ingest.engine = 'pandas': Input should be 'duckdb' or 'spark'"),
        ("spark.materialize", "checkpoint", "spark: materialize: checkpoint needs checkpoint_dir"),
        ("synthesize.scale", "huge", "synthesize: scale 'huge' must be one of sizes: ['default', 'state']"),
        ("synthesize.school_years", ["2020-21", "2022-23"], "synthesize.school_years = ['2020-21', '2022-23']: school years must be consecutive"),
        ("synthesize.program.mode_shares", {"in_person": 0.5}, "synthesize.program.mode_shares = {'in_person': 0.5}: shares must add up to 1"),
        ("synthesize.program.start_month", "2021-13", "(allowed: a month YYYY-MM)"),
        ("validate.scenarios", ["x"], "validate.scenarios[0] = 'x': Input should be 'no_dip'"),
        ("synthesize.worlds.referral", "gut", "synthesize.worlds.referral = 'gut': Input should be 'recent'"),
        ("synthesize.worlds.exit_base", 1.5, "synthesize.worlds.exit_base = 1.5: Input should be less than 1"),
        ("synthesize.worlds.staggered_months", 2.5, "synthesize.worlds.staggered_months = 2.5: Input should be a valid integer"),
        ("synthesize.worlds.shocks", 1.0, "synthesize.worlds.shocks"),
        ("validate.match", {"ratio": 0}, "validate.match.ratio = 0: Input should be greater than or equal to 1"),
        ("report.dpi", 10, "report.dpi = 10: Input should be greater than or equal to 72"),
    ],
)
def test_bad_values_and_unknown_keys_rejected(params, path, value, fragment):
    assert fragment in problem(with_value(params, path, value))


def test_every_problem_is_listed_at_once(params):
    p = with_value(with_value(params, "estimate.alpha", 2), "match.caliper", -1)
    with pytest.raises(SettingsError) as info:
        parse_settings(p)
    assert [q.split(" = ")[0] for q in info.value.problems] == ["match.caliper", "estimate.alpha"]
    assert str(info.value).startswith("params.yaml: 2 invalid values")
    assert isinstance(info.value, ConfigError)  # stages' existing handlers catch it


def test_load_settings_names_the_file(tmp_path, params):
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(with_value(params, "estimate.alpha", 1.5)), encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"^{f}: 1 invalid value"):
        load_settings(f)
    f.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(f)


def test_absent_keys_take_the_library_defaults():
    s = parse_settings({})
    assert s.estimate.design == "ancova"
    assert s.disclosure.min_count == STATE_MIN_COUNT
    assert s.estimate.comparators == registry.COMPARATORS


def test_primary_design_comes_from_params(params):
    assert parse_settings(params).estimate.primary.name == registry.DESIGNS[
        params["estimate"]["design"]
    ]
    other = with_value(params, "estimate.design", "differences")
    assert parse_settings(other).estimate.primary.name == "matched_stacked"


def test_settings_are_frozen(params):
    s = parse_settings(params)
    with pytest.raises(Exception, match="frozen"):
        s.estimate.alpha = 0.1


def test_sections_build_the_library_objects(params):
    """Each section's keys are exactly the fields of the object its stage builds."""
    import dataclasses

    from pipeline.disclosure import Rules
    from pipeline.matching.riskset import RiskSetSpec
    from pipeline.spark_engine import SparkSettings
    from pipeline.synth.config import SynthConfig

    s = parse_settings(params)
    spec = RiskSetSpec(**s.match.spec_kwargs())
    assert spec.window == tuple(params["match"]["window"])
    assert spec.caliper == params["match"]["caliper"] and spec.seed == params["match"]["seed"]
    assert set(s.match.spec_kwargs()) == {f.name for f in dataclasses.fields(RiskSetSpec)}
    assert s.match.paths()["love_plot"] == params["match"]["love_plot"]
    spark = SparkSettings(**s.spark.kwargs())
    assert spark.conf == params["spark"]["conf"]
    assert set(s.spark.kwargs()) == {f.name for f in dataclasses.fields(SparkSettings)}
    assert Rules(**s.disclosure.model_dump()) == Rules(6, 20)
    synth = SynthConfig.from_params(s.synthesize.model_dump())
    assert synth == SynthConfig.from_params(params["synthesize"])
    flat = s.estimate.flat()
    assert flat["placebo_shift"] == params["estimate"]["robustness"]["placebo_shift"]
    assert "robustness" not in flat
    assert set(s.panel.duckdb_kwargs()) | {"engine", *s.panel.PATHS} == set(
        type(s.panel).model_fields
    )


def test_one_section_checked_alone():
    from pipeline.settings import MatchSettings, ValidateSettings, section_settings

    m = section_settings("match", {"ratio": 2, "window": [-6, 9]})
    assert isinstance(m, MatchSettings) and m.window == (-6, 9) and m.caliper == 0.2
    assert isinstance(section_settings("validate", {"n_reps": 3}), ValidateSettings)
    with pytest.raises(SettingsError, match=r"match\.ratoi = 2: unknown key"):
        section_settings("match", {"ratoi": 2})
