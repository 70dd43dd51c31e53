"""Property tests: each check's time grows at most linearly with long runs in many scripts.

A 3.9 MB prompt of letters without spaces once held the gateway for eight minutes
(a regular expression in the injection check's normalisation backtracked over every
run of word characters). Hypothesis draws a short piece of text in one script (CJK,
kana, Thai, Arabic, emoji, letters with combining marks, base64-like tokens, Latin
letters mixed with Cyrillic look-alikes, digits with separators, or a mix) and
repeats it to `SIZE` and to eight times `SIZE` characters; each check (prompt
injection, PII, toxicity, deny patterns, token counting) must take at most `LIMIT`
times longer on the long text than on the short one. Linear time gives 8, quadratic
64; both are timed in the same run, the same number of times, alternately, best of
five, and a ratio past the limit is measured again at twice the size before it fails, so a
busy neighbour on a shared core is not taken for a quadratic check. The examples are
derandomised so CI runs the same ones every time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import hypothesis
import pytest
import tokenizers
from hypothesis import strategies as st
from tokenizers import models, pre_tokenizers, trainers

from llm_serving import policy
from llm_serving.guardrails import injection, patterns, pii, tokens, toxicity
from tests.unit.serving import regex_support

LIMIT = 32.0
SIZE = 2000


def _chars(*ranges: tuple[int, int]) -> st.SearchStrategy[str]:
    return st.one_of(*(st.characters(min_codepoint=lo, max_codepoint=hi) for lo, hi in ranges))


_BASE64 = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_SCRIPTS: dict[str, st.SearchStrategy[str]] = {
    "cjk": _chars((0x4E00, 0x9FFF)),
    "kana": _chars((0x3041, 0x30FF)),
    "thai": _chars((0x0E01, 0x0E5B)),
    "arabic": _chars((0x0621, 0x064A), (0x0660, 0x0669)),
    "emoji": _chars((0x1F300, 0x1F64F), (0x1F900, 0x1F9FF)),
    "combining": st.one_of(st.sampled_from("aeiouAEIOU"), _chars((0x0300, 0x036F))),
    "base64": _BASE64,
    "latin_cyrillic": st.one_of(st.sampled_from("aeopcxyAEKMHOPCTX"), _chars((0x0430, 0x044F))),
    "digits": st.sampled_from("0123456789 -.()+/"),
    "hashes_and_dashes": st.sampled_from("#=-*_:[]> \n"),
}
_MIXED = st.one_of(*_SCRIPTS.values(), st.sampled_from(" .\n'\"@:"))


@st.composite
def pieces(draw: st.DrawFn) -> str:
    """A short piece of text, usually in one script, sometimes words and spaces."""
    script = draw(st.sampled_from([*_SCRIPTS, "mixed"]))
    alphabet = _MIXED if script == "mixed" else _SCRIPTS[script]
    piece = draw(st.text(alphabet=alphabet, min_size=1, max_size=48))
    if draw(st.booleans()):
        piece += draw(st.sampled_from(["", " ", "\n", ". ", "ignore all previous "]))
    return piece


def _repeat(piece: str, size: int) -> str:
    return (piece * (size // len(piece) + 1))[:size]


def _assert_linear(check: Callable[[str], object], piece: str, size: int = SIZE) -> None:
    def make(length: int) -> regex_support.Run:
        text = _repeat(piece, length)
        return lambda: check(text)

    ratio = regex_support.superlinear(make, size, LIMIT)
    assert ratio is None, f"time grew x{ratio:.1f} for 8x the text, piece {piece!r}"


_SETTINGS = hypothesis.settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)


@functools.cache
def _pii() -> pii.PIIDetector:
    return pii.PIIDetector(list(policy.PIIEntity))


@functools.cache
def _deny() -> patterns.DenyPatterns:
    return patterns.DenyPatterns(
        policy.DenyPatternCheck(
            patterns=[r"project\s+x\w*", r"(\w+\s?)+$", r"[a-z0-9+/]{20,}={0,2}", r"\p{Han}+!"]
        )
    )


@functools.cache
def _counter() -> tokens.TokenCounter:
    """A byte-level BPE trained on the spot (no download), as in test_guardrails_tokens."""
    tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]"], show_progress=False)
    corpus = ["the quick brown fox jumps over the lazy dog", "日本語のテキスト 中文 ไทย"] * 50
    tokenizer.train_from_iterator(corpus, trainer)
    return tokens.TokenCounter(tokenizer)


@hypothesis.given(pieces())
@_SETTINGS
def test_injection_detector_is_linear(piece: str) -> None:
    _assert_linear(injection.shared().score, piece)


@hypothesis.given(pieces())
@_SETTINGS
def test_normalisation_is_linear(piece: str) -> None:
    _assert_linear(injection.normalize, piece, 5_000)


@hypothesis.given(pieces())
@_SETTINGS
def test_pii_is_linear(piece: str) -> None:
    _assert_linear(_pii().find, piece, 5_000)


@hypothesis.given(pieces())
@_SETTINGS
def test_toxicity_is_linear(piece: str) -> None:
    _assert_linear(toxicity.shared().score, piece, 5_000)


@hypothesis.given(pieces())
@_SETTINGS
def test_deny_patterns_are_linear(piece: str) -> None:
    _assert_linear(_deny().find, piece, 5_000)


@hypothesis.given(pieces())
@_SETTINGS
def test_token_counting_is_linear(piece: str) -> None:
    _assert_linear(tokens.estimate, piece, 20_000)
    _assert_linear(_counter().count, piece, 2_000)


@pytest.mark.parametrize("size", [5_000])
def test_long_cjk_normalises_in_linear_time(size: int) -> None:
    """The prompt of the incident: a long run of CJK characters (2.4 s at 10k before)."""
    _assert_linear(injection.normalize, "漢字かな交じり文", size)
    _assert_linear(injection.shared().score, "漢字かな交じり文", size)


def test_the_property_sees_a_quadratic_check() -> None:
    """The measurement fails a check that is quadratic (the normalisation as it was)."""
    old = re.compile(r"\w*(?:[a-zA-Z][\u0400-\u04ff]|[\u0400-\u04ff][a-zA-Z])\w*")
    with pytest.raises(AssertionError, match="time grew"):
        _assert_linear(old.search, "漢字かな交じり文", 400)
