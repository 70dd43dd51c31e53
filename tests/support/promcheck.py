"""Runs queries through a real Prometheus and says which fail: unparsable, empty, or unknown.

A query fails when Prometheus refuses it (it does not parse, or evaluating it fails),
when it returns no series (`must_return` queries), or when it names a metric no
exporter emits, that is, one Prometheus holds no series of; the last catches a query
hidden behind `or vector(0)` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from tests.support import dashboard_queries, prometheus


@dataclasses.dataclass(frozen=True)
class Checked:
    """What one query gave."""

    where: str
    expr: str
    series: int
    error: str | None
    unknown: tuple[str, ...]
    must_return: bool

    @property
    def ok(self) -> bool:
        empty = self.must_return and self.series == 0
        return self.error is None and not self.unknown and not empty

    def __str__(self) -> str:
        problems = []
        if self.error:
            problems.append(self.error)
        if self.unknown:
            problems.append(f"no exporter emits {', '.join(self.unknown)}")
        if self.must_return and self.series == 0 and not self.error:
            problems.append("no data")
        return f"{self.where}: {'; '.join(problems) or 'ok'}: {self.expr}"


def check(
    server: prometheus.Prometheus,
    queries: Iterable[tuple[str, str, bool]],
    at: float | None = None,
    span: tuple[float, float, float] | None = None,
) -> list[Checked]:
    """Run each (where, expr, must_return) query at time `at` (now by default), or over
    `span` (start, end, step) with a range query: an annotation marks events, so it has
    data somewhere in the run rather than at its last instant."""
    known = server.metric_names()
    out = []
    for where, expr, must_return in queries:
        unknown = tuple(sorted(dashboard_queries.metric_names(expr) - known))
        try:
            if span is None:
                series = len(server.query(expr, at))
            else:
                series = len(server.query_range(expr, *span))
            error = None
        except prometheus.QueryError as exc:
            series, error = 0, str(exc)
        out.append(Checked(where, expr, series, error, unknown, must_return))
    return out
