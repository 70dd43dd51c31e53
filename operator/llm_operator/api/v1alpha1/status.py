"""The status the operator writes: conditions, phase, replica counts, endpoint."""

from __future__ import annotations

import enum

import pydantic

from llm_operator.api.v1alpha1 import common


class ConditionStatus(enum.StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(common.Model):
    """A Kubernetes-style condition."""

    type: str = pydantic.Field(
        description="Ready, Progressing, Degraded, ScalingActive, ScalingLimited or "
        "GuardrailsReady."
    )
    status: ConditionStatus = pydantic.Field(description="True, False or Unknown.")
    reason: str = pydantic.Field("", description="CamelCase reason for the last transition.")
    message: str = pydantic.Field("", description="Human-readable details.")
    last_transition_time: str | None = pydantic.Field(
        None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = pydantic.Field(
        None, description="Generation of the spec this condition was computed from."
    )


class Phase(enum.StrEnum):
    """A one-word summary of the status, for `kubectl get`."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class AutoscalerStatus(common.Model):
    """What the autoscaler last read and decided."""

    provider: str | None = pydantic.Field(None, description="builtin, keda or hpa.")
    mode: str | None = pydantic.Field(None, description="scale or advise.")
    metric: str | None = pydantic.Field(None, description="The signal's metric.")
    target: float | None = pydantic.Field(None, description="Signal per replica aimed for.")
    signal: float | None = pydantic.Field(
        None, description="The signal last read, summed over replicas (absent when stale)."
    )
    source: str | None = pydantic.Field(
        None, description="Where it was read: a Prometheus URL, the pods, or the HPA's status."
    )
    recommended_replicas: int | None = pydantic.Field(
        None,
        description="The count the last decision asked for (in mode advise it is not applied).",
    )
    reason: str | None = pydantic.Field(None, description="Why, in one CamelCase word.")
    message: str | None = pydantic.Field(None, description="Why, in a sentence.")
    panic: bool | None = pydantic.Field(
        None, description="True while a burst holds the builtin autoscaler in panic mode."
    )
    last_read_time: str | None = pydantic.Field(
        None, description="When the signal was last read successfully (RFC 3339)."
    )


class LLMDeploymentStatus(common.Model):
    """Observed state of an LLMDeployment, written by the operator."""

    observed_generation: int | None = pydantic.Field(
        None, description="The spec generation the operator last acted on."
    )
    phase: Phase | None = pydantic.Field(None, description="Summary of the conditions.")
    conditions: list[Condition] = pydantic.Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, ScalingActive (True only while an autoscaler "
        "is reading its signal and acting on it), ScalingLimited (what keeps the count from "
        "the signal's: GPUs, bounds, step limits), GuardrailsReady.",
    )
    replicas: int | None = pydantic.Field(None, description="Pods of the current Deployment.")
    ready_replicas: int | None = pydantic.Field(None, description="Pods ready to serve.")
    desired_replicas: int | None = pydantic.Field(
        None, description="Replicas wanted by the spec or the autoscaler."
    )
    ready: str | None = pydantic.Field(None, description="readyReplicas/desiredReplicas.")
    queue_depth: float | None = pydantic.Field(
        None,
        description="Requests waiting in the engines, summed over replicas, as the autoscaler "
        "last read them (absent when it is not reading them).",
    )
    endpoint: str | None = pydantic.Field(
        None, description="In-cluster OpenAI-compatible base URL."
    )
    selector: str | None = pydantic.Field(
        None, description="Label selector of the Pods (for the scale subresource)."
    )
    last_scale_time: str | None = pydantic.Field(
        None, description="When the autoscaler last changed the replica count."
    )
    autoscaler: AutoscalerStatus | None = pydantic.Field(
        None, description="What the autoscaler last read and decided (when autoscaling is on)."
    )
