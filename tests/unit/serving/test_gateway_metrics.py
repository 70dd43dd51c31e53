"""The gateway's lock-free metric families expose exactly what `prometheus_client`'s do."""

from __future__ import annotations

import re

import prometheus_client
import pytest
from prometheus_client import exposition

from llm_serving.gateway import metrics


def _exposition(registry: prometheus_client.CollectorRegistry) -> tuple[str, list[str]]:
    """The text exposition with the `_created` timestamps blanked, and those lines' names."""
    text = exposition.generate_latest(registry).decode()
    created = [line.rsplit(" ", 1)[0] for line in text.splitlines() if "_created{" in line]
    return re.sub(r"(_created(?:\{[^}]*\})?) \S+", r"\1 T", text), created


def test_families_expose_what_the_client_metrics_expose() -> None:
    ours, theirs = prometheus_client.CollectorRegistry(), prometheus_client.CollectorRegistry()
    counter = metrics.counters("t_requests", "Requests.", ["route", "code"])
    histogram = metrics.histograms("t_seconds", "Time.", ["route"], metrics.OVERHEAD_BUCKETS)
    gauge = metrics.gauges("t_in_flight", "In flight.")
    unused = metrics.histograms("t_unused_seconds", "Never observed.", ["route"], (0.5, 1))
    ours.register(metrics._Families([counter, histogram, gauge, unused]))
    client_counter = prometheus_client.Counter(
        "t_requests", "Requests.", ["route", "code"], registry=theirs
    )
    client_histogram = prometheus_client.Histogram(
        "t_seconds", "Time.", ["route"], buckets=metrics.OVERHEAD_BUCKETS, registry=theirs
    )
    client_gauge = prometheus_client.Gauge("t_in_flight", "In flight.", registry=theirs)
    prometheus_client.Histogram(
        "t_unused_seconds", "Never observed.", ["route"], buckets=(0.5, 1), registry=theirs
    )
    for route, code, amount in [("/a", "200", 1), ("/a", "200", 2.5), ("/b", "404", 1)]:
        counter.labels(route, code).inc(amount)
        client_counter.labels(route, code).inc(amount)
    # Values on bucket bounds, between them, below the first and above the last.
    for route, value in [("/a", 0.0), ("/a", 0.0001), ("/a", 0.00011), ("/b", 0.001)]:
        histogram.labels(route).observe(value)
        client_histogram.labels(route).observe(value)
    for value in (0.0025, 0.3, 1.0, 7.5, 1e9):
        histogram.labels("/c").observe(value)
        client_histogram.labels("/c").observe(value)
    for change in (1, 1, -1, 3):
        (gauge.labels().inc if change > 0 else gauge.labels().dec)(abs(change))
        (client_gauge.inc if change > 0 else client_gauge.dec)(abs(change))
    text, created = _exposition(ours)
    assert (text, created) == _exposition(theirs)
    assert 't_seconds_bucket{le="0.0001",route="/a"} 2.0' in text
    assert 't_requests_total{code="200",route="/a"} 3.5' in text
    assert "t_in_flight 4.0" in text
    assert len(created) == 2 + 3  # one per counter series and per histogram series


def test_families_refuse_what_the_client_refuses() -> None:
    counter = metrics.counters("t_count", "Count.", ["route"])
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("/a").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("/a", "extra")
    with pytest.raises(ValueError, match="ascending"):
        metrics.histograms("t_bad_seconds", "Bad.", ["route"], (1.0, 0.5))


def test_the_gateway_registry_exposes_the_per_request_families() -> None:
    gateway_metrics = metrics.Metrics()
    gateway_metrics.requests.labels("/v1/chat/completions", "POST", "200").inc()
    gateway_metrics.in_flight.inc()
    gateway_metrics.guardrail_duration.labels("input").observe(0.0002)
    text = gateway_metrics.render()[0].decode()
    assert (
        'llm_gateway_requests_total{code="200",method="POST",route="/v1/chat/completions"} 1.0'
        in text
    )
    assert "# TYPE llm_gateway_requests_in_flight gauge" in text
    assert "llm_gateway_requests_in_flight 1.0" in text
    assert (
        'llm_gateway_guardrail_check_duration_seconds_bucket{le="0.00025",stage="input"} 1.0'
        in (text)
    )
    assert "# TYPE llm_gateway_policy_reloads_total counter" in text  # the client's own
