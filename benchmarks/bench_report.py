"""Time the report stage on fabricated inputs (tests/report_fixtures.py).

Usage: .venv/bin/python benchmarks/bench_report.py [--subgroup-levels N]
Prints wall-clock seconds per step: read inputs, disclosure control (+ check),
figures (PNG 300 dpi + SVG), HTML, PDF (headless Chromium). Timings on a shared
machine are upper bounds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import figures, report  # noqa: E402
from pipeline.disclosure import Rules  # noqa: E402
from tests.report_fixtures import build_report_inputs  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_report_inputs(root, seed=1, with_validation=True)
        rep = root / "reports"
        t = {}
        t0 = time.perf_counter()
        inputs = report.load_inputs(rep)
        t["read inputs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pubs = report.publish(inputs, Rules())
        t["disclosure control + check"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        figs = report.make_figures(inputs, pubs)
        manifest = figures.save_figures(figs, root / "figs", dpi=300, synthetic=True)
        t["figures (7 x PNG 300 dpi + SVG)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctx = report.build_context(inputs, pubs, Rules(), manifest, report.load_facts())
        html = report.render_html(ctx, root / "figs")
        (root / "r.html").write_text(html, encoding="utf-8")
        t["HTML"] = time.perf_counter() - t0
        try:
            chromium = report.find_chromium()
            t0 = time.perf_counter()
            report.html_to_pdf(root / "r.html", root / "r.pdf", chromium)
            t["PDF (headless Chromium)"] = time.perf_counter() - t0
        except RuntimeError as exc:
            print(f"PDF skipped: {exc}")
        for k, v in t.items():
            print(f"{k:<36s} {v:7.2f} s")
        print(f"{'total':<36s} {sum(t.values()):7.2f} s")
        print(
            f"HTML size {len(html.encode()) / 1e6:.2f} MB; "
            f"suppressed cells {sum(p.n_suppressed for p in pubs.values())}"
        )


if __name__ == "__main__":
    main()
