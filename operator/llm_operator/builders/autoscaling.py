"""Autoscaler objects for the keda and hpa providers (builtin needs none).

Both scale the Deployment on the engine queue depth; KEDA reads it from Prometheus
itself, an HPA reads it as the external metric `llmoperator_queue_depth` (served by
a metrics adapter that maps it to `queue_depth_query`).
"""

from __future__ import annotations

from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.builders import common, monitoring

EXTERNAL_METRIC = "llmoperator_queue_depth"


def _behavior(target: common.Target) -> dict[str, Any]:
    autoscaling = target.spec.autoscaling
    return {
        "scaleUp": {"stabilizationWindowSeconds": autoscaling.scale_up_stabilization_seconds},
        "scaleDown": {"stabilizationWindowSeconds": autoscaling.scale_down_stabilization_seconds},
    }


def _scale_target(target: common.Target) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.name}


def scaled_object(target: common.Target) -> dict[str, Any] | None:
    """keda.sh/v1alpha1 ScaledObject with a Prometheus trigger."""
    autoscaling = target.spec.autoscaling
    if not autoscaling.enabled or autoscaling.provider is not v1alpha1.AutoscalingProvider.KEDA:
        return None
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": common.metadata(target, target.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": _scale_target(target),
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            "pollingInterval": autoscaling.polling_interval_seconds,
            "cooldownPeriod": max(autoscaling.scale_down_stabilization_seconds, 30),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(target)}},
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": autoscaling.prometheus_url,
                        "query": monitoring.queue_depth_query(target),
                        "threshold": f"{autoscaling.target_queue_depth:g}",
                        "activationThreshold": "0",
                        "ignoreNullValues": "true",
                    },
                }
            ],
        },
    }


def horizontal_pod_autoscaler(target: common.Target) -> dict[str, Any] | None:
    """autoscaling/v2 HorizontalPodAutoscaler on the external queue-depth metric."""
    autoscaling = target.spec.autoscaling
    if not autoscaling.enabled or autoscaling.provider is not v1alpha1.AutoscalingProvider.HPA:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(target, target.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": _scale_target(target),
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "behavior": _behavior(target),
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": EXTERNAL_METRIC,
                            "selector": {"matchLabels": common.selector_labels(target)},
                        },
                        "target": {
                            "type": "AverageValue",
                            "averageValue": f"{autoscaling.target_queue_depth:g}",
                        },
                    },
                }
            ],
        },
    }
