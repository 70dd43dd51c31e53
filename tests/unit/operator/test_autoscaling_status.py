"""ScalingActive, ScalingLimited, queueDepth and lastScaleTime from each provider's reports."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator import status as llmd_status
from llm_operator.autoscaling import conditions, decision, reports
from llm_operator.builders import children, common

NOW = "2026-01-01T00:00:00Z"
MODEL = {"uri": "hf://org/m"}


def _target(autoscaling: dict[str, Any], **spec: Any) -> common.Target:
    body = {"model": MODEL, "autoscaling": {"enabled": True, **autoscaling}, **spec}
    return children.target_from_object(
        {"metadata": {"name": "m", "namespace": "ns", "uid": "u"}, "spec": body}
    )


def _deployment(replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def _decision(**changes: Any) -> decision.Decision:
    base: dict[str, Any] = {
        "desired": 3,
        "current": 2,
        "recommended": 3,
        "direction": decision.Direction.UP,
        "reason": decision.Reason.SIGNAL_ABOVE_TARGET,
        "message": "scale up 2 -> 3",
        "panic": False,
        "fresh": True,
        "signal": 27.0,
        "stable_average": 27.0,
        "panic_average": 27.0,
    }
    return decision.Decision(**{**base, **changes})


def _report(**changes: Any) -> reports.Report:
    base: dict[str, Any] = {
        "decision": _decision(),
        "source": "prometheus http://prom:9090",
        "last_read_time": NOW,
        "last_scale_time": NOW,
        "queue_depth": 7.0,
    }
    return reports.Report(**{**base, **changes})


def _status(
    target: common.Target,
    report: reports.Report | None = None,
    scaler: dict[str, Any] | None = None,
    hpa: dict[str, Any] | None = None,
    missing: tuple[str, ...] = (),
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    observation = llmd_status.Observation(
        deployment=_deployment(target.replicas or 2),
        pods=[],
        gpu_capacity=[8, 8],
        missing_kinds=missing,
        autoscaler=report,
        scaler=scaler,
        hpa=hpa,
    )
    return llmd_status.compute_status(target, common.Options(), observation, 1, previous or {}, NOW)


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_builtin_active_only_with_a_fresh_reading() -> None:
    target = _target({})
    status = _status(target, _report())
    active = _cond(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("True", "SignalRead")
    assert "prometheus http://prom:9090" in active["message"]
    assert status["queueDepth"] == 7.0
    assert status["lastScaleTime"] == NOW
    assert status["autoscaler"]["recommendedReplicas"] == 3
    assert status["autoscaler"]["signal"] == 27.0
    assert _cond(status, "ScalingLimited")["reason"] == "DesiredWithinRange"


@pytest.mark.parametrize("reason", ["PrometheusUnreachable", "NoMetrics", "MetricsUnreachable"])
def test_builtin_not_active_when_the_signal_is_stale(reason: str) -> None:
    stale = _report(
        decision=_decision(fresh=False, desired=2, reason=decision.Reason.NO_SIGNAL),
        read_error=reason,
        read_detail="could not read",
    )
    status = _status(_target({}), stale)
    active = _cond(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", reason)
    assert "holding 2 replicas" in active["message"]
    # A stale queue is not shown as if it were current.
    assert status.get("queueDepth") is None
    assert status["autoscaler"]["signal"] is None


def test_builtin_advise_mode_is_not_scaling() -> None:
    target = _target({"mode": "advise"}, replicas=2)
    assert target.replicas == 2  # advise changes nothing
    status = _status(target, _report())
    active = _cond(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "AdviseOnly")
    assert "would set 3 replicas" in active["message"]
    assert status["autoscaler"]["recommendedReplicas"] == 3
    assert status["desiredReplicas"] == 2


def test_builtin_gpu_shortage_is_scaling_limited() -> None:
    limited = _report(
        decision=_decision(
            desired=2,
            reason=decision.Reason.GPU_SHORTAGE,
            limit=decision.Limit.GPU_SHORTAGE,
            limit_message="wants 4 replicas but holds at 2: 1 replica is Pending",
        )
    )
    condition = _cond(_status(_target({}), limited), "ScalingLimited")
    assert (condition["status"], condition["reason"]) == ("True", "GPUShortage")
    assert "holds at 2" in condition["message"]


def test_switching_autoscaling_off_clears_its_fields_but_keeps_history() -> None:
    before = _status(_target({}), _report())
    off = children.target_from_object(
        {"metadata": {"name": "m", "namespace": "ns", "uid": "u"}, "spec": {"model": MODEL}}
    )
    after = _status(off, previous=before)
    assert after["queueDepth"] is None
    assert after["autoscaler"] is None
    assert after["lastScaleTime"] == NOW
    assert _cond(after, "ScalingActive")["reason"] == "AutoscalingDisabled"
    assert _cond(after, "ScalingLimited")["reason"] == "AutoscalingDisabled"


KEDA = {"provider": "keda", "prometheusUrl": "http://p:9090"}


def _ready(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": status, **extra}]}}


def test_keda_not_installed() -> None:
    status = _status(_target(KEDA), missing=("ScaledObject (keda.sh/v1alpha1)",))
    assert _cond(status, "ScalingActive")["reason"] == "KEDANotInstalled"
    assert _cond(status, "ScalingActive")["status"] == "False"


def test_keda_without_status_is_not_active() -> None:
    status = _status(_target(KEDA), scaler={"spec": {}})
    assert _cond(status, "ScalingActive")["reason"] == "KEDANotReporting"


def test_keda_ready_is_active_and_mirrors_its_hpa() -> None:
    scaled = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Active", "status": "True"},
            ]
        }
    }
    hpa = {
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 3,
            "lastScaleTime": "2026-01-01T00:00:05Z",
            "currentMetrics": [
                {"type": "External", "external": {"current": {"averageValue": "2500m"}}}
            ],
            "conditions": [
                {"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas"}
            ],
        }
    }
    status = _status(_target(KEDA), scaler=scaled, hpa=hpa)
    active = _cond(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("True", "KEDAReady")
    assert "a trigger is active" in active["message"]
    assert _cond(status, "ScalingLimited")["reason"] == "TooManyReplicas"
    assert status["lastScaleTime"] == "2026-01-01T00:00:05Z"
    assert status["queueDepth"] == 5.0
    assert status["autoscaler"]["recommendedReplicas"] == 3


def test_keda_not_ready_says_why() -> None:
    scaled = _ready("False", reason="ScaledObjectCheckFailed", message="prometheus down")
    active = _cond(_status(_target(KEDA), scaler=scaled), "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "KEDANotReady")
    assert "prometheus down" in active["message"]


def test_hpa_failing_to_get_its_metric_is_not_active() -> None:
    hpa = {
        "status": {
            "conditions": [
                {
                    "type": "ScalingActive",
                    "status": "False",
                    "reason": "FailedGetExternalMetric",
                    "message": "unable to get external metric",
                }
            ]
        }
    }
    status = _status(_target({"provider": "hpa"}), scaler=hpa, hpa=hpa)
    active = _cond(status, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "FailedGetExternalMetric")
    assert "unable to get external metric" in active["message"]
    assert _cond(status, "ScalingLimited")["status"] == "Unknown"


def test_hpa_missing_or_silent() -> None:
    assert _cond(_status(_target({"provider": "hpa"})), "ScalingActive")["reason"] == "HPAMissing"
    silent = _status(_target({"provider": "hpa"}), scaler={"spec": {}}, hpa={"spec": {}})
    assert _cond(silent, "ScalingActive")["reason"] == "HPANotReporting"


@pytest.mark.parametrize(
    ("text", "value"),
    [("2500m", 2.5), ("3", 3.0), ("1k", 1000.0), (7, 7.0), ("x", None), (None, None)],
)
def test_quantities(text: object, value: float | None) -> None:
    assert conditions.quantity(text) == value
