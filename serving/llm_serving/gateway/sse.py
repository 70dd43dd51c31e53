"""Server-sent events from the engine, re-checked choice by choice and re-serialised.

vLLM streams `data: {chunk}` events separated by blank lines and ends with
`data: [DONE]`. `EventSplitter` cuts the byte stream into events whatever the read
boundaries; `StreamFilter` runs every text field of each choice's delta that
`texts` lists (content, reasoning, refusal, each tool call's arguments; the
completions' text) through its own guardrail `StreamScanner`, which holds back a
small window so that an entity split across two chunks is still caught, and writes
what may be emitted now back into the chunk. Tool-call names arrive whole and are
checked whole. The chosen tokens of a choice's logprobs go through a
`TokenScanner` and are held until their text is released, redacted like the text.
When a delta switches fields (reasoning, then content), the scanners of the other
fields are flushed into it; when a choice finishes, all of its scanners are. A
blocked choice ends the stream with an OpenAI-style `data: {"error": ...}` event
and `[DONE]`. Past the policy's `limits.maxCheckedChars` of text, a stream is ended
the same way (overLimit refuse) or every scanner is flushed and the rest passes
unchecked (sample: the stream's first characters are the sample).

The gateway asks the engine for a usage report (`stream_options.include_usage`) to
count tokens; when the client did not ask for one, the usage-only chunk is dropped
again so the client sees the stream it requested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from llm_serving import policy
from llm_serving.gateway import errors, fastjson, texts
from llm_serving.guardrails import pipeline, streaming

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


class _Blocked(Exception):  # noqa: N818 - control flow inside the filter, never raised out
    def __init__(self, finding: pipeline.Finding) -> None:
        super().__init__(finding.check)
        self.finding = finding


class _Logprobs:
    """The logprobs of one streamed choice: tokens held until their text is released.

    Chat entries are kept whole; completions keep the parallel lists (`tokens`,
    `token_logprobs`, `top_logprobs`, `text_offset`) position by position, and their
    offsets move by what the redactions before them changed.
    """

    def __init__(self, scanner: streaming.TokenScanner, chat: bool) -> None:
        self._scanner = scanner
        self._chat = chat
        self._held: dict[int, Any] = {}
        self._fed = 0
        self._shift = 0

    def feed(self, logprobs: Any) -> dict[str, Any] | None:
        """Take this chunk's logprobs; the logprobs to send with it (None: nothing)."""
        tokens: list[str] = []
        if self._chat:
            content = logprobs.get("content") if isinstance(logprobs, dict) else None
            for entry in content if isinstance(content, list) else ():
                if isinstance(entry, dict) and isinstance(entry.get("token"), str):
                    self._held[self._fed + len(tokens)] = entry
                    tokens.append(entry["token"])
        elif isinstance(logprobs, dict) and isinstance(logprobs.get("tokens"), list):
            columns = [logprobs.get(name) for name in _COLUMNS]
            for index, token in enumerate(logprobs["tokens"]):
                if isinstance(token, str):
                    row = [_at(column, index) for column in columns]
                    self._held[self._fed + len(tokens)] = row
                    tokens.append(token)
        self._fed += len(tokens)
        return self._out(self._scanner.feed(tokens))

    def finish(self) -> dict[str, Any] | None:
        """Release what is held; the logprobs to send (None: nothing)."""
        return self._out(self._scanner.finish())

    def _out(self, result: streaming.TokensResult) -> dict[str, Any] | None:
        if result.blocked is not None:
            raise _Blocked(result.blocked)
        if not result.released:
            return None
        if self._chat:
            entries = []
            for position, text in result.released:
                entry = self._held.pop(position)
                if text is not None:
                    texts.redact_chat_entry(entry, text)
                entries.append(entry)
            return {"content": entries}
        out: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        for position, text in result.released:
            token, logprob, top, offset = self._held.pop(position)
            if isinstance(offset, int):
                offset += self._shift
            if text is not None:
                self._shift += len(text) - len(token)
                token, top = text, ({} if isinstance(top, dict) else top)
            for name, value in zip(_COLUMNS, (token, logprob, top, offset), strict=True):
                out[name].append(value)
        return out


_COLUMNS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def _at(column: Any, index: int) -> Any:
    return column[index] if isinstance(column, list) and index < len(column) else None


class _Choice:
    """The scanners of one streamed choice, one per text field (and tool call)."""

    def __init__(self) -> None:
        self.scanners: dict[str | int, streaming.StreamScanner] = {}
        self.logprobs: _Logprobs | None = None
        self.finished = False
        self.unchecked = False  # past the limit in sample mode: flushed, then passed as is


class StreamFilter:
    """Applies output guardrails to a chat or completions stream, one event at a time."""

    def __init__(
        self,
        guard: pipeline.OutputGuard | None,
        chat: bool,
        forward_usage: bool,
        on_findings: FindingsSink,
        limits: policy.CheckLimits | None = None,
    ) -> None:
        self._guard = guard
        self._limits = limits or policy.CheckLimits()
        self._max_chars = self._limits.max_checked_chars
        self._scanned = 0  # characters of text fed to the scanners
        self._chat = chat
        self._forward_usage = forward_usage
        self._on_findings = on_findings
        self._choices: dict[int, _Choice] = {}
        self._last: dict[str, Any] = {}  # the last chunk with choices: its id, model, ...
        self.usage: Usage | None = None
        self.done = False

    @property
    def guarded(self) -> bool:
        """Whether output guardrails run on this stream."""
        return self._guard is not None

    def _blocked(self, finding: pipeline.Finding) -> Output:
        self.done = True
        return Output([encode(errors.guardrail_body(finding)), DONE], done=True, blocked=finding)

    def _scan(self, result: pipeline.TextResult) -> str:
        if result.findings:
            self._on_findings(result.findings)
        blocked = result.blocked
        if blocked is not None:
            raise _Blocked(blocked)
        return result.text

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
        usage = usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
            if not self._forward_usage:
                del chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return Output([encode(chunk)])
        self._last = chunk
        kept: list[Any] = []
        has_text = False
        try:
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                keep, text = self._choice(choice)
                if keep:
                    kept.append(choice)
                    has_text = has_text or text
        except _Blocked as blocked:
            return self._blocked(blocked.finding)
        if not kept and choices:
            return Output([])  # everything held back
        if not kept and "usage" not in chunk:
            return Output([])  # a usage-only chunk the client did not ask for
        chunk["choices"] = kept
        return Output([encode(chunk)], has_text=has_text)

    def _state(self, choice: dict[str, Any]) -> _Choice:
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        return state

    def _scanner(self, state: _Choice, field: str | int) -> streaming.StreamScanner:
        assert self._guard is not None
        scanner = state.scanners.get(field)
        if scanner is None:
            scanner = state.scanners[field] = streaming.StreamScanner(self._guard)
        return scanner

    def _choice(self, choice: dict[str, Any]) -> tuple[bool, bool]:
        """Scan one choice in place: whether any of it may go out now, and with text."""
        if self._guard is None:
            return True, _has_text(choice, self._chat)
        state = self._state(choice)
        finishing = choice.get("finish_reason") is not None
        tails: dict[str | int, str] = {}
        emitted = has_text = False
        if self._chat:
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
            fields = self._fields(delta)
            if self._over_budget(sum(len(text) for _, _, text in fields.values())):
                return self._unchecked(state, choice), True
            switched = state.scanners.keys() - fields.keys() if fields else ()
            for field in switched:  # a field switch (reasoning, then content): flush the others
                tails[field] = self._scan(state.scanners.pop(field).finish())
            for field, (holder, key, text) in fields.items():
                out = self._scan(self._scanner(state, field).feed(text))
                holder[key] = out
                if out:
                    has_text = True
            if finishing:
                for field in list(state.scanners):
                    tails[field] = tails.get(field, "") + self._scan(
                        state.scanners.pop(field).finish()
                    )
            if tails:
                _put_tails(delta, tails)
                has_text = has_text or any(tails.values())
            emitted = has_text or bool(delta.get("tool_calls"))
            if not emitted:
                for key, value in delta.items():  # a role, a finish: not text, still news
                    if value is not None and key not in texts.CHOICE_TEXTS:
                        emitted = True
                        break
        else:
            given = choice.get("text")
            if self._over_budget(len(given) if isinstance(given, str) else 0):
                return self._unchecked(state, choice), True
            out = ""
            if isinstance(given, str) and given:
                out = self._scan(self._scanner(state, "text").feed(given))
            if finishing and "text" in state.scanners:
                out += self._scan(state.scanners.pop("text").finish())
            choice["text"] = out
            emitted = has_text = bool(out)
        logprobs = choice.get("logprobs")
        if logprobs is not None or (finishing and state.logprobs is not None):
            if state.logprobs is None:
                state.logprobs = _Logprobs(streaming.TokenScanner(self._guard), self._chat)
            released = state.logprobs.feed(logprobs) if logprobs is not None else None
            if finishing:
                released = _join(released, state.logprobs.finish())
                state.logprobs = None
            choice["logprobs"] = released
            emitted = emitted or released is not None
        if finishing:
            state.finished = True
        return emitted or finishing, has_text

    def _over_budget(self, chars: int) -> bool:
        """Count `chars` more; True past the limit in sample mode (refuse mode raises)."""
        self._scanned += chars
        if self._scanned <= self._max_chars:
            return False
        refused = pipeline.over_limit(self._scanned, self._limits, "answer")
        if refused is not None:
            raise _Blocked(refused)
        return True

    def _unchecked(self, state: _Choice, choice: dict[str, Any]) -> bool:
        """Past the limit in sample mode: flush what is held once, then pass as is."""
        if state.unchecked:
            return True
        state.unchecked = True
        tails = {field: self._scan(s.finish()) for field, s in state.scanners.items()}
        state.scanners.clear()
        if self._chat:
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
            fresh = {k: v for k, v in delta.items() if k in texts.CHOICE_TEXTS or k == "tool_calls"}
            for key in fresh:
                del delta[key]
            _put_tails(delta, tails)
            for key, value in fresh.items():
                if key == "tool_calls" and isinstance(value, list):
                    delta.setdefault("tool_calls", []).extend(value)
                elif isinstance(value, str):
                    delta[key] = (delta.get(key) or "") + value
        else:
            given = choice.get("text")
            choice["text"] = tails.get("text", "") + (given if isinstance(given, str) else "")
        if state.logprobs is not None:
            held = state.logprobs.finish()
            state.logprobs = None
            given_logprobs = choice.get("logprobs")
            if isinstance(given_logprobs, dict) and held is not None:
                choice["logprobs"] = {
                    name: held.get(name, []) + list(given_logprobs.get(name) or []) for name in held
                }
            elif held is not None:
                choice["logprobs"] = held
        return True

    def _fields(self, delta: dict[str, Any]) -> dict[str | int, tuple[Any, Any, str]]:
        """The texts of a delta by scanner key; tool-call names are checked whole here."""
        fields: dict[str | int, tuple[Any, Any, str]] = {}
        for name in texts.CHOICE_TEXTS:
            text = delta.get(name)
            if isinstance(text, str) and text:
                fields[name] = (delta, name, text)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                if isinstance(function.get("name"), str) and self._guard is not None:
                    function["name"] = self._scan(self._guard.check(function["name"]))
                arguments = function.get("arguments")
                if isinstance(arguments, str) and arguments:
                    index = call.get("index", position)
                    fields[index if isinstance(index, int) else position] = (
                        function,
                        "arguments",
                        arguments,
                    )
        return fields

    def _finish(self) -> Output:
        """[DONE]: flush choices that never reported a finish reason, then end."""
        events: list[bytes] = []
        has_text = False
        try:
            for index, state in sorted(self._choices.items()):
                if state.finished:
                    continue
                state.finished = True
                tails = {f: self._scan(s.finish()) for f, s in state.scanners.items()}
                state.scanners.clear()
                logprobs = state.logprobs.finish() if state.logprobs is not None else None
                tails = {field: tail for field, tail in tails.items() if tail}
                if not tails and logprobs is None:
                    continue
                has_text = has_text or bool(tails)
                choice: dict[str, Any] = {"index": index}
                if self._chat:
                    delta: dict[str, Any] = {}
                    _put_tails(delta, tails)
                    choice["delta"] = delta
                else:
                    choice["text"] = tails.get("text", "")
                choice["logprobs"] = logprobs
                choice["finish_reason"] = None
                meta = {k: v for k, v in self._last.items() if k not in ("choices", "usage")}
                events.append(encode({**meta, "choices": [choice]}))
        except _Blocked as blocked:
            return self._blocked(blocked.finding)
        events.append(DONE)
        self.done = True
        return Output(events, done=True, has_text=has_text)

    def end_of_stream(self) -> Output:
        """The engine closed the stream without [DONE]: flush and end it properly."""
        if self.done:
            return Output([], done=True)
        return self._finish()


def usage_of(usage: Any) -> Usage | None:
    """The token counts of a `usage` object an engine reported; None if there is none."""
    if not isinstance(usage, dict):
        return None
    counts = [usage.get(name) for name in ("prompt_tokens", "completion_tokens")]
    prompt, completion = (
        c if isinstance(c, int) and not isinstance(c, bool) else 0 for c in counts
    )
    return Usage(prompt, completion)


def _put_tails(delta: dict[str, Any], tails: dict[str | int, str]) -> None:
    """Add the flushed text of each field to a delta (a tool call's as its own entry)."""
    for field, tail in tails.items():
        if not tail:
            continue
        if isinstance(field, int):
            calls = delta.get("tool_calls")
            if not isinstance(calls, list):
                calls = delta["tool_calls"] = []
            calls.append({"index": field, "function": {"arguments": tail}})
        else:
            delta[field] = (delta.get(field) or "") + tail


def _join(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    if first is None or second is None:
        return first if second is None else second
    return {name: first[name] + second[name] for name in first}


def _has_text(choice: dict[str, Any], chat: bool) -> bool:
    if not chat:
        return bool(choice.get("text"))
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return False
    if any(isinstance(delta.get(name), str) and delta[name] for name in texts.CHOICE_TEXTS):
        return True
    return bool(delta.get("tool_calls"))
