"""A disclosure ledger: complementary suppression over every published count at once.

:func:`pipeline.disclosure.suppress` protects one table: no margin of *that table* has a
single suppressed cell.  Tables published side by side share numbers, though — the
students visited appear in the sample flow, as the column totals of the match summary
and in ``metrics.json`` — so a cell hidden in one table could be recovered by adding
and subtracting numbers shown in others.  The ledger closes that hole.

Every published table is registered with its :class:`~pipeline.disclosure.TableSpec`
and, for the count cells that refer to a population shared across tables, a
:class:`Count` saying *what* the cell counts: a population (e.g. ``"students"``) and a
conjunction of filters (``{"visited": "yes", "grade_band": "K-5"}``).  From these the
ledger knows

* which cells are **the same number** (the same :class:`Count`: linked, so that they are
  published or suppressed together);
* which cells **add up** (a parent count and the counts that split it by one more
  dimension, when their values add up: e.g. visited = matched + unmatched) besides the
  margins the specs declare and any added with :meth:`DisclosureLedger.add_margin`
  (a spec margin whose total is "published elsewhere" and whose cells all have a
  :class:`Count` is taken from the descriptions instead, since its total is then a
  ledger cell that may itself be suppressed; otherwise its total is taken as known);
* which pairs of cells are **nested** (one count's filters include the other's): their
  difference counts a group of students too (visited − matched = the unmatched), and
  when it is between 1 and ``min_count − 1`` it is a small cell that must not be
  computable, exactly like a suppressed one;
* which counts have parts along one dimension that add up to 1..``min_count − 1`` **more**
  than the count (units in two parts, e.g. a comparison student matched in two
  districts): the excess counts a small group too;
* which sets of cells that add up in one identity have a **small sum** (between 1 and
  ``min_count − 1``): their union counts a group of students too (two suppressed tiers
  whose unmatched students sum to 1), so the sum must not be computable either, even
  when neither cell is on its own.

:meth:`DisclosureLedger.suppress` applies each table's primary rules, then repeats until
nothing is recoverable: it solves the linear system of all these identities for the
hidden cells (and the small nested differences and sums) given the published ones — a cell is
recoverable when it is determined, i.e. its unit vector lies in the row space of the
identities restricted to the unknowns (checked through the null space, by SVD) — and
for each recoverable one suppresses the smallest published cell of an identity it
belongs to (never a *fixed* cell, one published elsewhere for sure, such as the counts
in ``metrics.json``).  Linear determination is the attack of adding and subtracting
published numbers; bounds from non-negativity (an interval attack) are not modelled.

Typical use::

    ledger = DisclosureLedger(rules)
    ledger.register("sample_flow", flow, flow_spec, counts={(2, "students"): visited})
    ledger.register("metrics", metrics_df, metrics_spec, public=True, counts=...)
    pubs = ledger.suppress()          # {name: Published}
    assert ledger.recoverable(pubs) == []
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.disclosure import (
    DisclosureError,
    EstimateRule,
    Published,
    Rules,
    TableSpec,
    _check_columns,
    assert_published_safe,
    count_columns,
    finish,
    primary_mask,
)

log = logging.getLogger(__name__)

#: A count cell of a registered table: ``(table, row position, column)``.
Cell = tuple[str, int, str]


@dataclass(frozen=True)
class Count:
    """What a count cell counts: the units of ``population`` that pass every filter.

    ``where`` is a set of ``(dimension, level)`` pairs (build with :meth:`of`).  Two
    cells with the same ``Count`` show the same number; a count whose filters include
    all of another's (same population) counts a subset of it.
    """

    population: str
    where: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @classmethod
    def of(cls, population: str, where: Mapping[str, object] | None = None, **kw) -> Count:
        items = {**(where or {}), **kw}
        return cls(population, frozenset((str(k), str(v)) for k, v in items.items()))

    def refine(self, **kw) -> Count:
        """This count with further filters."""
        return Count.of(self.population, dict(self.where), **kw)

    def contains(self, other: Count) -> bool:
        """True when ``other`` counts a strict subset of what this counts."""
        return self.population == other.population and self.where < other.where

    def __str__(self) -> str:
        f = ", ".join(f"{k}={v}" for k, v in sorted(self.where))
        return f"{self.population}[{f}]"


@dataclass
class _Model:
    """Equality classes of cells, the identities among them and the nested differences."""

    classes: list[list[Cell]]
    value: np.ndarray  # per class
    fixed: np.ndarray  # per class: may not be suppressed
    equations: list[dict[int, float]]  # over class ids and virtual ids (>= n_classes)
    labels: list[str]
    #: derived counts that must not be computable: (coefficients over classes, value,
    #: description) — a small nested difference, or a small sum of cells that add up
    virtual: list[tuple[dict[int, float], float, str]]

    @property
    def n(self) -> int:
        return len(self.classes)


class DisclosureLedger:
    """Every published count, its population and its margins; suppression over all of it.

    Parameters
    ----------
    rules
        The disclosure thresholds.
    """

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._tables: dict[str, tuple[pd.DataFrame, TableSpec]] = {}
        self._desc: dict[Cell, Count] = {}
        self._fixed: set[Cell] = set()
        self._margins: list[tuple[Cell | None, tuple[Cell, ...], str]] = []

    # -- registration ---------------------------------------------------------------------
    def register(
        self,
        name: str,
        df: pd.DataFrame,
        spec: TableSpec,
        counts: Mapping[tuple[int, str], Count] | None = None,
        public: bool = False,
    ) -> None:
        """Add a table to publish.

        Parameters
        ----------
        name
            Unique table name.
        df
            The unsuppressed table (row positions are used).
        spec
            Its disclosure spec (count columns, rates, estimates, margins, fixed cells).
        counts
            ``{(row position, column): Count}`` for count cells shared with other tables.
        public
            Every count cell is published elsewhere for sure (e.g. ``metrics.json``): it
            may never be suppressed.
        """
        if name in self._tables:
            raise DisclosureError(f"ledger: table {name!r} registered twice")
        _check_columns(df, spec)
        src = df.reset_index(drop=True)
        self._tables[name] = (src, spec)
        for m in spec.margins:
            total = (name, *m.total) if m.total is not None else None
            cells = tuple((name, i, c) for i, c in m.cells)
            self._margins.append((total, cells, f"{name}: {m.label}".rstrip(": ")))
        self._fixed |= {(name, i, c) for i, c in spec.fixed}
        cols = count_columns(spec)
        if public:
            self._fixed |= {(name, i, c) for c in cols for i in range(len(src))}
        for (i, c), cnt in (counts or {}).items():
            if c not in cols:
                raise DisclosureError(f"ledger: {name} column {c!r} is not a count column")
            self._desc[(name, int(i), c)] = cnt

    def add_margin(self, total: Cell | None, cells: Sequence[Cell], label: str = "") -> None:
        """An identity ``total = Σ cells`` across tables (``total`` None: known elsewhere)."""
        self._margins.append((total, tuple(cells), label or "cross-table margin"))

    # -- the model ------------------------------------------------------------------------
    def _value(self, cell: Cell) -> float:
        name, i, c = cell
        v = pd.to_numeric(pd.Series([self._tables[name][0].at[i, c]]), errors="coerce")[0]
        return float(v)

    def count_cells(self) -> list[Cell]:
        """Every count cell with a value, in registration order."""
        out = []
        for name, (src, spec) in self._tables.items():
            for c in sorted(count_columns(spec)):
                out += [(name, i, c) for i in range(len(src)) if pd.notna(src.at[i, c])]
        return [x for x in out if np.isfinite(self._value(x))]

    def _classes(self) -> tuple[list[list[Cell]], dict[Cell, int], dict[Count, int]]:
        """Equality classes of the count cells: the same Count with the same value."""
        by_desc: dict[Count, int] = {}
        cls_of: dict[Cell, int] = {}
        classes: list[list[Cell]] = []
        for x in self.count_cells():
            d = self._desc.get(x)
            k = by_desc.get(d) if d is not None else None
            if k is not None and np.isclose(self._value(classes[k][0]), self._value(x)):
                classes[k].append(x)
                cls_of[x] = k
                continue
            if k is not None:
                log.warning("ledger: %s and %s both say %s but differ", classes[k][0], x, d)
            cls_of[x] = len(classes)
            if d is not None and k is None:
                by_desc[d] = len(classes)
            classes.append([x])
        return classes, cls_of, by_desc

    def _model(self) -> _Model:
        classes, cls_of, by_desc = self._classes()
        value = np.array([self._value(c[0]) for c in classes])
        fixed = np.array([any(x in self._fixed for x in c) for c in classes], dtype=bool)
        eqs: list[dict[int, float]] = []
        labels: list[str] = []

        def add_eq(total: int | None, parts: Iterable[int], label: str) -> None:
            e: dict[int, float] = {} if total is None else {total: 1.0}
            for p in parts:
                e[p] = e.get(p, 0.0) - 1.0
            e = {k: v for k, v in e.items() if v != 0}
            if e:
                eqs.append(e)
                labels.append(label)

        for total, parts, label in self._margins:
            if total is not None and total not in cls_of:
                continue  # an empty total: no identity
            if total is None and self._split_of_a_cell(parts, by_desc):
                continue  # its total is a ledger cell: the descriptions give the identity
            add_eq(
                cls_of[total] if total is not None else None,
                [cls_of[x] for x in parts if x in cls_of],
                label,
            )
        for p, kids, label in _splits(by_desc, value):
            add_eq(p, kids, label)
        virtual: list[tuple[dict[int, float], float, str]] = []
        mc = self.rules.min_count
        derived = [
            ({a: 1.0, b: -1.0}, diff,
             f"the difference {diff:g} of {classes[a][0]} and {classes[b][0]}", label)
            for a, b, diff, label in _small_nested(by_desc, value, mc)
        ] + [
            ({k: 1.0 for k in sub}, total,
             f"the sum {total:g} of {' and '.join(str(classes[k][0]) for k in sub)}",
             "small sum of cells that add up")
            for sub, total in _small_sums(eqs, value, mc, len(classes))
        ] + [
            ({**{k: 1.0 for k in kids}, p: -1.0}, over,
             f"the overlap {over:g} of the parts of {classes[p][0]}",
             "small overlap of a count's parts")
            for p, kids, over in _small_overlaps(by_desc, value, mc)
        ]  # fmt: skip
        for coef, v, what, label in derived:
            virtual.append((coef, v, what))
            eqs.append({**coef, len(classes) + len(virtual) - 1: -1.0})
            labels.append(label)
        return _Model(classes, value, fixed, eqs, labels, virtual)

    def _split_of_a_cell(self, parts: Sequence[Cell], by_desc: Mapping[Count, int]) -> bool:
        """True when ``parts`` split a registered count along one dimension and add up."""
        descs = [self._desc.get(x) for x in parts]
        if not parts or any(d is None for d in descs):
            return False
        common = frozenset.intersection(*(d.where for d in descs))
        pops = {d.population for d in descs}
        dims = {dim for d in descs for dim, _ in d.where - common}
        parent = Count(next(iter(pops)), common)
        if len(pops) != 1 or len(dims) != 1 or parent not in by_desc:
            return False
        total = sum(self._value(x) for x in parts)
        return bool(np.isclose(total, self._value(self._cell_of(by_desc[parent], by_desc))))

    def _cell_of(self, k: int, by_desc: Mapping[Count, int]) -> Cell:
        d = next(d for d, j in by_desc.items() if j == k)
        return next(x for x, dd in self._desc.items() if dd == d)

    # -- suppression ----------------------------------------------------------------------
    def suppress(self) -> dict[str, Published]:
        """Primary suppression per table, then complementary suppression over the ledger.

        Returns
        -------
        dict
            ``{name: Published}`` for every registered table (rate values and estimates
            follow their counts as in :func:`pipeline.disclosure.suppress`).

        Raises
        ------
        DisclosureError
            A small cell that only fixed cells could protect.
        """
        masks = {n: primary_mask(src, spec, self.rules) for n, (src, spec) in self._tables.items()}
        model = self._model()
        primary = self._hidden(model, lambda n, i, c: masks[n].at[i, c])
        hidden = primary.copy()
        inherent: set[int] = set()
        for _ in range(2 * model.n + len(model.virtual) + 1):
            bad = [v for v in _determined(model, hidden) if _sensitive(model, primary, v)]
            bad = [v for v in bad if v not in inherent]
            if not bad:
                break
            try:
                hidden[self._pick(model, hidden, bad[0])] = True
            except DisclosureError:
                if bad[0] < model.n and model.value[bad[0]] == 0:
                    inherent.add(bad[0])  # a zero fixed by public cells: nothing to hide
                    continue
                raise
        else:  # pragma: no cover - each round hides one more class
            raise DisclosureError("ledger: complementary suppression did not converge")
        # a complementary suppression whose value the published cells give anyway
        # protects nothing: publish it (this changes nothing that can be derived)
        for k in _determined(model, hidden):
            if k < model.n and not primary[k]:
                hidden[k] = False
        for k in np.flatnonzero(hidden):
            for n, i, c in model.classes[k]:
                masks[n].at[i, c] = True
        return {
            n: finish(src, masks[n], spec, self.rules) for n, (src, spec) in self._tables.items()
        }

    def _pick(self, model: _Model, hidden: np.ndarray, var: int) -> int:
        """The class to suppress so that ``var`` is no longer recoverable.

        Candidates are the published, non-fixed classes of the identities that reach
        ``var`` (nearest identities first, then smallest value); the first whose
        suppression leaves ``var`` undetermined is taken, else the first candidate
        (the next round goes on from there).
        """
        cands: list[int] = []
        seen_eq: set[int] = set()
        frontier, reached = {var}, {var}
        while frontier:
            layer = []
            for j, e in enumerate(model.equations):
                if j not in seen_eq and frontier & e.keys():
                    seen_eq.add(j)
                    layer.append(e)
            free = {
                k
                for e in layer
                for k in e
                if k < model.n and not hidden[k] and not model.fixed[k] and k not in cands
            }
            cands += sorted(free, key=lambda k: (model.value[k], k))
            frontier = {k for e in layer for k in e if k >= model.n or hidden[k]} - reached
            reached |= frontier
        if not cands:
            raise DisclosureError(
                f"ledger: {self._describe(model, var)} is recoverable from cells published "
                "elsewhere for sure; suppression cannot protect it"
            )
        for k in cands[:50]:
            trial = hidden.copy()
            trial[k] = True
            if var not in _determined(model, trial):
                return k
        return cands[0]

    def _describe(self, model: _Model, var: int) -> str:
        if var < model.n:
            n, i, c = model.classes[var][0]
            return f"{n} row {i} column '{c}'"
        return model.virtual[var - model.n][2]

    # -- audit ----------------------------------------------------------------------------
    def recoverable(self, pubs: Mapping[str, Published]) -> list[str]:
        """Primary-suppressed cells (and small nested differences and sums) that published numbers
        determine.

        Judged from the published tables (a cell is hidden when it is missing there), so
        it checks any suppression, not only this ledger's.  Hidden zeros are not listed:
        a zero is recoverable only where public cells pin it (e.g. every matched student
        analysed), and then hiding more cells cannot change that.
        """
        model = self._model()
        hidden = self._hidden(model, lambda n, i, c: pd.isna(pubs[n].table.at[i, c]))
        masks = {n: primary_mask(src, spec, self.rules) for n, (src, spec) in self._tables.items()}
        primary = self._hidden(model, lambda n, i, c: masks[n].at[i, c])
        return [
            self._describe(model, v)
            for v in _determined(model, hidden)
            if _sensitive(model, primary, v) and (v >= model.n or model.value[v] != 0)
        ]

    @staticmethod
    def _hidden(model: _Model, is_hidden) -> np.ndarray:
        return np.array(
            [any(bool(is_hidden(n, i, c)) for n, i, c in cl) for cl in model.classes], dtype=bool
        )


def _sensitive(model: _Model, primary: np.ndarray, v: int) -> bool:
    """Must stay undetermined: a primary suppression or a small nested difference."""
    return v >= model.n or bool(primary[v])


def _one_dimension_parts(by_desc: Mapping[Count, int]):
    """``(parent count, its class, dimension, classes of its parts)``: every registered
    count that others refine by exactly one more filter, grouped by that dimension."""
    groups: dict[tuple[Count, str], list[int]] = {}
    for d, k in by_desc.items():
        for dim, lvl in d.where:
            groups.setdefault((Count(d.population, d.where - {(dim, lvl)}), dim), []).append(k)
    for (parent, dim), kids in groups.items():
        p = by_desc.get(parent)
        if p is not None:
            yield parent, p, dim, kids


def _splits(by_desc: Mapping[Count, int], value: np.ndarray):
    """``(parent, children, label)``: a count split along one dimension, adding up."""
    for parent, p, dim, kids in _one_dimension_parts(by_desc):
        if np.isclose(value[kids].sum(), value[p]):
            yield p, kids, f"{parent} = sum over {dim}"


def _small_overlaps(by_desc: Mapping[Count, int], value: np.ndarray, mc: int):
    """``(parent, children, overlap)``: a count whose parts along one dimension add up to
    1..mc-1 *more* than it, so that some units are in two parts (a comparison student
    matched in two districts). The excess counts those units: a small group, like a
    suppressed cell."""
    for _, p, _, kids in _one_dimension_parts(by_desc):
        over = float(value[kids].sum() - value[p])
        if len(kids) > 1 and 0 < over < mc:
            yield p, kids, over


def _small_nested(by_desc: Mapping[Count, int], value: np.ndarray, mc: int):
    """``(outer, inner, difference, label)`` of nested counts differing by 1..mc-1."""
    for da, a in by_desc.items():
        for db, b in by_desc.items():
            if da.contains(db) and 0 < value[a] - value[b] < mc:
                yield a, b, float(value[a] - value[b]), f"{da} - {db}"


#: Subsets of one identity's small cells tried per identity (all of them up to this many
#: small cells; beyond it pairs and the whole set).
_MAX_SMALL_PARTS = 12


def _small_sums(
    equations: Sequence[Mapping[int, float]], value: np.ndarray, mc: int, n: int
) -> list[tuple[tuple[int, ...], float]]:
    """Sets of two or more cells that add up inside one identity and sum to 1..mc-1.

    Their union counts a group of students as small as any suppressed cell: two
    suppressed tiers whose unmatched students sum to 1 reveal one student even though
    neither cell is determined on its own. Only cells below ``mc`` can be in such a set
    (counts are not negative), so the sets are drawn from each identity's small cells.
    """
    out: dict[tuple[int, ...], float] = {}
    for e in equations:
        small = sorted(k for k, c in e.items() if k < n and c < 0 and value[k] < mc)
        if len(small) < 2:
            continue
        if len(small) <= _MAX_SMALL_PARTS:
            subs = itertools.chain.from_iterable(
                itertools.combinations(small, r) for r in range(2, len(small) + 1)
            )
        else:
            subs = itertools.chain(itertools.combinations(small, 2), [tuple(small)])
        for sub in subs:
            total = float(value[list(sub)].sum())
            if 0 < total < mc:
                out.setdefault(tuple(sub), total)
    return list(out.items())


def _determined(model: _Model, hidden: np.ndarray) -> list[int]:
    """Unknowns (hidden classes, small nested differences and sums) the identities determine."""
    used = {k for e in model.equations for k in e}  # an unknown in no identity is free
    unknown = [k for k in range(model.n) if hidden[k] and k in used] + [
        model.n + j for j in range(len(model.virtual))
    ]
    if not unknown:
        return []
    pos = {k: j for j, k in enumerate(unknown)}
    rows = [e for e in model.equations if any(k in pos for k in e)]
    if not rows:
        return []
    a = np.zeros((len(rows), len(unknown)))
    for r, e in enumerate(rows):
        for k, v in e.items():
            if k in pos:
                a[r, pos[k]] = v
    _, s, vt = np.linalg.svd(a)
    rank = int((s > 1e-9 * max(1.0, s.max(initial=0.0))).sum())
    null = vt[rank:].T  # unknowns x nullity
    norms = np.linalg.norm(null, axis=1) if null.size else np.zeros(len(unknown))
    return [k for k, j in pos.items() if norms[j] < 1e-9]


# --- the report's tables ------------------------------------------------------------------

#: The sample flow's steps, each a subset of the one before.
FLOW_STEPS = ("extract", "eligible", "visited", "matched", "analysed")
#: Names of the same dimension in the match summary and the subgroup table.
DIMENSION_ALIASES = {"district": "district_code", "tier": "prior_year_tier"}
STUDENTS = Count.of("students")
COMPARISON = Count.of("comparison students")


def _flow_counts() -> dict[str, Count]:
    out, cur = {"extract": STUDENTS}, STUDENTS
    for step in FLOW_STEPS[1:]:
        cur = cur.refine(**{step: "yes"})
        out[step] = cur
    return out


def describe_report_counts(
    sources: Mapping[str, tuple[pd.DataFrame, TableSpec]], metrics: Mapping
) -> dict[str, dict[tuple[int, str], Count]]:
    """What the report's shared count cells count (see the module docstring).

    Sample flow steps are nested (extract ⊃ eligible ⊃ visited ⊃ matched ⊃ analysed;
    ``excluded`` is the previous step less this one); the match summary splits the
    visited and matched students by a dimension; the subgroup table splits the analysed
    students and the comparison students; ``metrics.json``'s ``n_treated`` and
    ``n_comparison`` are the treated (:func:`treated_count`) and comparison students,
    as are the main effects' counts equal to them; the primary estimator's ``n_treated``
    per event time (event studies, treated event means) are the treated students observed
    at that event time.
    """
    flow = _flow_counts()
    primary = str(metrics.get("primary_estimator", ""))
    n_t, n_c = metrics.get("n_treated"), metrics.get("n_comparison")
    treated = treated_count(sources, metrics)
    out: dict[str, dict[tuple[int, str], Count]] = {}

    ctx = {"flow": flow, "treated": treated, "primary": primary, "n_t": n_t, "n_c": n_c}
    for name, (df, _) in sources.items():
        df = df.reset_index(drop=True)
        describe = _DESCRIBERS.get(name)
        c = describe(df, ctx) if describe is not None else {}
        out[name] = {k: v for k, v in c.items() if pd.notna(df.at[k[0], k[1]])}
    return out


def _dim(d) -> str:
    return DIMENSION_ALIASES.get(str(d), str(d))


def _et(v) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else str(f)


def _describe_flow(df: pd.DataFrame, ctx: dict) -> dict:
    flow, c = ctx["flow"], {}
    steps = [str(s) for s in df["step"]]
    for i, s in enumerate(steps):
        if s in flow:
            c[(i, "students")] = flow[s]
            if i and steps[i - 1] in flow and "excluded" in df.columns:
                c[(i, "excluded")] = flow[steps[i - 1]].refine(**{s: "no"})
    return c


def _describe_match_summary(df: pd.DataFrame, ctx: dict) -> dict:
    flow, c = ctx["flow"], {}
    for i, r in df.iterrows():
        w = {_dim(r["dimension"]): r["level"]}
        c[(i, "treated")] = flow["visited"].refine(**w)
        c[(i, "matched")] = flow["matched"].refine(**w)
        c[(i, "unmatched")] = flow["visited"].refine(**w, matched="no")
    return c


def _describe_subgroups(df: pd.DataFrame, ctx: dict) -> dict:
    c = {}
    for i, r in df.iterrows():
        w = {_dim(r["subgroup"]): r["level"]}
        c[(i, "n_treated")] = ctx["treated"].refine(**w)
        c[(i, "n_comparison")] = COMPARISON.refine(**w)
    return c


def _describe_main_effects(df: pd.DataFrame, ctx: dict) -> dict:
    c = {}
    for i, r in df.iterrows():
        if ctx["n_t"] is not None and r["n_treated"] == ctx["n_t"]:
            c[(i, "n_treated")] = ctx["treated"]
        if ctx["n_c"] is not None and r["n_comparison"] == ctx["n_c"]:
            c[(i, "n_comparison")] = COMPARISON
    return c


def _describe_event_study(df: pd.DataFrame, ctx: dict) -> dict:
    return {
        (i, "n_treated"): ctx["treated"].refine(event_time=_et(r["event_time"]))
        for i, r in df.iterrows()
        if str(r["estimator"]) == ctx["primary"]
    }


def _describe_event_means(df: pd.DataFrame, ctx: dict) -> dict:
    return {
        (i, "n_students"): (ctx["treated"] if r["role"] == "treated" else COMPARISON).refine(
            event_time=_et(r["event_time"])
        )
        for i, r in df.iterrows()
    }


_DESCRIBERS = {
    "sample_flow": _describe_flow,
    "match_summary": _describe_match_summary,
    "subgroups": _describe_subgroups,
    "main_effects": _describe_main_effects,
    "event_study": _describe_event_study,
    "event_study_chronic": _describe_event_study,
    "event_means": _describe_event_means,
}


def treated_count(sources: Mapping[str, tuple[pd.DataFrame, TableSpec]], metrics: Mapping) -> Count:
    """What ``metrics.json``'s ``n_treated`` counts: the last sample-flow step it equals.

    (The estimate stage's treated students are the matched visited students; a flow
    that also counts those observed after the visit lists them as a further step.)
    When no step has that number, it is a population of its own.
    """
    flow = _flow_counts()
    n_t = metrics.get("n_treated")
    if "sample_flow" in sources and n_t is not None:
        df = sources["sample_flow"][0]
        same = [str(s) for s, v in zip(df["step"], df["students"], strict=True) if v == n_t]
        same = [s for s in same if s in flow]
        if same:
            return flow[same[-1]]
    return Count.of("treated students")


def _truth_with_counts(
    sources: Mapping[str, tuple[pd.DataFrame, TableSpec]], metrics: Mapping
) -> tuple[pd.DataFrame, TableSpec]:
    """``truth_comparison`` with the ``n_treated`` each estimate rests on, and its rule.

    Averages rest on the analysed students; ``event time e`` on the estimator's
    ``n_treated`` at ``e`` in the event study; ``subgroup=level`` on the subgroup's.
    """
    tc = sources["truth_comparison"][0].reset_index(drop=True).copy()
    es = sources["event_study"][0] if "event_study" in sources else pd.DataFrame()
    sg = sources["subgroups"][0] if "subgroups" in sources else pd.DataFrame()
    n_es = {(str(r["estimator"]), int(r["event_time"])): r["n_treated"] for _, r in es.iterrows()}
    n_sg = {f"{r['subgroup']}={r['level']}": r["n_treated"] for _, r in sg.iterrows()}
    n = []
    for _, r in tc.iterrows():
        q = str(r["quantity"])
        if q.startswith("event time "):
            n.append(n_es.get((str(r["estimator"]), int(q.split()[-1])), np.nan))
        elif q in n_sg:
            n.append(n_sg[q])
        else:
            n.append(metrics.get("n_treated", np.nan))
    tc["n_treated"] = pd.to_numeric(pd.Series(n, dtype=object), errors="coerce")
    values = tuple(
        c for c in ("estimate", "truth", "bias", "covered", "ci_low", "ci_high") if c in tc
    )
    spec = TableSpec(
        "truth_comparison",
        ("estimator", "quantity"),
        estimates=(EstimateRule(values, ("n_treated",)),),
    )
    return tc, spec


def publish_tables(
    sources: Mapping[str, tuple[pd.DataFrame, TableSpec]], rules: Rules, metrics: Mapping
) -> dict[str, Published]:
    """Suppress the report's tables together (one ledger) and check each one.

    Parameters
    ----------
    sources
        ``{name: (unsuppressed table, spec)}`` (the report's ``published_sources``).
    rules
        Disclosure thresholds.
    metrics
        ``metrics.json`` (its ``n_treated`` and ``n_comparison`` are public for sure).

    Returns
    -------
    dict
        ``{name: Published}``; ``truth_comparison`` gains ``n_treated`` and is published
        with suppression of estimates resting on fewer than ``min_denominator``.

    Raises
    ------
    DisclosureError
        A cell that cannot be protected, or a table failing
        :func:`pipeline.disclosure.assert_published_safe`, or a recoverable cell.
    """
    sources = dict(sources)
    if "truth_comparison" in sources:
        sources["truth_comparison"] = _truth_with_counts(sources, metrics)
    counts = describe_report_counts(sources, metrics)
    ledger = DisclosureLedger(rules)
    for name, (df, spec) in sources.items():
        ledger.register(name, df, spec, counts=counts.get(name))
    met = pd.DataFrame(
        {"n_treated": [metrics.get("n_treated")], "n_comparison": [metrics.get("n_comparison")]}
    )
    ledger.register(
        "metrics.json",
        met,
        TableSpec("metrics.json", (), ("n_treated", "n_comparison")),
        counts={(0, "n_treated"): treated_count(sources, metrics), (0, "n_comparison"): COMPARISON},
        public=True,
    )
    pubs = ledger.suppress()
    pubs.pop("metrics.json")
    for p in pubs.values():
        assert_published_safe(p.table, p.source, p.spec, rules)
    left = ledger.recoverable({**pubs, "metrics.json": _as_published(met)})
    if left:
        raise DisclosureError("ledger: recoverable after suppression: " + "; ".join(left[:10]))
    return pubs


def _as_published(df: pd.DataFrame) -> Published:
    spec = TableSpec("metrics.json", (), ("n_treated", "n_comparison"))
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    return Published("metrics.json", df, mask, df, spec)
