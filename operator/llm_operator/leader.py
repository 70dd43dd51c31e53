"""Leader election over a coordination.k8s.io Lease, with a renew deadline shorter than the lease.

The timing follows client-go's leader election. The leader renews the Lease every
`retry_period`; when it has not renewed for `renew_deadline` it stops acting (the
write gate `Elector.leading` turns false at once, whatever the renewal request is
doing, and the operator stops). A candidate takes the Lease only after it has seen
the same Lease record, unchanged, for the record's `leaseDurationSeconds`, measured on
its own monotonic clock from when it first saw that record, so the machines' clocks
need not agree. Since a renewal counts from the moment its request was sent and
`renew_deadline < lease_duration`, the old leader has stopped before anyone may take
over: two leaders never overlap, with a margin of `lease_duration - renew_deadline`.
After a leader dies, a standby that was watching takes over within
`lease_duration + 2 * retry_period` (`Timing.takeover_bound`). A leader that stops
normally releases the Lease, so a standby takes over at its next retry. The decisions
(`observe`, `may_take`, `Timing.remaining`) are pure; `Elector` runs them against
`kube.Client`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from llm_operator import kube

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Timing:
    """Lease duration, renew deadline and retry period, in seconds."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period:g} / {self.renew_deadline:g} / {self.lease_duration:g} s"
            )

    @property
    def takeover_bound(self) -> float:
        """Longest time from a leader's death to a watching standby's takeover."""
        return self.lease_duration + 2 * self.retry_period

    def remaining(self, renewed_at: float | None, now: float) -> float:
        """Seconds the leader may still act after its last renewal (sent at `renewed_at`)."""
        if renewed_at is None:
            return 0.0
        return renewed_at + self.renew_deadline - now


@dataclasses.dataclass(frozen=True)
class Seen:
    """A Lease record as a candidate last saw it, and since when (its own clock)."""

    version: str
    holder: str | None
    duration: float
    since: float


def observe(previous: Seen | None, lease: dict[str, Any] | None, now: float) -> Seen | None:
    """What a candidate knows after reading `lease` (None: there is no Lease) at `now`.

    The clock of a record starts when it is first seen; an unchanged record keeps it.
    """
    if lease is None:
        return None
    version = str(lease.get("metadata", {}).get("resourceVersion", ""))
    if previous is not None and previous.version == version:
        return previous
    spec = lease.get("spec") or {}
    return Seen(
        version=version,
        holder=spec.get("holderIdentity") or None,
        duration=float(spec.get("leaseDurationSeconds") or 0),
        since=now,
    )


def may_take(seen: Seen | None, identity: str, now: float) -> bool:
    """True when `identity` may write itself into the Lease as holder at `now`."""
    if seen is None or seen.holder in (None, identity):
        return True
    return now - seen.since >= seen.duration


def _stamp() -> str:
    return kube.timestamp(precise=True)


def _record(
    lease: kube.LeaseSpec, timing: Timing, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """The Lease body that makes `lease.identity` the holder, renewed now."""
    spec = dict((previous or {}).get("spec") or {})
    now = _stamp()
    if spec.get("holderIdentity") != lease.identity:
        spec["acquireTime"] = now
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if previous else 0)
    spec.update(
        {
            "holderIdentity": lease.identity,
            "leaseDurationSeconds": max(1, round(timing.lease_duration)),
            "renewTime": now,
        }
    )
    body: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": lease.name, "namespace": lease.namespace},
        "spec": spec,
    }
    if previous is not None:
        body["metadata"]["resourceVersion"] = previous["metadata"]["resourceVersion"]
    return body


class Elector:
    """Takes, holds and releases one Lease for one process."""

    def __init__(
        self,
        client: kube.Client,
        lease: kube.LeaseSpec,
        timing: Timing,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self.lease = lease
        self.timing = timing
        self._clock = clock
        self._renewed_at: float | None = None
        self._seen: Seen | None = None
        self.lost = False

    def leading(self) -> bool:
        """The write gate: True while the last renewal is younger than the renew deadline."""
        return self.timing.remaining(self._renewed_at, self._clock()) > 0

    def _timeout(self) -> float:
        return self.timing.retry_period

    def try_take(self) -> bool:
        """One attempt to become (or stay) the holder; True when we hold the Lease now."""
        sent = self._clock()
        current = self._client.get_lease(self.lease, timeout=self._timeout())
        self._seen = observe(self._seen, current, sent)
        if current is not None:
            holder = (current.get("spec") or {}).get("holderIdentity")
            if self._renewed_at is not None and holder != self.lease.identity:
                # Someone else holds it (we were paused past the lease): we lost it.
                self._renewed_at = None
                return False
        if not may_take(self._seen, self.lease.identity, sent):
            return False
        body = _record(self.lease, self.timing, current)
        if current is None:
            done = self._client.create_lease(body, timeout=self._timeout())
        else:
            done = self._client.replace_lease(body, timeout=self._timeout())
        if done:
            self._renewed_at = sent
        return done

    async def acquire(self, stop: threading.Event) -> bool:
        """Wait until we hold the Lease (True) or `stop` is set (False)."""
        logger.info(
            "waiting for the leader lease %s/%s as %s",
            self.lease.namespace,
            self.lease.name,
            self.lease.identity,
        )
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.try_take):
                    logger.info("became leader as %s", self.lease.identity)
                    return True
            except Exception as exc:  # the API server may be briefly unreachable
                logger.warning("could not read or take the leader lease: %s", exc)
            await asyncio.sleep(self.timing.retry_period)
        return False

    async def hold(self, stop: threading.Event) -> None:
        """Renew every retry period; on reaching the renew deadline, mark lost and set `stop`."""
        while not stop.is_set():
            remaining = self.timing.remaining(self._renewed_at, self._clock())
            if remaining <= 0:
                self.lost = True
                logger.error(
                    "could not renew the leader lease %s/%s within %gs; stepping down",
                    self.lease.namespace,
                    self.lease.name,
                    self.timing.renew_deadline,
                )
                stop.set()
                return
            await asyncio.sleep(min(self.timing.retry_period, remaining))
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(self.try_take), timeout=self.timing.retry_period
                )
            except Exception as exc:  # counted against the deadline, retried
                logger.warning("leader lease renewal failed: %s", exc)

    async def release(self) -> None:
        """Give the Lease up (a normal stop), so a standby takes over at its next retry."""
        if not self.leading():
            return
        self._renewed_at = None

        def _release() -> None:
            current = self._client.get_lease(self.lease, timeout=self._timeout())
            if current is None:
                return
            spec = current.get("spec") or {}
            if spec.get("holderIdentity") != self.lease.identity:
                return
            spec.update({"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _stamp()})
            current["spec"] = spec
            self._client.replace_lease(current, timeout=self._timeout())

        try:
            await asyncio.to_thread(_release)
            logger.info("released the leader lease %s/%s", self.lease.namespace, self.lease.name)
        except Exception as exc:  # the standby then waits for the lease to run out
            logger.warning("could not release the leader lease: %s", exc)
