"""The gateway's one HTTP client, opened at start-up and closed at shutdown: aiohttp's.

One `aiohttp.ClientSession` with a keep-alive connection pool carries every request
to the engine (vLLM or the simulator) and to the other services the gateway calls
(the judge model, an embedding endpoint). Timeouts are sized for generation: a few
seconds to open a TCP connection, no total limit, and a generous limit between two
reads (a non-streamed completion sends nothing until it is done). A request whose
pooled connection the engine had closed (an idle keep-alive timeout) before any
response byte is retried once on a new one.

Transport failures become OpenAI-style gateway errors here, so handlers see only
`errors.GatewayError`: connection refused is 503 with `Retry-After`, a timeout is
504, a broken response is 502. Callers own the returned `EngineResponse` and close
it in `finally`; closing an unfinished response drops its connection, which is how
the engine learns that the client went away and aborts the generation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import types
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


def _translate(exc: BaseException) -> errors.GatewayError:
    """The gateway error for a failure talking to the engine."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        logger.warning("engine refused the connection: %s", type(exc).__name__)
        return errors.upstream_unavailable()
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        logger.warning("engine timed out")
        return errors.upstream_timeout()
    return errors.upstream_failed(type(exc).__name__)


@dataclasses.dataclass
class _Attempt:
    """Whether a request went out on a pooled connection (told by aiohttp's tracing)."""

    reused: bool = False


async def _on_reuse(
    session: aiohttp.ClientSession,
    context: types.SimpleNamespace,
    params: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    attempt = context.trace_request_ctx
    if isinstance(attempt, _Attempt):
        attempt.reused = True


class EngineResponse:
    """Status, headers and body of one engine response; close it when done."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: CIMultiDictProxy[str] = response.headers

    async def readany(self) -> bytes:
        """Every body byte received and not read yet (b"" at the end), failures translated.

        A read from the socket often carries many events of a stream: they come back
        at once, so the caller handles and writes them on in one pass.
        """
        try:
            return await self._response.content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc) from None

    async def read(self) -> bytes:
        """The whole body."""
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc) from None

    def close(self) -> None:
        """Give the connection back if the whole body has arrived, else drop it."""
        self._response.release()


class Upstream:
    """The engine's base URL and the one client session of the gateway."""

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
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}  # parsed once per path, not per request

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (also used for the judge and the embedding endpoint)."""
        if self._session is None:
            raise RuntimeError("upstream session used before start()")
        return self._session

    async def start(self) -> None:
        """Open the session; called once from the application's startup."""
        if self._session is None:
            tracing = aiohttp.TraceConfig()
            tracing.on_connection_reuseconn.append(_on_reuse)
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                # The engine on loopback does not compress; the judge and an embedding
                # service answer JSON the gateway reads whole, uncompressed too.
                auto_decompress=False,
                raise_for_status=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                # One session serves every client: a cookie set by a service must not
                # be replayed on other clients' requests (and nothing is stored per call).
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=[tracing],
            )

    async def close(self) -> None:
        """Close the session and its connections; called from cleanup."""
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
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self.base_url + path)
        for number in range(2):
            attempt = _Attempt()
            try:
                response = await self.session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=self.timeout,
                    trace_request_ctx=attempt,
                )
            except aiohttp.ServerDisconnectedError:
                if attempt.reused and number == 0:
                    continue  # the engine had closed this idle pooled connection: a new one
                raise errors.upstream_failed("ServerDisconnectedError") from None
            except ValueError:  # a header aiohttp refuses to send (a line break in it)
                raise errors.invalid_request("A header value is not valid.") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _translate(exc) from None
            return EngineResponse(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def health(self) -> bool:
        """Whether the engine's /health answers 200 within `HEALTH_TIMEOUT`."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                response = await self.send("GET", "/health", {}, None)
                try:
                    await response.read()
                finally:
                    response.close()
                return response.status == 200
        except (errors.GatewayError, TimeoutError):
            return False
