"""HTML tables and pages, and the PDF printed from them by headless Chromium.

Tables are rendered with human column and row labels (:mod:`pipeline.labels`); wide
tables are kept within the page by the stylesheet (``table.wide`` wraps its text and
uses a smaller font).  The PDF's dates are set from the report's epoch (see
:mod:`pipeline.reporting.meta`) so that the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from pipeline import labels
from pipeline.reporting.fmt import fmt_int, fmt_num, fmt_p, fmt_pct, join_words, plural

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _cell(v: Any, c: str, nd: int, int_cols: tuple[str, ...], fmt: Callable | None) -> tuple:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "—", "n"
    if fmt is not None:
        return fmt(v), "t"
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), "t"
    if c in int_cols or isinstance(v, (int, np.integer)):
        return fmt_int(v), "n"
    if isinstance(v, (float, np.floating)):
        return fmt_num(v, nd), "n"
    return str(v), "t"


def table_html(
    df: pd.DataFrame,
    cols: list[str] | None = None,
    heads: Mapping[str, str] | None = None,
    nd: int = 2,
    int_cols: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    fmts: Mapping[str, Callable[[Any], str]] | None = None,
    css: str = "",
) -> str:
    """An HTML table with labelled headers; suppressed cells '‡', empty cells '—'.

    ``fmts`` maps a column to a function giving its cell text (e.g. a label from
    :mod:`pipeline.labels`); other text columns are shown as they are, so callers
    label any column holding internal names.
    """
    skip = {"suppressed", *exclude}
    cols = list(cols) if cols else [c for c in df.columns if c not in skip]
    heads, fmts = heads or {}, fmts or {}
    esc = jinja2.filters.escape
    head = "".join(f"<th>{esc(heads.get(c, labels.column(c)))}</th>" for c in cols)
    body = []
    for _, r in df.iterrows():
        hidden = set(str(r.get("suppressed", "") or "").split(";"))
        cells = []
        for c in cols:
            s, cls = ("‡", "n") if c in hidden else _cell(r[c], c, nd, int_cols, fmts.get(c))
            cells.append(f'<td class="{cls}">{esc(s)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(context: dict[str, Any], figure_dir: Path) -> str:
    """Render the report template; figures are inlined as base64 PNG."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, int=fmt_int, p=fmt_p, pct=fmt_pct, est=labels.estimator,
                       label=labels.label, var=labels.variable, sub=labels.subgroup,
                       level=labels.level, words=join_words,
                       times=lambda ts: join_words([fmt_num(t, 0) for t in ts]))
    env.globals["plural"] = plural

    def img(fig_id: str) -> str:
        f = context["figs"][fig_id]
        return base64.b64encode((figure_dir / f["png"]).read_bytes()).decode("ascii")

    env.globals["img_b64"] = img
    env.globals["table"] = lambda *a, **k: jinja2.utils.markupsafe.Markup(table_html(*a, **k))
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(css=css, **context)


# --------------------------------------------------------------------------- PDF


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium executable: ``explicit``, else the first found on ``PATH``."""
    names = [explicit] if explicit else ["chromium", "chromium-browser", "google-chrome"]
    for n in names:
        p = shutil.which(n) if n else None
        if p:
            return p
    raise RuntimeError(
        "report: no Chromium found to print the PDF (looked for "
        f"{', '.join(n for n in names if n)}); install Debian's 'chromium' package or set "
        "report.chromium in params.yaml"
    )


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
]
FALLBACK_EPOCH = 315532800  # 1980-01-01, as zip and reproducible-builds use, when undated
_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}[^)]*\)")


def pin_pdf_dates(pdf: Path, epoch: int | None) -> None:
    """Rewrite the PDF's creation and modification dates to ``epoch`` (UTC), in place.

    Chromium stamps both with the clock.  The replacement has the same length, so
    the cross-reference offsets stay valid.
    """
    t = dt.datetime.fromtimestamp(FALLBACK_EPOCH if epoch is None else epoch, dt.UTC)
    data = pdf.read_bytes()

    def sub(m: re.Match) -> bytes:
        new = b"/%s (D:%s+00'00')" % (m.group(1), t.strftime("%Y%m%d%H%M%S").encode())
        old = m.group(0)
        return new.ljust(len(old)) if len(new) <= len(old) else old

    pdf.write_bytes(_PDF_DATE.sub(sub, data))


def html_to_pdf(
    html: Path, pdf: Path, chromium: str, timeout: float = 180, epoch: int | None = None
) -> None:
    """Print ``html`` to ``pdf`` with headless Chromium (no header/footer, CSS page size)."""
    with tempfile.TemporaryDirectory(prefix="leap-chromium-") as prof:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={prof}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(
            f"report: Chromium failed to print {html} to PDF (exit {res.returncode}):\n"
            f"{res.stderr[-2000:]}"
        )
    pin_pdf_dates(pdf, epoch)
