"""Front matter: what produced the report, from which code and parameters, and when.

Everything here is a function of the report's inputs and the code, never of the
clock, so that the same inputs give the same HTML and PDF bytes:

* the **code** is identified by the git tree hash of ``pipeline/`` computed from the
  files' contents (equal to ``git rev-parse <commit>:pipeline`` at any commit with
  this code), and by the latest commit whose ``pipeline/`` is exactly that tree;
* the **date** is ``SOURCE_DATE_EPOCH`` when set, else the commit time of that commit,
  else none (code not yet committed: the report says so);
* the **parameters** are identified by the SHA-256 of ``params.yaml``.

The HEAD commit itself is deliberately not printed: a commit cannot hold a report
that names it, and ``dvc.lock`` (which records the report's hash) is committed with
the code that produced it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pipeline


@dataclass(frozen=True)
class FrontMatter:
    """What the report's front page and metadata say about its provenance."""

    version: str
    code_tree: str | None
    commit: str | None
    date: dt.date | None
    params_sha256: str | None
    epoch: int | None

    @property
    def date_text(self) -> str:
        if self.date is None:
            return "undated draft (code not committed)"
        return f"{self.date:%-d %B %Y}"

    @property
    def year(self) -> int | None:
        return self.date.year if self.date else None


def _git(root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                           timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_tree_hash(root: Path, sub: str = "pipeline") -> str | None:
    """The git tree hash of the tracked files under ``sub`` as they are on disk.

    Computed like git computes it (blob ``sha1("blob <n>\\0" + bytes)``, trees of
    ``<mode> <name>\\0<20-byte sha>`` sorted by git's rule), so it equals
    ``git rev-parse <commit>:<sub>`` for any commit whose files are these.
    """
    files = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", sub)
    if not files:
        return None
    tree: dict = {}
    for rel in files.split("\0"):
        p = root / rel
        if not rel or not p.is_file():
            continue
        node = tree
        parts = Path(rel).relative_to(sub).parts
        for d in parts[:-1]:
            node = node.setdefault(d, {})
        data = p.read_bytes()
        mode = b"100755" if os.access(p, os.X_OK) else b"100644"
        node[parts[-1]] = (mode, hashlib.sha1(b"blob %d\0" % len(data) + data).digest())

    def write(node: dict) -> bytes:
        entries = []
        for name, v in node.items():
            if isinstance(v, dict):
                entries.append((name + "/", b"40000", name, write(v)))
            else:
                entries.append((name, v[0], name, v[1]))
        entries.sort(key=lambda e: e[0].encode())
        body = b"".join(m + b" " + n.encode() + b"\0" + h for _, m, n, h in entries)
        return hashlib.sha1(b"tree %d\0" % len(body) + body).digest()

    return write(tree).hex()


def front_matter(root: str | os.PathLike, params_file: str = "params.yaml") -> FrontMatter:
    """The report's provenance under project ``root`` (see the module docstring)."""
    root = Path(root)
    tree = git_tree_hash(root)
    commit = when = None
    if tree:
        last = _git(root, "log", "-1", "--format=%H %ct", "--", "pipeline")
        if last:
            h, t = last.split()
            if _git(root, "rev-parse", f"{h}:pipeline") == tree:
                commit, when = h, int(t)
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    epoch = int(sde) if sde and sde.isdigit() else when
    date = dt.datetime.fromtimestamp(epoch, dt.UTC).date() if epoch is not None else None
    pp = root / params_file
    psha = hashlib.sha256(pp.read_bytes()).hexdigest() if pp.exists() else None
    return FrontMatter(pipeline.__version__, tree, commit, date, psha, epoch)
