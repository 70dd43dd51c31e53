"""The gateway's request handling: an OpenAI-compatible reverse proxy with guardrails.

`Service.start(settings)` starts a `Gateway` behind the HTTP server of `httpd.py`;
`server.py` runs it until it is stopped. Routes:

- `POST /v1/chat/completions`, `POST /v1/completions`: API key and rate limits,
  input guardrails on every message (or the prompt), the semantic cache, then the
  engine; the answer goes through the output guardrails, incrementally when streamed.
- `POST /v1/embeddings`, `GET /v1/models`: API key, then passed through unchanged.
- `GET /health` (the gateway is alive), `GET /ready` (200 only when the engine's
  `/health` answers 200), `GET /metrics` (the gateway's own registry) and
  `GET /metrics/engine` (the engine's metrics, proxied, since the engine listens on
  loopback only).

Everything derived from the policy file (guards, limits, cache) is one immutable
`Runtime` swapped whole on reload, so a request sees one policy from start to end.
`Gateway.handle` routes every request, gives it an id (`X-Request-Id` in and out, and
in every log line), counts and times it, and turns every failure into an OpenAI-style
error, so a bad request never crashes the process nor gets a bare 500. A client that
disconnects cancels its handler (the server does that at once), and the handler's
`finally` closes the engine response, which aborts the generation upstream.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import dataclasses
import logging
import random
import re
import time
from typing import Any

from llm_serving import policy
from llm_serving.gateway import (
    auth,
    cache,
    checks,
    config,
    embed,
    errors,
    fastjson,
    httpd,
    jsonlog,
    metrics,
    sse,
    texts,
    upstream,
    validate,
    workers,
)
from llm_serving.guardrails import injection, pipeline, tokens

logger = logging.getLogger(__name__)

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_JSON = "application/json"
#: HTTP status logged and counted for a request whose client went away (nginx's convention).
CLIENT_CLOSED = 499
#: The route label of requests for a path the gateway does not serve.
UNMATCHED = "unmatched"


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Everything derived from one policy; replaced whole when the policy file changes."""

    policy: policy.GuardrailPolicy
    input_guard: pipeline.InputGuard | None
    output_guard: pipeline.OutputGuard | None
    limiter: auth.RateLimiter | None
    cache: cache.SemanticCache | None
    embedder: embed.Embedder | None


@dataclasses.dataclass
class RequestContext:
    """Per-request bookkeeping for metrics and the access log (never any text)."""

    request_id: str
    started: float
    route: str
    upstream_seconds: float = 0.0
    proxied: bool = False
    model: str | None = None
    key_id: str | None = None
    stream: bool = False
    cache: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    blocked_by: str | None = None
    client_gone: bool = False


_Route = collections.abc.Callable[
    [httpd.Request, RequestContext],
    collections.abc.Awaitable[httpd.Response | httpd.EventStream],
]


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


def _json(document: dict[str, Any]) -> httpd.Response:
    return httpd.Response(200, fastjson.dumps(document), {"Content-Type": _JSON})


class Gateway:
    """The state of one gateway process and its request handlers."""

    def __init__(self, settings: config.Settings, registry: metrics.Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = registry or metrics.Metrics()
        self.upstream = upstream.Upstream(settings.upstream, settings.upstream_connections)
        cpus = workers.pod_cpus() if settings.check_workers is None else settings.check_workers
        self.workers = (
            workers.Pool(cpus, settings.tokenizer, settings.check_timeout) if cpus > 0 else None
        )
        self.tokens = tokens.TokenCounter.from_path(
            str(settings.tokenizer) if settings.tokenizer else None
        )
        self.keys = auth.KeyStore()
        self._runtime: Runtime | None = None
        self._watcher = config.Watcher(settings.poll_interval)
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Metric children used on every checked request, bound once.
        self._input_seconds = self.metrics.guardrail_duration.labels("input")
        self._output_seconds = self.metrics.guardrail_duration.labels("output")
        self._routes: dict[str, _RouteMetrics] = {}
        self._handlers: dict[str, dict[str, _Route]] = {
            CHAT: {"POST": self.chat},
            COMPLETIONS: {"POST": self.completions},
            EMBEDDINGS: {"POST": self.embeddings},
            MODELS: {"GET": self.models},
            "/health": {"GET": self.health, "HEAD": self.health},
            "/ready": {"GET": self.ready, "HEAD": self.ready},
            "/metrics": {"GET": self.own_metrics},
            "/metrics/engine": {"GET": self.engine_metrics},
        }

    # ----------------------------------------------------------------- lifecycle

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the gateway was started on."""
        if self._loop is None:
            raise RuntimeError("gateway used before startup")
        return self._loop

    @property
    def runtime(self) -> Runtime:
        """The policy in force."""
        if self._runtime is None:
            raise RuntimeError("gateway used before startup")
        return self._runtime

    def _build_runtime(self, new: policy.GuardrailPolicy, old: Runtime | None) -> Runtime:
        """Construct guards, limiter and cache for a policy (runs on a worker thread)."""
        input_guard = output_guard = None
        if new.enabled:
            input_guard = pipeline.InputGuard(new.input, self.tokens)
            output_guard = pipeline.OutputGuard(new.output)
        keys = new.api_keys
        limiter = None
        if keys.enabled and (keys.requests_per_minute or keys.tokens_per_minute):
            if (
                old is not None
                and old.limiter is not None
                and old.limiter.same_limits(keys.requests_per_minute, keys.tokens_per_minute)
            ):
                limiter = old.limiter
            else:
                limiter = auth.RateLimiter(keys.requests_per_minute, keys.tokens_per_minute)
        response_cache: cache.SemanticCache | None = None
        embedder: embed.Embedder | None = None
        if new.cache.enabled:
            if old is not None and old.cache is not None and old.policy.cache == new.cache:
                response_cache, embedder = old.cache, old.embedder
            else:
                response_cache = cache.SemanticCache(
                    new.cache.max_entries,
                    new.cache.ttl_seconds,
                    new.cache.similarity_threshold,
                    on_evict=lambda reason: self.metrics.cache_evictions.labels(reason).inc(),
                )
                if new.cache.embedder is policy.EmbedderKind.OPENAI:
                    embedder = embed.OpenAIEmbedder(self.upstream.session, new.cache.embedder_url)
                elif old is not None and isinstance(old.embedder, embed.BuiltinEmbedder):
                    embedder = old.embedder
                else:
                    embedder = embed.BuiltinEmbedder()
        return Runtime(new, input_guard, output_guard, limiter, response_cache, embedder)

    async def apply_policy(self, new: policy.GuardrailPolicy) -> None:
        """Build and switch to a new policy; the old one stays if building fails."""
        loop = asyncio.get_running_loop()
        runtime = await loop.run_in_executor(None, self._build_runtime, new, self._runtime)
        self._runtime = runtime
        self.metrics.cache_entries.set(len(runtime.cache) if runtime.cache else 0)
        if runtime.embedder is not None:
            self._spawn(self._warm_up(runtime.embedder))

    async def _warm_up(self, embedder: embed.Embedder) -> None:
        try:
            await embedder.warm_up()
        except embed.EmbedderError as exc:
            self.metrics.embedder_errors.inc()
            logger.warning("embedder unavailable, cache uses exact matching only: %s", exc)

    async def reload_policy(self) -> None:
        """Re-read the policy file; keep the current policy if the new one is invalid."""
        path = self.settings.policy_file
        if path is None:
            return
        try:
            loop = asyncio.get_running_loop()
            new = await loop.run_in_executor(None, config.read_policy, path)
            await self.apply_policy(new)
        except Exception as exc:
            self.metrics.policy_reloads.labels("error").inc()
            logger.error(
                "policy %s rejected, keeping the previous one: %s",
                path,
                exc if isinstance(exc, config.PolicyError) else type(exc).__name__,
            )
            if not isinstance(exc, config.PolicyError):
                logger.debug("policy build failure", exc_info=True)
            return
        self.metrics.policy_reloads.labels("success").inc()
        self.metrics.policy_last_reload.set_to_current_time()
        logger.info("policy loaded from %s (guardrails %s)", path, new.enabled)

    async def reload_keys(self) -> None:
        """Re-read the mounted API key folder."""
        folder = self.settings.api_keys_dir
        if folder is None:
            return
        loop = asyncio.get_running_loop()
        self.keys = await loop.run_in_executor(None, auth.KeyStore.from_dir, folder)
        self.metrics.api_keys_loaded.set(len(self.keys))
        logger.info("%d API keys loaded", len(self.keys))

    def _spawn(self, coro: collections.abc.Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(30.0)
            response_cache = self.runtime.cache
            if response_cache is not None:
                response_cache.sweep()
                self.metrics.cache_entries.set(len(response_cache))

    async def startup(self) -> None:
        """Open the engine session, load the policy and keys, start the file watch."""
        self._loop = asyncio.get_running_loop()
        if self.settings.policy_file is not None:
            try:
                initial = config.read_policy(self.settings.policy_file)
            except config.PolicyError:
                self.metrics.policy_reloads.labels("error").inc()
                raise
            self.metrics.policy_reloads.labels("success").inc()
            self.metrics.policy_last_reload.set_to_current_time()
            self._watcher.add(self.settings.policy_file, self.reload_policy)
        else:
            initial = config.default_policy()
            logger.info("no policy file: default guardrails on")
        if injection.compiled():
            logger.info("prompt-injection scorer: compiled loops")
        else:
            logger.warning(
                "prompt-injection scorer: plain Python (the compiled module was not built); "
                "same verdicts, several times the CPU per prompt"
            )
        await self.upstream.start()
        await self.apply_policy(initial)
        if self.settings.api_keys_dir is not None:
            await self.reload_keys()
            self._watcher.add(self.settings.api_keys_dir, self.reload_keys)
        self._spawn(self._watcher.run())
        self._spawn(self._sweep())

    async def cleanup(self) -> None:
        """Stop background tasks and close the engine session."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.upstream.close()
        if self.workers is not None:
            self.workers.close()

    # ------------------------------------------------------------------ routing

    def body_limit(self) -> int:
        """The largest request body kept, in bytes (the policy's `maxBodyBytes`)."""
        return self.runtime.policy.max_body_bytes

    async def handle(self, request: httpd.Request) -> httpd.Response | httpd.EventStream:
        """Route a request; request id, metrics, access log, OpenAI-style errors for all."""
        started = time.perf_counter()
        ctx = RequestContext(_request_id(request.headers.get("X-Request-Id")), started, UNMATCHED)
        token = jsonlog.request_id.set(ctx.request_id)
        self.metrics.in_flight.inc()
        status = 500
        try:
            response: httpd.Response | httpd.EventStream
            try:
                response = await self._dispatch(request, ctx)
            except errors.GatewayError as exc:
                response = httpd.error_response(exc)
            except ConnectionResetError:
                status = CLIENT_CLOSED
                self.metrics.client_disconnects.labels(ctx.route).inc()
                raise
            except Exception:
                logger.exception("unhandled error")
                response = httpd.error_response(errors.internal(ctx.request_id))
            if isinstance(response, httpd.Response):
                response.headers["X-Request-Id"] = ctx.request_id
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
            self.loop.call_soon(self._finish, request.method, ctx, status, elapsed)
            self.metrics.in_flight.dec()
            jsonlog.request_id.reset(token)

    async def _dispatch(
        self, request: httpd.Request, ctx: RequestContext
    ) -> httpd.Response | httpd.EventStream:
        methods = self._handlers.get(request.path)
        if methods is None:
            raise errors.not_found(request.path)
        ctx.route = request.path
        handler = methods.get(request.method)
        if handler is None:
            raise errors.method_not_allowed(request.method, frozenset(methods))
        return await handler(request, ctx)

    def _finish(self, method: str, ctx: RequestContext, status: int, elapsed: float) -> None:
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
        if ctx.route in ("/health", "/ready", "/metrics", "/metrics/engine") and status < 400:
            return  # probes and scrapes would drown the log
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

    # ------------------------------------------------------------------- helpers

    def _authenticate(
        self, request: httpd.Request, ctx: RequestContext, runtime: Runtime
    ) -> str | None:
        if not runtime.policy.api_keys.enabled:
            return None
        key_id = self.keys.authenticate(auth.bearer_token(request.headers.get("Authorization")))
        if key_id is None:
            self.metrics.auth_failures.inc()
            missing = "Authorization" not in request.headers
            raise errors.unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>'."
                if missing
                else "Invalid API key."
            )
        ctx.key_id = key_id
        return key_id

    def _rate_limit(self, runtime: Runtime, key_id: str | None, prompt_tokens: int) -> None:
        if key_id is None or runtime.limiter is None:
            return
        refused = runtime.limiter.acquire(key_id, prompt_tokens)
        if refused is not None:
            limit, wait = refused
            self.metrics.rate_limited.labels(limit).inc()
            raise errors.rate_limited(limit, wait)

    @staticmethod
    def _read_json(request: httpd.Request, runtime: Runtime) -> dict[str, Any]:
        """The request body as a JSON object, enforcing content type and size."""
        content_type = request.content_type
        if content_type != _JSON and not content_type.endswith("+json"):
            raise errors.unsupported_media_type(request.headers.get("Content-Type", ""))
        if request.too_large:
            raise errors.body_too_large(runtime.policy.max_body_bytes)
        try:
            body = fastjson.loads_request(request.body)
        except fastjson.NotJSONError as exc:
            raise errors.invalid_request(
                f"The request body is not valid JSON: {exc.msg}.", code="invalid_json"
            ) from None
        except (fastjson.JSONDecodeError, UnicodeDecodeError):
            raise errors.invalid_request(
                "The request body is not valid JSON.", code="invalid_json"
            ) from None
        if not isinstance(body, dict):
            raise errors.invalid_request(
                "The request body must be a JSON object.", code="invalid_json"
            )
        return body

    def _record(self, stage: str, findings: tuple[pipeline.Finding, ...]) -> None:
        for finding in findings:
            self.metrics.guardrail_verdicts.labels(stage, finding.check, finding.action.value).inc()

    async def _send(
        self,
        request: httpd.Request,
        ctx: RequestContext,
        path: str,
        body: bytes | None,
        runtime: Runtime,
    ) -> upstream.EngineResponse:
        ctx.proxied = True
        headers = self.upstream.headers(
            request.headers, ctx.request_id, not runtime.policy.api_keys.enabled
        )
        if body is not None:
            headers["Content-Type"] = _JSON
        started = time.perf_counter()
        try:
            return await self.upstream.send(request.method, path, headers, body)
        except errors.GatewayError as exc:
            self.metrics.upstream_errors.labels(exc.code or "error").inc()
            raise
        finally:
            ctx.upstream_seconds += time.perf_counter() - started

    async def _read_upstream(self, ctx: RequestContext, response: upstream.EngineResponse) -> bytes:
        started = time.perf_counter()
        try:
            return await response.read()
        except errors.GatewayError as exc:
            self.metrics.upstream_errors.labels(exc.code or "error").inc()
            raise
        finally:
            ctx.upstream_seconds += time.perf_counter() - started

    @staticmethod
    def _passthrough(response: upstream.EngineResponse, body: bytes) -> httpd.Response:
        content_type = response.headers.get("Content-Type", _JSON)
        if response.status >= 400 and not content_type.startswith(_JSON):
            raise errors.GatewayError(
                response.status,
                f"The model server answered HTTP {response.status}.",
                "server_error" if response.status >= 500 else "invalid_request_error",
                "upstream_error",
            )
        return httpd.Response(response.status, body, {"Content-Type": content_type})

    def _count_tokens(self, ctx: RequestContext, runtime: Runtime, usage: sse.Usage) -> None:
        model = ctx.model or "unknown"
        ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        self.metrics.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.metrics.completion_tokens.labels(model).inc(usage.completion_tokens)
        pricing = runtime.policy.pricing
        if pricing.input_per_million_tokens:
            self.metrics.cost.labels(model, "input").inc(
                usage.prompt_tokens * pricing.input_per_million_tokens / 1e6
            )
        if pricing.output_per_million_tokens:
            self.metrics.cost.labels(model, "output").inc(
                usage.completion_tokens * pricing.output_per_million_tokens / 1e6
            )

    # ------------------------------------------------------------ simple routes

    async def health(self, request: httpd.Request, ctx: RequestContext) -> httpd.Response:
        """The gateway process is alive."""
        return _json({"status": "ok"})

    async def ready(self, request: httpd.Request, ctx: RequestContext) -> httpd.Response:
        """Ready only when the engine's /health answers 200."""
        if await self.upstream.health():
            return _json({"status": "ready"})
        raise errors.GatewayError(
            503,
            "The model server is not ready.",
            "server_error",
            "upstream_not_ready",
            headers=errors.retry_after(2),
        )

    def _protect_metrics(self, request: httpd.Request, ctx: RequestContext) -> None:
        runtime = self.runtime
        if runtime.policy.api_keys.protect_metrics:
            self._authenticate(request, ctx, runtime)

    async def own_metrics(self, request: httpd.Request, ctx: RequestContext) -> httpd.Response:
        """The gateway's metrics (behind the API keys with `apiKeys.protectMetrics`)."""
        self._protect_metrics(request, ctx)
        body, content_type = self.metrics.render()
        return httpd.Response(200, body, {"Content-Type": content_type})

    async def engine_metrics(self, request: httpd.Request, ctx: RequestContext) -> httpd.Response:
        """The engine's metrics, proxied (behind the API keys like the gateway's)."""
        self._protect_metrics(request, ctx)
        response = await self._send(request, ctx, "/metrics", None, self.runtime)
        try:
            body = await self._read_upstream(ctx, response)
        finally:
            response.close()
        ctx.proxied = False  # a scrape, not a model request
        content_type = response.headers.get("Content-Type", "text/plain")
        return httpd.Response(response.status, body, {"Content-Type": content_type})

    async def models(self, request: httpd.Request, ctx: RequestContext) -> httpd.Response:
        """The engine's model list."""
        runtime = self.runtime
        self._authenticate(request, ctx, runtime)
        response = await self._send(request, ctx, MODELS, None, runtime)
        try:
            body = await self._read_upstream(ctx, response)
        finally:
            response.close()
        return self._passthrough(response, body)

    async def embeddings(self, request: httpd.Request, ctx: RequestContext) -> httpd.Response:
        """Embeddings, passed through after authentication and the request budget."""
        runtime = self.runtime
        key_id = self._authenticate(request, ctx, runtime)
        body = self._read_json(request, runtime)
        if isinstance(body.get("model"), str):
            ctx.model = body["model"]
        self._rate_limit(runtime, key_id, 0)
        response = await self._send(request, ctx, EMBEDDINGS, request.body, runtime)
        try:
            raw = await self._read_upstream(ctx, response)
        finally:
            response.close()
        return self._passthrough(response, raw)

    # --------------------------------------------------------- checked routes

    async def chat(
        self, request: httpd.Request, ctx: RequestContext
    ) -> httpd.Response | httpd.EventStream:
        """POST /v1/chat/completions."""
        return await self._generate(request, ctx, chat=True)

    async def completions(
        self, request: httpd.Request, ctx: RequestContext
    ) -> httpd.Response | httpd.EventStream:
        """POST /v1/completions."""
        return await self._generate(request, ctx, chat=False)

    async def _check_input(
        self, ctx: RequestContext, runtime: Runtime, slots: list[texts.Slot]
    ) -> bool:
        """Run the input guardrails; True if a redaction changed the request body."""
        guard = runtime.input_guard
        if guard is None:
            return False
        plan = checks.plan_request(slots, runtime.policy.limits)
        if plan.refused is not None:
            self._verdict(ctx, "input", [plan.refused], plan.refused)
        started = time.perf_counter()
        try:
            scored = min(plan.chars, runtime.policy.limits.max_checked_chars)
            if self.workers is not None and scored > self.settings.offload_chars:
                self.metrics.offloaded_checks.labels("input").inc()
                result = await self.workers.check_request(runtime.policy, plan.texts, plan.windows)
            else:
                result = guard.check_request(plan.texts, plan.windows)
        finally:
            self._input_seconds.observe(time.perf_counter() - started)
        findings, blocked, changed = checks.apply_request(slots, plan, result)
        self._verdict(ctx, "input", findings, blocked)
        if not runtime.policy.input.judge.enabled:
            return changed
        started = time.perf_counter()
        try:
            finding = await guard.judge(
                self.upstream.session, "\n\n".join(slot.current for slot in slots)
            )
        finally:
            self.metrics.guardrail_duration.labels("judge").observe(time.perf_counter() - started)
        if finding is not None:
            self._record("judge", (finding,))
            if finding.action is policy.Action.BLOCK:
                ctx.blocked_by = finding.check
                raise errors.guardrail_violation(finding)
        return changed

    async def _generate(
        self, request: httpd.Request, ctx: RequestContext, chat: bool
    ) -> httpd.Response | httpd.EventStream:
        runtime = self.runtime
        route = CHAT if chat else COMPLETIONS
        key_id = self._authenticate(request, ctx, runtime)
        raw = request.body
        body = self._read_json(request, runtime)
        if validate.request(body, chat):
            raw = b""  # a boolean was normalised: the body must be serialised again
        model = body.get("model")
        ctx.model = model if isinstance(model, str) else self.settings.model_name
        stream = body.get("stream") is True
        ctx.stream = stream
        if runtime.output_guard is not None:
            for name in ("return_token_ids", "return_tokens_as_token_ids"):
                if body.get(name) is True:
                    raise errors.invalid_request(
                        f"'{name}' cannot be used with output guardrails: token ids "
                        "cannot be checked.",
                        "unsupported_parameter",
                        name,
                    )
        try:
            slots = texts.request_slots(body, chat)
        except texts.ShapeError as exc:
            raise errors.invalid_request(str(exc), param=exc.param) from None
        estimate = 0
        if runtime.limiter is not None and runtime.limiter.tokens_per_minute is not None:
            # A pre-charge, corrected by the engine's usage: the estimate, never a tokenizer
            # run over a long prompt on the event loop.
            estimate = sum(tokens.estimate(slot.text) for slot in slots)
        self._rate_limit(runtime, key_id, estimate)
        if await self._check_input(ctx, runtime, slots):
            raw = b""  # redacted: the body must be serialised again

        lookup: cache.RequestKey | None = None
        vector: embed.Vector | None = None
        if runtime.cache is not None:
            lookup = cache.request_key(route, body, runtime.policy.cache.cache_non_deterministic)
            if lookup is not None:
                hit, vector = await self._cache_lookup(runtime, runtime.cache, lookup)
                ctx.cache = hit.headers["X-Cache"] if hit is not None else "miss"
                if hit is not None:
                    return hit

        if stream:
            return await self._stream(request, ctx, runtime, route, body, chat, key_id, estimate)

        payload = raw or self._dumps(body)
        response = await self._send(request, ctx, route, payload, runtime)
        try:
            raw = await self._read_upstream(ctx, response)
        finally:
            response.close()
        if response.status != 200:
            return self._passthrough(response, raw)
        out, usage = await self._check_output(ctx, runtime, raw, chat)
        if usage is not None:
            self._count_tokens(ctx, runtime, usage)
            if key_id is not None and runtime.limiter is not None:
                runtime.limiter.charge(
                    key_id, usage.prompt_tokens + usage.completion_tokens - estimate
                )
        if runtime.cache is not None and lookup is not None:
            runtime.cache.put(
                lookup,
                vector,
                cache.CachedResponse(
                    out,
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                ),
            )
            self.metrics.cache_entries.set(len(runtime.cache))
        headers = {"Content-Type": _JSON}
        if runtime.cache is not None:
            headers["X-Cache"] = "miss" if lookup is not None else "bypass"
        return httpd.Response(200, out, headers)

    async def _cache_lookup(
        self, runtime: Runtime, response_cache: cache.SemanticCache, lookup: cache.RequestKey
    ) -> tuple[httpd.Response | None, embed.Vector | None]:
        """A response from the cache, or None and the embedding computed for storing later."""
        entry = response_cache.get_exact(lookup.exact)
        kind = "exact"
        vector: embed.Vector | None = None
        if entry is None and lookup.text is not None and runtime.embedder is not None:
            try:
                vector = await runtime.embedder.embed(lookup.text)
            except embed.EmbedderError as exc:
                self.metrics.embedder_errors.inc()
                logger.warning("embedding failed, exact matching only: %s", exc)
            if vector is not None:
                found = response_cache.get_similar(lookup.context, vector)
                if found is not None:
                    entry, kind = found[0], "semantic"
        if entry is None:
            self.metrics.cache_misses.inc()
            return None, vector
        self.metrics.cache_hits.labels(kind).inc()
        headers = {"Content-Type": _JSON, "X-Cache": f"hit_{kind}"}
        return httpd.Response(200, entry.response.body, headers), vector

    async def _check_output(
        self, ctx: RequestContext, runtime: Runtime, raw: bytes, chat: bool
    ) -> tuple[bytes, sse.Usage | None]:
        """Apply the output guardrails to each choice of a complete response."""
        try:
            data = fastjson.loads(raw)
        except (fastjson.JSONDecodeError, UnicodeDecodeError):
            raise errors.upstream_failed("the response is not JSON") from None
        if not isinstance(data, dict):
            raise errors.upstream_failed("the response is not a JSON object")
        usage: sse.Usage | None = None
        reported = data.get("usage")
        if isinstance(reported, dict):
            usage = sse.Usage(
                int(reported.get("prompt_tokens") or 0), int(reported.get("completion_tokens") or 0)
            )
        guard = runtime.output_guard
        if guard is None:
            return raw, usage
        started = time.perf_counter()
        try:
            limits = runtime.policy.limits
            chars = min(checks.answer_chars(data, chat), limits.max_checked_chars)
            if self.workers is not None and chars > self.settings.offload_chars:
                self.metrics.offloaded_checks.labels("output").inc()
                result, new = await self.workers.check_answer(runtime.policy, raw, chat)
            else:
                result = checks.check_answer(guard, data, chat, limits)
                new = fastjson.dumps(data) if result.changed else None
        finally:
            self._output_seconds.observe(time.perf_counter() - started)
        self._verdict(ctx, "output", result.findings, result.blocked)
        return raw if new is None else new, usage

    def _verdict(
        self,
        ctx: RequestContext,
        stage: str,
        findings: list[pipeline.Finding],
        blocked: pipeline.Finding | None,
    ) -> None:
        """Record findings; raise the 400 of the block, if any."""
        if findings:
            self._record(stage, tuple(findings))
        if blocked is not None:
            ctx.blocked_by = blocked.check
            raise errors.guardrail_violation(blocked)

    @staticmethod
    def _dumps(body: dict[str, Any]) -> bytes:
        try:
            return fastjson.dumps(body)
        except fastjson.NotJSONError:
            raise errors.invalid_request(
                "The request body is nested too deeply.", code="invalid_json"
            ) from None

    async def _stream(
        self,
        request: httpd.Request,
        ctx: RequestContext,
        runtime: Runtime,
        route: str,
        body: dict[str, Any],
        chat: bool,
        key_id: str | None,
        estimate: int,
    ) -> httpd.Response | httpd.EventStream:
        """Proxy an SSE stream, scanning each choice incrementally."""
        options = body.get("stream_options")
        client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        if not client_wants_usage:
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        response = await self._send(request, ctx, route, self._dumps(body), runtime)
        try:
            content_type = response.headers.get("Content-Type", "")
            if response.status != 200 or not content_type.startswith("text/event-stream"):
                raw = await self._read_upstream(ctx, response)
                return self._passthrough(response, raw)
            out = request.stream(200, {**_SSE_HEADERS, "X-Request-Id": ctx.request_id})
            filter_ = sse.StreamFilter(
                runtime.output_guard,
                chat,
                client_wants_usage,
                lambda f: self._record("output", f),
                runtime.policy.limits,
            )
            try:
                await self._pump(ctx, response, out, filter_)
            except ConnectionResetError:  # the client left; the finally below aborts the engine
                ctx.client_gone = True
                return out
            except Exception:  # headers are sent: end the stream with an error event instead
                logger.exception("stream failed")
                with contextlib.suppress(ConnectionResetError):
                    await out.write(sse.encode(errors.internal(ctx.request_id).body()) + sse.DONE)
                return out
            if filter_.usage is not None:
                usage = filter_.usage
                self._count_tokens(ctx, runtime, usage)
                if key_id is not None and runtime.limiter is not None:
                    runtime.limiter.charge(
                        key_id, usage.prompt_tokens + usage.completion_tokens - estimate
                    )
            return out
        finally:
            response.close()

    def _first_token(self, ctx: RequestContext) -> None:
        self.metrics.time_to_first_token.labels(ctx.model or "unknown").observe(
            time.perf_counter() - ctx.started
        )

    async def _pump(
        self,
        ctx: RequestContext,
        response: upstream.EngineResponse,
        out: httpd.EventStream,
        filter_: sse.StreamFilter,
    ) -> None:
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
                self.metrics.upstream_errors.labels(error.code or "error").inc()
                await out.write(sse.encode(error.body()) + sse.DONE)
                return
            now = time.perf_counter()
            ctx.upstream_seconds += now - started
            datas = splitter.feed(chunk) if chunk else splitter.close()
            results: list[sse.Output] = []
            for data in datas:
                result = filter_.feed(data)
                results.append(result)
                if not first_token and result.has_text and not filter_.done:
                    # The first text goes out at once; the rest of this read follows in
                    # one write once it is checked.
                    first_token = True
                    head = b"".join(event for earlier in results for event in earlier.events)
                    results.clear()
                    scan_seconds += time.perf_counter() - now
                    await out.write(head)
                    self._first_token(ctx)
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
                    self._first_token(ctx)
            if last:
                break
        if filter_.guarded:
            self._output_seconds.observe(scan_seconds)
        await out.write_eof(final)


class Service:
    """A started gateway behind its HTTP server; `stop()` ends both."""

    def __init__(self, gateway: Gateway, server: httpd.Server) -> None:
        self.gateway = gateway
        self.server = server

    @classmethod
    async def start(
        cls, settings: config.Settings, registry: metrics.Metrics | None = None
    ) -> Service:
        """Load the policy, open the engine pool, and listen on `settings.host`:`port`.

        Raises `ValueError` for an engine URL the gateway cannot use and
        `config.PolicyError` for an invalid policy file.
        """
        gateway = Gateway(settings, registry)
        server = httpd.Server(gateway.handle, gateway.body_limit)
        try:
            await gateway.startup()
            await server.start(settings.host, settings.port)
        except BaseException:
            await gateway.cleanup()
            raise
        return cls(gateway, server)

    @property
    def port(self) -> int:
        """The port listened on (useful when `settings.port` is 0)."""
        return self.server.port

    async def stop(self, grace: float = 30.0) -> None:
        """Stop listening, let requests in progress finish for up to `grace` s, clean up."""
        try:
            await self.server.close(grace)
        finally:
            await self.gateway.cleanup()
