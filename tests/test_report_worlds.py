"""The stress-test verdicts as the report prints them, from the verdicts' basis columns.

* The verdicts' rules write which rule decided each verdict (``verdict_basis``, the
  informative diagnostic that fires most often and its rate, what would be needed), and
  the reason in words is composed from those columns.
* The first page has one line per kind of verdict, read from the columns of a hand-made
  table (its ``reason`` text is never read); the appendix gives each world's reason.
* A table scored before the columns existed is re-scored from its own rates by the same
  rules; when that does not give its verdicts, the report stops with a message naming
  the file, the column and the command that rescores it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.reporting import caveats as cv
from pipeline.reporting import worlds
from pipeline.reporting.context import verdict_list
from pipeline.reporting.inputs import ReportInputError, _with_basis
from pipeline.validation import verdicts as vd
from tests.report_fixtures import verdict_rows

#: A hand-made verdict table: every kind of verdict, two worlds caught by different
#: diagnostics; the reason column holds text the report must not print.
HAND = pd.DataFrame(
    [
        # scenario, world, n_reps, bias, coverage, bracketing, verdict, basis,
        # top diagnostic, its rate, needed
        ("dip", "dip (default)", 40, 0.05, 0.95, 0.3, "valid", "targets_met",
         "attrition", 0.07, ""),
        ("reachability", "reachability", 40, -0.1, 0.94, 0.2, "valid", "targets_met",
         "pretrend", 0.1, ""),
        ("level_referral", "level referral", 40, -1.1, 0.39, 0.0, "caught",
         "diagnostic_fires", "pretrend", 0.926829, ""),
        ("year_to_date_referral", "year-to-date referral", 40, -1.7, 0.1, 0.0, "caught",
         "diagnostic_fires", "pretrend", 1.0, ""),
        ("attrition", "attrition", 40, -0.9, 0.7, 0.1, "caught", "diagnostic_fires",
         "attrition", 0.85, ""),
        ("selection_on_gains", "selection on gains", 40, 0.8, 0.6, 0.93, "bracketed",
         "bracketed", "pretrend", 0.2, ""),
        ("staggered_start", "staggered start", 40, -0.58, 0.83, 0.1, "not identified",
         "design_falls_short", "attrition", 0.12, ""),
        ("unrecorded_shocks", "selection on unrecorded shocks", 40, 1.2, 0.5, 0.2,
         "not identified", "needs_unrecorded_data", "pretrend", 0.06,
         "a record of the family's circumstances"),
        ("realistic", "realistic combination", 0, np.nan, np.nan, np.nan, "not identified",
         "no_estimates", "", np.nan, ""),
    ],
    columns=["scenario", "world", "n_reps", "bias", "coverage", "bracketing", "verdict",
             "verdict_basis", "top_diagnostic", "top_diagnostic_rate", "needed"],
).assign(design="primary", reason="PROSE NOT TO BE PARSED")

LINES = (
    "Valid (bias and coverage within the targets up to simulation error): dip (default) "
    "and reachability",
    "Caught by the pre-trend test (share of replications it fires in): level referral 93% "
    "and year-to-date referral 100%",
    "Caught by the attrition check (share of replications it fires in): attrition 85%",
    "Bracketed: the truth lies between the matched ANCOVA and the matched differences "
    "estimates (share of replications): selection on gains 93%",
    "Not identified, though the extract records what this world depends on (the design, "
    "not the data, falls short): staggered start (bias −0.58, coverage 83%)",
    "Not identified from the records: selection on unrecorded shocks (bias +1.20, coverage "
    "50%), would need a record of the family's circumstances",
    "Not identified: no replication gave an estimate: realistic combination",
)


def test_each_verdict_kind_has_its_line_on_the_first_page():
    c = cv.stress_caveat(None, HAND)
    assert c.items == LINES
    assert c.status == cv.CONCERN and "(40 replications per world; " in c.text
    assert "reasons in the appendix" in c.text
    assert not any("PROSE" in i for i in c.items)
    # the extended design's rows are not the primary's
    both = pd.concat([HAND, HAND.assign(design="extended", verdict="valid",
                                        verdict_basis="targets_met")])
    assert cv.stress_caveat(None, both).items == LINES
    # without a world not identified the check passes
    ok = HAND[HAND["verdict"] != "not identified"]
    assert cv.stress_caveat(None, ok).status == cv.OK
    assert cv.stress_caveat(None, ok).items == LINES[:4]


def test_one_world_per_kind_reads_in_the_singular():
    one = HAND[HAND["scenario"].isin(["staggered_start"])]
    (line,) = cv.stress_caveat(None, one).items
    assert "what this world depends on" in line
    two = HAND.assign(verdict_basis=lambda d: np.where(
        d["verdict"] == "not identified", "design_falls_short", d["verdict_basis"]))
    two = two[two["n_reps"] > 0]
    assert any("what these worlds depend on" in i for i in cv.stress_caveat(None, two).items)


def test_the_appendix_composes_each_reason_from_the_columns():
    out = verdict_list(HAND, "matched_ancova")
    assert [o["world"] for o in out] == list(HAND["world"])
    by = {o["world"]: o["reason"] for o in out}
    assert by["level referral"] == "the pre-trend test fires in 93% of replications"
    assert by["selection on gains"] == ("the truth lies between the matched ANCOVA and the "
                                        "matched differences design in 93% of replications")
    assert by["staggered start"].endswith("the design, not the data, falls short here")
    assert by["selection on unrecorded shocks"].endswith(
        "would need a record of the family's circumstances")
    assert by["realistic combination"] == "no replication gave an estimate"


def test_decide_names_the_rule_and_the_reason_reads_its_columns():
    """Each basis from the rules, and ``judge``'s reason is composed from ``decide``."""
    base = dict(n_reps=40, bias=0.0, bias_mcse=0.05, coverage=0.95, bracketing=0.0,
                targets_apply=True, needed="", uninformative=["placebo"],
                **{f"rate_{d}": 0.05 for d in ("pretrend", "balance", "attrition",
                                                "censoring")}, rate_placebo=1.0)
    cases = [
        ({}, "targets_met", "attrition" and None),
        ({"bias": -1.0, "rate_attrition": 0.9}, "diagnostic_fires", "attrition"),
        ({"bias": -1.0, "bracketing": 0.95}, "bracketed", None),
        ({"bias": -1.0}, "design_falls_short", None),
        ({"bias": -1.0, "targets_apply": False}, "needs_unrecorded_data", None),
        ({"n_reps": 0}, "no_estimates", None),
    ]
    for over, basis, top in cases:
        d = vd.decide({**base, **over})
        assert d["verdict_basis"] == basis and d["verdict"] == vd.BASES[basis], over
        if top:
            assert (d["top_diagnostic"], d["top_diagnostic_rate"]) == (top, 0.9)
        # the placebo-date check fires everywhere (uninformative): never the top diagnostic
        assert d["top_diagnostic"] != "placebo"
        assert vd.judge({**base, **over}) == (d["verdict"],
                                              vd.reason_text({**base, **over, **d}))
    d = vd.decide({**base, "bias": -1.0, "targets_apply": False})
    assert d["needed"] == "information the extract does not record"


def test_an_old_table_is_rescored_from_its_rates(tmp_path, capsys):
    new = verdict_rows()
    old = new.drop(columns=vd.VERDICT_BASIS_COLUMNS)
    got = worlds.with_basis(old, tmp_path / "verdicts.csv")
    pd.testing.assert_frame_equal(
        got[vd.VERDICT_BASIS_COLUMNS].fillna("").astype(str).reset_index(drop=True),
        new[vd.VERDICT_BASIS_COLUMNS].fillna("").astype(str).reset_index(drop=True))
    err = capsys.readouterr().err
    assert "verdicts.csv" in err and "'verdict_basis'" in err
    assert "dvc repro validation/dvc.yaml" in err
    # written and read back as a file
    old.to_csv(tmp_path / "verdicts.csv", index=False)
    back = _with_basis(pd.read_csv(tmp_path / "verdicts.csv"), tmp_path / "verdicts.csv")
    assert cv.stress_caveat(None, back).items == cv.stress_caveat(None, new).items


def test_an_old_table_whose_rates_disagree_stops_with_the_rescoring_command(tmp_path):
    old = verdict_rows().drop(columns=vd.VERDICT_BASIS_COLUMNS)
    old.loc[0, "verdict"] = "caught"  # its rates make it valid
    (tmp_path / "checkpoint.csv").write_text("")  # a committed study beside it
    path = tmp_path / "verdicts.csv"
    with pytest.raises(ReportInputError) as e:
        _with_basis(old, path)
    msg = str(e.value)
    assert str(path) in msg and "'verdict_basis'" in msg
    assert f"python benchmarks/run_worlds_study.py --rescore --out {tmp_path}" in msg
    assert "'valid', not the 'caught'" in msg
    with pytest.raises(ReportInputError, match="cannot be re-derived without.*coverage"):
        _with_basis(old.drop(columns="coverage"), path)


@pytest.mark.parametrize(
    ("study", "lines"), [("worlds_n100", 2), ("worlds_impute_n100", 3), ("worlds_history_n100", 1)]
)
def test_the_committed_study_loads_with_a_basis_for_every_verdict(study, lines):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / f"benchmarks/results/{study}/verdicts.csv"
    v = _with_basis(pd.read_csv(path), path)
    assert v["verdict_basis"].notna().all()
    assert (v["verdict_basis"].map(vd.BASES) == v["verdict"]).all()
    # one line per kind of verdict: the study of the recorded-year design is valid everywhere
    assert len(cv.stress_caveat(None, v).items) == lines


def test_a_world_beyond_the_records_keeps_the_caution_when_every_world_is_valid():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks/results/worlds_history_n100/verdicts.csv"
    v = _with_basis(pd.read_csv(path), path)
    assert (v.loc[v["design"] == "primary", "verdict"] == "valid").all()
    assert cv.stress_caveat(None, v, "matched_ancova").status == cv.OK
    shocks = pd.DataFrame([{"estimator": "matched_ancova", "scenario": "unrecorded_shocks",
                            "targets_apply": False, "bias": -0.75, "coverage": 0.63}])  # fmt: skip
    c = cv.stress_caveat(shocks, v, "matched_ancova")
    assert c.status == cv.CONCERN
    assert c.items[-1].startswith("Beyond any design using the records")


def test_a_valid_worlds_reason_says_how_wide_its_interval_is():
    """A valid world can over-cover: its reason gives the SE ratio when the table has one,
    and stays as before when it does not (an older table)."""
    row = dict(verdict_basis=vd.TARGETS_MET, n_reps=100, bias=0.02, bias_mcse=0.05,
               coverage=0.99)
    plain = vd.reason_text(row)
    assert plain == "bias +0.02 (Monte Carlo SE 0.05), coverage 99% over 100 replications"
    wide = vd.reason_text({**row, "se_ratio": 1.2536})
    assert wide == plain + "; standard errors 1.25 times the spread of the estimates"
    assert vd.reason_text({**row, "se_ratio": float("nan")}) == plain
