"""Input preparation of :mod:`pipeline.did.cs`: a long panel to a wide periods × units
matrix, with R ``did``'s rules for cohorts, the first period and balancing."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

# warnings point at the caller of att_gt: user → att_gt → prepare → helper
_STACK = 4


@dataclass
class _Panel:
    ids: np.ndarray
    G: np.ndarray  # per unit, inf = never treated
    w: np.ndarray | None  # per unit, mean one (None: unweighted)
    Y: np.ndarray  # periods × units
    X: np.ndarray | None  # periods × units × k (with intercept)
    tlist: np.ndarray
    glist: np.ndarray
    cluster: np.ndarray | None
    unbalanced: bool = False


def parse_covariates(xformla, covariates) -> list[str]:
    """Covariate names from an R-style formula of plain column names or a list."""
    if xformla is not None and covariates is not None:
        raise ValueError("give either xformla or covariates, not both")
    if covariates is not None:
        return [str(c) for c in ([covariates] if isinstance(covariates, str) else covariates)]
    if xformla is None:
        return []
    rhs = str(xformla).strip()
    rhs = rhs.split("~", 1)[1] if "~" in rhs else rhs
    terms = [t.strip() for t in rhs.split("+") if t.strip()]
    terms = [t for t in terms if t != "1"]
    for t in terms:
        if not re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", t):
            raise ValueError(
                f"xformla term {t!r}: only plain column names are supported "
                "(create transformed columns in the data first)"
            )
    return terms


def _unit_constant(name: str, codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, dtype=values.dtype)
    out[codes] = values
    bad = out[codes] != values
    if values.dtype.kind == "f":
        bad &= ~(np.isnan(out[codes]) & np.isnan(values))
    if bad.any():
        raise ValueError(f"column '{name}' must be constant within unit (idname); it varies")
    return out


def _checked_columns(data, yname, tname, idname, gname, covs, weightsname, clustervars):
    if not isinstance(data, pd.DataFrame):
        raise TypeError("data must be a pandas DataFrame")
    needed = [idname, tname, gname, yname, *covs]
    extra = [c for c in (weightsname, clustervars) if c is not None]
    missing = [c for c in dict.fromkeys(needed + extra) if c not in data.columns]
    if missing:
        raise KeyError(f"att_gt: columns not in data: {missing}")
    for c in (tname, gname, yname, *covs, *([weightsname] if weightsname else [])):
        if not pd.api.types.is_numeric_dtype(data[c]):
            raise TypeError(f"att_gt: column '{c}' must be numeric (it is {data[c].dtype})")
    if data[gname].isna().any():
        raise ValueError(
            f"att_gt: column '{gname}' has missing values; code never-treated units as 0"
        )
    return list(dict.fromkeys(needed + extra))


def _complete_rows(data: pd.DataFrame, cols: list[str]) -> dict[str, np.ndarray]:
    """The columns as arrays, rows with a missing value dropped (with a warning)."""
    arrays = {c: data[c].to_numpy() for c in cols}
    keep = np.ones(len(data), dtype=bool)
    for c in cols:
        a = arrays[c]
        if a.dtype.kind in "fc":
            keep &= np.isfinite(a)
        elif a.dtype.kind == "O":
            keep &= ~pd.isna(a)
    if not keep.all():
        warnings.warn(
            f"att_gt: dropped {int((~keep).sum())} rows with missing values in {cols}",
            stacklevel=_STACK,
        )
        arrays = {c: a[keep] for c, a in arrays.items()}
    return arrays


def _index(arrays, idname, tname, gname):
    """Unit codes and ids, the unit's first treated period, periods and period positions."""
    t_raw = arrays[tname]
    codes, ids = pd.factorize(arrays[idname], sort=True)
    codes = codes.astype(np.int64, copy=False)
    n_all = ids.size
    G_all = _unit_constant(gname, codes, arrays[gname], n_all).astype(float)
    if (G_all < 0).any():
        raise ValueError(f"column '{gname}': first treated period must be >= 0 (0 = never)")
    tlist = np.unique(t_raw).astype(float)
    tpos = np.searchsorted(tlist, t_raw)
    T = tlist.size
    flat = codes * T
    flat += tpos
    dup = np.bincount(flat, minlength=n_all * T).max(initial=0) > 1
    del flat
    if dup:
        raise ValueError(
            f"att_gt: ({idname}, {tname}) is not unique: some units are observed more "
            "than once in a period"
        )
    return codes, ids, G_all, tlist, tpos


def _without_never_treated(G_all, tlist, gname, control_group, anticipation):
    """R's handling of a panel without never-treated units: periods from the last cohort's
    start are dropped; that cohort is the comparison (nevertreated) or left out of the
    groups (notyettreated, returned as ``drop_last``)."""
    glist_all = np.unique(G_all[np.isfinite(G_all)])
    if np.isinf(G_all).any():
        return G_all, tlist, None
    if glist_all.size == 0:
        raise ValueError(f"att_gt: no treated units ('{gname}' is 0 for every unit)")
    latest = glist_all.max()
    cutoff = latest - anticipation
    drop_last = None
    if control_group == "nevertreated":
        warnings.warn(
            "att_gt: no never-treated group; the last treated cohort "
            f"({latest:g}) is used as never treated and periods >= {cutoff:g} dropped",
            stacklevel=_STACK,
        )
        G_all = np.where(G_all == latest, np.inf, G_all)
    else:
        drop_last = latest
    tlist = tlist[tlist < cutoff]
    if tlist.size < 2:
        raise ValueError("att_gt: fewer than two periods before the last cohort starts")
    return G_all, tlist, drop_last


def _balanced(codes, tpos, unit_keep, T, T_all, allow_unbalanced, covs):
    """Units kept and rows kept after balancing; whether the panel stays unbalanced."""
    n_all = unit_keep.size
    in_t = None if T == T_all else tpos < T
    row_keep = unit_keep[codes] if in_t is None else unit_keep[codes] & in_t
    all_rows = bool(row_keep.all())
    counts = np.bincount(codes if all_rows else codes[row_keep], minlength=n_all)
    incomplete = unit_keep & (counts < T)
    unbalanced = bool(allow_unbalanced and incomplete.any())
    if unbalanced and covs:
        raise NotImplementedError(
            "att_gt: allow_unbalanced_panel=True is implemented without covariates only"
        )
    if incomplete.any() and not unbalanced:
        warnings.warn(
            f"att_gt: {int(incomplete.sum())} units are not observed (with complete data) in "
            "every period; they are dropped to balance the panel",
            stacklevel=_STACK,
        )
        unit_keep &= ~incomplete
        row_keep = unit_keep[codes] if in_t is None else unit_keep[codes] & in_t
    if not unit_keep.any():
        raise ValueError("att_gt: no units left after balancing the panel")
    return unit_keep, row_keep, unbalanced


def _wide(arrays, yname, covs, codes, tpos, unit_keep, row_keep, T, unbalanced):
    """The outcome (periods × units) and covariates (periods × units × k+1) matrices."""
    all_rows = bool(row_keep.all())
    new_code = np.cumsum(unit_keep) - 1
    n = int(unit_keep.sum())

    def rows(a: np.ndarray) -> np.ndarray:
        return a if all_rows else a[row_keep]

    rc = rows(codes if n == unit_keep.size else new_code[codes])
    rt = rows(tpos)
    Y = np.full((T, n), np.nan) if unbalanced else np.empty((T, n))
    Y[rt, rc] = rows(arrays[yname])
    X = None
    if covs:
        X = np.empty((T, n, len(covs) + 1))
        X[:, :, 0] = 1.0
        for j, c in enumerate(covs):
            X[rt, rc, j + 1] = rows(arrays[c])
    return Y, X


def _unit_weights(arrays, weightsname, codes, unit_keep):
    if weightsname is None:
        return None  # unweighted
    wv = arrays[weightsname].astype(float)
    w = _unit_constant(weightsname, codes, wv, unit_keep.size)[unit_keep]
    if (w < 0).any() or w.mean() <= 0:
        raise ValueError(f"column '{weightsname}': weights must be >= 0 with positive mean")
    return w / w.mean()


def _groups(G, tlist, anticipation, drop_last, gname, n_covs, control_group):
    """The cohorts to estimate, with R's warning on small groups."""
    glist = np.unique(G[np.isfinite(G)])
    glist = glist[glist > tlist[0] + anticipation]
    if drop_last is not None:
        glist = glist[glist < drop_last]
    if glist.size == 0:
        raise ValueError(
            f"att_gt: no valid groups; '{gname}' must be the first treated period "
            "(0 if never treated)"
        )
    # small groups (R: fewer than (number of covariates + 5) units)
    req = n_covs + 5
    sizes = {g: int(np.sum(G == g)) for g in glist}
    sizes[np.inf] = int(np.isinf(G).sum())
    small = [g for g, s in sizes.items() if 0 < s < req]
    if small:
        warnings.warn(
            f"att_gt: some groups have fewer than {req} units: "
            f"{[0 if np.isinf(g) else g for g in small]}",
            stacklevel=_STACK,
        )
        if np.inf in small and control_group == "nevertreated":
            raise ValueError(
                "att_gt: the never-treated group is too small to serve as comparison; "
                "try control_group='notyettreated'"
            )
    return glist


def prepare(
    data: pd.DataFrame,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    covs: list[str],
    weightsname: str | None,
    clustervars: str | None,
    control_group: str,
    anticipation: int,
    allow_unbalanced: bool = False,
) -> _Panel:
    """The long panel ``data`` as the wide matrices the estimation works on."""
    cols = _checked_columns(data, yname, tname, idname, gname, covs, weightsname, clustervars)
    arrays = _complete_rows(data, cols)
    codes, ids, G_all, tlist, tpos = _index(arrays, idname, tname, gname)
    T_all = tlist.size

    G_all = np.where(G_all == 0, np.inf, G_all)
    G_all = np.where(G_all > tlist.max() + anticipation, np.inf, G_all)
    G_all, tlist, drop_last = _without_never_treated(
        G_all, tlist, gname, control_group, anticipation
    )

    unit_keep = np.ones(ids.size, dtype=bool)
    treated_first = np.isfinite(G_all) & (G_all <= tlist[0] + anticipation)
    if treated_first.any():
        warnings.warn(
            f"att_gt: dropped {int(treated_first.sum())} units already treated in the first "
            f"period{' (accounting for anticipation)' if anticipation else ''}",
            stacklevel=_STACK - 1,
        )
        unit_keep &= ~treated_first

    # rows in kept units and kept periods (tpos indexes the periods kept, a prefix)
    T = tlist.size
    unit_keep, row_keep, unbalanced = _balanced(
        codes, tpos, unit_keep, T, T_all, allow_unbalanced, covs
    )
    Y, X = _wide(arrays, yname, covs, codes, tpos, unit_keep, row_keep, T, unbalanced)
    G = G_all[unit_keep]
    w = _unit_weights(arrays, weightsname, codes, unit_keep)
    cluster = None
    if clustervars is not None:
        cl_all = _unit_constant(clustervars, codes, arrays[clustervars], ids.size)
        cluster = pd.factorize(cl_all[unit_keep], sort=True)[0].astype(np.int64)
    glist = _groups(G, tlist, anticipation, drop_last, gname, len(covs), control_group)
    return _Panel(
        ids=np.asarray(ids)[unit_keep],
        G=G,
        w=w,
        Y=Y,
        X=X,
        tlist=tlist,
        glist=glist,
        cluster=cluster,
        unbalanced=unbalanced,
    )
