"""Requests refused at the edge: malformed shapes, JSON that is not JSON, `stream` not a boolean.

Each case goes over a real socket (aiohttp's client) to the real gateway in front
of a scripted engine; a refused request never reaches the engine and gets an
OpenAI-style 400 naming the parameter. `MALFORMED` is shared with the conformance
tier, which sends every case to real vLLM too and checks that it refuses them alike.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.serving import gateway_support as support

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODEL = "test-model"


def _chat(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages), "max_tokens": 2, **extra}


HI = {"role": "user", "content": "hi"}

#: (route, body, the parameter named) that vLLM 0.32 refuses with a 400 too.
MALFORMED: dict[str, tuple[str, dict[str, Any], str]] = {
    "content-number": (CHAT, _chat({"role": "user", "content": 5}), "messages[0].content"),
    "content-null-user": (CHAT, _chat({"role": "user", "content": None}), "messages[0].content"),
    "role-number": (CHAT, _chat({"role": 3, "content": "hi"}), "messages[0].role"),
    "role-missing": (CHAT, _chat({"content": "hi"}), "messages[0].role"),
    "messages-missing": (CHAT, {"model": MODEL, "max_tokens": 2}, "messages"),
    "messages-string": (CHAT, {"model": MODEL, "messages": "hi"}, "messages"),
    "messages-empty": (CHAT, _chat(), "messages"),
    "message-string": (CHAT, _chat("hi"), "messages[0]"),
    "text-part-without-text": (
        CHAT,
        _chat({"role": "user", "content": [{"type": "text"}]}),
        "messages[0].content[0].text",
    ),
    "part-number": (CHAT, _chat({"role": "user", "content": [5]}), "messages[0].content[0]"),
    "name-number": (CHAT, _chat({"role": "user", "content": "hi", "name": 5}), "messages[0].name"),
    "tool-arguments-object": (
        CHAT,
        _chat(
            HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
                ],
            },
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    "model-number": (CHAT, {**_chat(HI), "model": 5}, "model"),
    "stream-two": (CHAT, _chat(HI, stream=2), "stream"),
    "stream-options-string": (CHAT, _chat(HI, stream=True, stream_options="x"), "stream_options"),
    "prompt-number": (COMPLETIONS, {"model": MODEL, "prompt": 5}, "prompt"),
    "prompt-missing": (COMPLETIONS, {"model": MODEL, "max_tokens": 2}, "prompt"),
    "prompt-mixed": (COMPLETIONS, {"model": MODEL, "prompt": ["a", 1]}, "prompt"),
    "prompt-empty-list": (COMPLETIONS, {"model": MODEL, "prompt": []}, "prompt"),
}

#: Raw bodies that are not JSON to the gateway: (route, bytes).
NOT_JSON: dict[str, tuple[str, bytes]] = {
    "nan-temperature": (
        CHAT,
        b'{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
    ),
    "infinity-top-p": (
        CHAT,
        b'{"model":"test-model","messages":[{"role":"user","content":"hi"}],"top_p":Infinity}',
    ),
    "nested-10000": (
        CHAT,
        b'{"model":"test-model","messages":[{"role":"user","content":"hi"}],"x":'
        + b"[" * 10_000
        + b"]" * 10_000
        + b"}",
    ),
    "nested-1000000": (COMPLETIONS, b'{"prompt":"a","x":' + b"[" * 1_000_000 + b"}"),
}


@pytest.fixture
async def stack(tmp_path: pathlib.Path) -> AsyncIterator[support.Stack]:
    async with support.stack(tmp_path, policy={"enabled": True}) as running:
        yield running


async def _post(
    stack: support.Stack, path: str, body: dict[str, Any] | None = None, raw: bytes | None = None
) -> tuple[int, bytes]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with stack.client.post(
        f"{stack.url}{path}", data=data, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status, await response.read()


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_requests_are_refused_at_the_edge(stack: support.Stack, case: str) -> None:
    path, body, param = MALFORMED[case]
    status, raw = await _post(stack, path, body)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert stack.engine.calls == 0


@pytest.mark.parametrize("case", sorted(NOT_JSON))
async def test_bodies_that_are_not_json_are_a_400(stack: support.Stack, case: str) -> None:
    path, raw = NOT_JSON[case]
    status, answer = await _post(stack, path, raw=raw)
    assert status == 400, answer
    assert json.loads(answer)["error"]["code"] == "invalid_json"
    assert stack.engine.calls == 0


async def test_what_vllm_accepts_passes(stack: support.Stack) -> None:
    no_model = {"messages": [HI]}
    assert (await _post(stack, CHAT, no_model))[0] == 200
    custom_role = _chat({"role": "wizard", "content": "hi"})  # vLLM's custom roles
    assert (await _post(stack, CHAT, custom_role))[0] == 200
    assert stack.engine.calls == 2


@pytest.mark.parametrize("value", [1, "true", "yes", "on"])
async def test_stream_given_as_vllm_reads_it_streams(stack: support.Stack, value: Any) -> None:
    status, raw = await _post(stack, CHAT, _chat(HI, stream=value))
    assert status == 200
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert stack.engine.requests[-1]["stream"] is True
    assert stack.engine.requests[-1]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("value", [0, "false", "no"])
async def test_stream_false_as_vllm_reads_it_is_whole(stack: support.Stack, value: Any) -> None:
    status, raw = await _post(stack, CHAT, _chat(HI, stream=value))
    assert status == 200
    assert json.loads(raw)["object"] == "chat.completion"
    assert stack.engine.requests[-1]["stream"] is False


@pytest.mark.parametrize("name", ["return_token_ids", "return_tokens_as_token_ids"])
async def test_token_ids_in_the_answer_are_refused_under_output_checks(
    stack: support.Stack, name: str
) -> None:
    status, raw = await _post(stack, CHAT, _chat(HI, **{name: True}))
    assert status == 400
    assert json.loads(raw)["error"]["param"] == name
    assert stack.engine.calls == 0


async def test_deep_nesting_that_parses_but_cannot_be_written_again(stack: support.Stack) -> None:
    """orjson reads 1000 levels but writes 254; the standard library then runs out of stack."""
    deep = b"[" * 1000 + b"]" * 1000
    raw = (
        b'{"model":"test-model","messages":[{"role":"user","content":"mail a@example.com"}],"x":'
        + deep
        + b"}"
    )
    status, answer = await _post(stack, CHAT, raw=raw)
    assert status in (200, 400), answer
    if status == 400:
        assert json.loads(answer)["error"]["code"] == "invalid_json"
