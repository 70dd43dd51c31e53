"""A load generator that plays the Service in front of an LLMDeployment's replicas.

`LoadGenerator(replicas, namespace, name, concurrency=...)` runs `concurrency` clients
in a thread of its own (closed loop: each sends its next request when the last one
is answered), each request bounded (`max_tokens`, a short prompt, a timeout) and
sent to the Ready replicas' gateways in turn, as a Service spreads connections.
While no replica is Ready a client's request waits in the generator, as it would
in a router or ingress in front of a scaled-to-zero model: that number is exported
as `harness_service_pending_requests{namespace, llmdeployment}` on the generator's
own metrics port (`metrics_address`), which `register(prometheus)` adds as a scrape
target (`component="service"`): a signal that exists while no Pod does, the kind an
`activationQuery` wakes a deployment from zero with. `traffic` (a `traffic.Traffic`)
sets the mix of requests; `set_concurrency` changes the load while it runs; `stats`
counts what was sent, answered (2xx), refused (4xx: a guardrail's block) and failed
(5xx, no answer), and the answers by HTTP status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import threading
from collections.abc import Callable

import aiohttp
import prometheus_client

from tests.support import prometheus as prometheus_module
from tests.support.loadharness import traffic as traffic_module

logger = logging.getLogger(__name__)

PENDING_METRIC = "harness_service_pending_requests"


@dataclasses.dataclass
class Stats:
    """What the generator did so far."""

    sent: int = 0
    answered: int = 0
    refused: int = 0
    failed: int = 0
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)

    def count(self, status: int | None) -> None:
        """Count one request's outcome: its HTTP status, or None when no answer came."""
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if status is not None and 200 <= status < 300:
            self.answered += 1
        elif status is not None and 400 <= status < 500:
            self.refused += 1
        else:
            self.failed += 1


class LoadGenerator:
    """Closed-loop clients spread over the Ready replicas of one LLMDeployment."""

    def __init__(
        self,
        endpoints: Callable[[], list[str]],
        namespace: str,
        name: str,
        concurrency: int = 8,
        max_tokens: int = 16,
        request_timeout: float = 60.0,
        traffic: traffic_module.Traffic | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._traffic = traffic or traffic_module.Traffic()
        self.namespace = namespace
        self.name = name
        self._concurrency = concurrency
        self._max_tokens = max_tokens
        self._timeout = request_timeout
        self.stats = Stats()
        self._pending = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = itertools.count()
        self._registry = prometheus_client.CollectorRegistry()
        gauge = prometheus_client.Gauge(
            PENDING_METRIC,
            "Requests the load generator (playing the Service) holds because no replica is "
            "Ready to take them.",
            ["namespace", "llmdeployment"],
            registry=self._registry,
        )
        gauge.labels(namespace, name).set_function(lambda: self._pending)
        self._server, self._server_thread = prometheus_client.start_http_server(
            0, addr="127.0.0.1", registry=self._registry
        )
        self.metrics_address = f"127.0.0.1:{self._server.server_port}"

    def register(self, prometheus: prometheus_module.Prometheus) -> None:
        """Let Prometheus scrape the pending-requests gauge."""
        prometheus.set_targets(
            f"loadgen.{self.namespace}.{self.name}",
            [
                prometheus_module.Target(
                    self.metrics_address,
                    "/metrics",
                    {
                        "namespace": self.namespace,
                        "llmdeployment": self.name,
                        "component": "service",
                    },
                )
            ],
        )

    @property
    def pending(self) -> int:
        return self._pending

    def set_concurrency(self, concurrency: int) -> None:
        """Change the number of clients; takes effect at each client's next request."""
        self._concurrency = max(0, concurrency)

    def start(self) -> LoadGenerator:
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="load-harness-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._timeout + 10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._server.shutdown()
        self._server.server_close()

    def _main(self) -> None:
        asyncio.run(self._clients())

    async def _clients(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            workers: list[asyncio.Task[None]] = []
            while not self._stop.is_set():
                while len(workers) < self._concurrency:
                    workers.append(asyncio.create_task(self._client(session, len(workers))))
                while len(workers) > self._concurrency:
                    workers.pop().cancel()
                await asyncio.sleep(0.2)
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        rng = random.Random(f"{self.namespace}/{self.name}/{index}")  # noqa: S311 - a load mix
        while True:
            endpoints = self._endpoints()
            if not endpoints:
                self._pending += 1
                try:
                    while not endpoints:
                        await asyncio.sleep(0.2)
                        endpoints = self._endpoints()
                finally:
                    self._pending -= 1
            url = endpoints[next(self._turn) % len(endpoints)]
            path, body = self._traffic.request(rng, self.name, index, self._max_tokens)
            self.stats.sent += 1
            status: int | None
            try:
                async with session.post(f"{url}{path}", json=body) as answer:
                    await answer.read()
                    status = answer.status
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError):
                status = None
            self.stats.count(status)
            if status is None or status >= 500:
                await asyncio.sleep(0.2)
