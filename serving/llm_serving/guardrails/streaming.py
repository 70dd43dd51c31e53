"""Output checks on streamed text, released as soon as nothing held back can change it.

Streams are scanned by a `StreamScanner` per choice: it holds back the last
``streamHoldbackChars`` characters from the first digit in them on (all of them when
deny patterns are set), any unfinished whitespace-free run, any entity that
straddles the cut, and any private-key block whose END has not arrived, so that an
entity split across chunks is still redacted or blocked before any of it is
emitted, while plain prose is released word by word.

`TokenScanner` does the same over a choice's logprobs tokens, releasing whole tokens.
"""

from __future__ import annotations

import collections
import dataclasses

from llm_serving import policy
from llm_serving.guardrails import pii, pipeline

_CONTEXT_CHARS = 64  # emitted text kept so look-behinds and keywords still see it
_MAX_RUN_HOLD = 2048  # longest whitespace-free run held back whole (JWTs, keys)


class StreamScanner:
    """Incremental output checks for one streamed choice (see the module docstring).

    After a block, `feed` and `finish` return empty text and no findings; the block
    finding was returned once, by the call that found it.
    """

    def __init__(self, guard: pipeline.OutputGuard, toxicity: bool = True) -> None:
        self._guard = guard
        self._holdback = guard.holdback
        self._buffer = ""
        self._context = ""
        tox = guard.toxicity_model if toxicity else None
        self._tracker = tox.tracker() if tox is not None else None
        self._toxic = False
        self._key_hold = False  # holding an unterminated private-key block
        self.blocked: pipeline.Finding | None = None

    def feed(self, delta: str) -> pipeline.TextResult:
        """Add a delta; return what may be emitted now (redacted) and this call's findings."""
        if self.blocked is not None:
            return pipeline.TextResult("", ())
        self._buffer += delta
        findings: list[pipeline.Finding] = []
        if self._tracker is not None and delta:
            self._toxicity(self._tracker.feed(delta), findings)
        if (
            self._key_hold
            and not findings
            and "-----END" not in self._buffer[-(len(delta) + len("-----END")) :]
        ):
            return pipeline.TextResult("", (), (), 0)  # nothing can be released before the END line
        return self._emit(findings, final=False)

    def finish(self) -> pipeline.TextResult:
        """Flush the held-back tail (checked); call once at the end of the stream."""
        if self.blocked is not None:
            return pipeline.TextResult("", ())
        findings: list[pipeline.Finding] = []
        if self._tracker is not None:
            self._toxicity(self._tracker.finish(), findings)
        return self._emit(findings, final=True)

    def _toxicity(self, score: float, findings: list[pipeline.Finding]) -> None:
        guard = self._guard
        if not self._toxic and score >= guard.toxicity_threshold:
            self._toxic = True
            findings.append(guard.toxicity_finding(score))

    def _emit(self, findings: list[pipeline.Finding], *, final: bool) -> pipeline.TextResult:
        guard = self._guard
        buffer = self._buffer
        offset = len(self._context)
        scanned = self._context + buffer
        deny, entities = guard.text_checks.scan(scanned)
        # Entities that began in already-emitted context were handled then.
        deny = [(i, _shift(s, offset)) for i, s in deny if s.start >= offset]
        entities = [_shift(s, offset) for s in entities if s.start >= offset]
        blocking = (deny and guard.text_checks.deny_action is policy.Action.BLOCK) or (
            entities and guard.text_checks.pii_action is policy.Action.BLOCK
        )
        if blocking or any(f.action is policy.Action.BLOCK for f in findings):
            # Block on anything seen, even in the held-back part: nothing more is emitted.
            findings = guard.text_checks.findings(deny, entities) + findings
            result = pipeline.TextResult("", tuple(findings), (), 0)
            self.blocked = result.blocked
            self._buffer = ""
            return result
        self._key_hold = False
        boundary = len(buffer) if final else self._boundary(buffer, deny, entities)
        deny = [(i, s) for i, s in deny if s.end <= boundary]
        entities = [s for s in entities if s.end <= boundary]
        findings = guard.text_checks.findings(deny, entities) + findings
        redactions = guard.text_checks.redactions(deny, entities)
        emitted = buffer[:boundary]
        text = pii.apply(emitted, redactions) if redactions else emitted
        self._context = (self._context + emitted)[-_CONTEXT_CHARS:]
        self._buffer = buffer[boundary:]
        return pipeline.TextResult(text, tuple(findings), tuple(redactions), boundary)

    def _boundary(
        self, buffer: str, deny: list[tuple[int, pii.Span]], entities: list[pii.Span]
    ) -> int:
        """How much of `buffer` may be emitted now."""
        if self._holdback == 0:
            return len(buffer)
        window = max(0, len(buffer) - self._holdback)
        if self._guard.text_checks.has_deny_patterns:
            # A deny pattern may match any text: hold the whole window.
            boundary = window
        else:
            # Every PII kind that can contain white space (cards, phone numbers, IBANs,
            # SSNs) contains digits, and the others (e-mail, credentials, IPv6) are
            # whitespace-free runs, held below. So without a digit in the window only
            # the unfinished last word need wait, and prose streams word by word.
            digit = next((i for i in range(window, len(buffer)) if buffer[i].isdigit()), None)
            boundary = len(buffer) if digit is None else digit
        if boundary == len(buffer) and buffer and not buffer[-1].isspace():
            boundary -= 1  # inside the trailing run: moved to its start below
        # Never cut inside a whitespace-free run (tokens, keys, e-mail addresses).
        if 0 < boundary < len(buffer) and not buffer[boundary].isspace():
            start = boundary
            floor = max(0, boundary - _MAX_RUN_HOLD)
            while start > floor and not buffer[start - 1].isspace():
                start -= 1
            if start > floor or floor == 0:
                boundary = start
        # Never cut through an entity or a deny match.
        spans = sorted([s for _, s in deny] + entities, key=lambda s: s.start, reverse=True)
        for span in spans:
            if span.start < boundary < span.end:
                boundary = span.start
        # Hold a private-key block until its END line arrives.
        if "-----BEGIN" in buffer:
            for match in pii.PEM_BEGIN.finditer(buffer):
                if match.start() <= boundary and "-----END" not in buffer[match.end() :]:
                    boundary = min(boundary, match.start())
                    self._key_hold = True
                    break
        return boundary


def _shift(span: pii.Span, offset: int) -> pii.Span:
    return dataclasses.replace(span, start=span.start - offset, end=span.end - offset)


@dataclasses.dataclass(frozen=True)
class TokensResult:
    """What a `TokenScanner` releases: (position, new text or None when unchanged) pairs."""

    released: list[tuple[int, str | None]]
    findings: tuple[pipeline.Finding, ...]
    blocked: pipeline.Finding | None


class TokenScanner:
    """Output checks over a sequence of tokens (a choice's logprobs), released whole.

    The tokens are scanned as one text by a `StreamScanner` (without toxicity: the
    choice's text is scored already); a token goes out once the scanner has released
    all of its characters, and a token that overlaps a redaction gets the redacted
    text of its part: the entity's placeholder in the token where the entity starts,
    the empty string in the others, so the tokens still spell the redacted text.
    Positions count the tokens fed, from 0.
    """

    def __init__(self, guard: pipeline.OutputGuard) -> None:
        self._scanner = StreamScanner(guard, toxicity=False)
        # (position, start, token) of the tokens not released yet
        self._pending: collections.deque[tuple[int, int, str]] = collections.deque()
        self._fed = 0  # characters fed
        self._released = 0  # characters released by the scanner
        self._spans: list[tuple[int, int, str]] = []  # redactions, absolute, not passed yet
        self._count = 0

    def feed(self, tokens: list[str]) -> TokensResult:
        """Add tokens; return those that may go out now."""
        for token in tokens:
            self._pending.append((self._count, self._fed, token))
            self._count += 1
            self._fed += len(token)
        return self._take(self._scanner.feed("".join(tokens)))

    def finish(self) -> TokensResult:
        """Release every token left (checked); call once at the end."""
        return self._take(self._scanner.finish(), final=True)

    def _take(self, result: pipeline.TextResult, final: bool = False) -> TokensResult:
        blocked = result.blocked
        if blocked is not None:
            self._pending.clear()
            return TokensResult([], result.findings, blocked)
        base = self._released
        self._spans.extend((base + s.start, base + s.end, s.replacement) for s in result.spans)
        self._released += len(result.text) if result.source_chars is None else result.source_chars
        released: list[tuple[int, str | None]] = []
        pending = self._pending
        while pending and (final or pending[0][1] + len(pending[0][2]) <= self._released):
            position, start, token = pending.popleft()
            released.append((position, self._redacted(start, token)))
        if self._spans:
            done = pending[0][1] if pending else self._released
            self._spans = [span for span in self._spans if span[1] > done]
        return TokensResult(released, result.findings, None)

    def _redacted(self, start: int, token: str) -> str | None:
        """`token` (at `start`) with the redactions applied, or None if none touches it."""
        end = start + len(token)
        spans = [s for s in self._spans if s[0] < end and s[1] > start]
        if not spans:
            return None
        pieces: list[str] = []
        cursor = start
        for span_start, span_end, replacement in spans:
            if span_start >= start:
                pieces.append(token[cursor - start : span_start - start])
                pieces.append(replacement)
            cursor = max(cursor, span_end)
        if cursor < end:
            pieces.append(token[cursor - start :])
        return "".join(pieces)
