"""Reference rows, not competitors: what a policy that cannot see the future could reach.

Both know the trace's request rate at the present second exactly (no measurement,
no lag, no noise: more than any autoscaler can read) and hold what that rate needs
at the target every policy uses, but, unlike the oracle, know nothing of the
future: neither the rate to come nor the next replica's cold start.

- instant-surge: the most a policy that holds what the present rate needs can get
  from cold starts. The second the present rate needs more replicas than are
  Ready, it starts every replica `max_replicas` allows (the first to be Ready
  serve) and keeps them until no request waits and the Ready ones carry the rate;
  otherwise it holds the most the rate needed in the last `hold` seconds. No
  replica can serve before its cold start is over (60-300 s), so what this row
  misses, the requests of a rise that come before enough replicas can be Ready, is
  out of reach of any reactive policy that has no spare replicas when the rise
  comes (spare replicas are GPU-hours the oracle does not spend). Its GPU-hours are
  no yardstick: it starts every replica it may.
- reactive-oracle: the same present knowledge spent frugally: the most the rate
  needed in the last `hold` seconds (the builtin's scale-down window), nothing
  more. Its GPU-hours are what a perfect measurement of the rate still costs when
  a replica is kept for that window after the rate falls (a reactive policy cannot
  tell a lull from the end of a burst).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetsim import fleet


class _Present:
    """The need of the present second and the most of the last `hold` seconds."""

    def __init__(self, need: Sequence[int], hold: float) -> None:
        self.need = need
        self.hold = int(hold)

    def now(self, t: float) -> int:
        return self.need[min(len(self.need) - 1, max(0, int(t)))]

    def recent(self, t: float) -> int:
        end = min(len(self.need) - 1, max(0, int(t)))
        return max(self.need[max(0, end - self.hold) : end + 1])


class InstantSurge:
    """Every replica allowed, the second the present rate outgrows the Ready ones."""

    name = "instant-surge"
    interval = 1.0
    reference = True

    def __init__(self, need: Sequence[int], max_replicas: int, hold: float) -> None:
        self.present = _Present(need, hold)
        self.max_replicas = max_replicas
        self.surging = False

    def decide(self, view: fleet.View) -> int:
        need = self.present.now(view.now)
        if need > view.ready:
            self.surging = True
        elif view.waiting == 0:
            self.surging = False
        if self.surging:
            return self.max_replicas
        return self.present.recent(view.now)


class ReactiveOracle:
    """The most the present rate needed in the last `hold` seconds, nothing else."""

    name = "reactive-oracle"
    interval = 1.0
    reference = True

    def __init__(self, need: Sequence[int], hold: float) -> None:
        self.present = _Present(need, hold)

    def decide(self, view: fleet.View) -> int:
        return self.present.recent(view.now)
