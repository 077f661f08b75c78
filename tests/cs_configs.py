"""The configurations of the Callaway–Sant'Anna reference fixtures (``tests/fixtures/cs_*.csv``).

Shared by ``tests/test_did_cs.py`` and ``benchmarks/make_cs_fixtures.py``, which freezes
the peers' outputs for these configurations (tests never import from ``benchmarks/``).
"""

from __future__ import annotations

import pandas as pd

# name -> keyword arguments in R's did naming
CONFIGS: dict[str, dict] = {
    "base": {},
    "nyt": {"control_group": "notyettreated"},
    "dr_lpop": {"xformla": "~lpop"},
    "ipw_lpop": {"xformla": "~lpop", "est_method": "ipw"},
    "reg_lpop": {"xformla": "~lpop", "est_method": "reg"},
    "nyt_dr_lpop": {"xformla": "~lpop", "control_group": "notyettreated"},
    "universal": {"base_period": "universal"},
    "antic1": {"anticipation": 1},
    "nyt_universal_antic1": {
        "control_group": "notyettreated",
        "base_period": "universal",
        "anticipation": 1,
    },
}
AGGS = {
    "simple": {"type": "simple"},
    "dynamic": {"type": "dynamic"},
    "group": {"type": "group"},
    "calendar": {"type": "calendar"},
    "dynamic_balance1": {"type": "dynamic", "balance_e": 1},
    "dynamic_window": {"type": "dynamic", "min_e": -2, "max_e": 2},
}
# unbalanced panel (allow_unbalanced_panel=True, no covariates): mpdta without the rows
# where (countyreal * 7 + year) % 10 == 0 (about 10% of the rows)
UNBALANCED_CONFIGS: dict[str, dict] = {
    "unbal_base": {},
    "unbal_nyt": {"control_group": "notyettreated"},
    "unbal_universal": {"base_period": "universal"},
}


def unbalanced(d: pd.DataFrame) -> pd.DataFrame:
    """``mpdta`` without the rows where ``(countyreal * 7 + year) % 10 == 0``."""
    return d[(d["countyreal"] * 7 + d["year"]) % 10 != 0].reset_index(drop=True)
