"""Sensitivity analysis and evidence standards for the primary estimate.

Library modules (no stage imports them from another stage; the estimate stage calls them):

* :mod:`pipeline.sensitivity.ovb` — Cinelli–Hazlett omitted-variable sensitivity.
"""
