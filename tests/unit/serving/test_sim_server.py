"""Functional tests of `llm-serving sim` over real sockets on 127.0.0.1.

Each test starts the simulator's aiohttp application on a free loopback port
(aiohttp's TestServer, which runs it with handler cancellation as `main()` does)
and talks to it with aiohttp and with the official `openai` client. Behaviour is
asserted, never timings: waits poll state with a bounded number of attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import test_utils, web
from prometheus_client import parser as prom_parser

from llm_serving.sim import cli as sim_cli
from llm_serving.sim import engine as sim_engine
from llm_serving.sim import metrics as sim_metrics
from llm_serving.sim import protocol as sim_protocol
from llm_serving.sim import server as sim_server
from llm_serving.sim import text as sim_text

FAST: dict[str, Any] = {
    "prefill_tokens_per_s": 1e6,
    "decode_tokens_per_s": 5000.0,
    "max_model_len": 512,
}


@contextlib.asynccontextmanager
async def running_sim(**overrides: Any) -> AsyncIterator[tuple[str, sim_engine.Engine]]:
    config = sim_engine.SimConfig(**{**FAST, **overrides})
    app = sim_server.build_app(config)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app[sim_protocol.ENGINE_KEY]
    finally:
        await server.close()


@pytest.fixture
async def sim() -> AsyncIterator[tuple[str, sim_engine.Engine]]:
    async with running_sim() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    async with http.post(url, json=body, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def sse(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[Any]:
    """The `data:` events of a stream, parsed; the last one is the string [DONE]."""
    events: list[Any] = []
    async with http.post(url, json=body) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                assert event.startswith(b"data: ")
                data = event[len(b"data: ") :].decode()
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def expected_words(prompt_text: str, count: int, seed: int | None = None) -> list[str]:
    return sim_text.pseudo_words(sim_text.request_seed(0, prompt_text, seed), count)


def metric_families(text: str) -> dict[str, Any]:
    return {f.name: f for f in prom_parser.text_string_to_metric_families(text)}


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """Unlabelled-by-reason samples by name, plus request_success by finished_reason."""
    async with http.get(base + "/metrics") as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for family in prom_parser.text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name
            if "finished_reason" in s.labels:
                key += ":" + s.labels["finished_reason"]
            values[key] = s.value
    return values


# -- routes and shapes -------------------------------------------------------------


async def test_models_health_version(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    async with http.get(base + "/v1/models") as resp:
        body = await resp.json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert card["id"] == "sim-model"
    assert card["owned_by"] == "vllm"
    assert card["root"] == "sim-model"
    assert card["max_model_len"] == 512
    assert card["permission"][0]["object"] == "model_permission"
    async with http.get(base + "/health") as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    async with http.get(base + "/version") as resp:
        assert isinstance((await resp.json())["version"], str)


async def test_chat_completion_is_deterministic_at_temperature_zero(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    messages = [{"role": "user", "content": "Say hello"}]
    request = {"model": "sim-model", "messages": messages, "max_tokens": 6, "temperature": 0}
    status, body = await post(http, base + "/v1/chat/completions", request)
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    words = expected_words(sim_text.chat_prompt_text(messages), 6)
    assert choice["message"]["content"] == " ".join(words)
    assert choice["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": sim_text.chat_prompt_tokens(messages),
        "completion_tokens": 6,
        "total_tokens": sim_text.chat_prompt_tokens(messages) + 6,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    _, again = await post(http, base + "/v1/chat/completions", request)
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]
    # max_completion_tokens is honoured too, and a seed changes the words.
    seeded = {**request, "max_tokens": None, "max_completion_tokens": 3, "seed": 7}
    _, body = await post(http, base + "/v1/chat/completions", seeded)
    words = expected_words(sim_text.chat_prompt_text(messages), 3, seed=7)
    assert body["choices"][0]["message"]["content"] == " ".join(words)


async def test_completion_natural_stop_and_stop_strings(http: aiohttp.ClientSession) -> None:
    async with running_sim(output_tokens=5) as (base, _):
        request = {"prompt": "Once upon a time", "temperature": 0}
        status, body = await post(http, base + "/v1/completions", request)
        assert status == 200
        assert body["object"] == "text_completion"
        choice = body["choices"][0]
        words = expected_words("Once upon a time", 5)
        assert choice["text"] == "".join(" " + w for w in words)
        assert choice["finish_reason"] == "stop"
        assert choice["stop_reason"] is None
        assert body["usage"]["completion_tokens"] == 5
        assert body["usage"]["prompt_tokens"] == sim_text.estimate_tokens("Once upon a time")

        # ignore_eos runs to max_tokens.
        _, body = await post(
            http, base + "/v1/completions", {**request, "ignore_eos": True, "max_tokens": 9}
        )
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 9

        # A stop string cuts the text before it and is reported as stop_reason.
        stop = " " + words[2]
        _, body = await post(http, base + "/v1/completions", {**request, "stop": [stop]})
        choice = body["choices"][0]
        assert choice["text"] == " " + words[0] + " " + words[1]
        assert choice["finish_reason"] == "stop"
        assert choice["stop_reason"] == stop


async def test_completion_accepts_token_ids(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    status, body = await post(
        http, base + "/v1/completions", {"prompt": [1, 2, 3, 4], "max_tokens": 2}
    )
    assert status == 200
    assert body["usage"]["prompt_tokens"] == 4


async def test_chat_stream_matches_non_stream(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    messages = [{"role": "user", "content": "Count to five"}]
    request = {
        "messages": messages,
        "max_tokens": 5,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = await sse(http, base + "/v1/chat/completions", request)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"]["content"] for c in chunks[1:-1])
    assert content == " ".join(expected_words(sim_text.chat_prompt_text(messages), 5))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    # As in vLLM, the fingerprint rides on the last chunk: here the usage chunk.
    assert "system_fingerprint" in usage_chunk
    assert "system_fingerprint" not in chunks[-2]
    assert usage_chunk["usage"]["completion_tokens"] == 5
    assert usage_chunk["usage"]["total_tokens"] == usage_chunk["usage"]["prompt_tokens"] + 5

    # Without include_usage there is no usage chunk, and no usage key anywhere.
    events = await sse(http, base + "/v1/chat/completions", {**request, "stream_options": None})
    assert all("usage" not in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert "system_fingerprint" in events[-2]


async def test_completion_stream_with_stop(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    words = expected_words("abc", 6)
    stop = words[3][:2]
    text = "".join(" " + w for w in words)
    expected = text[: text.index(stop)]
    events = await sse(
        http,
        base + "/v1/completions",
        {"prompt": "abc", "max_tokens": 6, "temperature": 0, "stream": True, "stop": stop},
    )
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["stop_reason"] == stop


async def test_embeddings(sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession) -> None:
    base, _ = sim
    status, body = await post(
        http, base + "/v1/embeddings", {"input": ["hello world", "hello there"]}
    )
    assert status == 200
    assert body["object"] == "list"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 384
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


# -- the official client -----------------------------------------------------------


async def test_openai_client(sim: tuple[str, sim_engine.Engine]) -> None:
    base, _ = sim
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    try:
        models = await client.models.list()
        assert [m.id for m in models.data] == ["sim-model"]

        messages: list[Any] = [{"role": "user", "content": "Hi"}]
        chat = await client.chat.completions.create(
            model="sim-model", messages=messages, max_tokens=4, temperature=0
        )
        expected = " ".join(expected_words(sim_text.chat_prompt_text(messages), 4))
        assert chat.choices[0].message.content == expected
        assert chat.usage is not None
        assert chat.usage.completion_tokens == 4

        stream = await client.chat.completions.create(
            model="sim-model",
            messages=messages,
            max_tokens=4,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        assert "".join(parts) == expected
        assert usage is not None
        assert usage.completion_tokens == 4

        completion = await client.completions.create(
            model="sim-model", prompt="Hello", max_tokens=3, temperature=0
        )
        assert completion.choices[0].text == "".join(" " + w for w in expected_words("Hello", 3))

        text_stream = await client.completions.create(
            model="sim-model", prompt="Hello", max_tokens=3, temperature=0, stream=True
        )
        streamed = "".join([c.choices[0].text async for c in text_stream if c.choices])
        assert streamed == completion.choices[0].text

        embedding = await client.embeddings.create(model="sim-model", input="hello")
        assert len(embedding.data[0].embedding) == 384

        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="other", messages=messages)
        with pytest.raises(openai.BadRequestError):
            await client.completions.create(model="sim-model", prompt="x" * 4000)
    finally:
        await client.close()


# -- errors ----------------------------------------------------------------------------


def assert_vllm_error(body: Any, status: int) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str)


async def test_errors_have_vllm_shape(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    chat = base + "/v1/chat/completions"
    msgs = [{"role": "user", "content": "x"}]

    status, body = await post(http, chat, {"model": "nope", "messages": msgs})
    assert status == 404
    assert_vllm_error(body, 404)
    assert body["error"]["type"] == "NotFoundError"
    assert body["error"]["param"] == "model"

    status, body = await post(http, base + "/v1/completions", {"prompt": "x" * 2100})
    assert status == 400
    assert_vllm_error(body, 400)
    assert body["error"]["param"] == "input_tokens"
    assert "maximum context length is 512" in body["error"]["message"]

    status, body = await post(http, chat, {"messages": msgs, "max_tokens": 513})
    assert status == 400
    assert body["error"]["param"] == "max_tokens"

    status, body = await post(http, chat, {"messages": msgs, "temperature": -1})
    assert (status, body["error"]["param"]) == (400, "temperature")

    status, body = await post(
        http, chat, {"messages": msgs, "stream_options": {"include_usage": True}}
    )
    assert (status, body["error"]["param"]) == (400, "stream_options")

    status, body = await post(http, chat, {"model": "sim-model"})
    assert (status, body["error"]["param"]) == (400, "body.messages")

    status, body = await post(http, base + "/v1/completions", {"max_tokens": 3})
    assert (status, body["error"]["param"]) == (400, "prompt")

    async with http.post(chat, data=b"{bad", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert_vllm_error(await resp.json(), 400)
    async with http.post(chat, data=b"{}", headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 400
        assert_vllm_error(await resp.json(), 400)

    async with http.get(base + "/nope") as resp:
        assert resp.status == 404
        assert await resp.json() == {"detail": "Not Found"}
    async with http.get(chat) as resp:
        assert resp.status == 405
        assert await resp.json() == {"detail": "Method Not Allowed"}


async def test_startup_delay(http: aiohttp.ClientSession) -> None:
    async with running_sim(startup_delay_s=3600) as (base, _):
        async with http.get(base + "/health") as resp:
            assert resp.status == 503
        status, body = await post(http, base + "/v1/completions", {"prompt": "hi", "max_tokens": 1})
        assert status == 503
        assert_vllm_error(body, 503)
        # Models and metrics answer during start-up, as vLLM's do once it listens.
        async with http.get(base + "/v1/models") as resp:
            assert resp.status == 200

    async with running_sim(startup_delay_s=0.3) as (base, _):
        statuses = []
        for _ in range(1000):
            async with http.get(base + "/health") as resp:
                statuses.append(resp.status)
            if resp.status == 200:
                break
            await asyncio.sleep(0.01)
        assert statuses[0] == 503
        assert statuses[-1] == 200
        status, _body = await post(
            http, base + "/v1/completions", {"prompt": "hi", "max_tokens": 1}
        )
        assert status == 200


# -- fault injection and disconnects -------------------------------------------------


async def test_fault_injection(http: aiohttp.ClientSession) -> None:
    async with running_sim(fail_rate=1.0) as (base, engine):
        status, body = await post(http, base + "/v1/completions", {"prompt": "hi", "max_tokens": 4})
        assert status == 500
        assert_vllm_error(body, 500)
        assert body["error"]["type"] == "InternalServerError"

        async def read_stream() -> list[bytes]:
            async with http.post(
                base + "/v1/completions", json={"prompt": "hi", "max_tokens": 4, "stream": True}
            ) as resp:
                assert resp.status == 200
                return [line async for line in resp.content]

        # The stream is dropped: the client sees a broken payload, never [DONE].
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_stream()
        values = await scrape(http, base)
        assert values["vllm:request_success_total:error"] == 2
        assert engine.num_running == engine.num_waiting == 0


async def wait_for(predicate: Any, attempts: int = 500) -> None:
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_client_disconnect_frees_batch_and_queue(http: aiohttp.ClientSession) -> None:
    async with running_sim(max_num_seqs=1, decode_tokens_per_s=20.0) as (base, engine):
        # A streaming client reads one chunk and leaves.
        resp = await http.post(
            base + "/v1/completions",
            json={"prompt": "hi", "max_tokens": 400, "ignore_eos": True, "stream": True},
        )
        await resp.content.readline()
        assert engine.num_running == 1

        # A second request queues behind it; its client gives up while waiting.
        queued = asyncio.create_task(
            post(http, base + "/v1/completions", {"prompt": "hi", "max_tokens": 2})
        )
        await wait_for(lambda: engine.num_waiting == 1)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await wait_for(lambda: engine.num_waiting == 0)

        resp.close()
        await wait_for(lambda: engine.num_running == 0)
        assert engine.kv_used == 0
        values = await scrape(http, base)
        assert values["vllm:request_success_total:abort"] == 2


# -- metrics and load ------------------------------------------------------------------


async def test_metrics_names_types_labels(
    sim: tuple[str, sim_engine.Engine], http: aiohttp.ClientSession
) -> None:
    base, _ = sim
    await post(
        http, base + "/v1/completions", {"prompt": "hello", "max_tokens": 3, "ignore_eos": True}
    )
    async with http.get(base + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    families = metric_families(text)
    for name, kind in sim_metrics.IMPLEMENTED_FAMILIES.items():
        base_name = name.removesuffix("_total") if kind == "counter" else name
        assert base_name in families, name
        assert families[base_name].type == kind, name
        assert f"# TYPE {name} {kind}" in text
        for s in families[base_name].samples:
            if s.name.endswith("_created"):
                continue
            assert s.labels["model_name"] == "sim-model"
            assert s.labels["engine"] == "0"
    reasons = {s.labels["finished_reason"] for s in families["vllm:request_success"].samples}
    assert reasons == set(sim_metrics.FINISHED_REASONS)
    values = await scrape(http, base)
    assert values["vllm:generation_tokens_total"] == 3
    assert values["vllm:request_success_total:length"] == 1
    assert values["vllm:e2e_request_latency_seconds_count"] == 1


async def test_queue_builds_under_load(http: aiohttp.ClientSession) -> None:
    """More concurrent requests than max-num-seqs: vllm:num_requests_waiting rises, then drains."""
    async with running_sim(max_num_seqs=2, decode_tokens_per_s=100.0) as (base, engine):
        body = {"prompt": "load", "max_tokens": 20, "ignore_eos": True}
        tasks = [asyncio.create_task(post(http, base + "/v1/completions", body)) for _ in range(8)]
        peak_waiting = 0.0
        peak_running = 0.0
        while not all(t.done() for t in tasks):
            values = await scrape(http, base)
            peak_waiting = max(peak_waiting, values["vllm:num_requests_waiting"])
            peak_running = max(peak_running, values["vllm:num_requests_running"])
            await asyncio.sleep(0.01)
        results = [await t for t in tasks]
        assert all(status == 200 for status, _ in results)
        assert all(b["usage"]["completion_tokens"] == 20 for _, b in results)
        assert peak_waiting > 0
        assert peak_running == 2  # never more than max-num-seqs
        values = await scrape(http, base)
        assert values["vllm:num_requests_waiting"] == 0
        assert values["vllm:num_requests_running"] == 0
        assert values["vllm:request_success_total:length"] == 8
        assert values["vllm:request_queue_time_seconds_count"] == 8
        assert engine.kv_used == 0


# -- the command line ---------------------------------------------------------------------


def test_config_from_args() -> None:
    args = sim_cli.parser().parse_args(
        [
            "--model",
            "/models/llama",
            "--served-model-name",
            "llama",
            "--max-num-seqs",
            "3",
            "--fail-rate",
            "0.5",
        ]
    )
    config = sim_cli.config_from_args(args)
    assert config.model == "llama"
    assert config.root == "/models/llama"
    assert config.max_num_seqs == 3
    assert config.fail_rate == 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_main_serves(http: aiohttp.ClientSession) -> None:
    port = free_port()
    code = "import sys; from llm_serving.sim import cli; sys.exit(cli.main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "--port",
        str(port),
        "--model",
        "cli-model",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        status = None
        for _ in range(300):
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    status = resp.status
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        assert status == 200
        async with http.get(f"http://127.0.0.1:{port}/v1/models") as resp:
            assert (await resp.json())["data"][0]["id"] == "cli-model"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)


async def test_disconnect_detected_without_handler_cancellation(
    http: aiohttp.ClientSession,
) -> None:
    """Under a plain AppRunner (no handler cancellation) a gone client still leaves the batch."""
    config = sim_engine.SimConfig(**{**FAST, "decode_tokens_per_s": 50.0})
    app = sim_server.build_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    engine = app[sim_protocol.ENGINE_KEY]
    try:
        port = runner.addresses[0][1]
        body = {"prompt": "hi", "max_tokens": 400, "ignore_eos": True}
        for stream in (True, False):
            task = asyncio.create_task(
                post(http, f"http://127.0.0.1:{port}/v1/completions", {**body, "stream": stream})
            )
            await wait_for(lambda: engine.num_running == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_for(lambda: engine.num_running == 0)
        assert engine.kv_used == 0
    finally:
        await runner.cleanup()
