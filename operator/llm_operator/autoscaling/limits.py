"""What keeps the builtin autoscaler's count from the one the signal asks for. Pure.

Steps 4, 7 and 8 of `autoscaling.decision`: the [min, max] bounds, the step limit
per period, and the cap at what the free GPUs hold (with the sentence for a count
held while replicas are Pending for lack of GPUs). Each takes the count so far and
returns the count it allows with a `Limited`: the `Limit` that held (condition
ScalingLimited) and its sentence, or the one it was given when it held nothing.
"""

from __future__ import annotations

import dataclasses
import math

from llm_operator.autoscaling import values

#: (time, replicas added) for each change made in the current period.
Changes = tuple[tuple[float, int], ...]


@dataclasses.dataclass(frozen=True)
class Limited:
    """What kept the decision from the count the signal asks for, and its sentence."""

    limit: values.Limit | None = None
    message: str = ""


UNLIMITED = Limited()


def bound(policy: values.Policy, current: int, wanted: int) -> tuple[int, Limited]:
    """Step 4: clamp to [min, max], saying which bound held when the signal asks past it."""
    recommended = min(policy.max_replicas, max(policy.min_replicas, wanted))
    if wanted > policy.max_replicas:
        return recommended, Limited(
            values.Limit.AT_MAX_REPLICAS,
            f"the signal asks for {wanted} replicas; maxReplicas is {policy.max_replicas}",
        )
    if wanted < policy.min_replicas and current <= policy.min_replicas:
        return recommended, Limited(
            values.Limit.AT_MIN_REPLICAS,
            f"the signal asks for {wanted} replicas; minReplicas is {policy.min_replicas}",
        )
    return recommended, UNLIMITED


def step_limit(
    policy: values.Policy, current: int, changes: Changes, desired: int, limited: Limited
) -> tuple[int, Limited]:
    """Step 7: cap the change per period, from the count at the start of the period."""
    period_start = current - sum(delta for _, delta in changes)
    if desired > current:
        ceiling = period_start + max(
            policy.up_step, math.ceil(period_start * policy.up_step_percent / 100)
        )
        if desired > ceiling:
            return max(current, ceiling), Limited(
                values.Limit.SCALE_UP_STEP,
                f"wants {desired} replicas; at most {ceiling} in this {policy.period:g}s "
                f"period (scaleUpStep {policy.up_step}, {policy.up_step_percent}%)",
            )
    elif desired < current:
        floor = period_start - max(
            policy.down_step, math.floor(period_start * policy.down_step_percent / 100)
        )
        if desired < floor:
            return min(current, floor), Limited(
                values.Limit.SCALE_DOWN_STEP,
                f"wants {desired} replicas; at least {floor} in this {policy.period:g}s "
                f"period (scaleDownStep {policy.down_step}, {policy.down_step_percent}%)",
            )
    return desired, limited


def gpu_cap(
    observation: values.Observation, current: int, desired: int, limited: Limited
) -> tuple[int, Limited]:
    """Step 8: add no more Pods than the free GPUs hold, plus one Pending to ask for a node."""
    fits = observation.fits
    if (
        desired > current
        and observation.unschedulable == 0
        and fits is not None
        and desired > current + fits + 1
    ):
        capped = current + fits + 1
        each = (
            f" (each needs {observation.gpus_per_replica})" if observation.gpus_per_replica else ""
        )
        return capped, Limited(
            values.Limit.GPU_SHORTAGE,
            f"wants {desired} replicas; adds {capped - current}: the free GPUs hold {fits} more"
            f"{each}, and one more Pending asks for a node",
        )
    return desired, limited


def held_for_gpus(observation: values.Observation, current: int, desired: int) -> Limited | None:
    """Step 8: hold the count while earlier replicas are Pending for lack of GPUs (None: not held).

    More Pods would only wait beside them; scale-down is not held.
    """
    if desired > current and observation.unschedulable > 0:
        return Limited(values.Limit.GPU_SHORTAGE, _shortage_message(observation, desired))
    return None


def _shortage_message(observation: values.Observation, wanted: int) -> str:
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
