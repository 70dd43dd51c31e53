"""JSON for the request path: orjson's speed with the standard library's results.

Every request and response body, and every event of a stream, is parsed once and
sometimes serialised again, so the gateway uses orjson (several times faster than
`json`) where it gives the same result, and the standard library where it would not:

- `loads` returns exactly what `json.loads` returns. orjson refuses ``NaN``,
  ``Infinity``, numbers beyond a double and lone surrogates, which `json` accepts,
  and it turns an integer beyond 64 bits into a float; so a document orjson refuses,
  or one with a run of 19 or more digits (checked on the bytes in well under a
  microsecond), is parsed by `json` instead, and its non-finite numbers come back as
  `NonFinite` floats.
- `loads_request` is the strict variant for request bodies: non-finite numbers are
  not JSON and are refused, as is nesting too deep to parse (both `ValueError`).
- `dumps` writes compact UTF-8 JSON with orjson. What orjson cannot write the same
  way (`NonFinite` floats, integers beyond 64 bits, lone surrogates, types it does not
  know) is written by `json` instead, as ASCII, so ``NaN`` stays ``NaN`` and a
  lone surrogate becomes its ``\\udxxx`` escape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import orjson

#: Raised by `loads` for a document that is not JSON (a `ValueError`).
JSONDecodeError = json.JSONDecodeError

_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # 19 digits may exceed the 64-bit range orjson keeps as int


class NotJSONError(json.JSONDecodeError):
    """A document parsed, or a value written, that is not strict JSON (a non-finite
    number, too deep a nesting); a `JSONDecodeError`, so every caller already handles it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)


class NonFinite(float):
    """NaN or an infinity read from a document; orjson refuses it, so `dumps` keeps it."""


def _parse_constant(name: str) -> float:
    return NonFinite(name)  # "NaN", "Infinity", "-Infinity"


def _parse_float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(value)


def loads(data: bytes | str) -> Any:
    """Parse a JSON document: the value `json.loads` gives, or its exception.

    Invalid UTF-8 raises `UnicodeDecodeError` and invalid JSON `json.JSONDecodeError`,
    as with `json.loads` (and a document nested too deeply to parse `NotJSONError`,
    where `json.loads` would raise `RecursionError`).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return _parse(raw, data, _parse_constant, _parse_float)


def _parse(
    raw: bytes,
    data: bytes | str,
    parse_constant: Callable[[str], float],
    parse_float: Callable[[str], float],
) -> Any:
    """orjson when it gives `json`'s result, else `json` with these number parsers."""
    if _LONG_NUMBER not in raw.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(data, parse_constant=parse_constant, parse_float=parse_float)
    except RecursionError:
        raise NotJSONError("the document is nested too deeply") from None


def _refuse_constant(name: str) -> float:
    raise NotJSONError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotJSONError(f"{text} is beyond the range of a number")
    return value


def loads_request(data: bytes) -> Any:
    """Parse a request body as strict JSON: `NotJSONError`, `json.JSONDecodeError` or
    `UnicodeDecodeError` for one that is not (see the module docstring)."""
    return _parse(data, data, _refuse_constant, _finite_float)


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON of `value` as UTF-8 bytes (see the module docstring)."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError
        try:
            return json.dumps(value, separators=(",", ":"), default=default).encode()
        except RecursionError:
            raise NotJSONError("the document is nested too deeply") from None
