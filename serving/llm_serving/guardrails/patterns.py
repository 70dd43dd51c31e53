"""Operator-supplied deny patterns: case-insensitive RE2 regular expressions from the policy.

Patterns are compiled once per policy by RE2 (`policy.compile_deny_pattern`), whose
matching time is linear in the text whatever the pattern, so a pattern written
carelessly (``(a+)+$``, ``\\w*x``) cannot hold the gateway: Python's backtracking `re`
took seconds on such patterns over a few kilobytes. RE2 refuses lookaround and
backreferences; the policy refuses those patterns when it is loaded. A match is reported
by its index in ``denyPatterns.patterns`` (never by the matched text), and with the
redact action it is replaced by ``[REDACTED]``. Zero-length matches are ignored, so a
pattern such as ``a*`` cannot redact every position.
"""

from __future__ import annotations

from typing import Any

from llm_serving import policy
from llm_serving.guardrails import pii

REPLACEMENT = "[REDACTED]"
KIND = "deny_pattern"
_PRIORITY = -1  # a deny match wins over an overlapping PII entity


class DenyPatterns:
    """The compiled `DenyPatternCheck` of one policy."""

    def __init__(self, config: policy.DenyPatternCheck) -> None:
        self.action = config.action
        self._patterns: tuple[Any, ...] = tuple(
            policy.compile_deny_pattern(p) for p in config.patterns
        )

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def find(self, text: str) -> list[tuple[int, pii.Span]]:
        """(pattern index, span) for every non-empty match, in pattern order."""
        found: list[tuple[int, pii.Span]] = []
        for index, pattern in enumerate(self._patterns):
            for match in pattern.finditer(text):
                start, end = match.span()
                if end > start:
                    found.append((index, pii.Span(start, end, KIND, REPLACEMENT, _PRIORITY)))
        return found


def describe(indexes: list[int]) -> str:
    """Client-safe message naming the patterns that matched (by index, not content)."""
    unique = sorted(set(indexes))
    names = ", ".join(f"denyPatterns.patterns[{i}]" for i in unique)
    return f"text matches {names}"
