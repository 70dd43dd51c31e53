"""The one list of where a request carries text the model reads, and a response text it wrote.

Input checks walk `request_slots`, output checks `response_slots` (a whole answer)
and `sse.StreamFilter` the streamed deltas of the same response fields, so a field
added here is checked everywhere at once; `REQUEST_FIELDS` and `RESPONSE_FIELDS`
name every entry (the tests hold one case per name, `docs/security.md` lists them).

Request (chat): each message's `content` (a string, or parts: `text`, `refusal`,
`thinking`, a tool reference's `name`, bare strings), `name`, `reasoning` and
`reasoning_content`, `refusal`, the `name` and `arguments` of its `tool_calls`, and
the `tools` a developer message carries; then `tools`, `documents`,
`response_format`, `chat_template` and `chat_template_kwargs`. Chat templates render
all of these into the prompt. Structured parts (tool definitions, documents, JSON
schemas, template arguments, arguments given as an object) are walked whole: every
string and every key. Request (completions): `prompt` (a string or a list of
strings; token ids cannot be checked and are refused) and `suffix`.

Response: each choice's `message.content`, `reasoning`, `reasoning_content`,
`refusal`, the `name` and `arguments` of its `tool_calls` (chat) or its `text`
(completions), and the tokens of its `logprobs` (`LogprobTokens`: the chosen tokens
are scanned as one text and each redacted entity is replaced in the tokens it spans,
with their `bytes`, their alternatives and the completions' `text_offset`).

Walks are iterative (no recursion on hostile nesting) and never read a text twice.
A `Slot` knows where its text lives, so a redaction is written back in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

# ---------------------------------------------------------------- the list of fields

#: Request fields whose text the model reads, by name (chat, then completions).
REQUEST_FIELDS = (
    "messages[].content",
    "messages[].content[].text",
    "messages[].content[].refusal",
    "messages[].content[].thinking",
    "messages[].content[].name",
    "messages[].content[] (a string part)",
    "messages[].name",
    "messages[].reasoning",
    "messages[].reasoning_content",
    "messages[].refusal",
    "messages[].tool_calls[].function.name",
    "messages[].tool_calls[].function.arguments",
    "messages[].tools",
    "tools",
    "documents",
    "response_format",
    "chat_template",
    "chat_template_kwargs",
    "prompt",
    "prompt[]",
    "suffix",
)

#: Response fields whose text the model wrote, whole (`choices[].message.*`, `choices[].text`)
#: or streamed (`choices[].delta.*`, `choices[].text`); logprobs in both.
RESPONSE_FIELDS = (
    "content",
    "reasoning",
    "reasoning_content",
    "refusal",
    "tool_calls[].function.name",
    "tool_calls[].function.arguments",
    "text",
    "logprobs.content[].token",
    "logprobs.tokens",
)

#: Message fields holding one text each, in the order they are checked.
_MESSAGE_TEXTS = ("name", "reasoning", "reasoning_content", "refusal")
#: Keys of a content part that hold text the model reads.
_PART_TEXTS = ("text", "refusal", "thinking", "name")
#: Message fields of a chat choice (whole) or of its delta (streamed) that hold text.
CHOICE_TEXTS = ("content", "reasoning", "reasoning_content", "refusal")
#: Request fields walked whole, in the order they are checked.
_WALKED = ("tools", "documents", "response_format", "chat_template_kwargs")


@dataclasses.dataclass
class Slot:
    """One text and where it lives, so that a redaction can be written back."""

    field: str  # the entry of REQUEST_FIELDS or RESPONSE_FIELDS it belongs to
    container: Any  # the dict or list holding the text
    key: Any  # its key or index there
    text: str

    def replace(self, text: str) -> None:
        """Write `text` in place of the original."""
        self.container[self.key] = text

    @property
    def current(self) -> str:
        """The text as it is now (after a redaction, the redacted text)."""
        return str(self.container[self.key])


@dataclasses.dataclass
class KeySlot(Slot):
    """A dict key that is text the model reads (a property name in a JSON schema)."""

    def replace(self, text: str) -> None:
        """Rename the key in place, keeping the order (and every value) of the dict."""
        mapping: dict[str, Any] = self.container
        new = text
        number = 2
        while new in mapping and new != self.key:
            new = f"{text} ({number})"  # two keys redacted alike keep both values
            number += 1
        items = [(new if name == self.key else name, value) for name, value in mapping.items()]
        mapping.clear()
        mapping.update(items)
        self.key = new

    @property
    def current(self) -> str:
        """The key as it is now."""
        return str(self.key)


class ShapeError(ValueError):
    """A text field has a shape the checks cannot read (token ids, embeddings)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def walk(field: str, container: Any, key: Any) -> Iterator[Slot]:
    """Every string under `container[key]`, values and dict keys, without recursion."""
    stack: list[tuple[Any, Any]] = [(container, key)]
    while stack:
        holder, name = stack.pop()
        value = holder[name]
        if isinstance(value, str):
            yield Slot(field, holder, name, value)
        elif isinstance(value, dict):
            children = []
            for child in value:
                if isinstance(child, str):
                    yield KeySlot(field, value, child, child)
                children.append((value, child))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend((value, index) for index in range(len(value) - 1, -1, -1))


def _message_slots(message: dict[str, Any]) -> Iterator[Slot]:
    content = message.get("content")
    if isinstance(content, str):
        yield Slot("messages[].content", message, "content", content)
    elif isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, str):
                yield Slot("messages[].content[] (a string part)", content, index, part)
            elif isinstance(part, dict):
                for name in _PART_TEXTS:
                    text = part.get(name)
                    if isinstance(text, str):
                        yield Slot(f"messages[].content[].{name}", part, name, text)
    for name in _MESSAGE_TEXTS:
        text = message.get(name)
        if isinstance(text, str):
            yield Slot(f"messages[].{name}", message, name, text)
    yield from tool_call_slots(message.get("tool_calls"), "messages[].")
    if "tools" in message:
        yield from walk("messages[].tools", message, "tools")


def request_slots(body: dict[str, Any], chat: bool) -> list[Slot]:
    """Every text of a request the model will read, in order (see the module docstring).

    The shapes of `messages` and `prompt` are checked first by `validate`; this raises
    `ShapeError` only for prompts the checks cannot read (token ids, embeddings).
    """
    slots: list[Slot] = []
    if chat:
        for message in body.get("messages") or ():
            if isinstance(message, dict):
                slots.extend(_message_slots(message))
        for name in _WALKED:
            if name in body:
                slots.extend(walk(name, body, name))
        template = body.get("chat_template")
        if isinstance(template, str):
            slots.append(Slot("chat_template", body, "chat_template", template))
        return slots
    if body.get("prompt_embeds") is not None:
        raise ShapeError("Prompt embeddings cannot be checked by the guardrails.", "prompt_embeds")
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        slots.append(Slot("prompt", body, "prompt", prompt))
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        slots.extend(Slot("prompt[]", prompt, index, text) for index, text in enumerate(prompt))
    else:
        raise ShapeError(
            "'prompt' must be a string or a list of strings (token ids cannot be checked).",
            "prompt",
        )
    suffix = body.get("suffix")
    if isinstance(suffix, str):
        slots.append(Slot("suffix", body, "suffix", suffix))
    return slots


# ---------------------------------------------------------------- responses


def choice_slots(message: dict[str, Any]) -> Iterator[Slot]:
    """The texts of one chat message or delta: content, reasoning, refusal, tool calls.

    Tool-call names come whole; arguments given as an object (not the usual JSON
    string) are walked like a request's.
    """
    for name in CHOICE_TEXTS:
        text = message.get(name)
        if isinstance(text, str):
            yield Slot(name, message, name, text)
    yield from tool_call_slots(message.get("tool_calls"), "")


def tool_call_slots(calls: Any, prefix: str) -> Iterator[Slot]:
    """The `name` (whole) and `arguments` (a string, or an object walked) of tool calls."""
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        if isinstance(function.get("name"), str):
            name = f"{prefix}tool_calls[].function.name"
            yield Slot(name, function, "name", function["name"])
        if function.get("arguments") is not None:
            yield from walk(f"{prefix}tool_calls[].function.arguments", function, "arguments")


def response_slots(choice: dict[str, Any], chat: bool) -> list[Slot]:
    """The texts of one choice of a whole response (its logprobs: `LogprobTokens`)."""
    if chat:
        message = choice.get("message")
        return list(choice_slots(message)) if isinstance(message, dict) else []
    text = choice.get("text")
    return [Slot("text", choice, "text", text)] if isinstance(text, str) else []


@dataclasses.dataclass
class TokenEntry:
    """One chosen token of a choice's logprobs, and where to write a redaction back."""

    text: str
    holder: Any  # chat: the entry dict; completions: the logprobs dict
    index: int  # completions: the position in the parallel lists


class LogprobTokens:
    """The chosen tokens of one choice's `logprobs`, chat or completions shape.

    `entries` lists them in order; `redact(position, text)` writes a new token text
    back: the token, its `bytes`, and its alternatives (dropped: they would spell the
    entity too). `fix_offsets(shift)` moves the completions' `text_offset`s by the
    length the redactions before them changed, and returns the new shift.
    """

    def __init__(self, logprobs: Any, chat: bool) -> None:
        self.entries: list[TokenEntry] = []
        self._chat = chat
        self._logprobs = logprobs if isinstance(logprobs, dict) else None
        self._lengths: list[int] = []
        if self._logprobs is None:
            return
        if chat:
            content = self._logprobs.get("content")
            if isinstance(content, list):
                for entry in content:
                    if isinstance(entry, dict) and isinstance(entry.get("token"), str):
                        self.entries.append(TokenEntry(entry["token"], entry, 0))
            return
        tokens = self._logprobs.get("tokens")
        if isinstance(tokens, list):
            for index, token in enumerate(tokens):
                if isinstance(token, str):
                    self.entries.append(TokenEntry(token, self._logprobs, index))
        self._lengths = [len(entry.text) for entry in self.entries]

    def redact(self, entry: TokenEntry, text: str) -> None:
        """Replace one token's text (and what would reveal the original)."""
        if self._chat:
            redact_chat_entry(entry.holder, text)
            return
        logprobs = entry.holder
        logprobs["tokens"][entry.index] = text
        top = logprobs.get("top_logprobs")
        if isinstance(top, list) and entry.index < len(top) and isinstance(top[entry.index], dict):
            top[entry.index] = {}

    def fix_offsets(self, shift: int) -> int:
        """Shift completions' `text_offset` by the redactions; returns the shift after them."""
        if self._chat or self._logprobs is None:
            return shift
        offsets = self._logprobs.get("text_offset")
        tokens = self._logprobs.get("tokens")
        if not isinstance(offsets, list) or not isinstance(tokens, list):
            return shift
        for entry, before in zip(self.entries, self._lengths, strict=True):
            if entry.index < len(offsets) and isinstance(offsets[entry.index], int):
                offsets[entry.index] += shift
            shift += len(tokens[entry.index]) - before
        return shift


def redact_chat_entry(entry: dict[str, Any], text: str) -> None:
    """Give a chat logprobs entry a new token text: its `bytes` follow, its alternatives
    (which would spell the original) are dropped."""
    entry["token"] = text
    if "bytes" in entry:
        entry["bytes"] = list(text.encode("utf-8"))
    if isinstance(entry.get("top_logprobs"), list):
        entry["top_logprobs"] = []
