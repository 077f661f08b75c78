"""Regenerate the committed example report, ``docs/example/report.{html,pdf}``.

Run from the project root after ``dvc repro`` (which writes the default extract's
estimates under ``reports/``)::

    python scripts/build_report_example.py

The report stage is run on a copy of ``reports/metrics.json`` and
``reports/tables/*.csv`` at 150 dpi (to keep the example small), with the front
matter of this checkout; the stage's own outputs under ``reports/`` are left alone.
The same inputs and code give the same bytes (the dates come from the commit that
last changed ``pipeline/``, or ``SOURCE_DATE_EPOCH``), so commit code changes before
regenerating the example.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import config, report  # noqa: E402

OUT = ROOT / "docs" / "example"


def main() -> int:
    src = ROOT / "reports"
    if not (src / "metrics.json").exists():
        sys.exit("build_report_example: reports/metrics.json is missing; run `dvc repro` first")
    params = config.load_params(ROOT / "params.yaml")
    params["report"] = {**params.get("report", {}), "reports_dir": "reports", "dpi": 150}
    with tempfile.TemporaryDirectory(prefix="leap-example-") as tmp:
        rep = Path(tmp) / "reports"
        (rep / "tables").mkdir(parents=True)
        shutil.copy2(src / "metrics.json", rep / "metrics.json")
        for f in sorted((src / "tables").glob("*.csv")):
            shutil.copy2(f, rep / "tables" / f.name)
        # the committed simulation studies: the validation table and the worlds' verdicts
        for key in ("validation_table", "worlds_verdicts"):
            vt = params["report"].get(key)
            if vt and (ROOT / vt).exists():
                (Path(tmp) / vt).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / vt, Path(tmp) / vt)
        out = report.run(tmp, params, provenance_root=ROOT)
        OUT.mkdir(parents=True, exist_ok=True)
        for k in ("html", "pdf"):
            shutil.copyfile(out[k], OUT / f"report.{k}")
            print(f"build_report_example: wrote {(OUT / f'report.{k}').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
