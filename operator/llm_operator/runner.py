"""`llm-operator run`: the operator process, with optional Lease-based leader election.

With leader election on, a replica waits until it holds the Lease
`llm-operator-leader` before it starts handling objects, renews it every third of
its duration, and exits (to be restarted as a standby) when it cannot renew, so two
replicas can run with exactly one active.

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

import kopf

from llm_operator import handlers, kube, metrics, pricing
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
    lease_seconds: int = 15
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


async def _hold_lease(client: kube.Client, lease: kube.LeaseSpec, stop: threading.Event) -> None:
    renew_every = max(lease.duration_seconds / 3, 1.0)
    last_ok = asyncio.get_running_loop().time()
    while not stop.is_set():
        await asyncio.sleep(renew_every)
        try:
            held = await asyncio.to_thread(client.try_acquire_lease, lease)
        except Exception:
            logger.exception("lease renewal failed")
            held = False
        now = asyncio.get_running_loop().time()
        if held:
            last_ok = now
        elif now - last_ok > lease.duration_seconds:
            logger.error("lost the leader lease %s; stopping", lease.name)
            stop.set()


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
    )
    handlers.RUNTIME.namespaces = config.namespaces
    handlers.RUNTIME.resync_seconds = config.resync_seconds
    handlers.RUNTIME.kubeconfig = config.kubeconfig
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
    tasks: list[asyncio.Task[None]] = []
    metrics.LEADER.set(0)
    if config.leader_election:
        client = kube.Client.from_environment(config.kubeconfig)
        lease = kube.LeaseSpec(
            name=config.lease_name,
            namespace=config.lease_namespace,
            identity=f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
            duration_seconds=config.lease_seconds,
        )
        logger.info("waiting for the leader lease %s/%s", lease.namespace, lease.name)
        retry = max(config.lease_seconds / 3, 1.0)
        while True:
            if await asyncio.to_thread(client.try_acquire_lease, lease):
                break
            await asyncio.sleep(retry)
        logger.info("became leader as %s", lease.identity)
        tasks.append(asyncio.create_task(_hold_lease(client, lease, stop)))
    metrics.LEADER.set(1)
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
        for task in tasks:
            task.cancel()
