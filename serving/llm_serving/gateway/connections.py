"""aiohttp's HTTP server, configured for a security gateway: limits, timeouts, JSON errors.

The gateway serves with aiohttp's low-level web server (`web.Server`, the protocol
under `web.Application`, without its router): llhttp's strict parsing (keep-alive,
pipelining, chunked bodies, HTTP/1.0, `Expect: 100-continue`, refusal of the
framings used to smuggle requests), its limits on a request line, a header line and
the number of headers, a handler cancelled as soon as its client leaves (so the
engine request is closed and the generation aborted), and a graceful stop. `start`
configures it:

- the request head must arrive within `head_timeout` seconds of connecting or of the
  previous answer, and an idle keep-alive connection is closed after as long
  (aiohttp's keep-alive timer, which a trickled head does not reset);
- after a refused body the rest is read for at most `LINGER` seconds, so the client
  reads the answer rather than a reset.

Two things the library does not do are added in `_Connection`, its request handler
per connection: a client that half-closes its side after sending its request still
gets the answer (the socket is kept open for writing until then; the library would
close it at once). An end of input cannot tell a half-close from a client that has
gone entirely, so until the answer starts the connection sends a `100 Continue`
now and then (`PROBES`; HTTP/1.1 clients must skip a 1xx they did not ask for): a
half-closed client skips it and waits, while a client that has gone answers it with
a reset, which ends the connection and cancels its request at once, as any
disconnect does. And the errors the server itself answers (a request that is not
HTTP, a head over the limits) carry the gateway's OpenAI-style JSON body (431 for a
head too large) instead of a plain-text page. Body size and body time are enforced
by the request layer (`app`), since the body limit is the hot-reloaded policy's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import http_exceptions, web, web_protocol, web_request

from llm_serving.gateway import errors

logger = logging.getLogger(__name__)

#: Bytes allowed for the request line and for each header line.
MAX_LINE = 16 * 1024
#: Headers allowed in one request.
MAX_HEADERS = 128
#: The `Server` header of every answer (aiohttp's own would name its version and Python's).
SERVER = "llm-gateway"
#: Seconds the rest of a refused body is read and dropped before the connection closes.
LINGER = 2.0
#: Seconds after the client's end of input at which a `100 Continue` probes whether it
#: is still there (while its answer has not started).
PROBES = (0.05, 0.5, 1.5, 5.0)
_PROBE = b"HTTP/1.1 100 Continue\r\n\r\n"

Handler = Callable[[web_request.BaseRequest], Awaitable[web.StreamResponse]]


def json_error(error: errors.GatewayError) -> web.Response:
    """The OpenAI-style JSON answer for `error`, with its headers (`Retry-After`, ...)."""
    return web.Response(
        status=error.status,
        body=error.encoded(),
        headers={"Content-Type": errors.JSON_CONTENT_TYPE, "Server": SERVER, **error.headers},
    )


class _Lingering:
    """A connection's transport whose close, after a refusal, lingers.

    Closing a socket that still has unread bytes resets the connection, and the client
    may then lose the answer (a 431, a 400) before reading it: after a refusal, `close`
    ends the gateway's side, lets the client's further bytes be read and dropped, and
    closes at the client's end of input or after `LINGER` seconds.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self.linger = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        transport = self._transport
        if not self.linger or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        self.linger = False
        transport.write_eof()
        self._loop.call_later(LINGER, transport.close)


class _Connection(web_protocol.RequestHandler):
    """aiohttp's handler of one connection, with half-close, lingering and JSON errors."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A proxy with the transport's interface (all but `close` delegated).
        lingering = _Lingering(cast(asyncio.Transport, transport), self._loop)
        self.transport = cast(asyncio.Transport, lingering)

    # asyncio's protocol contract: True keeps the transport open for writing; aiohttp
    # declares None, since it always lets the transport close.
    def eof_received(self) -> bool:  # type: ignore[override]
        """The client closed its sending side: answer what it sent, then close.

        Keeps the socket open for writing while a request is queued or in progress
        (the library closes at once, and the answer is lost), and closes when idle.
        """
        waiter = getattr(self, "_waiter", None)  # set while waiting for the next request
        idle = waiter is not None and not waiter.done() and not getattr(self, "_messages", None)
        if not idle:
            self.close()  # no further requests: close once the answer is written
            for delay in PROBES:
                self._loop.call_later(delay, self._probe)
            return True
        return False

    def _probe(self) -> None:
        """Send a 1xx while the answer has not started (see the module docstring)."""
        transport = self.transport
        request = getattr(self, "_current_request", None)
        if transport is None or transport.is_closing() or request is None:
            return
        if request.version < (1, 1) or request.writer.output_size > 0:
            return
        transport.write(_PROBE)

    def handle_error(
        self,
        request: web_request.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The server's own refusals, in the gateway's JSON; the connection closes."""
        if isinstance(exc, http_exceptions.LineTooLong) or (
            isinstance(exc, http_exceptions.BadHttpMessage)
            and "too many headers" in str(exc).lower()
        ):
            error = errors.headers_too_large(MAX_LINE, MAX_HEADERS)
        elif status >= 500:
            logger.error("request failed in the server: %s", type(exc).__name__)
            error = errors.internal(None)
        else:
            error = errors.invalid_request("The request is not valid HTTP/1.1.", "bad_http")
        response = json_error(error)
        response.force_close()
        response.headers["Connection"] = "close"
        self.close()  # parse nothing more: what the client still sends is dropped
        transport: Any = self.transport
        if isinstance(transport, _Lingering):
            transport.linger = True
        return response


class _Server(web.Server):
    """aiohttp's low-level server, making a `_Connection` per connection."""

    def __call__(self) -> web_protocol.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


async def start(
    handler: Handler,
    host: str,
    port: int,
    head_timeout: float,
    shutdown_timeout: float = 30.0,
) -> tuple[web.ServerRunner, int]:
    """Listen on `host`:`port` (0 picks one); returns the runner and the port listened on."""
    server = _Server(
        handler,
        handler_cancellation=True,
        keepalive_timeout=head_timeout,
        lingering_time=LINGER,
        max_line_size=MAX_LINE,
        max_field_size=MAX_LINE,
        max_headers=MAX_HEADERS,
        access_log=None,
    )
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    sockets: Any = runner.addresses
    return runner, int(sockets[0][1])


async def stop(runner: web.ServerRunner) -> None:
    """Stop listening, let requests in progress finish (up to the shutdown timeout), close."""
    await runner.cleanup()
    await asyncio.sleep(0)
