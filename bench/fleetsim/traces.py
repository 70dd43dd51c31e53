"""The request-rate traces: bursty, diurnal and a sudden 10x spike, in units of one replica.

A trace is a request rate per second of simulated time (`rates[s]` requests per
second during second `s`), written in units of one replica's capacity so that the
fleet size it asks for does not depend on the replica model. Arrivals are a
Poisson process around that rate (`arrivals`), drawn with a seeded generator so
every policy sees the same requests at the same times.

- bursty: 4 h at 3 replicas' worth, with bursts (on average one every 12 min) of
  1.8x to 3.5x the base for 1 to 10 min, arriving at once and ending at once.
- diurnal: 24 h, from 1.5 replicas' worth at 03:00 to 10 at 15:00 (a cosine), with
  10% noise per minute.
- spike: 3 h at 2.5 replicas' worth, and from minute 60 to minute 90 ten times as much
  (the second sixth of a shortened trace).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

HOUR = 3600


@dataclasses.dataclass(frozen=True)
class Trace:
    """A request rate per second of simulated time."""

    name: str
    rates: tuple[float, ...]

    @property
    def duration(self) -> int:
        """Length in seconds."""
        return len(self.rates)

    def with_warmup(self, seconds: int) -> Trace:
        """The same trace after `seconds` at its first rate (for the policies' history)."""
        return Trace(self.name, (self.rates[0],) * seconds + self.rates)

    def arrivals(self, seed: int) -> list[float]:
        """Arrival times (seconds, sorted) of a Poisson process with this rate."""
        rng = np.random.default_rng(seed)
        rates = np.asarray(self.rates)
        counts = rng.poisson(rates)
        starts = np.repeat(np.arange(len(rates), dtype=float), counts)
        times = np.sort(starts + rng.random(len(starts)))
        return [float(t) for t in times]


def bursty(capacity: float, seed: int, hours: float = 4.0) -> Trace:
    """Base load of 3 replicas with sudden bursts of 1.8-3.5x lasting 1-10 minutes."""
    rng = np.random.default_rng(seed)
    seconds = int(hours * HOUR)
    factor = np.ones(seconds)
    t = float(rng.exponential(12 * 60))
    while t < seconds:
        length = float(rng.uniform(60, 600))
        start, end = int(t), min(seconds, int(t + length))
        factor[start:end] = np.maximum(factor[start:end], rng.uniform(1.8, 3.5))
        t += length + float(rng.exponential(12 * 60))
    return Trace("bursty", tuple(float(x) for x in 3.0 * capacity * factor))


def diurnal(capacity: float, seed: int, hours: float = 24.0) -> Trace:
    """A day: 1.5 replicas' worth at 03:00, 10 at 15:00, with 10% noise per minute."""
    rng = np.random.default_rng(seed)
    seconds = int(hours * HOUR)
    minutes = seconds // 60 + 1
    noise = np.repeat(rng.lognormal(0.0, 0.1, minutes), 60)[:seconds]
    out = []
    for s in range(seconds):
        phase = 2 * math.pi * (s - 3 * HOUR) / (24 * HOUR)
        units = 1.5 + 8.5 * (1 - math.cos(phase)) / 2
        out.append(float(units * capacity * noise[s]))
    return Trace("diurnal", tuple(out))


def spike(capacity: float, hours: float = 3.0) -> Trace:
    """2.5 replicas' worth, and ten times as much for the second sixth of the trace."""
    seconds = int(hours * HOUR)
    start, end = seconds // 3, seconds // 3 + seconds // 6
    out = []
    for s in range(seconds):
        units = 25.0 if start <= s < end else 2.5
        out.append(units * capacity)
    return Trace("spike", tuple(out))


def all_traces(capacity: float, seed: int, hours_scale: float = 1.0) -> list[Trace]:
    """The three traces of the benchmark (`hours_scale` < 1 shortens them for a quick run)."""
    return [
        bursty(capacity, seed, 4.0 * hours_scale),
        diurnal(capacity, seed, 24.0 * hours_scale),
        spike(capacity, 3.0 * hours_scale),
    ]
