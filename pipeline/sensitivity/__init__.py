"""Sensitivity analysis and evidence standards for the primary estimate.

Library modules (no stage imports them from another stage; the estimate stage calls them):

* :mod:`pipeline.sensitivity.ovb` — Cinelli–Hazlett omitted-variable sensitivity.
* :mod:`pipeline.sensitivity.effect_sizes` — Hedges' g, Cox index, improvement index.
* :mod:`pipeline.sensitivity.wwc` — What Works Clearinghouse attrition, baseline
  equivalence and rating.
* :mod:`pipeline.sensitivity.multiplicity` — subgroup equality tests and BH q-values.
* :mod:`pipeline.sensitivity.falsification` — pre-trend test and TOST equivalence bound.
* :mod:`pipeline.sensitivity.honestdid` — Rambachan–Roth FLCI, conditional and
  conditional-LF hybrid sets for smoothness and relative magnitudes, breakdown values.
* :mod:`pipeline.sensitivity.suite` — the estimate stage's sensitivity tables.
* :mod:`pipeline.sensitivity.plots` — contour and robust-set figures.
* :mod:`pipeline.sensitivity.rosenbaum` — Rosenbaum M-test sensitivity (senmv) and the
  breakdown Γ.
"""
