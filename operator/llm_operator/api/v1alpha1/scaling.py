"""The autoscaling section: replica count driven by the engine's request queue."""

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


class Autoscaling(common.Model):
    """Replica count driven by the engine's request queue."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
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
                    "rule": "self.provider == 'builtin' || size(self.prometheusUrl) > 0",
                    "message": "prometheusUrl is required for providers keda and hpa",
                    "fieldPath": ".prometheusUrl",
                },
            ]
        }
    )

    enabled: bool = pydantic.Field(
        False, description="Scale on queue depth instead of using spec.replicas."
    )
    provider: AutoscalingProvider = pydantic.Field(
        AutoscalingProvider.BUILTIN,
        description="builtin (the operator's loop), keda (a ScaledObject) or hpa "
        "(autoscaling/v2 on an external metric).",
    )
    min_replicas: int = pydantic.Field(1, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = pydantic.Field(4, ge=1, le=1000, description="Most replicas.")
    target_queue_depth: float = pydantic.Field(
        4.0,
        gt=0,
        description="Waiting requests per replica to aim for (vllm:num_requests_waiting).",
    )
    include_running: bool = pydantic.Field(
        False, description="Count running requests too (waiting + running)."
    )
    scale_up_stabilization_seconds: int = pydantic.Field(
        0, ge=0, le=3600, description="Window over which scale-up takes the lowest proposal."
    )
    scale_down_stabilization_seconds: int = pydantic.Field(
        300, ge=0, le=3600, description="Window over which scale-down takes the highest proposal."
    )
    polling_interval_seconds: int = pydantic.Field(
        15, ge=1, le=600, description="How often the queue depth is read."
    )
    prometheus_url: str = pydantic.Field(
        "",
        description="Prometheus base URL for keda and hpa (e.g. "
        "http://prometheus.monitoring.svc:9090); builtin reads the pods directly.",
    )

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise policy.FieldError("minReplicas", "must be less than or equal to maxReplicas")
        if self.min_replicas < 1 and self.provider is not AutoscalingProvider.KEDA:
            raise policy.FieldError("minReplicas", "0 (scale to zero) needs provider keda")
        if self.provider is not AutoscalingProvider.BUILTIN and not self.prometheus_url:
            raise policy.FieldError("prometheusUrl", "is required for providers keda and hpa")
        return self
