"""ScalingActive, ScalingLimited and the autoscaler's status fields, from what was observed. Pure.

`ScalingActive` is True only when something is scaling the Deployment right now: the
builtin loop read its signal within `stale_after` (and is not in mode advise), or
the ScaledObject is Ready by KEDA's own status, or the HPA says it is able to fetch
its metric (its own `ScalingActive` condition). Anything else is False with the
reason: no reading yet, Prometheus unreachable, no series, KEDA not installed or
not reporting, the HPA failing to get its metric. `ScalingLimited` says what keeps
the count from what the signal asks (GPUs, bounds, step limits), from the builtin
decision or the HPA's own condition.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.autoscaling import reports

SCALING_ACTIVE = "ScalingActive"
SCALING_LIMITED = "ScalingLimited"

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(m|k|M|G|T|Ki|Mi|Gi)?$")
_SUFFIX = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024.0,
    "Mi": 1024.0**2,
    "Gi": 1024.0**3,
}


@dataclasses.dataclass(frozen=True)
class Scaling:
    """The scaling part of the status: two conditions (without times) and the fields."""

    active: dict[str, Any]
    limited: dict[str, Any]
    fields: dict[str, Any]


def _condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity as a number ("2500m" -> 2.5), None when it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _QUANTITY.match(str(value or ""))
    if not match:
        return None
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def _conditions_of(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    items = ((obj or {}).get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in items if isinstance(c, dict)}


def _builtin(
    spec: v1alpha1.LLMDeploymentSpec, report: reports.Report | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    scaling = spec.autoscaling
    every = f"every {scaling.polling_interval_seconds}s"
    if report is None:
        active = _condition(
            SCALING_ACTIVE,
            "False",
            "WaitingForSignal",
            f"the builtin autoscaler has not read its signal yet (it reads {every})",
        )
        limited = _condition(SCALING_LIMITED, "Unknown", "WaitingForSignal", "no decision yet")
        return active, limited, {}
    made = report.decision
    read = report.last_read_time or "never"
    if not made.fresh:
        reason = report.read_error or "NoSignal"
        detail = report.read_detail or made.message
        active = _condition(
            SCALING_ACTIVE,
            "False",
            reason,
            f"{detail}; last good reading: {read}; holding {made.desired} replicas",
        )
    elif scaling.mode is v1alpha1.AutoscalingMode.ADVISE:
        active = _condition(
            SCALING_ACTIVE,
            "False",
            "AdviseOnly",
            f"mode advise: would set {made.desired} replicas ({made.message}); the Deployment "
            f"keeps spec.replicas = {spec.replicas}",
        )
    else:
        active = _condition(
            SCALING_ACTIVE,
            "True",
            "SignalRead",
            f"{scaling.metric.value} from {report.source} at {read}: {made.message}",
        )
    if made.limit is not None:
        limited = _condition(SCALING_LIMITED, "True", made.limit.value, made.limit_message)
    else:
        limited = _condition(
            SCALING_LIMITED,
            "False",
            "DesiredWithinRange",
            f"the signal's count is within [{scaling.min_replicas}, {scaling.max_replicas}] "
            "and the step limits",
        )
    autoscaler = {
        "provider": scaling.provider.value,
        "mode": scaling.mode.value,
        "metric": scaling.metric.value,
        "target": scaling.target,
        "signal": made.signal if made.fresh else None,
        "source": report.source,
        "recommendedReplicas": made.desired,
        "reason": made.reason.value,
        "message": made.message,
        "panic": made.panic,
        "lastReadTime": report.last_read_time,
    }
    fields: dict[str, Any] = {"autoscaler": autoscaler}
    if report.queue_depth is not None and made.fresh:
        fields["queueDepth"] = round(report.queue_depth, 3)
    if report.last_scale_time is not None:
        fields["lastScaleTime"] = report.last_scale_time
    return active, limited, fields


def _hpa_fields(spec: v1alpha1.LLMDeploymentSpec, hpa: dict[str, Any] | None) -> dict[str, Any]:
    status = (hpa or {}).get("status") or {}
    scaling = spec.autoscaling
    fields: dict[str, Any] = {}
    if status.get("lastScaleTime"):
        fields["lastScaleTime"] = status["lastScaleTime"]
    signal = None
    for current in status.get("currentMetrics") or []:
        value = quantity(((current.get("external") or {}).get("current") or {}).get("averageValue"))
        if value is not None:
            signal = value * int(status.get("currentReplicas") or 0)
    fields["autoscaler"] = {
        "provider": scaling.provider.value,
        "mode": scaling.mode.value,
        "metric": scaling.metric.value,
        "target": scaling.target,
        "signal": signal,
        "source": "HorizontalPodAutoscaler status",
        "recommendedReplicas": status.get("desiredReplicas"),
    }
    if (
        signal is not None
        and scaling.metric is v1alpha1.AutoscalingMetric.QUEUE_DEPTH
        and not scaling.include_running
        and not scaling.query
    ):
        fields["queueDepth"] = round(signal, 3)
    return fields


def _hpa_limited(hpa: dict[str, Any] | None) -> dict[str, Any]:
    found = _conditions_of(hpa).get("ScalingLimited")
    if found is None:
        return _condition(
            SCALING_LIMITED, "Unknown", "NotReported", "the HorizontalPodAutoscaler has not said"
        )
    return _condition(
        SCALING_LIMITED,
        str(found.get("status") or "Unknown"),
        str(found.get("reason") or "NotReported"),
        str(found.get("message") or ""),
    )


def _keda(scaled_object: dict[str, Any] | None, missing_kinds: tuple[str, ...]) -> dict[str, Any]:
    if any(kind.startswith("ScaledObject") for kind in missing_kinds):
        return _condition(
            SCALING_ACTIVE,
            "False",
            "KEDANotInstalled",
            "the ScaledObject CRD (keda.sh/v1alpha1) is not installed: nothing scales the "
            "Deployment",
        )
    if scaled_object is None:
        return _condition(
            SCALING_ACTIVE, "False", "ScaledObjectMissing", "the ScaledObject does not exist yet"
        )
    ready = _conditions_of(scaled_object).get("Ready")
    if ready is None or ready.get("status") not in ("True", "False"):
        return _condition(
            SCALING_ACTIVE,
            "False",
            "KEDANotReporting",
            "the ScaledObject has no Ready condition: is KEDA running?",
        )
    if ready.get("status") != "True":
        return _condition(
            SCALING_ACTIVE,
            "False",
            "KEDANotReady",
            f"KEDA: {ready.get('reason') or ''} {ready.get('message') or ''}".strip(),
        )
    active = _conditions_of(scaled_object).get("Active") or {}
    state = (
        "a trigger is active"
        if active.get("status") == "True"
        else "no trigger is active (at minReplicaCount)"
    )
    return _condition(SCALING_ACTIVE, "True", "KEDAReady", f"KEDA is scaling; {state}")


def _hpa(hpa: dict[str, Any] | None) -> dict[str, Any]:
    if hpa is None:
        return _condition(
            SCALING_ACTIVE,
            "False",
            "HPAMissing",
            "the HorizontalPodAutoscaler does not exist yet",
        )
    found = _conditions_of(hpa).get("ScalingActive")
    if found is None:
        return _condition(
            SCALING_ACTIVE,
            "False",
            "HPANotReporting",
            "the HorizontalPodAutoscaler has no status yet",
        )
    status = "True" if found.get("status") == "True" else "False"
    reason = str(found.get("reason") or ("HPAActive" if status == "True" else "HPAInactive"))
    return _condition(SCALING_ACTIVE, status, reason, f"HPA: {found.get('message') or ''}")


def compute(
    spec: v1alpha1.LLMDeploymentSpec,
    report: reports.Report | None,
    scaler: dict[str, Any] | None,
    hpa: dict[str, Any] | None,
    missing_kinds: tuple[str, ...] = (),
) -> Scaling:
    """The scaling conditions and fields. `scaler` is the ScaledObject (keda) or the HPA
    (hpa); `hpa` is the HPA doing the work (ours, or the one KEDA made)."""
    scaling = spec.autoscaling
    if not scaling.enabled:
        fixed = f"autoscaling is off; replicas fixed at {spec.replicas}"
        return Scaling(
            active=_condition(SCALING_ACTIVE, "False", "AutoscalingDisabled", fixed),
            limited=_condition(SCALING_LIMITED, "False", "AutoscalingDisabled", fixed),
            fields={},
        )
    if scaling.provider is v1alpha1.AutoscalingProvider.BUILTIN:
        active, limited, fields = _builtin(spec, report)
        return Scaling(active=active, limited=limited, fields=fields)
    if scaling.provider is v1alpha1.AutoscalingProvider.KEDA:
        active = _keda(scaler, missing_kinds)
    else:
        active = _hpa(scaler)
    return Scaling(active=active, limited=_hpa_limited(hpa), fields=_hpa_fields(spec, hpa))
