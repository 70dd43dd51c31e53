"""Fixtures of the install tests: a control plane of their own, helm, and operator processes.

These tests run the operator as a separate process (`llm-operator run`), the way the
chart runs it, with the credentials of the chart's ServiceAccount, so the cluster
must have no other operator in it: `plane` is a control plane of their own (the
session's in-process operator of the other tests watches the session's cluster, not
this one). `helm` and `kubectl` are the project's own builds (`make tools`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration import cluster, conftest
from tests.support import devcluster

ROOT = conftest.ROOT
CHART = ROOT / "charts" / "llm-operator"


@pytest.fixture(scope="session")
def plane() -> Iterator[cluster.ControlPlane]:
    """A control plane for these tests alone (KEDA and Prometheus Operator CRDs installed)."""
    cfg = cluster.session_config("inst")
    started: cluster.ControlPlane | None = None
    try:
        started = cluster.start_control_plane(cfg)
        yield started
    finally:
        if started is not None:
            started.api_client.close()
        if os.environ.get("LLM_OPERATOR_TEST_KEEP_CLUSTER") == "1":
            print(f"\nkept cluster {cfg.name}: KUBECONFIG={cfg.kubeconfig}")
        else:
            devcluster.down(cfg)


@pytest.fixture(scope="session")
def helm() -> pathlib.Path:
    return conftest.require_tool("helm")


def run(
    args: list[str | pathlib.Path],
    kubeconfig: pathlib.Path | None = None,
    input_text: str | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a tool; fail the test with its output when `check` and it exits non-zero."""
    env = {**os.environ}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    # helm keeps its caches and repository config under these; keep them out of $HOME.
    env.setdefault("HELM_CACHE_HOME", str(ROOT / ".pytest_cache" / "helm" / "cache"))
    env.setdefault("HELM_CONFIG_HOME", str(ROOT / ".pytest_cache" / "helm" / "config"))
    env.setdefault("HELM_DATA_HOME", str(ROOT / ".pytest_cache" / "helm" / "data"))
    out = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        input=input_text,
        check=False,
        timeout=timeout,
    )
    if check and out.returncode != 0:
        command = " ".join(str(a) for a in args)
        pytest.fail(
            f"{command} exited {out.returncode}:\n{out.stdout}\n{out.stderr}", pytrace=False
        )
    return out


def service_account_kubeconfig(
    plane: cluster.ControlPlane,
    namespace: str,
    service_account: str,
    path: pathlib.Path,
    seconds: int = 3600,
) -> pathlib.Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a token from TokenRequest."""
    answer = plane.core.create_namespaced_service_account_token(
        service_account, namespace, {"spec": {"expirationSeconds": seconds}}
    )
    admin = yaml.safe_load(plane.kubeconfig.read_text(encoding="utf-8"))
    context = f"{service_account}@{namespace}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": context, "user": {"token": answer.status.token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": "local", "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    path.chmod(0o600)
    return path


def chart_args(plane: cluster.ControlPlane, namespace: str, deployment: str) -> list[str]:
    """The operator container's arguments in an installed release's Deployment."""
    found = plane.apps.read_namespaced_deployment(deployment, namespace)
    args: list[str] = found.spec.template.spec.containers[0].args
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """`llm-operator` as its own process, with its log in a file.

    `args` are the command's arguments as the chart's Deployment gives them (read them
    with `chart_args`); the process gets the kubeconfig, and its health and metrics
    endpoints move to free ports on 127.0.0.1 (later options win in argparse).
    """

    def __init__(self, kubeconfig: pathlib.Path, log: pathlib.Path, args: list[str]) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.args = [
            sys.executable,
            "-m",
            "llm_operator.cli",
            *args,
            "--kubeconfig",
            str(kubeconfig),
            "--liveness",
            f"http://127.0.0.1:{self.health_port}/healthz",
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(self.metrics_port),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM (kopf stops and the Lease is released), SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def get(self, port: int, path: str) -> tuple[int, str]:
        """GET http://127.0.0.1:<port><path>; (status, body), (0, error) when unreachable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def health(self) -> tuple[int, Any]:
        status, body = self.get(self.health_port, "/healthz")
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def metric(self, name: str, **labels: str) -> float | None:
        """The sum of the samples of `name` whose labels include `labels`; None if unscraped."""
        status, body = self.get(self.metrics_port, "/metrics")
        if status != 200:
            return None
        total = 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total


@contextlib.contextmanager
def operators(*procs: OperatorProcess) -> Iterator[tuple[OperatorProcess, ...]]:
    """Stop every process on the way out, and print their logs' tails on failure."""
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def wait_until(what: str, probe: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(interval)
