"""Leader election decisions: the timing rules, what a candidate sees, when it may take over."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator import leader


def lease(version: str, holder: str | None, duration: int = 15) -> dict[str, Any]:
    return {
        "metadata": {"name": "l", "namespace": "ns", "resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration},
    }


@pytest.mark.parametrize(
    ("lease_duration", "renew_deadline", "retry_period"),
    [(15, 15, 2), (15, 20, 2), (15, 10, 10), (15, 10, 0), (10, 5, 6)],
)
def test_timing_refuses_a_deadline_not_shorter_than_the_lease(
    lease_duration: float, renew_deadline: float, retry_period: float
) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        leader.Timing(lease_duration, renew_deadline, retry_period)


def test_the_leader_may_act_until_the_renew_deadline_after_its_last_renewal() -> None:
    timing = leader.Timing(15, 10, 2)
    assert timing.remaining(None, 100.0) == 0
    assert timing.remaining(100.0, 100.0) == 10
    assert timing.remaining(100.0, 109.9) == pytest.approx(0.1)
    assert timing.remaining(100.0, 110.0) == 0
    assert timing.takeover_bound == 19


def test_a_record_keeps_the_time_it_was_first_seen_until_it_changes() -> None:
    first = leader.observe(None, lease("1", "a"), now=10.0)
    assert first == leader.Seen(version="1", holder="a", duration=15.0, since=10.0)
    assert leader.observe(first, lease("1", "a"), now=20.0) is first
    renewed = leader.observe(first, lease("2", "a"), now=21.0)
    assert renewed is not None
    assert renewed.since == 21.0
    assert leader.observe(renewed, None, now=22.0) is None


def test_a_candidate_waits_a_full_lease_after_it_last_saw_the_record_change() -> None:
    seen = leader.observe(None, lease("7", "a", duration=15), now=100.0)
    assert not leader.may_take(seen, "b", now=100.0)
    assert not leader.may_take(seen, "b", now=114.9)
    assert leader.may_take(seen, "b", now=115.0)
    # The holder itself, a missing Lease and a released one (no holder) are free to take.
    assert leader.may_take(seen, "a", now=100.0)
    assert leader.may_take(None, "b", now=100.0)
    assert leader.may_take(leader.observe(None, lease("8", None), now=100.0), "b", now=100.0)


@pytest.mark.parametrize("write_delay", [0.0, 0.3, 1.9])
@pytest.mark.parametrize("poll_offset", [0.0, 0.7, 1.99])
def test_the_old_leader_stops_before_a_candidate_may_take_over(
    write_delay: float, poll_offset: float
) -> None:
    # A renewal is sent at `sent`, written `write_delay` later; the candidate polls every
    # retry period starting `poll_offset` after the write. The leader then never renews
    # again (it is paused or cut off). Its gate closes at sent + renew_deadline; the
    # candidate's first allowed takeover must come strictly later.
    timing = leader.Timing(15, 10, 2)
    sent = 1000.0
    written = sent + write_delay
    seen = None
    takeover = None
    t = written + poll_offset
    while takeover is None:
        seen = leader.observe(seen, lease("42", "a"), now=t)
        if leader.may_take(seen, "b", now=t):
            takeover = t
        t += timing.retry_period
    gate_closes = sent + timing.renew_deadline
    assert timing.remaining(sent, gate_closes) == 0
    assert takeover - gate_closes >= timing.lease_duration - timing.renew_deadline
    assert takeover - written <= timing.takeover_bound
