"""Every dashboard query and every alert's expression, run on a real Prometheus fed by the
real exporters under load: each must parse and return data, and name only metrics
some exporter emits.

The operator (in-process, against the real API server) manages three LLMDeployments:
`chat` (guardrails on, the builtin autoscaler at 1..5 replicas of 4 GPUs, reading the
harness's Prometheus), `plain` (no gateway, one replica) and `broken` (a node selector
the API server refuses, so the operator's API-error and failed-pass series exist).
The load harness (`tests/support/loadharness`) serves their Ready Pods with engine
simulators (2% of requests fail) and, for `chat`, gateways; its Prometheus scrapes
them and the operator and evaluates the PrometheusRules the operator applied. `chat`
is served only once its autoscaler has failed to read a signal (so those series
exist), then load (with guardrail-blocked, cached and streamed requests) rises and
falls, and the operator's own loop scales `chat` up to what the GPU nodes hold and
back down. Then every query of the chart's dashboards (variables filled in) and every
alert's probes go through Prometheus's HTTP API, and each dashboard is drawn from the
same data (set LLM_OPERATOR_DASHBOARD_PICTURES=DIR to keep the PNGs, as `make
dashboard-pictures` does for docs/).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llm_operator import handlers
from llm_operator.builders import alerts, children, common, monitoring, signals
from tests.integration import cluster, conftest
from tests.integration import test_operator as ops
from tests.support import dashboard_png, dashboard_queries, loadharness, promcheck, prometheus

PRUNED = {"serviceMonitor": False, "prometheusRule": True}
PICTURES_ENV = "LLM_OPERATOR_DASHBOARD_PICTURES"
GUARDRAILS = {
    "enabled": True,
    "input": {"promptInjection": {"action": "block"}},
    "cache": {"enabled": True},
}
ENGINE = loadharness.EngineSettings(
    max_num_seqs=2, decode_tokens_per_s=60.0, output_tokens=24, kv_cache_tokens=1024, fail_rate=0.02
)
MIX = loadharness.Traffic(blocked=0.1, repeated=0.15, streamed=0.3, temperature=0.7)
# Windows short enough for a run of a few minutes (the defaults: docs/autoscaling.md).
AUTOSCALING = {
    "enabled": True,
    "provider": "builtin",
    "minReplicas": 1,
    "maxReplicas": 5,
    "includeRunning": True,
    "targetPerReplica": 4,
    "pollingIntervalSeconds": 2,
    "stableWindowSeconds": 20,
    "panicWindowSeconds": 4,
    "scaleDownStabilizationSeconds": 30,
    "scalePeriodSeconds": 10,
}
#: (seconds, concurrent clients of chat): calm, a rush chat scales up for, calm again.
PHASES = [(45, 3), (110, 20), (110, 2)]


def specs(prometheus_url: str) -> dict[str, dict[str, Any]]:
    return {
        "chat": {
            "model": {"uri": "hf://org/chat"},
            "resources": {"gpus": 4},
            "guardrails": GUARDRAILS,
            "autoscaling": {**AUTOSCALING, "prometheusUrl": prometheus_url},
            "observability": {"podMonitor": True, "prometheusRule": True},
        },
        "plain": {
            "model": {"uri": "hf://org/plain"},
            "replicas": 1,
            "observability": {"serviceMonitor": True, "prometheusRule": True},
        },
        "broken": {
            "model": {"uri": "hf://org/broken"},
            "scheduling": {"nodeSelector": {"not a label key!": "x"}},
        },
    }


def target(namespace: str, name: str, spec: dict[str, Any]) -> common.Target:
    return children.target_from_object(
        {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


def deployment_replicas(plane: cluster.ControlPlane, namespace: str, name: str) -> int:
    return int(plane.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0)


def events(plane: cluster.ControlPlane, namespace: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in plane.core.list_namespaced_event(namespace).items
        if e.reason == reason and e.involved_object.name == name
    ]


@pytest.fixture
def harness(operator: conftest.Operator, tmp_path: pathlib.Path) -> Iterator[loadharness.Harness]:
    with loadharness.Harness(operator.plane.new_client(), tmp_path, engine=ENGINE) as running:
        port = handlers.RUNTIME.metrics_port
        assert port is not None, "the operator serves no metrics"
        running.scrape_operator(f"127.0.0.1:{port}")
        yield running


@pytest.mark.timeout(1200)
def test_every_dashboard_query_and_alert_returns_data_under_load(
    operator: conftest.Operator,
    namespace: str,
    harness: loadharness.Harness,
    tmp_path: pathlib.Path,
) -> None:
    plane = operator.plane
    server = harness.prometheus
    assert server is not None
    chat_query = signals.query(target(namespace, "chat", specs(server.url)["chat"]))
    for name, spec in specs(server.url).items():
        doc = {"apiVersion": ops.GROUP_VERSION, "kind": "LLMDeployment", "spec": spec}
        ops.create(plane, namespace, {**doc, "metadata": {"name": name}})
    for name in ("chat", "plain"):
        ops.wait_ready(plane, namespace, name)
    harness.serve(namespace, "plain")
    # Before chat is served its autoscaler reads no signal, and says so.
    cluster.wait_for(
        "chat's failed readings in Prometheus",
        lambda: server.query(
            f'llm_operator_autoscaler_signal_errors_total{{namespace="{namespace}",'
            f'llmdeployment="chat"}}'
        ),
        timeout=60,
    )
    harness.serve(namespace, "chat")
    cluster.wait_for("chat's signal", lambda: server.value(chat_query) is not None, 60)
    time.sleep(5)  # a few scrapes of every process before the load starts

    start = time.time()
    plain = harness.load(namespace, "plain", concurrency=2, max_tokens=16, mix=MIX)
    chat = harness.load(namespace, "chat", concurrency=PHASES[0][1], max_tokens=24, mix=MIX)
    seen: list[int] = []
    for seconds, clients in PHASES:
        chat.set_concurrency(clients)
        phase_end = time.monotonic() + seconds
        while time.monotonic() < phase_end:
            seen.append(deployment_replicas(plane, namespace, "chat"))
            time.sleep(3)
        if clients == max(c for _, c in PHASES):
            # An SRE drops plain's ServiceMonitor: the operator prunes it.
            ops.patch_spec(plane, namespace, "plain", {"observability": PRUNED})
    cluster.wait_for(
        "chat back at 1 replica", lambda: deployment_replicas(plane, namespace, "chat") == 1, 120
    )
    time.sleep(10)  # the scale-down scraped, so the pictures end on it
    end = time.time()
    chat.stop()
    plain.stop()
    print(
        f"chat's replicas over the run: {seen}; chat answers {chat.stats.statuses}, "
        f"plain answers {plain.stats.statuses}"
    )
    # The operator's own loop scaled chat up (as far as the GPU nodes hold) and down.
    assert max(seen) >= 3, f"chat never scaled up: {seen}"
    assert events(plane, namespace, "chat", "ScaledUp")
    assert events(plane, namespace, "chat", "ScaledDown")
    decisions = 'llm_operator_autoscaler_decisions_total{{llmdeployment="chat",direction="{}"}}'
    assert server.value(decisions.format("up")), "no scale-up decision in Prometheus"
    assert server.value(decisions.format("down")), "no scale-down decision in Prometheus"
    # The mix reached the gateway: blocked (4xx), served from cache or engine, and failed.
    assert chat.stats.refused > 0
    assert chat.stats.answered > 0
    assert chat.stats.failed > 0
    # broken's passes fail on the API server's 422; it is still counted, not Ready.
    (unknown,) = server.query(
        f'llm_operator_llmdeployment_phase{{namespace="{namespace}",llmdeployment="broken"}}'
    )
    assert unknown["metric"]["phase"] == "Unknown"
    assert server.query('llm_operator_api_errors_total{code="422",operation="apply"}')

    values = {
        "namespace": namespace,
        "llmdeployment": "chat",
        "job": prometheus.OPERATOR_JOB,
        "__rate_interval": "30s",
        "__range": f"{math.ceil(end - start)}s",
        "__interval": "15s",
    }
    targets = [target(namespace, n, s) for n, s in specs(server.url).items() if n != "broken"]
    found = dashboard_queries.queries(values)
    queries = [(str(q), q.expr, True) for q in found if not q.annotation]
    for t in targets:
        for alert in alerts.alerts(t):
            queries.append((f"{t.name} alert {alert.name}", alert.expr, False))
            queries += [(f"{t.name} alert {alert.name} probe", p, True) for p in alert.probes]
    queries.append(("chat autoscaler signal query", chat_query, True))
    queries.append(("chat queue depth query", monitoring.queue_depth_query(targets[0]), True))
    checked = promcheck.check(server, queries, at=end)
    annotations = [(str(q), q.expr, True) for q in found if q.annotation]
    checked += promcheck.check(server, annotations, span=(start, end, 15.0))
    failed = [str(c) for c in checked if not c.ok]
    dashboards = sum(1 for c in checked if c.where.startswith("llm-"))
    print(f"{len(checked)} queries checked ({dashboards} from dashboards): {len(failed)} failed")
    assert not failed, "\n".join(failed)

    # The check tells a metric no exporter emits (vLLM V0's name for the KV cache).
    (renamed,) = promcheck.check(
        server,
        [
            (
                "renamed",
                f'max(vllm:gpu_cache_usage_perc{{namespace="{namespace}"}}) or vector(0)',
                True,
            )
        ],
        at=end,
    )
    assert not renamed.ok
    assert renamed.unknown == ("vllm:gpu_cache_usage_perc",)

    # Prometheus evaluates the PrometheusRules the operator applied, without error.
    health = {rule["name"]: rule["health"] for rule in server.rules()}
    assert set(health) == {a.name for t in targets for a in alerts.alerts(t)}
    assert set(health.values()) == {"ok"}, health

    pictures = pathlib.Path(os.environ.get(PICTURES_ENV) or tmp_path / "pictures")
    for path in sorted(dashboard_queries.DASHBOARDS.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        out = dashboard_png.render(model, server, values, start, end, pictures / f"{path.stem}.png")
        assert out.stat().st_size > 20_000, out
