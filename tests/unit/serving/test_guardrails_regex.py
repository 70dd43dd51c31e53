"""Every regular expression in the serving package runs in time linear in its input.

Python's `re` backtracks; one pattern (``\\w*(?:...)\\w*`` in the injection check's
normalisation) took 30 s on 40,000 CJK characters, holding the gateway. These tests
walk every compiled pattern the package holds (the rules, PII, toxicity, the
normaliser, the gateway's own) and refuse (1) an unbounded repetition nested inside
another, and (2) any pattern whose time grows more than `LIMIT` times when the input
grows 8 times, on inputs built from the pattern's own parse tree to make it backtrack
(`regex_support.attacks`). Operator deny patterns run on RE2 and are tested here too.
A new pattern is picked up without registering it.
"""

from __future__ import annotations

import re
import time

import pydantic
import pytest

from llm_serving import policy
from llm_serving.guardrails import injection, patterns
from llm_serving.guardrails.injection import normalization, rules
from tests.unit.serving import regex_support

LIMIT = 32.0
"""Linear time grows 8 times per 8 times the input (`regex_support.FACTOR`); quadratic 64."""
SIZE = 300


@pytest.fixture(scope="module")
def compiled() -> dict[str, re.Pattern[str]]:
    return regex_support.patterns("llm_serving", injection.shared())


def test_the_walk_finds_every_pattern(compiled: dict[str, re.Pattern[str]]) -> None:
    found = {id(pattern) for pattern in compiled.values()}
    assert all(id(rule.pattern) in found for rule in rules.RULES)
    assert id(normalization._MIXED_JUNCTION) in found
    assert any(name.startswith("llm_serving.guardrails.pii.") for name in compiled)
    assert any(name.startswith("llm_serving.gateway.") for name in compiled)
    assert len(compiled) >= len(rules.RULES) + 30


def test_no_unbounded_repetition_nests_in_another(compiled: dict[str, re.Pattern[str]]) -> None:
    nested = {name: regex_support.nested_unbounded(p) for name, p in compiled.items()}
    assert {name: found for name, found in nested.items() if found} == {}


def test_the_static_check_sees_nesting() -> None:
    assert regex_support.nested_unbounded(re.compile(r"(?:a+b?)+$"))
    assert not regex_support.nested_unbounded(re.compile(r"(?:a{1,3}b)+$"))


def _finditer(pattern: re.Pattern[str], label: str) -> regex_support.Maker:
    def make(size: int) -> regex_support.Run:
        text = regex_support.attacks(pattern, size)[label]
        return lambda: list(pattern.finditer(text))

    return make


def _once(pattern: re.Pattern[str], text: str) -> float:
    start = time.thread_time()
    list(pattern.finditer(text))
    return time.thread_time() - start


def test_every_pattern_is_linear_on_its_attacks(compiled: dict[str, re.Pattern[str]]) -> None:
    slow: dict[str, str] = {}
    for name, pattern in compiled.items():
        small = regex_support.attacks(pattern, SIZE)
        large = regex_support.attacks(pattern, regex_support.FACTOR * SIZE)
        for label, text in small.items():
            # Two timings each first; only a suspicious pair is measured with care. A long
            # input done within 2 ms is no backtracking: the scan is about 2,400
            # characters, and a quadratic pattern takes tens of milliseconds on it.
            short = min(_once(pattern, text), _once(pattern, text))
            long = min(_once(pattern, large[label]), _once(pattern, large[label]))
            if long < 0.002 or long <= LIMIT * short:
                continue
            ratio = regex_support.superlinear(_finditer(pattern, label), SIZE, LIMIT)
            if ratio is not None:
                slow[name] = f"{label}: x{ratio:.1f}"
    assert slow == {}


def test_the_dynamic_check_sees_backtracking() -> None:
    """The patterns this file was written for, as they were, fail the same measurement."""
    old = [
        re.compile(r"\w*(?:[a-zA-Z][\u0400-\u04ff]|[\u0400-\u04ff][a-zA-Z])\w*"),
        re.compile(r"[\d(+][\d \-.()/+]{5,}\d"),
        re.compile(r"\bhey\s*,?\s*(?:ai|bot)s?\s*[:,!]"),
    ]
    for pattern in old:
        labels = regex_support.attacks(pattern, SIZE)
        assert any(
            regex_support.superlinear(_finditer(pattern, label), SIZE, LIMIT)
            for label in labels
            if label.startswith("run") or "*n+" in label
        ), pattern.pattern


def test_deny_patterns_run_on_re2_in_linear_time() -> None:
    catastrophic = [r"(a+)+$", r"(\w*)*x", r"(a|aa)*b", r"\w*\d\w*@"]
    deny = patterns.DenyPatterns(policy.DenyPatternCheck(patterns=catastrophic))

    def make(size: int) -> regex_support.Run:
        text = "a" * size + "!"
        return lambda: deny.find(text)

    assert regex_support.superlinear(make, 5_000, LIMIT) is None
    assert deny.find("aaab") != []


def test_deny_patterns_re2_refuses_backtracking_syntax() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"patterns\[1\] is not a valid RE2"):
        policy.DenyPatternCheck(patterns=["ok", r"secret(?=\s+sauce)"])
    with pytest.raises(pydantic.ValidationError, match=r"patterns\[0\]"):
        policy.DenyPatternCheck(patterns=[r"(a)\1"])
