"""The engine simulator's answer side: generate text and write it whole or as SSE chunks.

`serve_generation` runs a parsed request through the engine's capacity model and
answers with vLLM's response shapes: one JSON body, or `data: {...}` chunks with
`stream_options.include_usage` and `data: [DONE]`. A client that leaves is removed
from the engine.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from llm_serving.sim import engine as sim_engine
from llm_serving.sim import protocol as sim_protocol
from llm_serving.sim import text as sim_text

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Piece:
    """Text produced by one output token; the last piece carries the finish reason."""

    text: str
    finish_reason: str | None = None
    stop_reason: str | None = None


def _request_seed(engine: sim_engine.Engine, gen: sim_protocol.GenerationRequest) -> int:
    if gen.temperature == 0 or gen.seed is not None:
        return sim_text.request_seed(engine.config.seed, gen.prompt_text, gen.seed)
    return engine.random_seed()


async def _generate(
    engine: sim_engine.Engine,
    seq: sim_engine.Sequence,
    gen: sim_protocol.GenerationRequest,
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
            raise sim_protocol.ClientGoneError
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
    return sim_protocol.error_response(500, f"Engine simulator fault: {exc}", "InternalServerError")


class Responder:
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
            "system_fingerprint": sim_protocol.SYSTEM_FINGERPRINT,
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
            chunk["system_fingerprint"] = sim_protocol.SYSTEM_FINGERPRINT
        return chunk

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self._chunk([]) | {
            "usage": usage,
            "system_fingerprint": sim_protocol.SYSTEM_FINGERPRINT,
        }


async def serve_generation(
    request: web.Request, gen: sim_protocol.GenerationRequest, responder: Responder
) -> web.StreamResponse:
    """Run one request through the engine and answer it, as JSON or as an SSE stream.

    The sequence leaves the engine in `finally` whatever happens: finished, failed,
    or its client gone (the handler cancelled, a write reset, or the transport seen
    closing between tokens).
    """
    engine = request.app[sim_protocol.ENGINE_KEY]
    seq = engine.submit(gen.prompt_tokens, gen.max_tokens)
    outcome = ["abort"]
    try:
        if gen.stream:
            return await _stream(request, engine, seq, gen, responder, outcome)
        return await _respond(request, engine, seq, gen, responder, outcome)
    except (sim_protocol.ClientGoneError, ConnectionResetError):
        logger.info("client gone: request %s aborted", seq.request_id)
        return web.Response(status=499)
    finally:
        engine.finish(seq, outcome[0])


async def _respond(
    request: web.Request,
    engine: sim_engine.Engine,
    seq: sim_engine.Sequence,
    gen: sim_protocol.GenerationRequest,
    responder: Responder,
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
    return web.json_response(body, dumps=sim_protocol.dumps)


async def _stream(
    request: web.Request,
    engine: sim_engine.Engine,
    seq: sim_engine.Sequence,
    gen: sim_protocol.GenerationRequest,
    responder: Responder,
    outcome: list[str],
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)

    async def send(obj: dict[str, Any]) -> None:
        await resp.write(b"data: " + sim_protocol.dumps(obj).encode() + b"\n\n")

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
    except (sim_protocol.ClientGoneError, ConnectionResetError):
        logger.info("client gone: stream %s aborted", seq.request_id)
        return resp
    if gen.include_usage:
        await send(responder.usage_chunk(_usage(gen.prompt_tokens, seq.generated, False)))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
