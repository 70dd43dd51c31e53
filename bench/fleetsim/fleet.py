"""The discrete-event loop: requests arrive, wait, run on replicas; a policy sets the replica count.

Events are request arrivals (from a trace), request completions, and a clock tick
every second that brings started replicas to Ready, lets Prometheus "scrape" (the
waiting and running counts, every `scrape_interval`), asks each policy that is due
for a replica count, and records the series for the plots.

The fleet is one FIFO queue in front of every Ready replica's free batch slots (a
router that always finds a free slot; Kubernetes' Service spreads at random, which
queues a little more). A new replica holds its GPU from creation and serves after
its cold start; the k-th replica created in a run gets the k-th cold start drawn
from the seed, so every policy meets the same start-up times in the same order. A
removed replica stops taking requests at once and holds its GPU for one mean
service time more while its batch drains; starting replicas are removed first,
then the newest, as a Deployment does.

Measured per run: the share of requests admitted within the SLO wait (requests
still queued at the end count by their wait so far), GPU-hours, and scale events
(decisions that changed the replica count).
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
import random
from typing import Protocol

from fleetsim import model as model_module


@dataclasses.dataclass(frozen=True)
class View:
    """What a policy may look at when it decides."""

    now: float
    replicas: int
    ready: int
    waiting: int
    running: int
    scraped_waiting: int
    scraped_running: int
    #: Requests finished so far (what `vllm:request_success_total` sums to), and as scraped.
    completed: int = 0
    scraped_completed: int = 0


class Policy(Protocol):
    """An autoscaling policy: every `interval` seconds, the replica count it wants."""

    name: str
    interval: float

    def decide(self, view: View) -> int:
        """The replica count wanted now."""
        ...


@dataclasses.dataclass(eq=False)
class Replica:
    created: float
    ready_at: float
    ready: bool = False
    ended: float | None = None


@dataclasses.dataclass(frozen=True)
class Series:
    """Sampled every `step` seconds, for the plots."""

    step: float
    replicas: list[int]
    ready: list[int]
    waiting: list[int]


@dataclasses.dataclass(frozen=True)
class Result:
    """The measures of one run of one policy on one trace."""

    trace: str
    policy: str
    requests: int
    within_slo: int
    p95_wait: float
    gpu_hours: float
    scale_events: int
    series: Series
    #: A reference row (what a policy could reach), not a competitor.
    reference: bool = False

    @property
    def slo_attainment(self) -> float:
        return self.within_slo / self.requests if self.requests else 1.0


class ColdStarts:
    """The k-th cold start of a run, the same for every policy."""

    def __init__(self, bounds: tuple[float, float], seed: int) -> None:
        self._rng = random.Random(seed)
        self._bounds = bounds
        self._drawn: list[float] = []

    def get(self, index: int) -> float:
        while len(self._drawn) <= index:
            self._drawn.append(self._rng.uniform(*self._bounds))
        return self._drawn[index]


class Fleet:
    """The replicas of one run and their accounting."""

    def __init__(self, replica: model_module.ReplicaModel, cold_starts: ColdStarts) -> None:
        self.model = replica
        self.cold_starts = cold_starts
        self.alive: list[Replica] = []
        self.ended: list[Replica] = []
        self.created = 0
        self.ready = 0

    def next_cold_start(self) -> float:
        """The cold start the next replica created will have (the oracle looks)."""
        return self.cold_starts.get(self.created)

    def add(self, now: float, ready_now: bool = False) -> None:
        delay = 0.0 if ready_now else self.cold_starts.get(self.created)
        self.created += 1
        replica = Replica(created=now, ready_at=now + delay)
        self.alive.append(replica)

    def remove(self, now: float) -> bool:
        """Remove one replica; True when it was Ready (the caller takes its slots away)."""
        starting = [r for r in self.alive if not r.ready]
        victim = max(starting, key=lambda r: r.created) if starting else self.alive[-1]
        self.alive.remove(victim)
        victim.ended = now + (self.model.mean_service if victim.ready else 0.0)
        self.ended.append(victim)
        if victim.ready:
            self.ready -= 1
            return True
        return False

    def promote(self, now: float) -> int:
        """Mark replicas whose cold start is over as Ready; how many became Ready."""
        count = 0
        for replica in self.alive:
            if not replica.ready and replica.ready_at <= now:
                replica.ready = True
                count += 1
        self.ready += count
        return count

    def gpu_hours(self, start: float, end: float) -> float:
        """GPU-hours held between `start` and `end`."""
        total = 0.0
        for replica in [*self.alive, *self.ended]:
            stop = replica.ended if replica.ended is not None else end
            total += max(0.0, min(stop, end) - max(replica.created, start))
        return total * self.model.gpus / 3600.0


def run(
    trace_name: str,
    arrivals: list[float],
    duration: float,
    policy: Policy,
    replica: model_module.ReplicaModel,
    cold_starts: ColdStarts,
    initial_replicas: int,
    seed: int,
    slo: float = 2.0,
    scrape_interval: float = 15.0,
    series_step: float = 10.0,
    fleet_hook: Fleet | None = None,
    measure_from: float = 0.0,
) -> Result:
    """Simulate one policy on one trace; every policy is given the same arrivals and draws.

    Nothing before `measure_from` is measured: a warm-up at the trace's first rate lets
    every policy build its history first, as it would have in a running cluster.
    """
    rng = random.Random(seed)
    table = replica.service_table
    slots = replica.slots
    # A policy that looks at the fleet (the oracle) made it and passes it in.
    fleet = fleet_hook if fleet_hook is not None else Fleet(replica, cold_starts)
    for _ in range(initial_replicas):
        fleet.add(0.0, ready_now=True)
    fleet.promote(0.0)
    capacity = fleet.ready * slots
    busy = 0
    queue: collections.deque[float] = collections.deque()
    completions: list[float] = []
    waits_ok = 0
    waits: list[float] = []
    scale_events = 0
    done = 0
    scraped = (0, 0, 0)
    next_scrape = 0.0
    next_decision = 0.0
    next_series = 0.0
    series = Series(series_step, [], [], [])
    index = 0
    total = len(arrivals)
    tick = 0.0

    def admit(now: float) -> None:
        nonlocal busy, waits_ok
        while queue and busy < capacity:
            arrived = queue.popleft()
            wait = now - arrived
            if arrived >= measure_from:
                waits.append(wait)
                if wait <= slo:
                    waits_ok += 1
            busy += 1
            heapq.heappush(completions, now + table[rng.randrange(len(table))])

    while True:
        t_arrival = arrivals[index] if index < total else math.inf
        t_done = completions[0] if completions else math.inf
        if tick <= t_arrival and tick <= t_done:
            now = tick
            if now >= duration:
                break
            if fleet.promote(now):
                capacity = fleet.ready * slots
                admit(now)
            if now >= next_scrape:
                scraped = (len(queue), busy, done)
                next_scrape = now + scrape_interval
            if now >= next_decision:
                view = View(
                    now=now,
                    replicas=len(fleet.alive),
                    ready=fleet.ready,
                    waiting=len(queue),
                    running=busy,
                    scraped_waiting=scraped[0],
                    scraped_running=scraped[1],
                    completed=done,
                    scraped_completed=scraped[2],
                )
                wanted = max(0, policy.decide(view))
                if wanted != len(fleet.alive) and now >= measure_from:
                    scale_events += 1
                while len(fleet.alive) < wanted:
                    fleet.add(now)
                while len(fleet.alive) > wanted:
                    fleet.remove(now)
                capacity = fleet.ready * slots
                if fleet.promote(now):
                    capacity = fleet.ready * slots
                admit(now)
                next_decision = now + policy.interval
            if now >= next_series and now >= measure_from:
                series.replicas.append(len(fleet.alive))
                series.ready.append(fleet.ready)
                series.waiting.append(len(queue))
                next_series = now + series_step
            tick += 1.0
        elif t_done <= t_arrival:
            now = heapq.heappop(completions)
            busy -= 1
            done += 1
            admit(now)
        else:
            now = t_arrival
            index += 1
            queue.append(now)
            admit(now)

    for arrived in queue:
        if arrived < measure_from:
            continue
        wait = duration - arrived
        waits.append(wait)
        if wait <= slo:
            waits_ok += 1
    waits.sort()
    p95 = waits[int(0.95 * (len(waits) - 1))] if waits else 0.0
    return Result(
        trace=trace_name,
        policy=policy.name,
        requests=sum(1 for t in arrivals if t >= measure_from),
        within_slo=waits_ok,
        p95_wait=p95,
        gpu_hours=fleet.gpu_hours(measure_from, duration),
        scale_events=scale_events,
        series=series,
        reference=bool(getattr(policy, "reference", False)),
    )
