"""Keyed pseudonyms for student IDs.

``student_key`` = the first 16 hex characters (64 bits) of HMAC-SHA256 of the raw
``student_id`` (UTF-8) under a secret key.  The key comes from the environment variable
``LEAP_ID_KEY`` (its UTF-8 bytes), and when it is set it is always used.  Only when it
is unset, and only for the pipeline's own synthetic extract, does the stage fall back to
the public demo key :data:`pipeline.contract.DEMO_ID_KEY`.

Whether the extract is the synthetic one is decided by the pipeline's configuration,
never by a file inside the extract (a ``truth.json`` in a state's folder proves
nothing): it is synthetic exactly when ``data.extract_dir`` is the folder the
``synthesize`` stage writes (``synthesize.output_dir``), see :func:`synthetic_from_params`.
A state that points ``data.extract_dir`` at its own extract therefore always needs
``LEAP_ID_KEY``, and gets a clear error without it.

Without the key a pseudonym cannot be linked back to a raw ID, and the same key always
gives the same pseudonym (so files pseudonymized in separate runs can be joined).
"""

from __future__ import annotations

import hmac
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


def synthetic_from_params(params: Mapping, root: str | Path = ".") -> bool:
    """True when ``data.extract_dir`` is the synthesize stage's ``output_dir``.

    Parameters
    ----------
    params
        The whole ``params.yaml`` (sections ``data`` and ``synthesize``).
    root
        The project root that relative paths are resolved against.

    A missing ``synthesize.output_dir`` means "not synthetic": the safe default.
    """
    data = params.get("data") or {}
    synth = params.get("synthesize") or {}
    extract, output = data.get("extract_dir"), synth.get("output_dir")
    if not extract or not output:
        return False
    root = Path(root)

    def _abs(p: str) -> Path:
        p = Path(p)
        return (p if p.is_absolute() else root / p).resolve()

    return _abs(str(extract)) == _abs(str(output))


def resolve_key(
    extract_dir: str | Path,
    environ: Mapping[str, str] | None = None,
    *,
    synthetic: bool = False,
) -> tuple[bytes, str]:
    """The pseudonymization key for an extract and where it came from.

    Parameters
    ----------
    extract_dir
        The extract folder (named in error messages only; nothing in it is read).
    environ
        Environment to read ``LEAP_ID_KEY`` from (``os.environ`` by default).
    synthetic
        The configuration says this is the pipeline's own synthetic extract
        (:func:`synthetic_from_params`).

    Returns
    -------
    (key, source)
        ``source`` is ``"env"`` whenever ``LEAP_ID_KEY`` is set, else ``"demo"`` (the
        public demo key, allowed for the synthetic extract only).

    Raises
    ------
    IngestError
        ``LEAP_ID_KEY`` set but shorter than :data:`MIN_KEY_LENGTH` characters, or a
        non-synthetic extract and ``LEAP_ID_KEY`` unset or empty.
    """
    environ = os.environ if environ is None else environ
    key = environ.get(KEY_ENV, "")
    if key:
        if len(key) < MIN_KEY_LENGTH:
            raise IngestError(
                f"{KEY_ENV} is too short ({len(key)} characters; at least {MIN_KEY_LENGTH})"
            )
        return key.encode("utf-8"), "env"
    if synthetic:
        return DEMO_ID_KEY.encode("utf-8"), "demo"
    raise IngestError(
        f"{extract_dir}: data.extract_dir is not the synthetic extract (synthesize.output_dir), "
        f"so student IDs must be pseudonymized with a secret key: set the environment "
        f"variable {KEY_ENV} (at least {MIN_KEY_LENGTH} characters; keep it out of the "
        f"repository)"
    )


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
