"""The stream pump: engine events in, checked events out, to a client that may be slow.

`pump` reads the engine's server-sent events as they arrive (`readany`: everything a
socket read brought), cuts them into events, runs each through the `StreamFilter`
and writes what may go out in one write per read; the first text of the stream goes
out ahead of the rest of its read, and the final events leave with the end of the
body. An engine failure mid-stream ends the stream with an OpenAI-style error event
and `[DONE]`.

`EventWriter` is the client side: an aiohttp `StreamResponse` whose headers leave
with the first data, and whose every write must drain within `write_timeout`
seconds: a client that stops reading is treated as gone (`ConnectionResetError`), so
it cannot hold the engine request open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web, web_request

from llm_serving.gateway import errors, exchange, sse, upstream

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class EventWriter:
    """A streamed answer; writes that do not drain in time count as a client gone."""

    def __init__(
        self, request: web_request.BaseRequest, headers: dict[str, str], write_timeout: float
    ) -> None:
        self._request = request
        self.response = web.StreamResponse(status=200, headers=headers)
        if request.version < (1, 1):
            self.response.force_close()  # no chunked encoding: the body ends with the connection
        self._timeout = write_timeout
        self.finished = False

    async def write(self, data: bytes) -> None:
        """Send `data` (and the headers, the first time)."""
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                if not self.response.prepared:
                    await self.response.prepare(self._request)
                if data:
                    await self.response.write(data)
        except TimeoutError:
            raise ConnectionResetError("the client stopped reading") from None

    async def write_eof(self, data: bytes = b"") -> None:
        """Send `data` and end the body."""
        if self.finished:
            return
        await self._send(data)
        self.finished = True
        await self.response.write_eof()


async def pump(
    ctx: exchange.Context,
    response: upstream.EngineResponse,
    out: EventWriter,
    filter_: sse.StreamFilter,
    on_first_token: Callable[[], None],
    on_upstream_error: Callable[[errors.GatewayError], None],
) -> float:
    """Relay the stream to its end (or its block); returns the seconds spent scanning."""
    splitter = sse.EventSplitter()
    first_token = False
    scan_seconds = 0.0
    final = b""
    while not filter_.done:
        started = time.perf_counter()
        try:
            chunk = await response.readany()
        except errors.GatewayError as error:
            ctx.upstream_seconds += time.perf_counter() - started
            on_upstream_error(error)
            await out.write(sse.encode(error.body()) + sse.DONE)
            return scan_seconds
        now = time.perf_counter()
        ctx.upstream_seconds += now - started
        datas = splitter.feed(chunk) if chunk else splitter.close()
        results: list[sse.Output] = []
        for data in datas:
            result = filter_.feed(data)
            results.append(result)
            if not first_token and result.has_text and not filter_.done:
                # The first text goes out at once; the rest of this read follows in one
                # write once it is checked.
                first_token = True
                head = b"".join(event for earlier in results for event in earlier.events)
                results.clear()
                scan_seconds += time.perf_counter() - now
                await out.write(head)
                on_first_token()
                now = time.perf_counter()
        if not chunk:
            results.append(filter_.end_of_stream())
        payload = b"".join(event for result in results for event in result.events)
        scan_seconds += time.perf_counter() - now
        for result in results:
            if result.blocked is not None:
                ctx.blocked_by = result.blocked.check
        last = not chunk or filter_.done
        if payload:
            if last:  # the final events go out with the end of the body, in one write
                final = payload
            else:
                await out.write(payload)
            if not first_token and any(result.has_text for result in results):
                first_token = True
                on_first_token()
        if last:
            break
    await out.write_eof(final)
    return scan_seconds
