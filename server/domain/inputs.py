"""What a request may carry: its numbers and its text, checked the same way at every door.

The pages, the API, the configuration and CSV imports and the command line call these (no Flask
here). The rules are in ``docs/protocol.md`` ("Text and numbers"):

- **Numbers** are ASCII digits only, of a bounded length: ``str.isdigit`` and ``int`` also take
  superscripts (``¹``, which ``int`` then refuses), Arabic-Indic (``١٢``) and fullwidth (``１２``)
  digits, spaces and signs. :func:`parse_int` is the one parser of a number a request carries.
- **Text that cannot be stored** is refused: a lone surrogate (``"\\ud800"`` in JSON: no UTF-8
  encodes it, so a page showing it fails) and NUL (PostgreSQL keeps no NUL in text). Telemetry is
  the exception: there a lone surrogate is replaced by U+FFFD (``dashdesk.wire``), so that no press is
  lost for its telemetry.
- **Control characters**: one-line fields (names, labels, codes, a contact) take none (C0, DEL, C1,
  and the line and paragraph separators U+2028 and U+2029); text of several lines (notes,
  resolutions, reasons, an address, service hours) takes tab, line feed and carriage return only.
- **Length** is counted in characters (code points) and limited per field; combining marks are at
  most 30 in a row (Unicode's stream-safe text format, UAX #15): more is no writing system's, only a
  way to draw over the rest of a page. Right-to-left overrides and other bidi controls are allowed:
  every page escapes what it shows.

>>> parse_int("42"), parse_int("¹"), parse_int("١٢"), parse_int("-1"), parse_int("7", low=1, high=4)
(42, None, None, None, None)
>>> text_problem("Till 1"), text_problem("a\\x00b"), text_problem("two\\nlines")
(None, 'contains NUL (U+0000), which cannot be stored', 'contains a line break: give one line')
>>> text_problem("two\\nlines", multiline=True) is None
True
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Callable

from dashdesk import wire

# Past 18 digits a number may not fit a 64-bit integer; nothing a request counts comes near.
MAX_DIGITS = 18
INT64_MAX = 2**63 - 1
# A decimal number (hours of validity, say): digits, an optional fraction.
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?|\.[0-9]{1,9}")

# One line of text: no C0 control (tab and line breaks included), DEL, C1 control, line or paragraph separator.
_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Several lines: tab, line feed and carriage return are fine; other controls are not.
_NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
# Combining marks in a row on one character: Unicode's stream-safe text format allows 30 (UAX #15).
MAX_COMBINING = 30


# ------------------------------------------------------------------ numbers


def parse_int(text: Any, *, low: int = 0, high: int = INT64_MAX, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a whole number if it is 1 to ``max_digits`` ASCII digits (no sign, no spaces) from ``low``
    to ``high``; else None. An ``int`` (not a bool) is taken as it is, within the same bounds.

    >>> parse_int("007"), parse_int(" 7"), parse_int("７"), parse_int("9" * 19), parse_int(True)
    (7, None, None, None, None)
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        value = int(text)
    else:
        return None
    return value if low <= value <= high else None


def page_number(text: Any, last: int = 10**6) -> int:
    """A page's number from a query (``?page=3``): 0, the first, for anything that is no number; at most ``last``.

    >>> page_number("3"), page_number("¹"), page_number(""), page_number("9" * 30)
    (3, 0, 0, 0)
    """
    return min(parse_int(text) or 0, last)


def parse_decimal(text: Any, *, low: float = 0.0, high: float = 1e9) -> float | None:
    """``text`` as a number if it is ASCII digits with an optional fraction (``24``, ``0.5``, ``.5``) from ``low``
    to ``high``; else None (``1e3``, ``nan``, ``inf``, ``２４``, ``-1``). An ``int`` or ``float`` is taken within
    the same bounds.

    >>> parse_decimal("0.5"), parse_decimal("1e3"), parse_decimal("nan"), parse_decimal("２４")
    (0.5, None, None, None)
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    elif isinstance(text, str) and _DECIMAL.fullmatch(text):
        value = float(text)
    else:
        return None
    return value if low <= value <= high else None


# ------------------------------------------------------------------ text


def text_problem(value: str, *, multiline: bool = False, max_len: int | None = None) -> str | None:
    """What keeps ``value`` from being stored and shown as given (a phrase to put after the field's name),
    or None if nothing does. ``multiline``: text of several lines (tab and line breaks are fine);
    ``max_len``: at most that many characters.

    >>> text_problem("\\ud800"), text_problem("\\u202eevil"), text_problem("e" + "\\u0301" * 31)
    ('contains a lone surrogate (U+D800): it is not Unicode text', None, 'has 31 combining marks in a row; at most 30')
    """
    if value.isascii():
        bad = (_NOT_IN_TEXT if multiline else _NOT_IN_A_LINE).search(value)
        if bad is not None:
            return _control(bad.group())
        if max_len is not None and len(value) > max_len:
            return f"is {len(value)} characters long; at most {max_len}"
        return None
    surrogate = wire.LONE_SURROGATE.search(value)
    if surrogate is not None:
        return f"contains a lone surrogate (U+{ord(surrogate.group()):04X}): it is not Unicode text"
    bad = (_NOT_IN_TEXT if multiline else _NOT_IN_A_LINE).search(value)
    if bad is not None:
        return _control(bad.group())
    if max_len is not None and len(value) > max_len:
        return f"is {len(value)} characters long; at most {max_len}"
    run = longest_combining_run(value)
    if run > MAX_COMBINING:
        return f"has {run} combining marks in a row; at most {MAX_COMBINING}"
    return None


def _control(ch: str) -> str:
    if ch == "\x00":
        return "contains NUL (U+0000), which cannot be stored"
    if ch in _LINE_BREAKS:
        return "contains a line break: give one line"
    return f"contains the control character U+{ord(ch):04X}"


def longest_combining_run(value: str) -> int:
    """The most combining marks (characters of a non-zero canonical combining class) in a row in ``value``."""
    longest = run = 0
    combining = unicodedata.combining
    for ch in value:
        if ch > "\u02ff" and combining(ch):
            run += 1
            if run > longest:
                longest = run
        else:
            run = 0
    return longest


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control(value: str) -> bool:
    """Whether ``value`` has a control character (C0, DEL, C1)."""
    return _CONTROL.search(value) is not None


def without_controls(value: str) -> str:
    """``value`` with its control characters (C0, DEL, C1) left out: for what a request's headers say (a browser's
    User-Agent), kept for people to read."""
    return _CONTROL.sub("", value)


# What a JSON text holds where it has a lone surrogate: an escape \ud800-\udfff, or (json.loads reads bytes with
# "surrogatepass") its three bytes. A text without either has none; one with either may (a pair, an escaped backslash).
_SURROGATE_IN_JSON = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def may_hold_lone_surrogate(body: bytes) -> bool:
    """False if the JSON text ``body`` cannot hold a lone surrogate (:func:`lone_surrogate_at` then need not look).

    >>> may_hold_lone_surrogate(b'{"a": "b"}'), may_hold_lone_surrogate(b'{"a": "\\udc00"}')
    (False, True)
    """
    if b"\\u" not in body and b"\xed" not in body:  # most bodies: a plain search is faster than the pattern's
        return False
    return _SURROGATE_IN_JSON.search(body) is not None


# ------------------------------------------------------------------ JSON documents


Path = tuple[Any, ...]


def lone_surrogate_at(data: Any, skip: Callable[[Path], bool] = lambda path: False) -> Path | None:
    """Where the first lone surrogate of a parsed JSON document is (in a key or a string: its path, as
    ``("items", 0, "telemetry", "x")``), leaving out the parts whose path ``skip`` takes; None if there is none.

    >>> lone_surrogate_at({"a": [1, {"b": "\\udc00"}]}), lone_surrogate_at({"\\ud800": 1}), lone_surrogate_at([])
    (('a', 1, 'b'), ('\\ud800',), None)
    """
    stack: list[tuple[Path, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if path and skip(path):
            continue
        if isinstance(value, str):
            if wire.has_lone_surrogate(value):
                return path
        elif isinstance(value, dict):
            for k in value:
                if wire.has_lone_surrogate(k) and not skip(path + (k,)):
                    return path + (k,)
            stack.extend((path + (k,), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(value))))
    return None


def path_text(path: Path) -> str:
    """``("items", 0, "telemetry", "x")`` → ``items[0].telemetry.x``, each key shown safely (``\\ud800``)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part.encode("utf-8", "backslashreplace").decode()[:40]
            out += ("." if out else "") + shown
    return out or "the body"
