"""The checked proxy flow: what happens to a chat or completion request, in order.

`Proxy.generate` runs it: the API key, the body read as strict JSON and validated at
the edge (`validate`), the texts the model will read gathered (`texts`), the
request and token budgets, the input checks (on the event loop, or in the worker
processes for long texts), the semantic cache, the engine, then the output checks on
the whole answer or, streamed, incrementally (`sse.StreamFilter` through `pump`).
Two steps are written once and used by every path: `_verdict` records the findings
of a check and refuses the request on a block, and `_settle` counts the tokens the
engine reports, their cost, and charges them to the key's budget.

The routes passed through unchecked (`/v1/models`, `/v1/embeddings`,
`/metrics/engine`) share the API key, the engine call and the pass-through of its
answer. Every failure is an `errors.GatewayError`, answered by the request layer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from llm_serving import policy
from llm_serving.gateway import (
    auth,
    cache,
    checks,
    config,
    connections,
    embed,
    errors,
    exchange,
    fastjson,
    metrics,
    pump,
    runtime,
    sse,
    texts,
    upstream,
    validate,
    workers,
)
from llm_serving.guardrails import pipeline, tokens

logger = logging.getLogger(__name__)

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"
_JSON = exchange.JSON
#: Answer parameters that return token ids, which the output checks cannot read.
_TOKEN_ID_OUTPUTS = ("return_token_ids", "return_tokens_as_token_ids")


class Proxy:
    """The routes that reach the engine, checked or passed through."""

    def __init__(
        self,
        settings: config.Settings,
        registry: metrics.Metrics,
        engine: upstream.Upstream,
        policies: runtime.Policies,
        pool: workers.Pool | None,
    ) -> None:
        self.settings = settings
        self.metrics = registry
        self.engine = engine
        self.policies = policies
        self.workers = pool
        self._input_seconds = registry.guardrail_duration.labels("input")
        self._output_seconds = registry.guardrail_duration.labels("output")

    # ------------------------------------------------------------------ shared steps

    def authenticate(self, call: exchange.Exchange, rules: runtime.Runtime) -> str | None:
        """The key id of the caller, or None when keys are off; 401 without a valid key."""
        if not rules.policy.api_keys.enabled:
            return None
        headers = call.request.headers
        key_id = self.policies.keys.authenticate(auth.bearer_token(headers.get("Authorization")))
        if key_id is None:
            self.metrics.auth_failures.inc()
            raise errors.unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>'."
                if "Authorization" not in headers
                else "Invalid API key."
            )
        call.ctx.key_id = key_id
        return key_id

    def _rate_limit(self, rules: runtime.Runtime, key_id: str | None, prompt_tokens: int) -> None:
        if key_id is None or rules.limiter is None:
            return
        refused = rules.limiter.acquire(key_id, prompt_tokens)
        if refused is not None:
            limit, wait = refused
            self.metrics.rate_limited.labels(limit).inc()
            raise errors.rate_limited(limit, wait)

    @staticmethod
    def _read_json(call: exchange.Exchange) -> dict[str, Any]:
        """The request body as a strict JSON object (415, 400 otherwise)."""
        content_type = call.content_type
        if content_type != _JSON and not content_type.endswith("+json"):
            raise errors.unsupported_media_type(call.request.headers.get("Content-Type", ""))
        try:
            body = fastjson.loads_request(call.body)
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

    def _verdict(
        self,
        ctx: exchange.Context,
        stage: str,
        findings: list[pipeline.Finding] | tuple[pipeline.Finding, ...],
        blocked: pipeline.Finding | None = None,
    ) -> None:
        """Record a check's findings; refuse the request (400) on a block."""
        for finding in findings:
            self.metrics.guardrail_verdicts.labels(stage, finding.check, finding.action.value).inc()
        if blocked is not None:
            ctx.blocked_by = blocked.check
            raise errors.guardrail_violation(blocked)

    def _settle(
        self,
        ctx: exchange.Context,
        rules: runtime.Runtime,
        usage: sse.Usage | None,
        key_id: str | None,
        estimate: int,
    ) -> None:
        """Count the tokens the engine reported and their cost; charge the key's budget."""
        if usage is None:
            return
        model = ctx.model or "unknown"
        ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        self.metrics.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.metrics.completion_tokens.labels(model).inc(usage.completion_tokens)
        pricing = rules.policy.pricing
        if pricing.input_per_million_tokens:
            self.metrics.cost.labels(model, "input").inc(
                usage.prompt_tokens * pricing.input_per_million_tokens / 1e6
            )
        if pricing.output_per_million_tokens:
            self.metrics.cost.labels(model, "output").inc(
                usage.completion_tokens * pricing.output_per_million_tokens / 1e6
            )
        if key_id is not None and rules.limiter is not None:
            rules.limiter.charge(key_id, usage.prompt_tokens + usage.completion_tokens - estimate)

    async def _send(
        self,
        call: exchange.Exchange,
        rules: runtime.Runtime,
        path: str,
        body: bytes | None,
        method: str | None = None,
    ) -> upstream.EngineResponse:
        call.ctx.proxied = True
        headers = self.engine.headers(
            call.request.headers, call.ctx.request_id, not rules.policy.api_keys.enabled
        )
        if body is not None:
            headers["Content-Type"] = _JSON
        started = time.perf_counter()
        try:
            return await self.engine.send(method or call.request.method, path, headers, body)
        except errors.GatewayError as exc:
            self.metrics.upstream_errors.labels(exc.code or "error").inc()
            raise
        finally:
            call.ctx.upstream_seconds += time.perf_counter() - started

    async def _read(self, ctx: exchange.Context, response: upstream.EngineResponse) -> bytes:
        started = time.perf_counter()
        try:
            return await response.read()
        except errors.GatewayError as exc:
            self.metrics.upstream_errors.labels(exc.code or "error").inc()
            raise
        finally:
            ctx.upstream_seconds += time.perf_counter() - started

    @staticmethod
    def _passthrough(response: upstream.EngineResponse, body: bytes) -> web.Response:
        content_type = response.headers.get("Content-Type", _JSON)
        if response.status >= 400 and not content_type.startswith(_JSON):
            raise errors.GatewayError(
                response.status,
                f"The model server answered HTTP {response.status}.",
                "server_error" if response.status >= 500 else "invalid_request_error",
                "upstream_error",
            )
        return exchange.response(response.status, body, {"Content-Type": content_type})

    async def _relay(
        self, call: exchange.Exchange, rules: runtime.Runtime, path: str, body: bytes | None
    ) -> tuple[upstream.EngineResponse, bytes]:
        response = await self._send(call, rules, path, body)
        try:
            return response, await self._read(call.ctx, response)
        finally:
            response.close()

    # ------------------------------------------------------------ unchecked routes

    async def models(self, call: exchange.Exchange) -> web.StreamResponse:
        """GET /v1/models: the engine's model list."""
        rules = self.policies.current
        self.authenticate(call, rules)
        return self._passthrough(*await self._relay(call, rules, MODELS, None))

    async def embeddings(self, call: exchange.Exchange) -> web.StreamResponse:
        """POST /v1/embeddings: passed through after the API key and the request budget."""
        rules = self.policies.current
        key_id = self.authenticate(call, rules)
        body = self._read_json(call)
        if isinstance(body.get("model"), str):
            call.ctx.model = body["model"]
        self._rate_limit(rules, key_id, 0)
        return self._passthrough(*await self._relay(call, rules, EMBEDDINGS, call.body))

    async def engine_metrics(self, call: exchange.Exchange) -> web.StreamResponse:
        """GET /metrics/engine: the engine's metrics (behind the API keys when protected)."""
        rules = self.policies.current
        if rules.policy.api_keys.protect_metrics:
            self.authenticate(call, rules)
        response, body = await self._relay(call, rules, "/metrics", None)
        call.ctx.proxied = False  # a scrape, not a model request
        content_type = response.headers.get("Content-Type", "text/plain")
        return exchange.response(response.status, body, {"Content-Type": content_type})

    # -------------------------------------------------------------- checked routes

    async def chat(self, call: exchange.Exchange) -> web.StreamResponse:
        """POST /v1/chat/completions."""
        return await self.generate(call, chat=True)

    async def completions(self, call: exchange.Exchange) -> web.StreamResponse:
        """POST /v1/completions."""
        return await self.generate(call, chat=False)

    async def generate(self, call: exchange.Exchange, chat: bool) -> web.StreamResponse:
        """The checked flow (see the module docstring)."""
        rules = self.policies.current
        ctx = call.ctx
        route = CHAT if chat else COMPLETIONS
        key_id = self.authenticate(call, rules)
        raw = call.body
        body = self._read_json(call)
        if validate.request(body, chat):
            raw = b""  # a boolean was normalised: the body must be serialised again
        model = body.get("model")
        ctx.model = model if isinstance(model, str) else self.settings.model_name
        ctx.stream = body.get("stream") is True
        if rules.output_guard is not None:
            for name in _TOKEN_ID_OUTPUTS:
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
        if rules.limiter is not None and rules.limiter.tokens_per_minute is not None:
            # A pre-charge, corrected by the engine's usage: the estimate, never a tokenizer
            # run over a long prompt on the event loop.
            estimate = sum(tokens.estimate(slot.text) for slot in slots)
        self._rate_limit(rules, key_id, estimate)
        if await self._check_input(ctx, rules, slots):
            raw = b""  # redacted: the body must be serialised again

        lookup: cache.RequestKey | None = None
        vector: embed.Vector | None = None
        if rules.cache is not None:
            lookup = cache.request_key(route, body, rules.policy.cache.cache_non_deterministic)
            if lookup is not None:
                hit, vector = await self._cache_lookup(rules, rules.cache, lookup)
                ctx.cache = hit.headers["X-Cache"] if hit is not None else "miss"
                if hit is not None:
                    return hit
        if ctx.stream:
            return await self._stream(call, rules, route, body, chat, key_id, estimate)

        response, answer = await self._relay(call, rules, route, raw or _dumps(body))
        if response.status != 200:
            return self._passthrough(response, answer)
        out, usage = await self._check_output(ctx, rules, answer, chat)
        self._settle(ctx, rules, usage, key_id, estimate)
        headers = {"Content-Type": _JSON}
        if rules.cache is not None:
            headers["X-Cache"] = "miss" if lookup is not None else "bypass"
            if lookup is not None:
                prompt, completion = (
                    (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
                )
                rules.cache.put(lookup, vector, cache.CachedResponse(out, prompt, completion))
                self.metrics.cache_entries.set(len(rules.cache))
        return exchange.response(200, out, headers)

    async def _check_input(
        self, ctx: exchange.Context, rules: runtime.Runtime, slots: list[texts.Slot]
    ) -> bool:
        """The input checks, then the judge; True if a redaction changed the request body."""
        guard = rules.input_guard
        if guard is None:
            return False
        plan = checks.plan_request(slots, rules.policy.limits)
        if plan.refused is not None:
            self._verdict(ctx, "input", [plan.refused], plan.refused)
        started = time.perf_counter()
        try:
            scored = min(plan.chars, rules.policy.limits.max_checked_chars)
            if self.workers is not None and scored > self.settings.offload_chars:
                self.metrics.offloaded_checks.labels("input").inc()
                result = await self.workers.check_request(rules.policy, plan.texts, plan.windows)
            else:
                result = guard.check_request(plan.texts, plan.windows)
        finally:
            self._input_seconds.observe(time.perf_counter() - started)
        findings, blocked, changed = checks.apply_request(slots, plan, result)
        self._verdict(ctx, "input", findings, blocked)
        if not rules.policy.input.judge.enabled:
            return changed
        started = time.perf_counter()
        try:
            text = "\n\n".join(slot.current for slot in slots)
            finding = await guard.judge(self.engine.session, text)
        finally:
            self.metrics.guardrail_duration.labels("judge").observe(time.perf_counter() - started)
        if finding is not None:
            block = finding if finding.action is policy.Action.BLOCK else None
            self._verdict(ctx, "judge", [finding], block)
        return changed

    async def _cache_lookup(
        self, rules: runtime.Runtime, response_cache: cache.SemanticCache, lookup: cache.RequestKey
    ) -> tuple[web.Response | None, embed.Vector | None]:
        """A response from the cache, or None and the embedding computed for storing later."""
        entry = response_cache.get_exact(lookup.exact)
        kind = "exact"
        vector: embed.Vector | None = None
        if entry is None and lookup.text is not None and rules.embedder is not None:
            try:
                vector = await rules.embedder.embed(lookup.text)
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
        return exchange.response(200, entry.response.body, headers), vector

    async def _check_output(
        self, ctx: exchange.Context, rules: runtime.Runtime, raw: bytes, chat: bool
    ) -> tuple[bytes, sse.Usage | None]:
        """The output checks on a whole answer; the answer to send and the usage reported."""
        try:
            data = fastjson.loads(raw)
        except (fastjson.JSONDecodeError, UnicodeDecodeError):
            raise errors.upstream_failed("the response is not JSON") from None
        if not isinstance(data, dict):
            raise errors.upstream_failed("the response is not a JSON object")
        usage = sse.usage_of(data.get("usage"))
        guard = rules.output_guard
        if guard is None:
            return raw, usage
        started = time.perf_counter()
        try:
            limits = rules.policy.limits
            chars = min(checks.answer_chars(data, chat), limits.max_checked_chars)
            if self.workers is not None and chars > self.settings.offload_chars:
                self.metrics.offloaded_checks.labels("output").inc()
                result, new = await self.workers.check_answer(rules.policy, raw, chat)
            else:
                result = checks.check_answer(guard, data, chat, limits)
                new = fastjson.dumps(data) if result.changed else None
        finally:
            self._output_seconds.observe(time.perf_counter() - started)
        self._verdict(ctx, "output", result.findings, result.blocked)
        return raw if new is None else new, usage

    async def _stream(
        self,
        call: exchange.Exchange,
        rules: runtime.Runtime,
        route: str,
        body: dict[str, Any],
        chat: bool,
        key_id: str | None,
        estimate: int,
    ) -> web.StreamResponse:
        """Proxy an SSE stream, scanning each choice incrementally."""
        ctx = call.ctx
        options = body.get("stream_options")
        client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        if not client_wants_usage:
            body["stream_options"] = {**(options or {}), "include_usage": True}
        response = await self._send(call, rules, route, _dumps(body))
        try:
            content_type = response.headers.get("Content-Type", "")
            if response.status != 200 or not content_type.startswith("text/event-stream"):
                return self._passthrough(response, await self._read(ctx, response))
            headers = {
                **pump.SSE_HEADERS,
                "X-Request-Id": ctx.request_id,
                "Server": connections.SERVER,
            }
            out = pump.EventWriter(call.request, headers, self.settings.write_timeout)
            filter_ = sse.StreamFilter(
                rules.output_guard,
                chat,
                client_wants_usage,
                lambda found: self._verdict(ctx, "output", found),
                rules.policy.limits,
            )
            try:
                seconds = await pump.pump(
                    ctx,
                    response,
                    out,
                    filter_,
                    lambda: self.metrics.time_to_first_token.labels(ctx.model or "unknown").observe(
                        time.perf_counter() - ctx.started
                    ),
                    lambda error: self.metrics.upstream_errors.labels(error.code or "error").inc(),
                )
            except ConnectionResetError:  # the client left; the finally below aborts the engine
                ctx.client_gone = True
                return out.response
            except Exception:  # headers are sent: end the stream with an error event instead
                logger.exception("stream failed")
                with contextlib.suppress(ConnectionResetError):
                    await out.write_eof(
                        sse.encode(errors.internal(ctx.request_id).body()) + sse.DONE
                    )
                return out.response
            if filter_.guarded:
                self._output_seconds.observe(seconds)
            self._settle(ctx, rules, filter_.usage, key_id, estimate)
            return out.response
        finally:
            response.close()


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return fastjson.dumps(body)
    except fastjson.NotJSONError:
        raise errors.invalid_request(
            "The request body is nested too deeply.", code="invalid_json"
        ) from None
