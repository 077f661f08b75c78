"""Regenerate the frozen reference outputs for tests/test_did_cs.py from the PyPI ports
of R's ``did`` (``moderndid``, ``csdid``).

The peers are NOT project dependencies: install them in a separate environment and run
this script with that interpreter, from the repository root::

    python3 -m venv /work/peers-cs
    /work/peers-cs/bin/pip install moderndid csdid differences
    /work/peers-cs/bin/python benchmarks/make_cs_fixtures.py

It writes

* ``tests/fixtures/mpdta.csv`` — the ``mpdta`` data (from ``moderndid.load_mpdta()``);
* ``tests/fixtures/cs_moderndid.csv`` and ``tests/fixtures/cs_csdid.csv`` — long tables
  ``config, kind, group, time, estimate, se`` with the ATT(g,t) (``kind="attgt"``,
  ``group``/``time``) and the aggregations (``kind`` = ``simple``/``dynamic``/``group``/
  ``calendar``/``dynamic_balance1``/``dynamic_window``, ``group`` = event time, group or
  period, ``time`` empty; the overall estimate has ``group`` empty) for every
  configuration in ``CONFIGS``; analytic standard errors;
* ``tests/fixtures/cs_csdid_unbalanced.csv`` — the same from ``csdid`` for
  ``UNBALANCED_CONFIGS`` (``allow_unbalanced_panel=True`` on ``mpdta`` with about 10% of
  the rows removed; ``moderndid`` 0.2.0 fails on unbalanced panels);
* ``tests/fixtures/cs_moderndid_cluster.csv`` — clustered bootstrap standard errors from
  ``moderndid`` with many draws (its clustered inference is bootstrap only), for 50
  clusters of 10 counties each (``cluster10`` = position of ``countyreal`` in sorted
  order // 10).  Equal cluster sizes, because ``moderndid`` 0.2 aggregates influence
  functions to cluster *means* (older R ``did``) while current R ``did`` and
  ``pipeline.did.cs`` use cluster *sums*; the two coincide when clusters are of equal
  size.

Versions used for the committed files are recorded in the ``# generated`` comment line.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT))

from tests.cs_configs import AGGS, CONFIGS, UNBALANCED_CONFIGS, unbalanced  # noqa: E402

KEYS = dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat")


def load_mpdta() -> pd.DataFrame:
    import moderndid

    d = moderndid.load_mpdta().to_pandas()
    return d


def _rows(config, kind, keys, est, se, times=None):
    out = []
    for i, k in enumerate(keys):
        out.append(
            dict(
                config=config,
                kind=kind,
                group=k,
                time=None if times is None else times[i],
                estimate=est[i],
                se=se[i],
            )
        )
    return out


def run_moderndid(d: pd.DataFrame, configs=None, **extra) -> pd.DataFrame:
    import polars as pl
    from moderndid import aggte, att_gt

    dp = pl.from_pandas(d)
    rows = []
    for name, cfg in (configs or CONFIGS).items():
        r = att_gt(dp, **KEYS, **cfg, **extra, boot=False, cband=False)
        rows += _rows(name, "attgt", r.groups, r.att_gt, r.se_gt, r.times)
        for kind, a in AGGS.items():
            ag = aggte(r, **a, boot=False, cband=False)
            rows.append(
                dict(
                    config=name,
                    kind=kind,
                    group=None,
                    time=None,
                    estimate=ag.overall_att,
                    se=ag.overall_se,
                )
            )
            if a["type"] != "simple":
                rows += _rows(name, kind, ag.event_times, ag.att_by_event, ag.se_by_event)
    return pd.DataFrame(rows)


def run_moderndid_cluster(d: pd.DataFrame, biters: int = 20000) -> pd.DataFrame:
    import polars as pl
    from moderndid import aggte, att_gt

    rank = d["countyreal"].rank(method="dense").astype(int) - 1
    d = d.assign(cluster10=rank // 10)
    dp = pl.from_pandas(d)
    r = att_gt(
        dp,
        **KEYS,
        clustervars=["cluster10"],
        boot=True,
        biters=biters,
        cband=False,
        random_state=20240601,
    )
    rows = _rows("cluster10", "attgt", r.groups, r.att_gt, r.se_gt, r.times)
    ag = aggte(r, type="dynamic", boot=True, biters=biters, cband=False, random_state=20240602)
    rows += _rows("cluster10", "dynamic", ag.event_times, ag.att_by_event, ag.se_by_event)
    rows.append(
        dict(
            config="cluster10",
            kind="dynamic",
            group=None,
            time=None,
            estimate=ag.overall_att,
            se=ag.overall_se,
        )
    )
    return pd.DataFrame(rows)


def run_csdid(d: pd.DataFrame, configs=None, **extra) -> pd.DataFrame:
    from csdid.att_gt import ATTgt

    rows = []
    for name, cfg in (configs or CONFIGS).items():
        cfg = dict(cfg)
        est = cfg.pop("est_method", "dr")
        base = cfg.pop("base_period", "varying")
        xf = cfg.pop("xformla", None)
        kw = {"xformla": f"lemp{xf}"} if xf else {}
        with contextlib.redirect_stdout(io.StringIO()):
            m = ATTgt(**KEYS, data=d, **cfg, **kw, **extra).fit(
                est_method=est, base_period=base, bstrap=False
            )
        res = m.results
        rows += _rows(name, "attgt", res["group"], res["att"], res["se"], res["year"])
        for kind, a in AGGS.items():
            a = dict(a)
            typec = a.pop("type")
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    m.aggte(typec=typec, bstrap=False, cband=False, **a)
            except Exception as exc:  # noqa: BLE001 - record and go on
                print(f"csdid {name}/{kind}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            ag = m.atte
            rows.append(
                dict(
                    config=name,
                    kind=kind,
                    group=None,
                    time=None,
                    estimate=ag["overall_att"],
                    se=ag["overall_se"],
                )
            )
            if typec != "simple":
                rows += _rows(name, kind, ag["egt"], ag["att_egt"], ag["se_egt"])
    return pd.DataFrame(rows)


def _write(df: pd.DataFrame, path: Path, note: str) -> None:
    body = df.to_csv(index=False, float_format="%.12g")
    path.write_text(f"# generated by benchmarks/make_cs_fixtures.py; {note}\n{body}")
    print(f"wrote {path} ({len(df)} rows)")


def main() -> None:
    from importlib.metadata import version

    warnings.simplefilter("ignore")
    FIX.mkdir(parents=True, exist_ok=True)
    d = load_mpdta()
    d.to_csv(FIX / "mpdta.csv", index=False, float_format="%.17g")
    _write(run_moderndid(d), FIX / "cs_moderndid.csv", f"moderndid {version('moderndid')}")

    _write(
        run_moderndid_cluster(d),
        FIX / "cs_moderndid_cluster.csv",
        f"moderndid {version('moderndid')}, 20000 Rademacher multiplier draws",
    )
    try:
        _write(run_csdid(d), FIX / "cs_csdid.csv", f"csdid {version('csdid')}")
        # moderndid 0.2.0 fails on allow_unbalanced_panel=True (outcomes_tensor is None)
        _write(
            run_csdid(unbalanced(d), UNBALANCED_CONFIGS, allow_unbalanced_panel=True),
            FIX / "cs_csdid_unbalanced.csv",
            f"csdid {version('csdid')}, allow_unbalanced_panel=True",
        )
    except ImportError:
        print("csdid not installed; skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
