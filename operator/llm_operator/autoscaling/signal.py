"""Reading the autoscaling signal: from Prometheus, or from the Ready pods' own metrics endpoints.

`from_prometheus` runs the signal's PromQL (`builders.signals.query`) as an instant
query over aiohttp; `from_pods` scrapes each Ready pod (the engine's metrics, through
the gateway's /metrics/engine when guardrails are on, and the gateway's /metrics for
in-flight requests) and sums the series over pods. Either way the result is a
`Reading`: the value, or `None` with a CamelCase reason (`PrometheusUnreachable`,
`PrometheusError`, `NoMetrics`, `NoReadyPods`, `MetricsUnreachable`) and what was seen,
which status shows in `ScalingActive`. Explicit timeouts: a reading never waits
longer than its `seconds`. `pod_endpoints` (pure) says where each pod serves.
Beside the signal, a reading carries the waiting queue and the requests finished so
far (`vllm:request_success_total`), from which the decision tells the arrival rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import aiohttp
from prometheus_client import parser

from llm_operator.api import v1alpha1
from llm_operator.builders import common, signals

# Every reason a reading can fail with (the operator's signal-errors counter starts at 0
# for each, so the first failure of a kind shows as an increase).
READ_ERRORS = (
    "PrometheusUnreachable",
    "PrometheusError",
    "NoMetrics",
    "NoReadyPods",
    "MetricsUnreachable",
)


@dataclasses.dataclass(frozen=True)
class Reading:
    """One reading of the signal (and of the waiting queue, when it was read too)."""

    value: float | None
    source: str
    queue_depth: float | None = None
    # Requests finished so far (`vllm:request_success_total` summed), when it was read.
    completed: float | None = None
    error: str | None = None
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class PodEndpoint:
    """Where one Ready pod serves the metrics the signal needs."""

    pod: str
    engine: str
    gateway: str | None


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_endpoints(target: common.Target, pods: Sequence[dict[str, Any]]) -> list[PodEndpoint]:
    """The metrics URLs of each Ready pod with an IP. Pure."""
    out = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or not _ready(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        name = str((pod.get("metadata") or {}).get("name"))
        if target.gateway_enabled:
            base = f"http://{ip}:{common.GATEWAY_PORT}"
            out.append(PodEndpoint(name, f"{base}/metrics/engine", f"{base}/metrics"))
        else:
            out.append(PodEndpoint(name, f"http://{ip}:{common.ENGINE_PORT}/metrics", None))
    return out


def _vector_sum(payload: Any) -> float | None:
    """The sum of an instant query's result; None when it has no (finite) sample."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise ValueError("no data in the answer")
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        value = float(result[1])
        return value if math.isfinite(value) else None
    if not isinstance(result, list):
        raise ValueError(f"unexpected result type {data.get('resultType')!r}")
    values = [float(item["value"][1]) for item in result]
    values = [v for v in values if math.isfinite(v)]
    return sum(values) if values else None


async def _instant(
    session: aiohttp.ClientSession, base_url: str, query: str, seconds: float
) -> float | None:
    url = base_url.rstrip("/") + "/api/v1/query"
    async with session.get(
        url, params={"query": query}, timeout=aiohttp.ClientTimeout(total=seconds)
    ) as response:
        payload = await response.json(content_type=None)
        if response.status != 200 or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else None
            raise ValueError(f"HTTP {response.status}: {error or 'query failed'}")
        return _vector_sum(payload)


async def from_prometheus(
    session: aiohttp.ClientSession,
    base_url: str,
    query: str,
    queue_query: str | None,
    seconds: float = 5.0,
    completed_query: str | None = None,
) -> Reading:
    """The signal from Prometheus; `queue_query` also reads the waiting queue for status,
    and `completed_query` the requests finished so far."""
    source = f"prometheus {base_url}"
    completed = None
    try:
        value = await _instant(session, base_url, query, seconds)
        queue = value
        if queue_query is not None and value is not None:
            queue = await _instant(session, base_url, queue_query, seconds)
        if completed_query is not None and value is not None:
            completed = await _instant(session, base_url, completed_query, seconds)
    except (TimeoutError, aiohttp.ClientConnectionError) as exc:
        return Reading(
            None, source, error="PrometheusUnreachable", detail=f"{base_url}: {exc!r}"[:300]
        )
    except (aiohttp.ClientError, ValueError, KeyError, TypeError, IndexError) as exc:
        return Reading(None, source, error="PrometheusError", detail=f"{base_url}: {exc}"[:300])
    if value is None:
        return Reading(
            None,
            source,
            error="NoMetrics",
            detail=f"the query returned no series (are the replicas scraped?): {query}"[:300],
        )
    return Reading(value, source, queue_depth=queue, completed=completed)


def _sum_families(text: str, names: Sequence[str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


async def _scrape(session: aiohttp.ClientSession, url: str, seconds: float) -> str:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=seconds)) as response:
        if response.status != 200:
            raise ValueError(f"{url}: HTTP {response.status}")
        return await response.text()


async def _one_pod(
    session: aiohttp.ClientSession,
    endpoint: PodEndpoint,
    names: Sequence[str],
    seconds: float,
) -> dict[str, float]:
    wanted = [*names, signals.WAITING, signals.SUCCESS]
    totals = _sum_families(await _scrape(session, endpoint.engine, seconds), wanted)
    if signals.IN_FLIGHT in names and endpoint.gateway is not None:
        gateway = await _scrape(session, endpoint.gateway, seconds)
        totals.update(_sum_families(gateway, [signals.IN_FLIGHT]))
    return totals


def signal_names(spec: v1alpha1.Autoscaling) -> tuple[str, ...]:
    """The series the signal sums (what the pods path reads)."""
    if spec.metric is v1alpha1.AutoscalingMetric.INFLIGHT:
        return (signals.IN_FLIGHT,)
    if spec.metric is v1alpha1.AutoscalingMetric.KV_CACHE_USAGE:
        return (signals.KV_CACHE,)
    if spec.include_running:
        return (signals.WAITING, signals.RUNNING)
    return (signals.WAITING,)


async def from_pods(
    session: aiohttp.ClientSession,
    endpoints: Sequence[PodEndpoint],
    spec: v1alpha1.Autoscaling,
    seconds: float = 2.0,
) -> Reading:
    """The signal summed over the pods that answered; an error when none did."""
    source = "pod metrics endpoints"
    if not endpoints:
        return Reading(None, source, error="NoReadyPods", detail="no Ready pod to read")
    names = signal_names(spec)
    results = await asyncio.gather(
        *(_one_pod(session, e, names, seconds) for e in endpoints), return_exceptions=True
    )
    answered = [r for r in results if isinstance(r, dict)]
    failed = [
        f"{e.pod}: {r!r}"[:120]
        for e, r in zip(endpoints, results, strict=True)
        if not isinstance(r, dict)
    ]
    source = f"pod metrics endpoints ({len(answered)} of {len(endpoints)} answered)"
    if not answered:
        return Reading(None, source, error="MetricsUnreachable", detail="; ".join(failed)[:300])
    if not any(name in r for r in answered for name in names):
        return Reading(
            None,
            source,
            error="NoMetrics",
            detail=f"the pods expose none of {', '.join(names)}",
        )
    value = sum(r.get(name, 0.0) for r in answered for name in names)
    queue = sum(r.get(signals.WAITING, 0.0) for r in answered)
    # Only a sum over every pod read is a count the decision can difference.
    completed = (
        sum(r.get(signals.SUCCESS, 0.0) for r in answered)
        if len(answered) == len(endpoints) and all(signals.SUCCESS in r for r in answered)
        else None
    )
    return Reading(value, source, queue_depth=queue, completed=completed)
