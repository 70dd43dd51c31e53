"""The oracle: perfect foresight of the request rate and of every replica's cold start.

For each second it knows the rate the trace will have, and sizes the fleet for it
with queueing theory: the fewest replicas whose batch slots, as an M/M/c queue
(c = replicas x slots, mean service time from the replica model), keep the
probability of waiting longer than the SLO at or below `tail` (Erlang C:
P(wait > T) = C(c, a) exp(-(c mu - lambda) T)). It starts each replica exactly one
cold start (which it knows) before it is needed, and removes a replica as soon as
it will not be needed again within the longest cold start (adding it back later
could not be done in time and would cost as much GPU time anyway). Its GPU-hours
are the yardstick of the others; its SLO attainment shows that the sizing holds.
"""

from __future__ import annotations

import functools
import math

from fleetsim import fleet, model


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with `load` = lambda / mu Erlangs."""
    if load <= 0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


class Oracle:
    """Knows the future rate and cold starts; holds the fewest replicas that meet the SLO."""

    name = "oracle"
    interval = 1.0

    def __init__(
        self,
        rates: tuple[float, ...],
        replica: model.ReplicaModel,
        fleet_: fleet.Fleet | None,
        min_replicas: int,
        max_replicas: int,
        slo: float = 2.0,
        tail: float = 0.005,
    ) -> None:
        self.replica = replica
        self.fleet = fleet_
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.slo = slo
        self.tail = tail
        self.need = [self.replicas_for(rate) for rate in rates]
        self._sparse = _SparseMax(self.need)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one oracle per run, bounded
    def _replicas_for_rounded(self, rate: float) -> int:
        mu = 1.0 / self.replica.mean_service
        load = rate / mu
        for replicas in range(self.min_replicas, self.max_replicas + 1):
            servers = replicas * self.replica.slots
            if servers <= load:
                continue
            tail = erlang_c(servers, load) * math.exp(-(servers * mu - rate) * self.slo)
            if tail <= self.tail:
                return replicas
        return self.max_replicas

    def replicas_for(self, rate: float) -> int:
        """The fewest replicas that meet the SLO at this rate (rates rounded to 0.05 req/s up)."""
        return self._replicas_for_rounded(math.ceil(rate * 20) / 20)

    def needed(self, start: float, end: float) -> int:
        """The most replicas needed at any second in [start, end]."""
        last = len(self.need) - 1
        lo = min(last, max(0, int(start)))
        hi = min(last, max(lo, int(end)))
        return self._sparse.query(lo, hi)

    def first_time_needing(self, start: int, end: int, count: int) -> int | None:
        """The first second in [start, end] that needs at least `count` replicas, if any."""
        last = len(self.need) - 1
        start, end = min(last, max(0, start)), min(last, max(0, end))
        if start > end or self._sparse.query(start, end) < count:
            return None
        lo, hi = start, end
        while lo < hi:
            mid = (lo + hi) // 2
            if self._sparse.query(start, mid) >= count:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def decide(self, view: fleet.View) -> int:
        assert self.fleet is not None, "attach the run's fleet first"
        now = int(view.now)
        alive = view.replicas
        longest = int(self.replica.cold_start[1]) + 1
        if self.needed(now, now + longest) > alive:
            # Replicas are created in order and the j-th next one takes its known cold start
            # d_j; if replica j is first needed at T_j it must exist by T_j - d_j, and so must
            # every replica before it. Create now each leading replica whose deadline is now.
            deadlines: list[float] = []
            for j in range(self.max_replicas - alive):
                first = self.first_time_needing(now, now + longest, alive + j + 1)
                if first is None:
                    break
                deadlines.append(first - self.fleet.cold_starts.get(self.fleet.created + j))
            for j in range(len(deadlines) - 2, -1, -1):
                deadlines[j] = min(deadlines[j], deadlines[j + 1])
            due = sum(1 for deadline in deadlines if deadline <= now)
            if due:
                return alive + due
        # Remove what will not be needed again within the longest cold start (sooner, adding
        # it back could not be done in time, and would cost as much GPU time as keeping it).
        keep = max(self.min_replicas, self.needed(now, now + longest))
        return min(alive, keep)


class _SparseMax:
    """Range maximum in O(1) after O(n log n) preparation."""

    def __init__(self, values: list[int]) -> None:
        self.levels = [list(values)]
        width = 1
        while 2 * width <= len(values):
            previous = self.levels[-1]
            self.levels.append(
                [max(previous[i], previous[i + width]) for i in range(len(values) - 2 * width + 1)]
            )
            width *= 2

    def query(self, lo: int, hi: int) -> int:
        level = (hi - lo + 1).bit_length() - 1
        row = self.levels[level]
        return max(row[lo], row[hi - (1 << level) + 1])
