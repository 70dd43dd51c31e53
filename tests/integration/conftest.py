"""Fixtures of the integration tier: the real control plane and the operator running in-process."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llm_operator import handlers, runner
from tests.integration import cluster
from tests.support import tools

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "llmoperator.io_llmdeployments.yaml"

control_plane = cluster.control_plane


class Operator:
    """The operator in a thread of the test process, against the test cluster."""

    def __init__(self, plane: cluster.ControlPlane, **overrides: Any) -> None:
        self.plane = plane
        settings: dict[str, Any] = {
            "liveness_endpoint": None,
            "resync_seconds": 3.0,
            "kubeconfig": str(plane.kubeconfig),
            "gateway_image": "ghcr.io/llm-operator/llm-gateway:test",
            # Any free port: agents and test runs share the machine (see metrics_url).
            "metrics_port": 0,
        }
        self.config = runner.RunConfig(**{**settings, **overrides})
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            asyncio.run(runner.run(self.config, stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as exc:  # reported by the test that waits on it
            self.error = exc

    def start(self, wait_ready: bool = True) -> Operator:
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name="llm-operator", daemon=True)
        self._thread.start()
        if wait_ready and not self._ready.wait(60):
            pytest.fail(f"the operator did not start in 60s: {self.error!r}", pytrace=False)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive(), "the operator did not stop within 60s"
            self._thread = None

    @property
    def metrics_url(self) -> str:
        """Where the running operator serves its Prometheus metrics."""
        port = handlers.RUNTIME.metrics_port
        assert port is not None, "the operator serves no metrics"
        return f"http://127.0.0.1:{port}/metrics"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def require_tool(name: str) -> pathlib.Path:
    """The project's own build of a tool (`make tools`); fails with the reason if absent."""
    try:
        return tools.path(name)
    except tools.ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kubectl() -> pathlib.Path:
    """bin/kubectl: built from the same Kubernetes module and version as the API server."""
    return require_tool("kubectl")


@pytest.fixture(scope="session")
def crd_installed(control_plane: cluster.ControlPlane) -> cluster.ControlPlane:
    control_plane.install_crds([CRD_FILE])
    return control_plane


@pytest.fixture(scope="session")
def operator(crd_installed: cluster.ControlPlane) -> Iterator[Operator]:
    handle = Operator(crd_installed).start()
    yield handle
    handle.stop()


@pytest.fixture
def namespace(crd_installed: cluster.ControlPlane) -> Iterator[str]:
    name = crd_installed.create_namespace(
        "llmd",
        labels={
            # Every Pod the operator makes must pass the restricted Pod Security profile.
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    yield name
    crd_installed.delete_namespace(name)
