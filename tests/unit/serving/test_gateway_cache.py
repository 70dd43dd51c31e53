"""The semantic cache: keys, exact and similarity hits, TTL and LRU, and through the gateway."""

from __future__ import annotations

import pathlib
from typing import Any

import aiohttp
import numpy as np

from llm_serving.gateway import cache, embed
from tests.unit.serving import gateway_support as support

CHAT = "/v1/chat/completions"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _body(content: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": content},
        ],
        "temperature": 0,
        **extra,
    }


def _unit(*values: float) -> embed.Vector:
    vector = np.asarray(values, dtype=np.float32)
    result: embed.Vector = vector / np.linalg.norm(vector)
    return result


def _key(body: dict[str, Any]) -> cache.RequestKey:
    key = cache.request_key(CHAT, body, cache_non_deterministic=False)
    assert key is not None
    return key


def test_key_covers_model_messages_and_sampling_parameters() -> None:
    base = _key(_body())
    assert _key(_body()) == base
    assert _key(_body(stream=False)).exact == base.exact  # delivery switches do not count
    for changed in (
        {**_body(), "model": "other"},
        _body("What is the capital of Spain?"),
        _body(max_tokens=5),
        _body(top_p=0.5),
        _body(stop=["\n"]),
        _body(seed=7),
        _body(logit_bias={"1": 2}),
        {
            **_body(),
            "messages": [{"role": "system", "content": "Be long."}, _body()["messages"][1]],
        },
    ):
        assert _key(changed).exact != base.exact
    # The context (everything but the last message) is shared by rephrasings only.
    assert _key(_body("Capital of France?")).context == base.context
    assert _key(_body(max_tokens=5)).context != base.context
    assert base.text == "What is the capital of France?"


def test_only_deterministic_non_streaming_requests_are_cacheable() -> None:
    assert cache.request_key(CHAT, _body(temperature=0.7), False) is None
    assert (
        cache.request_key(CHAT, {k: v for k, v in _body().items() if k != "temperature"}, False)
        is None
    )
    assert cache.request_key(CHAT, _body(temperature=0.7), True) is not None
    assert cache.request_key(CHAT, _body(stream=True), True) is None
    completion = cache.request_key("/v1/completions", {"prompt": "hi", "temperature": 0.0}, False)
    assert completion is not None
    assert completion.text == "hi"


def test_exact_hit_ttl_and_lru() -> None:
    clock = FakeClock()
    evicted: list[str] = []
    store = cache.SemanticCache(2, 10.0, 0.9, clock=clock, on_evict=evicted.append)
    a, b, c = _key(_body("a")), _key(_body("b")), _key(_body("c"))
    store.put(a, None, cache.CachedResponse(b"A"))
    store.put(b, None, cache.CachedResponse(b"B"))
    hit = store.get_exact(a.exact)
    assert hit is not None
    assert hit.response.body == b"A"
    store.put(c, None, cache.CachedResponse(b"C"))  # evicts b, the least recently used
    assert store.get_exact(b.exact) is None
    assert store.get_exact(a.exact) is not None
    assert store.get_exact(c.exact) is not None
    assert evicted == ["lru"]
    clock.now += 10.0
    assert store.get_exact(a.exact) is None  # expired
    assert evicted == ["lru", "ttl"]
    assert store.sweep() == 1
    assert len(store) == 0


def test_similarity_lookup_respects_threshold_context_and_ttl() -> None:
    clock = FakeClock()
    store = cache.SemanticCache(100, 10.0, 0.9, clock=clock)
    france = _key(_body("What is the capital of France?"))
    store.put(france, _unit(1, 0, 0), cache.CachedResponse(b"Paris"))
    found = store.get_similar(france.context, _unit(1, 0.1, 0))
    assert found is not None
    assert found[0].response.body == b"Paris"
    assert found[1] > 0.99
    assert store.get_similar(france.context, _unit(1, 1, 0)) is None  # cosine 0.71 < 0.9
    assert store.get_similar(_key(_body("x", max_tokens=3)).context, _unit(1, 0, 0)) is None
    clock.now += 11
    assert store.get_similar(france.context, _unit(1, 0, 0)) is None
    assert len(store) == 0


def test_similarity_group_grows_and_shrinks() -> None:
    store = cache.SemanticCache(5, 100.0, 0.99, clock=FakeClock())
    keys = [_key(_body(f"q{i}")) for i in range(12)]
    for i, key in enumerate(keys):
        store.put(key, _unit(1, i, 0.5), cache.CachedResponse(str(i).encode()))
    assert len(store) == 5
    for i in range(7, 12):
        found = store.get_similar(keys[i].context, _unit(1, i, 0.5))
        assert found is not None
        assert found[0].response.body == str(i).encode()
    assert store.get_similar(keys[0].context, _unit(1, 0, 0.5)) is None


def _cache_policy(**cache_fields: Any) -> dict[str, Any]:
    return {"enabled": True, "cache": {"enabled": True, **cache_fields}}


async def _chat(stack: support.Stack, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    async with stack.client.post(f"{stack.url}{CHAT}", json=body) as response:
        assert response.status == 200
        return response.headers.get("X-Cache", ""), await response.json()


async def test_gateway_exact_and_semantic_hits(tmp_path: pathlib.Path) -> None:
    policy = _cache_policy(similarityThreshold=0.9)
    async with support.stack(tmp_path, policy=policy) as stack:
        assert (await _chat(stack, _body()))[0] == "miss"
        status, body = await _chat(stack, _body())
        assert status == "hit_exact"
        assert body["choices"][0]["message"]["content"] == stack.engine.reply
        assert stack.engine.calls == 1
        assert (await _chat(stack, _body("What's the capital of France?")))[0] == "hit_semantic"
        assert (await _chat(stack, _body("How do I bake sourdough bread?")))[0] == "miss"
        assert (await _chat(stack, _body(temperature=0.8)))[0] == "bypass"
        assert (await _chat(stack, _body(max_tokens=9)))[0] == "miss"  # other parameters
        assert stack.engine.calls == 4
        async with stack.client.get(f"{stack.url}/metrics") as response:
            text = await response.text()
        assert 'llm_gateway_cache_hits_total{kind="exact"} 1.0' in text
        assert 'llm_gateway_cache_hits_total{kind="semantic"} 1.0' in text
        assert "llm_gateway_cache_misses_total 3.0" in text


async def test_gateway_cache_with_openai_embedder(tmp_path: pathlib.Path) -> None:
    engine = support.ScriptedEngine()
    engine_server = await support.start_engine(engine)
    engine_url = str(engine_server.make_url("")).rstrip("/")
    # The scripted engine embeds every text to the same vector: any rephrasing is a hit.
    policy = _cache_policy(embedder="openai", embedderUrl=engine_url)
    running = await support.start_gateway(engine_url, tmp_path, policy=policy)
    try:
        async with aiohttp.ClientSession() as client:
            stack = support.Stack(engine, engine_server, running, client)
            assert (await _chat(stack, _body()))[0] == "miss"
            assert (await _chat(stack, _body("Something else entirely")))[0] == "hit_semantic"
            embedding_calls = [r for r in engine.requests if "input" in r]
            assert len(embedding_calls) == 2
            assert embedding_calls[0]["model"] == "test-model"
    finally:
        await running.close()
        await engine_server.close()


async def test_cache_is_off_by_default(tmp_path: pathlib.Path) -> None:
    async with support.stack(tmp_path, policy={"enabled": True}) as stack:
        for _ in range(2):
            assert (await _chat(stack, _body()))[0] == ""
        assert stack.engine.calls == 2
