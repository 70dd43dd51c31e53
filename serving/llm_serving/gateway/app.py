"""The gateway's routes and its request layer: an OpenAI-compatible reverse proxy with guardrails.

`Service.start(settings)` starts a `Gateway` behind aiohttp's server (`connections`);
`server.py` runs it until it is stopped. Routes:

- `POST /v1/chat/completions`, `POST /v1/completions`: the checked flow (`proxy`);
- `POST /v1/embeddings`, `GET /v1/models`: API key, then passed through unchanged;
- `GET`/`HEAD /health` (the gateway is alive), `GET`/`HEAD /ready` (200 only when the
  engine's `/health` answers 200), `GET /metrics` (the gateway's own registry) and
  `GET /metrics/engine` (the engine's metrics, proxied, since the engine listens on
  loopback only); with `apiKeys.protectMetrics` both metrics routes need a key.

`Gateway.handle` is the one request layer every request goes through: it routes
(404, 405), gives the request an id (`X-Request-Id` in and out, and in every log
line), reads its body within the policy's `maxBodyBytes` (413) and `body_timeout`
(408), counts and times it, writes the access log line, and turns every failure
into an OpenAI-style error, so a bad request never crashes the process nor gets a
bare 500. A client that disconnects cancels its handler (the server does that at
once), and the handler's `finally` closes the engine response, which aborts the
generation. The policy in force comes from `runtime.Policies`, swapped whole on
reload, so a request sees one policy from start to end.
"""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import random
import re
import time
from typing import Any

from aiohttp import web, web_request

from llm_serving.gateway import (
    auth,
    config,
    connections,
    errors,
    exchange,
    jsonlog,
    metrics,
    proxy,
    runtime,
    upstream,
    workers,
)
from llm_serving.guardrails import tokens

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: HTTP status logged and counted for a request whose client went away (nginx's convention).
CLIENT_CLOSED = 499
#: The route label of requests for a path the gateway does not serve.
UNMATCHED = "unmatched"
#: Routes whose successful answers are not logged (probes and scrapes would drown the log).
_QUIET = frozenset(("/health", "/ready", "/metrics", "/metrics/engine"))

Route = collections.abc.Callable[[exchange.Exchange], collections.abc.Awaitable[web.StreamResponse]]


class _RouteMetrics:
    """The metric children of one route, bound once instead of looked up per request."""

    def __init__(self, registry: metrics.Metrics, route: str) -> None:
        self._registry = registry
        self._route = route
        self._requests: dict[tuple[str, int], metrics.Counter] = {}
        self.duration = registry.request_duration.labels(route)
        self.added = registry.added_latency.labels(route)
        self.upstream = registry.upstream_duration.labels(route)

    def requests(self, method: str, status: int) -> metrics.Counter:
        """The request counter child for a method and status."""
        child = self._requests.get((method, status))
        if child is None:
            child = self._requests[method, status] = self._registry.requests.labels(
                self._route, method, str(status)
            )
        return child


def _request_id(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return f"{random.getrandbits(128):032x}"  # 32 hex digits, like uuid4().hex, no syscall


class Gateway:
    """The state of one gateway process, its routes and its request layer."""

    def __init__(self, settings: config.Settings, registry: metrics.Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = registry or metrics.Metrics()
        self.upstream = upstream.Upstream(settings.upstream, settings.upstream_connections)
        self.tokens = tokens.TokenCounter.from_path(
            str(settings.tokenizer) if settings.tokenizer else None
        )
        cpus = workers.pod_cpus() if settings.check_workers is None else settings.check_workers
        self.workers = (
            workers.Pool(cpus, settings.tokenizer, settings.check_timeout) if cpus > 0 else None
        )
        self.policies = runtime.Policies(settings, self.metrics, self.upstream, self.tokens)
        self.proxy = proxy.Proxy(settings, self.metrics, self.upstream, self.policies, self.workers)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routes: dict[str, _RouteMetrics] = {}
        self._handlers: dict[str, dict[str, Route]] = {
            proxy.CHAT: {"POST": self.proxy.chat},
            proxy.COMPLETIONS: {"POST": self.proxy.completions},
            proxy.EMBEDDINGS: {"POST": self.proxy.embeddings},
            proxy.MODELS: {"GET": self.proxy.models},
            "/health": {"GET": self.health, "HEAD": self.health},
            "/ready": {"GET": self.ready, "HEAD": self.ready},
            "/metrics": {"GET": self.own_metrics},
            "/metrics/engine": {"GET": self.proxy.engine_metrics},
        }

    @property
    def runtime(self) -> runtime.Runtime:
        """The policy in force."""
        return self.policies.current

    @property
    def keys(self) -> auth.KeyStore:
        """The API keys loaded."""
        return self.policies.keys

    async def startup(self) -> None:
        """Open the engine session, load the policy and keys, start the file watch."""
        self._loop = asyncio.get_running_loop()
        await self.upstream.start()
        await self.policies.start()

    async def cleanup(self) -> None:
        """Stop background tasks, close the engine session, stop the check workers."""
        await self.policies.stop()
        await self.upstream.close()
        if self.workers is not None:
            self.workers.close()

    # ------------------------------------------------------------- request layer

    async def handle(self, request: web_request.BaseRequest) -> web.StreamResponse:
        """Route a request; request id, body, metrics, access log, OpenAI-style errors for all."""
        started = time.perf_counter()
        ctx = exchange.Context(_request_id(request.headers.get("X-Request-Id")), started, UNMATCHED)
        token = jsonlog.request_id.set(ctx.request_id)
        self.metrics.in_flight.inc()
        status = 500
        try:
            response: web.StreamResponse
            try:
                response = await self._dispatch(request, ctx)
            except errors.GatewayError as exc:
                response = connections.json_error(exc)
                if exc.status in (408, 413):
                    response.force_close()  # the rest of the body is not read
            except ConnectionResetError:
                status = CLIENT_CLOSED
                self.metrics.client_disconnects.labels(ctx.route).inc()
                raise
            except Exception:
                logger.exception("unhandled error")
                response = connections.json_error(errors.internal(ctx.request_id))
            if not response.prepared:
                response.headers["X-Request-Id"] = ctx.request_id
                response.headers["Server"] = connections.SERVER
                if "Upgrade" in request.headers:
                    # The upgrade is declined (answered as HTTP/1.1); the server reads no
                    # further request after one, so the connection closes.
                    response.force_close()
            status = response.status
            if ctx.client_gone:
                status = CLIENT_CLOSED
                self.metrics.client_disconnects.labels(ctx.route).inc()
            return response
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            self.metrics.client_disconnects.labels(ctx.route).inc()
            raise
        finally:
            # Metrics and the log line are recorded right after the server has written
            # the response (the next turn of the loop, in this request's context), so
            # that the client does not wait for them.
            elapsed = time.perf_counter() - started
            assert self._loop is not None
            self._loop.call_soon(self._finish, request.method, ctx, status, elapsed)
            self.metrics.in_flight.dec()
            jsonlog.request_id.reset(token)

    async def _dispatch(
        self, request: web_request.BaseRequest, ctx: exchange.Context
    ) -> web.StreamResponse:
        methods = self._handlers.get(request.path)
        if methods is None:
            raise errors.not_found(request.path)
        ctx.route = request.path
        handler = methods.get(request.method)
        if handler is None:
            raise errors.method_not_allowed(request.method, frozenset(methods))
        # A body is there when its framing says so (an upgrade request's stream is not).
        framed = request.content_length or request.headers.get("Transfer-Encoding")
        body = await self._read_body(request) if framed else b""
        return await handler(exchange.Exchange(request, body, ctx))

    async def _read_body(self, request: web_request.BaseRequest) -> bytes:
        """The whole body, within `maxBodyBytes` (413) and `body_timeout` seconds (408)."""
        limit = self.runtime.policy.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise errors.body_too_large(limit)
        if (
            request.version >= (1, 1)
            and request.headers.get("Expect", "").lower() == "100-continue"
        ):
            await request.writer.write(_CONTINUE)
        content = request.content
        part = content.read_nowait()  # what came with the head: often the whole body
        parts: list[bytes] = []
        size = 0
        deadline: float | None = None
        try:
            while True:
                size += len(part)
                if size > limit:
                    raise errors.body_too_large(limit)
                if part:
                    parts.append(part)
                if content.is_eof():
                    break
                if deadline is None:  # more must arrive: from now on, against the clock
                    deadline = asyncio.get_running_loop().time() + self.settings.body_timeout
                async with asyncio.timeout_at(deadline):
                    part = await content.readany()
                if not part:
                    break
        except TimeoutError:
            raise errors.request_timeout(self.settings.body_timeout) from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _finish(self, method: str, ctx: exchange.Context, status: int, elapsed: float) -> None:
        """Count and time a finished request, and write its log line."""
        route = self._routes.get(ctx.route)
        if route is None:
            route = self._routes[ctx.route] = _RouteMetrics(self.metrics, ctx.route)
        route.requests(method, status).inc()
        route.duration.observe(elapsed)
        if ctx.proxied and status != CLIENT_CLOSED:
            route.added.observe(max(0.0, elapsed - ctx.upstream_seconds))
            route.upstream.observe(ctx.upstream_seconds)
        if not logger.isEnabledFor(logging.INFO):
            return
        if ctx.route in _QUIET and status < 400:
            return
        fields: dict[str, Any] = {
            "method": method,
            "route": ctx.route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if ctx.proxied:
            fields["upstream_ms"] = round(ctx.upstream_seconds * 1000, 3)
        for name in (
            "model",
            "key_id",
            "cache",
            "prompt_tokens",
            "completion_tokens",
            "blocked_by",
        ):
            value = getattr(ctx, name)
            if value is not None:
                fields[name] = value
        if ctx.stream:
            fields["stream"] = True
        logger.info("request", extra={"fields": fields})

    # --------------------------------------------------------------- own routes

    async def health(self, call: exchange.Exchange) -> web.StreamResponse:
        """The gateway process is alive."""
        return exchange.json_response({"status": "ok"})

    async def ready(self, call: exchange.Exchange) -> web.StreamResponse:
        """Ready only when the engine's /health answers 200."""
        if await self.upstream.health():
            return exchange.json_response({"status": "ready"})
        raise errors.GatewayError(
            503,
            "The model server is not ready.",
            "server_error",
            "upstream_not_ready",
            headers=errors.retry_after(2),
        )

    async def own_metrics(self, call: exchange.Exchange) -> web.StreamResponse:
        """The gateway's metrics (behind the API keys with `apiKeys.protectMetrics`)."""
        rules = self.runtime
        if rules.policy.api_keys.protect_metrics:
            self.proxy.authenticate(call, rules)
        body, content_type = self.metrics.render()
        return exchange.response(200, body, {"Content-Type": content_type})


class Service:
    """A started gateway behind aiohttp's server; `stop()` ends both."""

    def __init__(self, gateway: Gateway, runner: web.ServerRunner, port: int) -> None:
        self.gateway = gateway
        self.runner = runner
        self.port = port

    @classmethod
    async def start(
        cls, settings: config.Settings, registry: metrics.Metrics | None = None
    ) -> Service:
        """Load the policy, open the engine session, and listen on `settings.host`:`port`.

        Raises `ValueError` for an engine URL the gateway cannot use and
        `config.PolicyError` for an invalid policy file.
        """
        gateway = Gateway(settings, registry)
        try:
            await gateway.startup()
            runner, port = await connections.start(
                gateway.handle,
                settings.host,
                settings.port,
                settings.head_timeout,
                settings.shutdown_timeout,
            )
        except BaseException:
            await gateway.cleanup()
            raise
        return cls(gateway, runner, port)

    async def stop(self) -> None:
        """Stop listening, let requests in progress finish (`shutdown_timeout`), clean up."""
        try:
            await connections.stop(self.runner)
        finally:
            await self.gateway.cleanup()
