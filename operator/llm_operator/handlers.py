"""kopf handlers: every trigger funnels into one idempotent `reconcile.reconcile` pass.

Triggers are create, update and resume of an LLMDeployment, any event of a
Deployment we own (so readiness shows up in status promptly), and a periodic
resync loop that undoes drift, such as a Service deleted by hand. The resync is a
plain background task rather than a kopf timer, because kopf timers put a
finalizer on every object and nothing outside the cluster needs cleaning up.
kopf keeps its own bookkeeping in annotations under the `llmoperator.io` prefix.
The builtin autoscaler's loop (`autoscaling.loop`) starts and stops with kopf too, so
it runs only in the replica that holds the leader Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import kopf

from llm_operator import errors, kube, metrics, reconcile
from llm_operator.api import v1alpha1
from llm_operator.autoscaling import loop, reports
from llm_operator.builders import common

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Runtime:
    """Process-wide state of the running operator, set before kopf starts."""

    options: common.Options = dataclasses.field(default_factory=common.Options)
    namespaces: tuple[str, ...] = ()
    resync_seconds: float = 30.0
    kubeconfig: str | None = None
    client: kube.Client | None = None
    # The port the metrics server listens on, once it does.
    metrics_port: int | None = None
    # With leader election: True while this process may write (`leader.Elector.leading`).
    write_gate: Callable[[], bool] | None = None
    # False: never list nodes (no permission to); GPU capacity is then unknown.
    read_nodes: bool = True
    # The stop flag the run passed to kopf (raised on kopf's cleanup).
    stop_flag: threading.Event | None = None
    resync_task: asyncio.Task[None] | None = None
    # The builtin autoscaler's loop (runs with kopf, so only in the leader).
    autoscaler_task: asyncio.Task[None] | None = None


RUNTIME = Runtime()


def _may_write() -> bool:
    return RUNTIME.write_gate is None or RUNTIME.write_gate()


def _client() -> kube.Client:
    if RUNTIME.client is None:
        RUNTIME.client = kube.Client.from_environment(
            RUNTIME.kubeconfig, write_gate=_may_write, read_nodes=RUNTIME.read_nodes
        )
    return RUNTIME.client


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Credentials for kopf's own API calls: the same source as our client's."""
    creds = kube.credentials(RUNTIME.kubeconfig)
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        insecure=creds.insecure,
        scheme=creds.scheme,
        token=creds.token,
        certificate_path=creds.certificate_path,
        private_key_path=creds.private_key_path,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf settings: our annotation prefix, no kopf finalizer, quiet event posting."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=v1alpha1.API_GROUP
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=v1alpha1.API_GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{v1alpha1.API_GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8
    # Watching listed namespaces needs no cluster-wide reads: kopf then neither lists
    # namespaces nor watches CRDs (the namespaced RBAC of the chart grants neither).
    settings.scanning.disabled = bool(RUNTIME.namespaces)
    RUNTIME.resync_task = asyncio.create_task(_resync_loop())
    autoscaler = loop.Loop(_client, lambda: RUNTIME.options, RUNTIME.namespaces)
    RUNTIME.autoscaler_task = asyncio.create_task(autoscaler.run())


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    """Stop the resync loop and the autoscaler, close the API client, raise the stop flag.

    kopf waits for a threading.Event stop flag in a thread; when it stops for another
    reason (SIGTERM) it would otherwise wait 5 s for that waiter, then leave the thread
    to block the process's exit.
    """
    if RUNTIME.stop_flag is not None:
        RUNTIME.stop_flag.set()
    for task in (RUNTIME.resync_task, RUNTIME.autoscaler_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    RUNTIME.resync_task = RUNTIME.autoscaler_task = None
    # A new leader starts from the replica counts in status, not from this process's memory.
    reports.REPORTS.clear()
    if RUNTIME.client is not None:
        RUNTIME.client.close()
        RUNTIME.client = None


def _run(body: dict[str, Any], log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    try:
        outcome = reconcile.reconcile(_client(), body, RUNTIME.options)
    except errors.InvalidSpecError as exc:
        raise kopf.PermanentError(f"{exc.reason}: {exc}") from exc
    if outcome.changed_status:
        log.info("status: %s %s", outcome.status.get("phase"), outcome.status.get("ready"))


@kopf.on.resume(v1alpha1.API_GROUP, v1alpha1.API_VERSION, v1alpha1.PLURAL)
@kopf.on.create(v1alpha1.API_GROUP, v1alpha1.API_VERSION, v1alpha1.PLURAL)
@kopf.on.update(v1alpha1.API_GROUP, v1alpha1.API_VERSION, v1alpha1.PLURAL)
def on_change(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Reconcile on create, on every spec change and when the operator starts."""
    _run(dict(body), logger)


@kopf.on.event("apps", "v1", "deployments", labels={common.LABEL_DEPLOYMENT: kopf.PRESENT})
def on_deployment_event(body: kopf.Body, **_: Any) -> None:
    """Refresh the owner's status when its Deployment changes (or is deleted)."""
    refs = body.get("metadata", {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("kind") != v1alpha1.KIND or not ref.get("controller"):
            continue
        namespace = body["metadata"]["namespace"]
        owner = _client().get_llmd(namespace, ref["name"])
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return
        try:
            reconcile.reconcile(_client(), owner, RUNTIME.options, trigger="deployment_event")
        except errors.InvalidSpecError:
            return


async def _resync_loop() -> None:
    """Reconcile every LLMDeployment every `resync_seconds`, forever."""
    while True:
        await asyncio.sleep(RUNTIME.resync_seconds)
        try:
            await asyncio.to_thread(resync_once)
        except Exception:
            logger.exception("resync pass failed; retrying in %ss", RUNTIME.resync_seconds)


def resync_once() -> int:
    """One resync pass over all watched namespaces; returns how many objects were visited."""
    client = _client()
    namespaces: tuple[str | None, ...] = RUNTIME.namespaces or (None,)
    visited = 0
    present: list[tuple[str, str]] = []
    for namespace in namespaces:
        for obj in client.list_llmds(namespace):
            visited += 1
            present.append((obj["metadata"]["namespace"], obj["metadata"]["name"]))
            try:
                reconcile.reconcile(client, obj, RUNTIME.options, trigger="resync")
            except errors.InvalidSpecError:
                continue
            except Exception:
                logger.exception(
                    "resync of %s/%s failed",
                    obj["metadata"].get("namespace"),
                    obj["metadata"].get("name"),
                )
    # Objects deleted since the last pass (a delete runs no handler: there is no finalizer).
    metrics.FLEET.keep_only(present)
    return visited
