"""Every Prometheus metric of the gateway, in one registry of its own.

All names start with `llm_gateway_`. The metrics live in their own
`CollectorRegistry` (not the process-wide default), so the gateway can share a
process with the engine simulator, and a test can build several gateways, without
name clashes. `/metrics` exposes exactly this registry; the engine's `vllm:*`
metrics are proxied unchanged at `/metrics/engine`.

Label values are bounded: routes are the gateway's route templates (or
`unmatched`), checks and actions come from the guardrail library, the model is the
configured or requested model name.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import prometheus_client
from prometheus_client import exposition
from prometheus_client import metrics as client_metrics

M = TypeVar("M", bound=client_metrics.MetricWrapperBase)
Counter = prometheus_client.Counter  # the type of a bound counter child, for annotations

#: Buckets for whole-request latency and time to first token (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Buckets for time spent inside the gateway or a check (seconds): fine-grained below 10 ms.
OVERHEAD_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1,
)


class Labelled(Generic[M]):
    """A labelled metric whose children are memoised: `labels()` runs on every request."""

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        """The child for these label values (created once)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    """The gateway's metric objects, registered in `self.registry`."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Labelled(
            prometheus_client.Counter(
                "llm_gateway_requests",
                "Requests answered by the gateway, by route, method and HTTP status code.",
                ["route", "method", "code"],
                registry=r,
            )
        )
        self.request_duration = Labelled(
            prometheus_client.Histogram(
                "llm_gateway_request_duration_seconds",
                "Time from receiving a request to the end of its response, by route.",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.time_to_first_token = Labelled(
            prometheus_client.Histogram(
                "llm_gateway_time_to_first_token_seconds",
                "Streaming requests: time from receiving the request to sending the first token.",
                ["model"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.added_latency = Labelled(
            prometheus_client.Histogram(
                "llm_gateway_added_latency_seconds",
                "Time a proxied request spent inside the gateway, excluding waits on the engine.",
                ["route"],
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.upstream_duration = Labelled(
            prometheus_client.Histogram(
                "llm_gateway_upstream_duration_seconds",
                "Time spent waiting on the engine per proxied request, by route.",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.in_flight = prometheus_client.Gauge(
            "llm_gateway_requests_in_flight",
            "Requests currently being handled by the gateway.",
            registry=r,
        )
        self.prompt_tokens = Labelled(
            prometheus_client.Counter(
                "llm_gateway_prompt_tokens",
                "Prompt tokens sent to the engine (from the engine's usage report).",
                ["model"],
                registry=r,
            )
        )
        self.completion_tokens = Labelled(
            prometheus_client.Counter(
                "llm_gateway_completion_tokens",
                "Completion tokens returned by the engine (from the engine's usage report).",
                ["model"],
                registry=r,
            )
        )
        self.cost = Labelled(
            prometheus_client.Counter(
                "llm_gateway_cost",
                "Cost of the tokens served, from the policy's prices per million tokens.",
                ["model", "kind"],
                registry=r,
            )
        )
        self.guardrail_verdicts = Labelled(
            prometheus_client.Counter(
                "llm_gateway_guardrail_verdicts",
                "Guardrail findings, by stage (input, output, judge), check and action taken.",
                ["stage", "check", "action"],
                registry=r,
            )
        )
        self.guardrail_duration = Labelled(
            prometheus_client.Histogram(
                "llm_gateway_guardrail_check_duration_seconds",
                "Time spent running guardrail checks, by stage (input, output, judge).",
                ["stage"],
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.cache_hits = Labelled(
            prometheus_client.Counter(
                "llm_gateway_cache_hits",
                "Responses served from the semantic cache, by kind of match (exact, semantic).",
                ["kind"],
                registry=r,
            )
        )
        self.cache_misses = prometheus_client.Counter(
            "llm_gateway_cache_misses",
            "Cacheable requests the semantic cache could not answer.",
            registry=r,
        )
        self.cache_entries = prometheus_client.Gauge(
            "llm_gateway_cache_entries",
            "Entries held by the semantic cache.",
            registry=r,
        )
        self.cache_evictions = Labelled(
            prometheus_client.Counter(
                "llm_gateway_cache_evictions",
                "Entries removed from the semantic cache, by reason (lru, ttl).",
                ["reason"],
                registry=r,
            )
        )
        self.embedder_errors = prometheus_client.Counter(
            "llm_gateway_cache_embedder_errors",
            "Embedding failures; the cache then uses exact matching only.",
            registry=r,
        )
        self.auth_failures = prometheus_client.Counter(
            "llm_gateway_auth_failures",
            "Requests refused for a missing or unknown API key.",
            registry=r,
        )
        self.rate_limited = Labelled(
            prometheus_client.Counter(
                "llm_gateway_rate_limited",
                "Requests refused with HTTP 429, by exhausted limit (requests, tokens).",
                ["limit"],
                registry=r,
            )
        )
        self.upstream_errors = Labelled(
            prometheus_client.Counter(
                "llm_gateway_upstream_errors",
                "Failures talking to the engine, by kind (unavailable, timeout, protocol).",
                ["kind"],
                registry=r,
            )
        )
        self.client_disconnects = Labelled(
            prometheus_client.Counter(
                "llm_gateway_client_disconnects",
                "Requests whose client went away before the response ended; the engine request "
                "is cancelled.",
                ["route"],
                registry=r,
            )
        )
        self.policy_reloads = Labelled(
            prometheus_client.Counter(
                "llm_gateway_policy_reloads",
                "Policy file loads by result (success, error); on error the previous policy stays.",
                ["result"],
                registry=r,
            )
        )
        self.policy_last_reload = prometheus_client.Gauge(
            "llm_gateway_policy_last_reload_success_timestamp_seconds",
            "Unix time of the last policy load that succeeded.",
            registry=r,
        )
        self.api_keys_loaded = prometheus_client.Gauge(
            "llm_gateway_api_keys",
            "API keys currently loaded from the mounted Secret.",
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """The text exposition of the registry and its content type."""
        return exposition.generate_latest(self.registry), exposition.CONTENT_TYPE_LATEST
