"""The only module that talks to the Kubernetes API server.

It wraps the untyped `kubernetes` client behind a few typed calls: server-side
apply with the `llm-operator` field manager, listing and deleting owned children,
reading the LLMDeployment, its Deployment, Pods and the nodes' GPU capacity,
writing status through the status subresource, posting Events, and a Lease for
leader election (`leader` decides; this module reads and writes it). Everything is plain
dicts in and out. A client may carry a write gate (`leader.Elector.leading`): while it
is false every write is refused with `errors.NotLeaderError` before it is sent. Every
call is counted in `llm_operator_api_requests_total`, and every failure that is not an
expected answer (a 404 on a get or a delete, a 409 in a lease race) in
`llm_operator_api_errors_total` by HTTP status code.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import urllib3
from kubernetes import dynamic
from kubernetes.client import exceptions as client_exceptions
from kubernetes.dynamic import exceptions as dynamic_exceptions

from llm_operator import errors, metrics
from llm_operator.api import v1alpha1
from llm_operator.builders import children, common

logger = logging.getLogger(__name__)

ApiError = client_exceptions.ApiException


@contextlib.contextmanager
def _call(operation: str, expected: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Count one API call, and its failure unless it raised one of `expected`."""
    metrics.API_REQUESTS.labels(operation).inc()
    try:
        yield
    except expected:
        raise
    except ApiError as exc:
        metrics.API_ERRORS.labels(operation, str(exc.status or "unknown")).inc()
        raise
    except (urllib3.exceptions.HTTPError, OSError):
        metrics.API_ERRORS.labels(operation, "connection").inc()
        raise


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(precise: bool = False) -> str:
    """RFC 3339 UTC time, as Kubernetes writes it: seconds, or microseconds (a MicroTime)."""
    if precise:
        return _now().isoformat(timespec="microseconds").replace("+00:00", "Z")
    return _now().replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server (files may be temporary copies)."""

    server: str
    ca_path: str | None
    insecure: bool
    token: str | None
    scheme: str | None
    certificate_path: str | None
    private_key_path: str | None


def _configuration(kubeconfig: str | None) -> Any:
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    else:
        # The kubernetes package reads $KUBECONFIG once, at import: read it again here.
        kubernetes.config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config",
            client_configuration=configuration,
        )
    return configuration


def credentials(kubeconfig: str | None = None) -> Credentials:
    """In-cluster credentials in a Pod, the kubeconfig's current context otherwise."""
    configuration = _configuration(kubeconfig)
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return Credentials(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=token,
        scheme=scheme,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


_DISCOVERY_DIR: list[str] = []


def _discovery_cache_file() -> str:
    """A discovery cache file of this client alone.

    The kubernetes package's default is one file per API server in the shared temporary
    directory, written without locking: two processes (two operator replicas on one
    machine, or the operator beside a test) corrupt each other's reads of it. Each client
    gets its own file in a directory of this process, removed at exit.
    """
    if not _DISCOVERY_DIR:
        _DISCOVERY_DIR.append(tempfile.mkdtemp(prefix="llm-operator-discovery-"))
        atexit.register(shutil.rmtree, _DISCOVERY_DIR[0], True)
    return os.path.join(_DISCOVERY_DIR[0], f"{uuid.uuid4().hex}.json")


class Client:
    """A connection to one API server."""

    def __init__(
        self,
        api_client: Any,
        write_gate: Callable[[], bool] | None = None,
        read_nodes: bool = True,
    ) -> None:
        self._api_client = api_client
        # False when the operator may not list nodes (the chart's namespaced mode without
        # node reads): GPU capacity is then unknown, and no refused call is made.
        self._read_nodes = read_nodes
        self._dynamic = dynamic.DynamicClient(api_client, cache_file=_discovery_cache_file())
        self._resources: dict[tuple[str, str], Any] = {}
        self._write_gate = write_gate

    @classmethod
    def from_environment(
        cls,
        kubeconfig: str | None = None,
        write_gate: Callable[[], bool] | None = None,
        read_nodes: bool = True,
    ) -> Client:
        """In-cluster credentials when running in a Pod, the kubeconfig otherwise."""
        return cls(kubernetes.client.ApiClient(_configuration(kubeconfig)), write_gate, read_nodes)

    def _check_gate(self) -> None:
        if self._write_gate is not None and not self._write_gate():
            raise errors.NotLeaderError("not the leader (any more): refusing to write")

    def close(self) -> None:
        self._api_client.close()

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self._dynamic.resources.get(
                    api_version=api_version, kind=kind
                )
            except dynamic_exceptions.ResourceNotFoundError as exc:
                # Discovery is cached; look again next time in case the CRD was installed since.
                self._dynamic.resources.invalidate_cache()
                raise errors.KindUnavailableError(f"{api_version} {kind} is not served") from exc
        return self._resources[key]

    # --- children -------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply `obj` as field manager `llm-operator`, taking over conflicts.

        With `dry_run` the API server validates and defaults the object without persisting it.
        """
        if not dry_run:
            self._check_gate()
        resource = self._resource(obj["apiVersion"], obj["kind"])
        with _call("apply"):
            result = resource.server_side_apply(
                body=obj,
                name=obj["metadata"]["name"],
                namespace=obj["metadata"].get("namespace"),
                field_manager=common.FIELD_MANAGER,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            )
        applied: dict[str, Any] = result.to_dict()
        return applied

    def list_owned(
        self, kind: children.ChildKind, namespace: str, owner_name: str, owner_uid: str
    ) -> list[dict[str, Any]]:
        """Objects of `kind` that carry our label and are controlled by the owner."""
        resource = self._resource(kind.api_version, kind.kind)
        with _call("list"):
            result = resource.get(
                namespace=namespace, label_selector=f"{common.LABEL_DEPLOYMENT}={owner_name}"
            )
        owned = []
        for item in result.to_dict().get("items", []):
            refs = item.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs):
                owned.append(item)
        return owned

    def delete(self, kind: children.ChildKind, namespace: str, name: str) -> None:
        """Delete one object; already gone is fine. Dependents go in the background."""
        self._check_gate()
        resource = self._resource(kind.api_version, kind.kind)
        with _call("delete"), contextlib.suppress(dynamic_exceptions.NotFoundError):
            resource.delete(
                name=name, namespace=namespace, body={"propagationPolicy": "Background"}
            )

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        with _call("get"):
            try:
                found: dict[str, Any] = resource.get(name=name, namespace=namespace).to_dict()
            except dynamic_exceptions.NotFoundError:
                return None
        return found

    def find(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object by name through a list (the verb the operator holds on its autoscaler
        kinds), or None when it does not exist."""
        resource = self._resource(api_version, kind)
        with _call("list"):
            result = resource.get(namespace=namespace, field_selector=f"metadata.name={name}")
        items: list[dict[str, Any]] = result.to_dict().get("items", [])
        return items[0] if items else None

    def list_pods(self, namespace: str, owner_name: str) -> list[dict[str, Any]]:
        """Pods of one LLMDeployment."""
        resource = self._resource("v1", "Pod")
        with _call("list"):
            result = resource.get(
                namespace=namespace, label_selector=f"{common.LABEL_DEPLOYMENT}={owner_name}"
            )
        pods: list[dict[str, Any]] = result.to_dict().get("items", [])
        return pods

    def gpu_capacity(self, resource_name: str) -> list[int] | None:
        """Allocatable GPUs of each node, or None when nodes cannot (or may not) be listed."""
        if not self._read_nodes:
            return None
        try:
            resource = self._resource("v1", "Node")
            with _call("list"):
                nodes = resource.get().to_dict().get("items", [])
        except (dynamic_exceptions.ForbiddenError, errors.KindUnavailableError):
            return None
        capacity = []
        for node in nodes:
            allocatable = node.get("status", {}).get("allocatable", {}) or {}
            try:
                capacity.append(int(str(allocatable.get(resource_name, "0"))))
            except ValueError:
                capacity.append(0)
        return capacity

    def free_gpus(
        self, resource_name: str, node_selector: dict[str, str]
    ) -> list[tuple[int, int]] | None:
        """(free, allocatable) GPUs of each node whose labels match `node_selector`: free is
        allocatable minus what Pods bound to it and not ended ask for. None when nodes or
        Pods cannot be listed. For the autoscaler, which adds no more than fits."""
        if not self._read_nodes:
            return None
        try:
            with _call("list"):
                nodes = self._resource("v1", "Node").get().to_dict().get("items", [])
            with _call("list"):
                pods = (
                    self._resource("v1", "Pod")
                    .get(field_selector="status.phase!=Succeeded,status.phase!=Failed")
                    .to_dict()
                    .get("items", [])
                )
        except (dynamic_exceptions.ForbiddenError, errors.KindUnavailableError):
            return None
        used: dict[str, int] = {}
        for pod in pods:
            spec = pod.get("spec") or {}
            node = spec.get("nodeName")
            if not node:
                continue
            for container in spec.get("containers") or []:
                limits = (container.get("resources") or {}).get("limits") or {}
                try:
                    used[node] = used.get(node, 0) + int(str(limits.get(resource_name, "0")))
                except ValueError:
                    continue
        out = []
        for node in nodes:
            labels = (node.get("metadata") or {}).get("labels") or {}
            if any(labels.get(k) != v for k, v in node_selector.items()):
                continue
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            try:
                total = int(str(allocatable.get(resource_name, "0")))
            except ValueError:
                total = 0
            name = (node.get("metadata") or {}).get("name")
            out.append((max(0, total - used.get(str(name), 0)), total))
        return out

    # --- the LLMDeployment ----------------------------------------------------------------

    def _llmd(self) -> Any:
        return self._resource(f"{v1alpha1.API_GROUP}/{v1alpha1.API_VERSION}", v1alpha1.KIND)

    def get_llmd(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(
            f"{v1alpha1.API_GROUP}/{v1alpha1.API_VERSION}", v1alpha1.KIND, namespace, name
        )

    def list_llmds(self, namespace: str | None) -> list[dict[str, Any]]:
        resource = self._llmd()
        with _call("list"):
            items: list[dict[str, Any]] = (
                resource.get(namespace=namespace).to_dict().get("items", [])
            )
        return items

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace the status through the status subresource (a JSON merge patch).

        `status` must be complete: keys set to None are removed.
        """
        self._check_gate()
        resource = self._llmd()
        with _call("patch_status"):
            resource.status.patch(
                name=name,
                namespace=namespace,
                body={"status": status},
                content_type="application/merge-patch+json",
            )

    def post_event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on `obj`; failures are logged, never raised (but the gate's)."""
        self._check_gate()
        meta = obj.get("metadata", {})
        now = timestamp()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
                "namespace": meta.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": common.FIELD_MANAGER},
            "reportingComponent": common.FIELD_MANAGER,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            resource = self._resource("v1", "Event")
            with _call("create_event"):
                resource.create(body=body, namespace=meta.get("namespace"))
        except (ApiError, dynamic_exceptions.DynamicApiError) as exc:
            logger.warning("could not post event %s on %s: %s", reason, meta.get("name"), exc)

    # --- leader election -----------------------------------------------------------------

    def get_lease(self, lease: LeaseSpec, timeout: float) -> dict[str, Any] | None:
        """The Lease, or None when there is none."""
        resource = self._resource("coordination.k8s.io/v1", "Lease")
        try:
            with _call("lease", expected=(dynamic_exceptions.NotFoundError,)):
                found: dict[str, Any] = resource.get(
                    name=lease.name, namespace=lease.namespace, _request_timeout=timeout
                ).to_dict()
        except dynamic_exceptions.NotFoundError:
            return None
        return found

    def create_lease(self, body: dict[str, Any], timeout: float) -> bool:
        """Create the Lease; False when another process created it first."""
        resource = self._resource("coordination.k8s.io/v1", "Lease")
        try:
            with _call("lease", expected=(dynamic_exceptions.ConflictError,)):
                resource.create(
                    body=body, namespace=body["metadata"]["namespace"], _request_timeout=timeout
                )
        except dynamic_exceptions.ConflictError:
            return False
        return True

    def replace_lease(self, body: dict[str, Any], timeout: float) -> bool:
        """Replace the Lease at the resourceVersion in `body`; False when it changed since."""
        resource = self._resource("coordination.k8s.io/v1", "Lease")
        try:
            with _call("lease", expected=(dynamic_exceptions.ConflictError,)):
                resource.replace(
                    body=body, namespace=body["metadata"]["namespace"], _request_timeout=timeout
                )
        except dynamic_exceptions.ConflictError:
            return False
        return True


@dataclasses.dataclass(frozen=True)
class LeaseSpec:
    """Which Lease to hold and as whom."""

    name: str
    namespace: str
    identity: str
