"""The builtin autoscaler's loop: read the signal, decide, and carry the decision out.

It runs as one asyncio task of the operator process, started with kopf (so only in
the replica that holds the leader Lease) and stopped with it. Every second it looks
at the LLMDeployments with `autoscaling.enabled` and provider `builtin` (the list is
refreshed every few seconds) and steps each one whose polling interval has passed:

1. read the Deployment and its Pods; read the signal from Prometheus (the spec's
   `prometheusUrl`, else the operator's `--prometheus-url`) or from the Ready pods'
   own metrics endpoints (`autoscaling.signal`);
2. decide with `decision.decide` (pure; its state stays in this process);
3. keep the `Report` in `reports.REPORTS`, count it in `metrics.AUTOSCALERS`;
4. when the count changes (mode scale), run a reconcile pass, which writes the new
   count into the Deployment (the operator is its only writer) and status, and post
   an Event; otherwise write status only (`reconcile.refresh_status`). Events also
   mark three failed readings in a row and the first good one after them, a GPU
   shortage starting, and in mode advise each new recommendation.

A failure for one object is logged and retried at its next interval; it never stops
the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pydantic

from llm_operator import errors, kube, metrics, reconcile
from llm_operator.api import v1alpha1
from llm_operator.autoscaling import decision, reports, signal
from llm_operator.builders import children, common, monitoring, signals

logger = logging.getLogger(__name__)

#: How often the loop wakes, and how often it lists the LLMDeployments again.
TICK_SECONDS = 1.0
LIST_SECONDS = 5.0
FAILURES_BEFORE_WARNING = 3


@dataclasses.dataclass
class _Tracked:
    """What the loop keeps per LLMDeployment between steps."""

    state: decision.State = dataclasses.field(default_factory=decision.State)
    next_due: float = 0.0
    last_read_time: str | None = None
    last_scale_time: str | None = None
    previous: decision.Decision | None = None
    # Readings failed in a row, and whether a Warning said so (a SignalRead Event follows).
    failures: int = 0
    warned: bool = False


def _unschedulable(pods: list[dict[str, Any]]) -> int:
    count = 0
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                count += 1
    return count


def _ready_pods(pods: list[dict[str, Any]]) -> int:
    return sum(
        1
        for pod in pods
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
    )


class Loop:
    """The builtin autoscaler of one operator process."""

    def __init__(
        self,
        client: Callable[[], kube.Client],
        options: Callable[[], common.Options],
        namespaces: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._options = options
        self._namespaces = namespaces
        self._clock = clock
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._objects: list[dict[str, Any]] = []
        self._listed_at = -1e9

    async def run(self) -> None:
        """Step every due LLMDeployment every `TICK_SECONDS`, until cancelled."""
        logger.info("builtin autoscaler started")
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self.tick(session)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("builtin autoscaler pass failed; retrying")
                await asyncio.sleep(TICK_SECONDS)

    async def _list(self) -> None:
        client = self._client()
        namespaces: tuple[str | None, ...] = self._namespaces or (None,)
        found: list[dict[str, Any]] = []
        for namespace in namespaces:
            found += await asyncio.to_thread(client.list_llmds, namespace)
        self._objects = found
        self._listed_at = self._clock()
        present = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in found}
        for key in [key for key in self._tracked if key not in present]:
            del self._tracked[key]
        reports.REPORTS.keep_only(present)
        metrics.AUTOSCALERS.keep_only(present)

    async def tick(self, session: aiohttp.ClientSession) -> None:
        """One pass: list if due, then step each builtin-autoscaled object that is due."""
        if self._clock() - self._listed_at >= LIST_SECONDS:
            await self._list()
        for obj in self._objects:
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            try:
                target = children.target_from_object(obj)
            except pydantic.ValidationError:
                continue
            scaling = target.spec.autoscaling
            if not scaling.enabled or scaling.provider is not v1alpha1.AutoscalingProvider.BUILTIN:
                if key in self._tracked:
                    del self._tracked[key]
                    reports.REPORTS.forget(*key)
                continue
            tracked = self._tracked.setdefault(key, _Tracked())
            now = self._clock()
            if now < tracked.next_due:
                continue
            tracked.next_due = now + scaling.polling_interval_seconds
            try:
                await self.step(session, obj, target, tracked)
            except Exception:
                logger.exception("autoscaling %s/%s failed; retrying", *key)

    async def _read(
        self, session: aiohttp.ClientSession, target: common.Target, pods: list[dict[str, Any]]
    ) -> signal.Reading:
        scaling = target.spec.autoscaling
        url = scaling.prometheus_url or self._options().prometheus_url
        if url:
            plain_queue = (
                scaling.metric is v1alpha1.AutoscalingMetric.QUEUE_DEPTH
                and not scaling.include_running
                and not scaling.query
            )
            queue_query = (
                None
                if plain_queue
                else signals.summed((signals.WAITING,), monitoring.selector(target))
            )
            completed_query = (
                signals.completed_query(target) if signals.counts_requests(scaling) else None
            )
            return await signal.from_prometheus(
                session,
                url,
                signals.query(target),
                queue_query,
                completed_query=completed_query,
            )
        return await signal.from_pods(session, signal.pod_endpoints(target, pods), scaling)

    async def _capacity(
        self, client: kube.Client, target: common.Target, deployment: dict[str, Any]
    ) -> dict[str, int] | None:
        template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        resources = target.spec.resources
        nodes = await asyncio.to_thread(
            client.free_gpus, resources.gpu_resource_name, template.get("nodeSelector") or {}
        )
        if nodes is None:
            return None
        per_replica = max(1, resources.gpus)
        return {
            "gpus_free": sum(free for free, _ in nodes),
            "gpus_allocatable": sum(total for _, total in nodes),
            "fits": sum(free // per_replica for free, _ in nodes),
        }

    async def step(
        self,
        session: aiohttp.ClientSession,
        obj: dict[str, Any],
        target: common.Target,
        tracked: _Tracked,
    ) -> decision.Decision | None:
        """Read, decide and act for one LLMDeployment; the decision, None without a
        Deployment yet."""
        client = self._client()
        namespace, name = target.namespace, target.name
        scaling = target.spec.autoscaling
        deployment = await asyncio.to_thread(client.get, "apps/v1", "Deployment", namespace, name)
        if deployment is None:
            return None
        pods = await asyncio.to_thread(client.list_pods, namespace, name)
        reading = await self._read(session, target, pods)
        unschedulable = _unschedulable(pods)
        observation = decision.Observation(
            now=self._clock(),
            signal=reading.value,
            replicas=int((deployment.get("spec") or {}).get("replicas") or 0),
            ready=_ready_pods(pods),
            unschedulable=unschedulable,
            gpus_per_replica=target.spec.resources.gpus,
        )
        if signals.counts_requests(scaling):
            # The arrival rate, from the queue and the finished requests (demand.estimate).
            observation = dataclasses.replace(
                observation, waiting=reading.queue_depth, completed=reading.completed
            )
        policy = decision.Policy.from_spec(scaling)
        made, state = decision.decide(policy, tracked.state, observation)
        if made.desired > made.current or unschedulable:
            # Only to add replicas (or to say why not) is it worth listing every Pod: decide
            # again, from the same state, knowing how many replicas the free GPUs hold.
            capacity = await self._capacity(client, target, deployment)
            if capacity is not None:
                observation = dataclasses.replace(observation, **capacity)
                made, state = decision.decide(policy, tracked.state, observation)
        tracked.state = state
        stamp = kube.timestamp()
        if reading.value is not None:
            tracked.last_read_time = stamp
        scaling_now = scaling.mode is v1alpha1.AutoscalingMode.SCALE
        if scaling_now and made.desired != made.current:
            tracked.last_scale_time = stamp
        report = reports.Report(
            decision=made,
            source=reading.source,
            last_read_time=tracked.last_read_time,
            last_scale_time=tracked.last_scale_time,
            read_error=reading.error,
            read_detail=reading.detail,
            queue_depth=reading.queue_depth,
        )
        reports.REPORTS.put(namespace, name, report)
        metrics.AUTOSCALERS.observe(
            namespace,
            name,
            metrics.AutoscalerFigures(
                metric=scaling.metric.value,
                target=scaling.target,
                desired_replicas=made.desired,
                signal=made.signal if made.fresh else None,
                panic=made.panic,
            ),
            made.direction.value,
            made.reason.value,
            reading.error,
            outcomes=[(d.value, r.value) for d, r in decision.OUTCOMES],
            read_errors=signal.READ_ERRORS,
        )
        options = self._options()
        if scaling_now and made.desired != made.current:
            logger.info("%s/%s: %s", namespace, name, made.message)
            try:
                await asyncio.to_thread(
                    functools.partial(reconcile.reconcile, trigger="autoscaler"),
                    client,
                    obj,
                    options,
                )
            except errors.InvalidSpecError:
                return made
            up = made.desired > made.current
            await asyncio.to_thread(
                client.post_event,
                obj,
                "Normal",
                "ScaledUp" if up else "ScaledDown",
                made.message,
            )
        else:
            await asyncio.to_thread(reconcile.refresh_status, client, obj, options)
        await self._transition_events(client, obj, made, reading, tracked, scaling_now)
        tracked.previous = made
        return made

    async def _transition_events(
        self,
        client: kube.Client,
        obj: dict[str, Any],
        made: decision.Decision,
        reading: signal.Reading,
        tracked: _Tracked,
        scaling_now: bool,
    ) -> None:
        before = tracked.previous
        events: list[tuple[str, str, str]] = []
        # A Warning after three failed readings in a row (one is often just a first scrape
        # not done yet), and a Normal Event when a reading works again after it.
        tracked.failures = tracked.failures + 1 if reading.value is None else 0
        if tracked.failures == FAILURES_BEFORE_WARNING:
            tracked.warned = True
            events.append(
                (
                    "Warning",
                    reading.error or "NoSignal",
                    f"the autoscaler cannot read its signal: {reading.detail or made.message}; "
                    f"holding {made.desired} replicas",
                )
            )
        elif reading.value is not None and tracked.warned:
            tracked.warned = False
            events.append(("Normal", "SignalRead", f"autoscaler signal read from {reading.source}"))
        gpu = decision.Limit.GPU_SHORTAGE
        if made.limit is gpu and (before is None or before.limit is not gpu):
            events.append(("Warning", "GPUShortage", made.limit_message))
        if not scaling_now and (before is None or before.desired != made.desired):
            events.append(("Normal", "Recommendation", f"mode advise: {made.message}"))
        for event_type, reason, message in events:
            await asyncio.to_thread(client.post_event, obj, event_type, reason, message)
