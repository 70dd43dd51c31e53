"""The engine simulator's request side: vLLM's parameter checks and error bodies.

Parses the JSON of /v1/chat/completions and /v1/completions into a
`GenerationRequest` with the checks vLLM 0.32.0 makes and its error shapes
(`ApiError` renders `{"error": {"message", "type", "param", "code"}}` with vLLM's
status codes), checked against real vLLM in tests/conformance/. Also the constants
the other simulator modules share.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

import llm_serving
from llm_serving.sim import engine as sim_engine
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
    return web.json_response(body, status=status, dumps=dumps)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def param_error(name: str, value: Any, message: str) -> ApiError:
    return ApiError(400, f"{message} (parameter={name}, value={value})", "BadRequestError", name)


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


async def read_json(request: web.Request) -> dict[str, Any]:
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


def missing(field: str) -> ApiError:
    return ApiError(
        400,
        "1 validation error:\n  "
        f"{{'type': 'missing', 'loc': 'body.{field}', 'msg': 'Field required'}}",
        "Bad Request",
        f"body.{field}",
    )


def check_model(body: dict[str, Any], config: sim_engine.SimConfig, generation: bool) -> None:
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
        raise param_error(name, value, f"{name} must be an integer")
    return value


def parse_generation(
    body: dict[str, Any],
    config: sim_engine.SimConfig,
    prompt_text: str,
    prompt_tokens: int,
    token_params: tuple[str, ...],
) -> GenerationRequest:
    n = _optional_int(body, "n")
    if n is not None and n != 1:
        raise param_error("n", n, "n must be 1: the engine simulator makes one choice")
    max_tokens: int | None = None
    for name in token_params:
        max_tokens = _optional_int(body, name)
        if max_tokens is not None:
            if max_tokens < 1:
                raise param_error(name, max_tokens, f"{name} must be at least 1, got {max_tokens}.")
            if max_tokens > config.max_model_len:
                raise param_error(
                    "max_tokens",
                    max_tokens,
                    f"max_tokens={max_tokens} cannot be greater than max_model_len="
                    f"{config.max_model_len}. Please request fewer output tokens.",
                )
            break
    if prompt_tokens >= config.max_model_len:
        raise param_error(
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
        raise param_error("temperature", temperature, "temperature must be a number")
    if temperature < 0:
        raise param_error(
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
        raise param_error("stop", stop_raw, "stop must be a string or a list of strings")

    stream = bool(body.get("stream", False))
    options = body.get("stream_options")
    if options is not None and not stream:
        raise param_error(
            "stream_options", options, "Stream options can only be defined when `stream=True`."
        )
    if options is not None and not isinstance(options, dict):
        raise param_error("stream_options", options, "stream_options must be an object")
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


def completion_prompt(body: dict[str, Any]) -> tuple[str, int]:
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
        raise param_error(
            "prompt", f"<list of {len(prompt)}>", "the engine simulator takes one prompt a request"
        )
    raise ApiError(
        400,
        "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
        "BadRequestError",
        "prompt",
    )


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise param_error("messages", "...", "messages must be a list of message objects")
    return messages
