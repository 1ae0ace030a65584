"""Numbers in the units a person reads (KB / MB, ms, %, k / M), changes, and errors as one sentence.

Values are spelled by core.results.describe (the CLI says them the same way); this module adds the
changes against a baseline that the pages show, and turns any error into one sentence.
"""
from __future__ import annotations

import re

from core.results import describe

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_TRACE_LINE = re.compile(r'^\s*(Traceback \(most recent call last\)|File "|~*\^+~*$|\^+$|During handling|The above)')
_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Warning|Interrupt)):\s*")


# the one spelling of sizes, times, percentages and counts, shared with the CLI
size, ms, pct, count = describe.size, describe.ms, describe.pct, describe.count


def _signed(text: str, negative: bool) -> str:
    return ("-" if negative else "+") + text.lstrip("-")


def _relative(new: float, old: float) -> str:
    return f" ({_signed(f'{abs(100 * (new - old) / old):.0f} %', new < old)})" if old else ""


def size_delta(new: float | None, old: float | None) -> str | None:
    """'-33.0 KB (-90 %)', or None when there is no change to show."""
    if new is None or old is None or new == old:
        return None
    return _signed(size(abs(new - old)), new < old) + _relative(new, old)


def count_delta(new: float | None, old: float | None) -> str | None:
    if new is None or old is None or new == old:
        return None
    return _signed(count(abs(new - old)), new < old) + _relative(new, old)


def points_delta(new: float | None, old: float | None) -> str | None:
    """An accuracy change in percentage points: '-1.25 pt'."""
    if new is None or old is None or round(100 * (new - old), 2) == 0:
        return None
    return f"{100 * (new - old):+.2f} pt"


def one_sentence(error: object, rename: dict[str, str] | None = None) -> str:
    """The first sentence of an error, for a person: no ANSI colours, no traceback, no exception
    class name, no bare '(101)' codes; names in `rename` (e.g. a hashed upload) replaced."""
    text = ANSI.sub("", str(error))
    for old, new in (rename or {}).items():
        text = text.replace(old, new)
    lines = [l.strip() for l in text.splitlines() if l.strip() and not _TRACE_LINE.match(l)]
    if "Traceback (most recent call last)" in text:  # the exception itself is the last 'XError: ...' line
        lines = [l for l in lines if _PREFIX.match(l)][-1:] or lines[-1:]
    line = lines[0] if lines else (type(error).__name__ if isinstance(error, BaseException) else "Unknown error")
    line = _PREFIX.sub("", line)
    line = re.sub(r"\s*\(\d+\)", "", line)
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", line, maxsplit=1)[0].strip()
    if len(first) > 300:
        first = first[:297].rstrip() + "…"
    if first and first[-1] not in ".!?…":
        first += "."
    return first
