"""Aggregations of ``ATT(g, t)`` for :mod:`pipeline.did.cs` (R ``did::aggte``)."""

from __future__ import annotations

import numpy as np

from pipeline.did import _cs_boot as boot
from pipeline.did._cs_boot import checked_crit, cohort_weights, normal_crit
from pipeline.did._cs_results import AggteResult, ATTgtResult, as_int_if_whole

__all__ = ["aggte"]

_TINY = boot._TINY


def aggte(
    result: ATTgtResult,
    type: str = "group",  # noqa: A002 - R's argument name
    *,
    balance_e: int | None = None,
    min_e: float = -np.inf,
    max_e: float = np.inf,
    na_rm: bool = False,
    bstrap: bool | None = None,
    biters: int | None = None,
    cband: bool | None = None,
    alp: float | None = None,
    seed=None,
    boot_weights: str | None = None,
) -> AggteResult:
    """Aggregate ATT(g, t) (R ``did::aggte``).

    Parameters
    ----------
    result
        Output of :func:`att_gt`.
    type
        ``"simple"`` (post-treatment cells weighted by group size), ``"dynamic"``
        (event study), ``"group"`` or ``"calendar"``.
    balance_e, min_e, max_e
        Event-time restrictions as in R (``balance_e``: only groups observed for at least
        ``balance_e`` periods after treatment; ``min_e``/``max_e``: event-time window).
    na_rm
        Drop cells whose ATT is NaN (otherwise an error, as in R).
    bstrap, biters, cband, alp, seed, boot_weights
        Inference options; ``None`` takes the value used in :func:`att_gt`.  When
        :func:`att_gt` already drew bootstrap multipliers with the same ``biters``,
        ``seed`` and ``boot_weights``, the aggregation reuses them (every aggregate is
        linear in the cell influence functions and the group-share terms).

    Notes
    -----
    Every aggregate ``θ_j`` has influence function
    ``ψ_j = Ψ[:, cells] @ W[:, j] + w · A[G, j]``: a weighted sum of the cells' influence
    functions plus, where R's ``did`` accounts for estimating the group-size weights
    (``wif``), a term in each unit's own group share.
    """
    if type not in ("simple", "dynamic", "group", "calendar"):
        raise ValueError("type must be 'simple', 'dynamic', 'group' or 'calendar'")
    prm = result.params
    opts = {
        "bstrap": prm["bstrap"] if bstrap is None else bool(bstrap),
        "biters": prm["biters"] if biters is None else int(biters),
        "cband": prm["cband"] if cband is None else bool(cband),
        "alp": prm["alp"] if alp is None else float(alp),
        "seed": prm["seed"] if seed is None else seed,
        "boot_weights": prm["boot_weights"] if boot_weights is None else boot_weights,
    }

    cols = np.arange(result.att.size)
    if np.isnan(result.att).any():
        if not na_rm:
            raise ValueError("aggte: some ATT(g,t) are NaN; set na_rm=True to drop them")
        cols = np.flatnonzero(~np.isnan(result.att))
    acc = _Weights(result, cols)
    builder = {"simple": _simple, "group": _by_group, "dynamic": _dynamic, "calendar": _calendar}
    egt, n_tr = builder[type](acc, balance_e=balance_e, min_e=min_e, max_e=max_e)

    Wm = np.column_stack(acc.w_cols)  # cells × outputs (last: overall)
    Am = np.column_stack(acc.a_cols)  # groups × outputs
    est = acc.est
    psi = result.inffunc if cols.size == result.att.size else result.inffunc[:, cols]
    inf = _influence(result, psi, Wm, Am)
    m_e = 0 if egt is None else egt.size
    se_all, crit = _inference(result, cols, psi, inf, Wm, Am, est, m_e, opts)

    cl = result.cluster_codes
    vc = boot.if_vcov(inf[:, :m_e], result.n, cl) if m_e else None
    if egt is not None:
        egt = as_int_if_whole(np.asarray(egt, dtype=float))
    return AggteResult(
        type=type,
        overall_att=est[-1],
        overall_se=float(se_all[-1]),
        egt=egt,
        att_egt=np.array(est[:-1]) if m_e else None,
        se_egt=se_all[:-1] if m_e else None,
        crit_val_egt=crit,
        inf_func_egt=inf[:, :m_e] if m_e else None,
        inf_func_overall=inf[:, -1],
        vcov_egt=vc,
        n_treated_egt=n_tr,
        alp=opts["alp"],
        estimator=result.estimator,
        params={
            **prm,
            **opts,
            "balance_e": balance_e,
            "min_e": min_e,
            "max_e": max_e,
        },
    )


class _Weights:
    """The aggregates being built: output ``j`` has estimate ``att @ W[:, j]`` and
    influence function ``Ψ[:, cells] @ W[:, j] + w · A[G, j]``."""

    def __init__(self, result: ATTgtResult, cols: np.ndarray):
        self.group = np.asarray(result.group, dtype=float)[cols]
        self.t = np.asarray(result.time, dtype=float)[cols]
        self.att = result.att[cols]
        G, w = result.unit_group, result.unit_weights
        self.glist = result.glist  # all groups of att_gt (shares are over all units)
        self.pg_g = np.array([np.mean(w * (G == g)) for g in self.glist])
        self.gpos = np.searchsorted(self.glist, self.group)
        self.pg = self.pg_g[self.gpos]
        self.gsize = np.array([np.sum(G == g) for g in self.glist], dtype=np.int64)
        self.w_cols: list[np.ndarray] = []
        self.a_cols: list[np.ndarray] = []
        self.est: list[float] = []

    @property
    def kc(self) -> int:
        return self.att.size

    def add(self, keep: np.ndarray, wif: bool) -> None:
        """Cells ``keep`` averaged with group-share weights (R's ``pg/sum(pg)``)."""
        pg, att = self.pg, self.att
        wk = pg[keep] / pg[keep].sum()
        wv = np.zeros(self.kc)
        wv[keep] = wk
        theta = float(wk @ att[keep])
        av = np.zeros(self.glist.size)
        if wif:  # estimation of the shares: Σ_j w 1{G=g_j} (att_j − θ) / Σ pg
            np.add.at(av, self.gpos[keep], (att[keep] - theta) / pg[keep].sum())
        self.append(wv, av, theta)

    def append(self, wv: np.ndarray, av: np.ndarray, theta: float) -> None:
        self.w_cols.append(wv)
        self.a_cols.append(av)
        self.est.append(theta)

    def n_treated(self, keep: np.ndarray) -> int:
        """Units in the groups of cells ``keep``."""
        return int(self.gsize[np.unique(self.gpos[keep])].sum())


def _simple(acc: _Weights, max_e, **_):
    group, t = acc.group, acc.t
    keep = np.flatnonzero((group <= t) & (t - group <= max_e))
    if keep.size == 0:
        raise ValueError("aggte: no post-treatment cells to aggregate")
    acc.add(keep, True)
    return None, None


def _by_group(acc: _Weights, max_e, **_):
    group, t = acc.group, acc.t
    keep_g = []
    for gi, g in enumerate(acc.glist):
        kg = np.flatnonzero((group == g) & (g <= t) & (t - g <= max_e))
        if kg.size:
            acc.add(kg, False)
            keep_g.append(gi)
    if not keep_g:
        raise ValueError("aggte: no post-treatment cells to aggregate")
    keep_g = np.array(keep_g, dtype=np.int64)
    pgg = acc.pg_g[keep_g]
    s = pgg.sum()
    att_g = np.array(acc.est)
    theta = float(pgg @ att_g / s)
    wv = np.column_stack(acc.w_cols) @ (pgg / s)
    av = np.column_stack(acc.a_cols) @ (pgg / s)
    av[keep_g] += (att_g - theta) / s
    acc.append(wv, av, theta)
    return acc.glist[keep_g], acc.gsize[keep_g]


def _dynamic(acc: _Weights, balance_e, min_e, max_e):
    group, t = acc.group, acc.t
    e_cell = t - group
    eseq = np.unique(e_cell)
    include = np.ones(acc.kc, dtype=bool)
    if balance_e is not None:
        max_t, min_t = t.max(), t.min()
        eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - max_t + min_t)]
        include = (max_t - group) >= balance_e
    eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
    e_list, n_list = [], []
    for e in eseq:
        ke = np.flatnonzero((e_cell == e) & include)
        if ke.size:
            acc.add(ke, True)
            e_list.append(e)
            n_list.append(acc.n_treated(ke))
    if not e_list:
        raise ValueError("aggte: no event times left after balance_e/min_e/max_e")
    egt = np.array(e_list)
    pos = egt >= 0
    if pos.any():
        acc.append(
            np.column_stack(acc.w_cols)[:, pos].mean(axis=1),
            np.column_stack(acc.a_cols)[:, pos].mean(axis=1),
            float(np.mean(np.array(acc.est)[pos])),
        )
    else:
        acc.append(np.zeros(acc.kc), np.zeros(acc.glist.size), float("nan"))
    return egt, np.array(n_list, dtype=np.int64)


def _calendar(acc: _Weights, **_):
    group, t = acc.group, acc.t
    tl = np.unique(t)
    tl = tl[tl >= group.min()]
    t_list, n_list = [], []
    for t1 in tl:
        kt = np.flatnonzero((t == t1) & (group <= t))
        if kt.size:
            acc.add(kt, True)
            t_list.append(t1)
            n_list.append(acc.n_treated(kt))
    if not t_list:
        raise ValueError("aggte: no post-treatment cells to aggregate")
    acc.append(
        np.column_stack(acc.w_cols).mean(axis=1),
        np.column_stack(acc.a_cols).mean(axis=1),
        float(np.mean(acc.est)),
    )
    return np.array(t_list), np.array(n_list, dtype=np.int64)


def _influence(result: ATTgtResult, psi, Wm, Am) -> np.ndarray:
    """Units × outputs influence functions: cells' plus the group-share terms."""
    G, w = result.unit_group, result.unit_weights
    inf = (Wm.T @ psi.T).T  # units × outputs, column-contiguous without a copy
    for j, g in enumerate(result.glist):  # group-share terms: w_i · Am[G_i]
        if np.any(Am[j]):
            m = G == g
            inf[m] += w[m, None] * Am[j]
    return inf


def _inference(result: ATTgtResult, cols, psi, inf, Wm, Am, est, m_e, opts):
    """Standard errors (analytic or bootstrap) and the critical value of the bands."""
    n, cl, prm = result.n, result.cluster_codes, result.params
    alp = opts["alp"]
    se_all = boot.if_se(inf, n, cl)
    se_all[(se_all <= _TINY) | ~np.isfinite(est)] = np.nan
    crit = None
    if opts["bstrap"] or (opts["cband"] and m_e):
        same = (prm["biters"], prm["seed"], prm["boot_weights"]) == (
            opts["biters"], opts["seed"], opts["boot_weights"]
        )
        if result.boot_draws is not None and same:
            dc, dg = result.boot_draws[:, cols], result.boot_draws_cohort
        else:
            dc, dg = boot.multiplier_draws(
                (psi, cohort_weights(result.unit_group, result.unit_weights, result.glist)),
                n,
                opts["biters"],
                opts["seed"],
                cl,
                opts["boot_weights"],
            )
        draws = dc @ Wm + dg @ Am
        if opts["bstrap"]:
            se_all = np.where(np.isfinite(se_all), boot.boot_se(draws), np.nan)
        if opts["cband"] and m_e:
            ok = np.isfinite(se_all[:-1])
            crit = checked_crit(boot.uniform_crit(draws[:, :m_e][:, ok], alp), alp)
    if m_e and crit is None:
        crit = normal_crit(alp)
    return se_all, crit
