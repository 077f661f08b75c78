"""Stage ``synthesize``: write a synthetic state extract and its ground truth.

``python -m pipeline.synthesize`` reads the ``synthesize`` section of ``params.yaml`` and
writes every contract table and ``truth.json`` to ``synthesize.output_dir``
(``data/raw/synthetic`` by default), atomically.
"""

from __future__ import annotations

import logging
import sys
import time

from pipeline import runner
from pipeline.settings import stage_settings
from pipeline.synth import SynthConfig, generate, write_extract

log = logging.getLogger("pipeline.synthesize")


def main() -> runner.Summary:
    params = stage_settings().synthesize
    cfg = SynthConfig.from_params(params.model_dump())
    t0 = time.perf_counter()
    extract = generate(cfg)
    log.info(
        "writing %s extract (%s form) to %s", cfg.format, cfg.attendance_form, params.output_dir
    )
    write_extract(
        extract,
        params.output_dir,
        fmt=cfg.format,
        attendance_form=cfg.attendance_form,
        faults_per_kind=cfg.faults_per_kind,
        seed=cfg.seed,
    )
    c = extract.truth["counts"]
    log.info(
        "done in %.1f s: %d students, %d attendance rows, %d visits, %d treated; "
        "true average effect over event times 1-6: %.2f points",
        time.perf_counter() - t0,
        c["students"],
        c["attendance_monthly_rows"],
        c["home_visits"],
        c["treated_students"],
        extract.truth["att_window"] or 0.0,
    )
    return runner.Summary(
        rows_out=int(c["attendance_monthly_rows"]),
        detail=f"{c['students']:,} students, {c['home_visits']:,} visits",
    )


if __name__ == "__main__":
    sys.exit(runner.main("synthesize", __doc__, main))
