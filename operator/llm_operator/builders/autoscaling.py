"""Autoscaler objects for the keda and hpa providers (the builtin loop needs none).

Both scale the Deployment on the signal of `builders.signals` with the spec's
target per replica, bounds and behaviour (stabilisation windows and step limits,
as HPA `behavior` policies). KEDA reads the signal from Prometheus itself; with
`minReplicas: 0` a second trigger on `activationQuery` (a signal that exists while
no replica does) wakes the deployment, because the engines' own series are gone
at zero. An HPA reads the External metric that prometheus-adapter serves from the
rules of `signals.prometheus_adapter_rules`, selected by the deployment label.
"""

from __future__ import annotations

from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.builders import common, signals

# Every signal is a sum over replicas and the target is per replica: AverageValue divides
# the sum by the replica count, so replicas = ceil(sum / target), as the builtin loop does.
METRIC_TYPE = "AverageValue"


def _policies(step: int, percent: int, period: int) -> list[dict[str, Any]]:
    return [
        {"type": "Pods", "value": step, "periodSeconds": period},
        {"type": "Percent", "value": percent, "periodSeconds": period},
    ]


def behavior(spec: v1alpha1.Autoscaling) -> dict[str, Any]:
    """HPA behaviour from the spec: stabilisation windows and step limits per period."""
    period = spec.scale_period_seconds
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": spec.scale_up_stabilization_seconds,
            "selectPolicy": "Max",
            "policies": _policies(spec.scale_up_step, spec.scale_up_step_percent, period),
        },
        "scaleDown": {
            "stabilizationWindowSeconds": spec.scale_down_stabilization_seconds,
            "selectPolicy": "Max",
            "policies": _policies(spec.scale_down_step, spec.scale_down_step_percent, period),
        },
    }


def _scale_target(target: common.Target) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.name}


def triggers(target: common.Target) -> list[dict[str, Any]]:
    """The Prometheus triggers: the signal, and the wake-from-zero signal when there is one."""
    scaling = target.spec.autoscaling
    threshold = f"{scaling.target:g}"
    out = [
        {
            "type": "prometheus",
            "name": "signal",
            "metricType": METRIC_TYPE,
            "metadata": {
                "serverAddress": scaling.prometheus_url,
                "query": signals.query(target),
                "threshold": threshold,
                "activationThreshold": "0",
                "ignoreNullValues": "true",
            },
        }
    ]
    if scaling.activation_query:
        out.append(
            {
                "type": "prometheus",
                "name": "wake",
                "metricType": METRIC_TYPE,
                "metadata": {
                    "serverAddress": scaling.prometheus_url,
                    "query": scaling.activation_query,
                    "threshold": threshold,
                    "activationThreshold": "0",
                    "ignoreNullValues": "true",
                },
            }
        )
    return out


def scaled_object(target: common.Target) -> dict[str, Any] | None:
    """keda.sh/v1alpha1 ScaledObject with Prometheus triggers."""
    scaling = target.spec.autoscaling
    if not scaling.enabled or scaling.provider is not v1alpha1.AutoscalingProvider.KEDA:
        return None
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": common.metadata(target, target.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": _scale_target(target),
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_interval_seconds,
            # Only used to go from 1 to 0 replicas: idle for this long first.
            "cooldownPeriod": scaling.scale_down_stabilization_seconds,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(scaling)}},
            "triggers": triggers(target),
        },
    }


def horizontal_pod_autoscaler(target: common.Target) -> dict[str, Any] | None:
    """autoscaling/v2 HorizontalPodAutoscaler on the External metric of the signal."""
    scaling = target.spec.autoscaling
    if not scaling.enabled or scaling.provider is not v1alpha1.AutoscalingProvider.HPA:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(target, target.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": _scale_target(target),
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "behavior": behavior(scaling),
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": signals.external_metric(scaling),
                            # A Prometheus label, as prometheus-adapter matches it (the Pod
                            # label llmoperator.io/deployment is not one).
                            "selector": {"matchLabels": {signals.deployment_label(): target.name}},
                        },
                        "target": {
                            "type": METRIC_TYPE,
                            "averageValue": f"{scaling.target:g}",
                        },
                    },
                }
            ],
        },
    }
