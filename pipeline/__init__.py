"""LEAP home-visit evaluation pipeline.

Stages (each ``python -m pipeline.<stage>``, wired together in ``dvc.yaml``):

``synthesize``  writes a synthetic state extract with known true effects
``ingest``      validates and pseudonymizes an extract (``../shared/data-contract.md``)
``panel``       builds the student-by-school-month panel
``match``       risk-set matching at the month of the first visit
``estimate``    difference-in-differences effects
``report``      figures, tables and the report, under disclosure control
"""

__version__ = "0.1.0"
