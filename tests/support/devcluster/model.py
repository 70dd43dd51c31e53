"""What a development cluster is: its settings, the cached binaries it runs, and its status.

`ClusterConfig` names a cluster and its simulated GPU nodes; `Components` is what
`hack/controlplane/build.sh --paths` reports (versions and cache paths of the
Kubernetes binaries, etcd, kwok and the CRDs), and `ensure_built` runs that script
when something is missing. The rest of the package starts and stops processes from
these values.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

DEFAULT_NAME: Final = "dev"
DEFAULT_NODES: Final = 2
DEFAULT_GPUS_PER_NODE: Final = 8
DEFAULT_GPU_PRODUCT: Final = "NVIDIA-H100-80GB-HBM3"
GPU_RESOURCE: Final = "nvidia.com/gpu"
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
SERVICE_CIDR: Final = "10.96.0.0/16"
POD_CIDR: Final = "10.244.0.0/16"
ADMIN_USER: Final = "llm-operator-admin"

#: Start order; `down` stops in reverse.
COMPONENTS: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)

_REPO_BUILD_SCRIPT: Final = (
    Path(__file__).resolve().parents[3] / "hack" / "controlplane" / "build.sh"
)


class ClusterError(RuntimeError):
    """The local cluster could not be built, started or reached."""


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """What to start: the cluster's name and the simulated GPU nodes."""

    name: str = DEFAULT_NAME
    nodes: int = DEFAULT_NODES
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE
    gpu_product: str = DEFAULT_GPU_PRODUCT
    node_cpu: str = "192"
    node_memory: str = "2048Gi"
    node_pods: int = 110
    cache_dir: Path | None = None
    build_script: Path | None = None
    timeout: float = 180.0

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"cluster name must be letters, digits, '-' or '_': {self.name!r}")
        if self.nodes < 0 or self.gpus_per_node < 0:
            raise ValueError("nodes and gpus_per_node must not be negative")

    @property
    def cache(self) -> Path:
        """The cache root: binaries under bin/, clusters under dev/."""
        if self.cache_dir is not None:
            return self.cache_dir
        env = os.environ.get("LLM_OPERATOR_CACHE")
        return Path(env) if env else Path.home() / ".cache" / "llm-operator"

    @property
    def state_dir(self) -> Path:
        """Where this cluster keeps its certificates, data, logs, pids and kubeconfig."""
        return self.cache / "dev" / self.name

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig of this cluster."""
        return self.state_dir / "kubeconfig"


@dataclasses.dataclass(frozen=True)
class Components:
    """Versions and cached locations of the binaries and CRDs built by build.sh."""

    cache: Path
    kubernetes_version: str
    kubernetes_dir: Path
    etcd_version: str
    etcd_dir: Path
    kwok_version: str
    kwok_dir: Path
    keda_version: str
    keda_crds_dir: Path
    prometheus_operator_version: str
    prometheus_operator_crds_dir: Path

    def binary(self, name: str) -> Path:
        """The path of one component's executable."""
        if name == "etcd":
            return self.etcd_dir / "etcd"
        if name == "kwok":
            return self.kwok_dir / "kwok"
        return self.kubernetes_dir / name

    @property
    def kwok_stages(self) -> list[Path]:
        """The kwok Stage files copied from the kwok module."""
        return sorted((self.kwok_dir / "stages").glob("*.yaml"))

    @property
    def crd_files(self) -> list[Path]:
        """The KEDA and Prometheus Operator CRD manifests."""
        return sorted(self.keda_crds_dir.glob("*.yaml")) + sorted(
            self.prometheus_operator_crds_dir.glob("*.yaml")
        )

    def missing(self) -> list[Path]:
        """Expected files that are not there yet."""
        wanted = [self.binary(name) for name in COMPONENTS]
        missing = [p for p in wanted if not p.is_file()]
        if not self.kwok_stages:
            missing.append(self.kwok_dir / "stages")
        for crd_dir in (self.keda_crds_dir, self.prometheus_operator_crds_dir):
            if not any(crd_dir.glob("*.yaml")):
                missing.append(crd_dir)
        return missing


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A running local cluster and how to reach it."""

    name: str
    state_dir: Path
    kubeconfig: Path
    server: str
    ca_file: Path
    client_cert: Path
    client_key: Path
    components: Components


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    """One process of the cluster as `status` sees it."""

    name: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log: Path


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    """The whole cluster as `status` sees it."""

    name: str
    state_dir: Path
    kubeconfig: Path | None
    server: str | None
    components: list[ComponentStatus]

    @property
    def up(self) -> bool:
        """True when every component runs and answers its health check."""
        return bool(self.components) and all(c.running and c.healthy for c in self.components)


# --------------------------------------------------------------------------- binaries


def _build_script(config: ClusterConfig) -> Path:
    script = config.build_script or _REPO_BUILD_SCRIPT
    if not script.is_file():
        raise ClusterError(
            f"cannot find the control-plane build script {script}; run from a checkout of "
            "llm-operator or pass ClusterConfig(build_script=...)"
        )
    return script


def _script_env(config: ClusterConfig) -> dict[str, str]:
    env = dict(os.environ)
    env["LLM_OPERATOR_CACHE"] = str(config.cache)
    return env


def components(config: ClusterConfig) -> Components:
    """Versions and locations of the cached binaries (building nothing)."""
    script = _build_script(config)
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", str(script), "--paths"],  # noqa: S607 - bash from PATH
        capture_output=True,
        text=True,
        env=_script_env(config),
        check=False,
    )
    if result.returncode != 0:
        raise ClusterError(f"{script} --paths failed: {result.stderr.strip()}")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    try:
        return Components(
            cache=Path(values["cache"]),
            kubernetes_version=values["kubernetes_version"],
            kubernetes_dir=Path(values["kubernetes_dir"]),
            etcd_version=values["etcd_version"],
            etcd_dir=Path(values["etcd_dir"]),
            kwok_version=values["kwok_version"],
            kwok_dir=Path(values["kwok_dir"]),
            keda_version=values["keda_version"],
            keda_crds_dir=Path(values["keda_crds_dir"]),
            prometheus_operator_version=values["prometheus_operator_version"],
            prometheus_operator_crds_dir=Path(values["prometheus_operator_crds_dir"]),
        )
    except KeyError as exc:
        raise ClusterError(f"{script} --paths did not print {exc}") from exc


def ensure_built(config: ClusterConfig) -> Components:
    """Return the cached components, running build.sh first if any is missing."""
    found = components(config)
    missing = found.missing()
    if not missing:
        return found
    script = _build_script(config)
    logger.info(
        "control-plane binaries missing (%s); building them with %s (a cold build takes a while)",
        ", ".join(str(p) for p in missing),
        script,
    )
    # Output goes to our stderr so a person sees the progress of a long build.
    result = subprocess.run(  # noqa: S603 - our own script
        ["bash", str(script)],  # noqa: S607 - bash from PATH
        stdout=sys.stderr,
        stderr=sys.stderr,
        env=_script_env(config),
        check=False,
    )
    if result.returncode != 0:
        raise ClusterError(
            f"{script} failed with exit code {result.returncode}; see its output above"
        )
    found = components(config)
    missing = found.missing()
    if missing:
        raise ClusterError(f"{script} succeeded but these are missing: {missing}")
    return found
