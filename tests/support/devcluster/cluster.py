"""Start, reuse, report and stop a whole development cluster.

`up` starts etcd, kube-apiserver (RBAC and PodSecurity admission on), the controller
manager, the scheduler and kwok in that order, waiting for each one's health check
and failing early, with the end of its log, when one exits; then it creates the
simulated GPU nodes and waits until they and the `default` ServiceAccount exist.
A cluster that is already up is reused; a stale one is restarted from scratch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.support.devcluster import certs, model, nodes, probes, procs

logger = logging.getLogger(__name__)


def status(config: model.ClusterConfig) -> model.ClusterStatus:
    """Report every component of the cluster: pid, whether it runs, and its health."""
    state = procs.load_state(config)
    if state is None:
        return model.ClusterStatus(config.name, config.state_dir, None, None, [])
    pki = (
        certs.load(config.state_dir / "pki")
        if (config.state_dir / "pki" / "ca.crt").exists()
        else None
    )
    result = []
    for name in model.COMPONENTS:
        info = state.get("components", {}).get(name)
        log_path = config.state_dir / "logs" / f"{name}.log"
        if info is None:
            result.append(model.ComponentStatus(name, None, False, False, "not started", log_path))
            continue
        running = procs.alive(int(info["pid"]), info.get("start_time"))
        healthy, detail = probes.health(name, state, pki) if running else (False, "not running")
        result.append(
            model.ComponentStatus(name, int(info["pid"]), running, healthy, detail, log_path)
        )
    return model.ClusterStatus(
        config.name,
        config.state_dir,
        Path(state["kubeconfig"]) if state.get("kubeconfig") else None,
        state.get("server"),
        result,
    )


def _cluster_from_state(
    config: model.ClusterConfig, state: dict[str, Any], comps: model.Components
) -> model.Cluster:
    pki = certs.load(config.state_dir / "pki")
    cert, key = pki.client("admin")
    return model.Cluster(
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
    config: model.ClusterConfig,
    comps: model.Components,
    pki: certs.Pki,
    ports: dict[str, int],
    state_dir: Path,
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
            f"--service-cluster-ip-range={model.SERVICE_CIDR}",
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
            f"--manage-nodes-with-annotation-selector={model.KWOK_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40",
            f"--cidr={model.POD_CIDR}",
            "--node-ip=10.0.0.1",
            f"--server-address=127.0.0.1:{ports['kwok']}",
        ],
    }


def up(config: model.ClusterConfig | None = None) -> model.Cluster:
    """Start the cluster (or reuse it if it is already up) and wait until it is ready.

    Ready means: the API server's /readyz passes, every simulated node is Ready,
    and the `default` ServiceAccount exists in the `default` namespace.
    """
    config = config or model.ClusterConfig()
    comps = model.ensure_built(config)
    with procs.locked(config):
        current = status(config)
        state = procs.load_state(config)
        if current.up and state is not None:
            logger.info("cluster %s is already up; reusing it", config.name)
            api = probes.Api(state["server"], certs.load(config.state_dir / "pki"))
            names = nodes.ensure(api, config)
            probes.wait("nodes Ready", lambda: nodes.ready(api, names), config.timeout, [])
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


def _start(config: model.ClusterConfig, comps: model.Components) -> model.Cluster:
    state_dir = config.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    (state_dir / "kubeconfigs").mkdir(exist_ok=True)
    (state_dir / "home").mkdir(exist_ok=True)
    pki = certs.make(state_dir / "pki")
    names = [
        "etcd",
        "etcd-peer",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    ports = dict(zip(names, procs.free_ports(len(names)), strict=True))
    server = f"https://127.0.0.1:{ports['kube-apiserver']}"
    kubeconfig = config.kubeconfig
    certs.write_kubeconfig(kubeconfig, name=config.name, server=server, pki=pki, user="admin")
    for user in ("kube-controller-manager", "kube-scheduler", "kwok"):
        certs.write_kubeconfig(
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
    running: dict[str, dict[str, Any]] = state["components"]
    api = probes.Api(server, pki)
    # kwok reads ~/.kwok/kwok.yaml when present: give it a home of its own.
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    kwok_env = dict(env, HOME=str(state_dir / "home"))

    def start(name: str) -> dict[str, Any]:
        running[name] = procs.spawn(
            name, argv[name], state_dir, kwok_env if name == "kwok" else env
        )
        procs.save_state(config, state)
        return running[name]

    t0 = time.monotonic()
    start("etcd")
    probes.wait(
        "etcd /health",
        lambda: probes.health("etcd", state, pki),
        config.timeout,
        [("etcd", running["etcd"])],
    )
    start("kube-apiserver")
    probes.wait(
        "kube-apiserver /readyz",
        lambda: probes.health("kube-apiserver", state, pki),
        config.timeout,
        [("etcd", running["etcd"]), ("kube-apiserver", running["kube-apiserver"])],
    )
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        start(name)
    watch = [(name, running[name]) for name in model.COMPONENTS]
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        probes.wait(
            f"{name} /healthz",
            functools.partial(probes.health, name, state, pki),
            config.timeout,
            [*watch, (name, running[name])],
        )
    node_names = nodes.ensure(api, config)
    probes.wait(
        f"{len(node_names)} simulated nodes Ready",
        lambda: nodes.ready(api, node_names),
        config.timeout,
        [*watch, ("kwok", running["kwok"])],
    )

    def default_sa() -> tuple[bool, str]:
        code, _ = api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return code == 200, f"HTTP {code}"

    probes.wait(
        "ServiceAccount default/default",
        default_sa,
        config.timeout,
        [*watch, ("kube-controller-manager", running["kube-controller-manager"])],
    )
    logger.info(
        "cluster %s is up in %.1fs: server %s, kubeconfig %s",
        config.name,
        time.monotonic() - t0,
        server,
        kubeconfig,
    )
    return _cluster_from_state(config, state, comps)


def _stop_all(config: model.ClusterConfig) -> None:
    state = procs.load_state(config)
    if state is None:
        return
    errors = []
    for name in reversed(model.COMPONENTS):
        info = state.get("components", {}).get(name)
        if info is None:
            continue
        try:
            procs.stop(name, info)
        except model.ClusterError as exc:
            errors.append(str(exc))
    if errors:
        raise model.ClusterError("; ".join(errors))


def _down_locked(config: model.ClusterConfig, keep_state: bool = False) -> None:
    _stop_all(config)
    if not keep_state and config.state_dir.exists():
        shutil.rmtree(config.state_dir)


def down(config: model.ClusterConfig | None = None, keep_state: bool = False) -> None:
    """Stop every process of the cluster and wait for them; remove its state unless asked not to."""
    config = config or model.ClusterConfig()
    with procs.locked(config):
        _down_locked(config, keep_state=keep_state)
        if not keep_state:
            # Test sessions use unique names: leave no lock file behind either.
            with contextlib.suppress(OSError):
                procs.lock_path(config).unlink()
    logger.info("cluster %s is down", config.name)
