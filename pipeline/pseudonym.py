"""Keyed pseudonyms for student IDs.

``student_key`` = the first 16 hex characters (64 bits) of HMAC-SHA256 of the raw
``student_id`` (UTF-8) under a secret key.  The key comes from the environment variable
``LEAP_ID_KEY`` (its UTF-8 bytes); only the pipeline's own synthetic extract — a folder
holding ``truth.json`` with ``"synthetic": true`` — runs with the public demo key
:data:`pipeline.contract.DEMO_ID_KEY`.  Without the key a pseudonym cannot be linked
back to a raw ID, and the same key always gives the same pseudonym (so files
pseudonymized in separate runs can be joined).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.checks import IngestError
from pipeline.contract import DEMO_ID_KEY

KEY_ENV = "LEAP_ID_KEY"
KEY_HEX_CHARS = 16
#: Shortest secret accepted from ``LEAP_ID_KEY`` (characters).
MIN_KEY_LENGTH = 16


class PseudonymCollisionError(IngestError):
    """Two distinct raw IDs got the same pseudonym (choose another key)."""


def is_synthetic(extract_dir: str | Path) -> bool:
    """True when ``extract_dir/truth.json`` exists and says ``"synthetic": true``."""
    p = Path(extract_dir) / "truth.json"
    if not p.is_file():
        return False
    try:
        with open(p, encoding="utf-8") as fh:
            truth = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(truth, dict) and truth.get("synthetic") is True


def resolve_key(
    extract_dir: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """The pseudonymization key for an extract and where it came from.

    Returns
    -------
    (key, source)
        ``source`` is ``"demo"`` for the synthetic extract (always the public demo
        key, so that its pseudonyms are reproducible) or ``"env"``.

    Raises
    ------
    IngestError
        A non-synthetic extract and ``LEAP_ID_KEY`` unset, empty or shorter than
        :data:`MIN_KEY_LENGTH` characters.
    """
    environ = os.environ if environ is None else environ
    if is_synthetic(extract_dir):
        return DEMO_ID_KEY.encode("utf-8"), "demo"
    key = environ.get(KEY_ENV, "")
    if not key:
        raise IngestError(
            f"{extract_dir}: not the synthetic extract (no truth.json with "
            f'"synthetic": true), so student IDs must be pseudonymized with a secret key: '
            f"set the environment variable {KEY_ENV} (at least {MIN_KEY_LENGTH} characters; "
            f"keep it out of the repository)"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise IngestError(
            f"{KEY_ENV} is too short ({len(key)} characters; at least {MIN_KEY_LENGTH})"
        )
    return key.encode("utf-8"), "env"


def pseudonym(student_id: str, key: bytes) -> str:
    """The pseudonym of one raw ID."""
    return hmac.digest(key, student_id.encode("utf-8"), "sha256").hex()[:KEY_HEX_CHARS]


def pseudonymize(ids: Iterable[str], key: bytes) -> list[str]:
    """Pseudonyms of distinct raw IDs, in order; raises on a collision.

    Parameters
    ----------
    ids
        Distinct raw IDs (text).  Hashing ~510,000 IDs takes well under a second.
    key
        The secret key (bytes).

    Raises
    ------
    PseudonymCollisionError
        When two of the IDs get the same pseudonym (the message holds no raw ID).
    ValueError
        When ``ids`` holds a repeated value.
    """
    ids = list(ids)
    digest = hmac.digest
    out = [digest(key, s.encode("utf-8"), "sha256").hex()[:KEY_HEX_CHARS] for s in ids]
    if len(set(ids)) != len(ids):
        raise ValueError("pseudonymize() needs distinct IDs")
    n_keys = len(set(out))
    if n_keys != len(out):
        raise PseudonymCollisionError(
            f"{len(out) - n_keys} pseudonym collision(s) among {len(out)} student IDs "
            f"with {KEY_HEX_CHARS} hex characters; use another {KEY_ENV}"
        )
    return out
