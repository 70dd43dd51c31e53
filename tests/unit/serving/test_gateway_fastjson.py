"""The gateway's JSON helpers: orjson's speed, exactly the standard library's results."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from llm_serving.gateway import fastjson

DOCUMENTS = [
    b'{"model": "m", "messages": [{"role": "user", "content": "hi \\u00e9 \xc3\xa9"}]}',
    b'{"a": 1, "a": 2}',
    b" [1, 2.5, -0, -0.0, 1e5, 1E-7, true, false, null] ",
    b'{"seed": 123456789012345678901234567890, "n": -9223372036854775809}',
    b'{"max": 18446744073709551615, "over": 18446744073709551616}',
    b'{"t": NaN, "u": Infinity, "v": -Infinity, "w": 1e999}',
    b'"\\ud800 lone surrogate"',
    b'"\\ud83d\\ude00 pair"',
    b'\xef\xbb\xbf{"bom": true}',
    '{"utf16": true}'.encode("utf-16"),
    b'{"text": "order 1234567890123456789012 shipped"}',
]
INVALID = [b"", b"{", b"[1,]", b"{'a': 1}", b"[1] x", b'{"a": "x\ny"}', b"01"]


def _outcome(loads: Callable[[Any], Any], document: bytes | str) -> str:
    """repr of the value, or the exception's type: NaN != NaN, so values compare as text."""
    try:
        return repr(loads(document))
    except ValueError as exc:
        return type(exc).__name__


@pytest.mark.parametrize("document", DOCUMENTS + INVALID)
def test_loads_matches_the_standard_library(document: bytes) -> None:
    assert _outcome(fastjson.loads, document) == _outcome(json.loads, document)
    text = document.decode("utf-8", "replace")
    assert _outcome(fastjson.loads, text) == _outcome(json.loads, text)


@pytest.mark.parametrize("document", INVALID)
def test_loads_rejects_what_the_standard_library_rejects(document: bytes) -> None:
    with pytest.raises(fastjson.JSONDecodeError):
        json.loads(document)
    with pytest.raises(fastjson.JSONDecodeError):
        fastjson.loads(document)


def test_invalid_utf8_raises_unicode_decode_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        fastjson.loads(b'{"a": "\xff"}')


def test_numbers_match_the_standard_library() -> None:
    rng = random.Random(11)
    for _ in range(20000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 24)))
        digits = digits.lstrip("0") or "0"
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 18)))
        text = ("-" if rng.random() < 0.5 else "") + digits
        text += f".{fraction}" if fraction else ""
        text += f"e{rng.randint(-330, 310)}" if rng.random() < 0.5 else ""
        assert repr(fastjson.loads(text.encode())) == repr(json.loads(text)), text


def test_dumps_round_trips_what_orjson_cannot_write() -> None:
    document = b'{"t": NaN, "u": -Infinity, "big": 123456789012345678901234567890}'
    value = fastjson.loads(document)
    value["s"] = "\ud800"
    out = fastjson.dumps(value)
    assert out == b'{"t":NaN,"u":-Infinity,"big":123456789012345678901234567890,"s":"\\ud800"}'
    assert repr(json.loads(out)) == repr(value)


def test_dumps_is_compact_utf8() -> None:
    assert fastjson.dumps({"a": [1, 2.5, None], "é": "ü"}) == '{"a":[1,2.5,null],"é":"ü"}'.encode()
    assert fastjson.dumps({"when": object}, default=lambda _: "x") == b'{"when":"x"}'
