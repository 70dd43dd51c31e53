"""API keys (hashed, constant-time) and per-key token buckets: 401 and 429 with Retry-After."""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
from typing import Any

from llm_serving.gateway import auth
from tests.unit.serving import gateway_support as support

CHAT = {"model": "test-model", "messages": [{"role": "user", "content": "hello"}]}


def _keys_policy(**limits: Any) -> dict[str, Any]:
    return {"enabled": True, "apiKeys": {"enabled": True, "secretName": "keys", **limits}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bearer_token_parsing() -> None:
    assert auth.bearer_token("Bearer abc") == "abc"
    assert auth.bearer_token("bearer  abc ") == "abc"
    assert auth.bearer_token("Basic abc") is None
    assert auth.bearer_token("Bearer ") is None
    assert auth.bearer_token(None) is None


def test_key_store_reads_digests_and_skips_junk(tmp_path: pathlib.Path) -> None:
    (tmp_path / "team-a").write_text(auth.hash_key("secret-a") + "\n")
    (tmp_path / "team-b").write_text(auth.hash_key("secret-b").upper())
    (tmp_path / "junk").write_text("not a digest")
    (tmp_path / "..data").mkdir()  # what a mounted Secret also contains
    store = auth.KeyStore.from_dir(tmp_path)
    assert len(store) == 2
    assert store.authenticate("secret-a") == "team-a"
    assert store.authenticate("secret-b") == "team-b"
    assert store.authenticate("secret-c") is None
    assert store.authenticate(None) is None
    assert auth.KeyStore.from_dir(tmp_path / "missing").authenticate("secret-a") is None


def test_request_bucket_refills() -> None:
    clock = FakeClock()
    limiter = auth.RateLimiter(requests_per_minute=2, tokens_per_minute=None, clock=clock)
    assert limiter.acquire("k", 0) is None
    assert limiter.acquire("k", 0) is None
    refused = limiter.acquire("k", 0)
    assert refused is not None
    assert refused[0] == "requests"
    assert refused[1] == 30.0  # one request per 30 s
    assert limiter.acquire("other", 0) is None  # buckets are per key
    clock.now += 30.0
    assert limiter.acquire("k", 0) is None


def test_token_bucket_charges_completion_afterwards() -> None:
    clock = FakeClock()
    limiter = auth.RateLimiter(requests_per_minute=None, tokens_per_minute=600, clock=clock)
    assert limiter.acquire("k", 100) is None  # 500 left
    limiter.charge("k", 500)  # the completion used the rest
    refused = limiter.acquire("k", 100)
    assert refused is not None
    assert refused[0] == "tokens"
    assert refused[1] == 10.0  # 100 tokens at 10 tokens/s
    clock.now += 10.0
    assert limiter.acquire("k", 100) is None
    # A prompt larger than the whole budget waits for a full bucket, not forever.
    clock.now += 60.0
    assert limiter.acquire("k", 10_000) is None


async def test_missing_and_wrong_keys_are_401(tmp_path: pathlib.Path) -> None:
    keys = {"team-a": "sk-good"}
    async with support.stack(tmp_path, policy=_keys_policy(), api_keys=keys) as stack:
        url = f"{stack.url}/v1/chat/completions"
        async with stack.client.post(url, json=CHAT) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            body = await response.json()
            assert body["error"]["code"] == "invalid_api_key"
        async with stack.client.post(
            url, json=CHAT, headers={"Authorization": "Bearer sk-bad"}
        ) as response:
            assert response.status == 401
        async with stack.client.get(
            f"{stack.url}/v1/models", headers={"Authorization": "Bearer sk-bad"}
        ) as response:
            assert response.status == 401
        async with stack.client.post(
            url, json=CHAT, headers={"Authorization": "Bearer sk-good"}
        ) as response:
            assert response.status == 200
        # The gateway's key is not passed on to the engine.
        assert "Authorization" not in stack.engine.headers[-1]
        assert stack.engine.calls == 1
        async with stack.client.get(f"{stack.url}/health") as response:
            assert response.status == 200  # probes need no key


async def test_request_rate_limit_is_429_with_retry_after(tmp_path: pathlib.Path) -> None:
    keys = {"team-a": "sk-a", "team-b": "sk-b"}
    policy = _keys_policy(requestsPerMinute=2)
    async with support.stack(tmp_path, policy=policy, api_keys=keys) as stack:
        url = f"{stack.url}/v1/chat/completions"
        headers = {"Authorization": "Bearer sk-a"}
        for _ in range(2):
            async with stack.client.post(url, json=CHAT, headers=headers) as response:
                assert response.status == 200
        async with stack.client.post(url, json=CHAT, headers=headers) as response:
            assert response.status == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 30
            body = await response.json()
            assert body["error"]["type"] == "rate_limit_error"
        async with stack.client.post(
            url, json=CHAT, headers={"Authorization": "Bearer sk-b"}
        ) as response:
            assert response.status == 200
        async with stack.client.get(f"{stack.url}/metrics") as response:
            assert 'llm_gateway_rate_limited_total{limit="requests"} 1.0' in await response.text()


async def test_token_rate_limit_is_429(tmp_path: pathlib.Path) -> None:
    policy = _keys_policy(tokensPerMinute=60)
    async with support.stack(tmp_path, policy=policy, api_keys={"a": "sk-a"}) as stack:
        url = f"{stack.url}/v1/chat/completions"
        headers = {"Authorization": "Bearer sk-a"}
        text = "Please summarise the history of the Roman empire in a few paragraphs. " * 2
        long_prompt = {**CHAT, "messages": [{"role": "user", "content": text}]}
        statuses = []
        for _ in range(4):
            async with stack.client.post(url, json=long_prompt, headers=headers) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert int(response.headers["Retry-After"]) >= 1
        assert statuses[0] == 200
        assert 429 in statuses


async def test_keys_are_reloaded(tmp_path: pathlib.Path) -> None:
    async with support.stack(tmp_path, policy=_keys_policy(), api_keys={"a": "sk-a"}) as stack:
        url = f"{stack.url}/v1/chat/completions"
        (tmp_path / "keys" / "b").write_text(hashlib.sha256(b"sk-b").hexdigest())
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(stack.gateway.gateway.keys) == 2:
                break
        async with stack.client.post(
            url, json=CHAT, headers={"Authorization": "Bearer sk-b"}
        ) as response:
            assert response.status == 200


async def test_metrics_are_open_unless_protected(tmp_path: pathlib.Path) -> None:
    """/metrics needs no key by default (a documented choice); protectMetrics puts it behind."""
    keys = {"prometheus": "sk-scrape"}
    async with support.stack(tmp_path, policy=_keys_policy(), api_keys=keys) as stack:
        for path in ("/metrics", "/metrics/engine"):
            async with stack.client.get(f"{stack.url}{path}") as response:
                assert response.status == 200
    policy = _keys_policy(protectMetrics=True)
    async with support.stack(tmp_path, policy=policy, api_keys=keys) as stack:
        for path in ("/metrics", "/metrics/engine"):
            async with stack.client.get(f"{stack.url}{path}") as response:
                assert response.status == 401
            async with stack.client.get(
                f"{stack.url}{path}", headers={"Authorization": "Bearer sk-scrape"}
            ) as response:
                assert response.status == 200
        for path in ("/health", "/ready"):
            async with stack.client.get(f"{stack.url}{path}") as response:
                assert response.status == 200  # probes stay open
