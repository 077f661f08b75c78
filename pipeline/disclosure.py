"""Statistical disclosure control for every published table and figure.

The rule follows the Connecticut State Department of Education's practice for
published student data (``background.md``): a cell is suppressed when it counts
fewer than ``min_count`` students, or when it is a rate or a mean whose denominator
is under ``min_denominator`` students.  Both thresholds come from the ``disclosure``
section of ``params.yaml``.

Three kinds of cells are controlled, declared per table in a :class:`TableSpec`:

* **counts** (e.g. ``students``, ``n_treated``): suppressed when below ``min_count``
  (zeros too, unless the table declares ``suppress_zero=False``, as the data-quality
  tables of *record* counts do);
* **rates** (:class:`RateRule`, e.g. chronic-absence share = ``n_chronic / n_students``):
  the numerator and the rate are suppressed when the numerator is below ``min_count``,
  when the denominator is below ``min_denominator``, or when the complement
  (denominator − numerator) is below ``min_count`` (a rate near 100% reveals the few
  students not counted just as well);
* **estimates** (:class:`EstimateRule`, means and effects): suppressed when any of the
  student counts they rest on is below ``min_denominator`` (a count hidden only by
  complementary suppression does not hide an estimate resting on enough students).

**Complementary suppression.**  Where counts add up to a total that is published
(in the same table or elsewhere), a single suppressed cell could be recovered by
subtraction.  Each such identity ``total = Σ cells`` is a :class:`Margin`; while any
margin has exactly one suppressed member, the smallest published cell of that margin
(or, if none is left, its total) is suppressed as well.  This is repeated until no
margin has exactly one suppressed member, so suppression that spills over from one
margin into another is followed through.

:func:`check_published` is an independent check (it does not reuse the suppression
code) of a published table against the table it was made from; the report stage runs
it over every published table and every figure input and fails with the table, row
and column of the first violations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SUPPRESSED_COLUMN = "suppressed"


class DisclosureError(ValueError):
    """A published cell breaks the disclosure rule (or a spec is malformed)."""


@dataclass(frozen=True)
class Rules:
    """Disclosure thresholds (``params.yaml`` section ``disclosure``).

    Parameters
    ----------
    min_count
        Smallest number of students a published count may show.
    min_denominator
        Smallest number of students a published rate, mean or effect may rest on.
    """

    min_count: int = 6
    min_denominator: int = 20

    def __post_init__(self) -> None:
        for name in ("min_count", "min_denominator"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DisclosureError(f"disclosure.{name} must be a positive integer, got {v!r}")

    @classmethod
    def from_params(cls, sec: Mapping[str, Any]) -> Rules:
        """Build from the ``disclosure`` section of ``params.yaml``."""
        unknown = set(sec) - {"min_count", "min_denominator"}
        if unknown:
            raise DisclosureError(f"params.yaml disclosure: unknown keys {sorted(unknown)}")
        missing = {"min_count", "min_denominator"} - set(sec)
        if missing:
            raise DisclosureError(f"params.yaml disclosure: missing keys {sorted(missing)}")
        return cls(min_count=sec["min_count"], min_denominator=sec["min_denominator"])


@dataclass(frozen=True)
class Margin:
    """An additive identity ``total = Σ cells`` among count cells of one table.

    Cells are ``(row position, column)`` pairs.  ``total`` is ``None`` when the total
    is not in this table but is published elsewhere (e.g. the number of treated
    students, which appears in the sample flow), so it is known to every reader.
    """

    cells: tuple[tuple[int, str], ...]
    total: tuple[int, str] | None = None
    label: str = ""

    def members(self) -> tuple[tuple[int, str], ...]:
        return self.cells + ((self.total,) if self.total is not None else ())


@dataclass(frozen=True)
class RateRule:
    """A rate ``numerator / denominator`` shown through ``value_cols`` (and the numerator)."""

    numerator: str
    denominator: str
    value_cols: tuple[str, ...] = ()


@dataclass(frozen=True)
class EstimateRule:
    """Estimates in ``value_cols`` that rest on the student counts in ``n_cols``."""

    value_cols: tuple[str, ...]
    n_cols: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    """What is controlled in one published table.

    ``key_cols`` name a row in error messages.  ``margins`` refer to row positions of
    the table the spec is applied to (build them with :func:`group_margins` and
    :func:`row_margins`).  ``fixed`` cells (``(row position, column)``) are published
    elsewhere as well (e.g. the number of students analysed, in ``metrics.json``), so
    suppressing them would protect nothing: complementary suppression never picks them.
    """

    name: str
    key_cols: tuple[str, ...] = ()
    count_cols: tuple[str, ...] = ()
    rates: tuple[RateRule, ...] = ()
    estimates: tuple[EstimateRule, ...] = ()
    margins: tuple[Margin, ...] = field(default_factory=tuple)
    suppress_zero: bool = True
    fixed: frozenset[tuple[int, str]] = frozenset()

    def controlled_columns(self) -> list[str]:
        cols = list(self.count_cols)
        for r in self.rates:
            cols += [r.numerator, r.denominator, *r.value_cols]
        for e in self.estimates:
            cols += [*e.value_cols, *e.n_cols]
        return list(dict.fromkeys(cols))


# --------------------------------------------------------------------------- margins


def group_margins(
    df: pd.DataFrame,
    group_cols: Sequence[str],
    cell_col: str,
    total_mask: pd.Series | None = None,
    label: str = "",
) -> tuple[Margin, ...]:
    """One margin per group of rows: the ``cell_col`` values of a group add up to a total.

    Parameters
    ----------
    df
        The table (positional rows are used).
    group_cols
        Columns defining the groups (e.g. ``["subgroup"]``); empty = the whole table.
    cell_col
        The count column that adds up.
    total_mask
        Boolean per row marking the group's total row (at most one per group); rows
        without a total in the table have a total published elsewhere.
    """
    pos = pd.Series(np.arange(len(df)), index=df.index)
    tm = (
        pd.Series(False, index=df.index)
        if total_mask is None
        else total_mask.reindex(df.index).fillna(False).astype(bool)
    )
    if group_cols:
        groups = [(k, d.index) for k, d in df.groupby(list(group_cols), sort=False)]
    else:
        groups = [((), df.index)]
    out = []
    for key, idx in groups:
        idx = list(idx)
        totals = [i for i in idx if tm[i]]
        if len(totals) > 1:
            raise DisclosureError(f"{label or cell_col}: group {key!r} has more than one total row")
        cells = tuple((int(pos[i]), cell_col) for i in idx if not tm[i])
        total = (int(pos[totals[0]]), cell_col) if totals else None
        out.append(Margin(cells=cells, total=total, label=f"{label} {key!r}".strip()))
    return tuple(out)


def row_margins(df: pd.DataFrame, total_col: str, cell_cols: Sequence[str]) -> tuple[Margin, ...]:
    """One margin per row: ``total_col = Σ cell_cols`` (e.g. treated = matched + unmatched)."""
    return tuple(
        Margin(cells=tuple((i, c) for c in cell_cols), total=(i, total_col), label=f"row {i}")
        for i in range(len(df))
    )


# --------------------------------------------------------------------------- suppression


@dataclass(frozen=True)
class Published:
    """A table after disclosure control: suppressed cells are missing; ``mask`` marks them."""

    name: str
    table: pd.DataFrame
    mask: pd.DataFrame
    source: pd.DataFrame
    spec: TableSpec

    @property
    def n_suppressed(self) -> int:
        return int(self.mask.to_numpy().sum())


def _small(v: pd.Series, threshold: int, suppress_zero: bool) -> pd.Series:
    v = pd.to_numeric(v, errors="coerce")
    bad = v < threshold
    if not suppress_zero:
        bad &= v != 0
    return bad.fillna(False).astype(bool)


def _check_columns(df: pd.DataFrame, spec: TableSpec) -> None:
    missing = [c for c in spec.controlled_columns() + list(spec.key_cols) if c not in df.columns]
    if missing:
        raise DisclosureError(f"{spec.name}: columns {missing} declared in its spec are missing")


def suppress(df: pd.DataFrame, spec: TableSpec, rules: Rules) -> Published:
    """Apply primary and complementary suppression to ``df`` as declared in ``spec``.

    Returns
    -------
    Published
        ``table`` is ``df`` with suppressed cells set missing (count columns become
        nullable ``Int64``) and a ``suppressed`` column listing, per row, the columns
        suppressed in it (``;``-separated, empty when none).  Primary and
        complementary suppressions are marked alike, so the mark does not tell which
        cell was the small one.
    """
    _check_columns(df, spec)
    src = df.reset_index(drop=True)
    mask = primary_mask(src, spec, rules)
    _complementary(src, mask, spec)
    return finish(src, mask, spec, rules)


def primary_mask(src: pd.DataFrame, spec: TableSpec, rules: Rules) -> pd.DataFrame:
    """Cells suppressed by the primary rules (small counts, rates on small numbers).

    ``src`` must have a default ``RangeIndex``; the result is a boolean frame like it.
    """
    mask = pd.DataFrame(False, index=src.index, columns=src.columns)
    mc, md = rules.min_count, rules.min_denominator
    for c in spec.count_cols:
        mask[c] |= _small(src[c], mc, spec.suppress_zero)
    for r in spec.rates:
        num = pd.to_numeric(src[r.numerator], errors="coerce")
        den = pd.to_numeric(src[r.denominator], errors="coerce")
        bad = (
            _small(num, mc, spec.suppress_zero)
            | ~(den >= md)
            | _small(den - num, mc, spec.suppress_zero)
        )
        mask[r.numerator] |= bad
    return mask


def finish(src: pd.DataFrame, mask: pd.DataFrame, spec: TableSpec, rules: Rules) -> Published:
    """Apply the rate and estimate rules on top of ``mask`` and build the published table.

    ``mask`` holds the primary and complementary count suppressions (it is updated in
    place with the rate values and estimates that must go as well).
    """
    md = rules.min_denominator
    for r in spec.rates:
        for c in r.value_cols:
            mask[c] |= mask[r.numerator] | ~(
                pd.to_numeric(src[r.denominator], errors="coerce") >= md
            )
    for e in spec.estimates:
        bad = pd.Series(False, index=src.index)
        for n in e.n_cols:
            bad |= ~(pd.to_numeric(src[n], errors="coerce") >= md)
        for c in e.value_cols:
            mask[c] |= bad

    out = src.copy()
    counts = count_columns(spec)
    for c in src.columns:
        if c in counts:
            v = pd.to_numeric(src[c], errors="coerce")
            whole = bool(((v.dropna() % 1) == 0).all())
            out[c] = pd.array(v, dtype="Int64" if whole else "Float64")
            out.loc[mask[c], c] = pd.NA
        elif mask[c].any():
            if not pd.api.types.is_numeric_dtype(out[c]) or pd.api.types.is_bool_dtype(out[c]):
                out[c] = out[c].astype(object)
            out.loc[mask[c], c] = np.nan
    out[SUPPRESSED_COLUMN] = [";".join(c for c in src.columns if mask.at[i, c]) for i in src.index]
    return Published(name=spec.name, table=out, mask=mask, source=src, spec=spec)


def count_columns(spec: TableSpec) -> set[str]:
    """The columns of ``spec`` that hold counts of students (counts, rate parts, n's)."""
    cols = set(spec.count_cols)
    for r in spec.rates:
        cols |= {r.numerator, r.denominator}
    for e in spec.estimates:
        cols |= set(e.n_cols)
    return cols


def _complementary(src: pd.DataFrame, mask: pd.DataFrame, spec: TableSpec) -> None:
    """Suppress further cells until no margin has exactly one suppressed member."""
    for _ in range(10 * (len(spec.margins) + 1) * max(1, len(src))):
        changed = False
        for m in spec.margins:
            members = [x for x in m.members() if pd.notna(src.at[x[0], x[1]])]
            hidden = [x for x in members if mask.at[x[0], x[1]]]
            if len(hidden) != 1:
                continue
            free = [x for x in members if not mask.at[x[0], x[1]] and x not in spec.fixed]
            candidates = [x for x in free if x != m.total]
            if candidates:
                pick = min(candidates, key=lambda x: (float(src.at[x[0], x[1]]), x[0], x[1]))
            elif free:
                pick = free[0]  # only the total is left to suppress
            else:
                i, c = hidden[0]
                raise DisclosureError(
                    f"{spec.name}: row {i} ({_row_key(src, i, spec.key_cols)}), column '{c}' "
                    f"must be suppressed, but every other member of margin "
                    f"{m.label or m.members()} is published elsewhere, so the cell could be "
                    "recovered by subtraction; suppression cannot protect it"
                )
            mask.at[pick[0], pick[1]] = True
            changed = True
        if not changed:
            return
    raise DisclosureError(f"{spec.name}: complementary suppression did not converge")


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Violation:
    table: str
    row: int
    key: str
    column: str
    rule: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" ({self.key})" if self.key else "")
        return f"{self.table}: {where}, column '{self.column}': {self.rule}"


def _row_key(df: pd.DataFrame, i: int, key_cols: Sequence[str]) -> str:
    return ", ".join(f"{k}={df.at[i, k]}" for k in key_cols if k in df.columns)


class _PublishedCheck:
    """The cell-by-cell checks of :func:`check_published` on one table."""

    def __init__(self, pub: pd.DataFrame, src: pd.DataFrame, spec: TableSpec, rules: Rules):
        self.pub, self.src, self.spec = pub, src, spec
        self.mc, self.md = rules.min_count, rules.min_denominator
        self.zero_ok = not spec.suppress_zero
        self.out: list[Violation] = []

    def shown(self, i: int, c: str) -> bool:
        return bool(pd.notna(self.pub.at[i, c]))

    def val(self, i: int, c: str) -> float:
        v = self.src.at[i, c]
        return float(v) if pd.notna(v) else float("nan")

    def add(self, i: int, c: str, rule: str) -> None:
        self.out.append(
            Violation(self.spec.name, i, _row_key(self.src, i, self.spec.key_cols), c, rule)
        )

    def small(self, v: float) -> bool:
        """A count under ``min_count`` that is not a permitted zero."""
        return v < self.mc and not (self.zero_ok and v == 0)

    def values(self, i: int) -> None:
        for c in self.pub.columns:
            if c == SUPPRESSED_COLUMN or c not in self.src.columns or not self.shown(i, c):
                continue
            a, b = self.pub.at[i, c], self.src.at[i, c]
            if pd.isna(b):
                self.add(i, c, "published value where the source has none")
            elif isinstance(b, (int, float, np.integer, np.floating)) and not isinstance(b, bool):
                if not np.isclose(float(a), float(b), rtol=1e-12, atol=0):
                    self.add(i, c, f"published {a!r} differs from source {b!r}")
            elif str(a) != str(b):
                self.add(i, c, f"published {a!r} differs from source {b!r}")

    def counts(self, i: int) -> None:
        for c in self.spec.count_cols:
            v = self.val(i, c)
            if self.shown(i, c) and self.small(v):
                self.add(i, c, f"count {v:g} < min_count {self.mc}")

    def rates(self, i: int) -> None:
        mc, md = self.mc, self.md
        for r in self.spec.rates:
            num, den = self.val(i, r.numerator), self.val(i, r.denominator)
            for c in (r.numerator, *r.value_cols):
                if not self.shown(i, c):
                    continue
                if self.small(num):
                    self.add(i, c, f"numerator {r.numerator}={num:g} < min_count {mc}")
                if den < md:
                    self.add(i, c, f"denominator {r.denominator}={den:g} < min_denominator {md}")
                if den - num < mc and not (self.zero_ok and den == num):
                    self.add(
                        i, c, f"complement {r.denominator}-{r.numerator}={den - num:g} < {mc}"
                    )

    def estimates(self, i: int) -> None:
        for e in self.spec.estimates:
            for c in e.value_cols:
                if not self.shown(i, c):
                    continue
                for n in e.n_cols:
                    v = self.val(i, n)
                    if not (v >= self.md):
                        self.add(i, c, f"estimate rests on {n}={v:g} < min_denominator {self.md}")

    def margins(self) -> None:
        for m in self.spec.margins:
            members = [x for x in m.members() if pd.notna(self.src.at[x[0], x[1]])]
            hidden = [x for x in members if not self.shown(*x)]
            if len(hidden) == 1:
                i, c = hidden[0]
                self.add(
                    i,
                    c,
                    f"only suppressed cell of margin {m.label or ''} (recoverable by subtraction)",
                )


def check_published(
    published: pd.DataFrame, source: pd.DataFrame, spec: TableSpec, rules: Rules
) -> list[Violation]:
    """Every way ``published`` breaks the disclosure rule, judged against its ``source``.

    Checked independently of :func:`suppress`: every published count is at least
    ``min_count`` (or a permitted zero); every published rate rests on a numerator and
    a complement of at least ``min_count`` and a denominator of at least
    ``min_denominator``; every published estimate rests on published counts of at
    least ``min_denominator``; no margin has exactly one suppressed member; and no
    published value differs from the source.
    """
    pub = published.reset_index(drop=True)
    src = source.reset_index(drop=True)
    name = spec.name
    if len(pub) != len(src):
        return [
            Violation(name, -1, "", "*", f"{len(pub)} published rows vs {len(src)} source rows")
        ]
    missing = [
        Violation(name, -1, "", c, "declared column missing from published table")
        for c in spec.controlled_columns()
        if c not in pub.columns
    ]
    if missing:
        return missing
    chk = _PublishedCheck(pub, src, spec, rules)
    for i in range(len(src)):
        chk.values(i)
        chk.counts(i)
        chk.rates(i)
        chk.estimates(i)
    chk.margins()
    return chk.out


def assert_published_safe(
    published: pd.DataFrame, source: pd.DataFrame, spec: TableSpec, rules: Rules
) -> None:
    """Raise :class:`DisclosureError` listing the violations found by :func:`check_published`."""
    v = check_published(published, source, spec, rules)
    if v:
        head = "\n  ".join(str(x) for x in v[:20])
        more = f"\n  … and {len(v) - 20} more" if len(v) > 20 else ""
        raise DisclosureError(f"disclosure check failed ({len(v)} cells):\n  {head}{more}")
