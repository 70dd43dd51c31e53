"""Every Prometheus metric of the operator (`llm_operator_*`), in one registry of its own.

`REGISTRY` holds the operator's families: reconcile passes by trigger and result and
their duration, children applied and pruned by kind, Kubernetes API calls and errors
by operation and code, leadership, and the per-LLMDeployment figures (phase,
conditions, replicas desired, ready and unavailable, Pods by phase, unschedulable
Pods, GPUs held, GPU-hours and their cost from the price table of `pricing`). The
per-LLMDeployment figures are kept by `FLEET`, which `reconcile` updates after each
pass and which renders them at scrape time, so a deleted LLMDeployment's series go
with it. GPU-hours are integrated at scrape time over the GPUs held since the last
change, so the count does not depend on how often reconcile runs. `AUTOSCALERS` keeps
the builtin autoscaler's figures the same way (`llm_operator_autoscaler_*`: desired
replicas, the signal and its target, panic, decisions by direction and reason, failed
readings by reason), updated by its loop. `serve` starts the
HTTP server of `llm-operator run --metrics-port` (8081 by default, path /metrics).

Its length is the house rule's: every metric object of the package is defined here,
so one file lists what the operator exports.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import prometheus_client
from prometheus_client import core as prometheus_core

import llm_operator
from llm_operator import pricing

DEFAULT_PORT = 8081
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 (a metrics endpoint is scraped from other Pods)
PATH = "/metrics"

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)
prometheus_client.ProcessCollector(registry=REGISTRY)
prometheus_client.PlatformCollector(registry=REGISTRY)
prometheus_client.GCCollector(registry=REGISTRY)

#: Reconcile pass durations: most passes are a handful of API calls (tens of ms).
RECONCILE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: What started a reconcile pass (`autoscaler`: the builtin loop changing the replicas).
TRIGGERS = ("change", "deployment_event", "resync", "autoscaler")
#: How a pass ended: `success`, `invalid_spec` (status and an Event say why), `gone`
#: (deleted before the pass ran), `error` (an exception propagated; kopf retries).
RESULTS = ("success", "invalid_spec", "gone", "error")

RECONCILES = prometheus_client.Counter(
    "llm_operator_reconciles",
    "Reconcile passes over an LLMDeployment, by trigger and result.",
    ["trigger", "result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = prometheus_client.Histogram(
    "llm_operator_reconcile_duration_seconds",
    "Time of one reconcile pass over an LLMDeployment, by trigger.",
    ["trigger"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
CHILDREN_APPLIED = prometheus_client.Counter(
    "llm_operator_children_applied",
    "Children server-side applied, by kind.",
    ["kind"],
    registry=REGISTRY,
)
CHILDREN_PRUNED = prometheus_client.Counter(
    "llm_operator_children_pruned",
    "Owned children deleted because the spec no longer asks for them, by kind.",
    ["kind"],
    registry=REGISTRY,
)
API_REQUESTS = prometheus_client.Counter(
    "llm_operator_api_requests",
    "Calls to the Kubernetes API server, by operation.",
    ["operation"],
    registry=REGISTRY,
)
API_ERRORS = prometheus_client.Counter(
    "llm_operator_api_errors",
    "Calls to the Kubernetes API server that failed, by operation and HTTP status code "
    "(`connection` when no answer came). Expected answers (a 404 on a get or a delete, a "
    "409 on a lease race) are not errors.",
    ["operation", "code"],
    registry=REGISTRY,
)
LEADER = prometheus_client.Gauge(
    "llm_operator_leader",
    "1 while this process is the active operator (holds the Lease, or runs without leader "
    "election), 0 while it waits.",
    registry=REGISTRY,
)
BUILD_INFO = prometheus_client.Info(
    "llm_operator_build",
    "The operator's version.",
    registry=REGISTRY,
)
BUILD_INFO.info({"version": llm_operator.__version__})
GPU_PRICE = prometheus_client.Gauge(
    "llm_operator_gpu_price_dollars_per_hour",
    "Price of one GPU-hour, by GPU type (`default` for types the price table does not "
    "name), from the price table the operator was started with.",
    ["gpu_type"],
    registry=REGISTRY,
)


def outcome_labels(trigger: str, result: str) -> tuple[str, str]:
    """Checked label values of `RECONCILES`."""
    if trigger not in TRIGGERS or result not in RESULTS:
        raise ValueError(f"unknown reconcile trigger/result {trigger!r}/{result!r}")
    return trigger, result


# --- per-LLMDeployment figures ------------------------------------------------------------

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one reconcile pass saw of one LLMDeployment, as the metrics show it."""

    phase: str
    conditions: tuple[tuple[str, str], ...]  # (type, status)
    desired_replicas: int
    ready_replicas: int
    pods_by_phase: tuple[tuple[str, int], ...]
    unschedulable_pods: int
    gpu_type: str
    gpus: int
    # (provider, minReplicas, maxReplicas, target per replica) when autoscaling is on.
    autoscaling: tuple[str, int, int, float] | None = None


def _pod_gpus(pod: Mapping[str, Any], resource_name: str) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        try:
            total += int(str(limits.get(resource_name, "0")))
        except ValueError:
            continue
    return total


def _unschedulable(pod: Mapping[str, Any]) -> bool:
    return any(
        cond.get("type") == "PodScheduled"
        and cond.get("status") == "False"
        and cond.get("reason") == "Unschedulable"
        for cond in (pod.get("status") or {}).get("conditions") or []
    )


def snapshot(
    status: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    gpu_resource_name: str,
    gpu_type: str,
    autoscaling: tuple[str, int, int, float] | None = None,
) -> Snapshot:
    """The figures of one LLMDeployment from its new status and its Pods. Pure.

    A Pod holds its GPUs from the moment it is bound to a node until it ends, so GPUs
    are counted over bound Pods that have not succeeded or failed.
    """
    phases = dict.fromkeys(POD_PHASES, 0)
    gpus = 0
    unschedulable = 0
    for pod in pods:
        phase = str((pod.get("status") or {}).get("phase") or "Unknown")
        phases[phase if phase in phases else "Unknown"] += 1
        if _unschedulable(pod):
            unschedulable += 1
        bound = bool((pod.get("spec") or {}).get("nodeName"))
        ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if bound and not ended:
            gpus += _pod_gpus(pod, gpu_resource_name)
    return Snapshot(
        phase=str(status.get("phase") or "Unknown"),
        conditions=tuple(
            (str(c.get("type")), str(c.get("status"))) for c in status.get("conditions") or []
        ),
        desired_replicas=int(status.get("desiredReplicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        pods_by_phase=tuple(phases.items()),
        unschedulable_pods=unschedulable,
        gpu_type=gpu_type,
        gpus=gpus,
        autoscaling=autoscaling,
    )


@dataclasses.dataclass
class _Entry:
    snapshot: Snapshot
    since: float
    gpu_hours: float = 0.0
    cost: float = 0.0


class Fleet:
    """The latest `Snapshot` of every LLMDeployment, rendered as metric families at scrape.

    GPU-hours and their cost are integrated from the GPUs of the latest snapshot over
    the time since it was taken (the `clock`, monotonic seconds), at the price of the
    snapshot's GPU type.
    """

    def __init__(
        self, prices: pricing.PriceTable, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._clock = clock
        self.prices = prices

    def set_prices(self, prices: pricing.PriceTable) -> None:
        """Use another price table from now on (hours already counted keep their price)."""
        with self._lock:
            self._accrue_all()
            self.prices = prices

    def _accrue(self, entry: _Entry, now: float) -> None:
        hours = entry.snapshot.gpus * max(now - entry.since, 0.0) / 3600.0
        entry.gpu_hours += hours
        entry.cost += hours * self.prices.price(entry.snapshot.gpu_type)
        entry.since = now

    def _accrue_all(self) -> None:
        now = self._clock()
        for entry in self._entries.values():
            self._accrue(entry, now)

    def observe(self, namespace: str, name: str, snap: Snapshot) -> None:
        """Record what the latest pass saw of one LLMDeployment."""
        with self._lock:
            now = self._clock()
            entry = self._entries.get((namespace, name))
            if entry is None:
                self._entries[(namespace, name)] = _Entry(snapshot=snap, since=now)
                return
            self._accrue(entry, now)
            entry.snapshot = snap

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted LLMDeployment's series."""
        with self._lock:
            self._entries.pop((namespace, name), None)

    def keep_only(self, present: Iterable[tuple[str, str]]) -> None:
        """Drop every LLMDeployment not in `present` (the resync lists them all)."""
        keep = set(present)
        with self._lock:
            for key in [key for key in self._entries if key not in keep]:
                del self._entries[key]

    def names(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._entries)

    def collect(self) -> Iterable[prometheus_core.Metric]:
        with self._lock:
            self._accrue_all()
            entries = sorted(self._entries.items())
        obj = ["namespace", "llmdeployment"]
        GaugeFamily = prometheus_core.GaugeMetricFamily  # noqa: N806
        CounterFamily = prometheus_core.CounterMetricFamily  # noqa: N806
        count = GaugeFamily(
            "llm_operator_llmdeployments",
            "LLMDeployments the operator manages, by namespace and phase.",
            labels=["namespace", "phase"],
        )
        phase = GaugeFamily(
            "llm_operator_llmdeployment_phase",
            "1 for the current phase of each LLMDeployment.",
            labels=[*obj, "phase"],
        )
        condition = GaugeFamily(
            "llm_operator_llmdeployment_condition",
            "1 for the current status (True, False) of each condition of each LLMDeployment.",
            labels=[*obj, "condition", "status"],
        )
        desired = GaugeFamily(
            "llm_operator_llmdeployment_desired_replicas",
            "Replicas the LLMDeployment wants now (the spec, or the autoscaler's decision).",
            labels=obj,
        )
        ready = GaugeFamily(
            "llm_operator_llmdeployment_ready_replicas",
            "Replicas ready to serve.",
            labels=obj,
        )
        unavailable = GaugeFamily(
            "llm_operator_llmdeployment_unavailable_replicas",
            "Wanted replicas that are not ready (desired minus ready, at least 0).",
            labels=obj,
        )
        pods = GaugeFamily(
            "llm_operator_llmdeployment_pods",
            "Pods of the LLMDeployment, by phase.",
            labels=[*obj, "phase"],
        )
        unschedulable = GaugeFamily(
            "llm_operator_llmdeployment_unschedulable_pods",
            "Pods the scheduler cannot place (no node with enough free GPUs).",
            labels=obj,
        )
        gpus = GaugeFamily(
            "llm_operator_llmdeployment_gpus",
            "GPUs held by the LLMDeployment's Pods (bound to a node and not ended), by GPU type.",
            labels=[*obj, "gpu_type"],
        )
        gpu_hours = CounterFamily(
            "llm_operator_llmdeployment_gpu_hours",
            "GPU-hours held by the LLMDeployment's Pods since the operator started.",
            labels=[*obj, "gpu_type"],
        )
        cost = CounterFamily(
            "llm_operator_llmdeployment_gpu_cost_dollars",
            "Cost of those GPU-hours at the price table's price of the GPU type.",
            labels=[*obj, "gpu_type"],
        )
        scaling = [*obj, "provider"]
        scaling_min = GaugeFamily(
            "llm_operator_llmdeployment_autoscaling_min_replicas",
            "spec.autoscaling.minReplicas of each autoscaled LLMDeployment, by provider.",
            labels=scaling,
        )
        scaling_max = GaugeFamily(
            "llm_operator_llmdeployment_autoscaling_max_replicas",
            "spec.autoscaling.maxReplicas of each autoscaled LLMDeployment, by provider.",
            labels=scaling,
        )
        scaling_target = GaugeFamily(
            "llm_operator_llmdeployment_autoscaling_target_queue_depth",
            "The autoscaling target per replica of each autoscaled LLMDeployment "
            "(spec.autoscaling.targetPerReplica or its default, in the unit of its metric: "
            "queued requests for queueDepth), by provider.",
            labels=scaling,
        )
        by_phase: dict[tuple[str, str], int] = {}
        for (namespace, name), entry in entries:
            snap = entry.snapshot
            by_phase[(namespace, snap.phase)] = by_phase.get((namespace, snap.phase), 0) + 1
            phase.add_metric([namespace, name, snap.phase], 1)
            for cond_type, cond_status in snap.conditions:
                condition.add_metric([namespace, name, cond_type, cond_status], 1)
            desired.add_metric([namespace, name], snap.desired_replicas)
            ready.add_metric([namespace, name], snap.ready_replicas)
            unavailable.add_metric(
                [namespace, name], max(snap.desired_replicas - snap.ready_replicas, 0)
            )
            for pod_phase, number in snap.pods_by_phase:
                pods.add_metric([namespace, name, pod_phase], number)
            unschedulable.add_metric([namespace, name], snap.unschedulable_pods)
            gpus.add_metric([namespace, name, snap.gpu_type], snap.gpus)
            gpu_hours.add_metric([namespace, name, snap.gpu_type], entry.gpu_hours)
            cost.add_metric([namespace, name, snap.gpu_type], entry.cost)
            if snap.autoscaling is not None:
                provider, low, high, depth = snap.autoscaling
                scaling_min.add_metric([namespace, name, provider], low)
                scaling_max.add_metric([namespace, name, provider], high)
                scaling_target.add_metric([namespace, name, provider], depth)
        for (namespace, phase_name), number in sorted(by_phase.items()):
            count.add_metric([namespace, phase_name], number)
        return [
            count,
            phase,
            condition,
            desired,
            ready,
            unavailable,
            pods,
            unschedulable,
            gpus,
            gpu_hours,
            cost,
            scaling_min,
            scaling_max,
            scaling_target,
        ]


FLEET = Fleet(pricing.default_table())
REGISTRY.register(FLEET)


# --- the builtin autoscaler ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AutoscalerFigures:
    """What the builtin loop last read and decided for one LLMDeployment."""

    metric: str
    target: float
    desired_replicas: int
    signal: float | None
    panic: bool


@dataclasses.dataclass
class _AutoscalerEntry:
    figures: AutoscalerFigures
    decisions: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    read_errors: dict[str, int] = dataclasses.field(default_factory=dict)


class Autoscalers:
    """The builtin loop's figures per LLMDeployment, rendered at scrape
    (`llm_operator_autoscaler_*`); a deleted LLMDeployment's series go with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _AutoscalerEntry] = {}

    def observe(
        self,
        namespace: str,
        name: str,
        figures: AutoscalerFigures,
        direction: str,
        reason: str,
        read_error: str | None,
        outcomes: Iterable[tuple[str, str]] = (),
        read_errors: Iterable[str] = (),
    ) -> None:
        """Record one decision (and the reason its reading failed, if it did). A new
        LLMDeployment's decisions counter starts at 0 for each (direction, reason) of
        `outcomes`, and its signal-errors counter for each reason of `read_errors`, so
        an increase counts the first one of a kind too."""
        with self._lock:
            entry = self._entries.get((namespace, name))
            if entry is None:
                entry = self._entries[(namespace, name)] = _AutoscalerEntry(
                    figures,
                    decisions=dict.fromkeys(outcomes, 0),
                    read_errors=dict.fromkeys(read_errors, 0),
                )
            entry.figures = figures
            key = (direction, reason)
            entry.decisions[key] = entry.decisions.get(key, 0) + 1
            if read_error is not None:
                entry.read_errors[read_error] = entry.read_errors.get(read_error, 0) + 1

    def keep_only(self, present: Iterable[tuple[str, str]]) -> None:
        keep = set(present)
        with self._lock:
            for key in [key for key in self._entries if key not in keep]:
                del self._entries[key]

    def collect(self) -> Iterable[prometheus_core.Metric]:
        with self._lock:
            entries = [
                (key, entry.figures, dict(entry.decisions), dict(entry.read_errors))
                for key, entry in sorted(self._entries.items())
            ]
        obj = ["namespace", "llmdeployment"]
        GaugeFamily = prometheus_core.GaugeMetricFamily  # noqa: N806
        CounterFamily = prometheus_core.CounterMetricFamily  # noqa: N806
        desired = GaugeFamily(
            "llm_operator_autoscaler_desired_replicas",
            "Replicas the builtin autoscaler's last decision asked for (applied unless mode "
            "advise).",
            labels=obj,
        )
        signal = GaugeFamily(
            "llm_operator_autoscaler_signal",
            "The signal the builtin autoscaler last read, summed over replicas (absent while "
            "it cannot read it).",
            labels=[*obj, "metric"],
        )
        target = GaugeFamily(
            "llm_operator_autoscaler_target_per_replica",
            "The signal per replica the builtin autoscaler aims for.",
            labels=[*obj, "metric"],
        )
        panic = GaugeFamily(
            "llm_operator_autoscaler_panic",
            "1 while a burst holds the builtin autoscaler in panic mode.",
            labels=obj,
        )
        decisions = CounterFamily(
            "llm_operator_autoscaler_decisions",
            "Decisions of the builtin autoscaler, by direction (up, down, none) and reason.",
            labels=[*obj, "direction", "reason"],
        )
        errors = CounterFamily(
            "llm_operator_autoscaler_signal_errors",
            "Readings of the signal that failed, by reason (PrometheusUnreachable, NoMetrics, "
            "MetricsUnreachable, ...).",
            labels=[*obj, "reason"],
        )
        for (namespace, name), figures, counts, failures in entries:
            desired.add_metric([namespace, name], figures.desired_replicas)
            if figures.signal is not None:
                signal.add_metric([namespace, name, figures.metric], figures.signal)
            target.add_metric([namespace, name, figures.metric], figures.target)
            panic.add_metric([namespace, name], 1 if figures.panic else 0)
            for (direction, reason), number in sorted(counts.items()):
                decisions.add_metric([namespace, name, direction, reason], number)
            for reason, number in sorted(failures.items()):
                errors.add_metric([namespace, name, reason], number)
        return [desired, signal, target, panic, decisions, errors]


AUTOSCALERS = Autoscalers()
REGISTRY.register(AUTOSCALERS)


def set_prices(prices: pricing.PriceTable) -> None:
    """Price GPU-hours with `prices` from now on and expose the table."""
    FLEET.set_prices(prices)
    GPU_PRICE.clear()
    for gpu_type, price in prices.items():
        GPU_PRICE.labels(gpu_type).set(price)


class Server:
    """The metrics HTTP server of one operator process."""

    def __init__(self, host: str, port: int) -> None:
        self._server, self._thread = prometheus_client.start_http_server(
            port, addr=host, registry=REGISTRY
        )
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Server:
    """Serve `REGISTRY` on host:port (every path, /metrics included); port 0 picks one."""
    return Server(host, port)


def exposition() -> bytes:
    """The registry in the Prometheus text format (for tests and `render`)."""
    return prometheus_client.generate_latest(REGISTRY)
