"""The gateway's HTTP/1.1 behaviour over real sockets, spoken to in raw bytes.

The real gateway (`app.Service` on aiohttp's server) in front of a scripted engine;
the client side is plain asyncio streams, so every byte the gateway writes is seen:
framing, keep-alive, pipelining, limits, refusals, timeouts, half-closed and gone
clients, cancellation and shutdown. Nothing here depends on which HTTP library the
gateway uses (these tests ran against its former hand-written server too, with an
echo handler in place of the gateway's routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_serving.gateway import texts
from tests.unit.serving import gateway_support as support

COMPLETION = json.dumps({"model": "test-model", "prompt": "hello"}).encode()
POLICY: dict[str, Any] = {"enabled": True, "maxBodyBytes": 1024}


@contextlib.asynccontextmanager
async def serving(
    tmp_path: pathlib.Path, engine: support.ScriptedEngine | None = None, **settings: Any
) -> AsyncIterator[support.Stack]:
    async with support.stack(tmp_path, policy=POLICY, engine=engine, **settings) as stack:
        yield stack


async def connect(stack: support.Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", stack.gateway.service.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One final response (1xx skipped): status, headers (lower-case names), body."""
    while True:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        if not 100 <= status < 200:
            break
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await asyncio.wait_for(reader.read(), 10)
    return status, headers, body


def post(path: str, body: bytes, extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def completion(extra: str = "") -> bytes:
    return post("/v1/completions", COMPLETION, extra)


async def closed(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    """Whether the gateway closed the connection (EOF or reset) within `within` seconds."""
    try:
        while await asyncio.wait_for(reader.read(65536), within):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def test_keep_alive_serves_several_requests_on_one_connection(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        for _ in range(3):
            writer.write(completion())
            status, headers, body = await read_response(reader)
            assert status == 200
            assert json.loads(body)["object"] == "text_completion"
            assert headers.get("connection") != "close"
        assert stack.engine.calls == 3
        writer.close()


async def test_pipelined_requests_are_answered_in_order(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        writer.write(b"".join(completion(f"X-Request-Id: r{n}\r\n") for n in range(5)))
        ids = [(await read_response(reader))[1]["x-request-id"] for _ in range(5)]
        assert ids == [f"r{n}" for n in range(5)]
        writer.close()


async def test_chunked_request_body_is_joined(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for start in range(0, len(COMPLETION), 7):
            part = COMPLETION[start : start + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        writer.write(b"0\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert stack.engine.requests[-1]["prompt"] == "hello"
        writer.close()


@pytest.mark.parametrize(
    ("request_head", "keeps_open"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET /health HTTP/1.0\r\n\r\n", False),
        (b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
async def test_connection_header_and_http_1_0(
    tmp_path: pathlib.Path, request_head: bytes, keeps_open: bool
) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        writer.write(request_head)
        status, _, _ = await read_response(reader)
        assert status == 200
        assert await closed(reader, within=0.5) is not keeps_open
        writer.close()


async def test_expect_100_continue_within_the_limit(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        writer.write(post("/v1/completions", b"", "Expect: 100-continue\r\n").replace(
            b"Content-Length: 0", b"Content-Length: %d" % len(COMPLETION)
        ))  # fmt: skip
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(COMPLETION)
        assert (await read_response(reader))[0] == 200
        writer.close()


async def test_body_over_the_limit_is_413_and_the_connection_closes(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        # The declared length is over the limit: no 100 Continue, the answer at once, and
        # the client can still send its body without a reset.
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        status, headers, body = await read_response(reader)
        assert status == 413
        assert headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_too_large"
        writer.write(b"x" * 5000)
        assert await closed(reader)
        writer.close()
        # A chunked body crosses the limit while it is read.
        reader, writer = await connect(stack)
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"100\r\n" + b"x" * 256 + b"\r\n" * 1
        )
        for _ in range(5):
            writer.write(b"100\r\n" + b"x" * 256 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 413
        assert await closed(reader)
        writer.close()
        assert stack.engine.calls == 0


async def test_the_limit_is_the_policy_in_force(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        big = json.dumps({"model": "test-model", "prompt": "x" * 1500}).encode()
        writer.write(post("/v1/completions", big))
        assert (await read_response(reader))[0] == 413
        writer.close()
        (tmp_path / "policy.json").write_text(json.dumps({**POLICY, "maxBodyBytes": 4096}))
        for _ in range(100):  # the reload
            if stack.gateway.gateway.runtime.policy.max_body_bytes == 4096:
                break
            await asyncio.sleep(0.05)
        reader, writer = await connect(stack)
        writer.write(post("/v1/completions", big))
        assert (await read_response(reader))[0] == 200
        writer.close()


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"NOT-HTTP\r\n\r\n", 400, "bad_http"),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "bad_http"),
        (b"GET / HTTP/1.1\r\n" + b"X-Many: a\r\n" * 7000, 431, "headers_too_large"),
        # One header that never ends.
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (200 * 1024), 431, "headers_too_large"),
    ],
)
async def test_malformed_requests_get_an_openai_error_and_a_close(
    tmp_path: pathlib.Path, data: bytes, status: int, code: str
) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(data), 4096):  # a head that arrives in many reads
                writer.write(data[start : start + 4096])
                await writer.drain()
                await asyncio.sleep(0)
        got, headers, body = await read_response(reader)
        assert got == status
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        error = json.loads(body)["error"]
        assert error["code"] == code
        assert error["type"] == "invalid_request_error"
        assert await closed(reader)
        assert stack.engine.calls == 0
        writer.close()


async def test_head_answers_carry_no_body(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        for path in (b"/health", b"/ready"):
            writer.write(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
        writer.write(completion())  # the connection is still in step
        status, _, body = await read_response(reader)
        assert status == 200
        assert json.loads(body)["object"] == "text_completion"
        writer.close()


async def test_a_failing_handler_is_an_openai_500_and_the_connection_goes_on(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: object, chat: bool) -> None:
        raise RuntimeError("a bug")

    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        with monkeypatch.context() as patch:
            patch.setattr(texts, "request_slots", broken)
            writer.write(completion())
            status, _, body = await read_response(reader)
        assert status == 500
        assert json.loads(body)["error"]["code"] == "internal_error"
        writer.write(completion())
        assert (await read_response(reader))[0] == 200
        writer.close()


async def test_a_client_that_leaves_cancels_its_request(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(delay=30.0)
    async with serving(tmp_path, engine) as stack:
        _, writer = await connect(stack)
        writer.write(completion())
        await asyncio.wait_for(engine.received.wait(), 5)
        writer.close()
        await asyncio.wait_for(engine.cancelled.wait(), 5)


async def test_a_client_that_half_closes_gets_its_answer(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(delay=0.8)  # the answer comes after a few probes
    async with serving(tmp_path, engine) as stack:
        for request in (completion(), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"):
            reader, writer = await connect(stack)
            writer.write(request)
            await writer.drain()
            writer.transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
            status, _, body = await read_response(reader)
            assert status == 200, body
            assert await closed(reader)
            writer.close()
        assert not engine.cancelled.is_set()


async def test_protocol_upgrade_is_declined_and_the_connection_closes(
    tmp_path: pathlib.Path,
) -> None:
    """Answered as plain HTTP/1.1; what was pipelined after it goes again on a new connection."""
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        upgrade = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        writer.write(upgrade + completion())
        status, headers, body = await read_response(reader)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["connection"] == "close"
        assert await closed(reader)
        assert stack.engine.calls == 0
        writer.close()


async def test_stream_over_http_1_1_is_chunked_and_over_http_1_0_ends_with_the_connection(
    tmp_path: pathlib.Path,
) -> None:
    streamed = json.dumps({"model": "test-model", "prompt": "hello", "stream": True}).encode()
    async with serving(tmp_path) as stack:
        reader, writer = await connect(stack)
        writer.write(post("/v1/completions", streamed))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        assert body.endswith(b"data: [DONE]\n\n")
        writer.write(completion())  # still in step after the last chunk
        assert (await read_response(reader))[0] == 200
        writer.close()
        reader, writer = await connect(stack)
        writer.write(post("/v1/completions", streamed, "Connection: keep-alive\r\n", "1.0"))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert "transfer-encoding" not in headers
        assert body.endswith(b"data: [DONE]\n\n")
        assert await closed(reader)
        writer.close()


async def test_idle_keep_alive_connections_are_closed(tmp_path: pathlib.Path) -> None:
    async with serving(tmp_path, head_timeout=0.3) as stack:
        reader, writer = await connect(stack)
        writer.write(completion())
        assert (await read_response(reader))[0] == 200
        assert await closed(reader, within=5.0)
        writer.close()


async def test_a_head_trickled_byte_by_byte_is_cut_off(tmp_path: pathlib.Path) -> None:
    """Slow headers: one byte at a time keeps no connection open past the head timeout."""
    async with serving(tmp_path, head_timeout=1.0) as stack:
        reader, writer = await connect(stack)
        started = time.perf_counter()
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        with contextlib.suppress(ConnectionError):
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(0.05)
        assert await closed(reader)
        assert time.perf_counter() - started < 5.0
        writer.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["short", "trickled"])
async def test_a_body_that_does_not_arrive_in_time_is_408(
    tmp_path: pathlib.Path, trickle: bool
) -> None:
    """A body shorter than its Content-Length, or sent a byte at a time, ends in time."""
    async with serving(tmp_path, body_timeout=1.0) as stack:
        reader, writer = await connect(stack)
        started = time.perf_counter()
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n" + b"{" * 10
        )
        answer = asyncio.ensure_future(read_response(reader))
        with contextlib.suppress(ConnectionError):
            while trickle and not answer.done():
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        status, headers, body = await answer
        assert status == 408
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert headers["connection"] == "close"
        assert time.perf_counter() - started < 5.0
        assert await closed(reader)
        writer.close()
        assert stack.engine.calls == 0


async def test_a_stream_client_that_stops_reading_is_dropped(tmp_path: pathlib.Path) -> None:
    """A client that reads nothing cannot hold the engine's stream open past the write timeout."""
    big = "x" * 60_000
    engine = support.ScriptedEngine(chunks=[big] * 200)
    policy_off = {"enabled": False}
    async with support.stack(
        tmp_path, policy=policy_off, engine=engine, write_timeout=0.5
    ) as stack:
        _, writer = await connect(stack)
        streamed = json.dumps({"model": "test-model", "prompt": "hi", "stream": True}).encode()
        writer.write(post("/v1/completions", streamed))
        await asyncio.wait_for(engine.cancelled.wait(), 30)
        writer.close()


async def test_stop_lets_the_request_in_progress_finish(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(delay=1.0)
    async with serving(tmp_path, engine) as stack:
        busy_reader, busy_writer = await connect(stack)
        idle_reader, idle_writer = await connect(stack)
        busy_writer.write(completion())
        await asyncio.wait_for(engine.received.wait(), 5)
        port = stack.gateway.service.port
        closing = asyncio.create_task(stack.gateway.service.stop())
        assert await closed(idle_reader)  # an idle connection closes at once
        status, _, _ = await read_response(busy_reader)
        assert status == 200
        await asyncio.wait_for(closing, 10)
        assert not engine.cancelled.is_set()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        busy_writer.close()
        idle_writer.close()


async def test_stop_cancels_what_outlives_the_shutdown_timeout(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine(delay=60.0)
    async with serving(tmp_path, engine, shutdown_timeout=0.5) as stack:
        _, writer = await connect(stack)
        writer.write(completion())
        await asyncio.wait_for(engine.received.wait(), 5)
        await asyncio.wait_for(stack.gateway.service.stop(), 10)
        await asyncio.wait_for(engine.cancelled.wait(), 5)
        writer.close()
