"""Reading the signal from real engine-simulator and gateway processes' metrics, over sockets."""

from __future__ import annotations

import asyncio
import pathlib
import socket
from typing import Any

import aiohttp
from aiohttp import test_utils

from llm_operator.api import v1alpha1
from llm_operator.autoscaling import loop, signal
from llm_operator.builders import children, common
from llm_serving.sim import engine as sim_engine
from llm_serving.sim import protocol as sim_protocol
from llm_serving.sim import server as sim_server
from tests.unit.serving import gateway_support


def _spec(**autoscaling: Any) -> v1alpha1.Autoscaling:
    return v1alpha1.Autoscaling.model_validate({"enabled": True, **autoscaling})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _busy_sim() -> tuple[test_utils.TestServer, sim_engine.Engine]:
    """A simulator with one request running and two waiting (a batch of one, slow decode)."""
    config = sim_engine.SimConfig(max_num_seqs=1, decode_tokens_per_s=0.01)
    app = sim_server.build_app(config)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    engine = app[sim_protocol.ENGINE_KEY]
    for _ in range(3):
        engine.submit(prompt_tokens=10, max_tokens=10)
    return server, engine


async def test_pods_path_sums_waiting_and_running_over_pods() -> None:
    first, _ = await _busy_sim()
    second, _ = await _busy_sim()
    endpoints = [
        signal.PodEndpoint("a", str(first.make_url("/metrics")), None),
        signal.PodEndpoint("b", str(second.make_url("/metrics")), None),
    ]
    try:
        async with aiohttp.ClientSession() as session:
            waiting = await signal.from_pods(session, endpoints, _spec())
            both = await signal.from_pods(
                session, endpoints, _spec(includeRunning=True, targetPerReplica=8)
            )
    finally:
        await first.close()
        await second.close()
    assert (waiting.value, waiting.queue_depth, waiting.error) == (4.0, 4.0, None)
    assert both.value == 6.0
    assert both.queue_depth == 4.0
    assert "2 of 2 answered" in both.source


async def test_pods_path_reads_the_requests_finished_for_the_arrival_rate() -> None:
    config = sim_engine.SimConfig(max_num_seqs=4, decode_tokens_per_s=1000.0)
    servers = [
        test_utils.TestServer(sim_server.build_app(config), host="127.0.0.1") for _ in range(2)
    ]
    for server in servers:
        await server.start_server()
    endpoints = [
        signal.PodEndpoint(name, str(server.make_url("/metrics")), None)
        for name, server in zip("ab", servers, strict=True)
    ]
    spec = _spec(includeRunning=True, targetPerReplica=8)
    dead = signal.PodEndpoint("c", f"http://127.0.0.1:{_free_port()}/metrics", None)
    try:
        async with aiohttp.ClientSession() as session:
            body = {"model": "sim-model", "prompt": "hello", "max_tokens": 2}
            for count, server in zip((2, 3), servers, strict=True):
                for _ in range(count):
                    async with session.post(server.make_url("/v1/completions"), json=body) as r:
                        assert r.status == 200
            reading = await signal.from_pods(session, endpoints, spec)
            partial = await signal.from_pods(session, [*endpoints, dead], spec)
    finally:
        for server in servers:
            await server.close()
    # vllm:request_success_total over both pods (every finished_reason).
    assert reading.completed == 5.0
    assert reading.value == 0.0
    # A sum that misses a pod is no count to difference: not given.
    assert partial.value == 0.0
    assert partial.completed is None


async def test_pods_path_counts_what_answers_and_fails_when_nothing_does() -> None:
    server, _ = await _busy_sim()
    dead = f"http://127.0.0.1:{_free_port()}/metrics"
    try:
        async with aiohttp.ClientSession() as session:
            partial = await signal.from_pods(
                session,
                [
                    signal.PodEndpoint("a", str(server.make_url("/metrics")), None),
                    signal.PodEndpoint("b", dead, None),
                ],
                _spec(),
            )
            none = await signal.from_pods(session, [signal.PodEndpoint("b", dead, None)], _spec())
            empty = await signal.from_pods(session, [], _spec())
    finally:
        await server.close()
    assert partial.value == 2.0
    assert "1 of 2 answered" in partial.source
    assert (none.value, none.error) == (None, "MetricsUnreachable")
    assert "b:" in none.detail
    assert (empty.value, empty.error) == (None, "NoReadyPods")


async def test_pods_path_reads_in_flight_from_the_gateway(tmp_path: pathlib.Path) -> None:
    async with gateway_support.sim_stack(
        tmp_path, max_num_seqs=1, decode_tokens_per_s=2.0
    ) as stack:
        base = stack.gateway.url.rstrip("/")
        endpoint = signal.PodEndpoint("a", f"{base}/metrics/engine", f"{base}/metrics")
        spec = _spec(metric="inflight", targetPerReplica=4)
        idle = await signal.from_pods(stack.client, [endpoint], spec)
        body = {"model": "sim-model", "prompt": "hello", "max_tokens": 4}
        requests = [
            asyncio.create_task(stack.client.post(f"{base}/v1/completions", json=body))
            for _ in range(3)
        ]
        for _ in range(200):
            if stack.sim.num_waiting + stack.sim.num_running == 3:
                break
            await asyncio.sleep(0.01)
        busy = await signal.from_pods(stack.client, [endpoint], spec)
        kv = await signal.from_pods(stack.client, [endpoint], _spec(metric="kvCacheUsage"))
        for task in requests:
            task.cancel()
        await asyncio.gather(*requests, return_exceptions=True)
    assert idle.error is None
    assert busy.error is None
    assert idle.value is not None
    assert busy.value is not None
    # The gateway counts its own /metrics scrape as in flight too: compare with idle.
    assert busy.value - idle.value == 3.0
    assert busy.queue_depth == 2.0
    assert kv.error is None
    assert kv.value is not None
    assert 0.0 < kv.value <= 1.0


async def test_prometheus_unreachable_is_reported() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    async with aiohttp.ClientSession() as session:
        reading = await signal.from_prometheus(session, url, "sum(up)", None, seconds=2.0)
    assert reading.value is None
    assert reading.error == "PrometheusUnreachable"
    assert url in reading.source


def test_pod_endpoints_only_ready_pods_with_an_ip() -> None:
    def pod(name: str, ip: str | None, ready: bool) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "status": {
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }

    pods = [pod("a", "10.0.0.1", True), pod("b", None, True), pod("c", "10.0.0.3", False)]
    plain = children.target_from_object(
        {"metadata": {"name": "m", "namespace": "ns"}, "spec": {"model": {"uri": "hf://o/m"}}}
    )
    guarded = children.target_from_object(
        {
            "metadata": {"name": "m", "namespace": "ns"},
            "spec": {"model": {"uri": "hf://o/m"}, "guardrails": {"enabled": True}},
        }
    )
    assert signal.pod_endpoints(plain, pods) == [
        signal.PodEndpoint("a", "http://10.0.0.1:8000/metrics", None)
    ]
    assert signal.pod_endpoints(guarded, pods) == [
        signal.PodEndpoint(
            "a", "http://10.0.0.1:8080/metrics/engine", "http://10.0.0.1:8080/metrics"
        )
    ]


async def test_loop_reads_the_operator_wide_prometheus_when_the_spec_names_none() -> None:
    operator_wide = f"http://127.0.0.1:{_free_port()}"
    own = f"http://127.0.0.1:{_free_port()}"
    the_loop = loop.Loop(
        lambda: None,  # type: ignore[arg-type,return-value]  # not called by _read
        lambda: common.Options(prometheus_url=operator_wide),
    )

    def target(autoscaling: dict[str, Any]) -> Any:
        spec = {"model": {"uri": "hf://o/m"}, "autoscaling": {"enabled": True, **autoscaling}}
        return children.target_from_object(
            {"metadata": {"name": "m", "namespace": "ns"}, "spec": spec}
        )

    async with aiohttp.ClientSession() as session:
        wide = await the_loop._read(session, target({}), [])
        mine = await the_loop._read(session, target({"prometheusUrl": own}), [])
    assert wide.source == f"prometheus {operator_wide}"
    assert wide.error == "PrometheusUnreachable"
    assert mine.source == f"prometheus {own}"
    no_url = loop.Loop(lambda: None, lambda: common.Options())  # type: ignore[arg-type,return-value]
    async with aiohttp.ClientSession() as session:
        pods = await no_url._read(session, target({}), [])
    assert (pods.error, pods.source) == ("NoReadyPods", "pod metrics endpoints")
