"""Every dashboard query and every alert's expression, run on a real Prometheus fed by the
real exporters under load: each must parse and return data, and name only metrics
some exporter emits.

The operator (in-process, against the real API server) manages three LLMDeployments:
`chat` (guardrails on, KEDA-style autoscaling 1..5 replicas of 4 GPUs at 2 queued per
replica), `plain` (no gateway, one replica) and `broken` (a node selector the API
server refuses, so the operator's API-error and failed-pass series exist). Their Ready
Pods get engine and gateway processes, Prometheus scrapes them and the operator and
loads the PrometheusRules the operator renders (observed_fleet.py), and load rises and
falls so that `chat` scales up and down. Then every query of the chart's dashboards
(variables filled in) and every alert's probes go through Prometheus's HTTP API, and
each dashboard is drawn from the same data (set LLM_OPERATOR_DASHBOARD_PICTURES=DIR to
keep the PNGs, as `make dashboard-pictures` does for docs/).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from typing import Any

import pytest
import yaml

from llm_operator import handlers
from llm_operator.builders import alerts, children, common, monitoring
from tests.integration import cluster, conftest, observed_fleet
from tests.integration import test_operator as ops
from tests.support import dashboard_png, dashboard_queries, promcheck, prometheus

PRUNED = {"serviceMonitor": False, "prometheusRule": True}
PICTURES_ENV = "LLM_OPERATOR_DASHBOARD_PICTURES"
GUARDRAILS = {
    "enabled": True,
    "input": {"promptInjection": {"action": "block"}},
    "cache": {"enabled": True},
}


def specs(prometheus_url: str) -> dict[str, dict[str, Any]]:
    return {
        "chat": {
            "model": {"uri": "hf://org/chat"},
            "resources": {"gpus": 4},
            "guardrails": GUARDRAILS,
            "autoscaling": {
                "enabled": True,
                "provider": "keda",
                "minReplicas": 1,
                "maxReplicas": 5,
                "targetQueueDepth": 2,
                "prometheusUrl": prometheus_url,
            },
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


def rule_file(namespace: str, path: pathlib.Path, url: str) -> list[common.Target]:
    """The PrometheusRules the operator renders for chat and plain, as one rule file."""
    targets = [target(namespace, n, s) for n, s in specs(url).items() if n != "broken"]
    groups = []
    for t in targets:
        rule = alerts.prometheus_rule(t, common.Options())
        assert rule is not None
        groups += rule["spec"]["groups"]
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    return targets


def deployment_replicas(plane: cluster.ControlPlane, namespace: str, name: str) -> int:
    return int(plane.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0)


@pytest.mark.timeout(1200)
def test_every_dashboard_query_and_alert_returns_data_under_load(
    operator: conftest.Operator, namespace: str, tmp_path: pathlib.Path
) -> None:
    plane = operator.plane
    port = handlers.RUNTIME.metrics_port
    assert port is not None
    fleet = observed_fleet.Fleet(plane, namespace, tmp_path)
    rules = tmp_path / "rules.yaml"
    # The rules do not depend on the Prometheus URL; the spec needs it.
    rule_file(namespace, rules, "http://placeholder:9090")
    server = prometheus.Prometheus.start(
        observed_fleet.prometheus_config(fleet.sd_file, port, rules), tmp_path / "prometheus"
    )
    load = observed_fleet.Load(fleet)
    try:
        targets = rule_file(namespace, rules, server.url)
        for name, spec in specs(server.url).items():
            doc = {"apiVersion": ops.GROUP_VERSION, "kind": "LLMDeployment", "spec": spec}
            ops.create(plane, namespace, {**doc, "metadata": {"name": name}})
        for t in targets:
            fleet.watch(t)
            ops.wait_ready(plane, namespace, t.name)
        chat = targets[0]
        scaler = observed_fleet.Scaler(plane, server, chat)
        seen: list[int] = []
        with (
            observed_fleet.background(fleet.sync, 2.0),
            observed_fleet.background(lambda: seen.append(scaler.step() or 0), 3.0),
        ):
            cluster.wait_for(
                "replicas serving", lambda: fleet.urls("chat") and fleet.urls("plain"), 60
            )
            time.sleep(6)  # the processes' first scrapes
            start = time.time()
            load.start()
            phases = [(45, 3), (110, 20), (110, 2)]  # (seconds, concurrent chat clients)
            load.concurrency["plain"] = 2
            for seconds, clients in phases:
                load.concurrency["chat"] = clients
                time.sleep(seconds)
                if clients == 20:
                    # An SRE drops plain's ServiceMonitor: the operator prunes it.
                    ops.patch_spec(plane, namespace, "plain", {"observability": PRUNED})
            end = time.time()
            load.stop()
        scaled_up = max(seen)
        final = deployment_replicas(plane, namespace, "chat")
        print(f"chat's replicas: max {scaled_up}, final {final}; answers by status {load.answered}")
        assert scaled_up >= 3, f"chat never scaled up: {seen}"
        # broken's passes fail on the API server's 422; it is still counted, not Ready.
        (unknown,) = server.query(
            f'llm_operator_llmdeployment_phase{{namespace="{namespace}",llmdeployment="broken"}}'
        )
        assert unknown["metric"]["phase"] == "Unknown"
        assert server.query('llm_operator_api_errors_total{code="422",operation="apply"}')
        assert final == 1, f"chat did not scale back down: {seen}"

        values = {
            "namespace": namespace,
            "llmdeployment": "chat",
            "job": "llm-operator",
            "__rate_interval": "30s",
            "__range": f"{math.ceil(end - start)}s",
            "__interval": "15s",
        }
        found = dashboard_queries.queries(values)
        queries = [(str(q), q.expr, True) for q in found if not q.annotation]
        for t in targets:
            for alert in alerts.alerts(t):
                queries.append((f"{t.name} alert {alert.name}", alert.expr, False))
                queries += [(f"{t.name} alert {alert.name} probe", p, True) for p in alert.probes]
        queries.append(("chat KEDA query", monitoring.queue_depth_query(chat), True))
        checked = promcheck.check(server, queries, at=end)
        events = [(str(q), q.expr, True) for q in found if q.annotation]
        checked += promcheck.check(server, events, span=(start, end, 15.0))
        failed = [str(c) for c in checked if not c.ok]
        dashboards = sum(1 for c in checked if c.where.startswith("llm-"))
        print(
            f"{len(checked)} queries checked ({dashboards} from dashboards): {len(failed)} failed"
        )
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

        # Prometheus evaluated the rules the operator renders without error.
        health = {rule["name"]: rule["health"] for rule in server.rules()}
        assert len(health) >= 10
        assert set(health.values()) == {"ok"}, health

        pictures = pathlib.Path(os.environ.get(PICTURES_ENV) or tmp_path / "pictures")
        for path in sorted(dashboard_queries.DASHBOARDS.glob("*.json")):
            model = json.loads(path.read_text(encoding="utf-8"))
            out = dashboard_png.render(
                model, server, values, start, end, pictures / f"{path.stem}.png"
            )
            assert out.stat().st_size > 20_000, out
    finally:
        load.stop()
        fleet.stop()
        server.stop()
