"""The analysis library behind the ``estimate`` and ``validate`` stages.

The stages are thin (read their ``params.yaml`` section, call this package, write their
declared outputs); everything they compute lives here:

``settings``
    :class:`~pipeline.analysis.settings.EstimateConfig` (the ``estimate`` section),
    :data:`~pipeline.analysis.settings.DESIGNS`, :data:`~pipeline.analysis.settings.PRIMARY`.
``design``
    The matched designs: :func:`~pipeline.analysis.design.primary`,
    :func:`~pipeline.analysis.design.other_design`, the censoring weights.
``comparators``
    The comparator estimators on the matched students' own panels.
``subgroups``
    The primary design by subgroup.
``robustness``
    The robustness table (:func:`~pipeline.analysis.robustness.robustness`).
``tables``
    The column schemas of every table the ``estimate`` stage writes
    (:data:`~pipeline.analysis.tables.ESTIMATE_TABLES`) and the descriptive tables.
``estimation``
    :func:`~pipeline.analysis.estimation.run_estimation`: all of the above, as the stage
    writes it.
``simulation``, ``simulation_figure``
    The simulation study of the ``validate`` stage and its figure.

Readers of the stages' outputs are in :mod:`pipeline.outputs`.

Designs
-------
* **Primary: matched ANCOVA** (``design: ancova``, :func:`pipeline.did.ancova.matched_ancova`)
  on the matched stacks: attendance at each event time regressed on the treated indicator
  and the recorded months at the first visit (event times −1 to −3, with their squares,
  and the prior-year rate), with time effects per ``ancova_fe`` (district) × event time;
  matching weights × inverse-probability-of-censoring weights (:mod:`pipeline.censoring`)
  for comparison students visited later, errors clustered by student by default
  (comparison students serve in several matched sets; ``cluster`` switches to schools),
  wild cluster bootstrap (Webb weights) for every event time and the window average. The
  recorded months are the reference period; the months before them are placebo outcomes
  for the pre-trend test. Selection on a dip is selection on the recorded months, so the
  comparison that identifies the effect is between students with the same recorded
  months — levels, not changes from the month before. The chronic-absence outcome uses
  the same covariates: a month's chronic flag is a function of its rate, so the recorded
  months fix the flags of the reference period too.
* **Matched differences** (``design: differences``; always reported beside the primary as
  ``matched_stacked``): the stacked event study
  (:func:`pipeline.did.stacked.stacked_event_study`) with unit-by-matched-set and
  matched-set-by-event-time fixed effects (``time_effects="matched_set"``; ``"stratum"``
  pools them over the matching stratum), effects relative to ``reference``. It was the
  primary design until the simulation study (:mod:`pipeline.validate`,
  ``benchmarks/diagnose_design.py``) showed its small bias to be two biases cancelling:
  the imperfect match on the dip's depth, and the drop of later-visited comparison
  students that the censoring weights cannot undo within sets of three or four.
* **Comparators on the same students** (the matched students' own panels, each student
  first treated at their own first visit, never-visited students as controls): the naive
  before/after on visited students only, two-way fixed effects, Callaway–Sant'Anna with
  not-yet-treated controls (unconditional and doubly robust with baseline covariates;
  balanced students only, as the implemented panel estimator requires), Sun–Abraham and
  imputation.
"""
