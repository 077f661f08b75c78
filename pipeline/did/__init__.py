"""Difference-in-differences estimators for staggered adoption.

Every estimator takes a long panel data frame and returns an
:class:`~pipeline.did.results.EventStudyResult` (event-time effects with their
covariance) whose ``tidy()`` is the contract's event-study table.
"""

from pipeline.did.results import AverageEffect, EventStudyResult, WaldTest

__all__ = ["AverageEffect", "EventStudyResult", "WaldTest"]
