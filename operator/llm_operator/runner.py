"""`llm-operator run`: the operator process, with optional Lease-based leader election.

With leader election on (`leader`), a replica waits as a standby until it holds the
Lease (`llm-operator-leader` unless named), answering kopf's liveness URL itself
(`standby`) meanwhile; the leader renews every retry period, refuses every write once
it has not renewed for the renew deadline (shorter than the lease, so two leaders
never overlap), stops, and `run` raises `errors.LeadershipLostError` (the command exits 1 and
the Pod restarts as a standby). A normal stop releases the Lease.

The process serves its metrics (`metrics.REGISTRY`) on `metrics_port` (8081, path
/metrics) from the start, standby replicas included (`llm_operator_leader` says which
one is active); kopf's liveness endpoint stays on :8080/healthz.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pathlib
import socket
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import kopf

from llm_operator import errors, handlers, kube, leader, metrics, pricing, standby
from llm_operator.builders import common

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of one operator process."""

    namespaces: tuple[str, ...] = ()
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    leader_election: bool = False
    lease_name: str = "llm-operator-leader"
    lease_namespace: str = "default"
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
    # False: never list nodes (the RBAC grants no node reads).
    read_nodes: bool = True
    # The installation's default guardrail policy, validated (`guardrail_defaults.load`).
    guardrail_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resync_seconds: float = 30.0
    gateway_image: str = common.DEFAULT_GATEWAY_IMAGE
    runbook_url: str = common.DEFAULT_RUNBOOK_URL
    kubeconfig: str | None = None
    # None: no metrics server; 0: any free port (see `handlers.RUNTIME.metrics_port`).
    metrics_port: int | None = metrics.DEFAULT_PORT
    metrics_host: str = metrics.DEFAULT_HOST
    # None: the shipped placeholder table.
    gpu_prices: pathlib.Path | None = None
    # Where the builtin autoscaler reads its signal when a spec names no Prometheus
    # ("": the pods' own metrics endpoints).
    prometheus_url: str = ""


async def run(
    config: RunConfig,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run the operator until `stop_flag` is set (or until the lease is lost).

    `ready_flag` is set once kopf has started its watches.
    """
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig
    handlers.RUNTIME.options = common.Options(
        gateway_image=config.gateway_image,
        runbook_url=config.runbook_url,
        prometheus_url=config.prometheus_url,
        guardrail_defaults=dict(config.guardrail_defaults),
    )
    handlers.RUNTIME.namespaces = config.namespaces
    handlers.RUNTIME.resync_seconds = config.resync_seconds
    handlers.RUNTIME.kubeconfig = config.kubeconfig
    handlers.RUNTIME.read_nodes = config.read_nodes
    metrics.set_prices(
        pricing.load(config.gpu_prices) if config.gpu_prices else pricing.default_table()
    )
    server = None
    if config.metrics_port is not None:
        server = metrics.serve(config.metrics_host, config.metrics_port)
        handlers.RUNTIME.metrics_port = server.port
        logger.info("serving metrics on %s:%d%s", config.metrics_host, server.port, metrics.PATH)
    try:
        await _run_operator(config, stop_flag, ready_flag)
    finally:
        metrics.LEADER.set(0)
        if server is not None:
            server.close()
            handlers.RUNTIME.metrics_port = None


async def _run_operator(
    config: RunConfig,
    stop_flag: threading.Event | None,
    ready_flag: threading.Event | None,
) -> None:
    stop = stop_flag or threading.Event()
    metrics.LEADER.set(0)
    elector: leader.Elector | None = None
    hold: asyncio.Task[None] | None = None
    if config.leader_election:
        timing = leader.Timing(
            lease_duration=config.lease_seconds,
            renew_deadline=config.renew_deadline_seconds,
            retry_period=config.retry_period_seconds,
        )
        lease = kube.LeaseSpec(
            name=config.lease_name,
            namespace=config.lease_namespace,
            identity=f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
        )
        elector = leader.Elector(kube.Client.from_environment(config.kubeconfig), lease, timing)
        async with standby.serving(config.liveness_endpoint):
            if not await elector.acquire(stop):
                return
        handlers.RUNTIME.write_gate = elector.leading
        hold = asyncio.create_task(elector.hold(stop))
    metrics.LEADER.set(1)
    handlers.RUNTIME.stop_flag = stop
    try:
        await kopf.operator(
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            liveness_endpoint=config.liveness_endpoint,
            standalone=True,
            stop_flag=stop,
            ready_flag=ready_flag,
        )
    finally:
        # kopf waits for a threading.Event stop flag in a thread of the default executor;
        # when it stopped for another reason (SIGTERM, SIGINT) that thread would keep
        # asyncio.run from returning, and the process from exiting, until SIGKILL.
        # (handlers.stop raises it earlier, on kopf's cleanup; this covers a failed start.)
        stop.set()
        handlers.RUNTIME.stop_flag = None
        metrics.LEADER.set(0)
        if hold is not None:
            hold.cancel()
        handlers.RUNTIME.write_gate = None
    if elector is not None:
        if elector.lost:
            raise errors.LeadershipLostError(f"lost the leader lease {config.lease_name}")
        await elector.release()
