"""The builtin autoscaler's decision on synthetic series: bursts, flapping, gaps, Pending pods."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable

import pytest

from llm_operator.api import v1alpha1
from llm_operator.autoscaling import decision

POLICY = decision.Policy(min_replicas=1, max_replicas=10, target=10.0)


@dataclasses.dataclass
class Replay:
    """Feeds a signal series to `decide` every `step` seconds, applying each decision at once."""

    policy: decision.Policy = POLICY
    replicas: int = 2
    state: decision.State = dataclasses.field(default_factory=decision.State)
    now: float = 0.0
    step: float = 5.0
    ready: Callable[[int], int] | None = None
    unschedulable: int = 0
    fits: int | None = None
    decisions: list[decision.Decision] = dataclasses.field(default_factory=list)

    def feed(self, signals: Iterable[float | None]) -> Replay:
        for signal in signals:
            ready = self.ready(self.replicas) if self.ready else self.replicas
            observation = decision.Observation(
                now=self.now,
                signal=signal,
                replicas=self.replicas,
                ready=ready,
                unschedulable=self.unschedulable,
                gpus_free=0,
                gpus_allocatable=16,
                gpus_per_replica=8,
                fits=self.fits,
            )
            outcome, self.state = decision.decide(self.policy, self.state, observation)
            self.decisions.append(outcome)
            self.replicas = outcome.desired
            self.now += self.step
        return self

    def hold(self, signal: float | None, seconds: float) -> Replay:
        return self.feed([signal] * int(seconds / self.step))

    @property
    def last(self) -> decision.Decision:
        return self.decisions[-1]

    def changes(self) -> list[tuple[float, int, int]]:
        return [
            (i * self.step, d.current, d.desired)
            for i, d in enumerate(self.decisions)
            if d.desired != d.current
        ]


def test_steady_signal_sizes_the_fleet() -> None:
    replay = Replay(replicas=2).hold(45.0, 120)
    assert replay.replicas == 5  # ceil(45 / 10)
    assert replay.last.reason is decision.Reason.WITHIN_TARGET
    assert replay.last.fresh


def test_a_burst_scales_up_on_the_panic_window_before_the_stable_window_sees_it() -> None:
    # The HPA's step (100% per period) rather than the default, to see the step too.
    replay = Replay(policy=dataclasses.replace(POLICY, up_step_percent=100), replicas=2)
    replay.hold(20.0, 400)
    assert replay.replicas == 2
    replay.feed([80.0, 80.0])  # ten seconds of four times the load
    assert replay.last.panic
    assert replay.last.reason is decision.Reason.BURST
    assert replay.replicas == 6  # max(4 Pods, 100%) in one 15 s period
    replay.feed([80.0] * 3)
    assert replay.replicas == 8  # the panic window's ask, ceil(80 / 10)
    # The stable window alone (60 s) would still ask for far fewer.
    assert replay.last.stable_average is not None
    assert replay.last.stable_average < 80


def test_no_scale_down_during_panic_nor_before_the_scale_down_window() -> None:
    replay = Replay(replicas=2).hold(20.0, 400).feed([100.0] * 6)
    top = replay.replicas
    assert top == 10
    replay.hold(5.0, 55)  # the burst is over, but the panic lasts a stable window
    assert replay.replicas == top
    replay.hold(5.0, 200)  # out of panic, inside the 300 s scale-down window
    assert replay.replicas == top
    assert replay.last.reason is decision.Reason.STABILIZING
    replay.hold(5.0, 300)
    assert replay.replicas == 1


def test_scale_down_is_stepwise() -> None:
    replay = Replay(replicas=10).hold(100.0, 400).hold(5.0, 320)
    steps = [(before, after) for _, before, after in replay.changes()]
    assert steps, "it should have scaled down"
    # At most max(1, 25%) per 15 s period from the count at the start of the period.
    for before, after in steps:
        assert before - after <= max(1, before // 4)
    replay.hold(5.0, 300)
    assert replay.replicas == 1


def test_flapping_input_does_not_flap_the_replicas() -> None:
    # The signal jumps between 25 and 55 (3 and 6 replicas' worth) every 10 s for 20 min.
    replay = Replay(replicas=4).hold(40.0, 400)
    replay.decisions.clear()
    replay.feed([25.0, 25.0, 55.0, 55.0] * 60)
    assert len(replay.changes()) <= 1
    assert replay.replicas in (4, 5)


def test_a_signal_hovering_at_a_boundary_does_not_buy_a_cold_start_each_time() -> None:
    replay = Replay(replicas=3).hold(29.0, 400)
    replay.decisions.clear()
    # 29 to 31: the boundary between 3 and 4 replicas at target 10.
    replay.feed([29.0, 31.0, 30.5, 29.5] * 150)
    assert len(replay.changes()) <= 1


def test_missing_data_holds_the_count_and_is_never_read_as_zero() -> None:
    replay = Replay(replicas=6).hold(60.0, 400)
    assert replay.replicas == 6
    replay.hold(None, 600)
    assert replay.replicas == 6
    assert replay.last.reason is decision.Reason.NO_SIGNAL
    assert not replay.last.fresh
    assert "not read for" in replay.last.message


def test_a_short_gap_keeps_the_signal_fresh_and_averages_what_was_read() -> None:
    replay = Replay(replicas=6).hold(60.0, 400)
    replay.feed([None, None, None])
    assert replay.last.fresh
    assert replay.last.stable_average == pytest.approx(60.0)
    assert replay.replicas == 6


def test_never_read_holds_and_is_not_fresh() -> None:
    replay = Replay(replicas=3).hold(None, 60)
    assert replay.replicas == 3
    assert replay.last.reason is decision.Reason.NO_SIGNAL
    assert "never read" in replay.last.message


def test_no_scale_down_before_the_autoscaler_has_watched_a_window() -> None:
    # A restarted operator sees an idle fleet of 8: it waits a whole scale-down window.
    replay = Replay(replicas=8).hold(0.0, 250)
    assert replay.replicas == 8
    assert replay.last.reason is decision.Reason.WARMING_UP
    replay.hold(0.0, 400)
    assert replay.replicas == 1


def test_pending_pods_stop_scale_up_and_say_why() -> None:
    replay = Replay(replicas=2).hold(20.0, 300)
    replay.unschedulable = 1
    replay.hold(90.0, 60)
    assert replay.replicas == 2
    last = replay.last
    assert last.reason is decision.Reason.GPU_SHORTAGE
    assert last.limit is decision.Limit.GPU_SHORTAGE
    assert "holds at 2" in last.limit_message
    assert "1 replica is Pending" in last.limit_message
    assert "each replica needs 8" in last.limit_message
    assert "0 of 16 allocatable GPUs are free" in last.limit_message
    # Once the Pending Pod is placed, scaling up resumes.
    replay.unschedulable = 0
    replay.hold(90.0, 30)
    assert replay.replicas == 9


def test_adds_what_fits_and_one_pending_replica_no_more() -> None:
    replay = Replay(replicas=2).hold(20.0, 300)
    replay.fits = 1
    replay.feed([90.0])
    assert replay.replicas == 4  # 2 + 1 that fits + 1 Pending, not the 6 it wants
    assert replay.last.limit is decision.Limit.GPU_SHORTAGE
    assert "the free GPUs hold 1 more" in replay.last.limit_message
    # The extra one is Pending now: nothing more is added.
    replay.fits, replay.unschedulable = 0, 1
    replay.hold(90.0, 60)
    assert replay.replicas == 4
    # Where enough fits, nothing is capped.
    roomy = Replay(replicas=2, fits=16).hold(20.0, 300).feed([90.0])
    assert roomy.replicas == 6
    assert roomy.last.limit is None


def test_pending_pods_do_not_stop_scale_down() -> None:
    replay = Replay(replicas=6).hold(60.0, 400)
    replay.unschedulable = 2
    replay.hold(5.0, 700)
    assert replay.replicas == 1


def test_bounds_and_the_limit_they_report() -> None:
    replay = Replay(replicas=2).hold(500.0, 120)
    assert replay.replicas == 10
    assert replay.last.limit is decision.Limit.AT_MAX_REPLICAS
    assert "asks for 50" in replay.last.limit_message


def test_changed_bounds_apply_at_once() -> None:
    replay = Replay(replicas=8).hold(80.0, 400)
    replay.policy = dataclasses.replace(POLICY, max_replicas=5)
    replay.feed([80.0])
    assert replay.replicas == 5
    assert replay.last.reason is decision.Reason.ABOVE_MAX_REPLICAS
    replay.policy = dataclasses.replace(POLICY, min_replicas=7)
    replay.feed([0.0])
    assert replay.replicas == 7
    assert replay.last.reason is decision.Reason.BELOW_MIN_REPLICAS


def test_scale_up_stabilization_takes_the_lowest_recommendation() -> None:
    policy = dataclasses.replace(POLICY, scale_up_stabilization=60.0, panic_threshold=10.0)
    replay = Replay(policy=policy, replicas=2).hold(20.0, 400)
    replay.feed([60.0] * 6)
    assert replay.replicas == 2
    assert replay.last.reason is decision.Reason.STABILIZING
    # The stable window fills in 60 s, then its recommendation must hold for 60 s more.
    replay.hold(60.0, 125)
    assert replay.replicas == 6


def test_panic_counts_ready_replicas_not_starting_ones() -> None:
    # Four replicas exist, one is Ready: a burst of 3 replicas' worth is a panic.
    replay = Replay(replicas=4, ready=lambda _: 1).hold(10.0, 400)
    replay.feed([30.0, 30.0])
    assert replay.last.panic


def test_same_inputs_same_outputs() -> None:
    a = Replay(replicas=2).feed([10.0, 50.0, None, 90.0, 20.0] * 40)
    b = Replay(replicas=2).feed([10.0, 50.0, None, 90.0, 20.0] * 40)
    assert a.decisions == b.decisions
    assert a.state == b.state


def test_policy_from_the_spec_uses_its_defaults() -> None:
    spec = v1alpha1.Autoscaling.model_validate({"enabled": True, "maxReplicas": 6})
    policy = decision.Policy.from_spec(spec)
    assert policy.target == 5.0
    assert policy.stable_window == 60.0
    assert policy.panic_window == 10.0
    assert policy.scale_down_stabilization == 300.0
    assert policy.stale_after == 30.0
    assert (policy.min_replicas, policy.max_replicas) == (1, 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"target": 0.0}, "target"),
        ({"panic_window": 60.0}, "panic_window"),
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, float], message: str) -> None:
    base: dict[str, float] = {"min_replicas": 1, "max_replicas": 4, "target": 1.0}
    with pytest.raises(ValueError, match=message):
        decision.Policy(**{**base, **kwargs})  # type: ignore[arg-type]


def test_every_decision_is_one_of_the_outcomes_the_metric_starts_at_zero() -> None:
    rng = random.Random(7)
    seen: set[tuple[decision.Direction, decision.Reason]] = set()
    for run in range(30):
        replay = Replay(replicas=rng.randint(1, 10), step=rng.choice([1.0, 5.0, 15.0]))
        replay.unschedulable = run % 3 == 0
        replay.fits = rng.choice([None, 0, 1])
        for _ in range(40):
            if rng.random() < 0.05:
                low = rng.randint(1, 5)
                replay.policy = dataclasses.replace(
                    POLICY, min_replicas=low, max_replicas=rng.randint(low, 10)
                )
            level = rng.choice([None, 0.0, 5.0, 30.0, 200.0])
            replay.feed([level] * rng.randint(1, 30))
        seen |= {(d.direction, d.reason) for d in replay.decisions}
    assert seen <= set(decision.OUTCOMES), seen - set(decision.OUTCOMES)
    # The walk reaches most outcomes, so the check above is not vacuous.
    assert len(seen) >= 8, seen


@dataclasses.dataclass
class Fleet:
    """A fluid fleet under `decide`: arrivals at `rate` per second, a FIFO queue, replicas
    that serve `slots` requests of `service` seconds each once Ready, `cold` s after being
    asked for. Readings carry the waiting queue and the finished requests, as the operator's."""

    policy: decision.Policy = dataclasses.field(
        default_factory=lambda: decision.Policy(min_replicas=1, max_replicas=40, target=8.0)
    )
    replicas: int = 4
    slots: int = 10
    service: float = 10.0
    cold: float = 120.0
    step: float = 5.0
    now: float = 0.0
    in_system: float = 0.0
    completed: float = 0.0
    lost: float = 0.0
    state: decision.State = dataclasses.field(default_factory=decision.State)
    starts: list[float] = dataclasses.field(default_factory=list)
    decisions: list[decision.Decision] = dataclasses.field(default_factory=list)
    counts: list[int] = dataclasses.field(default_factory=list)
    peak_waiting: float = 0.0

    def __post_init__(self) -> None:
        self.starts = [-1e9] * self.replicas

    @property
    def ready(self) -> int:
        return sum(1 for t in self.starts if t + self.cold <= self.now)

    @property
    def running(self) -> float:
        return min(self.in_system, self.ready * self.slots)

    def run(self, rate: float | Callable[[float], float], seconds: float) -> Fleet:
        for _ in range(int(seconds / self.step)):
            arrivals = (rate(self.now) if callable(rate) else rate) * self.step
            done = min(self.running * self.step / self.service, self.in_system)
            self.in_system += arrivals - done
            self.completed += done
            self.now += self.step
            self.peak_waiting = max(self.peak_waiting, self.in_system - self.running)
            observation = decision.Observation(
                now=self.now,
                signal=self.in_system,
                replicas=len(self.starts),
                ready=self.ready,
                waiting=self.in_system - self.running,
                completed=self.completed - self.lost,
            )
            outcome, self.state = decision.decide(self.policy, self.state, observation)
            self.decisions.append(outcome)
            while len(self.starts) < outcome.desired:
                self.starts.append(self.now)
            while len(self.starts) > outcome.desired:
                # Starting replicas go first, then the newest (as a Deployment does).
                starting = [t for t in self.starts if t + self.cold > self.now]
                self.starts.remove(max(starting) if starting else self.starts[-1])
            self.counts.append(len(self.starts))
        return self


def test_a_backlog_is_not_load_to_carry_after_the_burst() -> None:
    # 2.5 replicas' worth (2 req/s at 10 s each = 20 in service, target 8), then a
    # burst of 5.25 replicas' worth for 3 minutes: the queue grows to hundreds while the
    # new replicas start. The fleet is sized for the arrivals, not for the queue (no
    # hedge here: it would start more while requests wait, and let them go after).
    policy = decision.Policy(min_replicas=1, max_replicas=40, target=8.0, hedge_percent=0)
    fleet = Fleet(policy=policy, replicas=3).run(2.0, 900)
    assert len(fleet.starts) == 3
    fleet.run(4.2, 180)
    assert fleet.peak_waiting > 100
    # With the queue read as load it would ask for ceil(signal / 8) = 40 (maxReplicas).
    assert max(fleet.counts) < 40
    fleet.run(4.2, 600)
    assert len(fleet.starts) == 6  # 42 in service / 8 per replica
    assert fleet.in_system - fleet.running == 0  # the queue is drained


def test_replicas_starting_are_capacity_on_its_way_not_a_reason_to_add_more() -> None:
    # No hedge: while the replicas asked for start, a growing queue adds none.
    policy = decision.Policy(min_replicas=1, max_replicas=40, target=8.0, hedge_percent=0)
    fleet = Fleet(policy=policy, replicas=3).run(2.0, 900).run(4.2, 60)
    asked = len(fleet.starts)
    assert asked == 6
    fleet.run(4.2, 50)  # still inside the cold start; the queue keeps growing
    assert fleet.ready == 3
    assert len(fleet.starts) == asked


def test_the_hedge_races_the_cold_start_and_goes_once_enough_are_ready() -> None:
    fleet = Fleet(replicas=3).run(2.0, 900).run(4.2, 60)
    hedged = max(fleet.counts)
    assert hedged > 6  # more than the 6 the arrivals need, while requests wait
    assert fleet.decisions[-1].desired == hedged
    fleet.run(4.2, fleet.cold + 60)
    # Enough are Ready: the extra ones go without waiting out the scale-down window.
    assert len(fleet.starts) < hedged / 2
    assert fleet.now - 960 < fleet.policy.scale_down_stabilization
    fleet.run(4.2, 400)
    assert len(fleet.starts) == 6


def test_scale_down_follows_the_arrivals_after_the_window() -> None:
    fleet = Fleet(replicas=8).run(6.0, 900)
    assert len(fleet.starts) == 8
    fleet.run(1.4, 200)
    assert len(fleet.starts) == 8  # inside the 300 s window
    fleet.run(1.4, 600)
    assert len(fleet.starts) == 2


def test_a_queue_that_no_arrival_rate_shows_is_load() -> None:
    # Clients that wait for their answers (a closed loop): arrivals equal completions,
    # the queue never shrinks, no replica is on its way: it is demand after all.
    replay = Replay(replicas=1)
    state, now, completed = decision.State(), 0.0, 0.0
    for _ in range(40):
        completed += 4 * 5 / 10.0  # 4 running, 10 s each, every 5 s
        observation = decision.Observation(
            now=now,
            signal=12.0,
            replicas=replay.replicas,
            ready=replay.replicas,
            waiting=max(0.0, 12.0 - 4 * replay.replicas),
            completed=completed,
        )
        outcome, state = decision.decide(POLICY, state, observation)
        replay.replicas = outcome.desired
        now += 5
    assert replay.replicas == 2  # ceil(12 / 10)


def test_a_replica_taking_its_count_away_is_not_read_as_fewer_arrivals() -> None:
    fleet = Fleet(replicas=4).run(2.0, 900)
    assert len(fleet.starts) == 3
    before = fleet.decisions[-1]
    # A replica goes, and its finished requests leave the sum.
    fleet.lost += 5000.0
    fleet.run(2.0, 60)
    assert len(fleet.starts) == 3
    assert fleet.decisions[-1].desired == before.desired
