"""Level-based reconciliation of one LLMDeployment.

One pass: parse the spec (an invalid one is reported in status and an Event and
nothing else is touched), build the whole desired set of children, server-side
apply it, prune owned children that are no longer wanted, observe the Deployment,
its Pods and the nodes, then write status once if it changed and post Events on
transitions. Passes for the same object are serialised by a lock, because they are
started by kopf's handlers, by Deployment events and by the periodic resync.

`compute_status` is pure, so the condition logic is tested without a cluster.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from typing import Any

import pydantic

from llm_operator import kube
from llm_operator.api import v1alpha1
from llm_operator.builders import children, common
from llm_serving import policy

logger = logging.getLogger(__name__)

_locks: collections.defaultdict[tuple[str, str], threading.Lock] = collections.defaultdict(
    threading.Lock
)
_locks_guard = threading.Lock()

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
SCALING_ACTIVE = "ScalingActive"
GUARDRAILS_READY = "GuardrailsReady"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, SCALING_ACTIVE, GUARDRAILS_READY)


class InvalidSpecError(Exception):
    """The spec cannot be served as written; the user must change it."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the cluster says about the children, read after applying them."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]]
    gpu_capacity: list[int] | None
    missing_kinds: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Result of one pass, for the caller's logs and retries."""

    status: dict[str, Any]
    applied: int
    pruned: tuple[str, ...]
    changed_status: bool


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks[(namespace, name)]


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
    lines: list[str], generation: int | None, previous: dict[str, Any], now: str
) -> dict[str, Any]:
    """Status of an object whose spec the operator refuses."""
    message = "; ".join(lines)
    conditions = [
        _condition(READY, False, "InvalidSpec", message, generation),
        _condition(PROGRESSING, False, "InvalidSpec", "fix the spec to continue", generation),
        _condition(DEGRADED, True, "InvalidSpec", message, generation),
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

    gpus = spec.resources.gpus
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

    scaling = spec.autoscaling
    if scaling.enabled:
        conditions.append(
            _condition(
                SCALING_ACTIVE,
                True,
                {"builtin": "BuiltinAutoscaler", "keda": "KEDA", "hpa": "HPA"}[
                    scaling.provider.value
                ],
                f"{scaling.min_replicas}..{scaling.max_replicas} replicas on queue depth "
                f"(target {scaling.target_queue_depth:g} per replica)",
                generation,
            )
        )
    else:
        conditions.append(
            _condition(
                SCALING_ACTIVE,
                False,
                "AutoscalingDisabled",
                f"replicas fixed at {spec.replicas}",
                generation,
            )
        )

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
        }
    )
    return status


def _ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == READY:
            return dict(condition)
    return {}


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if v is not None}


def write_status(client: kube.Client, obj: dict[str, Any], status: dict[str, Any]) -> bool:
    """Write status if it differs from what the object carries, and post transition Events."""
    previous = obj.get("status") or {}
    if _comparable(previous) == _comparable(status):
        return False
    meta = obj["metadata"]
    patch = dict(status)
    for key in previous:
        patch.setdefault(key, None)
    client.patch_status(meta["namespace"], meta["name"], patch)
    before, after = _ready_condition(previous), _ready_condition(status)
    if (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason")):
        if after.get("status") == "True":
            client.post_event(obj, "Normal", after.get("reason", READY), after.get("message", ""))
        elif after.get("reason") not in ("ReplicasNotReady",):
            client.post_event(
                obj, "Warning", after.get("reason", "NotReady"), after.get("message", "")
            )
        elif not before:
            client.post_event(obj, "Normal", "Progressing", after.get("message", ""))
    return True


def _autoscaled(obj: dict[str, Any]) -> int | None:
    value = (obj.get("status") or {}).get("desiredReplicas")
    return int(value) if isinstance(value, int) else None


def reconcile(client: kube.Client, obj: dict[str, Any], options: common.Options) -> Outcome:
    """One full pass over one LLMDeployment. Raises InvalidSpecError for a spec to fix."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    with _lock(namespace, name):
        # Work on the latest copy: a queued pass may hold a stale body.
        fresh = client.get_llmd(namespace, name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return Outcome(status={}, applied=0, pruned=(), changed_status=False)
        return _reconcile_locked(client, fresh, options)


def _reconcile_locked(client: kube.Client, obj: dict[str, Any], options: common.Options) -> Outcome:
    meta = obj["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = meta.get("generation")
    previous = obj.get("status") or {}
    now = kube.timestamp()
    try:
        target = children.target_from_object(obj, autoscaled=_autoscaled(obj))
    except pydantic.ValidationError as exc:
        lines = policy.error_lines(exc, prefix="spec")
        status = invalid_status(lines, generation, previous, now)
        write_status(client, obj, status)
        raise InvalidSpecError(lines) from exc

    desired = children.build_all(target, options)
    missing: list[str] = []
    wanted: set[tuple[str, str, str]] = set()
    for child in desired:
        try:
            client.apply(child)
        except kube.KindUnavailableError:
            missing.append(f"{child['kind']} ({child['apiVersion']})")
            continue
        wanted.add((child["apiVersion"], child["kind"], child["metadata"]["name"]))

    pruned = []
    for kind in children.CHILD_KINDS:
        try:
            owned = client.list_owned(kind, namespace, name, uid)
        except kube.KindUnavailableError:
            continue
        for item in owned:
            key = (kind.api_version, kind.kind, item["metadata"]["name"])
            if key not in wanted:
                client.delete(kind, namespace, item["metadata"]["name"])
                pruned.append(f"{kind.kind}/{item['metadata']['name']}")
    if pruned:
        logger.info("pruned %s from %s/%s", ", ".join(pruned), namespace, name)
        client.post_event(obj, "Normal", "Pruned", "removed " + ", ".join(pruned))

    observation = Observation(
        deployment=client.get("apps/v1", "Deployment", namespace, name),
        pods=client.list_pods(namespace, name),
        gpu_capacity=client.gpu_capacity(target.spec.resources.gpu_resource_name),
        missing_kinds=tuple(missing),
    )
    status = compute_status(target, options, observation, generation, previous, now)
    changed = write_status(client, obj, status)
    return Outcome(status=status, applied=len(wanted), pruned=tuple(pruned), changed_status=changed)
