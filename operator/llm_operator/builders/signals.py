"""The autoscaling signal of one LLMDeployment as PromQL, and the prometheus-adapter rules.

`query(target)` is what the builtin loop asks Prometheus and what the KEDA trigger
runs: the chosen metric summed over the replicas of one LLMDeployment (one value
per pod, so a second scrape of the same pod does not double it), or the spec's own
`query`. `EXTERNAL_METRICS` names the metric an HPA reads for each signal, and
`prometheus_adapter_rules()` is the `externalRules` block that makes
prometheus-adapter serve them (the chart's optional adapter rule and
docs/autoscaling.md are made from it). Pure, like every builder.
"""

from __future__ import annotations

from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.builders import common, monitoring

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_CACHE = "vllm:kv_cache_usage_perc"
IN_FLIGHT = "llm_gateway_requests_in_flight"
#: Requests finished, a counter with one series per `finished_reason`.
SUCCESS = "vllm:request_success_total"

#: The External metric an HPA reads, per (metric, includeRunning).
EXTERNAL_METRICS: dict[tuple[v1alpha1.AutoscalingMetric, bool], str] = {
    (v1alpha1.AutoscalingMetric.QUEUE_DEPTH, False): "llmoperator_queue_depth",
    (v1alpha1.AutoscalingMetric.QUEUE_DEPTH, True): "llmoperator_queue_depth_with_running",
    (v1alpha1.AutoscalingMetric.INFLIGHT, False): "llmoperator_requests_in_flight",
    (v1alpha1.AutoscalingMetric.KV_CACHE_USAGE, False): "llmoperator_kv_cache_usage",
}


def deployment_label() -> str:
    """The label every scraped series of an LLMDeployment carries with its name."""
    return monitoring.LLMDEPLOYMENT_LABEL


def _names(metric: v1alpha1.AutoscalingMetric, include_running: bool) -> tuple[str, ...]:
    if metric is v1alpha1.AutoscalingMetric.INFLIGHT:
        return (IN_FLIGHT,)
    if metric is v1alpha1.AutoscalingMetric.KV_CACHE_USAGE:
        return (KV_CACHE,)
    return (WAITING, RUNNING) if include_running else (WAITING,)


def summed(names: tuple[str, ...], matchers: str) -> str:
    """PromQL: one value per pod and metric name, summed (empty only if no series exists)."""
    if len(names) == 1:
        return monitoring.per_pod_sum(names[0], matchers)
    pattern = "|".join(names)
    return f'sum(max by (pod, __name__) ({{__name__=~"{pattern}",{matchers}}}))'


def built_query(target: common.Target) -> str:
    """The query built from `spec.autoscaling.metric` (ignoring an override)."""
    scaling = target.spec.autoscaling
    return summed(_names(scaling.metric, scaling.include_running), monitoring.selector(target))


def counts_requests(spec: v1alpha1.Autoscaling) -> bool:
    """Whether the signal counts requests in the engines (waiting + running, or in flight).

    Only then do the waiting queue and the finished requests say what the arrival rate
    is (`autoscaling.decision`): not for the queue alone, the KV cache, or an override.
    """
    if spec.query:
        return False
    if spec.metric is v1alpha1.AutoscalingMetric.INFLIGHT:
        return True
    return spec.metric is v1alpha1.AutoscalingMetric.QUEUE_DEPTH and spec.include_running


def completed_query(target: common.Target) -> str:
    """PromQL: requests finished so far by this LLMDeployment's replicas (every reason)."""
    return f"sum(max by (pod, finished_reason) ({SUCCESS}{{{monitoring.selector(target)}}}))"


def query(target: common.Target) -> str:
    """The PromQL the autoscaler acts on: the spec's override, or the one built from metric."""
    return target.spec.autoscaling.query or built_query(target)


def external_metric(spec: v1alpha1.Autoscaling) -> str:
    """The External metric name an HPA reads for this spec."""
    running = spec.include_running and spec.metric is v1alpha1.AutoscalingMetric.QUEUE_DEPTH
    return EXTERNAL_METRICS[(spec.metric, running)]


def prometheus_adapter_rules() -> dict[str, Any]:
    """The prometheus-adapter `externalRules` serving every metric of `EXTERNAL_METRICS`.

    Each rule is namespaced (an HPA reads its own namespace's series) and takes the
    HPA's selector (`<deployment label>: <name>`) as label matchers, so one rule
    serves every LLMDeployment.
    """
    label = deployment_label()
    rules = []
    for (metric, running), name in EXTERNAL_METRICS.items():
        names = _names(metric, running)
        rules.append(
            {
                # Discovery needs one series name; the query below may read two.
                "seriesQuery": f'{names[0]}{{namespace!="",{label}!=""}}',
                "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
                "name": {"as": name},
                "metricsQuery": summed(names, "<<.LabelMatchers>>"),
            }
        )
    return {"externalRules": rules}
