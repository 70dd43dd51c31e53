"""The whole desired set of children of one LLMDeployment, in apply order.

`CHILD_KINDS` lists every kind the operator may create; reconcile prunes objects of
these kinds that it owns but no longer wants.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_operator import guardrail_defaults as defaults
from llm_operator.api import v1alpha1
from llm_operator.builders import alerts, autoscaling, common, core, deployment, monitoring


@dataclasses.dataclass(frozen=True)
class ChildKind:
    """A kind the operator manages: how to reach it through the API."""

    api_version: str
    kind: str
    plural: str
    # Optional kinds come from CRDs that may be missing (KEDA, Prometheus Operator).
    optional: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("v1", "ServiceAccount", "serviceaccounts"),
    ChildKind("v1", "ConfigMap", "configmaps"),
    ChildKind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ChildKind("apps/v1", "Deployment", "deployments"),
    ChildKind("v1", "Service", "services"),
    ChildKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ChildKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ChildKind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", optional=True),
    ChildKind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors", optional=True),
    ChildKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", optional=True),
    ChildKind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", optional=True),
)


def kind_of(obj: dict[str, Any]) -> ChildKind:
    """The ChildKind entry of an object."""
    for child_kind in CHILD_KINDS:
        if child_kind.api_version == obj["apiVersion"] and child_kind.kind == obj["kind"]:
            return child_kind
    raise KeyError(f"{obj['apiVersion']}/{obj['kind']} is not a child kind")


def desired_replicas(spec: v1alpha1.LLMDeploymentSpec, autoscaled: int | None) -> int | None:
    """What the operator writes into the Deployment's replicas, or None for another writer.

    One writer per Deployment: the spec when autoscaling is off or only advises, the
    operator's builtin autoscaler (its last decision, `autoscaled`, clamped to the
    bounds) when it is on, and KEDA or the HPA otherwise.
    """
    scaling = spec.autoscaling
    if not scaling.enabled or scaling.mode is v1alpha1.AutoscalingMode.ADVISE:
        return spec.replicas
    if scaling.provider is v1alpha1.AutoscalingProvider.BUILTIN:
        wanted = scaling.min_replicas if autoscaled is None else autoscaled
        return max(scaling.min_replicas, min(scaling.max_replicas, wanted))
    return None


def build_all(target: common.Target, options: common.Options) -> list[dict[str, Any]]:
    """Every child the spec asks for, ServiceAccount and ConfigMap before the Deployment."""
    candidates = [
        core.service_account(target),
        core.guardrails_config_map(target),
        core.model_cache_claim(target),
        deployment.build(target, options),
        core.service(target),
        core.pod_disruption_budget(target),
        autoscaling.horizontal_pod_autoscaler(target),
        autoscaling.scaled_object(target),
        monitoring.pod_monitor(target),
        monitoring.service_monitor(target),
        alerts.prometheus_rule(target, options),
    ]
    return [obj for obj in candidates if obj is not None]


def target_from_object(
    obj: dict[str, Any],
    autoscaled: int | None = None,
    guardrail_defaults: dict[str, Any] | None = None,
) -> common.Target:
    """Parse an LLMDeployment object (as a dict) into a build target.

    `guardrail_defaults` (the installation's, see `llm_operator.guardrail_defaults`)
    fill what the spec's guardrails leave out. Raises pydantic.ValidationError for an
    invalid spec.
    """
    meta = obj.get("metadata", {})
    raw = obj.get("spec") or {}
    if guardrail_defaults:
        raw = defaults.apply(raw, guardrail_defaults)
    spec = v1alpha1.parse_spec(raw)
    return common.Target(
        name=meta["name"],
        namespace=meta.get("namespace") or "default",
        uid=meta.get("uid") or "00000000-0000-0000-0000-000000000000",
        spec=spec,
        replicas=desired_replicas(spec, autoscaled),
    )
