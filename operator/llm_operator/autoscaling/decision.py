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

`decide` reads as these steps: one or two small functions each, called in this order
(the hedge widens step 5's window before it applies; steps 4, 7 and 8 are in
`autoscaling.limits`). The value types (`Policy`, `Observation`, `State`, `Decision`
and their enums) live in `autoscaling.values` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from llm_operator.autoscaling import demand, limits, values

Direction = values.Direction
Reason = values.Reason
Limit = values.Limit
Policy = values.Policy
Observation = values.Observation
State = values.State
Decision = values.Decision
OUTCOMES = values.OUTCOMES

_EPSILON = 1e-9

#: (time, count) pairs: the recommendations held for step 5, or the changes made in the
#: current period (the count added, negative when removed).
_Series = tuple[tuple[float, int], ...]


@dataclasses.dataclass(frozen=True)
class _Kept:
    """Step 1's result: the reading's counts and what is kept of the past at its time."""

    now: float
    current: int
    # The current count within [min, max].
    bounded: int
    started: float
    last_read: float | None
    samples: tuple[demand.Sample, ...]
    completed_read: float | None
    completed_lost: float
    recommendations: _Series
    changes: _Series


@dataclasses.dataclass(frozen=True)
class _Load:
    """Step 2's result: the load over the stable and the panic window, and what each asks for."""

    # The signal's averages (reported in the decision).
    stable: float
    burst: float
    # The demand from arrival rates (None without waiting and completion counts).
    stable_demand: demand.Demand | None
    burst_demand: demand.Demand | None
    # The load the fleet is sized on over each window.
    stable_load: float
    burst_load: float
    # The least waiting through the panic window (0: no queue stands).
    standing: float
    want_stable: int
    want_panic: int


@dataclasses.dataclass(frozen=True)
class _Panic:
    """Step 3's result: whether the decision is in panic, and until when."""

    active: bool
    until: float | None


@dataclasses.dataclass(frozen=True)
class _Window:
    """Step 5's window: a count below `up` rises to it, and one above `down` falls to it."""

    up: int
    down: int


@dataclasses.dataclass(frozen=True)
class _Sized:
    """Steps 2 to 4's results that the decision reports and the state keeps."""

    # None: no fresh reading (step 1 held the count).
    load: _Load | None
    panic: _Panic
    recommended: int
    # The recommendations held for step 5, this one included.
    recommendations: _Series


@dataclasses.dataclass(frozen=True)
class _Verdict:
    """What the decision does: the count, why, and what kept it from the signal's count."""

    desired: int
    reason: Reason
    message: str
    limited: limits.Limited = limits.UNLIMITED


def decide(policy: Policy, state: State, observation: Observation) -> tuple[Decision, State]:
    """One decision from one reading. Pure: the same inputs always give the same outputs."""
    kept = _keep(policy, state, observation)  # 1
    if _stale(policy, kept):
        return _finish(state, observation, kept, *_hold_without_signal(state, kept))
    load = _load(policy, kept, observation)  # 2
    panic = _panic(policy, state, kept, observation, load)  # 3
    wanted = _wanted(policy, kept, load, panic)
    recommended, limited = limits.bound(policy, kept.current, wanted)  # 4
    sized = _Sized(load, panic, recommended, (*kept.recommendations, (kept.now, recommended)))
    if kept.bounded != kept.current:
        return _finish(state, observation, kept, sized, _to_bounds(policy, kept, limited))
    window = _stabilisation_window(policy, kept.now, sized.recommendations, recommended)  # 5
    hedge, window = _hedge(policy, observation, load, recommended, window)  # 6
    desired, warming = _stabilise(policy, kept, window)  # 5, with the hedge
    desired, limited = limits.step_limit(policy, kept.current, kept.changes, desired, limited)  # 7
    desired, limited = limits.gpu_cap(observation, kept.current, desired, limited)  # 8
    held = limits.held_for_gpus(observation, kept.current, desired)
    if held is not None:
        verdict = _Verdict(kept.current, Reason.GPU_SHORTAGE, held.message, held)
        return _finish(state, observation, kept, sized, verdict)
    reason, message = _explain(policy, kept, load, sized, wanted, desired, warming, hedge)
    return _finish(state, observation, kept, sized, _Verdict(desired, reason, message, limited))


def _keep(policy: Policy, state: State, observation: Observation) -> _Kept:
    """Step 1: add the reading (if there is one) and drop what no window needs any more."""
    now = observation.now
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
    return _Kept(
        now=now,
        current=observation.replicas,
        bounded=min(policy.max_replicas, max(policy.min_replicas, observation.replicas)),
        started=state.started if state.started is not None else now,
        last_read=last_read,
        # One reading older than the stable window is kept: the rate over it needs a start.
        samples=tuple(s for s in samples if s.at > now - policy.stable_window - policy.stale_after),
        completed_read=completed_read,
        completed_lost=completed_lost,
        recommendations=tuple(r for r in state.recommendations if r[0] > now - horizon),
        changes=tuple(c for c in state.changes if c[0] > now - policy.period),
    )


def _stale(policy: Policy, kept: _Kept) -> bool:
    """Step 1: no reading for `stale_after` seconds (or none ever)."""
    return kept.last_read is None or kept.now - kept.last_read > policy.stale_after


def _hold_without_signal(state: State, kept: _Kept) -> tuple[_Sized, _Verdict]:
    """Step 1: missing data holds the count (within the bounds), never reads a gap as zero."""
    last_read = kept.last_read
    age = "never read" if last_read is None else f"not read for {kept.now - last_read:.0f}s"
    reason = Reason.NO_SIGNAL if kept.bounded == kept.current else _bounds_reason(kept)
    panic = _Panic(active=False, until=state.panic_until)
    return (
        _Sized(None, panic, kept.bounded, kept.recommendations),
        _Verdict(kept.bounded, reason, f"signal {age}; holding {kept.bounded} replicas"),
    )


def _load(policy: Policy, kept: _Kept, observation: Observation) -> _Load:
    """Step 2: the load over the stable and the panic window, and the replicas each asks for.

    With waiting and completion counts, the concurrency the arrival rate asks for
    stands in for the signal, unless a queue stands (see `_queue_stands`).
    """
    samples, now = kept.samples, kept.now
    stable = _mean(_window(samples, now, policy.stable_window)) or 0.0
    # No reading inside the panic window (a short gap): the latest reading stands for it.
    burst = _mean(_window(samples, now, policy.panic_window)) or (
        samples[-1].signal if samples else stable
    )
    stable_demand = demand.estimate(samples, now, policy.stable_window)
    burst_demand = demand.estimate(samples, now, policy.panic_window)
    stable_load = min(stable, stable_demand.concurrency) if stable_demand else stable
    burst_load = burst_demand.concurrency if burst_demand else burst
    recent = [s for s in samples if s.at > now - policy.panic_window]
    standing = min((s.waiting or 0.0 for s in recent), default=0.0)
    if stable_demand is not None and _queue_stands(policy, kept, observation, standing):
        stable_load, burst_load = max(stable_load, stable), max(burst_load, burst)
    return _Load(
        stable=stable,
        burst=burst,
        stable_demand=stable_demand,
        burst_demand=burst_demand,
        stable_load=stable_load,
        burst_load=burst_load,
        standing=standing,
        want_stable=_replicas_for(stable_load, policy.target),
        want_panic=_replicas_for(burst_load, policy.target),
    )


def _queue_stands(policy: Policy, kept: _Kept, observation: Observation, standing: float) -> bool:
    """Step 2: a queue stands through the panic window, does not shrink, and nothing drains it.

    Such a queue is demand after all (clients that wait for their answers before they
    send more keep a queue that no arrival rate shows), so the signal counts.
    """
    queue = [
        s.waiting for s in kept.samples if s.at > kept.now - policy.stable_window and s.waiting
    ]
    return (
        standing > 0 and observation.ready >= kept.current and bool(queue) and queue[-1] >= queue[0]
    )


def _panic(
    policy: Policy, state: State, kept: _Kept, observation: Observation, load: _Load
) -> _Panic:
    """Step 3: enter panic when the panic window asks for `panic_threshold` times the Ready.

    From arrival rates, a panic also needs a queue standing through the panic window:
    ten seconds of arrivals are noisy, and a burst the Ready replicas absorb is none.
    Panic lasts a whole stable window after the last time it was entered.
    """
    until = state.panic_until
    bursting = load.burst_demand is None or load.standing > 0
    if (
        bursting
        and load.want_panic >= policy.panic_threshold * max(observation.ready, 1)
        and load.want_panic > kept.current
    ):
        until = kept.now + policy.stable_window
    active = until is not None and kept.now < until
    return _Panic(active=active, until=until if active else None)


def _wanted(policy: Policy, kept: _Kept, load: _Load, panic: _Panic) -> int:
    """Step 3: the count the load asks for, in panic or out of it, before the bounds."""
    now, current = kept.now, kept.current
    if panic.active:
        # Nothing the panic asked for is given up (with arrival rates, what it asked for,
        # not the count: a hedge goes when it is no longer needed).
        floor = (
            _latest_max(kept.recommendations, now - policy.stable_window, current)
            if load.burst_demand is not None
            else current
        )
        return max(load.want_panic, floor)
    wanted = load.want_stable
    if load.burst_demand is not None and load.standing > 0:
        # A queue stands and the arrivals of the panic window ask for more: that is
        # evidence enough to start replicas now, a cold start before they serve.
        wanted = max(wanted, load.want_panic)
    if wanted < current:
        # Hysteresis: give a replica up only if the load fits the rest with a margin, so a
        # signal hovering at a boundary does not buy a cold start every few minutes. It
        # keeps what the load asked for, not replicas beyond that (a hedge now Ready).
        asked = _latest_max(kept.recommendations, now - policy.scale_down_stabilization, current)
        margin = _replicas_for(load.stable_load, policy.target * (1 - policy.tolerance))
        wanted = max(wanted, min(current, asked, margin))
    return wanted


def _to_bounds(policy: Policy, kept: _Kept, limited: limits.Limited) -> _Verdict:
    """Step 4: a count outside the bounds (the spec was edited under us) goes straight to them."""
    return _Verdict(
        kept.bounded,
        _bounds_reason(kept),
        f"{kept.current} replicas are outside [{policy.min_replicas}, {policy.max_replicas}]",
        limited,
    )


def _bounds_reason(kept: _Kept) -> Reason:
    """The reason for a count held or set at the bounds it was outside of."""
    if kept.current < kept.bounded:
        return Reason.BELOW_MIN_REPLICAS
    return Reason.ABOVE_MAX_REPLICAS


def _stabilisation_window(
    policy: Policy, now: float, recommendations: _Series, recommended: int
) -> _Window:
    """Step 5: the lowest recommendation of the scale-up window, the highest of the scale-down."""
    up = [r for t, r in recommendations if t > now - policy.scale_up_stabilization]
    down = [r for t, r in recommendations if t > now - policy.scale_down_stabilization]
    return _Window(
        up=min(up) if up else recommended,
        down=max(down) if down else recommended,
    )


def _hedge(
    policy: Policy, observation: Observation, load: _Load, recommended: int, window: _Window
) -> tuple[int | None, _Window]:
    """Step 6: the replicas started to race the cold start (None: no hedge), and the window.

    While requests wait and fewer replicas are Ready than recommended, start
    `hedge_percent` more of the missing ones. Whichever start first serve; the rest,
    still starting (a Deployment removes those first), go as soon as enough are Ready,
    since the hedge stays out of the recommendations held for the scale-down window. It
    spends GPUs that are free (step 8 caps it at what fits).
    """
    missing = recommended - observation.ready
    if load.burst_demand is not None and load.standing > 0 and missing > 0:
        hedge = math.ceil(missing * policy.hedge_percent / 100)
        hedged = min(policy.max_replicas, recommended + hedge)
        return hedge, _Window(up=max(window.up, hedged), down=max(window.down, hedged))
    return None, window


def _stabilise(policy: Policy, kept: _Kept, window: _Window) -> tuple[int, bool]:
    """Step 5: the count within the window, and whether a young autoscaler holds a scale-down."""
    desired = min(max(kept.current, window.up), window.down)
    warming = desired < kept.current and kept.now - kept.started < policy.scale_down_stabilization
    return (kept.current if warming else desired), warming


def _explain(
    policy: Policy,
    kept: _Kept,
    load: _Load,
    sized: _Sized,
    wanted: int,
    desired: int,
    warming: bool,
    hedge: int | None,
) -> tuple[Reason, str]:
    """The reason and the sentence for a decision the steps ran through to the end."""
    current, recommended, panic = kept.current, sized.recommended, sized.panic
    per_replica = load.stable_load / max(current, 1)
    stable_basis = _basis(load.stable_load, load.stable_demand, policy.stable_window)
    if desired > current:
        reason = Reason.BURST if panic.active else Reason.SIGNAL_ABOVE_TARGET
        said = (
            _basis(load.burst_load, load.burst_demand, policy.panic_window)
            if panic.active or wanted == load.want_panic
            else stable_basis
        )
        message = (
            f"scale up {current} -> {desired}: {said} asks for {wanted} at {policy.target:g} "
            "per replica"
        )
        if hedge and desired > recommended:
            message += (
                f"; {desired - recommended} more start to race the cold start while "
                f"{load.standing:.0f} requests wait"
            )
    elif desired < current:
        reason = Reason.SIGNAL_BELOW_TARGET
        message = (
            f"scale down {current} -> {desired}: {stable_basis} ({per_replica:.3g} per "
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
            f"{current} replicas: {stable_basis} "
            f"({per_replica:.3g} per replica, target {policy.target:g})"
        )
    if panic.active and desired == current:
        message += " (panic: no scale-down until the burst has passed)"
    return reason, message


def _basis(value: float, rate: demand.Demand | None, window: float) -> str:
    """What a message says the count is based on: the signal, or the load from arrivals."""
    if rate is None:
        return f"signal {value:.3g} over {window:g}s"
    return f"load {value:.3g} over {window:g}s (arrivals {rate.arrivals_per_second:.3g}/s)"


def _finish(
    state: State, observation: Observation, kept: _Kept, sized: _Sized, verdict: _Verdict
) -> tuple[Decision, State]:
    """The decision a verdict makes, and the state it leaves for the next reading."""
    current, now, desired, load = kept.current, kept.now, verdict.desired, sized.load
    direction = (
        Direction.UP
        if desired > current
        else Direction.DOWN
        if desired < current
        else Direction.NONE
    )
    decision = Decision(
        desired=desired,
        current=current,
        recommended=sized.recommended,
        direction=direction,
        reason=verdict.reason,
        message=verdict.message,
        panic=sized.panic.active,
        fresh=load is not None,
        signal=observation.signal,
        stable_average=load.stable if load else None,
        panic_average=load.burst if load else None,
        limit=verdict.limited.limit,
        limit_message=verdict.limited.message,
    )
    changed = desired != current
    next_state = State(
        started=kept.started,
        samples=kept.samples,
        recommendations=sized.recommendations,
        changes=(*kept.changes, (now, desired - current)) if changed else kept.changes,
        panic_until=sized.panic.until,
        last_read=kept.last_read,
        last_scale=now if changed else state.last_scale,
        completed_read=kept.completed_read,
        completed_lost=kept.completed_lost,
    )
    return decision, next_state


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _replicas_for(value: float, target: float) -> int:
    return max(0, math.ceil(value / target - _EPSILON))


def _window(samples: tuple[demand.Sample, ...], now: float, seconds: float) -> list[float]:
    return [s.signal for s in samples if s.at > now - seconds]


def _latest_max(series: _Series, since: float, default: int) -> int:
    """The highest count of `series` after `since` (`default` if there is none)."""
    return max((r for t, r in series if t > since), default=default)
