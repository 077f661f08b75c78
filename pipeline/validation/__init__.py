"""Library of the simulation study's stress tests (issue 16).

* :mod:`pipeline.validation.scenarios` — the stress-test worlds as scenarios, the
  ``realistic`` combination, and what each world would need where it is not identified;
* :mod:`pipeline.validation.diagnostics` — whether each diagnostic the report prints fires
  in one replication;
* :mod:`pipeline.validation.verdicts` — firing rates, bracketing and a verdict per world;
* :mod:`pipeline.validation.extras` — the inference extras of issue 17 (school clustering,
  district wild bootstrap, design bootstrap, intent to treat at the first attempt, effect
  on families reached), each judged against its own truth.
"""
