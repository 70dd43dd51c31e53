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

import argparse
import base64
import dataclasses
import json
import logging
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

import llm_serving
from llm_serving.sim import engine as sim_engine
from llm_serving.sim import metrics as sim_metrics
from llm_serving.sim import text as sim_text

logger = logging.getLogger(__name__)

ENGINE_KEY = web.AppKey("sim_engine", sim_engine.Engine)
CONFIG_KEY = web.AppKey("sim_config", sim_engine.SimConfig)

SIM_VERSION = f"{llm_serving.__version__}+sim"
SYSTEM_FINGERPRINT = f"vllm-sim-{llm_serving.__version__}"
MAX_BODY_BYTES = 64 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error answered in vLLM's JSON shape: {"error": {message, type, param, code}}."""

    def __init__(
        self, status: int, message: str, err_type: str = "BadRequestError", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param

    def response(self) -> web.Response:
        """The error as an HTTP response."""
        return error_response(self.status, self.message, self.err_type, self.param)


class ClientGoneError(Exception):
    """The client closed its connection while its request was in the engine."""


def error_response(
    status: int, message: str, err_type: str, param: str | None = None
) -> web.Response:
    """vLLM's error body."""
    body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _param_error(name: str, value: Any, message: str) -> ApiError:
    return ApiError(400, f"{message} (parameter={name}, value={value})", "BadRequestError", name)


# -- request parsing ------------------------------------------------------------


@dataclasses.dataclass
class GenerationRequest:
    """The sampling parameters the simulator honours, validated."""

    prompt_text: str
    prompt_tokens: int
    max_tokens: int
    temperature: float
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool
    continuous_usage: bool
    ignore_eos: bool


async def _read_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(
            400,
            "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed",
            "Bad Request",
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        # pydantic's wording and location, as vLLM (FastAPI) reports it.
        loc = f"body.{exc.pos}"
        raise ApiError(
            400,
            f"1 validation error:\n  {{'type': 'json_invalid', 'loc': '{loc}', "
            f"'msg': 'JSON decode error', 'ctx': {{'error': '{exc.msg}'}}}}",
            "Bad Request",
            loc,
        ) from exc
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"1 validation error:\n  invalid UTF-8: {exc}", "Bad Request", "body"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(
            400, "1 validation error:\n  Input should be a valid dictionary", "Bad Request", "body"
        )
    return body


def _missing(field: str) -> ApiError:
    return ApiError(
        400,
        "1 validation error:\n  "
        f"{{'type': 'missing', 'loc': 'body.{field}', 'msg': 'Field required'}}",
        "Bad Request",
        f"body.{field}",
    )


def _check_model(body: dict[str, Any], config: sim_engine.SimConfig, generation: bool) -> None:
    """404 for another model name; vLLM words it differently for generation and pooling."""
    model = body.get("model")
    if model is not None and model != config.model:
        if generation:
            message = f"The model `{model}` does not exist. Valid aliases: {config.model}."
            raise ApiError(404, message, "NotFoundError", "model")
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", None)


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _param_error(name, value, f"{name} must be an integer")
    return value


def _parse_generation(
    body: dict[str, Any],
    config: sim_engine.SimConfig,
    prompt_text: str,
    prompt_tokens: int,
    token_params: tuple[str, ...],
) -> GenerationRequest:
    n = _optional_int(body, "n")
    if n is not None and n != 1:
        raise _param_error("n", n, "n must be 1: the engine simulator makes one choice")
    max_tokens: int | None = None
    for name in token_params:
        max_tokens = _optional_int(body, name)
        if max_tokens is not None:
            if max_tokens < 1:
                raise _param_error(
                    name, max_tokens, f"{name} must be at least 1, got {max_tokens}."
                )
            if max_tokens > config.max_model_len:
                raise _param_error(
                    "max_tokens",
                    max_tokens,
                    f"max_tokens={max_tokens} cannot be greater than max_model_len="
                    f"{config.max_model_len}. Please request fewer output tokens.",
                )
            break
    if prompt_tokens >= config.max_model_len:
        raise _param_error(
            "input_tokens",
            prompt_tokens,
            f"This model's maximum context length is {config.max_model_len} tokens. However, "
            f"your prompt contains at least {prompt_tokens} input tokens, which exceeds this "
            "limit even without any output tokens. Please reduce the length of the input prompt.",
        )
    room = config.max_model_len - prompt_tokens
    effective = room if max_tokens is None else min(max_tokens, room)

    temperature = body.get("temperature")
    if temperature is None:
        temperature = 1.0
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise _param_error("temperature", temperature, "temperature must be a number")
    if temperature < 0:
        raise _param_error(
            "temperature",
            float(temperature),
            f"temperature must be non-negative, got {temperature}.",
        )

    stop_raw = body.get("stop")
    if stop_raw is None:
        stop: list[str] = []
    elif isinstance(stop_raw, str):
        stop = [stop_raw]
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        stop = [s for s in stop_raw if s]
    else:
        raise _param_error("stop", stop_raw, "stop must be a string or a list of strings")

    stream = bool(body.get("stream", False))
    options = body.get("stream_options")
    if options is not None and not stream:
        raise _param_error(
            "stream_options", options, "Stream options can only be defined when `stream=True`."
        )
    if options is not None and not isinstance(options, dict):
        raise _param_error("stream_options", options, "stream_options must be an object")
    options = options or {}
    return GenerationRequest(
        prompt_text=prompt_text,
        prompt_tokens=prompt_tokens,
        max_tokens=effective,
        temperature=float(temperature),
        seed=_optional_int(body, "seed"),
        stop=stop,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        continuous_usage=bool(options.get("continuous_usage_stats", False)),
        ignore_eos=bool(body.get("ignore_eos", False)),
    )


def _completion_prompt(body: dict[str, Any]) -> tuple[str, int]:
    """Prompt text (as the seed) and its token count: a string or a list of token ids."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt:
        return prompt, sim_text.estimate_tokens(prompt)
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        return " ".join(str(t) for t in prompt), len(prompt)
    if isinstance(prompt, list) and len(prompt) > 1:
        raise _param_error(
            "prompt", f"<list of {len(prompt)}>", "the engine simulator takes one prompt a request"
        )
    raise ApiError(
        400,
        "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
        "BadRequestError",
        "prompt",
    )


def _chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _param_error("messages", "...", "messages must be a list of message objects")
    return messages


# -- generation ------------------------------------------------------------------


@dataclasses.dataclass
class Piece:
    """Text produced by one output token; the last piece carries the finish reason."""

    text: str
    finish_reason: str | None = None
    stop_reason: str | None = None


def _request_seed(engine: sim_engine.Engine, gen: GenerationRequest) -> int:
    if gen.temperature == 0 or gen.seed is not None:
        return sim_text.request_seed(engine.config.seed, gen.prompt_text, gen.seed)
    return engine.random_seed()


async def _generate(
    engine: sim_engine.Engine,
    seq: sim_engine.Sequence,
    gen: GenerationRequest,
    leading_space: bool,
    gone: Callable[[], bool],
) -> AsyncIterator[Piece]:
    """Run the sequence through the engine, one `Piece` per output token."""
    natural = None if gen.ignore_eos else engine.config.output_tokens
    limit = gen.max_tokens if natural is None else min(gen.max_tokens, natural)
    finish = "stop" if natural is not None and natural < gen.max_tokens else "length"
    words = sim_text.pseudo_word_stream(_request_seed(engine, gen))
    hold = max((len(s) for s in gen.stop), default=1) - 1
    text = ""
    emitted = 0
    for index in range(limit):
        if gone():
            raise ClientGoneError
        await engine.next_token(seq)
        text += sim_text.token_text(next(words), index, leading_space)
        if gen.stop:
            hits = [
                (pos, s) for s in gen.stop if (pos := text.find(s, max(0, emitted - hold))) >= 0
            ]
            if hits:
                pos, stop = min(hits)
                yield Piece(text[emitted:pos], "stop", stop)
                return
        if index == limit - 1:
            yield Piece(text[emitted:], finish)
            return
        safe = max(emitted, len(text) - hold) if gen.stop else len(text)
        yield Piece(text[emitted:safe])
        emitted = safe


def _usage(prompt_tokens: int, completion_tokens: int, details: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if details:
        usage["prompt_tokens_details"] = None
        usage["completion_tokens_details"] = None
    return usage


def _gone(request: web.Request) -> Callable[[], bool]:
    def check() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    return check


def _engine_fault_response(exc: Exception) -> web.Response:
    return error_response(500, f"Engine simulator fault: {exc}", "InternalServerError")


class _Responder:
    """Builds the chat or completion bodies and chunks in vLLM's shapes."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat = chat
        self.model = model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:16]
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    def full(self, text: str, finish: str | None, stop: str | None, usage: dict[str, Any]) -> Any:
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": None,
                    "audio": None,
                    "function_call": None,
                    "reasoning": None,
                },
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": stop,
                "token_ids": None,
                "routed_experts": None,
            }
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": stop,
                "token_ids": None,
                "prompt_logprobs": None,
                "prompt_token_ids": None,
                "routed_experts": None,
            }
        body: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "service_tier": None,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "usage": usage,
        }
        if self.chat:
            body |= {"prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None}
        body |= {"kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        return body

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def role_chunk(self) -> dict[str, Any]:
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        return self._chunk([choice]) | {"prompt_token_ids": None, "prompt_text": None}

    def piece_chunk(self, piece: Piece, usage_follows: bool) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.chat:
            choice = {
                "index": 0,
                "delta": {"content": piece.text},
                "logprobs": None,
                "finish_reason": piece.finish_reason,
            }
            if piece.finish_reason is not None:
                choice["stop_reason"] = piece.stop_reason
            choice["token_ids"] = None
        else:
            choice = {
                "index": 0,
                "text": piece.text,
                "logprobs": None,
                "finish_reason": piece.finish_reason,
                "stop_reason": piece.stop_reason,
                "prompt_token_ids": None,
                "token_ids": None,
            }
        chunk = self._chunk([choice])
        if piece.finish_reason is not None and not usage_follows:
            # vLLM puts the fingerprint on the last chunk: the usage chunk when there is one.
            chunk["system_fingerprint"] = SYSTEM_FINGERPRINT
        return chunk

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self._chunk([]) | {"usage": usage, "system_fingerprint": SYSTEM_FINGERPRINT}


async def _serve_generation(
    request: web.Request, gen: GenerationRequest, responder: _Responder
) -> web.StreamResponse:
    """Run one request through the engine and answer it, as JSON or as an SSE stream.

    The sequence leaves the engine in `finally` whatever happens: finished, failed,
    or its client gone (the handler cancelled, a write reset, or the transport seen
    closing between tokens).
    """
    engine = request.app[ENGINE_KEY]
    seq = engine.submit(gen.prompt_tokens, gen.max_tokens)
    outcome = ["abort"]
    try:
        if gen.stream:
            return await _stream(request, engine, seq, gen, responder, outcome)
        return await _respond(request, engine, seq, gen, responder, outcome)
    except (ClientGoneError, ConnectionResetError):
        logger.info("client gone: request %s aborted", seq.request_id)
        return web.Response(status=499)
    finally:
        engine.finish(seq, outcome[0])


async def _respond(
    request: web.Request,
    engine: sim_engine.Engine,
    seq: sim_engine.Sequence,
    gen: GenerationRequest,
    responder: _Responder,
    outcome: list[str],
) -> web.StreamResponse:
    parts: list[str] = []
    last = Piece("")
    try:
        async for piece in _generate(engine, seq, gen, not responder.chat, _gone(request)):
            parts.append(piece.text)
            last = piece
    except sim_engine.EngineFaultError as exc:
        outcome[0] = "error"
        logger.warning("injected fault in request %s: %s", seq.request_id, exc)
        return _engine_fault_response(exc)
    outcome[0] = last.finish_reason or "abort"
    usage = _usage(gen.prompt_tokens, seq.generated, details=True)
    body = responder.full("".join(parts), last.finish_reason, last.stop_reason, usage)
    return web.json_response(body, dumps=_dumps)


async def _stream(
    request: web.Request,
    engine: sim_engine.Engine,
    seq: sim_engine.Sequence,
    gen: GenerationRequest,
    responder: _Responder,
    outcome: list[str],
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)

    async def send(obj: dict[str, Any]) -> None:
        await resp.write(b"data: " + _dumps(obj).encode() + b"\n\n")

    first = True
    try:
        async for piece in _generate(engine, seq, gen, not responder.chat, _gone(request)):
            if first and responder.chat:
                await send(responder.role_chunk())
            first = False
            chunk = responder.piece_chunk(piece, usage_follows=gen.include_usage)
            if gen.include_usage and gen.continuous_usage:
                chunk["usage"] = _usage(gen.prompt_tokens, seq.generated, details=False)
            await send(chunk)
            if piece.finish_reason is not None:
                outcome[0] = piece.finish_reason
    except sim_engine.EngineFaultError as exc:
        outcome[0] = "error"
        logger.warning(
            "injected fault in request %s: dropping the stream (%s)", seq.request_id, exc
        )
        if request.transport is not None:
            request.transport.abort()
        return resp
    except (ClientGoneError, ConnectionResetError):
        logger.info("client gone: stream %s aborted", seq.request_id)
        return resp
    if gen.include_usage:
        await send(responder.usage_chunk(_usage(gen.prompt_tokens, seq.generated, False)))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


# -- handlers ---------------------------------------------------------------------


def _require_ready(request: web.Request) -> None:
    if not request.app[ENGINE_KEY].ready:
        raise ApiError(
            503, "The engine is starting up; retry later.", "ServiceUnavailableError", None
        )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    config = request.app[CONFIG_KEY]
    body = await _read_json(request)
    _check_model(body, config, generation=True)
    messages = _chat_messages(body)
    gen = _parse_generation(
        body,
        config,
        sim_text.chat_prompt_text(messages),
        sim_text.chat_prompt_tokens(messages),
        ("max_completion_tokens", "max_tokens"),
    )
    _require_ready(request)
    return await _serve_generation(request, gen, _Responder(chat=True, model=config.model))


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions."""
    config = request.app[CONFIG_KEY]
    body = await _read_json(request)
    _check_model(body, config, generation=True)
    prompt_text, prompt_tokens = _completion_prompt(body)
    gen = _parse_generation(body, config, prompt_text, prompt_tokens, ("max_tokens",))
    _require_ready(request)
    return await _serve_generation(request, gen, _Responder(chat=False, model=config.model))


def _embedding_inputs(body: dict[str, Any]) -> list[tuple[str, int]]:
    raw = body.get("input")
    if raw is None:
        raise _missing("input")
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
            raise _param_error(
                "input", "...", "input must be a string, token ids or a list of them"
            )
    if not inputs:
        raise _param_error("input", "[]", "input must not be empty")
    return inputs


async def embeddings(request: web.Request) -> web.StreamResponse:
    """POST /v1/embeddings: feature-hashing vectors through the engine's queue and prefill."""
    config = request.app[CONFIG_KEY]
    engine = request.app[ENGINE_KEY]
    body = await _read_json(request)
    _check_model(body, config, generation=False)
    inputs = _embedding_inputs(body)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _param_error("encoding_format", encoding, "encoding_format must be float or base64")
    for _, tokens in inputs:
        if tokens > config.max_model_len:
            raise _param_error(
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
    return web.json_response(body_out, dumps=_dumps)


async def models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models, with vLLM's `max_model_len`, `root` and permission entry."""
    config = request.app[CONFIG_KEY]
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
    return web.json_response({"object": "list", "data": [card]}, dumps=_dumps)


async def health(request: web.Request) -> web.StreamResponse:
    """GET /health: 200 with an empty body once started, 503 before."""
    return web.Response(status=200 if request.app[ENGINE_KEY].ready else 503)


async def version(request: web.Request) -> web.StreamResponse:
    """GET /version."""
    del request
    return web.json_response({"version": SIM_VERSION})


async def metrics(request: web.Request) -> web.StreamResponse:
    """GET /metrics in Prometheus text format."""
    payload = request.app[ENGINE_KEY].metrics.exposition()
    return web.Response(
        body=payload, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """vLLM-shaped errors; FastAPI's {"detail": ...} for unknown routes and methods."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPNotFound:
        return web.json_response({"detail": "Not Found"}, status=404, dumps=_dumps)
    except web.HTTPMethodNotAllowed as exc:
        return web.json_response(
            {"detail": "Method Not Allowed"},
            dumps=_dumps,
            status=405,
            headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
        )
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "Request body too large.", "BadRequestError")
    except web.HTTPException:
        raise
    except Exception:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "Internal server error.", "InternalServerError")


def build_app(config: sim_engine.SimConfig) -> web.Application:
    """The simulator as an aiohttp application (its engine starts with the app)."""
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY_BYTES)
    engine = sim_engine.Engine(config, sim_metrics.SimMetrics(config.model, config.max_model_len))
    app[CONFIG_KEY] = config
    app[ENGINE_KEY] = engine

    async def on_startup(app: web.Application) -> None:
        app[ENGINE_KEY].start()

    app.on_startup.append(on_startup)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    return app


def _parser() -> argparse.ArgumentParser:
    d = sim_engine.SimConfig()
    p = argparse.ArgumentParser(
        prog="llm-serving sim",
        description="A vLLM-compatible engine simulator: OpenAI routes, /health, /metrics "
        "with vLLM's metric names, and a capacity model so a queue builds under load.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--model", default=d.model, help="served model name (default: %(default)s)")
    p.add_argument(
        "--served-model-name",
        default=None,
        help="vLLM's spelling of the served model name; overrides --model when given",
    )
    p.add_argument(
        "--max-num-seqs",
        type=int,
        default=d.max_num_seqs,
        help="sequences decoded at once; more wait in a FIFO queue (default: %(default)s)",
    )
    p.add_argument(
        "--prefill-tokens-per-s",
        type=float,
        default=d.prefill_tokens_per_s,
        help="prompt tokens processed per second per sequence (default: %(default)s)",
    )
    p.add_argument(
        "--decode-tokens-per-s",
        type=float,
        default=d.decode_tokens_per_s,
        help="tokens per second of one sequence decoding alone (default: %(default)s)",
    )
    p.add_argument(
        "--decode-slowdown",
        type=float,
        default=d.decode_slowdown,
        help="per-token time grows by this fraction per extra running sequence "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-model-len",
        type=int,
        default=d.max_model_len,
        help="context length: prompt plus output tokens (default: %(default)s)",
    )
    p.add_argument(
        "--kv-cache-tokens",
        type=int,
        default=None,
        help="KV cache capacity in tokens (default: max-num-seqs x max-model-len)",
    )
    p.add_argument(
        "--output-tokens",
        type=int,
        default=d.output_tokens,
        help="tokens the simulated model writes before it stops by itself "
        "(finish_reason stop) unless max_tokens is lower (default: %(default)s)",
    )
    p.add_argument(
        "--startup-delay-s",
        type=float,
        default=d.startup_delay_s,
        help="seconds /health answers 503 after start (default: %(default)s)",
    )
    p.add_argument(
        "--fail-rate",
        type=float,
        default=d.fail_rate,
        help="fraction of requests that fail: 500, or a dropped stream (default: %(default)s)",
    )
    p.add_argument(
        "--embedding-dim",
        type=int,
        default=d.embedding_dim,
        help="length of /v1/embeddings vectors (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> sim_engine.SimConfig:
    """A SimConfig from parsed command-line arguments."""
    return sim_engine.SimConfig(
        model=args.served_model_name or args.model,
        max_num_seqs=args.max_num_seqs,
        prefill_tokens_per_s=args.prefill_tokens_per_s,
        decode_tokens_per_s=args.decode_tokens_per_s,
        decode_slowdown=args.decode_slowdown,
        max_model_len=args.max_model_len,
        kv_cache_tokens=args.kv_cache_tokens,
        output_tokens=args.output_tokens,
        startup_delay_s=args.startup_delay_s,
        fail_rate=args.fail_rate,
        seed=args.seed,
        embedding_dim=args.embedding_dim,
        root=args.model if args.served_model_name else None,
    )


def main(argv: list[str]) -> int:
    """`llm-serving sim`: serve until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logger.info(
        "serving %s on http://%s:%d (max_num_seqs=%d)",
        config.model,
        args.host,
        args.port,
        config.max_num_seqs,
    )
    web.run_app(
        build_app(config),
        host=args.host,
        port=args.port,
        handler_cancellation=True,
        print=None,
    )
    return 0
