"""The promtool test cases of the alerts and the autoscalers' query, as Python data.

Each `AlertCase` gives the series Prometheus would hold (as promtool's expanding
notation: `1x40` is 41 samples of 1, one a minute; `0+100x40` a counter growing by 100 a
minute) and whether the alert must fire at `EVAL_TIME`. Every alert has at least one
case that fires it and one that leaves it quiet. `ExprCase`s check a query's value.
Cases marked `fixes` are the three bugs of issue 16: `test_rules.py` runs them against
the expressions the builder rendered before the fix too, and requires them to fail
there.

Series carry the labels the monitors give them: `namespace`, `llmdeployment`, `pod`,
`component`, plus `job` and `instance`; the operator's own series carry `namespace` and
`llmdeployment` (scraped with honor_labels) and its `job` and `instance`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from llm_operator.builders import common, monitoring, signals

NAMESPACE = "prod"
NAME = "chat"
EVAL_TIME = "30m"
SPAN = "x40"  # every series runs 40 minutes

OPERATOR_LABELS = {"job": "llm-operator", "instance": "llm-operator:8081"}

#: The spec of each rule set the cases run against.
VARIANTS: dict[str, dict[str, object]] = {
    # guardrails on (gateway metrics), builtin autoscaling 1..3 replicas at 4 per replica.
    "gateway": {
        "model": {"uri": "hf://org/model"},
        "guardrails": {"enabled": True},
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "targetQueueDepth": 4},
        "observability": {"podMonitor": True, "prometheusRule": True},
    },
    # guardrails off (vLLM scraped directly), autoscaling off, 2 replicas.
    "engine": {
        "model": {"uri": "hf://org/model"},
        "replicas": 2,
        "observability": {"serviceMonitor": True, "prometheusRule": True},
    },
    # KEDA counting running requests too.
    "keda-running": {
        "model": {"uri": "hf://org/model"},
        "guardrails": {"enabled": True},
        "autoscaling": {
            "enabled": True,
            "provider": "keda",
            "includeRunning": True,
            "targetPerReplica": 48,
            "prometheusUrl": "http://prometheus:9090",
        },
        "observability": {"podMonitor": True, "prometheusRule": True},
    },
}


def _labels(extra: dict[str, str]) -> str:
    pairs = {"namespace": NAMESPACE, monitoring.LLMDEPLOYMENT_LABEL: NAME, **extra}
    return ",".join(f'{key}="{value}"' for key, value in pairs.items())


def scraped(metric: str, pod: str, component: str, job: str = "prod/chat", **extra: str) -> str:
    """A series scraped from one pod's `component` target."""
    labels = {
        "pod": pod,
        monitoring.COMPONENT_LABEL: component,
        "job": job,
        "instance": f"{pod}:8080",
        **extra,
    }
    return f"{metric}{{{_labels(labels)}}}"


def engine(metric: str, pod: str, job: str = "prod/chat", **extra: str) -> str:
    """A `vllm:` series of one pod (vLLM adds model_name and engine)."""
    return scraped(metric, pod, monitoring.ENGINE, job, model_name="m", engine="0", **extra)


def gateway(metric: str, pod: str, **extra: str) -> str:
    return scraped(metric, pod, monitoring.GATEWAY, **extra)


def operator(metric: str) -> str:
    """One of the operator's per-LLMDeployment series."""
    return f"llm_operator_llmdeployment_{metric}{{{_labels(OPERATOR_LABELS)}}}"


def targets(pods: int, up: int = 1, with_gateway: bool = True) -> list[tuple[str, str]]:
    """The `up` series of `pods` replicas: an engine target each, and a gateway target."""
    series = []
    for index in range(1, pods + 1):
        series.append((scraped("up", f"p{index}", monitoring.ENGINE), f"{up}{SPAN}"))
        if with_gateway:
            series.append((scraped("up", f"p{index}", monitoring.GATEWAY), f"1{SPAN}"))
    return series


def waiting(pods: int, per_pod: float, running: float = 0) -> list[tuple[str, str]]:
    series = []
    for index in range(1, pods + 1):
        pod = f"p{index}"
        series.append((engine("vllm:num_requests_waiting", pod), f"{per_pod:g}{SPAN}"))
        series.append((engine("vllm:num_requests_running", pod), f"{running:g}{SPAN}"))
    return series


def ttft(slow: bool) -> list[tuple[str, str]]:
    """Time-to-first-token buckets of one pod: 10 requests a minute, all slow (7.5-10 s) or
    all fast (under 0.5 s)."""
    series = []
    for le in ("0.5", "1", "2.5", "5", "7.5", "10", "+Inf"):
        grows = not slow or le in ("10", "+Inf")
        values = f"0+10{SPAN}" if grows else f"0{SPAN}"
        series.append((engine("vllm:time_to_first_token_seconds_bucket", "p1", le=le), values))
    return series


def requests(per_minute: int, code: str, route: str = "/v1/chat/completions") -> tuple[str, str]:
    series = gateway("llm_gateway_requests_total", "p1", route=route, method="POST", code=code)
    return series, f"0+{per_minute}{SPAN}"


def finished(per_minute: int, reason: str) -> tuple[str, str]:
    series = engine("vllm:request_success_total", "p1", finished_reason=reason)
    return series, f"0+{per_minute}{SPAN}"


def blocks(per_minute: int) -> tuple[str, str]:
    series = gateway(
        "llm_gateway_guardrail_verdicts_total",
        "p1",
        stage="input",
        check="prompt_injection",
        action="block",
    )
    return series, f"0+{per_minute}{SPAN}"


@dataclasses.dataclass(frozen=True)
class AlertCase:
    """Series, and whether `alert` fires on them at EVAL_TIME."""

    name: str
    variant: str
    alert: str
    series: list[tuple[str, str]]
    fires: bool
    # Labels of the expression's result, beyond the rule's own (non-aggregated exprs).
    result_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    fixes: str | None = None


@dataclasses.dataclass(frozen=True)
class ExprCase:
    """Series, and the value `query(target)` must have at EVAL_TIME."""

    name: str
    variant: str
    query: Callable[[common.Target], str]
    series: list[tuple[str, str]]
    value: float
    fixes: str | None = None


DOWN_NO_TARGETS = "LLMDeploymentDown never fired when there were no targets at all (no absent())"
TWO_TARGETS = (
    "two scrape targets per pod with the gateway on doubled count(up==1): the backlog alert "
    "fired at about 4x the target instead of 2x"
)
DUPLICATE_SCRAPE = (
    "a pod scraped twice (PodMonitor and ServiceMonitor) doubled every vllm: series and "
    "the KEDA query"
)

UNAVAILABLE = operator("unavailable_replicas")
ALERT_CASES: list[AlertCase] = [
    # --- LLMDeploymentDown
    AlertCase(
        "down: no target at all while replicas are wanted",
        "gateway",
        "LLMDeploymentDown",
        [(operator("desired_replicas"), f"2{SPAN}")],
        fires=True,
        fixes=DOWN_NO_TARGETS,
    ),
    AlertCase(
        "down: every engine target down",
        "engine",
        "LLMDeploymentDown",
        [*targets(2, up=0, with_gateway=False), (operator("desired_replicas"), f"2{SPAN}")],
        fires=True,
    ),
    AlertCase(
        "down: quiet while one engine target is up",
        "gateway",
        "LLMDeploymentDown",
        [*targets(1), *targets(2, up=0)[2:], (operator("desired_replicas"), f"2{SPAN}")],
        fires=False,
    ),
    AlertCase(
        "down: quiet when scaled to zero",
        "gateway",
        "LLMDeploymentDown",
        [(operator("desired_replicas"), f"0{SPAN}")],
        fires=False,
    ),
    # --- LLMEngineMetricsAbsent
    AlertCase(
        "engine metrics absent: ready replicas, no vllm: series",
        "gateway",
        "LLMEngineMetricsAbsent",
        [*targets(2), (operator("ready_replicas"), f"2{SPAN}")],
        fires=True,
    ),
    AlertCase(
        "engine metrics absent: quiet when the engine is scraped",
        "gateway",
        "LLMEngineMetricsAbsent",
        [*targets(2), *waiting(2, 0), (operator("ready_replicas"), f"2{SPAN}")],
        fires=False,
    ),
    # --- LLMReplicasUnavailable
    AlertCase(
        "unavailable: a replica not ready for 30 minutes",
        "engine",
        "LLMReplicasUnavailable",
        [(UNAVAILABLE, f"1{SPAN}")],
        fires=True,
        result_labels=OPERATOR_LABELS,
    ),
    AlertCase(
        "unavailable: quiet after 9 minutes (a model still loading)",
        "engine",
        "LLMReplicasUnavailable",
        [(UNAVAILABLE, "0x20 1x20")],
        fires=False,
    ),
    # --- LLMGPUShortage
    AlertCase(
        "gpu shortage: an unschedulable pod",
        "gateway",
        "LLMGPUShortage",
        [(operator("unschedulable_pods"), f"1{SPAN}")],
        fires=True,
        result_labels=OPERATOR_LABELS,
    ),
    AlertCase(
        "gpu shortage: quiet when every pod is placed",
        "gateway",
        "LLMGPUShortage",
        [(operator("unschedulable_pods"), f"0{SPAN}")],
        fires=False,
    ),
    # --- LLMQueueBacklog (target 4: fires above 8 per replica)
    AlertCase(
        "backlog: 3x the target per replica, two targets per pod",
        "gateway",
        "LLMQueueBacklog",
        [*targets(2), *waiting(2, 12)],
        fires=True,
        fixes=TWO_TARGETS,
    ),
    AlertCase(
        "backlog: quiet at 1.5x the target per replica",
        "gateway",
        "LLMQueueBacklog",
        [*targets(2), *waiting(2, 6)],
        fires=False,
    ),
    # Autoscaling off: the default queue target (5) applies, so it fires above 10.
    AlertCase(
        "backlog, not autoscaled: 2.4x the default target per replica",
        "engine",
        "LLMQueueBacklog",
        [*targets(2, with_gateway=False), *waiting(2, 12)],
        fires=True,
    ),
    AlertCase(
        "backlog, not autoscaled: quiet at 1.8x the default target per replica",
        "engine",
        "LLMQueueBacklog",
        [*targets(2, with_gateway=False), *waiting(2, 9)],
        fires=False,
    ),
    # --- LLMTimeToFirstTokenHigh
    AlertCase(
        "ttft: p95 near 10 s",
        "engine",
        "LLMTimeToFirstTokenHigh",
        ttft(slow=True),
        fires=True,
    ),
    AlertCase(
        "ttft: quiet when first tokens come under 0.5 s",
        "engine",
        "LLMTimeToFirstTokenHigh",
        ttft(slow=False),
        fires=False,
    ),
    # --- LLMKVCacheSaturated
    AlertCase(
        "kv cache: one replica at 97%",
        "gateway",
        "LLMKVCacheSaturated",
        [
            (engine("vllm:kv_cache_usage_perc", "p1"), f"0.97{SPAN}"),
            (engine("vllm:kv_cache_usage_perc", "p2"), f"0.4{SPAN}"),
        ],
        fires=True,
    ),
    AlertCase(
        "kv cache: quiet at 90%",
        "gateway",
        "LLMKVCacheSaturated",
        [(engine("vllm:kv_cache_usage_perc", "p1"), f"0.9{SPAN}")],
        fires=False,
    ),
    # --- LLMAutoscalerAtMax (max 3)
    AlertCase(
        "at max: 3 replicas wanted and 6 waiting per replica",
        "gateway",
        "LLMAutoscalerAtMax",
        [*targets(3), *waiting(3, 6), (operator("desired_replicas"), f"3{SPAN}")],
        fires=True,
        result_labels=OPERATOR_LABELS,
    ),
    AlertCase(
        "at max: quiet when the queue is under the target",
        "gateway",
        "LLMAutoscalerAtMax",
        [*targets(3), *waiting(3, 2), (operator("desired_replicas"), f"3{SPAN}")],
        fires=False,
    ),
    AlertCase(
        "at max: quiet below the maximum",
        "gateway",
        "LLMAutoscalerAtMax",
        [*targets(2), *waiting(2, 6), (operator("desired_replicas"), f"2{SPAN}")],
        fires=False,
    ),
    # --- LLMErrorRateHigh
    AlertCase(
        "errors: 9% of API requests answered 503",
        "gateway",
        "LLMErrorRateHigh",
        [requests(100, "200"), requests(10, "503")],
        fires=True,
    ),
    AlertCase(
        "errors: quiet with no 5xx series at all, and probes failing do not count",
        "gateway",
        "LLMErrorRateHigh",
        [requests(100, "200"), requests(50, "503", route="/ready")],
        fires=False,
    ),
    AlertCase(
        "errors: 10% of requests finished by vLLM with reason error",
        "engine",
        "LLMErrorRateHigh",
        [finished(90, "stop"), finished(10, "error")],
        fires=True,
    ),
    AlertCase(
        "errors: quiet when vLLM finishes every request",
        "engine",
        "LLMErrorRateHigh",
        [finished(90, "stop"), finished(10, "length")],
        fires=False,
    ),
    # --- LLMGuardrailBlockSpike
    AlertCase(
        "blocks: 30% of requests blocked",
        "gateway",
        "LLMGuardrailBlockSpike",
        [requests(70, "200"), requests(30, "400"), blocks(30)],
        fires=True,
    ),
    AlertCase(
        "blocks: quiet at 5%",
        "gateway",
        "LLMGuardrailBlockSpike",
        [requests(95, "200"), requests(5, "400"), blocks(5)],
        fires=False,
    ),
]


def _twice_scraped(pods: int, per_pod: float, metric: str) -> list[tuple[str, str]]:
    series = []
    for index in range(1, pods + 1):
        for job in ("prod/chat", "chat"):  # the PodMonitor's job and the ServiceMonitor's
            series.append((engine(metric, f"p{index}", job=job), f"{per_pod:g}{SPAN}"))
    return series


EXPR_CASES: list[ExprCase] = [
    ExprCase(
        "backlog alert's queue: each pod counted once when scraped twice",
        "gateway",
        monitoring.queue_depth_query,
        _twice_scraped(2, 5, "vllm:num_requests_waiting"),
        value=10,
        fixes=DUPLICATE_SCRAPE,
    ),
    ExprCase(
        "backlog alert's queue: waiting plus running",
        "keda-running",
        monitoring.queue_depth_query,
        waiting(2, 3, running=4),
        value=14,
    ),
    # The autoscaler's own signal (the builtin loop's query and the KEDA trigger's).
    ExprCase(
        "autoscaler signal: each pod counted once when scraped twice",
        "gateway",
        signals.query,
        _twice_scraped(2, 5, "vllm:num_requests_waiting"),
        value=10,
    ),
    ExprCase(
        "autoscaler signal: waiting plus running",
        "keda-running",
        signals.query,
        waiting(2, 3, running=4),
        value=14,
    ),
    ExprCase(
        "autoscaler finished requests: each pod counted once when scraped twice",
        "keda-running",
        signals.completed_query,
        _twice_scraped(2, 5, "vllm:request_success_total"),
        value=10,
    ),
    ExprCase(
        "serving replicas: pods with an engine target up, not targets",
        "gateway",
        lambda target: monitoring.serving_pods(monitoring.selector(target)),
        [*targets(2), *targets(3, up=0)[4:]],
        value=2,
    ),
]
