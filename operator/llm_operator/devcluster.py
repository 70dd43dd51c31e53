"""A real, local Kubernetes control plane for development and integration tests.

`up` starts etcd, kube-apiserver (RBAC and PodSecurity admission on, locally
generated serving certificates, client certificates and service-account keys),
kube-controller-manager, kube-scheduler and kwok, which simulates GPU nodes
(`nvidia.com/gpu` capacity and NVIDIA labels) and drives the Pods scheduled onto
them to Running and Ready. Everything listens on 127.0.0.1 on free ports, runs
detached in its own session with its log and pid in a state directory under the
cache (`~/.cache/llm-operator/dev/<name>/`), and is reached through a kubeconfig
written there; the user's own kubeconfig is never touched. `down` stops every
process and removes the state; `status` reports each component. The binaries
come from `hack/controlplane/build.sh`, which is run when they are missing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import fcntl
import functools
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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

#: GPU memory in MiB, as NVIDIA's GPU feature discovery labels it, for known products.
_GPU_MEMORY_MIB: Final[dict[str, int]] = {
    "NVIDIA-H100-80GB-HBM3": 81559,
    "NVIDIA-A100-SXM4-80GB": 81920,
    "NVIDIA-A100-SXM4-40GB": 40960,
    "NVIDIA-L4": 23034,
    "Tesla-T4": 15360,
}

#: Start order; `down` stops in reverse.
COMPONENTS: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)

_REPO_BUILD_SCRIPT: Final = (
    Path(__file__).resolve().parents[2] / "hack" / "controlplane" / "build.sh"
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


# --------------------------------------------------------------------------- certificates


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclasses.dataclass(frozen=True)
class _Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path

    def client(self, name: str) -> tuple[Path, Path]:
        d = self.ca_cert.parent
        return d / f"{name}.crt", d / f"{name}.key"


def _make_pki(pki_dir: Path) -> _Pki:
    """Generate the CA, serving certificate, client certificates and SA keys."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=365)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-operator-dev-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        name: str,
        common_name: str,
        organizations: Sequence[str],
        usage: x509.ObjectIdentifier,
        sans: Sequence[x509.GeneralName] = (),
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (pki_dir / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(pki_dir / f"{name}.key", _key_pem(key))

    _write_private(pki_dir / "ca.key", _key_pem(ca_key))
    (pki_dir / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    service_ip = next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.IPAddress(service_ip)]
    issue("apiserver", "kube-apiserver", (), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    issue("admin", ADMIN_USER, ("system:masters",), ExtendedKeyUsageOID.CLIENT_AUTH)
    issue(
        "kube-controller-manager",
        "system:kube-controller-manager",
        (),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    issue("kube-scheduler", "system:kube-scheduler", (), ExtendedKeyUsageOID.CLIENT_AUTH)
    # kwok writes the status of nodes and pods and node leases: a cluster admin.
    issue("kwok", "kwok-controller", ("system:masters",), ExtendedKeyUsageOID.CLIENT_AUTH)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(pki_dir / "sa.key", _key_pem(sa_key))
    (pki_dir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return _pki(pki_dir)


def _pki(pki_dir: Path) -> _Pki:
    return _Pki(
        ca_cert=pki_dir / "ca.crt",
        ca_key=pki_dir / "ca.key",
        serving_cert=pki_dir / "apiserver.crt",
        serving_key=pki_dir / "apiserver.key",
        sa_key=pki_dir / "sa.key",
        sa_pub=pki_dir / "sa.pub",
    )


def _write_kubeconfig(path: Path, *, name: str, server: str, pki: _Pki, user: str) -> None:
    cert, key = pki.client(user)

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode("ascii")

    context = f"llm-operator-{name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": f"{context}-{user}",
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": f"{context}-{user}"}}
        ],
        "current-context": context,
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


# --------------------------------------------------------------------------- processes


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held together so they are distinct)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (guards against pid reuse), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) is in parentheses and may contain spaces.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return fields[19]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int, start_time: str | None) -> bool:
    _reap(pid)
    current = _proc_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


def _spawn(
    name: str, argv: list[str], state_dir: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    log_path = state_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("starting %s: %s", name, " ".join(argv))
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603 - our own binaries with our own arguments
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    # The process outlives this object: forget it without warnings; _reap collects it.
    proc.returncode = 0
    return {
        "pid": proc.pid,
        "start_time": _proc_start_time(proc.pid),
        "log": str(log_path),
        "argv": argv,
    }


def _stop(name: str, info: dict[str, Any], grace: float = 15.0) -> None:
    pid = int(info["pid"])
    start_time = info.get("start_time")
    if not _alive(pid, start_time):
        return
    logger.info("stopping %s (pid %d)", name, pid)
    # Each component leads its own session and process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid, start_time):
            return
        time.sleep(0.1)
    logger.warning("%s (pid %d) did not stop in %.0fs; killing it", name, pid, grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid, start_time):
        time.sleep(0.1)
    if _alive(pid, start_time):
        raise ClusterError(f"{name} (pid {pid}) survived SIGKILL")


# --------------------------------------------------------------------------- HTTP


class _Api:
    """A minimal typed HTTPS client for the admin user (the untyped client stays out)."""

    def __init__(self, server: str, pki: _Pki) -> None:
        self.server = server
        cert, key = pki.client("admin")
        self._ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._ctx.load_cert_chain(str(cert), str(key))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - https to our own API server
            self.server + path, data=data, method=method
        )
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        except (OSError, ssl.SSLError) as exc:  # URLError is an OSError
            return 0, str(getattr(exc, "reason", exc))
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")


def _http_ok(
    url: str, timeout: float = 3.0, context: ssl.SSLContext | None = None
) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310
            body = resp.read(2000).decode("utf-8", "replace").strip()
            return 200 <= resp.status < 300, body
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read(2000).decode('utf-8', 'replace').strip()}"
    except (OSError, ssl.SSLError) as exc:
        return False, str(exc)


def _insecure_context() -> ssl.SSLContext:
    # The controller manager and scheduler serve /healthz with self-signed certificates.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------------------- state


def _state_path(config: ClusterConfig) -> Path:
    return config.state_dir / "state.json"


def _load_state(config: ClusterConfig) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path(config).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_state(config: ClusterConfig, state: dict[str, Any]) -> None:
    tmp = _state_path(config).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(_state_path(config))


def _lock_path(config: ClusterConfig) -> Path:
    return config.cache / "dev" / f".{config.name}.lock"


@contextlib.contextmanager
def _locked(config: ClusterConfig) -> Iterator[None]:
    path = _lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _health(name: str, state: dict[str, Any], pki: _Pki | None) -> tuple[bool, str]:
    ports = state.get("ports", {})
    if name == "etcd":
        return _http_ok(f"http://127.0.0.1:{ports['etcd']}/health")
    if name == "kube-apiserver":
        if pki is None:
            return False, "no certificates"
        status, body = _Api(state["server"], pki).request("GET", "/readyz", timeout=5)
        return status == 200, str(body).strip()[:500]
    if name in ("kube-controller-manager", "kube-scheduler"):
        return _http_ok(f"https://127.0.0.1:{ports[name]}/healthz", context=_insecure_context())
    if name == "kwok":
        return _http_ok(f"http://127.0.0.1:{ports['kwok']}/healthz")
    return False, "unknown component"


def status(config: ClusterConfig) -> ClusterStatus:
    """Report every component of the cluster: pid, whether it runs, and its health."""
    state = _load_state(config)
    if state is None:
        return ClusterStatus(config.name, config.state_dir, None, None, [])
    pki = _pki(config.state_dir / "pki") if (config.state_dir / "pki" / "ca.crt").exists() else None
    result = []
    for name in COMPONENTS:
        info = state.get("components", {}).get(name)
        log_path = config.state_dir / "logs" / f"{name}.log"
        if info is None:
            result.append(ComponentStatus(name, None, False, False, "not started", log_path))
            continue
        running = _alive(int(info["pid"]), info.get("start_time"))
        healthy, detail = _health(name, state, pki) if running else (False, "not running")
        result.append(ComponentStatus(name, int(info["pid"]), running, healthy, detail, log_path))
    return ClusterStatus(
        config.name,
        config.state_dir,
        Path(state["kubeconfig"]) if state.get("kubeconfig") else None,
        state.get("server"),
        result,
    )


# --------------------------------------------------------------------------- up / down


def _wait(
    what: str,
    check: Callable[[], tuple[bool, str]],
    timeout: float,
    watch: Sequence[tuple[str, dict[str, Any]]],
    interval: float = 0.5,
) -> None:
    """Poll `check` until it passes; fail early if a watched process dies."""
    deadline = time.monotonic() + timeout
    detail = ""
    while True:
        for name, info in watch:
            if not _alive(int(info["pid"]), info.get("start_time")):
                raise ClusterError(
                    f"{name} exited while waiting for {what}; last lines of {info['log']}:\n"
                    f"{_log_tail(Path(info['log']))}"
                )
        ok, detail = check()
        if ok:
            return
        if time.monotonic() > deadline:
            name, info = watch[-1] if watch else ("", {})
            tail = f"; last lines of {info['log']}:\n{_log_tail(Path(info['log']))}" if info else ""
            raise ClusterError(
                f"timed out after {timeout:.0f}s waiting for {what} ({detail}){tail}"
            )
        time.sleep(interval)


def _node_manifest(config: ClusterConfig, index: int) -> dict[str, Any]:
    name = f"gpu-node-{index}"
    gpus = str(config.gpus_per_node)
    instance_type = f"kwok-{config.gpus_per_node}x{config.gpu_product}"[:63]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/zone": "local-a",
        "type": "kwok",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": config.gpu_product,
        "nvidia.com/gpu.count": gpus,
    }
    memory = _GPU_MEMORY_MIB.get(config.gpu_product)
    if memory is not None:
        labels["nvidia.com/gpu.memory"] = str(memory)
    capacity = {
        "cpu": config.node_cpu,
        "memory": config.node_memory,
        "pods": str(config.node_pods),
        "ephemeral-storage": "3500Gi",
        GPU_RESOURCE: gpus,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{index + 10}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def _ensure_nodes(api: _Api, config: ClusterConfig) -> list[str]:
    names = []
    for i in range(config.nodes):
        node = _node_manifest(config, i)
        name = node["metadata"]["name"]
        names.append(name)
        code, body = api.request("GET", f"/api/v1/nodes/{name}")
        if code == 200:
            continue
        code, body = api.request("POST", "/api/v1/nodes", node)
        if code not in (200, 201, 409):
            raise ClusterError(f"cannot create node {name}: HTTP {code}: {body}")
    return names


def _nodes_ready(api: _Api, names: Sequence[str]) -> tuple[bool, str]:
    code, body = api.request("GET", "/api/v1/nodes")
    if code != 200:
        return False, f"HTTP {code}"
    ready = set()
    for item in body.get("items", []):
        for cond in item.get("status", {}).get("conditions", []) or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(item["metadata"]["name"])
    waiting = [n for n in names if n not in ready]
    return not waiting, f"not Ready: {', '.join(waiting)}" if waiting else "all Ready"


def _cluster_from_state(config: ClusterConfig, state: dict[str, Any], comps: Components) -> Cluster:
    pki = _pki(config.state_dir / "pki")
    cert, key = pki.client("admin")
    return Cluster(
        name=config.name,
        state_dir=config.state_dir,
        kubeconfig=Path(state["kubeconfig"]),
        server=state["server"],
        ca_file=pki.ca_cert,
        client_cert=cert,
        client_key=key,
        components=comps,
    )


def _argv(
    config: ClusterConfig, comps: Components, pki: _Pki, ports: dict[str, int], state_dir: Path
) -> dict[str, list[str]]:
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    kc = state_dir / "kubeconfigs"
    return {
        "etcd": [
            str(comps.binary("etcd")),
            f"--name={config.name}",
            f"--data-dir={state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={config.name}={peer_url}",
            "--initial-cluster-state=new",
            # A throw-away development store: durability is not worth the fsyncs.
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(comps.binary("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['kube-apiserver']}",
            f"--cert-dir={state_dir / 'pki' / 'apiserver-generated'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,PodSecurity",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # Endpoints may not hold loopback addresses; nothing dials the
            # in-cluster "kubernetes" Service here.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ],
        "kube-controller-manager": [
            str(comps.binary("kube-controller-manager")),
            f"--kubeconfig={kc / 'kube-controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kube-controller-manager']}",
            f"--cert-dir={state_dir / 'pki' / 'kcm-generated'}",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--cluster-name={config.name}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        "kube-scheduler": [
            str(comps.binary("kube-scheduler")),
            f"--kubeconfig={kc / 'kube-scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kube-scheduler']}",
            f"--cert-dir={state_dir / 'pki' / 'scheduler-generated'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        "kwok": [
            str(comps.binary("kwok")),
            f"--kubeconfig={kc / 'kwok.kubeconfig'}",
            *[f"--config={p}" for p in comps.kwok_stages],
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.0.0.1",
            f"--server-address=127.0.0.1:{ports['kwok']}",
        ],
    }


def up(config: ClusterConfig | None = None) -> Cluster:
    """Start the cluster (or reuse it if it is already up) and wait until it is ready.

    Ready means: the API server's /readyz passes, every simulated node is Ready,
    and the `default` ServiceAccount exists in the `default` namespace.
    """
    config = config or ClusterConfig()
    comps = ensure_built(config)
    with _locked(config):
        current = status(config)
        state = _load_state(config)
        if current.up and state is not None:
            logger.info("cluster %s is already up; reusing it", config.name)
            api = _Api(state["server"], _pki(config.state_dir / "pki"))
            names = _ensure_nodes(api, config)
            _wait("nodes Ready", lambda: _nodes_ready(api, names), config.timeout, [])
            return _cluster_from_state(config, state, comps)
        if state is not None or config.state_dir.exists():
            logger.info("cluster %s is partly up or stale; restarting it from scratch", config.name)
            _down_locked(config)
        try:
            return _start(config, comps)
        except BaseException:
            logger.error("cluster %s failed to start; stopping what did start", config.name)
            with contextlib.suppress(Exception):
                _stop_all(config)
            raise


def _start(config: ClusterConfig, comps: Components) -> Cluster:
    state_dir = config.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    (state_dir / "kubeconfigs").mkdir(exist_ok=True)
    (state_dir / "home").mkdir(exist_ok=True)
    pki = _make_pki(state_dir / "pki")
    names = [
        "etcd",
        "etcd-peer",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    server = f"https://127.0.0.1:{ports['kube-apiserver']}"
    kubeconfig = config.kubeconfig
    _write_kubeconfig(kubeconfig, name=config.name, server=server, pki=pki, user="admin")
    for user in ("kube-controller-manager", "kube-scheduler", "kwok"):
        _write_kubeconfig(
            state_dir / "kubeconfigs" / f"{user}.kubeconfig",
            name=config.name,
            server=server,
            pki=pki,
            user=user,
        )
    argv = _argv(config, comps, pki, ports, state_dir)
    state: dict[str, Any] = {
        "name": config.name,
        "server": server,
        "kubeconfig": str(kubeconfig),
        "ports": ports,
        "config": {
            "nodes": config.nodes,
            "gpus_per_node": config.gpus_per_node,
            "gpu_product": config.gpu_product,
        },
        "versions": {
            "kubernetes": comps.kubernetes_version,
            "etcd": comps.etcd_version,
            "kwok": comps.kwok_version,
        },
        "components": {},
    }
    procs: dict[str, dict[str, Any]] = state["components"]
    api = _Api(server, pki)
    # kwok reads ~/.kwok/kwok.yaml when present: give it a home of its own.
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    kwok_env = dict(env, HOME=str(state_dir / "home"))

    def start(name: str) -> dict[str, Any]:
        procs[name] = _spawn(name, argv[name], state_dir, kwok_env if name == "kwok" else env)
        _save_state(config, state)
        return procs[name]

    t0 = time.monotonic()
    start("etcd")
    _wait(
        "etcd /health",
        lambda: _health("etcd", state, pki),
        config.timeout,
        [("etcd", procs["etcd"])],
    )
    start("kube-apiserver")
    _wait(
        "kube-apiserver /readyz",
        lambda: _health("kube-apiserver", state, pki),
        config.timeout,
        [("etcd", procs["etcd"]), ("kube-apiserver", procs["kube-apiserver"])],
    )
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        start(name)
    watch = [(name, procs[name]) for name in COMPONENTS]
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        _wait(
            f"{name} /healthz",
            functools.partial(_health, name, state, pki),
            config.timeout,
            [*watch, (name, procs[name])],
        )
    node_names = _ensure_nodes(api, config)
    _wait(
        f"{len(node_names)} simulated nodes Ready",
        lambda: _nodes_ready(api, node_names),
        config.timeout,
        [*watch, ("kwok", procs["kwok"])],
    )

    def default_sa() -> tuple[bool, str]:
        code, _ = api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return code == 200, f"HTTP {code}"

    _wait(
        "ServiceAccount default/default",
        default_sa,
        config.timeout,
        [*watch, ("kube-controller-manager", procs["kube-controller-manager"])],
    )
    logger.info(
        "cluster %s is up in %.1fs: server %s, kubeconfig %s",
        config.name,
        time.monotonic() - t0,
        server,
        kubeconfig,
    )
    return _cluster_from_state(config, state, comps)


def _stop_all(config: ClusterConfig) -> None:
    state = _load_state(config)
    if state is None:
        return
    errors = []
    for name in reversed(COMPONENTS):
        info = state.get("components", {}).get(name)
        if info is None:
            continue
        try:
            _stop(name, info)
        except ClusterError as exc:
            errors.append(str(exc))
    if errors:
        raise ClusterError("; ".join(errors))


def _down_locked(config: ClusterConfig, keep_state: bool = False) -> None:
    _stop_all(config)
    if not keep_state and config.state_dir.exists():
        shutil.rmtree(config.state_dir)


def down(config: ClusterConfig | None = None, keep_state: bool = False) -> None:
    """Stop every process of the cluster and wait for them; remove its state unless asked not to."""
    config = config or ClusterConfig()
    with _locked(config):
        _down_locked(config, keep_state=keep_state)
        if not keep_state:
            # Test sessions use unique names: leave no lock file behind either.
            with contextlib.suppress(OSError):
                _lock_path(config).unlink()
    logger.info("cluster %s is down", config.name)


# --------------------------------------------------------------------------- CLI


def _print_status(st: ClusterStatus) -> None:
    print(f"cluster:    {st.name} ({'up' if st.up else 'down'})")
    print(f"state dir:  {st.state_dir}")
    if st.server:
        print(f"server:     {st.server}")
    if st.kubeconfig:
        print(f"kubeconfig: {st.kubeconfig}")
    if not st.components:
        print("components: none (not started)")
        return
    print(f"{'COMPONENT':<25} {'PID':>8}  {'RUNNING':<8} {'HEALTHY':<8} DETAIL")
    for c in st.components:
        detail = c.detail.splitlines()[0][:60] if c.detail else ""
        pid = str(c.pid) if c.pid is not None else "-"
        print(f"{c.name:<25} {pid:>8}  {c.running!s:<8} {c.healthy!s:<8} {detail}")


def build_parser(prog: str = "llm-operator dev") -> argparse.ArgumentParser:
    """The `up | down | status` command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A local Kubernetes control plane with simulated GPU nodes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default=DEFAULT_NAME, help="cluster name (default: %(default)s)")
        p.add_argument(
            "--cache-dir",
            type=Path,
            default=None,
            help="cache root (default: $LLM_OPERATOR_CACHE or ~/.cache/llm-operator)",
        )

    p_up = sub.add_parser("up", help="start the cluster (reuse it if already up)")
    common(p_up)
    p_up.add_argument("--nodes", type=int, default=DEFAULT_NODES, help="simulated GPU nodes")
    p_up.add_argument(
        "--gpus-per-node", type=int, default=DEFAULT_GPUS_PER_NODE, help="nvidia.com/gpu per node"
    )
    p_up.add_argument(
        "--gpu-product", default=DEFAULT_GPU_PRODUCT, help="nvidia.com/gpu.product label"
    )
    p_up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait per step")
    p_down = sub.add_parser("down", help="stop every process of the cluster")
    common(p_down)
    p_down.add_argument(
        "--keep-state", action="store_true", help="keep the state directory (logs, certificates)"
    )
    p_status = sub.add_parser("status", help="show components, pids, health and kubeconfig")
    common(p_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `up`, `down` or `status`; return the exit code."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "up":
            config = ClusterConfig(
                name=args.name,
                nodes=args.nodes,
                gpus_per_node=args.gpus_per_node,
                gpu_product=args.gpu_product,
                cache_dir=args.cache_dir,
                timeout=args.timeout,
            )
            cluster = up(config)
            print(f"cluster {cluster.name} is up: {cluster.server}")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            return 0
        config = ClusterConfig(name=args.name, cache_dir=args.cache_dir)
        if args.command == "down":
            down(config, keep_state=args.keep_state)
            print(f"cluster {config.name} is down")
            return 0
        st = status(config)
        _print_status(st)
        return 0 if st.up else 1
    except (ClusterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
