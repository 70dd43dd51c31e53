"""The engine simulator's HTTP server: vLLM's OpenAI-compatible routes on aiohttp.

`llm-serving sim` answers like `python -m vllm.entrypoints.openai.api_server`:
POST /v1/chat/completions and /v1/completions (JSON or SSE streaming with
`data: {...}` chunks, `stream_options.include_usage`, and `data: [DONE]`),
POST /v1/embeddings, GET /v1/models, /health (503 during the start-up delay),
/version and /metrics (vLLM's metric names, from `metrics.py`). Response bodies
and error bodies have the keys and types of vLLM 0.32.0, checked by
tests/conformance/. Timing comes from the capacity model in `engine.py`; text
and token counts from the stated estimates in `text.py`.

Run it under a runner with `handler_cancellation=True` (as `main()` and aiohttp's
test server do) so that a client that disconnects while queued or generating is
removed from the engine at once; under a plain runner a gone client is noticed
between tokens, so a queued one leaves only when its turn comes.
"""

from __future__ import annotations

import base64
import logging
import struct
import time
import uuid
from typing import Any

from aiohttp import web

from llm_serving.sim import engine as sim_engine
from llm_serving.sim import generation as sim_generation
from llm_serving.sim import metrics as sim_metrics
from llm_serving.sim import protocol as sim_protocol
from llm_serving.sim import text as sim_text

logger = logging.getLogger(__name__)


def _require_ready(request: web.Request) -> None:
    if not request.app[sim_protocol.ENGINE_KEY].ready:
        raise sim_protocol.ApiError(
            503, "The engine is starting up; retry later.", "ServiceUnavailableError", None
        )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    config = request.app[sim_protocol.CONFIG_KEY]
    body = await sim_protocol.read_json(request)
    sim_protocol.check_model(body, config, generation=True)
    messages = sim_protocol.chat_messages(body)
    gen = sim_protocol.parse_generation(
        body,
        config,
        sim_text.chat_prompt_text(messages),
        sim_text.chat_prompt_tokens(messages),
        ("max_completion_tokens", "max_tokens"),
    )
    _require_ready(request)
    return await sim_generation.serve_generation(
        request, gen, sim_generation.Responder(chat=True, model=config.model)
    )


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions."""
    config = request.app[sim_protocol.CONFIG_KEY]
    body = await sim_protocol.read_json(request)
    sim_protocol.check_model(body, config, generation=True)
    prompt_text, prompt_tokens = sim_protocol.completion_prompt(body)
    gen = sim_protocol.parse_generation(body, config, prompt_text, prompt_tokens, ("max_tokens",))
    _require_ready(request)
    return await sim_generation.serve_generation(
        request, gen, sim_generation.Responder(chat=False, model=config.model)
    )


def _embedding_inputs(body: dict[str, Any]) -> list[tuple[str, int]]:
    raw = body.get("input")
    if raw is None:
        raise sim_protocol.missing("input")
    items: list[Any] = raw if isinstance(raw, list) else [raw]
    if items and all(isinstance(t, int) and not isinstance(t, bool) for t in items):
        items = [items]
    inputs: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            inputs.append((item, max(1, sim_text.estimate_tokens(item))))
        elif isinstance(item, list) and all(isinstance(t, int) for t in item):
            inputs.append((" ".join(str(t) for t in item), max(1, len(item))))
        else:
            raise sim_protocol.param_error(
                "input", "...", "input must be a string, token ids or a list of them"
            )
    if not inputs:
        raise sim_protocol.param_error("input", "[]", "input must not be empty")
    return inputs


async def embeddings(request: web.Request) -> web.StreamResponse:
    """POST /v1/embeddings: feature-hashing vectors through the engine's queue and prefill."""
    config = request.app[sim_protocol.CONFIG_KEY]
    engine = request.app[sim_protocol.ENGINE_KEY]
    body = await sim_protocol.read_json(request)
    sim_protocol.check_model(body, config, generation=False)
    inputs = _embedding_inputs(body)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise sim_protocol.param_error(
            "encoding_format", encoding, "encoding_format must be float or base64"
        )
    for _, tokens in inputs:
        if tokens > config.max_model_len:
            raise sim_protocol.param_error(
                "input_tokens",
                tokens,
                f"This model's maximum context length is {config.max_model_len} tokens. "
                f"However, you requested {tokens} tokens in the input for embedding "
                "generation. Please reduce the length of the input.",
            )
    _require_ready(request)
    data: list[dict[str, Any]] = []
    total = 0
    for index, (text, tokens) in enumerate(inputs):
        seq = engine.submit(tokens, 0)
        reason = "abort"
        try:
            await engine.prefill(seq)
            reason = "stop"
        finally:
            engine.finish(seq, reason)
        vector = sim_text.embed(text, config.embedding_dim)
        value: list[float] | str = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"index": index, "object": "embedding", "embedding": value})
        total += tokens
    body_out = {
        "id": "embd-" + uuid.uuid4().hex[:16],
        "object": "list",
        "created": int(time.time()),
        "model": config.model,
        "data": data,
        "usage": {
            "prompt_tokens": total,
            "total_tokens": total,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
    }
    return web.json_response(body_out, dumps=sim_protocol.dumps)


async def models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models, with vLLM's `max_model_len`, `root` and permission entry."""
    config = request.app[sim_protocol.CONFIG_KEY]
    created = int(time.time())
    card = {
        "id": config.model,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": config.root or config.model,
        "parent": None,
        "max_model_len": config.max_model_len,
        "permission": [
            {
                "id": "modelperm-" + uuid.uuid4().hex[:16],
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }
    return web.json_response({"object": "list", "data": [card]}, dumps=sim_protocol.dumps)


async def health(request: web.Request) -> web.StreamResponse:
    """GET /health: 200 with an empty body once started, 503 before."""
    return web.Response(status=200 if request.app[sim_protocol.ENGINE_KEY].ready else 503)


async def version(request: web.Request) -> web.StreamResponse:
    """GET /version."""
    del request
    return web.json_response({"version": sim_protocol.SIM_VERSION})


async def metrics(request: web.Request) -> web.StreamResponse:
    """GET /metrics in Prometheus text format."""
    payload = request.app[sim_protocol.ENGINE_KEY].metrics.exposition()
    return web.Response(
        body=payload, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


@web.middleware
async def _errors(request: web.Request, handler: sim_protocol.Handler) -> web.StreamResponse:
    """vLLM-shaped errors; FastAPI's {"detail": ...} for unknown routes and methods."""
    try:
        return await handler(request)
    except sim_protocol.ApiError as exc:
        return exc.response()
    except web.HTTPNotFound:
        return web.json_response({"detail": "Not Found"}, status=404, dumps=sim_protocol.dumps)
    except web.HTTPMethodNotAllowed as exc:
        return web.json_response(
            {"detail": "Method Not Allowed"},
            dumps=sim_protocol.dumps,
            status=405,
            headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
        )
    except web.HTTPRequestEntityTooLarge:
        return sim_protocol.error_response(413, "Request body too large.", "BadRequestError")
    except web.HTTPException:
        raise
    except Exception:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return sim_protocol.error_response(500, "Internal server error.", "InternalServerError")


def build_app(config: sim_engine.SimConfig) -> web.Application:
    """The simulator as an aiohttp application (its engine starts with the app)."""
    app = web.Application(middlewares=[_errors], client_max_size=sim_protocol.MAX_BODY_BYTES)
    engine = sim_engine.Engine(config, sim_metrics.SimMetrics(config.model, config.max_model_len))
    app[sim_protocol.CONFIG_KEY] = config
    app[sim_protocol.ENGINE_KEY] = engine

    async def on_startup(app: web.Application) -> None:
        app[sim_protocol.ENGINE_KEY].start()

    app.on_startup.append(on_startup)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    return app
