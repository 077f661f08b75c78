"""The analyst notebooks (``notebooks/``): stored without outputs, and each one runs.

Fast tests check that every notebook is committed stripped (no outputs, no execution
counts), never runs the pipeline itself, and that the shared helpers
(:mod:`pipeline.notebook_helpers`) find the project and explain a missing output.

The slow test executes every notebook with nbclient against the outputs of a synthetic
extract.  A clean clone has no ``data/``, so the notebooks read the tiny published
project that the test run builds once (``dvc repro`` in a copy of this repository,
:mod:`tests.shared_project`; the researcher's workflow test clones the same project),
with that folder as ``LEAP_PROJECT_ROOT``.  Set ``LEAP_NOTEBOOK_TEST_ROOT`` to an existing
project folder with outputs (e.g. the repository after ``dvc repro``, the default
extract) to run them there instead.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from pipeline import notebook_helpers as nh

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]

REUSE_ENV = "LEAP_NOTEBOOK_TEST_ROOT"
CELL_TIMEOUT_S = 600


def _code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


# ------------------------------------------------------------------ stored notebooks


def test_notebooks_are_numbered():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"
    names = [p.name for p in NOTEBOOKS]
    bad = [n for n in names if not re.fullmatch(r"\d{2}-[a-z0-9-]+\.ipynb", n)]
    assert not bad, f"notebook names must be NN-lowercase-words.ipynb: {bad}"
    numbers = [n[:2] for n in names]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_without_outputs(path):
    """Outputs can hold student-level data: notebooks are committed stripped."""
    dirty = [
        i
        for i, cell in enumerate(_code_cells(path))
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]
    assert not dirty, (
        f"{path.name}: code cell(s) {dirty} have outputs or an execution count; strip them "
        f"(`nbstripout {path.relative_to(REPO)}`, or `nbstripout --install` once per clone)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_never_runs_the_pipeline(path):
    """Notebooks read the DVC outputs; running stages is ``dvc repro``'s job, in a terminal."""
    forbidden = {
        r"^\s*[!%]": "a shell command or magic",
        r"\bsubprocess\b|\bos\.system\b|\bos\.popen\b": "a process",
        r"^\s*(import|from)\s+dvc\b": "DVC's API",
        r"\.main\(": "a stage's entry point",
    }
    for i, cell in enumerate(_code_cells(path)):
        src = _source(cell)
        for pattern, what in forbidden.items():
            assert not re.search(pattern, src, re.M), f"{path.name} cell {i} runs {what}"


def test_gitattributes_strips_notebooks():
    lines = (REPO / ".gitattributes").read_text(encoding="utf-8").splitlines()
    assert "*.ipynb filter=nbstripout" in [ln.strip() for ln in lines]


# ------------------------------------------------------------------ helpers


def test_project_root_honours_env_and_searches_upwards(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("data: {extract_dir: x}\n", encoding="utf-8")
    sub = tmp_path / "notebooks"
    sub.mkdir()
    monkeypatch.delenv(nh.ROOT_ENV, raising=False)
    assert nh.project_root(sub) == tmp_path.resolve()
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv(nh.ROOT_ENV, str(other))
    assert nh.project_root(sub) == other.resolve()
    monkeypatch.setenv(nh.ROOT_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=nh.ROOT_ENV):
        nh.project_root()


def test_project_root_not_found_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(nh.ROOT_ENV, raising=False)
    if any((p / "params.yaml").exists() for p in (tmp_path, *tmp_path.parents)):
        pytest.skip("a params.yaml above the temporary directory")
    with pytest.raises(FileNotFoundError, match=nh.ROOT_ENV):
        nh.project_root(tmp_path)


@pytest.mark.parametrize(
    "load, path, stage",
    [
        (lambda: nh.table("event_study"), "reports/tables/event_study.csv", "estimate"),
        (lambda: nh.metrics(), "reports/metrics.json", "estimate"),
        (lambda: nh.table("balance"), "reports/tables/balance.csv", "match"),
        (lambda: nh.panel(columns=["student_key"]), "data/processed/panel.parquet", "panel"),
        (lambda: nh.matched(), "data/processed/matched.parquet", "match"),
        (lambda: nh.quarantine(), "data/interim/quarantine", "ingest"),
        (lambda: nh.interim("home_visits"), "data/interim/home_visits.parquet", "ingest"),
        (lambda: nh.extract_meta(), "data/interim/extract_meta.json", "ingest"),
    ],
)
def test_missing_output_names_file_and_stage(tmp_path, monkeypatch, load, path, stage):
    (tmp_path / "params.yaml").write_text("data: {extract_dir: x}\n", encoding="utf-8")
    monkeypatch.setenv(nh.ROOT_ENV, str(tmp_path))
    with pytest.raises(nh.MissingOutputError) as err:
        load()
    msg = str(err.value)
    assert path in msg and f"dvc repro {stage}" in msg, msg


def test_outputs_overview_lists_every_declared_output(tmp_path):
    (tmp_path / "params.yaml").write_text("data: {extract_dir: x}\n", encoding="utf-8")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text("{}", encoding="utf-8")
    ov = nh.outputs_overview(tmp_path).set_index("output")
    assert {"data/processed/panel.parquet", "reports/metrics.json"} <= set(ov.index)
    assert ov.loc["reports/metrics.json", "exists"]
    assert not ov.loc["data/processed/panel.parquet", "exists"]
    assert ov.loc["reports/metrics.json", "stage"] == "estimate"


# ------------------------------------------------------------------ running them


#: Outputs of the stages the notebooks read (synthesize ... estimate).
STAGE_OUTPUTS = (
    "data/raw/synthetic/truth.json",
    nh.EXTRACT_META,
    nh.PANEL,
    nh.MATCHED,
    "reports/tables/balance.csv",
    nh.METRICS,
    "reports/tables/subgroups.csv",
)


@pytest.fixture(scope="session")
def pipeline_outputs(published_project) -> Path:
    """A project folder holding the pipeline's outputs (built once per test run)."""
    reuse = os.environ.get(REUSE_ENV)
    root = Path(reuse).resolve() if reuse else published_project
    for rel in STAGE_OUTPUTS:
        assert (root / rel).exists(), f"stage output {rel} not found under {root}"
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, pipeline_outputs, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv(nh.ROOT_ENV, str(pipeline_outputs))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: {elapsed:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure (is the inline backend lost?)"
    assert not any(workdir.iterdir()), f"{path.name} wrote files into its working directory"
