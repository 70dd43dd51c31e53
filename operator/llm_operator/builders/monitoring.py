"""Prometheus Operator monitors (PodMonitor or ServiceMonitor) and the queries they feed.

Every replica has one scrape target per metrics source, told apart by the label
`component`: `engine` (vLLM's `vllm:*`, read through the gateway's /metrics/engine
when guardrails are on, or vLLM's own /metrics) and, with guardrails on, `gateway`
(`llm_gateway_*` at the gateway's /metrics). Every scraped series is relabelled with
`namespace`, `pod` and `llmdeployment`, the labels every query of the alerts, the
autoscalers and the dashboards selects on; the operator's own per-LLMDeployment
series carry the same two (`namespace`, `llmdeployment`), so one selector reads both.
At most one of the two monitors exists (the API refuses both): each would scrape the
same replicas. Queries that count replicas count pods, never targets, and queue
depths take one value per pod, so a second scrape of the same pod (another job of the
user's) does not double them.
"""

from __future__ import annotations

from typing import Any

from llm_operator.builders import common

LLMDEPLOYMENT_LABEL = "llmdeployment"
COMPONENT_LABEL = "component"
ENGINE = "engine"
GATEWAY = "gateway"
MONITORING_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"
# Where the engine's metrics are read: through the gateway (vLLM listens on 127.0.0.1
# only when guardrails are on) or from vLLM itself.
ENGINE_PATH_VIA_GATEWAY = "/metrics/engine"
METRICS_PATH = "/metrics"


def selector(target: common.Target) -> str:
    """PromQL label matchers of one LLMDeployment's series (scraped and the operator's)."""
    return f'namespace="{target.namespace}",{LLMDEPLOYMENT_LABEL}="{target.name}"'


def engine_up(sel: str) -> str:
    """PromQL: the engine scrape targets of the selected replicas that are up."""
    return f'up{{{sel},{COMPONENT_LABEL}="{ENGINE}"}} == 1'


def serving_pods(sel: str) -> str:
    """PromQL: how many replicas have their engine scraped (pods, not targets)."""
    return f"count(count by (pod) ({engine_up(sel)}))"


def per_pod_sum(metric: str, sel: str) -> str:
    """PromQL: a per-replica gauge summed over replicas, one value per pod."""
    return f"sum(max by (pod) ({metric}{{{sel}}}))"


def queue_depth_query(target: common.Target) -> str:
    """PromQL: the queue (waiting, plus running with `includeRunning`) summed over
    replicas, which the backlog alert reads whatever the autoscaling metric is (the
    autoscaler's own signal is `signals.query`)."""
    sel = selector(target)
    waiting = per_pod_sum("vllm:num_requests_waiting", sel)
    if target.spec.autoscaling.include_running:
        return f"{waiting} + {per_pod_sum('vllm:num_requests_running', sel)}"
    return waiting


def _relabelings(component: str) -> list[dict[str, Any]]:
    return [
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_llmoperator_io_deployment"],
            "targetLabel": LLMDEPLOYMENT_LABEL,
        },
        {"sourceLabels": ["__meta_kubernetes_namespace"], "targetLabel": "namespace"},
        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
        {"targetLabel": COMPONENT_LABEL, "replacement": component},
    ]


def _endpoints(target: common.Target) -> list[dict[str, Any]]:
    """One endpoint per metrics source of a replica, each with its `component` label."""
    if not target.gateway_enabled:
        return [_endpoint("http", METRICS_PATH, ENGINE)]
    return [
        _endpoint("http", METRICS_PATH, GATEWAY),
        _endpoint("http", ENGINE_PATH_VIA_GATEWAY, ENGINE),
    ]


def _endpoint(port: str, path: str, component: str) -> dict[str, Any]:
    return {
        "port": port,
        "path": path,
        "interval": SCRAPE_INTERVAL,
        "relabelings": _relabelings(component),
    }


def pod_monitor(target: common.Target) -> dict[str, Any] | None:
    """PodMonitor scraping every replica's gateway and engine metrics."""
    if not target.spec.observability.pod_monitor:
        return None
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": common.metadata(target, target.name, "monitoring"),
        "spec": {
            "selector": {"matchLabels": common.selector_labels(target)},
            "namespaceSelector": {"matchNames": [target.namespace]},
            "podMetricsEndpoints": _endpoints(target),
        },
    }


def service_monitor(target: common.Target) -> dict[str, Any] | None:
    """ServiceMonitor scraping the same endpoints through the Service's endpoints."""
    if not target.spec.observability.service_monitor:
        return None
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": common.metadata(target, target.name, "monitoring"),
        "spec": {
            "selector": {"matchLabels": common.selector_labels(target)},
            "namespaceSelector": {"matchNames": [target.namespace]},
            "endpoints": _endpoints(target),
        },
    }
