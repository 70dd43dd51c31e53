"""Edge validation of chat and completion requests: refuse at the gateway what vLLM refuses.

The checks read text from the shapes listed in `texts`; a shape they do not know
would reach the engine unchecked, so a request is refused here, with an
OpenAI-style 400 naming the parameter, wherever vLLM 0.32 would refuse it too (each
case is compared with real vLLM in tests/conformance/): `messages` missing, not a
list or empty; a message that is not an object, without a string `role`, whose
`content` is neither a string, a list of parts nor (for an assistant) null, whose
`name` is not a string, or whose tool calls are not objects with a string
`function.name` and string `arguments`; a text part without a string `text`; a
`prompt` missing or of another type; `model`, `suffix`, `chat_template` not a string;
`stream_options` not an object. What vLLM accepts passes: a missing `model` (the
engine serves its own), a role of the engine's own naming (vLLM's custom roles).

`stream` and `stream_options.include_usage` are read as vLLM reads them (pydantic's
lax booleans: `1`, `"true"`, `"yes"`, ... stream), and written back as JSON booleans,
so the gateway and the engine never disagree about whether an answer streams.
Non-finite numbers (`NaN`, `Infinity`) are not JSON; `fastjson.loads_request`
refuses them anywhere in the body before this module runs.
"""

from __future__ import annotations

from typing import Any

import pydantic

from llm_serving.gateway import errors

_BOOL = pydantic.TypeAdapter(bool)
_ASSISTANT = "assistant"


def _type_error(param: str, expected: str) -> errors.GatewayError:
    return errors.invalid_request(f"'{param}' must be {expected}.", "invalid_type", param)


def _lax_bool(container: dict[str, Any], key: str, param: str) -> bool | None:
    """A boolean read as vLLM reads it: None when it is absent, null or a JSON boolean
    already, else the value, written back into `container` as a JSON boolean."""
    value = container.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = _BOOL.validate_python(value)
    except pydantic.ValidationError:
        raise _type_error(param, "a boolean") from None
    container[key] = parsed
    return parsed


def _optional_str(container: dict[str, Any], key: str, param: str) -> None:
    value = container.get(key)
    if value is not None and not isinstance(value, str):
        raise _type_error(param, "a string")


def _tool_calls(calls: Any, param: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise _type_error(param, "a list")
    for index, call in enumerate(calls):
        where = f"{param}[{index}]"
        if not isinstance(call, dict):
            raise _type_error(where, "an object")
        function = call.get("function")
        if not isinstance(function, dict):
            raise _type_error(f"{where}.function", "an object")
        if not isinstance(function.get("name"), str):
            raise _type_error(f"{where}.function.name", "a string")
        if not isinstance(function.get("arguments"), str):
            raise _type_error(f"{where}.function.arguments", "a string")


def _content(message: dict[str, Any], role: str, param: str) -> None:
    if "content" not in message:
        return
    content = message["content"]
    if isinstance(content, str):
        return
    if content is None:
        if role == _ASSISTANT:
            return
        raise _type_error(f"{param}.content", "a string or a list of content parts")
    if not isinstance(content, list):
        raise _type_error(f"{param}.content", "a string or a list of content parts")
    for index, part in enumerate(content):
        where = f"{param}.content[{index}]"
        if isinstance(part, str):
            continue
        if not isinstance(part, dict):
            raise _type_error(where, "a content part object")
        if part.get("type") == "text" and not isinstance(part.get("text"), str):
            raise _type_error(f"{where}.text", "a string")
        for key in ("text", "refusal", "thinking"):
            if key in part and not isinstance(part[key], str):
                raise _type_error(f"{where}.{key}", "a string")


def _messages(body: dict[str, Any]) -> None:
    if "messages" not in body:
        raise errors.invalid_request("'messages' is required.", "missing", "messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _type_error("messages", "a list")
    if not messages:
        raise errors.invalid_request(
            "'messages' must hold at least one message.", "invalid_value", "messages"
        )
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _type_error(param, "an object")
        role = message.get("role")
        if not isinstance(role, str):
            raise _type_error(f"{param}.role", "a string")
        _content(message, role, param)
        for key in ("name", "reasoning", "reasoning_content", "refusal", "tool_call_id"):
            _optional_str(message, key, f"{param}.{key}")
        _tool_calls(message.get("tool_calls"), f"{param}.tool_calls")


def _prompt(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None and body.get("prompt_embeds") is None:
        raise errors.invalid_request(
            "Either 'prompt' or 'prompt_embeds' must be given.", "missing", "prompt"
        )
    if prompt is None or isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise _type_error("prompt", "a string or a non-empty list")
    first = prompt[0]
    kind = str if isinstance(first, str) else list if isinstance(first, list) else int
    for item in prompt:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise _type_error("prompt", "a string, a list of strings or token ids")


def request(body: dict[str, Any], chat: bool) -> bool:
    """Validate a chat (`chat`) or completions request; True if it rewrote a boolean.

    Raises `errors.GatewayError` (400) for a shape vLLM refuses too. Afterwards
    `body["stream"] is True` exactly when the answer streams.
    """
    if chat:
        _messages(body)
        for key in ("tools", "documents"):
            value = body.get(key)
            if value is not None and not isinstance(value, list):
                raise _type_error(key, "a list")
        _optional_str(body, "chat_template", "chat_template")
        for key in ("chat_template_kwargs", "response_format"):
            value = body.get(key)
            if value is not None and not isinstance(value, dict):
                raise _type_error(key, "an object")
    else:
        _prompt(body)
        _optional_str(body, "suffix", "suffix")
    _optional_str(body, "model", "model")
    rewritten = _lax_bool(body, "stream", "stream") is not None
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _type_error("stream_options", "an object")
        rewritten |= _lax_bool(options, "include_usage", "stream_options.include_usage") is not None
    return rewritten
