"""The builtin autoscaler's decision in values: its policy, a reading, its memory and its outcome.

`autoscaling.decision` reads a `Policy` (from `spec.autoscaling`), an `Observation` (one
reading of the signal and the Pods) and the `State` it left after the previous reading,
and returns a `Decision` (the count, its `Direction`, its `Reason`, and the `Limit` that
kept it from what the signal asked for) with the next `State`. They live here, apart
from the steps that decide, so that a reader of the steps need not page past them;
`decision` re-exports every name, and the rest of the operator, the tests and the
benchmark keep using them as `decision.Policy` and so on. Frozen dataclasses and
enums; a policy checks its settings and can be read from `spec.autoscaling`.
"""

from __future__ import annotations

import dataclasses
import enum

from llm_operator.api import v1alpha1
from llm_operator.autoscaling import demand


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
    # up to this percentage more of the missing ones (step 6 of `decision`'s docstring).
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
