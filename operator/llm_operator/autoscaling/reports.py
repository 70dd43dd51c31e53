"""The builtin loop's latest word on each LLMDeployment, shared with reconcile and status.

A `Report` is what the loop last read and decided for one LLMDeployment; `REPORTS`
keeps the latest per object in this process. Reconcile reads it so that every pass,
whatever started it, writes the autoscaler's replica count into the Deployment and
its figures into status; `autoscaling.conditions` turns it into the conditions.
"""

from __future__ import annotations

import dataclasses
import threading

from llm_operator.autoscaling import decision


@dataclasses.dataclass(frozen=True)
class Report:
    """One decision of the builtin loop and how its signal was read."""

    decision: decision.Decision
    # Where the signal came from: "prometheus <url>" or "pod metrics endpoints".
    source: str
    # When the signal was last read successfully (RFC 3339), None if never.
    last_read_time: str | None
    # When the loop last changed the replica count (RFC 3339), None if never.
    last_scale_time: str | None
    # Why the last reading failed (CamelCase) and what was seen, when it did.
    read_error: str | None = None
    read_detail: str = ""
    # Waiting requests summed over replicas, when the reading included them.
    queue_depth: float | None = None


class Registry:
    """The latest `Report` per (namespace, name), safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[tuple[str, str], Report] = {}

    def get(self, namespace: str, name: str) -> Report | None:
        with self._lock:
            return self._reports.get((namespace, name))

    def put(self, namespace: str, name: str, report: Report) -> None:
        with self._lock:
            self._reports[(namespace, name)] = report

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._reports.pop((namespace, name), None)

    def keep_only(self, present: set[tuple[str, str]]) -> None:
        with self._lock:
            for key in [key for key in self._reports if key not in present]:
                del self._reports[key]

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()


REPORTS = Registry()
