"""The ``report`` stage: disclosure-controlled tables, figures, HTML and PDF report.

Run as ``python -m pipeline.report`` from the project root.  Reads the ``report`` and
``disclosure`` sections of ``params.yaml`` and the ``estimate`` stage's outputs under
``reports/`` (``metrics.json`` and ``reports/tables/*.csv``), and writes, atomically:

* ``reports/tables/published/`` — every published table after disclosure control;
* ``reports/figures/`` — every figure as PNG and SVG with its data as CSV, plus
  ``manifest.json``;
* ``reports/report.html`` — the self-contained report (inline CSS and images);
* ``reports/report.pdf`` — the same report printed by headless Chromium.

The work is done by :mod:`pipeline.reporting` (inputs, disclosure, counts, caveats,
context, rendering) and :mod:`pipeline.figures`; this module only wires them.  Every
published table and every figure input passes
:func:`pipeline.disclosure.assert_published_safe` or the stage fails.  The same
inputs give the same bytes (dates come from the code's commit or
``SOURCE_DATE_EPOCH``, see :mod:`pipeline.reporting.meta`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline import config, figures, runner
from pipeline import io as pio
from pipeline.disclosure import Published, Rules
from pipeline.reporting.context import build_context
from pipeline.reporting.figureset import make_figures
from pipeline.reporting.inputs import (  # noqa: F401  (re-exported for callers)
    INPUT_COLUMNS,
    Inputs,
    ReportInputError,
    load_inputs,
    normalise_match_summary,
)
from pipeline.reporting.meta import front_matter
from pipeline.reporting.publish import publish, published_sources  # noqa: F401
from pipeline.reporting.render import (  # noqa: F401
    CHROMIUM_FLAGS,
    TEMPLATES,
    find_chromium,
    html_to_pdf,
    render_html,
)
from pipeline.settings import stage_settings


def load_facts() -> dict[str, Any]:
    """The cited program and context facts (``templates/report_facts.yaml``)."""
    with open(TEMPLATES / "report_facts.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _draw_validation(v):
    from pipeline.analysis.simulation_figure import draw  # the simulation study's figure

    return draw(v)


def _write_published(pubs: dict[str, Published], outdir: Path) -> None:
    for name, p in pubs.items():
        p.table.to_csv(outdir / f"{name}.csv", index=False, lineterminator="\n")


def run(
    root: str | os.PathLike,
    params: Mapping[str, Any],
    *,
    provenance_root: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Run the stage under project ``root`` with the ``report``/``disclosure`` sections.

    Returns the paths written.  Nothing is written unless every step (inputs,
    disclosure check, figures, HTML, PDF) succeeds.  ``provenance_root`` is the git
    checkout whose code and ``params.yaml`` the front matter names (default ``root``).
    """
    rsec = config.section("report", dict(params))
    rules = Rules.from_params(config.section("disclosure", dict(params)))
    root = Path(root)
    rep = root / rsec.get("reports_dir", "reports")
    dpi = int(rsec.get("dpi", 300))
    want_pdf = bool(rsec.get("pdf", True))
    chromium = find_chromium(rsec.get("chromium")) if want_pdf else None

    vt = rsec.get("validation_table")
    wv = rsec.get("worlds_verdicts")
    inputs = load_inputs(rep, None if vt is None else root / vt, None if wv is None else root / wv)
    pubs = publish(inputs, rules)
    facts = load_facts()
    front = front_matter(provenance_root or root)
    out = {
        "figures": rep / "figures",
        "published": rep / "tables" / "published",
        "html": rep / "report.html",
    }
    if want_pdf:
        out["pdf"] = rep / "report.pdf"
    with (
        pio.atomic_dir(out["figures"]) as figdir,
        pio.atomic_dir(out["published"]) as pubdir,
        pio.atomic_path(out["html"], ".html") as html_tmp,
    ):
        figs = make_figures(inputs, pubs, facts, _draw_validation)
        manifest = figures.save_figures(figs, figdir, dpi=dpi, synthetic=inputs.synthetic)
        pio.write_json(
            {"figures": manifest, "synthetic": inputs.synthetic}, figdir / "manifest.json"
        )
        _write_published(pubs, pubdir)
        ctx = build_context(inputs, pubs, rules, manifest, facts, front)
        html_tmp.write_text(render_html(ctx, figdir), encoding="utf-8")
        if want_pdf:
            with pio.atomic_path(out["pdf"], ".pdf") as pdf_tmp:
                pdf_tmp.unlink()
                html_to_pdf(html_tmp, pdf_tmp, chromium, float(rsec.get("pdf_timeout_s", 180)),
                            epoch=front.epoch)
                os.chmod(pdf_tmp, 0o644)
        _readable(figdir, pubdir, html_tmp)
    return out


def _readable(*paths: Path) -> None:
    """World-readable outputs (temporary files and directories are created private)."""
    for p in paths:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if p.is_dir():
            for f in p.iterdir():
                os.chmod(f, 0o644)


def _stage() -> runner.Summary:
    root = config.project_root()
    stage_settings()  # the whole params.yaml is checked before any work
    out = run(root, config.load_params())
    names = [str(p.relative_to(root) if p.is_relative_to(root) else p) for p in out.values()]
    return runner.Summary(detail="wrote " + ", ".join(names))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipeline.report`` (``--help``, ``--quiet``)."""
    return runner.main("report", __doc__, _stage, argv)


if __name__ == "__main__":
    sys.exit(main())
