"""The gateway's HTTP/1.1 server (`httpd`) over real sockets, spoken to in raw bytes.

A small handler stands in for the gateway: it echoes what it received, refuses a body
over the limit with 413 as the gateway does, and can be told to wait, fail or stream.
The client side is plain asyncio streams, so every byte the server writes is seen:
framing, keep-alive, pipelining, limits, refusals, cancellation and shutdown. The
writes of a stream are checked on a recording transport, where one call is one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_serving.gateway import httpd


class Echo:
    """The handler: answers JSON describing the request; `/wait`, `/fail`, `/stream`."""

    def __init__(self) -> None:
        self.limit = 1024
        self.seen: list[httpd.Request] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, request: httpd.Request) -> httpd.Response | httpd.EventStream:
        self.seen.append(request)
        if request.too_large:
            return httpd.Response(413, b"{}", {"Content-Type": "application/json"})
        if request.path == "/wait":
            self.started.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if request.path == "/fail":
            raise RuntimeError("a bug")
        if request.path == "/stream":
            out = request.stream(200, {"Content-Type": "text/event-stream"})
            await out.write(b"data: 1\n\n")
            await out.write(b"data: 2\n\n")
            await out.write_eof(b"data: [DONE]\n\n")
            return out
        document = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
            "version": request.version,
        }
        return httpd.Response(
            200, json.dumps(document).encode(), {"Content-Type": "application/json"}
        )


@contextlib.asynccontextmanager
async def serving(
    keepalive_timeout: float = httpd.KEEPALIVE_TIMEOUT,
) -> AsyncIterator[tuple[httpd.Server, Echo]]:
    echo = Echo()
    server = httpd.Server(echo, lambda: echo.limit, keepalive_timeout)
    await server.start("127.0.0.1", 0)
    try:
        yield server, echo
    finally:
        await server.close(grace=1.0)


async def connect(
    server: httpd.Server,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names) and body, by its framing."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
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
        body = await asyncio.wait_for(reader.read(), 5)
    return status, headers, body


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (EOF or reset) within a few seconds."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        for number in range(3):
            writer.write(post(f"/n?i={number}", b'{"n": %d}' % number))
            status, headers, body = await read_response(reader)
            assert status == 200
            assert json.loads(body) == {
                "method": "POST",
                "path": "/n",
                "query": f"i={number}",
                "body": f'{{"n": {number}}}',
                "version": "1.1",
            }
            assert "connection" not in headers
            assert headers["date"].endswith("GMT")
        writer.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        writer.write(b"".join(post(f"/{number}", b"{}") for number in range(5)))
        paths = [json.loads((await read_response(reader))[2])["path"] for _ in range(5)]
        assert paths == ["/0", "/1", "/2", "/3", "/4"]
        writer.close()


async def test_chunked_request_body_is_joined() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        writer.write(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        status, _, body = await read_response(reader)
        assert status == 200
        assert json.loads(body)["body"] == "abcdefg"
        writer.close()


@pytest.mark.parametrize(
    ("request_head", "keeps_open"),
    [
        (b"GET /a HTTP/1.0\r\n\r\n", False),
        (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
    ],
)
async def test_connection_header_and_http_1_0(request_head: bytes, keeps_open: bool) -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        writer.write(request_head)
        status, headers, _ = await read_response(reader)
        assert status == 200
        if keeps_open:
            assert headers["connection"] == "keep-alive"
            writer.write(request_head)
            assert (await read_response(reader))[0] == 200
        else:
            assert headers["connection"] == "close"
            assert await closed(reader)
        writer.close()


async def test_expect_100_continue_within_the_limit() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        head = post("/e", b"", "Expect: 100-continue\r\n")
        writer.write(head.replace(b"Length: 0", b"Length: 2"))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"{}")
        status, _, body = await read_response(reader)
        assert status == 200
        assert json.loads(body)["body"] == "{}"
        writer.close()


async def test_body_over_the_limit_is_handed_over_marked_and_the_connection_closes() -> None:
    async with serving() as (server, echo):
        echo.limit = 10
        reader, writer = await connect(server)
        # The declared length is over the limit: no 100 Continue, the handler runs at
        # once, and the client can still send its body without a reset.
        writer.write(
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        status, headers, _ = await read_response(reader)
        assert status == 413
        assert headers["connection"] == "close"
        assert echo.seen[-1].too_large
        assert echo.seen[-1].body == b""
        writer.write(b"x" * 5000)
        assert await closed(reader)
        writer.close()
        # A chunked body crosses the limit while it is read.
        reader, writer = await connect(server)
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 413
        assert await closed(reader)
        writer.close()


async def test_the_limit_is_asked_for_each_request() -> None:
    async with serving() as (server, echo):
        reader, writer = await connect(server)
        writer.write(post("/a", b"x" * 20))
        assert (await read_response(reader))[0] == 200
        echo.limit = 10  # a reloaded policy
        writer.write(post("/a", b"x" * 20))
        assert (await read_response(reader))[0] == 413
        writer.close()


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"NOT-HTTP\r\n\r\n", 400, "bad_http"),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "bad_http"),
        (b"GET / HTTP/1.1\r\n" + b"X-Many: a\r\n" * 7000, 431, "headers_too_large"),
        # One header that never ends: the parser holds it, the reads are counted.
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (2 * httpd.MAX_HEAD), 431, "headers_too_large"),
    ],
)
async def test_malformed_requests_get_an_openai_error_and_a_close(
    data: bytes, status: int, code: str
) -> None:
    async with serving() as (server, echo):
        reader, writer = await connect(server)
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
        assert echo.seen == []
        writer.close()


async def test_head_answers_carry_no_body() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) > 0
        writer.write(post("/next", b""))  # the connection is still in step
        status, _, body = await read_response(reader)
        assert status == 200
        assert json.loads(body)["path"] == "/next"
        writer.close()


async def test_a_failing_handler_is_an_openai_500_and_the_connection_goes_on() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        writer.write(post("/fail", b""))
        status, _, body = await read_response(reader)
        assert status == 500
        assert json.loads(body)["error"]["code"] == "internal_error"
        writer.write(post("/ok", b""))
        assert (await read_response(reader))[0] == 200
        writer.close()


async def test_a_client_that_leaves_cancels_its_handler() -> None:
    async with serving() as (server, echo):
        _, writer = await connect(server)
        writer.write(post("/wait", b""))
        await asyncio.wait_for(echo.started.wait(), 5)
        writer.close()
        await asyncio.wait_for(echo.cancelled.wait(), 5)


async def test_protocol_upgrade_is_declined_and_parsing_goes_on() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        upgrade = b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        writer.write(upgrade + post("/after", b""))
        assert json.loads((await read_response(reader))[2])["path"] == "/u"
        assert json.loads((await read_response(reader))[2])["path"] == "/after"
        writer.close()


async def test_stream_over_http_1_1_is_chunked_and_over_http_1_0_ends_with_the_connection() -> None:
    async with serving() as (server, _):
        reader, writer = await connect(server)
        writer.write(post("/stream", b""))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        assert body == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        writer.write(post("/after", b""))  # still in step after the last chunk
        assert (await read_response(reader))[0] == 200
        writer.close()
        reader, writer = await connect(server)
        writer.write(b"POST /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert "transfer-encoding" not in headers
        assert headers["connection"] == "close"
        assert body == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        writer.close()


async def test_idle_keep_alive_connections_are_closed() -> None:
    async with serving(keepalive_timeout=0.2) as (server, _):
        reader, writer = await connect(server)
        writer.write(post("/a", b""))
        assert (await read_response(reader))[0] == 200
        assert await closed(reader)
        writer.close()


async def test_close_lets_the_request_in_progress_finish_with_connection_close() -> None:
    echo = Echo()
    server = httpd.Server(echo, lambda: echo.limit)
    await server.start("127.0.0.1", 0)
    port = server.port
    busy_reader, busy_writer = await connect(server)
    idle_reader, idle_writer = await connect(server)
    busy_writer.write(post("/wait", b""))
    await asyncio.wait_for(echo.started.wait(), 5)
    closing = asyncio.create_task(server.close(grace=5.0))
    assert await closed(idle_reader)  # an idle connection closes at once
    assert not closing.done()
    echo.release.set()
    status, headers, _ = await read_response(busy_reader)
    assert status == 200
    assert headers["connection"] == "close"
    await asyncio.wait_for(closing, 5)
    assert not echo.cancelled.is_set()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    busy_writer.close()
    idle_writer.close()


async def test_close_cancels_what_outlives_the_grace_period() -> None:
    echo = Echo()
    server = httpd.Server(echo, lambda: echo.limit)
    await server.start("127.0.0.1", 0)
    _, writer = await connect(server)
    writer.write(post("/wait", b""))
    await asyncio.wait_for(echo.started.wait(), 5)
    await server.close(grace=0.1)
    await asyncio.wait_for(echo.cancelled.wait(), 5)
    writer.close()


# ----------------------------------------------------------------------------- writes


class RecordingTransport(asyncio.Transport):
    """A transport that keeps each write, to count them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _connection() -> tuple[httpd.Connection, RecordingTransport, asyncio.Queue[Any]]:
    """A connection on a recording transport whose handler hands its request out."""
    requests: asyncio.Queue[Any] = asyncio.Queue()
    done: asyncio.Event = asyncio.Event()

    async def handler(request: httpd.Request) -> httpd.EventStream:
        out = request.stream(200, {"Content-Type": "text/event-stream"})
        await requests.put((request, out, done))
        await done.wait()
        return out

    server = httpd.Server(handler, lambda: 1024)
    server._loop = asyncio.get_running_loop()
    connection = httpd.Connection(server)
    transport = RecordingTransport()
    connection.connection_made(transport)
    return connection, transport, requests


async def test_stream_headers_leave_with_the_first_events_in_one_write() -> None:
    connection, transport, requests = await _connection()
    connection.data_received(post("/s", b""))
    _, out, done = await asyncio.wait_for(requests.get(), 5)
    assert transport.writes == []  # nothing before the first events
    await out.write(b"data: {}\n\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\na\r\ndata: {}\n\n\r\n")  # headers, then a chunk
    await out.write_eof(b"data: [DONE]\n\n")
    assert transport.writes[1:] == [b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]  # last events, end
    done.set()
    connection.connection_lost(None)


async def test_stream_writes_wait_while_the_client_lags() -> None:
    connection, _, requests = await _connection()
    connection.data_received(post("/s", b""))
    _, out, done = await asyncio.wait_for(requests.get(), 5)
    connection.pause_writing()  # the transport's buffer is over its high-water mark
    writing = asyncio.create_task(out.write(b"data: 1\n\n"))
    await asyncio.sleep(0.05)
    assert not writing.done()
    connection.resume_writing()
    await asyncio.wait_for(writing, 5)
    connection.pause_writing()
    writing = asyncio.create_task(out.write(b"data: 2\n\n"))
    await asyncio.sleep(0.05)
    connection.connection_lost(None)  # the client left while the stream waited
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(writing, 5)
    done.set()
