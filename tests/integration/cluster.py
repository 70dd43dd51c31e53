"""The real local control plane for the integration tier, as a session-scoped pytest fixture.

`control_plane_fixture()` makes a fixture that brings a `tests.support.devcluster`
cluster up once per test session under a unique name (building the binaries
first if the cache lacks them), installs the KEDA and Prometheus Operator CRDs
that `hack/controlplane/build.sh` copied from their Go modules, waits for them to
be Established, yields a `ControlPlane`, and tears the cluster down at the end
of the session. When a component cannot be built or started the fixture fails
with the reason; it never skips. `tests/integration/conftest.py` imports the
ready-made `control_plane` fixture from here.

Set LLM_OPERATOR_TEST_KEEP_CLUSTER=1 to leave the cluster running after the
session (its name and kubeconfig are printed), e.g. to look at a failure.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

from tests.support import devcluster

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIELD_MANAGER = "llm-operator-tests"


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.5,
) -> T:
    """Call `probe` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except ApiException as exc:
            last_error = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{extra}", pytrace=False)
        time.sleep(interval)


@dataclasses.dataclass
class ControlPlane:
    """The running cluster of a test session and clients for it."""

    cluster: devcluster.Cluster
    config: devcluster.ClusterConfig
    api_client: client.ApiClient

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (also exported as KUBECONFIG for the session)."""
        return self.cluster.kubeconfig

    @property
    def server(self) -> str:
        """The API server URL, https://127.0.0.1:<port>."""
        return self.cluster.server

    @property
    def kubernetes_version(self) -> str:
        """The version the binaries were built as, e.g. v1.34.10."""
        return self.cluster.components.kubernetes_version

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    @property
    def dynamic(self) -> dynamic.DynamicClient:
        return dynamic.DynamicClient(self.api_client)

    def new_client(self) -> client.ApiClient:
        """A fresh API client (e.g. for a thread or another event loop)."""
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply one object, whatever its kind."""
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        return self.dynamic.server_side_apply(
            resource, body=obj, field_manager=FIELD_MANAGER, force_conflicts=True
        )

    def apply_file(self, path: Path) -> list[Any]:
        """Server-side apply every document of a YAML file."""
        with path.open() as f:
            return [self.apply(doc) for doc in yaml.safe_load_all(f) if doc]

    def install_crds(self, files: list[Path], timeout: float = 60.0) -> list[str]:
        """Apply CRD manifests and wait until each is Established; return their names."""
        names = []
        for path in files:
            for obj in self.apply_file(path):
                names.append(obj.metadata.name)
        ext = client.ApiextensionsV1Api(self.api_client)

        def established(name: str) -> bool:
            crd = ext.read_custom_resource_definition(name)
            conditions = (crd.status and crd.status.conditions) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        for name in names:
            wait_for(f"CRD {name} Established", lambda name=name: established(name), timeout)
        return names

    def create_namespace(self, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
        """Create a namespace with a unique name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        body = {"metadata": {"name": name, "labels": labels or {}}}
        self.core.create_namespace(body)
        wait_for(
            f"ServiceAccount {name}/default",
            lambda: self.core.read_namespaced_service_account("default", name),
            timeout=60,
        )
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace, not waiting for its finalization."""
        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def component_logs(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure messages."""
        parts = []
        for name in devcluster.COMPONENTS:
            log = self.cluster.state_dir / "logs" / f"{name}.log"
            parts.append(f"--- {name} ({log})\n{devcluster.log_tail(log, lines)}")
        return "\n".join(parts)


def session_config(prefix: str = "it", **overrides: Any) -> devcluster.ClusterConfig:
    """A cluster config with a name unique to this test session."""
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(2)}"
    return devcluster.ClusterConfig(name=name, **overrides)


def start_control_plane(cfg: devcluster.ClusterConfig) -> ControlPlane:
    """Bring the cluster up and install the third-party CRDs; fail loudly on any error."""
    started = time.monotonic()
    try:
        cluster = devcluster.up(cfg)
    except devcluster.ClusterError as exc:
        pytest.fail(
            f"the local control plane (cluster {cfg.name}) could not be built or started:\n{exc}",
            pytrace=False,
        )
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    plane = ControlPlane(cluster=cluster, config=cfg, api_client=api_client)
    crds = cluster.components.crd_files
    if not crds:
        pytest.fail("build.sh copied no KEDA / Prometheus Operator CRDs", pytrace=False)
    names = plane.install_crds(crds)
    logger.info(
        "control plane %s up in %.1fs (%s); CRDs installed: %s",
        cfg.name,
        time.monotonic() - started,
        cluster.server,
        ", ".join(names),
    )
    return plane


def control_plane_fixture(
    prefix: str = "it", **overrides: Any
) -> Callable[..., Iterator[ControlPlane]]:
    """Make a session-scoped fixture yielding a running `ControlPlane`.

    `overrides` are `devcluster.ClusterConfig` fields (nodes, gpus_per_node, ...).
    The fixture sets KUBECONFIG for the session and restores it afterwards.
    """

    @pytest.fixture(scope="session")
    def _control_plane() -> Iterator[ControlPlane]:
        cfg = session_config(prefix, **overrides)
        old_kubeconfig = os.environ.get("KUBECONFIG")
        plane: ControlPlane | None = None
        try:
            plane = start_control_plane(cfg)
            os.environ["KUBECONFIG"] = str(plane.kubeconfig)
            yield plane
        finally:
            if old_kubeconfig is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = old_kubeconfig
            if plane is not None:
                plane.api_client.close()
            if os.environ.get("LLM_OPERATOR_TEST_KEEP_CLUSTER") == "1":
                print(
                    f"\nkept cluster {cfg.name}: KUBECONFIG={cfg.kubeconfig}; stop it with "
                    f"`python -m tests.support.devcluster down --name {cfg.name}`"
                )
            else:
                devcluster.down(cfg)

    return _control_plane


#: The fixture the integration tier uses: `def test_x(control_plane): ...`.
control_plane = control_plane_fixture()
