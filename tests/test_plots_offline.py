"""`dvc plots show` without internet: the project's HTML template loads Vega, Vega-Lite
and vega-embed from the repository, and the event study is drawn with its confidence
band, the balance plot before and after matching."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / ".dvc" / "plots" / "vendor"


def _project(tmp_path: Path) -> Path:
    """A DVC project with this repository's dvc.yaml, plot templates and config, and
    plot data files (values invented)."""
    p = tmp_path / "proj"
    p.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=p, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=p, check=True)
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, p / f)
    shutil.copy(ROOT / ".dvc" / "config", p / ".dvc" / "config")
    shutil.copytree(ROOT / ".dvc" / "plots", p / ".dvc" / "plots")
    (p / "reports" / "plots").mkdir(parents=True)
    (p / "reports" / "tables").mkdir()
    t = np.arange(-6, 13)
    est = np.where(t > 0, 8.0, 0.0)
    pd.DataFrame(
        {"event_time": t, "estimate": est, "ci_low": est - 1.5, "ci_high": est + 1.5}
    ).to_csv(p / "reports" / "plots" / "event_study_primary.csv", index=False)
    pd.DataFrame(
        {
            "covariate": ["rate_lag1", "prior_year_rate", "ell"],
            "smd_before": [-2.7, -1.7, 0.05],
            "smd_after": [-0.08, 0.02, 0.01],
        }
    ).to_csv(p / "reports" / "tables" / "balance.csv", index=False)
    return p


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    p = _project(tmp_path_factory.mktemp("plots"))
    r = subprocess.run(
        ["dvc", "plots", "show"],
        cwd=p,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert r.returncode == 0, r.stderr
    return p, p / "dvc_plots" / "index.html"


def test_vendored_scripts_with_licences():
    for name in ("vega", "vega-lite", "vega-embed"):
        js = VENDOR / f"{name}.min.js"
        assert js.stat().st_size > 50_000, js
        assert (
            "BSD" in (VENDOR / f"LICENSE.{name}").read_text()
            or "Redistribution" in (VENDOR / f"LICENSE.{name}").read_text()
        )


def test_html_references_nothing_outside_the_repository(shown):
    proj, html = shown
    text = html.read_text()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), re.findall(
        r"(?:https?:)?//[^\s\"'<>]+", text
    )
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", text)
    assert len(refs) == 3  # the three scripts
    for ref in refs:
        target = (html.parent / ref).resolve()
        assert target.is_file(), ref
        assert target.is_relative_to(proj.resolve()), ref
    assert {Path(r).name for r in refs} == {"vega.min.js", "vega-lite.min.js", "vega-embed.min.js"}


def _specs(text: str) -> list[dict]:
    return [json.loads(s) for s in re.findall(r"var spec = (\{.*?\});\n", text, re.S)]


def test_event_study_has_its_band_and_balance_both_samples(shown):
    _, html = shown
    specs = _specs(html.read_text())
    assert len(specs) == 2
    by_title = {s["title"]["text"]: s for s in specs}
    es = next(s for t, s in by_title.items() if t.startswith("Effect of the first home visit"))
    band = [ly for ly in es["layer"] if ly["mark"]["type"] == "area"]
    assert band and band[0]["encoding"]["y"]["field"] == "ci_low"
    assert band[0]["encoding"]["y2"]["field"] == "ci_high"
    rows = es["data"]["values"]
    assert all(float(r["ci_low"]) <= float(r["estimate"]) <= float(r["ci_high"]) for r in rows)
    bal = next(s for t, s in by_title.items() if t.startswith("Covariate balance"))
    assert bal["transform"][0]["fold"] == ["smd_before", "smd_after"]
    assert len(bal["data"]["values"]) == 3


@pytest.mark.slow
def test_renders_in_a_browser_without_network(shown):
    """Headless Chromium with every connection refused draws both plots."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium (scripts/setup-system.sh installs it)")
    _, html = shown
    r = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",  # any network request fails
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom = r.stdout
    assert dom.count('class="marks"') == 2, r.stderr[-2000:]
    for mark in ("area", "line", "symbol", "rule"):
        assert f'aria-roledescription="{mark} mark container"' in dom, mark
