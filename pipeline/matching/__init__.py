"""Matching: a general MatchIt-style nearest-neighbour matcher and risk-set matching.

* :func:`pipeline.matching.core.matchit` — cross-sectional nearest-neighbour matching
  (propensity score or Mahalanobis, k:1, replacement, caliper, exact strata) returning a
  :class:`~pipeline.matching.core.MatchResult` (``match_data``, ``get_matches``,
  ``summary``).
* :mod:`pipeline.matching.riskset` — risk-set matching of first-visited students on the
  student-month panel, producing the stacked matched panel.
* Balance statistics live in :mod:`pipeline.balance`.
"""

from pipeline.matching.core import MatchResult, matching_weights, matchit
from pipeline.matching.propensity import PropensityModel, design_matrix, fit_propensity

__all__ = [
    "MatchResult",
    "PropensityModel",
    "design_matrix",
    "fit_propensity",
    "matching_weights",
    "matchit",
]
