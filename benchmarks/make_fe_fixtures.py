"""Freeze reference numbers from pyfixest for ``tests/test_did_estimators.py``.

Run in a SEPARATE virtual environment that has pyfixest (the project does not depend on
it)::

    python3 -m venv /work/peers-fe && /work/peers-fe/bin/pip install pyfixest
    /work/peers-fe/bin/python benchmarks/make_fe_fixtures.py

It reads ``tests/fixtures/df_het.csv`` (the ``df_het`` data shipped with pyfixest,
``pyfixest/did/data/df_het.csv``) and writes ``tests/fixtures/fe_*.csv``:

* ``fe_twfe.csv``: ``feols(dep_var ~ i(rel_year, ref=-1) | unit + year)`` with CRV1 by
  ``state`` and by ``year`` (fixest's default small-sample correction).
* ``fe_did2s.csv``: Gardner's two-stage estimator (static ATT with unit + year and with
  state + year first-stage effects, and the event study with unit + year).
* ``fe_sunab_coefs.csv`` / ``fe_sunab_agg.csv``: the saturated (Sun-Abraham) event study,
  cohort x relative-time coefficients and the aggregation by relative time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    df = pd.read_csv(FIX / "df_het.csv")
    rows = []
    # -- TWFE dynamic regression with absorbed unit + year effects ------------------------
    d = df.copy()
    d["rel"] = d["rel_year"].replace(-np.inf, -1000).astype(int)  # never treated -> ref bin
    for cl in ["state", "year"]:
        m = pf.feols("dep_var ~ i(rel, ref=-1) | unit + year", data=d, vcov={"CRV1": cl})
        t = m.tidy().reset_index()
        for _, r in t.iterrows():
            name = r["Coefficient"]
            e = int(name.split("::")[1])
            if e == -1000:
                continue
            rows.append(
                {
                    "cluster": cl,
                    "event_time": e,
                    "estimate": r["Estimate"],
                    "std_error": r["Std. Error"],
                }
            )
    pd.DataFrame(rows).to_csv(FIX / "fe_twfe.csv", index=False, float_format="%.12g")

    # -- did2s (Gardner) ------------------------------------------------------------------
    rows = []
    # R did2s's README uses first_stage = ~ 0 | state + year (2.152215, SE 0.047607)
    for fe in ["unit + year", "state + year"]:
        fit = pf.did2s(
            df,
            yname="dep_var",
            first_stage=f"~ 0 | {fe}",
            second_stage="~ i(treat, ref=False)",
            treatment="treat",
            cluster="state",
        )
        t = fit.tidy().reset_index()
        for _, r in t.iterrows():
            rows.append(
                {
                    "term": f"static {fe.split()[0]}",
                    "event_time": 0,
                    "estimate": r["Estimate"],
                    "std_error": r["Std. Error"],
                }
            )
    d = df.copy()
    names = {}
    for e in sorted(int(v) for v in d["rel_year"].unique() if np.isfinite(v) and v != -1):
        name = f"ev_m{-e}" if e < 0 else f"ev_{e}"
        d[name] = (d["rel_year"] == e).astype(float)
        names[name] = e
    fit = pf.did2s(
        d,
        yname="dep_var",
        first_stage="~ 0 | unit + year",
        second_stage="~ 0 + " + " + ".join(names),
        treatment="treat",
        cluster="state",
    )
    t = fit.tidy().reset_index()
    for _, r in t.iterrows():
        e = names[r["Coefficient"]]
        rows.append(
            {
                "term": "event",
                "event_time": e,
                "estimate": r["Estimate"],
                "std_error": r["Std. Error"],
            }
        )
    pd.DataFrame(rows).to_csv(FIX / "fe_did2s.csv", index=False, float_format="%.12g")

    # -- saturated event study (Sun-Abraham) ----------------------------------------------
    d = df[["unit", "year", "g", "dep_var", "state"]].copy()
    d["g"] = d["g"].astype(int)
    ses = pf.event_study(
        d,
        yname="dep_var",
        idname="unit",
        tname="year",
        gname="g",
        estimator="saturated",
        cluster="state",
    )
    t = ses.tidy().reset_index()
    ext = t["Coefficient"].str.extract(r".+::(?P<e>.+):.+::(?P<g>.+)")
    coefs = pd.DataFrame(
        {
            "cohort": ext["g"].astype(float).astype(int),
            "event_time": ext["e"].astype(float).astype(int),
            "estimate": t["Estimate"],
            "std_error": t["Std. Error"],
        }
    )
    coefs.to_csv(FIX / "fe_sunab_coefs.csv", index=False, float_format="%.12g")
    agg = ses.aggregate(agg="period", weighting="shares").reset_index()
    agg = pd.DataFrame(
        {
            "event_time": agg["period"].astype(float).astype(int),
            "estimate": agg["Estimate"].astype(float),
            "std_error": agg["Std. Error"].astype(float),
        }
    )
    agg.to_csv(FIX / "fe_sunab_agg.csv", index=False, float_format="%.12g")
    print("pyfixest", pf.__version__, "fixtures written to", FIX, file=sys.stderr)


if __name__ == "__main__":
    main()
