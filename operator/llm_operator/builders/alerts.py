"""The PrometheusRule of one LLMDeployment: its alerts, each with a runbook section.

`alerts(target)` lists the alerts the spec calls for as `Alert` values; the
PrometheusRule renders them. Every alert has a summary, a description and a
`runbook_url` pointing at its section of docs/runbooks.md (the base URL is an operator
option). An alert's `probes` are the sub-expressions that must return data for the
alert to be able to fire (its own expression returns nothing while it is quiet): the
integration tier runs each against a real Prometheus fed by the real exporters, so an
alert reading a metric no exporter emits is caught. Queries count replicas as pods
and queues once per pod (see `monitoring`); a deployment with no engine target at all
is caught by `absent()`, unless the operator says it wants no replicas.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.builders import common, monitoring

API_ROUTES = 'route=~"/v1/.+"'  # client requests, not probes or scrapes
TTFT_SECONDS = 5.0
KV_CACHE_FULL = 0.95
ERROR_RATIO = 0.05
BLOCK_RATIO = 0.2


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alerting rule and what it needs to be able to fire."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    probes: tuple[str, ...]

    def rule(self, labels: dict[str, str], runbook_base: str) -> dict[str, Any]:
        """The rule as the PrometheusRule (and a Prometheus rule file) holds it."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {**labels, "severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{runbook_base}#{self.name.lower()}",
            },
        }


def _operator(metric: str, sel: str) -> str:
    return f"llm_operator_llmdeployment_{metric}{{{sel}}}"


def _ratio(numerator: str, denominator: str) -> str:
    # `or vector(0)`: a counter with a label value never seen yet has no series at all.
    return f"(({numerator}) or vector(0)) / {denominator}"


def availability(target: common.Target) -> list[Alert]:
    """Down, engine metrics absent, replicas unavailable, GPU shortage."""
    sel = monitoring.selector(target)
    who = f"{target.namespace}/{target.name}"
    up = f"absent({monitoring.engine_up(sel)})"
    wants_none = f"{_operator('desired_replicas', sel)} == 0"
    waiting = f"vllm:num_requests_waiting{{{sel}}}"
    ready = f"{_operator('ready_replicas', sel)} > 0"
    return [
        Alert(
            "LLMDeploymentDown",
            f"{up} unless on() ({wants_none})",
            "5m",
            "critical",
            f"No replica of {who} is serving metrics.",
            "No engine scrape target of the LLMDeployment has been up for 5 minutes "
            "(none exist, or all are down), while it wants replicas.",
            (monitoring.engine_up(sel), _operator("desired_replicas", sel)),
        ),
        Alert(
            "LLMEngineMetricsAbsent",
            f"absent({waiting}) and on() ({ready})",
            "10m",
            "warning",
            f"{who} has ready replicas but Prometheus has none of its vllm: metrics.",
            "The operator counts ready replicas, yet no vllm:num_requests_waiting series "
            "carries this LLMDeployment's labels: the monitor is not selected, the engine "
            "endpoint fails, or the engine renamed its metrics.",
            (waiting, _operator("ready_replicas", sel)),
        ),
        Alert(
            "LLMReplicasUnavailable",
            f"{_operator('unavailable_replicas', sel)} > 0",
            "15m",
            "warning",
            f"{who} has had wanted replicas not ready for 15 minutes.",
            "Fewer replicas are ready than the LLMDeployment wants; model loading that "
            "takes this long, crash loops or failing probes are the usual causes.",
            (_operator("unavailable_replicas", sel),),
        ),
        Alert(
            "LLMGPUShortage",
            f"{_operator('unschedulable_pods', sel)} > 0",
            "5m",
            "warning",
            f"Pods of {who} are Pending: no node has the GPUs they need.",
            "The scheduler cannot place some replicas (PodScheduled=False, Unschedulable); "
            "the cluster is out of free GPUs of the requested type.",
            (_operator("unschedulable_pods", sel),),
        ),
    ]


def saturation(target: common.Target) -> list[Alert]:
    """Queue backlog, time to first token, KV cache, autoscaler pinned at its maximum."""
    sel = monitoring.selector(target)
    who = f"{target.namespace}/{target.name}"
    scaling = target.spec.autoscaling
    # The queue's own target when the autoscaler scales on it, else the default queue target.
    depth = (
        scaling.target
        if scaling.metric is v1alpha1.AutoscalingMetric.QUEUE_DEPTH
        else v1alpha1.DEFAULT_QUEUE_TARGET
    )
    per_replica = (
        f"({monitoring.queue_depth_query(target)}) / clamp_min({monitoring.serving_pods(sel)}, 1)"
    )
    ttft = (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(vllm:time_to_first_token_seconds_bucket{{{sel}}}[5m])))"
    )
    kv = f"max(vllm:kv_cache_usage_perc{{{sel}}})"
    out = [
        Alert(
            "LLMQueueBacklog",
            f"{per_replica} > {2 * depth:g}",
            "10m",
            "warning",
            f"Requests are queueing on {who}.",
            f"The queue per serving replica has stayed above {2 * depth:g} (twice the "
            "autoscaling target) for 10 minutes: the deployment is at its maximum size, "
            "cannot get GPUs, or is not autoscaled.",
            (per_replica,),
        ),
        Alert(
            "LLMTimeToFirstTokenHigh",
            f"{ttft} > {TTFT_SECONDS:g}",
            "10m",
            "warning",
            f"p95 time to first token above {TTFT_SECONDS:g} s on {who}.",
            f"Users have waited more than {TTFT_SECONDS:g} seconds for the first token "
            "(95th percentile over 5 minutes) for 10 minutes.",
            (ttft,),
        ),
        Alert(
            "LLMKVCacheSaturated",
            f"{kv} > {KV_CACHE_FULL:g}",
            "10m",
            "warning",
            f"KV cache above {KV_CACHE_FULL:.0%} on a replica of {who}.",
            "The engine has no room for more sequences and preempts running ones; add "
            "replicas, lower engine.maxNumSeqs or maxModelLen, or use an fp8 KV cache.",
            (kv,),
        ),
    ]
    if scaling.enabled:
        desired = _operator("desired_replicas", sel)
        out.append(
            Alert(
                "LLMAutoscalerAtMax",
                f"({desired} >= {scaling.max_replicas}) and on() ({per_replica} > {depth:g})",
                "15m",
                "warning",
                f"The autoscaler of {who} is pinned at maxReplicas ({scaling.max_replicas}).",
                "The LLMDeployment has wanted its maximum number of replicas for 15 minutes "
                "and the queue per replica is still above the target: raise maxReplicas "
                "or add capacity.",
                (desired, per_replica),
            )
        )
    return out


def errors(target: common.Target) -> list[Alert]:
    """Error rate (at the gateway, or the engine's own when there is none), guardrail blocks."""
    sel = monitoring.selector(target)
    who = f"{target.namespace}/{target.name}"
    if not target.gateway_enabled:
        total = f"sum(rate(vllm:request_success_total{{{sel}}}[5m]))"
        failed = f'sum(rate(vllm:request_success_total{{{sel},finished_reason="error"}}[5m]))'
        ratio = _ratio(failed, total)
        return [
            Alert(
                "LLMErrorRateHigh",
                f"{ratio} > {ERROR_RATIO:g}",
                "10m",
                "warning",
                f"More than {ERROR_RATIO:.0%} of requests to {who} end in an engine error.",
                "vLLM finished more than 5% of requests with reason `error` over 5 minutes, "
                "for 10 minutes; check the engine's logs.",
                (ratio,),
            )
        ]
    requests = f"sum(rate(llm_gateway_requests_total{{{sel},{API_ROUTES}}}[5m]))"
    failed = f'sum(rate(llm_gateway_requests_total{{{sel},{API_ROUTES},code=~"5.."}}[5m]))'
    error_ratio = _ratio(failed, requests)
    requests_10m = f"sum(rate(llm_gateway_requests_total{{{sel},{API_ROUTES}}}[10m]))"
    blocks = f'sum(rate(llm_gateway_guardrail_verdicts_total{{{sel},action="block"}}[10m]))'
    block_ratio = _ratio(blocks, requests_10m)
    return [
        Alert(
            "LLMErrorRateHigh",
            f"{error_ratio} > {ERROR_RATIO:g}",
            "10m",
            "warning",
            f"More than {ERROR_RATIO:.0%} of requests to {who} fail with 5xx.",
            "The gateway answers 503 when the engine is down and 504 when it is too slow; "
            "more than 5% of API requests have failed that way for 10 minutes.",
            (error_ratio,),
        ),
        Alert(
            "LLMGuardrailBlockSpike",
            f"{block_ratio} > {BLOCK_RATIO:g}",
            "10m",
            "warning",
            f"Guardrails block more than {BLOCK_RATIO:.0%} of requests to {who}.",
            "Either an attack is under way or the policy is too strict for legitimate "
            "traffic; llm_gateway_guardrail_verdicts_total by check says which check blocks.",
            (block_ratio,),
        ),
    ]


def alerts(target: common.Target) -> list[Alert]:
    """Every alert of one LLMDeployment."""
    return [*availability(target), *saturation(target), *errors(target)]


def prometheus_rule(target: common.Target, options: common.Options) -> dict[str, Any] | None:
    """The PrometheusRule with this LLMDeployment's alerts, when the spec asks for it."""
    if not target.spec.observability.prometheus_rule:
        return None
    labels = {"namespace": target.namespace, monitoring.LLMDEPLOYMENT_LABEL: target.name}
    rules = [alert.rule(labels, options.runbook_url) for alert in alerts(target)]
    return {
        "apiVersion": monitoring.MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": common.metadata(target, target.name, "monitoring"),
        "spec": {"groups": [{"name": f"llmdeployment.{target.name}", "rules": rules}]},
    }
