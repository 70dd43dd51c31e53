"""Test helpers for the gateway: a scripted OpenAI-compatible upstream and a gateway runner.

`ScriptedEngine` is a tiny aiohttp server speaking vLLM's routes whose answers,
stream chunking and delays each test sets, and which records what it received and
whether a stream it was sending got cancelled. `start_gateway` runs the real
gateway (`app.Service`, as `llm-serving gateway` does) on a real socket in front of
any upstream URL; `sim_stack` puts it in front of the engine simulator, `stack` in
front of a `ScriptedEngine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import test_utils, web
from multidict import CIMultiDict

from llm_serving.gateway import app, config
from llm_serving.sim import engine as sim_engine
from llm_serving.sim import protocol as sim_protocol
from llm_serving.sim import server as sim_server


@dataclasses.dataclass
class ScriptedEngine:
    """A controllable stand-in for vLLM."""

    model: str = "test-model"
    reply: str = "Hello there, how can I help?"
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    delay: float = 0.0
    healthy: bool = True
    status: int = 200
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    headers: list[CIMultiDict[str]] = dataclasses.field(default_factory=list)
    cancelled: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    received: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    finished_streams: int = 0
    calls: int = 0
    #: A whole answer to send as is (non-streamed chat and completions).
    document: dict[str, Any] | None = None
    #: Chunks to stream as is, each one event, then [DONE].
    events: list[dict[str, Any]] | None = None

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/v1/chat/completions", self.chat)
        application.router.add_post("/v1/completions", self.completions)
        application.router.add_post("/v1/embeddings", self.embeddings)
        application.router.add_get("/v1/models", self.models)
        application.router.add_get("/health", self.health)
        application.router.add_get("/metrics", self.metrics)
        return application

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.received.set()
        self.calls += 1
        self.requests.append(body)
        self.headers.append(CIMultiDict(request.headers))
        return body

    async def _wait(self) -> None:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def _usage(self, body: dict[str, Any], completion: int) -> dict[str, int]:
        prompt = len(json.dumps(body.get("messages") or body.get("prompt"))) // 4
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if self.status != 200:
            return web.json_response(
                {
                    "error": {
                        "message": "nope",
                        "type": "BadRequestError",
                        "param": None,
                        "code": 400,
                    }
                },
                status=self.status,
            )
        if body.get("stream"):
            return await self._stream(request, body, chat=True)
        await self._wait()
        if self.document is not None:
            return web.json_response(self.document)
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.reply},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": self._usage(body, 7),
            }
        )

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if body.get("stream"):
            return await self._stream(request, body, chat=False)
        await self._wait()
        if self.document is not None:
            return web.json_response(self.document)
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [
                    {"index": 0, "text": self.reply, "logprobs": None, "finish_reason": "length"}
                ],
                "usage": self._usage(body, 7),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], chat: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.events is not None:
            for chunk in self.events:
                await asyncio.sleep(self.chunk_delay)
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.finished_streams += 1
            return response
        base = {
            "id": "chatcmpl-s" if chat else "cmpl-s",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
        }

        def event(choice: dict[str, Any], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": [choice], **extra}).encode() + b"\n\n"

        chunks = self.chunks if self.chunks is not None else self.reply.split(" ")
        try:
            if chat:
                await response.write(
                    event(
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    )
                )
            for index, piece in enumerate(chunks):
                await asyncio.sleep(self.chunk_delay)
                text = piece if self.chunks is not None else (piece if index == 0 else " " + piece)
                choice = (
                    {
                        "index": 0,
                        "delta": {"content": text},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                    if chat
                    else {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
                )
                await response.write(event(choice))
            final = (
                {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
                if chat
                else {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
            )
            await response.write(event(final))
            options = body.get("stream_options") or {}
            if options.get("include_usage"):
                usage = self._usage(body, len(chunks))
                await response.write(
                    b"data: "
                    + json.dumps({**base, "choices": [], "usage": usage}).encode()
                    + b"\n\n"
                )
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.finished_streams += 1
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled.set()
            raise
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response(
            {
                "object": "list",
                "model": body.get("model", self.model),
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                    for i in range(len(inputs))
                ],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "vllm"}]}
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            text="# TYPE vllm:num_requests_waiting gauge\n"
            'vllm:num_requests_waiting{model_name="test-model"} 0.0\n',
            content_type="text/plain",
        )


@dataclasses.dataclass
class Running:
    """A started gateway and its base URL."""

    service: app.Service

    @property
    def gateway(self) -> app.Gateway:
        return self.service.gateway

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    async def close(self) -> None:
        await self.service.stop()


async def start_engine(engine: ScriptedEngine) -> test_utils.TestServer:
    server = test_utils.TestServer(engine.app(), host="127.0.0.1")
    await server.start_server()
    return server


@dataclasses.dataclass
class Stack:
    """Gateway in front of a scripted engine, with an HTTP client for the test."""

    engine: ScriptedEngine
    engine_server: test_utils.TestServer
    gateway: Running
    client: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.gateway.url


async def start_gateway(
    upstream_url: str,
    tmp_path: pathlib.Path,
    policy: dict[str, Any] | None = None,
    api_keys: dict[str, str] | None = None,
    poll_interval: float = 0.05,
    policy_file: pathlib.Path | None = None,
    **settings: Any,
) -> Running:
    """Run the gateway on 127.0.0.1 in front of `upstream_url`.

    `policy` is written to a policy file; `policy_file` uses an existing one instead;
    `settings` are further `config.Settings` fields.
    """
    if policy is not None:
        policy_file = tmp_path / "policy.json"
        policy_file.write_text(json.dumps(policy))
    keys_dir = None
    if api_keys is not None:
        keys_dir = tmp_path / "keys"
        keys_dir.mkdir(exist_ok=True)
        for key_id, key in api_keys.items():
            (keys_dir / key_id).write_text(hashlib.sha256(key.encode()).hexdigest())
    settings = config.Settings(
        host="127.0.0.1",
        port=0,
        upstream=upstream_url,
        policy_file=policy_file,
        api_keys_dir=keys_dir,
        model_name="test-model",
        poll_interval=poll_interval,
        **{"shutdown_timeout": 5.0, **settings},
    )
    return Running(await app.Service.start(settings))


@contextlib.asynccontextmanager
async def stack(
    tmp_path: pathlib.Path,
    policy: dict[str, Any] | None = None,
    api_keys: dict[str, str] | None = None,
    engine: ScriptedEngine | None = None,
    **settings: Any,
) -> AsyncIterator[Stack]:
    """Start engine, gateway and a client; yields a Stack and tears everything down.

    `settings` are further `config.Settings` fields of the gateway.
    """
    engine = engine or ScriptedEngine()
    engine_server = await start_engine(engine)
    upstream_url = str(engine_server.make_url("")).rstrip("/")
    gateway = await start_gateway(upstream_url, tmp_path, policy, api_keys, **settings)
    client = aiohttp.ClientSession()
    try:
        yield Stack(engine, engine_server, gateway, client)
    finally:
        await client.close()
        await gateway.close()
        await engine_server.close()


async def sse_events(response: aiohttp.ClientResponse) -> list[Any]:
    """Read an SSE response to the end; JSON events decoded, [DONE] kept as the string."""
    text = (await response.read()).decode()
    events: list[Any] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block.startswith("data:"):
            continue
        data = block[5:].strip()
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def streamed_text(events: list[Any], chat: bool = True) -> str:
    """Concatenate the text of all choices of all chunks."""
    out = []
    for event in events:
        if not isinstance(event, dict):
            continue
        for choice in event.get("choices", []):
            if chat:
                out.append((choice.get("delta") or {}).get("content") or "")
            else:
                out.append(choice.get("text") or "")
    return "".join(out)


@dataclasses.dataclass
class SimStack:
    """Gateway in front of the engine simulator, with an HTTP client for the test."""

    sim: sim_engine.Engine
    sim_server: test_utils.TestServer
    gateway: Running
    client: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def sim_url(self) -> str:
        return str(self.sim_server.make_url("")).rstrip("/")


@contextlib.asynccontextmanager
async def sim_stack(
    tmp_path: pathlib.Path,
    policy: dict[str, Any] | None = None,
    api_keys: dict[str, str] | None = None,
    **sim_config: Any,
) -> AsyncIterator[SimStack]:
    """Start the simulator (fast unless told otherwise), the gateway and a client."""
    settings = {
        "model": "sim-model",
        "max_num_seqs": 64,
        "prefill_tokens_per_s": 1e6,
        "decode_tokens_per_s": 2000.0,
        "output_tokens": 24,
        **sim_config,
    }
    sim_app = sim_server.build_app(sim_engine.SimConfig(**settings))
    server = test_utils.TestServer(sim_app, host="127.0.0.1")
    await server.start_server()
    upstream_url = str(server.make_url("")).rstrip("/")
    gateway = await start_gateway(upstream_url, tmp_path, policy, api_keys)
    client = aiohttp.ClientSession()
    try:
        yield SimStack(sim_app[sim_protocol.ENGINE_KEY], server, gateway, client)
    finally:
        await client.close()
        await gateway.close()
        await server.close()
