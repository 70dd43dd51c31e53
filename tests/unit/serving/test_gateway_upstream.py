"""The engine client (`upstream.Upstream`, on aiohttp) against scripted HTTP/1.1 servers.

Each server reads one request head (and its Content-Length body) at a time and
answers with bytes written by the test, so framing, keep-alive and failure paths
are exercised exactly, over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from llm_serving.gateway import errors, upstream

Reply = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[bool]]
"""(request head, writer, request number on the connection) -> keep the connection open."""


@contextlib.asynccontextmanager
async def _server(reply: Reply) -> AsyncIterator[tuple[str, list[int]]]:
    connections: list[int] = []  # requests served, per connection

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        index = len(connections) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                connections[index] += 1
                if not await reply(head, writer, connections[index]):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def _upstream(url: str, read_timeout: float = 5.0) -> AsyncIterator[upstream.Upstream]:
    engine = upstream.Upstream(url, connections=4, read_timeout=read_timeout)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


async def _get(engine: upstream.Upstream, path: str = "/x") -> tuple[int, bytes]:
    response = await engine.send("POST", path, {"X-Request-Id": "r"}, b'{"a": 1}')
    try:
        return response.status, await response.read()
    finally:
        response.close()


async def test_content_length_responses_reuse_one_connection() -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        assert head.startswith(b"POST /x HTTP/1.1\r\n")
        body = f"reply {number}".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    async with _server(reply) as (url, connections), _upstream(url) as engine:
        assert [await _get(engine) for _ in range(3)] == [
            (200, b"reply 1"),
            (200, b"reply 2"),
            (200, b"reply 3"),
        ]
        assert connections == [3]


async def test_chunked_body_split_anywhere_is_reassembled() -> None:
    payload = b"data: one\n\ndata: two\n\n" * 3
    encoded = b"".join(
        b"%x;ext=1\r\n%s\r\n" % (len(part), part)
        for part in (payload[:7], payload[7:40], payload[40:])
    )
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded + b"0\r\nX-T: 1\r\n\r\n"
    )

    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        for start in range(0, len(raw), 5):  # five bytes per write, with pauses
            writer.write(raw[start : start + 5])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    async with _server(reply) as (url, connections), _upstream(url) as engine:
        assert await _get(engine) == (200, payload)
        assert await _get(engine) == (200, payload)
        assert connections == [2]  # the trailer ended the body; the connection was reused


async def test_unread_body_of_a_finished_response_is_not_served_to_the_next() -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        first, second = f"first part {number}|".encode(), f"second part {number}".encode()
        length = len(first) + len(second)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (length, first))
        await writer.drain()
        await asyncio.sleep(0.02)  # two reads on the client side
        writer.write(second)
        await writer.drain()
        return True

    async with _server(reply) as (url, connections), _upstream(url) as engine:
        response = await engine.send("POST", "/x", {}, b"{}")
        assert await response.readany() == b"first part 1|"  # the rest is 20 ms away
        await asyncio.sleep(0.05)  # now the whole body has arrived, and part of it is unread
        response.close()
        assert await _get(engine) == (200, b"first part 2|second part 2")
        assert connections == [2]


async def test_readany_returns_every_part_received_so_far_at_once() -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"one|", b"two|", b"three"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)  # separate reads on the client side
        writer.write(b"0\r\n\r\n")
        return True

    async with _server(reply) as (url, _), _upstream(url) as engine:
        response = await engine.send("POST", "/x", {}, b"{}")
        await asyncio.sleep(0.1)  # every chunk has arrived, each in a read of its own
        assert await response.readany() == b"one|two|three"  # one call, one write onwards
        assert await response.readany() == b""
        response.close()


async def test_body_until_close_and_interim_responses() -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n")
        writer.write(b"Content-Type: text/plain\r\n\r\nno such thing")
        return False  # close: that ends the body

    async with _server(reply) as (url, connections), _upstream(url) as engine:
        response = await engine.send("GET", "/missing", {}, None)
        assert response.status == 404
        assert response.headers["content-type"] == "text/plain"
        assert await response.read() == b"no such thing"
        response.close()
        assert await _get(engine) == (404, b"no such thing")
        assert connections == [1, 1]  # not reused after a body framed by the close


async def test_stale_pooled_connection_is_retried_once_on_a_new_one() -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        if number == 2:  # closed as the request arrived, like an idle keep-alive timeout
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with _server(reply) as (url, connections), _upstream(url) as engine:
        assert await _get(engine) == (200, b"ok")
        assert await _get(engine) == (200, b"ok")
        assert connections == [2, 1]  # the second request went again, on a new connection


async def test_closing_an_unfinished_response_drops_its_connection() -> None:
    gone = asyncio.Event()

    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsome\r\n")
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            for _ in range(200):  # the engine notices the client went away
                await asyncio.sleep(0.01)
                writer.write(b"4\r\nmore\r\n")
                await writer.drain()
                if writer.transport.is_closing():
                    break
        gone.set()
        return False

    async with _server(reply) as (url, _), _upstream(url) as engine:
        response = await engine.send("POST", "/x", {}, b"{}")
        assert await response.readany() == b"some"
        response.close()
        await asyncio.wait_for(gone.wait(), 5)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "upstream_error"),  # a fresh connection closed without an answer
        (b"garbage\r\n\r\n", "upstream_error"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "upstream_error"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "upstream_error"),
    ],
)
async def test_broken_responses_are_502(raw: bytes, code: str) -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(raw)
        await writer.drain()
        return False

    async with _server(reply) as (url, connections), _upstream(url) as engine:
        with pytest.raises(errors.GatewayError) as caught:
            await _get(engine)
        assert caught.value.status == 502
        assert caught.value.code == code
        assert connections == [1]  # not retried: the engine saw the request


async def test_silent_engine_is_504_and_refused_connection_is_503() -> None:
    async def reply(head: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        await asyncio.sleep(5)
        return False

    async with _server(reply) as (url, _), _upstream(url, read_timeout=0.1) as engine:
        with pytest.raises(errors.GatewayError) as caught:
            await _get(engine)
        assert caught.value.status == 504
    async with _upstream(url) as engine:
        with pytest.raises(errors.GatewayError) as caught:
            await _get(engine)
    assert caught.value.status == 503
    assert caught.value.headers.get("Retry-After")
