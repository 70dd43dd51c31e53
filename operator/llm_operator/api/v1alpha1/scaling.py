"""The autoscaling section: replica count driven by the engines' queue (or another load signal).

Three providers write the replica count when autoscaling is on: the operator's own
loop (`builtin`), a KEDA `ScaledObject` (`keda`) or an `autoscaling/v2`
HorizontalPodAutoscaler (`hpa`). They share the signal (`metric`, summed over the
replicas of one LLMDeployment), the target per replica, the bounds and the scale-up
and scale-down behaviour; the stable and panic windows and `mode: advise` are the
builtin loop's alone. `docs/autoscaling.md` explains each default and the measured
behaviour; the CEL rules here refuse the combinations that cannot work.
"""

from __future__ import annotations

import enum

import pydantic

from llm_operator.api.v1alpha1 import common
from llm_serving import policy


class AutoscalingProvider(enum.StrEnum):
    """Who writes the replica count when autoscaling is on."""

    BUILTIN = "builtin"
    KEDA = "keda"
    HPA = "hpa"


class AutoscalingMode(enum.StrEnum):
    """Whether the builtin autoscaler acts on its decisions or only reports them."""

    SCALE = "scale"
    ADVISE = "advise"


class AutoscalingMetric(enum.StrEnum):
    """The load signal, summed over the replicas of one LLMDeployment."""

    QUEUE_DEPTH = "queueDepth"
    INFLIGHT = "inflight"
    KV_CACHE_USAGE = "kvCacheUsage"


#: The target per replica when neither targetPerReplica nor targetQueueDepth is set.
#: queueDepth: 5 waiting requests (the KEDA threshold of the vLLM production stack);
#: kvCacheUsage: 0.8 of the KV cache. inflight and queueDepth with includeRunning count
#: the running batch too, whose right size depends on the engine: they need a target.
DEFAULT_TARGETS = {
    AutoscalingMetric.QUEUE_DEPTH: 5.0,
    AutoscalingMetric.KV_CACHE_USAGE: 0.8,
}

_RULES: list[pydantic.JsonValue] = [
    {
        "rule": "self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must be less than or equal to maxReplicas",
        "fieldPath": ".minReplicas",
    },
    {
        "rule": "self.minReplicas >= 1 || self.provider == 'keda'",
        "message": "minReplicas 0 (scale to zero) needs provider keda",
        "fieldPath": ".minReplicas",
    },
    {
        "rule": "self.provider != 'keda' || size(self.prometheusUrl) > 0",
        "message": "prometheusUrl is required for provider keda (KEDA queries Prometheus itself)",
        "fieldPath": ".prometheusUrl",
    },
    {
        "rule": "self.provider != 'hpa' || size(self.prometheusUrl) == 0",
        "message": "prometheusUrl is not used by provider hpa: the HPA reads the metric through "
        "prometheus-adapter, which holds the Prometheus address (see docs/autoscaling.md)",
        "fieldPath": ".prometheusUrl",
    },
    {
        "rule": "self.provider != 'hpa' || size(self.query) == 0",
        "message": "query cannot be used with provider hpa: the HPA reads a named metric whose "
        "query is the prometheus-adapter rule (see docs/autoscaling.md)",
        "fieldPath": ".query",
    },
    {
        "rule": "self.minReplicas > 0 || size(self.activationQuery) > 0",
        "message": "minReplicas 0 needs activationQuery: with no replica there are no engine "
        "metrics, so only a signal that exists at zero (an ingress, router or client queue) "
        "can wake the deployment",
        "fieldPath": ".activationQuery",
    },
    {
        "rule": "self.provider == 'keda' || size(self.activationQuery) == 0",
        "message": "activationQuery is used by provider keda only (to wake from zero replicas)",
        "fieldPath": ".activationQuery",
    },
    {
        "rule": "self.mode == 'scale' || self.provider == 'builtin'",
        "message": "mode advise needs provider builtin (KEDA and the HPA always act)",
        "fieldPath": ".mode",
    },
    {
        "rule": "!(has(self.targetPerReplica) && has(self.targetQueueDepth))",
        "message": "set targetPerReplica or its old name targetQueueDepth, not both",
        "fieldPath": ".targetQueueDepth",
    },
    {
        "rule": "!has(self.targetQueueDepth) || self.metric == 'queueDepth'",
        "message": "targetQueueDepth is for metric queueDepth; use targetPerReplica",
        "fieldPath": ".targetQueueDepth",
    },
    {
        "rule": "!self.includeRunning || self.metric == 'queueDepth'",
        "message": "includeRunning applies to metric queueDepth only",
        "fieldPath": ".includeRunning",
    },
    {
        "rule": "self.metric != 'kvCacheUsage' || !has(self.targetPerReplica) "
        "|| self.targetPerReplica <= 1.0",
        "message": "a kvCacheUsage target is a fraction of the KV cache, at most 1",
        "fieldPath": ".targetPerReplica",
    },
    {
        "rule": "has(self.targetPerReplica) || has(self.targetQueueDepth) "
        "|| (self.metric == 'queueDepth' && !self.includeRunning) "
        "|| self.metric == 'kvCacheUsage'",
        "message": "targetPerReplica is required when running requests are counted (metric "
        "inflight, or includeRunning): size it from the engine's batch (e.g. 0.75 x maxNumSeqs)",
        "fieldPath": ".targetPerReplica",
    },
    {
        "rule": "self.panicWindowSeconds < self.stableWindowSeconds",
        "message": "panicWindowSeconds must be shorter than stableWindowSeconds",
        "fieldPath": ".panicWindowSeconds",
    },
    {
        "rule": "self.provider != 'builtin' || self.pollingIntervalSeconds <= "
        "self.panicWindowSeconds",
        "message": "pollingIntervalSeconds must not exceed panicWindowSeconds, or the panic "
        "window would hold no reading",
        "fieldPath": ".pollingIntervalSeconds",
    },
]


class Autoscaling(common.Model):
    """Replica count driven by a load signal of the engines (the queue of waiting requests by
    default). While autoscaling is on in mode scale, spec.replicas is not used and cannot be
    changed (kubectl scale is refused with a message saying so); set minReplicas and
    maxReplicas instead, or turn autoscaling off. In mode advise the Deployment keeps
    spec.replicas (kubectl scale works) and the decisions are only reported."""

    model_config = pydantic.ConfigDict(json_schema_extra={"x-kubernetes-validations": _RULES})

    enabled: bool = pydantic.Field(
        False, description="Scale on the signal instead of using spec.replicas."
    )
    mode: AutoscalingMode = pydantic.Field(
        AutoscalingMode.SCALE,
        description="scale: the autoscaler sets the replicas. advise (builtin only): it "
        "decides and reports (status.autoscaler, Events, metrics) but changes nothing, for "
        "trying it out on a running deployment.",
    )
    provider: AutoscalingProvider = pydantic.Field(
        AutoscalingProvider.BUILTIN,
        description="builtin (the operator's own loop, the only writer of the Deployment's "
        "replicas), keda (a ScaledObject) or hpa (autoscaling/v2 on an External metric served "
        "by prometheus-adapter).",
    )
    min_replicas: int = pydantic.Field(
        1, ge=0, le=1000, description="Fewest replicas (0 only with keda and activationQuery)."
    )
    max_replicas: int = pydantic.Field(4, ge=1, le=1000, description="Most replicas.")
    metric: AutoscalingMetric = pydantic.Field(
        AutoscalingMetric.QUEUE_DEPTH,
        description="The signal, summed over replicas: queueDepth (vllm:num_requests_waiting, "
        "plus vllm:num_requests_running with includeRunning), inflight (the gateway's "
        "llm_gateway_requests_in_flight; needs guardrails.enabled) or kvCacheUsage "
        "(vllm:kv_cache_usage_perc, a fraction).",
    )
    target_per_replica: float | None = pydantic.Field(
        None,
        gt=0,
        description="Signal per replica to aim for: replicas = ceil(signal / target). "
        "Defaults: 5 for queueDepth, 0.8 for kvCacheUsage; required for inflight and with "
        "includeRunning.",
    )
    target_queue_depth: float | None = pydantic.Field(
        None,
        gt=0,
        description="Deprecated name of targetPerReplica for metric queueDepth.",
    )
    include_running: bool = pydantic.Field(
        False,
        description="metric queueDepth: count running requests too (waiting + running), which "
        "lets the replica count follow the load down instead of only the queue up.",
    )
    polling_interval_seconds: int = pydantic.Field(
        5, ge=1, le=600, description="How often the signal is read (builtin and keda)."
    )
    stable_window_seconds: int = pydantic.Field(
        60,
        ge=6,
        le=3600,
        description="builtin: the signal is averaged over this window for normal decisions.",
    )
    panic_window_seconds: int = pydantic.Field(
        10,
        ge=1,
        le=600,
        description="builtin: the short window that detects bursts; when it asks for "
        "panicThreshold times the ready replicas, the autoscaler scales on it and does not "
        "scale down until a stable window has passed without a burst.",
    )
    panic_threshold: float = pydantic.Field(
        2.0,
        ge=1.1,
        le=10.0,
        description="builtin: panic when the panic window asks for this multiple of the ready "
        "replicas (2.0 = 200%).",
    )
    scale_up_stabilization_seconds: int = pydantic.Field(
        0,
        ge=0,
        le=3600,
        description="Scale up to the lowest recommendation of this window (0: at once).",
    )
    scale_down_stabilization_seconds: int = pydantic.Field(
        300,
        ge=0,
        le=3600,
        description="Scale down only to the highest recommendation of this window; longer "
        "than a typical GPU cold start, so a replica is not given up just before it is "
        "needed again.",
    )
    scale_up_step: int = pydantic.Field(
        4,
        ge=1,
        le=1000,
        description="Most replicas added per scalePeriodSeconds (or scaleUpStepPercent, "
        "whichever allows more).",
    )
    scale_up_step_percent: int = pydantic.Field(
        1000,
        ge=1,
        le=1000,
        description="Most replicas added per scalePeriodSeconds, in percent of the current count "
        "(a GPU replica takes minutes to start, so the default lets a burst's replicas start "
        "at once; the HPA's own default is 100).",
    )
    scale_down_step: int = pydantic.Field(
        1,
        ge=1,
        le=1000,
        description="Most replicas removed per scalePeriodSeconds (or scaleDownStepPercent, "
        "whichever allows more).",
    )
    scale_down_step_percent: int = pydantic.Field(
        25,
        ge=1,
        le=100,
        description="Most replicas removed per scalePeriodSeconds, in percent of the current "
        "count.",
    )
    scale_period_seconds: int = pydantic.Field(
        15, ge=1, le=1800, description="The period the step limits apply to."
    )
    prometheus_url: str = pydantic.Field(
        "",
        max_length=2048,
        description="Prometheus base URL (e.g. http://prometheus.monitoring.svc:9090). keda: "
        "required. builtin: optional; unset uses the operator's --prometheus-url, and without "
        "either the operator reads the Ready pods' own metrics endpoints. hpa: not used.",
    )
    query: str = pydantic.Field(
        "",
        max_length=4096,
        description="PromQL that replaces the query built from metric (builtin and keda); it "
        "must return one value, the signal summed over the replicas of this LLMDeployment.",
    )
    activation_query: str = pydantic.Field(
        "",
        max_length=4096,
        description="keda: PromQL for demand that exists while no replica does (requests "
        "waiting at an ingress, router or client), added as a second trigger that wakes the "
        "deployment from zero; required when minReplicas is 0.",
    )

    @property
    def target(self) -> float:
        """The effective target per replica."""
        if self.target_per_replica is not None:
            return self.target_per_replica
        if self.target_queue_depth is not None:
            return self.target_queue_depth
        return DEFAULT_TARGETS[self.metric]

    @property
    def counts_running(self) -> bool:
        """True when the signal includes the running batch (inflight, or includeRunning)."""
        return self.metric is AutoscalingMetric.INFLIGHT or self.include_running

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> Autoscaling:
        keda = self.provider is AutoscalingProvider.KEDA
        hpa = self.provider is AutoscalingProvider.HPA
        builtin = self.provider is AutoscalingProvider.BUILTIN
        queue = self.metric is AutoscalingMetric.QUEUE_DEPTH
        if self.min_replicas > self.max_replicas:
            raise policy.FieldError("minReplicas", "must be less than or equal to maxReplicas")
        if self.min_replicas < 1 and not keda:
            raise policy.FieldError("minReplicas", "0 (scale to zero) needs provider keda")
        if keda and not self.prometheus_url:
            raise policy.FieldError(
                "prometheusUrl", "is required for provider keda (KEDA queries Prometheus itself)"
            )
        if hpa and self.prometheus_url:
            raise policy.FieldError(
                "prometheusUrl",
                "is not used by provider hpa: the HPA reads the metric through "
                "prometheus-adapter, which holds the Prometheus address",
            )
        if hpa and self.query:
            raise policy.FieldError(
                "query", "cannot be used with provider hpa: the prometheus-adapter rule holds it"
            )
        if self.min_replicas == 0 and not self.activation_query:
            raise policy.FieldError(
                "activationQuery",
                "is required with minReplicas 0: with no replica there are no engine metrics, "
                "so only a signal that exists at zero can wake the deployment",
            )
        if self.activation_query and not keda:
            raise policy.FieldError("activationQuery", "is used by provider keda only")
        if self.mode is AutoscalingMode.ADVISE and not builtin:
            raise policy.FieldError("mode", "advise needs provider builtin")
        if self.target_per_replica is not None and self.target_queue_depth is not None:
            raise policy.FieldError(
                "targetQueueDepth", "set targetPerReplica or its old name targetQueueDepth"
            )
        if self.target_queue_depth is not None and not queue:
            raise policy.FieldError(
                "targetQueueDepth", "is for metric queueDepth; use targetPerReplica"
            )
        if self.include_running and not queue:
            raise policy.FieldError("includeRunning", "applies to metric queueDepth only")
        if (
            self.metric is AutoscalingMetric.KV_CACHE_USAGE
            and self.target_per_replica is not None
            and self.target_per_replica > 1.0
        ):
            raise policy.FieldError(
                "targetPerReplica", "a kvCacheUsage target is a fraction of the KV cache"
            )
        if (
            self.counts_running
            and self.target_per_replica is None
            and self.target_queue_depth is None
        ):
            raise policy.FieldError(
                "targetPerReplica",
                "is required when running requests are counted (metric inflight, or "
                "includeRunning)",
            )
        if self.panic_window_seconds >= self.stable_window_seconds:
            raise policy.FieldError(
                "panicWindowSeconds", "must be shorter than stableWindowSeconds"
            )
        if builtin and self.polling_interval_seconds > self.panic_window_seconds:
            raise policy.FieldError("pollingIntervalSeconds", "must not exceed panicWindowSeconds")
        return self
