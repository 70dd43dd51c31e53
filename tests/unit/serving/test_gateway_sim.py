"""The gateway in front of the engine simulator over real sockets: routes, metrics, cancellation."""

from __future__ import annotations

import asyncio
import pathlib

from tests.unit.serving import gateway_support as support

CHAT = {
    "model": "sim-model",
    "messages": [{"role": "user", "content": "Write a long story."}],
}


async def test_engine_metrics_and_readiness(tmp_path: pathlib.Path) -> None:
    async with support.sim_stack(tmp_path) as stack:
        async with stack.client.get(f"{stack.url}/ready") as response:
            assert response.status == 200
        async with stack.client.get(f"{stack.url}/metrics/engine") as response:
            assert response.status == 200
            text = await response.text()
        assert "vllm:num_requests_waiting" in text
        assert "llm_gateway_" not in text


async def test_not_ready_during_engine_startup(tmp_path: pathlib.Path) -> None:
    async with support.sim_stack(tmp_path, startup_delay_s=30.0) as stack:
        async with stack.client.get(f"{stack.url}/ready") as response:
            assert response.status == 503
        async with stack.client.get(f"{stack.url}/health") as response:
            assert response.status == 200


async def test_stream_through_gateway_matches_direct(tmp_path: pathlib.Path) -> None:
    body = {**CHAT, "stream": True, "temperature": 0, "seed": 3}
    async with support.sim_stack(tmp_path, policy={"enabled": True}) as stack:
        async with stack.client.post(f"{stack.sim_url}/v1/chat/completions", json=body) as r:
            direct = await support.sse_events(r)
        async with stack.client.post(f"{stack.url}/v1/chat/completions", json=body) as r:
            assert r.status == 200
            proxied = await support.sse_events(r)
        assert proxied[-1] == "[DONE]"
        assert support.streamed_text(proxied) == support.streamed_text(direct)
        finish = [c["finish_reason"] for e in proxied[:-1] for c in e["choices"]]
        assert [f for f in finish if f] == [
            f for e in direct[:-1] for c in e["choices"] if (f := c["finish_reason"])
        ]


async def test_client_disconnect_aborts_the_engine_request(tmp_path: pathlib.Path) -> None:
    async with support.sim_stack(tmp_path, decode_tokens_per_s=20.0, output_tokens=2000) as stack:
        response = await stack.client.post(
            f"{stack.url}/v1/chat/completions", json={**CHAT, "stream": True}
        )
        assert response.status == 200
        await response.content.readany()
        for _ in range(100):
            if stack.sim.num_running == 1:
                break
            await asyncio.sleep(0.01)
        assert stack.sim.num_running == 1
        response.close()
        for _ in range(100):
            if stack.sim.num_running == 0:
                break
            await asyncio.sleep(0.01)
        assert stack.sim.num_running == 0


async def test_metrics_after_traffic(tmp_path: pathlib.Path) -> None:
    policy = {
        "enabled": True,
        "pricing": {"inputPerMillionTokens": 1.0, "outputPerMillionTokens": 2.0},
    }
    async with support.sim_stack(tmp_path, policy=policy) as stack:
        for stream in (False, True):
            async with stack.client.post(
                f"{stack.url}/v1/chat/completions", json={**CHAT, "stream": stream}
            ) as r:
                assert r.status == 200
                await r.read()
        async with stack.client.get(f"{stack.url}/metrics") as response:
            text = await response.text()
    for name in (
        'llm_gateway_requests_total{code="200",method="POST",route="/v1/chat/completions"} 2.0',
        'llm_gateway_time_to_first_token_seconds_count{model="sim-model"} 1.0',
        'llm_gateway_added_latency_seconds_count{route="/v1/chat/completions"} 2.0',
        'llm_gateway_cost_total{kind="input",model="sim-model"}',
        'llm_gateway_cost_total{kind="output",model="sim-model"}',
        'llm_gateway_prompt_tokens_total{model="sim-model"}',
        'llm_gateway_policy_reloads_total{result="success"} 1.0',
    ):
        assert name in text, name
    completion = next(
        line for line in text.splitlines() if line.startswith("llm_gateway_completion_tokens_total")
    )
    assert float(completion.split()[-1]) == 48.0  # 24 tokens, twice
