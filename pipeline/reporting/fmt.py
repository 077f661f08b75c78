"""Numbers and words for the report's text: signs, counts, percentages, plurals."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

CI_LEVEL = 95  # data contract §4: every interval is a 95% confidence interval


def _missing(x: Any) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def fmt_num(x: Any, nd: int = 1, signed: bool = False) -> str:
    """A number for the text: fixed decimals, a true minus sign; '‡' when suppressed."""
    if _missing(x):
        return "‡"
    s = f"{float(x):+.{nd}f}" if signed else f"{float(x):.{nd}f}"
    if float(s.lstrip("+-")) == 0:  # no "−0.0" or "+0.0"
        s = s.lstrip("+-")
    return s.replace("-", "−")


def fmt_int(x: Any) -> str:
    """A count with thousands separators; '‡' when suppressed."""
    if _missing(x):
        return "‡"
    return f"{int(x):,}".replace("-", "−")


def fmt_p(p: Any) -> str:
    """A p-value: three decimals, '< 0.001' below that."""
    if _missing(p):
        return "‡"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_pct(part: Any, whole: Any | None = None, nd: int = 0) -> str:
    """A percentage (of ``whole`` when given, else ``part`` is already a percentage).

    Never prints "0%" or "100%" for a share that is neither: with ``nd`` decimals
    such a share is shown as "< 1%" or "> 99%" (or with more decimals).
    """
    if _missing(part) or (whole is not None and (_missing(whole) or not whole)):
        return "‡"
    v = 100 * float(part) / float(whole) if whole is not None else float(part)
    s = f"{v:.{nd}f}"
    lo = 10.0**-nd
    if v != 0 and float(s) == 0:
        s = f"< {lo:g}"
    elif v != 100 and float(s) == 100:
        s = f"> {100 - lo:g}"
    return s.replace("-", "−") + "%"


def plural(n: Any, one: str, many: str | None = None, *, show: bool = True) -> str:
    """``"no students"``, ``"1 student"``, ``"2 students"``; ``many`` for irregular plurals."""
    many = many if many is not None else one + "s"
    word = one if (not _missing(n) and abs(float(n)) == 1) else many
    if not show:
        return word
    return f"no {word}" if (not _missing(n) and float(n) == 0) else f"{fmt_int(n)} {word}"


def join_words(items: list[str], conj: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"
