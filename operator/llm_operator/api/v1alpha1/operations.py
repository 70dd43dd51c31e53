"""The operations sections: gateway container, model cache, rollout, disruption, monitoring."""

from __future__ import annotations

import pydantic

from llm_operator.api.v1alpha1 import common
from llm_serving import policy


class GatewaySettings(common.Model):
    """The guardrail gateway sidecar container (used when guardrails.enabled is true)."""

    image: str | None = pydantic.Field(
        None, description="Gateway image; defaults to the one the operator was installed with."
    )
    cpu: common.Quantity = pydantic.Field("1", description="CPU request and limit of the sidecar.")
    memory: common.Quantity = pydantic.Field(
        "1Gi", description="Memory request and limit of the sidecar."
    )
    log_level: str = pydantic.Field(
        "info",
        description="debug, info, warning or error.",
        pattern=r"^(debug|info|warning|error)$",
    )


class ModelCache(common.Model):
    """A persistent volume that keeps downloaded weights across restarts."""

    enabled: bool = pydantic.Field(False, description="Mount a model cache volume.")
    existing_claim: str | None = pydantic.Field(
        None,
        description="Use this PersistentVolumeClaim instead of creating one.",
        pattern=common.DNS_LABEL_PATTERN,
    )
    size: common.Quantity = pydantic.Field(
        "100Gi", description="Size of the claim the operator creates."
    )
    storage_class_name: str | None = pydantic.Field(
        None, description="StorageClass of the created claim; unset uses the cluster default."
    )
    access_mode: str = pydantic.Field(
        "ReadWriteOnce",
        description="ReadWriteOnce, ReadWriteMany or ReadOnlyMany; more than one replica on "
        "several nodes needs ReadWriteMany.",
        pattern=r"^(ReadWriteOnce|ReadWriteMany|ReadOnlyMany|ReadWriteOncePod)$",
    )


class Rollout(common.Model):
    """How a changed spec replaces running replicas."""

    max_surge: common.IntOrPercent = pydantic.Field(
        1, description="Extra replicas during a rollout (needs spare GPUs)."
    )
    max_unavailable: common.IntOrPercent = pydantic.Field(
        0, description="Replicas that may be down during a rollout."
    )
    progress_deadline_seconds: int = pydantic.Field(
        1800,
        ge=60,
        description="How long a rollout may take before it is reported as stuck; model "
        "loading can take many minutes.",
    )


class Disruption(common.Model):
    """The PodDisruptionBudget for voluntary evictions (node drains)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.minAvailable) && has(self.maxUnavailable))",
                    "message": "set at most one of minAvailable and maxUnavailable",
                    "fieldPath": ".minAvailable",
                }
            ]
        }
    )

    enabled: bool = pydantic.Field(True, description="Create a PodDisruptionBudget.")
    min_available: common.IntOrPercent | None = pydantic.Field(
        None, description="Replicas that must stay up during a drain."
    )
    max_unavailable: common.IntOrPercent | None = pydantic.Field(
        None, description="Replicas that may be evicted at once; 1 when neither field is set."
    )

    @pydantic.model_validator(mode="after")
    def _one_of(self) -> Disruption:
        if self.min_available is not None and self.max_unavailable is not None:
            raise policy.FieldError(
                "minAvailable", "set at most one of minAvailable and maxUnavailable"
            )
        return self


# Both would scrape every replica twice, doubling every series (and the queue depth
# the autoscalers read).
MONITORS_MESSAGE = (
    "set at most one of podMonitor and serviceMonitor: both scrape the same replicas, "
    "so every series would be counted twice"
)


class Observability(common.Model):
    """Metrics, monitors and alerts."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.podMonitor) && self.podMonitor && "
                    "has(self.serviceMonitor) && self.serviceMonitor)",
                    "message": MONITORS_MESSAGE,
                    "fieldPath": ".serviceMonitor",
                }
            ]
        }
    )

    pod_monitor: bool = pydantic.Field(
        False,
        description="Create a Prometheus Operator PodMonitor scraping every replica's gateway "
        "(/metrics) and engine (/metrics/engine through the gateway, or vLLM's /metrics). "
        "At most one of podMonitor and serviceMonitor.",
    )
    service_monitor: bool = pydantic.Field(
        False,
        description="Create a Prometheus Operator ServiceMonitor scraping the same endpoints "
        "through the Service. At most one of podMonitor and serviceMonitor.",
    )
    prometheus_rule: bool = pydantic.Field(
        False, description="Create a PrometheusRule with this deployment's alerts."
    )
    scrape_annotations: bool = pydantic.Field(
        True, description="Annotate Pods with prometheus.io/scrape, port and path."
    )

    @pydantic.model_validator(mode="after")
    def _one_monitor(self) -> Observability:
        if self.pod_monitor and self.service_monitor:
            raise policy.FieldError("serviceMonitor", MONITORS_MESSAGE)
        return self
