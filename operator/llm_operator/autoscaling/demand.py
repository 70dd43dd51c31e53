"""The demand behind a series of readings: the arrival rate and the concurrency it asks for. Pure.

A reading of the engines' requests (waiting + running, or in flight) says how many
requests are in the fleet, not how many arrive: a fleet that falls behind shows a
growing queue whatever the arrival rate. With the waiting queue and the requests
finished so far (`vllm:request_success_total`) beside it, the arrival rate over any
span is exact (requests in = requests finished + growth of the signal), and the
concurrency a fleet keeping up with it would carry is that rate times the time a
request runs (running requests over the completion rate, Little's law).
`autoscaling.decision` sizes the fleet on it.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Sample:
    """One reading kept in the windows: time, signal, waiting, and completions (made monotonic)."""

    at: float
    signal: float
    waiting: float | None = None
    completed: float | None = None


@dataclasses.dataclass(frozen=True)
class Demand:
    """The demand over one window, from arrivals (completions + growth of the signal)."""

    concurrency: float
    arrivals_per_second: float
    service_seconds: float


def estimate(samples: tuple[Sample, ...], now: float, seconds: float) -> Demand | None:
    """The concurrency the arrival rate of the last `seconds` asks for; None if not known.

    Requests in = requests finished + growth of the requests in the engines, over the
    same span (no request is lost in between), so the arrival rate is measured whether
    or not the fleet keeps up. The time a request spends running is the running
    requests over the completion rate (Little's law), and the fleet that keeps up with
    the arrivals runs arrivals x that time. A waiting queue is the past's debt, not
    the present's demand: the target's headroom drains it, and it does not count as
    load to carry for a whole scale-down window. None without waiting and
    completion counts, or without a completion in the span.
    """
    known = [s for s in samples if s.waiting is not None and s.completed is not None]
    if len(known) < 2:
        return None
    last = known[-1]
    older = [s for s in known if s.at <= now - seconds]
    base = older[-1] if older else known[0]
    span = last.at - base.at
    done = (last.completed or 0.0) - (base.completed or 0.0)
    if span <= 0 or done <= 0:
        return None
    arrivals = max(0.0, done + last.signal - base.signal)
    inside = [s for s in known if s.at >= base.at]
    busy = [max(0.0, s.signal - (s.waiting or 0.0)) for s in inside]
    # Running requests averaged over time (readings may come at uneven intervals).
    running = (
        sum(
            (a + b) / 2 * (later.at - earlier.at)
            for a, b, earlier, later in zip(busy, busy[1:], inside, inside[1:], strict=False)
        )
        / span
    )
    rate = done / span
    return Demand(
        concurrency=running * arrivals / done,
        arrivals_per_second=arrivals / span,
        service_seconds=running / rate,
    )


def monotonic(
    value: float | None, read: float | None, lost: float
) -> tuple[float | None, float | None, float]:
    """A counter summed over replicas, made monotonic: (count, last read, count lost).

    The sum drops when a replica goes away (its series with it): what it took is
    added back from then on, so a difference over a span stays the requests finished.
    """
    if value is None or not math.isfinite(value):
        return None, read, lost
    if read is not None and value < read:
        lost += read - value
    return value + lost, value, lost
