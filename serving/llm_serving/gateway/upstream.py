"""The gateway's one HTTP client to the engine, opened at start-up and closed at shutdown.

Requests to vLLM (or the simulator) on loopback go through `EnginePool`: a small
HTTP/1.1 client on asyncio protocols with a keep-alive connection pool, written for
this one hop. It does per request only what the hop needs (one write of the request,
a status line and headers parsed with `bytes` methods, a body framed by
Content-Length, chunked encoding or end of connection), which costs a fraction of a
general-purpose client's per-request work on the path every prompt takes. Timeouts
are sized for generation: a few seconds to open a TCP connection, no total limit,
and a generous limit between two reads (a non-streamed completion sends nothing
until it is done). A request that finds its pooled connection closed by the engine
(an idle keep-alive timeout) before any response byte is retried once on a new one.

Transport failures become OpenAI-style gateway errors here, so handlers see only
`errors.GatewayError`: connection refused is 503 with `Retry-After`, a timeout is
504, a broken response is 502. Callers own the returned response and close it in
`finally`; closing an unfinished response drops its connection, which is how the
engine learns that the client went away and aborts the generation.

An `aiohttp.ClientSession` is kept beside the pool for the other services the
gateway calls (the judge model, an embedding endpoint), which are not on loopback.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import typing
from collections.abc import Mapping

import aiohttp
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from llm_serving.gateway import errors

logger = logging.getLogger(__name__)

#: Seconds to open a TCP connection to the engine.
CONNECT_TIMEOUT = 5.0
#: Seconds allowed between two reads from the engine (a long non-streamed generation).
READ_TIMEOUT = 600.0
#: Seconds the readiness probe waits for the engine's /health.
HEALTH_TIMEOUT = 2.0
#: Request headers passed on to the engine besides the ones the gateway sets.
_FORWARDED = ("accept", "traceparent", "tracestate", "baggage")


class Upstream:
    """The engine's base URL, its connection pool, and a session for other services."""

    def __init__(
        self,
        base_url: str,
        connections: int = 512,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        url = yarl.URL(self.base_url)
        if url.scheme != "http" or not url.host:
            raise ValueError(f"the engine URL must be http://host[:port], not {base_url!r}")
        self.connections = connections
        self.pool = EnginePool(
            url.host, url.port or 80, url.path.rstrip("/"), connections, connect_timeout,
            read_timeout,
        )  # fmt: skip
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session for the judge and the embedding endpoint (not the engine)."""
        if self._session is None:
            raise RuntimeError("upstream session used before start()")
        return self._session

    async def start(self) -> None:
        """Open the session; called once from the application's startup."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                auto_decompress=True,
                raise_for_status=False,
                skip_auto_headers=("User-Agent",),
                # One session serves every client: a cookie set by a service must not
                # be replayed on other clients' requests (and nothing is stored per call).
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        """Close the pool, the session and their connections; called from cleanup."""
        self.pool.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @staticmethod
    def headers(
        incoming: Mapping[str, str], request_id: str, forward_authorization: bool
    ) -> CIMultiDict[str]:
        """Headers for the engine: a small allow-list plus the request id."""
        out: CIMultiDict[str] = CIMultiDict()
        for name in _FORWARDED:
            value = incoming.get(name)
            if value is not None:
                out[name] = value
        if forward_authorization:
            auth = incoming.get("authorization")
            if auth is not None:
                out["Authorization"] = auth
        out["X-Request-Id"] = request_id
        return out

    async def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> EngineResponse:
        """Send a request and return the response with its headers read; the caller closes it."""
        return await self.pool.request(method, path, headers, body)

    async def health(self) -> bool:
        """Whether the engine's /health answers 200 within `HEALTH_TIMEOUT`."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                response = await self.pool.request("GET", "/health", {}, None)
                try:
                    await response.read()
                finally:
                    response.close()
                return response.status == 200
        except (errors.GatewayError, TimeoutError):
            return False


# ----------------------------------------------------------------------------- the pool

_MAX_HEAD = 64 * 1024  # status line and headers
_PAUSE_ABOVE = 4 * 1024 * 1024  # unread body bytes before reading from the socket pauses
_RESUME_BELOW = 1024 * 1024


class _ClosedError(Exception):
    """The connection closed before any byte of the response: retry on a new one."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to the engine; carries one request at a time."""

    def __init__(self, pool: EnginePool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()  # once: on Python 3.11 each call is a getpid()
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.reusable = True
        self._buffer = b""
        self._head_done = False
        self.status = 0
        self.headers: CIMultiDictProxy[str] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._paused = False
        self._length: int | None = None  # Content-Length still to read
        self._chunked = False
        self._chunk_left = -1  # -1: expecting a chunk-size line; -2: trailers
        self.complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._received_any = False
        self._head_request = False

    # -------------------------------------------------------------- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open = True

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        try:
            if not self._head_done:
                self._buffer += data
                if not self._parse_head():
                    return
                data, self._buffer = self._buffer, b""
            self._feed_body(data)
        except errors.GatewayError as exc:
            self._fail(exc)
            return
        self._wake()

    def eof_received(self) -> bool | None:
        self.reusable = False
        if self._head_done and self._length is None and not self._chunked:
            self.complete = True  # the body ends with the connection
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.reusable = False
        if self._head_done and self._length is None and not self._chunked:
            self.complete = True
        if not self.complete and self._error is None:
            if not self._received_any:
                self._error = _ClosedError()
            else:
                self._error = errors.upstream_failed("ServerDisconnectedError")
        self._wake()

    # -------------------------------------------------------------- parsing

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise errors.upstream_failed("ResponseHeadersTooLarge")
            return False
        head = self._buffer[:end].decode("latin-1").split("\r\n")
        self._buffer = self._buffer[end + 4 :]
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise errors.upstream_failed("BadStatusLine")
        status = int(parts[1])
        if 100 <= status < 200:  # an interim response: the real one follows
            return self._parse_head() if self._buffer else False
        headers: CIMultiDict[str] = CIMultiDict()
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise errors.upstream_failed("BadHeaderLine")
            headers.add(name.strip(), value.strip())
        self.status = status
        self.headers = CIMultiDictProxy(headers)
        self._head_done = True
        connection = headers.get("Connection", "").lower()
        if connection == "close" or parts[0] == "HTTP/1.0":
            self.reusable = False
        if self._head_request or status in (204, 304):
            self.complete = True
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            self._chunked = True
        elif "Content-Length" in headers:
            try:
                self._length = int(headers["Content-Length"])
            except ValueError:
                raise errors.upstream_failed("BadContentLength") from None
            self.complete = self._length == 0
        else:
            self.reusable = False  # the body runs to the end of the connection
        return True

    def _push(self, data: bytes) -> None:
        if data:
            self._body.append(data)
            self._queued += len(data)
            if self._queued > _PAUSE_ABOVE and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()

    def _feed_body(self, data: bytes) -> None:
        if self.complete:
            if data:
                self.reusable = False  # bytes after the end of a response: do not reuse
            return
        if self._length is not None:
            take = data[: self._length]
            self._length -= len(take)
            self._push(take)
            if self._length == 0:
                self.complete = True
                if len(data) > len(take):
                    self.reusable = False
            return
        if not self._chunked:
            self._push(data)
            return
        buffer = self._buffer + data if self._buffer else data
        position = 0
        while True:
            if self._chunk_left > 0:
                take = buffer[position : position + self._chunk_left]
                self._push(take)
                self._chunk_left -= len(take)
                position += len(take)
                if self._chunk_left > 0:
                    break
                self._chunk_left = 0  # data done; its CRLF follows
            if self._chunk_left == 0:
                if len(buffer) - position < 2:
                    break
                if buffer[position : position + 2] != b"\r\n":
                    raise errors.upstream_failed("BadChunk")
                position += 2
                self._chunk_left = -1
            end = buffer.find(b"\r\n", position)
            if end < 0:
                if len(buffer) - position > _MAX_HEAD:
                    raise errors.upstream_failed("BadChunk")
                break
            line = buffer[position:end]
            position = end + 2
            if self._chunk_left == -2:  # trailers, up to an empty line
                if not line:
                    self.complete = True
                    if position < len(buffer):
                        self.reusable = False
                    position = len(buffer)
                    break
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise errors.upstream_failed("BadChunk") from None
            if size < 0:
                raise errors.upstream_failed("BadChunk")
            self._chunk_left = size if size else -2
        self._buffer = buffer[position:]

    # -------------------------------------------------------------- waiting

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self.reusable = False
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._pool.read_timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def head(self, method: str, request: bytes) -> None:
        """Write `request` and wait for the status line and headers."""
        assert self.transport is not None
        self._head_request = method == "HEAD"
        self.transport.write(request)
        while not self._head_done:
            if self._error is not None:
                raise self._error
            await self._wait()
        if self._error is not None and not self._body and not self.complete:
            raise self._error

    async def readany(self) -> bytes:
        """All body bytes received and not read yet; b"" once the body is complete.

        Everything queued comes back at once (a read from the socket often carries many
        chunks of an event stream), so the caller handles them in one pass and writes
        them on in one write.
        """
        while not self._body:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        body = self._body
        if len(body) == 1:
            data = body.popleft()
        else:
            data = b"".join(body)
            body.clear()
        self._queued -= len(data)
        if self._paused and self._queued < _RESUME_BELOW and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reset(self) -> None:
        """Forget the finished response before the connection carries the next request.

        Body bytes the caller did not read (it stopped early) belong to that response
        and are dropped with it.
        """
        self._body.clear()
        self._queued = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._head_done = False
        self.status = 0
        self.headers = None
        self._length = None
        self._chunked = False
        self._chunk_left = -1
        self.complete = False
        self._received_any = False

    def close(self) -> None:
        self.open = False
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class EngineResponse:
    """Status, headers and body of one engine response; close it when done."""

    def __init__(self, connection: _Connection, pool: EnginePool) -> None:
        self._connection: _Connection | None = connection
        self._pool = pool
        self.status = connection.status
        assert connection.headers is not None
        self.headers = connection.headers

    async def readany(self) -> bytes:
        """The next part of the body (b"" at its end), with failures translated."""
        connection = self._connection
        if connection is None:
            return b""
        try:
            return await connection.readany()
        except TimeoutError:
            logger.warning("engine timed out")
            raise errors.upstream_timeout() from None
        except _ClosedError:
            raise errors.upstream_failed("ServerDisconnectedError") from None

    async def read(self) -> bytes:
        """The whole body."""
        chunks = []
        while chunk := await self.readany():
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        """Return the connection to the pool if the body was read whole, else drop it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


class EnginePool:
    """Keep-alive connections to one engine, at most `limit` open at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        limit: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.prefix = prefix
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[_Connection] = []
        self._open = 0
        self._slots = asyncio.Semaphore(self.limit)
        host_header = host if port == 80 else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if port == 80 else f"[{host}]:{port}"
        self._host_line = f"Host: {host_header}\r\n"

    def _encode(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1\r\n", self._host_line]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        return head + body if body else head

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
        except TimeoutError:
            logger.warning("engine timed out")
            raise errors.upstream_timeout() from None
        except OSError as exc:
            logger.warning("engine refused the connection: %s", type(exc).__name__)
            raise errors.upstream_unavailable() from None
        return protocol

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> EngineResponse:
        """Send one request and wait for its headers; the caller closes the response."""
        for header in headers.values():
            if "\r" in header or "\n" in header:
                raise errors.invalid_request("A header value contains a line break.")
        data = self._encode(method, path, headers, body)
        await self._slots.acquire()
        try:
            for attempt in range(2):
                connection = None
                while self._idle:
                    candidate = self._idle.pop()
                    if candidate.open and candidate.reusable:
                        connection = candidate
                        break
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                try:
                    await connection.head(method, data)
                except _ClosedError:
                    connection.close()
                    if reused and attempt == 0:
                        continue  # the engine closed an idle connection: try a new one
                    raise errors.upstream_failed("ServerDisconnectedError") from None
                except TimeoutError:
                    connection.close()
                    logger.warning("engine timed out")
                    raise errors.upstream_timeout() from None
                except BaseException:
                    connection.close()
                    raise
                return EngineResponse(connection, self)
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: _Connection) -> None:
        """Take a connection back: pooled when its response was read whole, else closed."""
        self._slots.release()
        if connection.complete and connection.reusable and connection.open:
            connection.reset()
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        """Close every idle connection (responses still open close their own)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
