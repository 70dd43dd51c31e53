"""Conditions and phase computed from what the cluster reports (pure, no cluster)."""

from __future__ import annotations

from typing import Any

from llm_operator import status as llmd_status
from llm_operator.builders import children, common

NOW = "2026-01-01T00:00:00Z"


def _target(spec: dict[str, Any]) -> common.Target:
    return children.target_from_object(
        {"metadata": {"name": "m", "namespace": "ns", "uid": "u"}, "spec": spec}
    )


def _deployment(ready: int, updated: int, replicas: int, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            **extra,
        },
    }


def _status(
    spec: dict[str, Any],
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]] | None = None,
    capacity: list[int] | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    observation = llmd_status.Observation(
        deployment=deployment, pods=pods or [], gpu_capacity=capacity if capacity else [8, 8]
    )
    return llmd_status.compute_status(
        _target(spec), common.Options(), observation, 3, previous or {}, NOW
    )


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


BASE = {"model": {"uri": "hf://org/m"}, "replicas": 2}


def test_ready_when_all_replicas_ready() -> None:
    status = _status(BASE, _deployment(2, 2, 2))
    assert status["phase"] == "Ready"
    assert status["ready"] == "2/2"
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "Progressing")["reason"] == "RolloutComplete"
    assert status["observedGeneration"] == 3
    assert status["endpoint"] == "http://m.ns.svc.cluster.local/v1"
    assert status["selector"] == "llmoperator.io/deployment=m"
    assert {c["type"] for c in status["conditions"]} == set(llmd_status.CONDITION_TYPES)


def test_progressing_while_rolling_out() -> None:
    status = _status(BASE, _deployment(1, 1, 2))
    assert status["phase"] == "Progressing"
    assert _cond(status, "Ready")["reason"] == "ReplicasNotReady"
    assert _cond(status, "Progressing")["status"] == "True"


def test_stuck_rollout_is_degraded() -> None:
    deadline = {"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}
    status = _status(BASE, _deployment(1, 1, 2, **deadline))
    assert status["phase"] == "Degraded"
    assert _cond(status, "Ready")["reason"] == "RolloutStuck"
    assert _cond(status, "Degraded")["status"] == "True"


def test_more_gpus_than_any_node_names_the_shortfall() -> None:
    spec = {
        **BASE,
        "resources": {"gpus": 12},
        "engine": {"tensorParallelSize": 4, "pipelineParallelSize": 3},
    }
    status = _status(spec, _deployment(0, 0, 2), capacity=[8, 8])
    ready = _cond(status, "Ready")
    assert ready["reason"] == "InsufficientGPU"
    assert "needs 12 nvidia.com/gpu" in ready["message"]
    assert "short by 4" in ready["message"]
    assert status["phase"] == "Pending"


def test_unschedulable_pod_reported() -> None:
    pod = {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
                }
            ]
        }
    }
    status = _status(BASE, _deployment(0, 2, 2), pods=[pod])
    ready = _cond(status, "Ready")
    assert ready["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in ready["message"]


def test_transition_time_kept_while_status_unchanged() -> None:
    first = _status(BASE, _deployment(2, 2, 2))
    later = llmd_status.compute_status(
        _target(BASE),
        common.Options(),
        llmd_status.Observation(deployment=_deployment(2, 2, 2), pods=[], gpu_capacity=[8]),
        3,
        first,
        "2026-01-01T01:00:00Z",
    )
    assert _cond(later, "Ready")["lastTransitionTime"] == NOW


def test_guardrails_and_scaling_conditions() -> None:
    spec = {
        **BASE,
        "guardrails": {"enabled": True},
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3},
    }
    pod = {"status": {"containerStatuses": [{"name": "gateway", "ready": True}]}}
    status = _status(spec, _deployment(1, 1, 1), pods=[pod])
    assert _cond(status, "GuardrailsReady")["status"] == "True"
    # Nothing has read the queue yet: the status must not claim that scaling happens.
    active = _cond(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "WaitingForSignal")
    assert _cond(status, "ScalingLimited")["status"] == "Unknown"
    assert status["desiredReplicas"] == 1
    assert "queueDepth" not in {k for k, v in status.items() if v is not None}
    off = _status(BASE, _deployment(2, 2, 2))
    assert _cond(off, "GuardrailsReady")["reason"] == "GuardrailsDisabled"
    assert _cond(off, "ScalingActive")["reason"] == "AutoscalingDisabled"


def test_missing_crds_degrade() -> None:
    observation = llmd_status.Observation(
        deployment=_deployment(2, 2, 2),
        pods=[],
        gpu_capacity=[8],
        missing_kinds=("PodMonitor (monitoring.coreos.com/v1)",),
    )
    status = llmd_status.compute_status(_target(BASE), common.Options(), observation, 1, {}, NOW)
    assert status["phase"] == "Degraded"
    assert "PodMonitor" in _cond(status, "Degraded")["message"]


def test_invalid_status() -> None:
    status = llmd_status.invalid_status(["spec.x: bad"], 4, {}, NOW)
    assert status["phase"] == "Failed"
    assert _cond(status, "Ready")["reason"] == "InvalidSpec"
    assert _cond(status, "Ready")["message"] == "spec.x: bad"
