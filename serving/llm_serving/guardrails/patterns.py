"""Operator-supplied deny patterns: case-insensitive regular expressions from the policy.

Patterns are compiled once per policy. A match is reported by its index in
``denyPatterns.patterns`` (never by the matched text), and with the redact action
it is replaced by ``[REDACTED]``. Zero-length matches are ignored, so a pattern such
as ``a*`` cannot redact every position.
"""

from __future__ import annotations

import re

from llm_serving import policy
from llm_serving.guardrails import pii

REPLACEMENT = "[REDACTED]"
KIND = "deny_pattern"
_PRIORITY = -1  # a deny match wins over an overlapping PII entity


class DenyPatterns:
    """The compiled `DenyPatternCheck` of one policy."""

    def __init__(self, config: policy.DenyPatternCheck) -> None:
        self.action = config.action
        self._patterns = tuple(re.compile(p, re.IGNORECASE) for p in config.patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def find(self, text: str) -> list[tuple[int, pii.Span]]:
        """(pattern index, span) for every non-empty match, in pattern order."""
        found: list[tuple[int, pii.Span]] = []
        for index, pattern in enumerate(self._patterns):
            for match in pattern.finditer(text):
                if match.end() > match.start():
                    found.append(
                        (index, pii.Span(match.start(), match.end(), KIND, REPLACEMENT, _PRIORITY))
                    )
        return found


def describe(indexes: list[int]) -> str:
    """Client-safe message naming the patterns that matched (by index, not content)."""
    unique = sorted(set(indexes))
    names = ", ".join(f"denyPatterns.patterns[{i}]" for i in unique)
    return f"text matches {names}"
