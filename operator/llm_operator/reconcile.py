"""Level-based reconciliation of one LLMDeployment.

One pass: parse the spec (an invalid one is reported in status and an Event and
nothing else is touched; so is one whose model the memory planner finds does not fit
its GPUs, with reason `InsufficientGPUMemory`), build the whole desired set of
children, list what the object owns, plan the changes (`changes.plan`, pure),
server-side apply the desired children and prune the owned ones no longer wanted,
observe the Deployment, its Pods and the nodes, then write status
(`status.compute_status`, pure) once if it changed and post Events on transitions.
Passes for the same object are serialised by a lock, because they are started by
kopf's handlers, by Deployment events and by the periodic resync.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any

import pydantic

from llm_operator import changes, errors, kube, metrics, pricing, status
from llm_operator.api import v1alpha1
from llm_operator.autoscaling import reports
from llm_operator.builders import children, common
from llm_operator.planning import memory
from llm_serving import policy

logger = logging.getLogger(__name__)

_locks: collections.defaultdict[tuple[str, str], threading.Lock] = collections.defaultdict(
    threading.Lock
)
_locks_guard = threading.Lock()


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


def _ready_condition(current: dict[str, Any]) -> dict[str, Any]:
    for condition in current.get("conditions") or []:
        if condition.get("type") == status.READY:
            return dict(condition)
    return {}


def _comparable(current: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in current.items() if v is not None}


def write_status(client: kube.Client, obj: dict[str, Any], new: dict[str, Any]) -> bool:
    """Write status if it differs from what the object carries, and post transition Events."""
    previous = obj.get("status") or {}
    if _comparable(previous) == _comparable(new):
        return False
    meta = obj["metadata"]
    patch = dict(new)
    for key in previous:
        patch.setdefault(key, None)
    client.patch_status(meta["namespace"], meta["name"], patch)
    before, after = _ready_condition(previous), _ready_condition(new)
    if (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason")):
        if after.get("status") == "True":
            client.post_event(
                obj, "Normal", after.get("reason", status.READY), after.get("message", "")
            )
        elif after.get("reason") not in ("ReplicasNotReady",):
            client.post_event(
                obj, "Warning", after.get("reason", "NotReady"), after.get("message", "")
            )
        elif not before:
            client.post_event(obj, "Normal", "Progressing", after.get("message", ""))
    return True


def _autoscaled(obj: dict[str, Any]) -> int | None:
    """The builtin autoscaler's count: its latest decision, or the last one status recorded."""
    meta = obj["metadata"]
    report = reports.REPORTS.get(meta["namespace"], meta["name"])
    if report is not None:
        return report.decision.desired
    value = (obj.get("status") or {}).get("desiredReplicas")
    return int(value) if isinstance(value, int) else None


def _get_optional(
    client: kube.Client, api_version: str, kind: str, namespace: str, name: str
) -> dict[str, Any] | None:
    try:
        return client.find(api_version, kind, namespace, name)
    except errors.KindUnavailableError:
        return None


def observe(
    client: kube.Client, target: common.Target, missing: tuple[str, ...] = ()
) -> status.Observation:
    """Read what status is computed from: the Deployment, Pods, nodes and the autoscaler."""
    namespace, name = target.namespace, target.name
    scaling = target.spec.autoscaling
    report = scaler = hpa = None
    if scaling.enabled and scaling.provider is v1alpha1.AutoscalingProvider.BUILTIN:
        report = reports.REPORTS.get(namespace, name)
    elif scaling.enabled and scaling.provider is v1alpha1.AutoscalingProvider.KEDA:
        scaler = _get_optional(client, "keda.sh/v1alpha1", "ScaledObject", namespace, name)
        # KEDA scales through an HPA of its own, named after the ScaledObject.
        hpa = _get_optional(
            client, "autoscaling/v2", "HorizontalPodAutoscaler", namespace, f"keda-hpa-{name}"
        )
    elif scaling.enabled:
        scaler = hpa = _get_optional(
            client, "autoscaling/v2", "HorizontalPodAutoscaler", namespace, name
        )
    return status.Observation(
        deployment=client.get("apps/v1", "Deployment", namespace, name),
        pods=client.list_pods(namespace, name),
        gpu_capacity=client.gpu_capacity(target.spec.resources.gpu_resource_name),
        missing_kinds=missing,
        autoscaler=report,
        scaler=scaler,
        hpa=hpa,
    )


def reconcile(
    client: kube.Client,
    obj: dict[str, Any],
    options: common.Options,
    *,
    trigger: str = "change",
) -> Outcome:
    """One full pass over one LLMDeployment. Raises InvalidSpecError for a spec to fix.

    `trigger` (one of `metrics.TRIGGERS`) labels the pass in the operator's metrics.
    """
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    started = time.perf_counter()
    result = "error"
    try:
        with _lock(namespace, name):
            # Work on the latest copy: a queued pass may hold a stale body.
            fresh = client.get_llmd(namespace, name)
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                metrics.FLEET.forget(namespace, name)
                result = "gone"
                return Outcome(status={}, applied=0, pruned=(), changed_status=False)
            try:
                outcome = _reconcile_locked(client, fresh, options)
            except errors.InvalidSpecError:
                result = "invalid_spec"
                raise
            except Exception:
                # Still counted (phase from its status, Unknown when it has none) while
                # its passes fail, so the fleet's figures do not leave it out.
                if (namespace, name) not in metrics.FLEET.names():
                    current = fresh.get("status") or {}
                    unknown = metrics.snapshot(current, [], "", pricing.UNSPECIFIED)
                    metrics.FLEET.observe(namespace, name, unknown)
                raise
            result = "success"
            return outcome
    finally:
        metrics.RECONCILES.labels(*metrics.outcome_labels(trigger, result)).inc()
        metrics.RECONCILE_DURATION.labels(trigger).observe(time.perf_counter() - started)


def _owned(
    client: kube.Client, namespace: str, name: str, uid: str
) -> dict[children.ChildKind, list[dict[str, Any]]]:
    owned = {}
    for kind in children.CHILD_KINDS:
        try:
            owned[kind] = client.list_owned(kind, namespace, name, uid)
        except errors.KindUnavailableError:
            continue
    return owned


def _observe_refused(client: kube.Client, obj: dict[str, Any], refused: dict[str, Any]) -> None:
    """Metrics of an object whose spec is refused: its phase, and Pods it may still run."""
    meta = obj["metadata"]
    resources = (obj.get("spec") or {}).get("resources") or {}
    resource_name = resources.get("gpuResourceName")
    spec_type = resources.get("gpuType")
    metrics.FLEET.observe(
        meta["namespace"],
        meta["name"],
        metrics.snapshot(
            refused,
            client.list_pods(meta["namespace"], meta["name"]),
            resource_name if isinstance(resource_name, str) else "nvidia.com/gpu",
            pricing.gpu_type(spec_type if isinstance(spec_type, str) else None),
        ),
    )


def _reconcile_locked(client: kube.Client, obj: dict[str, Any], options: common.Options) -> Outcome:
    meta = obj["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = meta.get("generation")
    previous = obj.get("status") or {}
    now = kube.timestamp()
    try:
        target = children.target_from_object(
            obj, autoscaled=_autoscaled(obj), guardrail_defaults=options.guardrail_defaults
        )
    except pydantic.ValidationError as exc:
        lines = policy.error_lines(exc, prefix="spec")
        refused = status.invalid_status(lines, generation, previous, now)
        write_status(client, obj, refused)
        _observe_refused(client, obj, refused)
        raise errors.InvalidSpecError(lines) from exc
    plan = memory.plan_spec(target.spec)
    if plan.refused and plan.plan is not None:
        # No Pod that would load for minutes and then die out of memory: nothing is touched.
        lines = memory.refusal(target.spec, plan.plan)
        reason = errors.InsufficientGPUMemoryError.reason
        write_status(client, obj, status.invalid_status(lines, generation, previous, now, reason))
        raise errors.InsufficientGPUMemoryError(lines)

    change_set = changes.plan(
        children.build_all(target, options), _owned(client, namespace, name, uid)
    )
    missing: list[str] = []
    for child in change_set.apply:
        try:
            client.apply(child)
        except errors.KindUnavailableError:
            missing.append(f"{child['kind']} ({child['apiVersion']})")
            continue
        metrics.CHILDREN_APPLIED.labels(child["kind"]).inc()
    for prune in change_set.prune:
        client.delete(prune.kind, namespace, prune.name)
        metrics.CHILDREN_PRUNED.labels(prune.kind.kind).inc()
    pruned = tuple(str(prune) for prune in change_set.prune)
    if pruned:
        logger.info("pruned %s from %s/%s", ", ".join(pruned), namespace, name)
        client.post_event(obj, "Normal", "Pruned", "removed " + ", ".join(pruned))

    observation = observe(client, target, tuple(missing))
    new, changed = _write(client, obj, target, options, observation, now, generation)
    return Outcome(
        status=new,
        applied=len(change_set.apply) - len(missing),
        pruned=pruned,
        changed_status=changed,
    )


def _write(
    client: kube.Client,
    obj: dict[str, Any],
    target: common.Target,
    options: common.Options,
    observation: status.Observation,
    now: str,
    generation: int | None,
) -> tuple[dict[str, Any], bool]:
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    previous = obj.get("status") or {}
    new = status.compute_status(target, options, observation, generation, previous, now)
    changed = write_status(client, obj, new)
    resources, scaling = target.spec.resources, target.spec.autoscaling
    metrics.FLEET.observe(
        namespace,
        name,
        metrics.snapshot(
            new,
            observation.pods,
            resources.gpu_resource_name,
            pricing.gpu_type(resources.gpu_type),
            (
                scaling.provider.value,
                scaling.min_replicas,
                scaling.max_replicas,
                scaling.target,
            )
            if scaling.enabled
            else None,
        ),
    )
    return new, changed


def refresh_status(
    client: kube.Client, obj: dict[str, Any], options: common.Options
) -> dict[str, Any] | None:
    """Observe and write status only, applying nothing (the builtin loop's pass when the
    replica count stays). None when the object is gone or its spec is refused."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    with _lock(namespace, name):
        fresh = client.get_llmd(namespace, name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return None
        try:
            target = children.target_from_object(fresh, autoscaled=_autoscaled(fresh))
        except pydantic.ValidationError:
            return None
        # Nothing was applied: the status still speaks for the generation last acted on.
        acted_on = (fresh.get("status") or {}).get("observedGeneration")
        new, _ = _write(
            client, fresh, target, options, observe(client, target), kube.timestamp(), acted_on
        )
        return new
