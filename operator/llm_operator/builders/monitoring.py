"""Prometheus Operator objects: PodMonitor, ServiceMonitor and PrometheusRule.

Scraped series carry the label `llmoperator_io_deployment` (the Pod label
`llmoperator.io/deployment`, sanitised by Prometheus), which every query of the
alerts, the autoscalers and the dashboards selects on, together with `namespace`.
"""

from __future__ import annotations

from typing import Any

from llm_operator.builders import common

DEPLOYMENT_LABEL = "llmoperator_io_deployment"
MONITORING_API = "monitoring.coreos.com/v1"


def selector(target: common.Target) -> str:
    """PromQL label matchers of one LLMDeployment's series."""
    return f'namespace="{target.namespace}",{DEPLOYMENT_LABEL}="{target.name}"'


def queue_depth_query(target: common.Target) -> str:
    """PromQL for the queue depth the autoscalers act on (summed over replicas)."""
    waiting = f"sum(vllm:num_requests_waiting{{{selector(target)}}})"
    if target.spec.autoscaling.include_running:
        return f"{waiting} + sum(vllm:num_requests_running{{{selector(target)}}})"
    return waiting


def _endpoints(target: common.Target) -> list[dict[str, Any]]:
    endpoints = [{"port": "http", "path": "/metrics", "interval": "15s"}]
    if target.gateway_enabled:
        endpoints.append({"port": "http", "path": "/metrics/engine", "interval": "15s"})
    return endpoints


def _relabel_deployment() -> list[dict[str, Any]]:
    return [
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_llmoperator_io_deployment"],
            "targetLabel": DEPLOYMENT_LABEL,
        }
    ]


def pod_monitor(target: common.Target) -> dict[str, Any] | None:
    """PodMonitor scraping every replica's gateway and engine metrics."""
    if not target.spec.observability.pod_monitor:
        return None
    endpoints = [{**e, "relabelings": _relabel_deployment()} for e in _endpoints(target)]
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": common.metadata(target, target.name, "monitoring"),
        "spec": {
            "selector": {"matchLabels": common.selector_labels(target)},
            "namespaceSelector": {"matchNames": [target.namespace]},
            "podMetricsEndpoints": endpoints,
        },
    }


def service_monitor(target: common.Target) -> dict[str, Any] | None:
    """ServiceMonitor scraping through the Service's endpoints."""
    if not target.spec.observability.service_monitor:
        return None
    endpoints = [{**e, "relabelings": _relabel_deployment()} for e in _endpoints(target)]
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": common.metadata(target, target.name, "monitoring"),
        "spec": {
            "selector": {"matchLabels": common.selector_labels(target)},
            "namespaceSelector": {"matchNames": [target.namespace]},
            "endpoints": endpoints,
        },
    }


def prometheus_rule(target: common.Target) -> dict[str, Any] | None:
    """Alerts for one LLMDeployment."""
    if not target.spec.observability.prometheus_rule:
        return None
    sel = selector(target)
    labels = {"severity": "warning", "llmdeployment": target.name}
    depth = target.spec.autoscaling.target_queue_depth
    rules = [
        {
            "alert": "LLMDeploymentDown",
            "expr": f"sum(up{{{sel}}}) == 0",
            "for": "5m",
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"No replica of {target.namespace}/{target.name} is being scraped.",
                "description": "Every target of the LLMDeployment has been down for 5 minutes.",
            },
        },
        {
            "alert": "LLMQueueBacklog",
            "expr": f"{queue_depth_query(target)} / clamp_min(count(up{{{sel}}} == 1), 1) "
            f"> {2 * depth:g}",
            "for": "10m",
            "labels": labels,
            "annotations": {
                "summary": f"Requests are queueing on {target.namespace}/{target.name}.",
                "description": "Waiting requests per replica have stayed above twice the "
                "autoscaling target for 10 minutes; the deployment is at its maximum size "
                "or cannot get GPUs.",
            },
        },
        {
            "alert": "LLMTimeToFirstTokenHigh",
            "expr": "histogram_quantile(0.95, sum by (le) "
            f"(rate(vllm:time_to_first_token_seconds_bucket{{{sel}}}[5m]))) > 5",
            "for": "10m",
            "labels": labels,
            "annotations": {
                "summary": f"p95 time to first token above 5 s on {target.name}.",
                "description": "Users wait more than 5 seconds for the first token.",
            },
        },
        {
            "alert": "LLMKVCacheNearlyFull",
            "expr": f"max(vllm:kv_cache_usage_perc{{{sel}}}) > 0.95",
            "for": "10m",
            "labels": labels,
            "annotations": {
                "summary": f"KV cache above 95% on {target.name}.",
                "description": "The engine is preempting sequences; add replicas or lower "
                "maxNumSeqs.",
            },
        },
    ]
    if target.gateway_enabled:
        requests = f"sum(rate(llm_gateway_requests_total{{{sel}}}[5m]))"
        rules += [
            {
                "alert": "LLMGatewayErrors",
                "expr": f'sum(rate(llm_gateway_requests_total{{{sel},code=~"5.."}}[5m])) / '
                f"clamp_min({requests}, 1e-9) > 0.05",
                "for": "10m",
                "labels": labels,
                "annotations": {
                    "summary": f"More than 5% of requests to {target.name} fail with 5xx.",
                    "description": "The gateway answers 503/504 when the engine is down or "
                    "too slow; check the engine's logs and readiness.",
                },
            },
            {
                "alert": "LLMGuardrailBlocksHigh",
                "expr": "sum(rate(llm_gateway_guardrail_verdicts_total"
                f'{{{sel},action="block"}}[15m])) / clamp_min({requests}, 1e-9) > 0.2',
                "for": "15m",
                "labels": labels,
                "annotations": {
                    "summary": f"Guardrails block more than 20% of requests to {target.name}.",
                    "description": "Either an attack is under way or the policy is too strict "
                    "for legitimate traffic; see llm_gateway_guardrail_verdicts_total by check.",
                },
            },
        ]
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": common.metadata(target, target.name, "monitoring"),
        "spec": {"groups": [{"name": f"llmdeployment.{target.name}", "rules": rules}]},
    }
