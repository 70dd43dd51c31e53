"""The builtin autoscaler's decision: signal readings in, a replica count and its reason out. Pure.

`decide(policy, state, observation)` returns a `Decision` and the next `State`; it
reads no clock (the time is in the observation) and does no I/O, so the operator's
loop (`autoscaling.loop`) and the trace simulation (`bench/autoscale.py`) run this
same function. The steps, in order:

1. Keep the readings of the last `stable_window` seconds. With no reading for
   `stale_after` seconds the count is held (reason `NoSignal`): missing data is
   never taken for zero load, and a gap inside the window just has fewer readings.
2. The load over the stable window and over the short panic window, each asking for
   `ceil(load / target)` replicas. The load is the signal's average; when the
   signal counts requests and the readings carry the waiting queue and the
   requests finished (`vllm:request_success_total`), it is the concurrency the
   arrival rate asks for (`demand.estimate`: arrivals = finished + growth of the signal),
   so a backlog is not read as load to carry for a whole scale-down window. A queue
   that stands, does not shrink and has no replica starting to drain it (clients
   that wait for their answers) counts after all.
3. Panic: when the panic window asks for `panic_threshold` times the ready
   replicas (from arrival rates: with a queue standing), scale on the panic window,
   never down, until a whole stable window has passed without that happening again
   (Knative's KPA does the same). Out of panic, a standing queue with the panic
   window's arrivals asking for more scales up at once.
4. Clamp to [min, max] (`AtMaxReplicas` says when the signal asks for more).
5. Stabilise (as the HPA does): scale up to the lowest recommendation of the last
   `scale_up_stabilization` seconds, down to the highest of the last
   `scale_down_stabilization` seconds; no scale-down before the autoscaler has
   watched for that long (a restarted operator does not shrink on a few readings).
6. Hedge the cold start: while requests wait and fewer replicas are Ready than
   recommended, start up to `hedge_percent` more of the missing ones; the first to
   be Ready serve, and the rest, still starting, go once enough are Ready (the
   hedge is not held for the scale-down window).
7. Cap the step: per `period`, add at most max(up_step, up_step_percent of the
   count at the start of the period) and remove at most max(down_step,
   down_step_percent of it).
8. Add no more than the free GPUs hold, plus one Pending replica (the request a
   node autoscaler acts on), and nothing at all while earlier replicas are Pending
   for lack of GPUs (`GPUShortage`): more Pods would only wait beside them.
   Scale-down is not held.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable

from llm_operator.api import v1alpha1
from llm_operator.autoscaling import demand

_EPSILON = 1e-9


class Direction(enum.StrEnum):
    """Which way a decision moves the replica count."""

    UP = "up"
    DOWN = "down"
    NONE = "none"


class Reason(enum.StrEnum):
    """Why a decision is what it is (the `reason` label of the decisions metric)."""

    SIGNAL_ABOVE_TARGET = "SignalAboveTarget"
    SIGNAL_BELOW_TARGET = "SignalBelowTarget"
    BURST = "Burst"
    WITHIN_TARGET = "WithinTarget"
    STABILIZING = "Stabilizing"
    WARMING_UP = "WarmingUp"
    NO_SIGNAL = "NoSignal"
    GPU_SHORTAGE = "GPUShortage"
    BELOW_MIN_REPLICAS = "BelowMinReplicas"
    ABOVE_MAX_REPLICAS = "AboveMaxReplicas"


#: Every (direction, reason) a decision can have. The decisions metric starts each at 0
#: for a new LLMDeployment, so a rate or an increase counts the first of a kind too
#: (Prometheus cannot tell a counter that appears at 1 from one that was always 1).
OUTCOMES: tuple[tuple[Direction, Reason], ...] = (
    (Direction.UP, Reason.SIGNAL_ABOVE_TARGET),
    (Direction.UP, Reason.BURST),
    (Direction.UP, Reason.BELOW_MIN_REPLICAS),
    (Direction.DOWN, Reason.SIGNAL_BELOW_TARGET),
    (Direction.DOWN, Reason.ABOVE_MAX_REPLICAS),
    (Direction.NONE, Reason.WITHIN_TARGET),
    (Direction.NONE, Reason.STABILIZING),
    (Direction.NONE, Reason.WARMING_UP),
    (Direction.NONE, Reason.NO_SIGNAL),
    (Direction.NONE, Reason.GPU_SHORTAGE),
)


class Limit(enum.StrEnum):
    """What kept the decision from the count the signal asks for (condition ScalingLimited)."""

    GPU_SHORTAGE = "GPUShortage"
    AT_MAX_REPLICAS = "AtMaxReplicas"
    AT_MIN_REPLICAS = "AtMinReplicas"
    SCALE_UP_STEP = "ScaleUpStep"
    SCALE_DOWN_STEP = "ScaleDownStep"


@dataclasses.dataclass(frozen=True)
class Policy:
    """The decision's settings, all in seconds, replicas and signal units."""

    min_replicas: int
    max_replicas: int
    target: float
    stable_window: float = 60.0
    panic_window: float = 10.0
    panic_threshold: float = 2.0
    scale_up_stabilization: float = 0.0
    scale_down_stabilization: float = 300.0
    up_step: int = 4
    up_step_percent: int = 1000
    down_step: int = 1
    down_step_percent: int = 25
    period: float = 15.0
    stale_after: float = 30.0
    tolerance: float = 0.1
    # Fixed (not in the spec): while requests wait for replicas that are not Ready, start
    # up to this percentage more of the missing ones (step 6 of the module docstring).
    hedge_percent: int = 1000

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.target <= 0:
            raise ValueError("target must be positive")
        if not 0 < self.panic_window < self.stable_window:
            raise ValueError("need 0 < panic_window < stable_window")

    @classmethod
    def from_spec(cls, spec: v1alpha1.Autoscaling) -> Policy:
        """The policy an LLMDeployment's `spec.autoscaling` asks for."""
        return cls(
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target=spec.target,
            stable_window=float(spec.stable_window_seconds),
            panic_window=float(spec.panic_window_seconds),
            panic_threshold=spec.panic_threshold,
            scale_up_stabilization=float(spec.scale_up_stabilization_seconds),
            scale_down_stabilization=float(spec.scale_down_stabilization_seconds),
            up_step=spec.scale_up_step,
            up_step_percent=spec.scale_up_step_percent,
            down_step=spec.scale_down_step,
            down_step_percent=spec.scale_down_step_percent,
            period=float(spec.scale_period_seconds),
            # Three readings missed in a row, and never less than 30 s.
            stale_after=max(30.0, 3.0 * spec.polling_interval_seconds),
        )


@dataclasses.dataclass(frozen=True)
class Observation:
    """One reading: the time, the signal (None when it could not be read) and the Pods."""

    now: float
    signal: float | None
    replicas: int
    ready: int
    unschedulable: int = 0
    # For the GPUShortage message only: free and allocatable GPUs, and GPUs per replica.
    gpus_free: int | None = None
    gpus_allocatable: int | None = None
    gpus_per_replica: int | None = None
    # How many more replicas the free GPUs can hold now (None: not known).
    fits: int | None = None
    # Requests waiting (part of the signal when it counts the running ones too), and
    # requests finished so far (`vllm:request_success_total` summed over the replicas:
    # a counter, which drops when a replica goes away). With both, the decision sizes
    # the fleet for the arrival rate, not for the backlog (see `demand.estimate`).
    waiting: float | None = None
    completed: float | None = None


@dataclasses.dataclass(frozen=True)
class State:
    """What the decision remembers between readings (start with `State()`)."""

    started: float | None = None
    samples: tuple[demand.Sample, ...] = ()
    # The last `completed` read and what lost replicas took from the sum since the start.
    completed_read: float | None = None
    completed_lost: float = 0.0
    recommendations: tuple[tuple[float, int], ...] = ()
    changes: tuple[tuple[float, int], ...] = ()
    panic_until: float | None = None
    last_read: float | None = None
    last_scale: float | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of one reading."""

    desired: int
    current: int
    recommended: int
    direction: Direction
    reason: Reason
    message: str
    panic: bool
    fresh: bool
    signal: float | None
    stable_average: float | None
    panic_average: float | None
    limit: Limit | None = None
    limit_message: str = ""


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _replicas_for(value: float, target: float) -> int:
    return max(0, math.ceil(value / target - _EPSILON))


def _shortage_message(observation: Observation, wanted: int) -> str:
    pending = observation.unschedulable
    text = (
        f"wants {wanted} replicas but holds at {observation.replicas}: {pending} "
        f"{'replica is' if pending == 1 else 'replicas are'} Pending, no node has the GPUs"
    )
    if observation.gpus_per_replica is not None:
        text += f" (each replica needs {observation.gpus_per_replica}"
        if observation.gpus_free is not None and observation.gpus_allocatable is not None:
            text += (
                f"; {observation.gpus_free} of {observation.gpus_allocatable} allocatable "
                "GPUs are free"
            )
        text += ")"
    return text


def _window(samples: tuple[demand.Sample, ...], now: float, seconds: float) -> list[float]:
    return [s.signal for s in samples if s.at > now - seconds]


def decide(policy: Policy, state: State, observation: Observation) -> tuple[Decision, State]:
    """One decision from one reading. Pure: the same inputs always give the same outputs."""
    now = observation.now
    current = observation.replicas
    started = state.started if state.started is not None else now
    samples = state.samples
    last_read = state.last_read
    completed, completed_read, completed_lost = demand.monotonic(
        observation.completed, state.completed_read, state.completed_lost
    )
    if observation.signal is not None and math.isfinite(observation.signal):
        waiting = observation.waiting
        if waiting is not None and not math.isfinite(waiting):
            waiting = None
        samples = (*samples, demand.Sample(now, max(0.0, observation.signal), waiting, completed))
        last_read = now
    horizon = max(policy.stable_window, policy.scale_down_stabilization, policy.period)
    # One reading older than the stable window is kept: the rate over it needs a start.
    samples = tuple(s for s in samples if s.at > now - policy.stable_window - policy.stale_after)
    changes = tuple(c for c in state.changes if c[0] > now - policy.period)
    recommendations = tuple(r for r in state.recommendations if r[0] > now - horizon)
    bounded = min(policy.max_replicas, max(policy.min_replicas, current))

    def finish(
        desired: int,
        recommended: int,
        reason: Reason,
        message: str,
        *,
        panic: bool = False,
        fresh: bool = True,
        stable: float | None = None,
        burst: float | None = None,
        limit: Limit | None = None,
        limit_message: str = "",
        panic_until: float | None = None,
        recs: tuple[tuple[float, int], ...] = recommendations,
    ) -> tuple[Decision, State]:
        direction = (
            Direction.UP
            if desired > current
            else Direction.DOWN
            if desired < current
            else Direction.NONE
        )
        new_changes = changes if desired == current else (*changes, (now, desired - current))
        decision = Decision(
            desired=desired,
            current=current,
            recommended=recommended,
            direction=direction,
            reason=reason,
            message=message,
            panic=panic,
            fresh=fresh,
            signal=observation.signal,
            stable_average=stable,
            panic_average=burst,
            limit=limit,
            limit_message=limit_message,
        )
        new_state = State(
            started=started,
            samples=samples,
            recommendations=recs,
            changes=new_changes,
            panic_until=panic_until,
            last_read=last_read,
            last_scale=now if desired != current else state.last_scale,
            completed_read=completed_read,
            completed_lost=completed_lost,
        )
        return decision, new_state

    # 1. Missing data: hold (within the bounds), never read a gap as zero load.
    if last_read is None or now - last_read > policy.stale_after:
        age = "never read" if last_read is None else f"not read for {now - last_read:.0f}s"
        reason = Reason.NO_SIGNAL
        if bounded != current:
            reason = Reason.BELOW_MIN_REPLICAS if current < bounded else Reason.ABOVE_MAX_REPLICAS
        return finish(
            bounded,
            bounded,
            reason,
            f"signal {age}; holding {bounded} replicas",
            fresh=False,
            panic_until=state.panic_until,
        )

    # 2. Averages over the stable and the panic window; with waiting and completion
    # counts, the concurrency the arrival rate asks for stands in for the signal.
    stable = _mean(_window(samples, now, policy.stable_window)) or 0.0
    burst_values = _window(samples, now, policy.panic_window)
    # No reading inside the panic window (a short gap): the latest reading stands for it.
    burst = _mean(burst_values) or (samples[-1].signal if samples else stable)
    stable_demand = demand.estimate(samples, now, policy.stable_window)
    burst_demand = demand.estimate(samples, now, policy.panic_window)
    load = min(stable, stable_demand.concurrency) if stable_demand else stable
    burst_load = burst_demand.concurrency if burst_demand else burst
    # A queue that stands through the panic window, is not shrinking, and has no replica
    # on its way to drain it is demand after all (clients that wait for their answers
    # before they send more keep a queue that no arrival rate shows): count it.
    recent = [s for s in samples if s.at > now - policy.panic_window]
    standing = min((s.waiting or 0.0 for s in recent), default=0.0)
    queue = [s.waiting for s in samples if s.at > now - policy.stable_window and s.waiting]
    if (
        stable_demand is not None
        and standing > 0
        and observation.ready >= current
        and queue
        and queue[-1] >= queue[0]
    ):
        load, burst_load = max(load, stable), max(burst_load, burst)
    want_stable = _replicas_for(load, policy.target)
    want_panic = _replicas_for(burst_load, policy.target)

    # 3. Panic mode.
    panic_until = state.panic_until
    # From arrival rates, a panic also needs a queue standing through the panic window:
    # ten seconds of arrivals are noisy, and a burst the Ready replicas absorb is none.
    bursting = burst_demand is None or standing > 0
    if (
        bursting
        and want_panic >= policy.panic_threshold * max(observation.ready, 1)
        and want_panic > current
    ):
        panic_until = now + policy.stable_window
    panic = panic_until is not None and now < panic_until
    if not panic:
        panic_until = None
    # In panic, nothing the panic asked for is given up (with arrival rates, what it asked
    # for, not the count: a hedge goes when it is no longer needed).
    floor = (
        max((r for t, r in recommendations if t > now - policy.stable_window), default=current)
        if burst_demand is not None
        else current
    )
    wanted = max(want_panic, floor) if panic else want_stable
    if burst_demand is not None and standing > 0 and not panic:
        # A queue stands and the arrivals of the panic window ask for more: that is
        # evidence enough to start replicas now, a cold start before they serve.
        wanted = max(wanted, want_panic)
    if not panic and wanted < current:
        # Hysteresis: give a replica up only if the load fits the rest with a margin, so a
        # signal hovering at a boundary does not buy a cold start every few minutes. It
        # keeps what the load asked for, not replicas beyond that (a hedge now Ready).
        asked = max(
            (r for t, r in recommendations if t > now - policy.scale_down_stabilization),
            default=current,
        )
        margin = _replicas_for(load, policy.target * (1 - policy.tolerance))
        wanted = max(wanted, min(current, asked, margin))

    # 4. Bounds.
    recommended = min(policy.max_replicas, max(policy.min_replicas, wanted))
    limit: Limit | None = None
    limit_message = ""
    if wanted > policy.max_replicas:
        limit = Limit.AT_MAX_REPLICAS
        limit_message = (
            f"the signal asks for {wanted} replicas; maxReplicas is {policy.max_replicas}"
        )
    elif wanted < policy.min_replicas and current <= policy.min_replicas:
        limit = Limit.AT_MIN_REPLICAS
        limit_message = (
            f"the signal asks for {wanted} replicas; minReplicas is {policy.min_replicas}"
        )
    recommendations = (*recommendations, (now, recommended))

    # Bounds changed under us (spec edited): go straight to them.
    if bounded != current:
        reason = Reason.BELOW_MIN_REPLICAS if current < bounded else Reason.ABOVE_MAX_REPLICAS
        return finish(
            bounded,
            recommended,
            reason,
            f"{current} replicas are outside [{policy.min_replicas}, {policy.max_replicas}]",
            panic=panic,
            stable=stable,
            burst=burst,
            limit=limit,
            limit_message=limit_message,
            panic_until=panic_until,
            recs=recommendations,
        )

    # 5. Stabilisation windows.
    up_window = [r for t, r in recommendations if t > now - policy.scale_up_stabilization]
    down_window = [r for t, r in recommendations if t > now - policy.scale_down_stabilization]
    up_recommendation = min(up_window) if up_window else recommended
    down_recommendation = max(down_window) if down_window else recommended
    # 6. Hedge the cold start: while requests wait and fewer replicas are Ready than
    # recommended, start `hedge_percent` more of the missing ones. Whichever start first
    # serve; the rest, still starting (a Deployment removes those first), go as soon as
    # enough are Ready, since the hedge stays out of the recommendations held for the
    # scale-down window. It spends GPUs that are free (step 7 caps it at what fits).
    hedge = 0
    missing = recommended - observation.ready
    if burst_demand is not None and standing > 0 and missing > 0:
        hedge = math.ceil(missing * policy.hedge_percent / 100)
        hedged = min(policy.max_replicas, recommended + hedge)
        up_recommendation = max(up_recommendation, hedged)
        down_recommendation = max(down_recommendation, hedged)
    desired = current
    if desired < up_recommendation:
        desired = up_recommendation
    if desired > down_recommendation:
        desired = down_recommendation
    warming = desired < current and now - started < policy.scale_down_stabilization
    if warming:
        desired = current

    # 7. Step limits per period, from the count at the start of the period.
    period_start = current - sum(delta for _, delta in changes)
    if desired > current:
        ceiling = period_start + max(
            policy.up_step, math.ceil(period_start * policy.up_step_percent / 100)
        )
        if desired > ceiling:
            limit = Limit.SCALE_UP_STEP
            limit_message = (
                f"wants {desired} replicas; at most {ceiling} in this {policy.period:g}s "
                f"period (scaleUpStep {policy.up_step}, {policy.up_step_percent}%)"
            )
            desired = max(current, ceiling)
    elif desired < current:
        floor = period_start - max(
            policy.down_step, math.floor(period_start * policy.down_step_percent / 100)
        )
        if desired < floor:
            limit = Limit.SCALE_DOWN_STEP
            limit_message = (
                f"wants {desired} replicas; at least {floor} in this {policy.period:g}s "
                f"period (scaleDownStep {policy.down_step}, {policy.down_step_percent}%)"
            )
            desired = min(current, floor)

    # 8. No more Pods than fit (and one to ask for a node), none while one waits for GPUs.
    if (
        desired > current
        and observation.unschedulable == 0
        and observation.fits is not None
        and desired > current + observation.fits + 1
    ):
        capped = current + observation.fits + 1
        limit = Limit.GPU_SHORTAGE
        limit_message = (
            f"wants {desired} replicas; adds {capped - current}: the free GPUs hold "
            f"{observation.fits} more"
            + (
                f" (each needs {observation.gpus_per_replica})"
                if observation.gpus_per_replica
                else ""
            )
            + ", and one more Pending asks for a node"
        )
        desired = capped
    if desired > current and observation.unschedulable > 0:
        limit = Limit.GPU_SHORTAGE
        limit_message = _shortage_message(observation, desired)
        return finish(
            current,
            recommended,
            Reason.GPU_SHORTAGE,
            limit_message,
            panic=panic,
            stable=stable,
            burst=burst,
            limit=limit,
            limit_message=limit_message,
            panic_until=panic_until,
            recs=recommendations,
        )

    per_replica = load / max(current, 1)

    def basis(value: float, rate: demand.Demand | None, window: float) -> str:
        if rate is None:
            return f"signal {value:.3g} over {window:g}s"
        return f"load {value:.3g} over {window:g}s (arrivals {rate.arrivals_per_second:.3g}/s)"

    if desired > current:
        reason = Reason.BURST if panic else Reason.SIGNAL_ABOVE_TARGET
        said = (
            basis(burst_load, burst_demand, policy.panic_window)
            if panic or wanted == want_panic
            else basis(load, stable_demand, policy.stable_window)
        )
        message = (
            f"scale up {current} -> {desired}: {said} asks for {wanted} at {policy.target:g} "
            "per replica"
        )
        if hedge and desired > recommended:
            message += (
                f"; {desired - recommended} more start to race the cold start while "
                f"{standing:.0f} requests wait"
            )
    elif desired < current:
        reason = Reason.SIGNAL_BELOW_TARGET
        message = (
            f"scale down {current} -> {desired}: "
            f"{basis(load, stable_demand, policy.stable_window)} ({per_replica:.3g} per "
            f"replica, target {policy.target:g}) for {policy.scale_down_stabilization:g}s"
        )
    elif warming:
        reason = Reason.WARMING_UP
        message = (
            f"holding {current} replicas: the signal asks for {recommended}, but the autoscaler "
            f"has watched for less than {policy.scale_down_stabilization:g}s"
        )
    elif recommended < current:
        reason = Reason.STABILIZING
        message = (
            f"holding {current} replicas: the signal asks for {recommended}, but not for the "
            f"whole {policy.scale_down_stabilization:g}s scale-down window"
        )
    elif recommended > current:
        reason = Reason.STABILIZING
        message = (
            f"holding {current} replicas: the signal asks for {recommended}, but not for the "
            f"whole {policy.scale_up_stabilization:g}s scale-up window"
        )
    else:
        reason = Reason.WITHIN_TARGET
        message = (
            f"{current} replicas: {basis(load, stable_demand, policy.stable_window)} "
            f"({per_replica:.3g} per replica, target {policy.target:g})"
        )
    if panic and desired == current:
        message += " (panic: no scale-down until the burst has passed)"
    return finish(
        desired,
        recommended,
        reason,
        message,
        panic=panic,
        stable=stable,
        burst=burst,
        limit=limit,
        limit_message=limit_message,
        panic_until=panic_until,
        recs=recommendations,
    )
