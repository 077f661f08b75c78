"""Reading ``params.yaml``.

Every stage reads only its own section (plus the few shared sections it declares
in ``dvc.yaml``).  Paths in ``params.yaml`` are relative to the project root, which
is the directory holding ``params.yaml``; stages are run from there by DVC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """A missing or malformed entry in ``params.yaml``."""


def project_root() -> Path:
    """The directory holding ``params.yaml`` (``LEAP_PROJECT_ROOT`` overrides)."""
    env = os.environ.get("LEAP_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / PARAMS_FILE).exists():
            return candidate
    return here


def load_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load the whole ``params.yaml`` as a dict."""
    p = Path(path) if path is not None else project_root() / PARAMS_FILE
    if not p.exists():
        raise ConfigError(f"{p}: parameter file not found")
    with open(p, encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{p}: top level must be a mapping of sections")
    return params


def section(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return one section of ``params.yaml``; a clear error when it is missing."""
    params = load_params() if params is None else params
    if name not in params or not isinstance(params[name], dict):
        raise ConfigError(f"params.yaml: section '{name}' is missing or not a mapping")
    return params[name]
