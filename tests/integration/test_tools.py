"""The tools `make tools` builds: each reports its pinned version, and bin/ links to the cache.

kubectl must be the API server's own Kubernetes version (client and server agree
through a real `kubectl version` call), helm the pinned v4, Prometheus and promtool
the pinned 3.x release; the links in bin/ are what the demo and the docs run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration import cluster, conftest
from tests.support import tools

pytestmark = pytest.mark.integration


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert out.returncode == 0, f"{args} failed: {out.stderr}"
    return out.stdout + out.stderr


def test_kubectl_is_the_api_servers_version(
    control_plane: cluster.ControlPlane, kubectl: Path
) -> None:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    report = json.loads(run(kubectl, "version", "-o", "json", env=env))
    assert report["clientVersion"]["gitVersion"] == control_plane.kubernetes_version
    assert report["serverVersion"]["gitVersion"] == control_plane.kubernetes_version
    assert report["clientVersion"]["gitTreeState"] == "clean"


def test_helm_reports_its_pinned_version() -> None:
    helm = conftest.require_tool("helm")
    assert run(helm, "version", "--template", "{{.Version}}").strip() == tools.version("helm")
    assert tools.version("helm").startswith("v4.")


@pytest.mark.parametrize("name", ["prometheus", "promtool"])
def test_prometheus_reports_its_pinned_version(name: str) -> None:
    binary = conftest.require_tool(name)
    first_line = run(binary, "--version").splitlines()[0]
    assert f"version {tools.version(name)} " in first_line, first_line


@pytest.mark.parametrize("name", tools.TOOLS)
def test_bin_links_to_the_cached_build(name: str) -> None:
    link = tools.ROOT / "bin" / name
    assert link.is_symlink(), f"{link} is not a link: run make tools"
    assert link.resolve() == conftest.require_tool(name).resolve()
