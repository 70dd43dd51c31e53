"""Server-sent events from the engine, re-checked choice by choice and re-serialised.

vLLM streams `data: {chunk}` events separated by blank lines and ends with
`data: [DONE]`. `EventSplitter` cuts the byte stream into events whatever the read
boundaries; `StreamFilter` runs each choice's text through its own guardrail
`StreamScanner`, which holds back a small window so that an entity split across two
chunks is still caught, and writes what may be emitted now back into the chunk. When
a choice finishes, its scanner is flushed into that final chunk. A blocked choice
ends the stream with an OpenAI-style `data: {"error": ...}` event and `[DONE]`.

The gateway asks the engine for a usage report (`stream_options.include_usage`) to
count tokens; when the client did not ask for one, the usage-only chunk is dropped
again so the client sees the stream it requested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from llm_serving.gateway import errors, fastjson
from llm_serving.guardrails import pipeline

DONE = b"data: [DONE]\n\n"

#: Called with the findings of every scan, for metrics.
FindingsSink = Callable[[tuple[pipeline.Finding, ...]], None]


def encode(data: dict[str, Any]) -> bytes:
    """One SSE event carrying a JSON document."""
    return b"data: " + fastjson.dumps(data) + b"\n\n"


class EventSplitter:
    """Reassembles SSE events from arbitrary byte chunks; yields each event's data field."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes; return the data of every event completed by them."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[str] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            data = _data_of(buffer[start:end])
            if data is not None:
                events.append(data)
            start = end + 2
        self._buffer = buffer[start:] if start else buffer
        return events

    def close(self) -> list[str]:
        """The last event if the stream ended without a blank line."""
        raw, self._buffer = self._buffer, b""
        data = _data_of(raw.rstrip(b"\n"))
        return [] if data is None else [data]


def _data_of(raw: bytes) -> str | None:
    """Join the `data:` lines of one event; None for comments and empty events."""
    lines = [line[5:].removeprefix(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines).decode("utf-8", errors="replace")


@dataclasses.dataclass
class Usage:
    """Token counts reported by the engine."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclasses.dataclass
class Output:
    """What one upstream event turns into."""

    events: list[bytes]
    #: The stream is over (a [DONE] or a block); stop reading the engine.
    done: bool = False
    #: Some emitted event carries generated text.
    has_text: bool = False
    blocked: pipeline.Finding | None = None


class StreamFilter:
    """Applies output guardrails to a chat or completions stream, one event at a time."""

    def __init__(
        self,
        guard: pipeline.OutputGuard | None,
        chat: bool,
        forward_usage: bool,
        on_findings: FindingsSink,
    ) -> None:
        self._guard = guard
        self._chat = chat
        self._forward_usage = forward_usage
        self._on_findings = on_findings
        self._scanners: dict[int, pipeline.StreamScanner] = {}
        self._finished: set[int] = set()
        self._last: dict[str, Any] = {}  # the last chunk with choices: its id, model, ...
        self.usage: Usage | None = None
        self.done = False

    @property
    def guarded(self) -> bool:
        """Whether output guardrails run on this stream."""
        return self._guard is not None

    def _scanner(self, index: int) -> pipeline.StreamScanner | None:
        if self._guard is None:
            return None
        scanner = self._scanners.get(index)
        if scanner is None:
            scanner = self._scanners[index] = self._guard.stream()
        return scanner

    def _scan(self, result: pipeline.TextResult) -> tuple[str, pipeline.Finding | None]:
        if result.findings:
            self._on_findings(result.findings)
        return result.text, result.blocked

    def _blocked(self, finding: pipeline.Finding) -> Output:
        self.done = True
        return Output([encode(errors.guardrail_body(finding)), DONE], done=True, blocked=finding)

    def feed(self, data: str) -> Output:
        """Process the data of one upstream event."""
        if self.done:
            return Output([], done=True)
        if "[DONE]" in data and data.strip() == "[DONE]":
            return self._finish()
        try:
            chunk = fastjson.loads(data)
        except fastjson.JSONDecodeError:
            return Output([("data: " + data + "\n\n").encode()])
        if not isinstance(chunk, dict) or "error" in chunk:
            return Output([("data: " + data + "\n\n").encode()])
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
            if not self._forward_usage:
                del chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return Output([encode(chunk)])
        self._last = chunk
        kept: list[Any] = []
        has_text = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            outcome = self._choice(choice)
            if isinstance(outcome, pipeline.Finding):
                return self._blocked(outcome)
            if outcome is not None:
                kept.append(outcome)
                has_text = has_text or bool(self._text(outcome))
        if not kept and choices:
            return Output([])  # everything held back
        if not kept and "usage" not in chunk:
            return Output([])  # a usage-only chunk the client did not ask for
        chunk["choices"] = kept
        return Output([encode(chunk)], has_text=has_text)

    def _text(self, choice: dict[str, Any]) -> str:
        if self._chat:
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            return content if isinstance(content, str) else ""
        text = choice.get("text")
        return text if isinstance(text, str) else ""

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any] | pipeline.Finding | None:
        """Scan one choice; the choice to emit, None to drop it, or the blocking finding."""
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        scanner = self._scanner(index)
        text = self._text(choice)
        finishing = choice.get("finish_reason") is not None
        if scanner is None:
            return choice
        emitted = ""
        if text:
            emitted, blocked = self._scan(scanner.feed(text))
            if blocked is not None:
                return blocked
        if finishing and index not in self._finished:
            self._finished.add(index)
            tail, blocked = self._scan(scanner.finish())
            if blocked is not None:
                return blocked
            emitted += tail
        if self._chat:
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if "content" in delta or emitted:
                delta["content"] = emitted
            choice["delta"] = delta
            other = any(k != "content" and v is not None for k, v in delta.items())
        else:
            choice["text"] = emitted
            other = False
        if emitted or finishing or other or choice.get("logprobs") is not None:
            return choice
        return None

    def _finish(self) -> Output:
        """[DONE]: flush choices that never reported a finish reason, then end."""
        events: list[bytes] = []
        has_text = False
        for index, scanner in sorted(self._scanners.items()):
            if index in self._finished:
                continue
            self._finished.add(index)
            tail, blocked = self._scan(scanner.finish())
            if blocked is not None:
                return self._blocked(blocked)
            if tail:
                has_text = True
                choice: dict[str, Any] = (
                    {
                        "index": index,
                        "delta": {"content": tail},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                    if self._chat
                    else {"index": index, "text": tail, "logprobs": None, "finish_reason": None}
                )
                meta = {k: v for k, v in self._last.items() if k not in ("choices", "usage")}
                events.append(encode({**meta, "choices": [choice]}))
        events.append(DONE)
        self.done = True
        return Output(events, done=True, has_text=has_text)

    def end_of_stream(self) -> Output:
        """The engine closed the stream without [DONE]: flush and end it properly."""
        if self.done:
            return Output([], done=True)
        return self._finish()
