"""Disclosure control: closed-form suppression examples and the independent check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.disclosure import (
    DisclosureError,
    EstimateRule,
    Margin,
    RateRule,
    Rules,
    TableSpec,
    assert_published_safe,
    check_published,
    group_margins,
    row_margins,
    suppress,
)

R = Rules(min_count=6, min_denominator=20)


def hidden(pub, col):
    return pub.mask[col].tolist()


def test_rules_from_params_validates():
    assert Rules.from_params({"min_count": 5, "min_denominator": 10}) == Rules(5, 10)
    with pytest.raises(DisclosureError, match="min_denominator"):
        Rules.from_params({"min_count": 6})
    with pytest.raises(DisclosureError, match="positive integer"):
        Rules.from_params({"min_count": 0, "min_denominator": 20})
    with pytest.raises(DisclosureError, match="unknown keys"):
        Rules.from_params({"min_count": 6, "min_denominator": 20, "round": 5})


def test_primary_count_suppression_including_zero_and_boundary():
    df = pd.DataFrame({"k": list("abcde"), "n": [3, 5, 6, 0, 25]})
    pub = suppress(df, TableSpec("t", ("k",), ("n",)), R)
    assert hidden(pub, "n") == [True, True, False, True, False]
    assert pub.table["n"].isna().tolist() == [True, True, False, True, False]
    assert pub.table["suppressed"].tolist() == ["n", "n", "", "n", ""]
    # record counts may publish zeros
    pub0 = suppress(df, TableSpec("t", ("k",), ("n",), suppress_zero=False), R)
    assert hidden(pub0, "n") == [True, True, False, False, False]


def test_complementary_suppression_next_smallest_in_group_with_total():
    # cells 3, 8, 12 with their total 23 published: 3 is primary, 8 the next smallest.
    df = pd.DataFrame({"level": ["a", "b", "c", "total"], "n": [12, 3, 8, 23]})
    total = df["level"] == "total"
    spec = TableSpec("t", ("level",), ("n",), margins=group_margins(df, [], "n", total))
    pub = suppress(df, spec, R)
    assert hidden(pub, "n") == [False, True, True, False]
    assert check_published(pub.table, df, spec, R) == []


def test_complementary_suppression_with_external_total():
    # no total row, but the total is published elsewhere: same rule.
    df = pd.DataFrame({"g": ["x"] * 3 + ["y"] * 2, "n": [40, 2, 30, 50, 60]})
    spec = TableSpec("t", ("g",), ("n",), margins=group_margins(df, ["g"], "n"))
    pub = suppress(df, spec, R)
    assert hidden(pub, "n") == [False, True, True, False, False]


def test_complementary_suppression_propagates_through_two_way_margins():
    # 2x2 table with row totals and column totals: suppressing the 3 forces the 10
    # (row), the 9 (column), and then the 12 (second column) — all four inner cells.
    df = pd.DataFrame(
        {"row": ["r0", "r1", "tot"], "c0": [3, 9, 12], "c1": [10, 12, 22], "tot": [13, 21, 34]}
    )
    m = list(row_margins(df, "tot", ["c0", "c1"]))
    total_row = df["row"] == "tot"
    for c in ("c0", "c1", "tot"):
        m += group_margins(df, [], c, total_row)
    spec = TableSpec("t", ("row",), ("c0", "c1", "tot"), margins=tuple(m))
    pub = suppress(df, spec, R)
    assert pub.mask[["c0", "c1"]].to_numpy().tolist() == [
        [True, True],
        [True, True],
        [False, False],
    ]
    assert not pub.mask["tot"].any()
    assert check_published(pub.table, df, spec, R) == []


def test_rate_rule_numerator_denominator_and_complement():
    df = pd.DataFrame(
        {
            "k": list("abcde"),
            "n_students": [100, 19, 100, 100, 20],
            "n_chronic": [5, 10, 97, 50, 6],
        }
    )
    df["pct"] = 100 * df["n_chronic"] / df["n_students"]
    spec = TableSpec(
        "t", ("k",), ("n_students",), rates=(RateRule("n_chronic", "n_students", ("pct",)),)
    )
    pub = suppress(df, spec, R)
    assert hidden(pub, "pct") == [True, True, True, False, False]
    assert hidden(pub, "n_chronic") == [True, True, True, False, False]
    assert hidden(pub, "n_students") == [False, False, False, False, False]


def test_estimates_need_min_denominator_students():
    df = pd.DataFrame(
        {
            "k": list("abcd"),
            "n_treated": [19, 20, 5, 300],
            "n_comparison": [100, 100, 100, 12],
            "estimate": [1.0, 2.0, 3.0, 4.0],
        }
    )
    spec = TableSpec(
        "t",
        ("k",),
        ("n_treated", "n_comparison"),
        estimates=(EstimateRule(("estimate",), ("n_treated", "n_comparison")),),
    )
    pub = suppress(df, spec, R)
    assert pub.table["estimate"].isna().tolist() == [True, False, True, True]
    assert hidden(pub, "n_treated") == [False, False, True, False]


def test_complementary_never_picks_fixed_cells():
    # total 50 = 3 + 47; 47 is published elsewhere, so the total is suppressed instead.
    df = pd.DataFrame({"k": ["a", "b", "tot"], "n": [3, 47, 50]})
    m = group_margins(df, [], "n", df["k"] == "tot")
    spec = TableSpec("t", ("k",), ("n",), margins=m, fixed=frozenset({(1, "n")}))
    pub = suppress(df, spec, R)
    assert hidden(pub, "n") == [True, False, True]
    spec2 = TableSpec("t", ("k",), ("n",), margins=m, fixed=frozenset({(1, "n"), (2, "n")}))
    with pytest.raises(DisclosureError, match=r"row 0 \(k=a\), column 'n'.*published elsewhere"):
        suppress(df, spec2, R)


def test_check_catches_small_count_naming_table_row_column():
    df = pd.DataFrame({"subgroup": ["cohort"] * 3, "level": ["a", "b", "c"], "n": [3, 40, 50]})
    spec = TableSpec(
        "subgroups", ("subgroup", "level"), ("n",), margins=group_margins(df, ["subgroup"], "n")
    )
    leaked = df.copy()  # published without suppression
    with pytest.raises(DisclosureError) as e:
        assert_published_safe(leaked, df, spec, R)
    assert "subgroups: row 0 (subgroup=cohort, level=a), column 'n': count 3 < min_count 6" in str(
        e.value
    )


def test_check_catches_lone_suppressed_cell_in_margin():
    df = pd.DataFrame({"g": ["x"] * 3, "n": [3, 40, 50]})
    spec = TableSpec("t", ("g",), ("n",), margins=group_margins(df, ["g"], "n"))
    only_primary = df.astype({"n": "Int64"}).copy()
    only_primary.loc[0, "n"] = pd.NA  # the 3 is hidden but 93 - 40 - 50 recovers it
    v = check_published(only_primary, df, spec, R)
    assert len(v) == 1 and v[0].row == 0 and "recoverable by subtraction" in v[0].rule


def test_check_catches_estimate_on_too_few_and_altered_values():
    df = pd.DataFrame({"k": ["a", "b"], "n": [12, 40], "est": [1.5, 2.5]})
    spec = TableSpec("t", ("k",), ("n",), estimates=(EstimateRule(("est",), ("n",)),))
    v = check_published(df, df, spec, R)
    assert [(x.row, x.column) for x in v] == [(0, "est")]
    tampered = suppress(df, spec, R).table
    tampered.loc[1, "est"] = 9.9
    v = check_published(tampered, df, spec, R)
    assert [(x.row, x.column) for x in v] == [(1, "est")] and "differs" in v[0].rule


def test_missing_declared_column_is_a_clear_error():
    df = pd.DataFrame({"k": ["a"], "n": [10]})
    with pytest.raises(DisclosureError, match=r"t: columns \['m'\]"):
        suppress(df, TableSpec("t", ("k",), ("m",)), R)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 60), min_size=2, max_size=5), min_size=1, max_size=4),
    st.booleans(),
)
def test_suppressed_output_always_passes_the_check(groups, with_total_rows):
    """Property: whatever the counts, suppress() yields a table the check accepts."""
    rows = []
    for g, cells in enumerate(groups):
        rows += [(f"g{g}", f"l{j}", v, False) for j, v in enumerate(cells)]
        if with_total_rows:
            rows.append((f"g{g}", "total", sum(cells), True))
    df = pd.DataFrame(rows, columns=["g", "level", "n", "is_total"])
    m = group_margins(df, ["g"], "n", df["is_total"])
    spec = TableSpec("t", ("g", "level"), ("n",), margins=m)
    pub = suppress(df, spec, R)
    assert check_published(pub.table, df, spec, R) == []
    # every published count really is large enough
    shown = pub.table["n"].dropna().to_numpy(dtype=float)
    assert np.all(shown >= R.min_count)


def test_margin_members_include_total():
    m = Margin(cells=((0, "a"), (1, "a")), total=(2, "a"))
    assert m.members() == ((0, "a"), (1, "a"), (2, "a"))
