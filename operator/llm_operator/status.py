"""The status of an LLMDeployment, computed from its spec and what the cluster shows. Pure.

`compute_status` turns the parsed spec, the operator options and an `Observation`
(the Deployment, its Pods, the GPU capacity of the nodes and what the autoscaler in
force reports, read by the reconciler) into the whole status: phase, the six
conditions with their reasons (the scaling ones from `autoscaling.conditions`),
replica counts, the queue depth and the endpoint. `invalid_status` is the status of
a spec the operator refuses. Nothing here reads the cluster or the clock (`now` is
passed in), so every condition is tested without a cluster.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.autoscaling import conditions as autoscaling_conditions
from llm_operator.autoscaling import reports
from llm_operator.builders import common

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
SCALING_ACTIVE = autoscaling_conditions.SCALING_ACTIVE
SCALING_LIMITED = autoscaling_conditions.SCALING_LIMITED
GUARDRAILS_READY = "GuardrailsReady"
CONDITION_TYPES = (
    READY,
    PROGRESSING,
    DEGRADED,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    GUARDRAILS_READY,
)


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the cluster says about the children, read after applying them."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]]
    gpu_capacity: list[int] | None
    missing_kinds: tuple[str, ...] = ()
    # The builtin loop's latest report; the ScaledObject (keda) or HPA (hpa) the operator
    # made; and the HPA doing the scaling (ours, or the one KEDA made).
    autoscaler: reports.Report | None = None
    scaler: dict[str, Any] | None = None
    hpa: dict[str, Any] | None = None


def _condition(
    type_: str, status: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _keep_transition_times(
    conditions: list[dict[str, Any]], previous: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    before = {c.get("type"): c for c in previous}
    out = []
    for condition in conditions:
        old = before.get(condition["type"])
        if (
            old is not None
            and old.get("status") == condition["status"]
            and old.get("lastTransitionTime")
        ):
            stamp = old["lastTransitionTime"]
        else:
            stamp = now
        out.append({**condition, "lastTransitionTime": stamp})
    return out


def _unschedulable_message(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        for cond in pod.get("status", {}).get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                return str(cond.get("message") or "no node fits the Pod")
    return None


def _gateway_ready(pods: list[dict[str, Any]]) -> int:
    count = 0
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses") or []:
            if container.get("name") == "gateway" and container.get("ready"):
                count += 1
    return count


def invalid_status(
    lines: list[str],
    generation: int | None,
    previous: dict[str, Any],
    now: str,
    reason: str = "InvalidSpec",
) -> dict[str, Any]:
    """Status of an object whose spec the operator refuses (InvalidSpec, InsufficientGPUMemory)."""
    message = "; ".join(lines)
    conditions = [
        _condition(READY, False, reason, message, generation),
        _condition(PROGRESSING, False, reason, "fix the spec to continue", generation),
        _condition(DEGRADED, True, reason, message, generation),
    ]
    status = dict(previous)
    status.update(
        {
            "observedGeneration": generation,
            "phase": v1alpha1.Phase.FAILED.value,
            "conditions": _keep_transition_times(conditions, previous.get("conditions") or [], now),
        }
    )
    return status


def compute_status(
    target: common.Target,
    options: common.Options,
    observation: Observation,
    generation: int | None,
    previous: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """The status implied by the spec and what was observed. Pure."""
    spec = target.spec
    deployment = observation.deployment or {}
    dep_status = deployment.get("status") or {}
    desired = (
        target.replicas
        if target.replicas is not None
        else int((deployment.get("spec") or {}).get("replicas") or 0)
    )
    replicas = int(dep_status.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    dep_generation = int(dep_status.get("observedGeneration") or 0)
    dep_current = dep_generation >= int((deployment.get("metadata") or {}).get("generation") or 0)
    dep_conditions = {c.get("type"): c for c in dep_status.get("conditions") or []}
    deadline = dep_conditions.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"

    gpus = target.gpus
    capacity = observation.gpu_capacity
    largest = max(capacity) if capacity else 0
    unschedulable = _unschedulable_message(observation.pods)
    gpu_name = spec.resources.gpu_resource_name

    conditions = []
    phase: v1alpha1.Phase
    if capacity is not None and desired > 0 and gpus > largest:
        message = (
            f"each replica needs {gpus} {gpu_name} but the largest node has {largest} "
            f"allocatable (short by {gpus - largest}); lower resources.gpus or add larger nodes"
        )
        conditions.append(_condition(READY, False, "InsufficientGPU", message, generation))
        phase = v1alpha1.Phase.PENDING
    elif unschedulable and ready < desired:
        message = f"replicas cannot be scheduled: {unschedulable}"
        conditions.append(_condition(READY, False, "Unschedulable", message, generation))
        phase = v1alpha1.Phase.PENDING
    elif desired == 0:
        conditions.append(
            _condition(READY, True, "ScaledToZero", "no replicas are wanted", generation)
        )
        phase = v1alpha1.Phase.READY
    elif ready >= desired and updated >= desired and dep_current:
        conditions.append(
            _condition(
                READY, True, "AllReplicasReady", f"{ready}/{desired} replicas ready", generation
            )
        )
        phase = v1alpha1.Phase.READY
    else:
        reason = "RolloutStuck" if deadline else "ReplicasNotReady"
        conditions.append(
            _condition(READY, False, reason, f"{ready}/{desired} replicas ready", generation)
        )
        phase = v1alpha1.Phase.DEGRADED if deadline else v1alpha1.Phase.PROGRESSING

    rolling = desired > 0 and (updated < desired or ready < desired or not dep_current)
    if deadline:
        conditions.append(
            _condition(
                PROGRESSING,
                False,
                "ProgressDeadlineExceeded",
                f"rollout did not finish in {spec.rollout.progress_deadline_seconds}s",
                generation,
            )
        )
    elif rolling:
        conditions.append(
            _condition(
                PROGRESSING,
                True,
                "RollingOut",
                f"{updated}/{desired} replicas updated, {ready} ready",
                generation,
            )
        )
    else:
        conditions.append(
            _condition(PROGRESSING, False, "RolloutComplete", "no rollout in progress", generation)
        )

    problems = []
    if deadline:
        problems.append("rollout exceeded its progress deadline")
    if unschedulable:
        problems.append("some replicas cannot be scheduled")
    if observation.missing_kinds:
        problems.append(
            "requested objects whose CRDs are not installed: "
            + ", ".join(observation.missing_kinds)
        )
    if 0 < ready < desired and not rolling:
        problems.append(f"only {ready}/{desired} replicas ready")
    conditions.append(
        _condition(
            DEGRADED,
            bool(problems),
            "Problems" if problems else "AsExpected",
            "; ".join(problems) if problems else "no problems observed",
            generation,
        )
    )
    if phase is v1alpha1.Phase.READY and problems:
        phase = v1alpha1.Phase.DEGRADED

    scaling = autoscaling_conditions.compute(
        spec,
        observation.autoscaler,
        observation.scaler,
        observation.hpa,
        observation.missing_kinds,
    )
    for condition in (scaling.active, scaling.limited):
        conditions.append({**condition, "observedGeneration": generation})

    if target.gateway_enabled:
        gateways = _gateway_ready(observation.pods)
        ok = desired == 0 or gateways >= min(desired, max(ready, 1))
        conditions.append(
            _condition(
                GUARDRAILS_READY,
                ok,
                "GatewayReady" if ok else "GatewayNotReady",
                f"{gateways} gateway sidecars ready",
                generation,
            )
        )
    else:
        conditions.append(
            _condition(
                GUARDRAILS_READY, False, "GuardrailsDisabled", "guardrails are off", generation
            )
        )

    status = dict(previous)
    status.update(
        {
            "observedGeneration": generation,
            "phase": phase.value,
            "conditions": _keep_transition_times(conditions, previous.get("conditions") or [], now),
            "replicas": replicas,
            "readyReplicas": ready,
            "desiredReplicas": desired,
            "ready": f"{ready}/{desired}",
            "endpoint": common.endpoint(target, options),
            "selector": f"{common.LABEL_DEPLOYMENT}={target.name}",
            # Absent unless the autoscaler in force says them now; lastScaleTime is history.
            "queueDepth": None,
            "autoscaler": None,
        }
    )
    status.update(scaling.fields)
    return status
