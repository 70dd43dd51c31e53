"""The gateway's one HTTP client to the engine, opened at start-up and closed at shutdown.

All requests to vLLM (or the simulator) go through one `aiohttp.ClientSession`
with a connection pool sized for the engine's concurrency and explicit timeouts
sized for generation: a few seconds to open a TCP connection, no total limit, and a
generous limit between two reads (a non-streamed completion sends nothing until it
is done). Transport failures become OpenAI-style gateway errors here, so handlers
never see an aiohttp exception: connection refused is 503 with `Retry-After`, a
timeout is 504, a broken response is 502. Callers own the returned response and
close it in `finally`; closing an unfinished response drops its connection, which is
how the engine learns that the client went away and aborts the generation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp
import yarl
from multidict import CIMultiDict

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
    """The engine's base URL and the session that talks to it."""

    def __init__(
        self,
        base_url: str,
        connections: int = 512,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._urls: dict[str, yarl.URL] = {}
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (also used for the judge and the embedding endpoint)."""
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
                # One session serves every client: a cookie set by the engine must not
                # be replayed on other clients' requests (and nothing is stored per call).
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        """Close the session and its connections; called from the application's cleanup."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def url(self, path: str) -> yarl.URL:
        """Absolute engine URL of a path such as `/v1/chat/completions` (parsed once)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self.base_url + path)
        return url

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
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response with its headers read; the caller closes it."""
        try:
            return await self.session.request(
                method,
                self.url(path),
                data=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate(exc) from exc

    async def health(self) -> bool:
        """Whether the engine's /health answers 200 within `HEALTH_TIMEOUT`."""
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
        try:
            async with self.session.get(self.url("/health"), timeout=timeout) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def translate(exc: aiohttp.ClientError | TimeoutError) -> errors.GatewayError:
    """Map a client-side failure to the gateway error it means."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        logger.warning("engine refused the connection: %s", type(exc).__name__)
        return errors.upstream_unavailable()
    if isinstance(exc, TimeoutError):  # includes aiohttp.ServerTimeoutError
        logger.warning("engine timed out")
        return errors.upstream_timeout()
    logger.warning("engine connection failed: %s", type(exc).__name__)
    return errors.upstream_failed(type(exc).__name__)


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole response body, with transport failures translated."""
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise translate(exc) from exc
