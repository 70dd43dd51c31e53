"""Real serving processes for the simulated Pods: what each Pod's containers would run.

kwok runs no containers, so a Ready Pod of an LLMDeployment on a simulated GPU node
serves nothing. `Replicas` fills that in: a background thread lists the Pods of the
watched LLMDeployments every `interval` seconds and, for each Ready Pod on a kwok
node, starts an `llm-serving sim` on a loopback port (the `vllm` container) and, when
the Pod has the `gateway` sidecar (guardrails on), an `llm-serving gateway` in front
of it on another, as in a real Pod, where vLLM then listens on 127.0.0.1 behind the
sidecar, with the LLMDeployment's guardrail policy from its ConfigMap. A replica
takes requests once its gateway's /ready (or the engine's /health) answers. Each Pod
is registered with Prometheus as the PodMonitor's endpoints and relabelling make it:
labelled `namespace`, `pod` and `llmdeployment`, with `component="gateway"`
(/metrics) and `component="engine"` (/metrics/engine through the gateway, or the
engine's own /metrics without one). A Pod that goes away or stops being Ready loses
its processes and its targets. `endpoints(namespace, name)` gives the URLs the load
generator spreads requests over. With `rules`, each sync also loads the watched
LLMDeployments' PrometheusRules (`rules.Rules`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import subprocess
import sys
import threading
import urllib.request
from typing import Any

from kubernetes import client

from llm_operator.builders import common, monitoring
from tests.support import prometheus as prometheus_module
from tests.support.devcluster import procs
from tests.support.loadharness import rules as rules_module

logger = logging.getLogger(__name__)

#: The name of the guardrail gateway's container in a Pod the operator builds.
GATEWAY_CONTAINER = "gateway"


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """How each simulated engine behaves (see `llm-serving sim --help`)."""

    max_num_seqs: int = 4
    decode_tokens_per_s: float = 20.0
    output_tokens: int = 32
    startup_delay_s: float = 0.0
    #: KV cache capacity in tokens (None: the simulator's default, which never fills).
    kv_cache_tokens: int | None = None
    #: The share of requests that fail (a 500, or a dropped stream): an injected fault.
    fail_rate: float = 0.0

    def argv(self) -> list[str]:
        argv = [
            f"--max-num-seqs={self.max_num_seqs}",
            f"--decode-tokens-per-s={self.decode_tokens_per_s}",
            f"--output-tokens={self.output_tokens}",
            f"--startup-delay-s={self.startup_delay_s}",
            f"--fail-rate={self.fail_rate}",
        ]
        if self.kv_cache_tokens is not None:
            argv.append(f"--kv-cache-tokens={self.kv_cache_tokens}")
        return argv


@dataclasses.dataclass
class _Served:
    namespace: str
    llmd: str
    pod: str
    engine: subprocess.Popen[bytes]
    engine_address: str
    # The gateway sidecar and its address, when the Pod has one.
    gateway: subprocess.Popen[bytes] | None
    gateway_address: str | None
    # Set once the gateway answers /ready (its engine is up), or the engine /health.
    ready: bool = False

    @property
    def url(self) -> str:
        """Where clients send requests: the gateway, or the engine without one."""
        return f"http://{self.gateway_address or self.engine_address}"

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in (self.gateway, self.engine) if p is not None]

    def running(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def targets(self) -> list[prometheus_module.Target]:
        """The scrape targets the PodMonitor would give this Pod."""
        labels = {
            "namespace": self.namespace,
            "pod": self.pod,
            monitoring.LLMDEPLOYMENT_LABEL: self.llmd,
        }

        def target(address: str, path: str, component: str) -> prometheus_module.Target:
            return prometheus_module.Target(
                address, path, {**labels, monitoring.COMPONENT_LABEL: component}
            )

        if self.gateway_address is None:
            return [target(self.engine_address, monitoring.METRICS_PATH, monitoring.ENGINE)]
        return [
            target(self.gateway_address, monitoring.METRICS_PATH, monitoring.GATEWAY),
            target(self.gateway_address, monitoring.ENGINE_PATH_VIA_GATEWAY, monitoring.ENGINE),
        ]


def _script() -> str:
    return str(pathlib.Path(sys.executable).with_name("llm-serving"))


def _has_gateway(pod: dict[str, Any]) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or []
    return any(c.get("name") == GATEWAY_CONTAINER for c in containers)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Replicas:
    """The serving processes of the Ready Pods of some LLMDeployments."""

    def __init__(
        self,
        api_client: client.ApiClient,
        prometheus: prometheus_module.Prometheus | None,
        workdir: pathlib.Path,
        engine: EngineSettings | None = None,
        interval: float = 0.5,
        rules: rules_module.Rules | None = None,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._prometheus = prometheus
        self._workdir = workdir
        self._engine = engine or EngineSettings()
        self._interval = interval
        self._rules = rules
        self._watched: set[tuple[str, str]] = set()
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_total = 0
        workdir.mkdir(parents=True, exist_ok=True)

    # --- control -----------------------------------------------------------------------

    def watch(self, namespace: str, name: str) -> None:
        """Serve the Ready Pods of this LLMDeployment from now on."""
        with self._lock:
            self._watched.add((namespace, name))

    def start(self) -> Replicas:
        self._thread = threading.Thread(target=self._run, name="load-harness-replicas", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            served = list(self._served.values())
            self._served.clear()
        for item in served:
            for process in item.processes:
                _stop(process)
        if self._prometheus is not None:
            for namespace, name in list(self._watched):
                self._prometheus.remove_targets(f"{namespace}.{name}")

    def endpoints(self, namespace: str, name: str) -> list[str]:
        """Base URLs (gateway, else engine) of the served Pods of one LLMDeployment."""
        with self._lock:
            return sorted(
                s.url
                for s in self._served.values()
                if (s.namespace, s.llmd) == (namespace, name) and s.ready and s.running()
            )

    def pods(self, namespace: str, name: str) -> list[str]:
        with self._lock:
            return sorted(
                s.pod for s in self._served.values() if (s.namespace, s.llmd) == (namespace, name)
            )

    # --- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:
                logger.exception("load harness: syncing the serving processes failed")
            self._stop.wait(self._interval)

    def _policy_file(self, namespace: str, name: str) -> pathlib.Path:
        """The guardrail policy the operator's ConfigMap holds, as the gateway's file."""
        config_map = self._core.read_namespaced_config_map(f"{name}-guardrails", namespace)
        text = (config_map.data or {}).get("policy.json")
        if not text:
            raise ValueError(f"ConfigMap {namespace}/{name}-guardrails has no policy.json")
        path = self._workdir / f"{namespace}.{name}.policy.json"
        path.write_text(json.dumps(json.loads(text)), encoding="utf-8")
        return path

    def _start(self, namespace: str, llmd: str, pod: str, gateway_on: bool) -> _Served:
        engine_port, gateway_port = procs.free_ports(2)
        logs = self._workdir / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{pod}.engine.log").open("ab") as engine_log:
            engine = subprocess.Popen(  # noqa: S603 - our own command
                [
                    _script(),
                    "sim",
                    "--host=127.0.0.1",
                    f"--port={engine_port}",
                    f"--model={llmd}",
                    "--log-level=WARNING",
                    *self._engine.argv(),
                ],
                stdout=engine_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        engine_address = f"127.0.0.1:{engine_port}"
        self.started_total += 1
        if not gateway_on:
            logger.info("load harness: serving pod %s/%s on %s", namespace, pod, engine_address)
            return _Served(namespace, llmd, pod, engine, engine_address, None, None)
        with (logs / f"{pod}.gateway.log").open("ab") as gateway_log:
            gateway = subprocess.Popen(  # noqa: S603 - our own command
                [
                    _script(),
                    "gateway",
                    "--host=127.0.0.1",
                    f"--port={gateway_port}",
                    f"--upstream=http://127.0.0.1:{engine_port}",
                    f"--policy-file={self._policy_file(namespace, llmd)}",
                    f"--model-name={llmd}",
                    "--log-level=warning",
                ],
                stdout=gateway_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        gateway_address = f"127.0.0.1:{gateway_port}"
        logger.info("load harness: serving pod %s/%s on %s", namespace, pod, gateway_address)
        return _Served(namespace, llmd, pod, engine, engine_address, gateway, gateway_address)

    def sync(self) -> None:
        """Start processes for new Ready Pods, stop those of Pods gone, update the targets."""
        with self._lock:
            watched = set(self._watched)
        wanted: dict[str, tuple[str, str, str, bool]] = {}
        for namespace, name in watched:
            listed = self._core.list_namespaced_pod(
                namespace, label_selector=f"{common.LABEL_DEPLOYMENT}={name}"
            )
            for pod in listed.to_dict().get("items") or []:
                meta = pod.get("metadata") or {}
                node = (pod.get("spec") or {}).get("node_name")
                if not node or meta.get("deletion_timestamp") or not _ready(pod):
                    continue
                wanted[str(meta["uid"])] = (namespace, name, str(meta["name"]), _has_gateway(pod))
        with self._lock:
            gone = [uid for uid in self._served if uid not in wanted]
            stopping = [self._served.pop(uid) for uid in gone]
            new = [uid for uid in wanted if uid not in self._served]
        for item in stopping:
            logger.info("load harness: pod %s/%s is gone; stopping it", item.namespace, item.pod)
            for process in item.processes:
                _stop(process)
        for uid in new:
            served = self._start(*wanted[uid])
            with self._lock:
                self._served[uid] = served
        with self._lock:
            starting = [item for item in self._served.values() if not item.ready]
        for item in starting:
            item.ready = _answers(f"{item.url}/ready" if item.gateway else f"{item.url}/health")
        if self._prometheus is not None:
            self._register(watched)
        if self._rules is not None:
            self._rules.sync(watched)

    def _register(self, watched: set[tuple[str, str]]) -> None:
        assert self._prometheus is not None
        with self._lock:
            served = list(self._served.values())
        for namespace, name in watched:
            targets = [
                target
                for item in served
                if (item.namespace, item.llmd) == (namespace, name)
                for target in item.targets()
            ]
            self._prometheus.set_targets(f"{namespace}.{name}", targets)
