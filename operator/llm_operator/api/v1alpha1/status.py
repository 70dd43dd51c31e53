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
        description="Ready, Progressing, Degraded, ScalingActive or GuardrailsReady."
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


class LLMDeploymentStatus(common.Model):
    """Observed state of an LLMDeployment, written by the operator."""

    observed_generation: int | None = pydantic.Field(
        None, description="The spec generation the operator last acted on."
    )
    phase: Phase | None = pydantic.Field(None, description="Summary of the conditions.")
    conditions: list[Condition] = pydantic.Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, ScalingActive, GuardrailsReady.",
    )
    replicas: int | None = pydantic.Field(None, description="Pods of the current Deployment.")
    ready_replicas: int | None = pydantic.Field(None, description="Pods ready to serve.")
    desired_replicas: int | None = pydantic.Field(
        None, description="Replicas wanted by the spec or the autoscaler."
    )
    ready: str | None = pydantic.Field(None, description="readyReplicas/desiredReplicas.")
    queue_depth: float | None = pydantic.Field(
        None, description="Requests waiting in the engines, summed over replicas."
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
