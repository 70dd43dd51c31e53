"""Real serving processes for the simulated Pods: one `llm-serving sim` behind one gateway each.

kwok runs no containers, so a Ready Pod of an LLMDeployment on a simulated GPU node
serves nothing. `Replicas` fills that in: a background thread lists the Pods of the
watched LLMDeployments every `interval` seconds and, for each Ready Pod on a kwok
node, starts an `llm-serving sim` on a loopback port and an `llm-serving gateway` in
front of it on another (as in a real Pod, where vLLM listens on 127.0.0.1 behind the
sidecar), with the LLMDeployment's own guardrail policy from its ConfigMap when it
has one (every check off otherwise); a replica takes requests once its gateway's
/ready answers. Each Pod's gateway is registered with Prometheus as two targets,
`component="gateway"` (/metrics) and `component="engine"` (/metrics/engine),
labelled `namespace`, `pod` and `llmdeployment` as the PodMonitor's relabelling
does. A Pod that goes away or stops being Ready loses its processes and its
targets. `endpoints(namespace, name)` gives the gateway URLs the load generator
spreads requests over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from kubernetes import client

from tests.support.devcluster import procs
from tests.support.loadharness import prometheus as prometheus_module

logger = logging.getLogger(__name__)

LABEL = "llmoperator.io/deployment"
#: A gateway that checks nothing: a plain proxy, for LLMDeployments without guardrails.
NO_CHECKS = {
    "enabled": True,
    "input": {"promptInjection": {"enabled": False}, "pii": {"enabled": False}},
    "output": {"pii": {"enabled": False}, "toxicity": {"enabled": False}},
}


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """How each simulated engine behaves (see `llm-serving sim --help`)."""

    max_num_seqs: int = 4
    decode_tokens_per_s: float = 20.0
    output_tokens: int = 32
    startup_delay_s: float = 0.0

    def argv(self) -> list[str]:
        return [
            f"--max-num-seqs={self.max_num_seqs}",
            f"--decode-tokens-per-s={self.decode_tokens_per_s}",
            f"--output-tokens={self.output_tokens}",
            f"--startup-delay-s={self.startup_delay_s}",
        ]


@dataclasses.dataclass
class _Served:
    namespace: str
    llmd: str
    pod: str
    engine: subprocess.Popen[bytes]
    gateway: subprocess.Popen[bytes]
    gateway_url: str
    # Set once the gateway answers /ready (its engine is up): then it takes requests.
    ready: bool = False


def _script() -> str:
    return str(pathlib.Path(sys.executable).with_name("llm-serving"))


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
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._prometheus = prometheus
        self._workdir = workdir
        self._engine = engine or EngineSettings()
        self._interval = interval
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
            _stop(item.gateway)
            _stop(item.engine)
        if self._prometheus is not None:
            for namespace, name in list(self._watched):
                self._prometheus.remove_targets(f"{namespace}.{name}")

    def endpoints(self, namespace: str, name: str) -> list[str]:
        """Gateway base URLs of the served Pods of one LLMDeployment."""
        with self._lock:
            return sorted(
                s.gateway_url
                for s in self._served.values()
                if (s.namespace, s.llmd) == (namespace, name)
                and s.ready
                and s.gateway.poll() is None
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
        document: dict[str, Any] = NO_CHECKS
        with contextlib.suppress(client.ApiException):
            config_map = self._core.read_namespaced_config_map(f"{name}-guardrails", namespace)
            text = (config_map.data or {}).get("policy.json")
            if text:
                document = json.loads(text)
        path = self._workdir / f"{namespace}.{name}.policy.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    def _start(self, namespace: str, llmd: str, pod: str) -> _Served:
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
        self.started_total += 1
        logger.info("load harness: serving pod %s/%s on 127.0.0.1:%d", namespace, pod, gateway_port)
        return _Served(namespace, llmd, pod, engine, gateway, f"http://127.0.0.1:{gateway_port}")

    def sync(self) -> None:
        """Start processes for new Ready Pods, stop those of Pods gone, update the targets."""
        with self._lock:
            watched = set(self._watched)
        wanted: dict[str, tuple[str, str, str]] = {}
        for namespace, name in watched:
            listed = self._core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={name}")
            for pod in listed.to_dict().get("items") or []:
                meta = pod.get("metadata") or {}
                node = (pod.get("spec") or {}).get("node_name")
                if not node or meta.get("deletion_timestamp") or not _ready(pod):
                    continue
                wanted[str(meta["uid"])] = (namespace, name, str(meta["name"]))
        with self._lock:
            gone = [uid for uid in self._served if uid not in wanted]
            stopping = [self._served.pop(uid) for uid in gone]
            new = [uid for uid in wanted if uid not in self._served]
        for item in stopping:
            logger.info("load harness: pod %s/%s is gone; stopping it", item.namespace, item.pod)
            _stop(item.gateway)
            _stop(item.engine)
        for uid in new:
            served = self._start(*wanted[uid])
            with self._lock:
                self._served[uid] = served
        with self._lock:
            starting = [item for item in self._served.values() if not item.ready]
        for item in starting:
            item.ready = _answers(f"{item.gateway_url}/ready")
        if self._prometheus is not None:
            self._register(watched)

    def _register(self, watched: set[tuple[str, str]]) -> None:
        assert self._prometheus is not None
        with self._lock:
            served = list(self._served.values())
        for namespace, name in watched:
            targets = []
            for item in served:
                if (item.namespace, item.llmd) != (namespace, name):
                    continue
                address = item.gateway_url.removeprefix("http://")
                labels = {"namespace": namespace, "pod": item.pod, "llmdeployment": name}
                targets.append(
                    prometheus_module.Target(
                        address, "/metrics", {**labels, "component": "gateway"}
                    )
                )
                targets.append(
                    prometheus_module.Target(
                        address, "/metrics/engine", {**labels, "component": "engine"}
                    )
                )
            self._prometheus.set_targets(f"{namespace}.{name}", targets)


def wait_until(what: str, probe: Any, timeout: float, interval: float = 0.5) -> Any:
    """Call `probe` until it returns something truthy; raise TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
