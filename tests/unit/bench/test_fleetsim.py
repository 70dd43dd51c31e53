"""The autoscaling benchmark's simulator: queueing theory, accounting and the oracle hold up."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "bench"))

from fleetsim import fleet, model, oracle, traces

REPLICA = model.ReplicaModel()


class Fixed:
    """A policy that never changes the count."""

    name = "fixed"
    interval = 10.0

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def decide(self, view: fleet.View) -> int:
        del view
        return self.replicas


def _run(trace: traces.Trace, policy: fleet.Policy, initial: int) -> fleet.Result:
    return fleet.run(
        trace.name,
        trace.arrivals(3),
        trace.duration,
        policy,
        REPLICA,
        fleet.ColdStarts(REPLICA.cold_start, 3),
        initial,
        seed=3,
    )


def test_erlang_c_known_values() -> None:
    assert oracle.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert oracle.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert oracle.erlang_c(4, 4.0) == 1.0


def test_gpu_hours_and_slo_of_a_fixed_fleet() -> None:
    hour = traces.Trace("flat", (2.0 * REPLICA.capacity,) * 3600)
    roomy = _run(hour, Fixed(4), 4)
    assert roomy.gpu_hours == pytest.approx(4.0)
    assert roomy.slo_attainment == 1.0
    assert roomy.scale_events == 0
    assert roomy.requests == pytest.approx(2.0 * REPLICA.capacity * 3600, rel=0.05)
    # Twice the load one replica can carry: the queue grows without end.
    short = _run(hour, Fixed(1), 1)
    assert short.slo_attainment < 0.2
    assert short.p95_wait > 600


def test_a_new_replica_serves_after_its_cold_start_and_holds_a_gpu_meanwhile() -> None:
    trace = traces.Trace("flat", (0.5 * REPLICA.capacity,) * 1200)
    result = _run(trace, Fixed(2), 1)
    started = fleet.ColdStarts(REPLICA.cold_start, 3).get(1)
    # One replica all along, a second from t=0 (cold start included).
    assert result.gpu_hours == pytest.approx(2 * 1200 / 3600)
    assert result.series.ready[0] == 1
    assert result.series.ready[-1] == 2
    assert result.series.ready[int(started // 10) + 2] == 2


def test_the_oracle_meets_the_slo_at_the_least_gpu_of_a_fixed_fleet() -> None:
    trace = traces.spike(REPLICA.capacity, hours=1.0).with_warmup(600)
    arrivals = trace.arrivals(3)
    the_oracle = oracle.Oracle(trace.rates, REPLICA, None, 1, 40)
    cold = fleet.ColdStarts(REPLICA.cold_start, 3)
    the_oracle.fleet = fleet.Fleet(REPLICA, cold)
    result = fleet.run(
        "spike",
        arrivals,
        trace.duration,
        the_oracle,
        REPLICA,
        cold,
        the_oracle.need[0],
        seed=3,
        fleet_hook=the_oracle.fleet,
        measure_from=600,
    )
    assert result.slo_attainment >= 0.99
    peak = max(the_oracle.need)
    static = fleet.run(
        "spike",
        arrivals,
        trace.duration,
        Fixed(peak),
        REPLICA,
        fleet.ColdStarts(REPLICA.cold_start, 3),
        peak,
        seed=3,
        measure_from=600,
    )
    assert result.gpu_hours < 0.6 * static.gpu_hours
