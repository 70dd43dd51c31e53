"""The gateway's HTTP/1.1 server: an asyncio protocol over httptools' parser, built for one hop.

Every prompt crosses this server on its way in and its answer on its way out, so it
does per request only what a reverse proxy in front of one engine needs, and hands
the gateway's handler a small `Request` whose body is already read:

- parsing is llhttp's, through `httptools` (the parser uvicorn uses): keep-alive,
  pipelining (answered in order), chunked request bodies, HTTP/1.0, and llhttp's
  strict checks against request smuggling (a duplicate Content-Length, or one beside
  Transfer-Encoding, is refused);
- a malformed request is answered 400 here and a request head over `MAX_HEAD`
  bytes (one read more while a single header is unfinished) 431, and the
  connection is closed, since the parser cannot find the next request after them;
  the client's further bytes are read and dropped meanwhile (see `LINGER`);
- a body over the limit the application gives (asked for every request, so a
  reloaded policy applies at once) is not kept: the request goes to the handler at
  once, marked `too_large`, so that the gateway answers 413 after its own checks and
  counts it; the rest of the body is read and dropped for up to `LINGER` seconds, so
  that the client reads the answer rather than a reset, and the connection closes.
  `Expect: 100-continue` is answered only for a body within the limit, on a
  connection with nothing else in progress;
- a response goes out in one write (status line, headers and body); a stream
  (`EventStream`) uses chunked encoding, or the end of the connection for an HTTP/1.0
  client, sends its headers with its first data, and waits while the client reads
  slower than the engine writes (transport flow control);
- a client that disconnects cancels its request's handler at once, so the handler's
  `finally` closes the engine response, which aborts the generation;
- an idle keep-alive connection is closed after `keepalive_timeout` seconds, and
  `Server.close()` stops listening, lets requests in progress finish (their answers
  say `Connection: close`) up to a deadline, then cancels the rest.

Routing, 404 and 405, request ids and metrics are the handler's (`app.py`); the
errors answered here carry the same OpenAI-style JSON body (`errors.GatewayError`).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import logging
import time
import typing
from collections.abc import Awaitable, Callable

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from llm_serving.gateway import errors

logger = logging.getLogger(__name__)

#: Bytes allowed for a request line and headers together.
MAX_HEAD = 64 * 1024
#: Complete requests waiting on one connection (pipelined) before reading pauses.
MAX_QUEUED = 16
#: Seconds an idle keep-alive connection stays open (the default of aiohttp and nginx's 75).
KEEPALIVE_TIMEOUT = 75.0
#: Seconds the rest of a refused body is read and dropped before the connection closes.
LINGER = 2.0

_LAST_CHUNK = b"0\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


class Request:
    """One request with its whole body (empty and `too_large` when over the limit)."""

    __slots__ = (
        "body",
        "connection",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "too_large",
        "version",
    )

    def __init__(
        self,
        connection: Connection,
        method: str,
        path: str,
        query: str,
        version: str,
        headers: CIMultiDictProxy[str],
        keep_alive: bool,
    ) -> None:
        self.connection = connection
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.body = b""
        self.too_large = False

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters ("" when absent)."""
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()

    def stream(self, status: int, headers: dict[str, str]) -> EventStream:
        """A streamed answer to this request."""
        return EventStream(self.connection, status, headers)


class Response:
    """A whole answer: status, headers and body, written in one piece."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}


def error_response(error: errors.GatewayError) -> Response:
    """The OpenAI-style JSON answer for `error`, with its headers (`Retry-After`, ...)."""
    return Response(
        error.status, error.encoded(), {"Content-Type": errors.JSON_CONTENT_TYPE, **error.headers}
    )


class EventStream:
    """A streamed answer (server-sent events) whose headers leave with its first data.

    Written with `write()` and ended with `write_eof()`; writing after the client has
    gone raises `ConnectionResetError`.
    """

    def __init__(self, connection: Connection, status: int, headers: dict[str, str]) -> None:
        self._connection = connection
        self.status = status
        self.headers = headers
        self.started = False
        self.finished = False

    def _frame(self, data: bytes) -> bytes:
        connection = self._connection
        out = b""
        if not self.started:
            self.started = True
            out = connection.head(self.status, self.headers, None if connection.chunked else -1)
        if data:
            out += b"%x\r\n%b\r\n" % (len(data), data) if connection.chunked else data
        return out

    async def write(self, data: bytes) -> None:
        """Send `data` (the headers too, the first time); waits while the client lags."""
        if self.finished:
            raise RuntimeError("write after write_eof")
        framed = self._frame(data)
        if framed:
            await self._connection.send(framed)

    async def write_eof(self, data: bytes = b"") -> None:
        """Send `data` and the end of the body, in one write."""
        if self.finished:
            return
        framed = self._frame(data)
        self.finished = True
        if self._connection.chunked:
            framed += _LAST_CHUNK
        await self._connection.send(framed)


Handler = Callable[[Request], Awaitable[Response | EventStream]]


class _RefusedError(Exception):
    """Raised in a parser callback: answer `response` and close the connection."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _head_too_large() -> _RefusedError:
    return _RefusedError(error_response(errors.headers_too_large(MAX_HEAD)))


class _Clock:
    """The `Date` header's value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def date(self) -> str:
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._value = email.utils.formatdate(now, usegmt=True)
        return self._value


class Connection(asyncio.Protocol):
    """One client connection: parses its requests, runs the handler, writes the answers."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = server.loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: collections.deque[Request | Response] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._reading = True
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._last_active = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._closing = False  # close once the request in progress is answered
        self._discard = False  # drop what arrives: the connection closes after a refusal
        # The answer in progress.
        self.keep_alive = True
        self.chunked = True
        self._head_only = False
        # The request being parsed.
        self._in_head = False
        self._raw_head = 0  # bytes of reads that fell wholly in an unfinished head
        self._url = b""
        self._fields: list[tuple[str, str]] = []
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._limit = 0
        self._request: Request | None = None

    # ----------------------------------------------------------------- transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._server.connections.add(self)
        self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        for timer in (self._idle_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._linger_timer = None
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client left: stop its handler (and its engine request)
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    @property
    def open(self) -> bool:
        """Whether the client is still connected."""
        return self._transport is not None and not self._transport.is_closing()

    def data_received(self, data: bytes) -> None:
        if self._discard:
            return  # the rest of a refused request
        self._touch()
        while data:
            in_head = self._in_head
            try:
                self._parser.feed_data(data)
                if in_head and self._in_head:
                    # All of `data` went to a head still unfinished: the parser holds an
                    # unfinished header to itself, so its size is counted here.
                    self._raw_head += len(data)
                    if self._raw_head > MAX_HEAD:
                        raise _head_too_large()
                data = b""
            except _RefusedError as refused:
                self._refuse(refused.response)
                return
            except httptools.HttpParserUpgrade as upgrade:
                # A request asking to switch protocols (h2c, websocket) is answered as
                # plain HTTP/1.1, which declines the switch; parsing goes on after it.
                data = data[upgrade.args[0] :] if upgrade.args else b""
                self._parser = httptools.HttpRequestParser(self)
            except httptools.HttpParserError as exc:
                refusal = exc.__context__
                if isinstance(exc, httptools.HttpParserCallbackError):
                    if not isinstance(refusal, _RefusedError):
                        raise
                    self._refuse(refusal.response)
                    return
                error = errors.invalid_request("The request is not valid HTTP/1.1.", "bad_http")
                self._refuse(error_response(error))
                return

    # ----------------------------------------------------------------- parsing

    def on_message_begin(self) -> None:
        self._in_head = True
        self._raw_head = 0
        self._url = b""
        self._fields = []
        self._head_size = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow_head(len(name) + len(value) + 4)
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            raise _head_too_large()

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        headers = CIMultiDictProxy(CIMultiDict(self._fields))
        url = self._url
        if not url.startswith(b"/"):  # the absolute form (a proxy's), or "*"
            try:
                url = httptools.parse_url(url).path or b"/"
            except httptools.HttpParserInvalidURLError:
                url = b"/"
        path, _, query = url.partition(b"?")
        request = self._request = Request(
            self,
            parser.get_method().decode("ascii"),
            path.decode("latin-1"),
            query.decode("latin-1"),
            parser.get_http_version(),
            headers,
            parser.should_keep_alive(),
        )
        self._limit = self._server.body_limit()
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self._limit:
            self._too_large(request)
        elif (
            headers.get("Expect", "").lower() == "100-continue"
            and request.version == "1.1"
            and self.idle
            and self._transport is not None
        ):
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        request = self._request
        if request is None or request.too_large:
            return  # the rest of a refused body, read and dropped
        self._body_size += len(body)
        if self._body_size > self._limit:
            self._body = []
            self._too_large(request)
            return
        self._body.append(body)

    def _too_large(self, request: Request) -> None:
        """Hand `request` over now, without its body; the connection closes after it."""
        request.too_large = True
        request.keep_alive = False
        self._enqueue(request)

    def on_message_complete(self) -> None:
        request, self._request = self._request, None
        if request is None or request.too_large:
            return
        body, self._body = self._body, []
        request.body = body[0] if len(body) == 1 else b"".join(body)
        self._enqueue(request)

    def _enqueue(self, item: Request | Response) -> None:
        self._queue.append(item)
        if len(self._queue) >= MAX_QUEUED:
            self._pause_reading()
        if self._task is None:
            self._task = self._loop.create_task(self._serve())

    def _refuse(self, response: Response) -> None:
        """Answer `response` after the requests before it, then close; parse no more."""
        self._request = None
        self._enqueue(response)
        self._pause_reading()

    def _pause_reading(self) -> None:
        if self._reading and self._transport is not None:
            self._reading = False
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading and self._transport is not None:
            self._reading = True
            self._transport.resume_reading()

    # ----------------------------------------------------------------- serving

    async def _serve(self) -> None:
        done = linger = False
        try:
            while self._queue and self.open:
                item = self._queue.popleft()
                if isinstance(item, Response):  # a refusal: the parser cannot go on
                    self.keep_alive = self.chunked = self._head_only = False
                    done = linger = True
                    await self.send(self._complete(item))
                    break
                if len(self._queue) < MAX_QUEUED // 2:
                    self._resume_reading()
                linger = item.too_large
                await self._respond(item)
                if not self.keep_alive:
                    done = True
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            done = True  # the client left while its answer was prepared or written
            linger = False
        finally:
            self._task = None
        if linger:
            self._linger()
        elif done or self._closing:
            self._close()
        else:
            self._touch()

    async def _respond(self, request: Request) -> None:
        self.keep_alive = request.keep_alive and not self._closing
        self.chunked = request.version != "1.0"
        self._head_only = request.method == "HEAD"
        try:
            result = await self._server.handler(request)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:  # the handler answers its own errors; this is the last resort
            logger.exception("request handler failed")
            result = error_response(errors.internal(None))
        if isinstance(result, EventStream):
            if not result.finished and self.open:
                await result.write_eof()
            return
        await self.send(self._complete(result))

    def head(self, status: int, headers: dict[str, str], length: int | None) -> bytes:
        """Status line and headers; `length` None means chunked, -1 until the connection ends."""
        if self._closing or (length is not None and length < 0):
            self.keep_alive = False
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if length is None:
            lines.append("Transfer-Encoding: chunked\r\n")
        elif length >= 0:
            lines.append(f"Content-Length: {length}\r\n")
        lines.append(f"Date: {self._server.clock.date()}\r\n")
        if not self.keep_alive:
            lines.append("Connection: close\r\n")
        elif not self.chunked:  # an HTTP/1.0 client that asked to keep the connection
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _complete(self, response: Response) -> bytes:
        head = self.head(response.status, response.headers, len(response.body))
        return head if self._head_only else head + response.body

    async def send(self, data: bytes) -> None:
        """Write `data`, waiting while the client's buffer is full; raises if the client left."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)
        while self._write_paused and self._transport is not None:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")

    # ----------------------------------------------------------------- idle and closing

    @property
    def idle(self) -> bool:
        """No request in progress or waiting."""
        return self._task is None and not self._queue

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task answering this connection's requests, while there are any."""
        return self._task

    def _touch(self) -> None:
        self._last_active = self._loop.time()
        if self._idle_timer is None and self._transport is not None:
            self._idle_timer = self._loop.call_at(
                self._last_active + self._server.keepalive_timeout, self._check_idle
            )

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._transport is None:
            return
        now = self._loop.time()
        deadline = self._last_active + self._server.keepalive_timeout
        if not self.idle:
            deadline = now + self._server.keepalive_timeout
        elif now >= deadline:
            self._close()
            return
        self._idle_timer = self._loop.call_at(deadline, self._check_idle)

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _linger(self) -> None:
        """Close once the client stops sending, or after `LINGER` s, dropping what it sends.

        Closing a socket that still has unread bytes resets the connection, and the
        client may then lose the answer it was sent (a 413 or 431) before reading it.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._discard = True
        if transport.can_write_eof():
            transport.write_eof()  # the answer is complete; the client's EOF closes
        self._resume_reading()
        self._linger_timer = self._loop.call_later(LINGER, transport.close)

    def shut_down(self) -> None:
        """Close now if idle, else once the request in progress is answered."""
        self._closing = True
        if self.idle:
            self._close()

    def abort(self) -> None:
        """Cancel the request in progress and drop the connection."""
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()


class Server:
    """Listens on one address and answers every request with `handler`.

    `body_limit` is called for each request and gives the largest body kept, in bytes.
    """

    def __init__(
        self,
        handler: Handler,
        body_limit: Callable[[], int],
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        self.handler = handler
        self.body_limit = body_limit
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[Connection] = set()
        self.clock = _Clock()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on."""
        if self._loop is None:
            raise RuntimeError("server used before start()")
        return self._loop

    async def start(self, host: str, port: int, backlog: int = 1024) -> None:
        """Listen on `host`:`port` (port 0 picks a free port: see `port`)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: Connection(self), host, port, backlog=backlog, reuse_address=True
        )

    @property
    def port(self) -> int:
        """The port listened on."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace: float = 30.0) -> None:
        """Stop listening; let requests in progress finish for up to `grace` s, then cancel."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shut_down()
        busy = [task for connection in self.connections if (task := connection.task) is not None]
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let the transports run connection_lost
