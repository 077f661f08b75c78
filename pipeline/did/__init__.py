"""Difference-in-differences estimators for staggered adoption.

Every estimator takes a long panel data frame and returns an
:class:`~pipeline.did.results.EventStudyResult` (event-time effects with their
covariance) whose ``tidy()`` is the contract's event-study table.
"""

from pipeline.did.ancova import matched_ancova
from pipeline.did.cs import AggteResult, ATTgtResult, aggte, att_gt, callaway_santanna
from pipeline.did.fe import FEOLSResult, FixedEffects, feols
from pipeline.did.honest import relative_magnitudes
from pipeline.did.imputation import imputation
from pipeline.did.naive import naive_before_after
from pipeline.did.results import AverageEffect, EventStudyResult, WaldTest
from pipeline.did.stacked import stacked_event_study
from pipeline.did.sunab import sun_abraham
from pipeline.did.twfe import twfe_event_study
from pipeline.did.wild import WEBB_POINTS, WildTest, wild_cluster_bootstrap

__all__ = [
    "ATTgtResult", "AggteResult", "AverageEffect", "EventStudyResult", "FEOLSResult",
    "FixedEffects", "WEBB_POINTS", "WaldTest", "WildTest", "aggte", "att_gt",
    "callaway_santanna", "feols", "imputation", "matched_ancova", "naive_before_after",
    "relative_magnitudes",
    "stacked_event_study",
    "sun_abraham", "twfe_event_study", "wild_cluster_bootstrap",
]
