"""The gateway as a reverse proxy over real sockets: routes, errors, streaming, disconnects."""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from llm_serving.gateway import pump, sse, texts
from tests.unit.serving import gateway_support as support

CHAT_BODY = {
    "model": "test-model",
    "messages": [{"role": "user", "content": "Say hello."}],
    "temperature": 0,
}


@pytest.fixture
async def stack(tmp_path: pathlib.Path) -> AsyncIterator[support.Stack]:
    async with support.stack(tmp_path) as running:
        yield running


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_openai_error(body: object, type_: str | None = None, code: str | None = None) -> None:
    assert isinstance(body, dict)
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    if type_ is not None:
        assert error["type"] == type_
    if code is not None:
        assert error["code"] == code


async def test_chat_completion_is_proxied(stack: support.Stack) -> None:
    async with stack.client.post(
        f"{stack.url}/v1/chat/completions", json=CHAT_BODY, headers={"X-Request-Id": "req-42"}
    ) as response:
        assert response.status == 200
        assert response.headers["X-Request-Id"] == "req-42"
        body = await response.json()
    assert body["choices"][0]["message"]["content"] == stack.engine.reply
    assert stack.engine.requests[-1]["messages"] == CHAT_BODY["messages"]
    assert stack.engine.headers[-1]["X-Request-Id"] == "req-42"


async def test_request_id_is_generated(stack: support.Stack) -> None:
    async with stack.client.get(f"{stack.url}/health") as response:
        assert response.status == 200
        assert len(response.headers["X-Request-Id"]) == 32


async def test_completions_models_embeddings(stack: support.Stack) -> None:
    async with stack.client.post(
        f"{stack.url}/v1/completions", json={"model": "test-model", "prompt": "Once upon"}
    ) as response:
        assert response.status == 200
        assert (await response.json())["choices"][0]["text"] == stack.engine.reply
    async with stack.client.get(f"{stack.url}/v1/models") as response:
        assert response.status == 200
        assert (await response.json())["data"][0]["id"] == "test-model"
    async with stack.client.post(
        f"{stack.url}/v1/embeddings", json={"model": "test-model", "input": ["a", "b"]}
    ) as response:
        assert response.status == 200
        assert len((await response.json())["data"]) == 2


async def test_health_ready_and_engine_metrics(stack: support.Stack) -> None:
    async with stack.client.get(f"{stack.url}/ready") as response:
        assert response.status == 200
    stack.engine.healthy = False
    async with stack.client.get(f"{stack.url}/ready") as response:
        assert response.status == 503
        _assert_openai_error(await response.json())
    async with stack.client.get(f"{stack.url}/health") as response:
        assert response.status == 200
    async with stack.client.get(f"{stack.url}/metrics/engine") as response:
        assert response.status == 200
        assert "vllm:num_requests_waiting" in await response.text()


async def test_streaming_passes_chunks_and_ends_with_done(stack: support.Stack) -> None:
    body = {**CHAT_BODY, "stream": True}
    async with stack.client.post(f"{stack.url}/v1/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = await support.sse_events(response)
    assert events[-1] == "[DONE]"
    assert support.streamed_text(events) == stack.engine.reply
    # The gateway asked for usage to count tokens, but the client did not: no usage chunk.
    assert stack.engine.requests[-1]["stream_options"] == {"include_usage": True}
    assert all(not (isinstance(e, dict) and e.get("usage")) for e in events)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_streaming_usage_kept_when_client_asks(stack: support.Stack) -> None:
    body = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}
    async with stack.client.post(f"{stack.url}/v1/chat/completions", json=body) as response:
        events = await support.sse_events(response)
    usage = [e for e in events if isinstance(e, dict) and e.get("usage")]
    assert len(usage) == 1
    assert usage[0]["choices"] == []


async def test_streaming_completions(stack: support.Stack) -> None:
    body = {"model": "test-model", "prompt": "Once upon", "stream": True}
    async with stack.client.post(f"{stack.url}/v1/completions", json=body) as response:
        events = await support.sse_events(response)
    assert events[-1] == "[DONE]"
    assert support.streamed_text(events, chat=False) == stack.engine.reply


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b'{"model": "m"}', {"Content-Type": "application/json"}, 400, None),
        (
            b"a=b",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b"x" * (5 * 1024 * 1024), {"Content-Type": "application/json"}, 413, "request_too_large"),
    ],
)
async def test_bad_requests(
    stack: support.Stack, data: bytes, headers: dict[str, str], status: int, code: str | None
) -> None:
    async with stack.client.post(
        f"{stack.url}/v1/chat/completions", data=data, headers=headers
    ) as response:
        assert response.status == status
        _assert_openai_error(await response.json(), code=code)
    assert stack.engine.calls == 0


async def test_chunked_oversized_body_is_413(stack: support.Stack) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 65536

    async with stack.client.post(
        f"{stack.url}/v1/chat/completions",
        data=body(),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
        _assert_openai_error(await response.json(), code="request_too_large")


async def test_unknown_route_and_wrong_method(stack: support.Stack) -> None:
    async with stack.client.get(f"{stack.url}/v2/nothing") as response:
        assert response.status == 404
        _assert_openai_error(await response.json(), code="not_found")
    async with stack.client.get(f"{stack.url}/v1/chat/completions") as response:
        assert response.status == 405
        assert "POST" in response.headers["Allow"]
        _assert_openai_error(await response.json(), code="method_not_allowed")


async def test_token_id_prompts_are_refused(stack: support.Stack) -> None:
    async with stack.client.post(
        f"{stack.url}/v1/completions", json={"model": "test-model", "prompt": [1, 2, 3]}
    ) as response:
        assert response.status == 400
        body = await response.json()
        _assert_openai_error(body, "invalid_request_error")
        assert body["error"]["param"] == "prompt"
    assert stack.engine.calls == 0


async def test_upstream_errors_are_passed_through(stack: support.Stack) -> None:
    stack.engine.status = 400
    async with stack.client.post(f"{stack.url}/v1/chat/completions", json=CHAT_BODY) as response:
        assert response.status == 400
        assert (await response.json())["error"]["message"] == "nope"


async def test_upstream_down_is_503_with_retry_after(tmp_path: pathlib.Path) -> None:
    gateway = await support.start_gateway(f"http://127.0.0.1:{_free_port()}", tmp_path)
    try:
        async with aiohttp.ClientSession() as client:
            async with client.post(
                f"{gateway.url}/v1/chat/completions", json=CHAT_BODY
            ) as response:
                assert response.status == 503
                assert int(response.headers["Retry-After"]) >= 1
                _assert_openai_error(await response.json(), code="upstream_unavailable")
            async with client.get(f"{gateway.url}/ready") as response:
                assert response.status == 503
            async with client.get(f"{gateway.url}/metrics/engine") as response:
                assert response.status == 503
    finally:
        await gateway.close()


async def test_upstream_timeout_is_504(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(delay=2.0)
    async with support.stack(tmp_path, engine=engine) as running:
        running.gateway.gateway.upstream.timeout = aiohttp.ClientTimeout(sock_read=0.2)
        async with running.client.post(
            f"{running.url}/v1/chat/completions", json=CHAT_BODY
        ) as response:
            assert response.status == 504
            _assert_openai_error(await response.json(), code="upstream_timeout")


async def test_client_disconnect_cancels_upstream(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(chunks=[f"word{i} " for i in range(200)], chunk_delay=0.02)
    async with support.stack(tmp_path, engine=engine) as running:
        body = {**CHAT_BODY, "stream": True}
        response = await running.client.post(f"{running.url}/v1/chat/completions", json=body)
        assert response.status == 200
        await response.content.readany()  # the stream has started
        response.close()  # the client goes away mid-stream
        await asyncio.wait_for(engine.cancelled.wait(), timeout=2.0)
        assert engine.finished_streams == 0
        await asyncio.sleep(0.05)
        async with running.client.get(f"{running.url}/metrics") as metrics:
            text = await metrics.text()
        assert "llm_gateway_client_disconnects_total" in text
        assert 'code="499"' in text


async def test_non_streaming_disconnect_cancels_upstream(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(delay=5.0)
    cancelled = asyncio.Event()
    original = engine.chat

    async def chat(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        try:
            return await original(request)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    engine.chat = chat  # type: ignore[method-assign]
    async with support.stack(tmp_path, engine=engine) as running:
        task = asyncio.create_task(
            running.client.post(f"{running.url}/v1/chat/completions", json=CHAT_BODY)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.wait_for(cancelled.wait(), timeout=2.0)


async def test_metrics_after_traffic(stack: support.Stack) -> None:
    for _ in range(2):
        async with stack.client.post(f"{stack.url}/v1/chat/completions", json=CHAT_BODY) as r:
            await r.read()
    async with stack.client.post(
        f"{stack.url}/v1/chat/completions", json={**CHAT_BODY, "stream": True}
    ) as r:
        await r.read()
    async with stack.client.get(f"{stack.url}/nope") as r:
        await r.read()
    async with stack.client.get(f"{stack.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    for name in (
        'llm_gateway_requests_total{code="200",method="POST",route="/v1/chat/completions"} 3.0',
        'llm_gateway_requests_total{code="404",method="GET",route="unmatched"} 1.0',
        "llm_gateway_request_duration_seconds_bucket",
        "llm_gateway_added_latency_seconds_bucket",
        "llm_gateway_time_to_first_token_seconds_bucket",
        'llm_gateway_prompt_tokens_total{model="test-model"}',
        'llm_gateway_completion_tokens_total{model="test-model"}',
        "llm_gateway_guardrail_check_duration_seconds_bucket",
        "llm_gateway_requests_in_flight",
    ):
        assert name in text, name
    assert "vllm:" not in text


async def test_failure_mid_stream_ends_with_error_event(
    stack: support.Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: sse.StreamFilter, data: str) -> sse.Output:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sse.StreamFilter, "feed", broken)
    async with stack.client.post(
        f"{stack.url}/v1/chat/completions", json={**CHAT_BODY, "stream": True}
    ) as response:
        assert response.status == 200
        events = await support.sse_events(response)
    assert events[-1] == "[DONE]"
    _assert_openai_error(events[-2], "server_error", "internal_error")


async def test_unexpected_error_is_an_openai_500(
    stack: support.Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: object, chat: bool) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(texts, "request_slots", broken)
    async with stack.client.post(f"{stack.url}/v1/chat/completions", json=CHAT_BODY) as response:
        assert response.status == 500
        body = await response.json()
    _assert_openai_error(body, "server_error", "internal_error")
    assert response.headers["X-Request-Id"] in body["error"]["message"]


async def test_a_stream_read_at_once_sends_its_first_text_ahead_of_the_rest(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's whole stream arrives in one read: the gateway writes the events up to
    the first text at once, and the rest in one write when they are checked."""
    words = ["Hello", " there,", " my", " friend."]
    deltas = [{"role": "assistant", "content": ""}] + [{"content": word} for word in words]
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "model": "test-model", "choices": [choice]}
        for choice in [{"index": 0, "delta": delta, "finish_reason": None} for delta in deltas]
        + [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    ]
    body = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)
    body += b"data: [DONE]\n\n"

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        writer.write(  # status line, headers and every event in one write
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    writes: list[bytes] = []
    write = pump.EventWriter.write

    async def recording(self: pump.EventWriter, data: bytes) -> None:
        writes.append(bytes(data))
        await write(self, data)

    monkeypatch.setattr(pump.EventWriter, "write", recording)
    server = await asyncio.start_server(engine, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    running = await support.start_gateway(f"http://127.0.0.1:{port}", tmp_path, {"enabled": True})
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                f"{running.url}/v1/chat/completions", json={**CHAT_BODY, "stream": True}
            ) as response,
        ):
            events = await support.sse_events(response)
    finally:
        await running.close()
        server.close()
        await server.wait_closed()
    assert support.streamed_text(events) == "".join(words)
    assert events[-1] == "[DONE]"
    # The first write ends with the first text released (a word is released once the
    # next token shows that it has ended), and the rest goes out after it.
    first = [json.loads(part) for part in writes[0].decode().split("data: ")[1:]]
    assert support.streamed_text(first) == "Hello "
    assert len(writes) == 1  # the other events left with the end of the body
