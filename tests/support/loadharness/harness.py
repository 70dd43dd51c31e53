"""`Harness`: Prometheus, serving processes and load generators, started and stopped together."""

from __future__ import annotations

import pathlib
import types

from kubernetes import client

from tests.support import prometheus
from tests.support.loadharness import load, replicas, rules, traffic


class Harness:
    """A serving fleet for a local cluster: use as a context manager.

    `serve(namespace, name)` runs real processes for the LLMDeployment's Ready Pods,
    has Prometheus scrape them and evaluate the LLMDeployment's PrometheusRule;
    `load(namespace, name, concurrency)` starts a load generator over them;
    `scrape_operator(address)` adds the operator's metrics endpoint (job
    `llm-operator`); `prometheus_url` is what an LLMDeployment's
    `spec.autoscaling.prometheusUrl` (or the operator's `--prometheus-url`) points at.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        workdir: pathlib.Path,
        engine: replicas.EngineSettings | None = None,
        scrape_interval: str = prometheus.SCRAPE_INTERVAL,
    ) -> None:
        self._api_client = api_client
        self.workdir = workdir
        self._engine = engine
        self._scrape_interval = scrape_interval
        self.prometheus: prometheus.Prometheus | None = None
        self.replicas: replicas.Replicas | None = None
        self._loads: list[load.LoadGenerator] = []

    def __enter__(self) -> Harness:
        self.prometheus = prometheus.Prometheus.start(
            self.workdir / "prometheus", scrape_interval=self._scrape_interval
        )
        try:
            self.replicas = replicas.Replicas(
                self._api_client,
                self.prometheus,
                self.workdir / "replicas",
                self._engine,
                rules=rules.Rules(self._api_client, self.prometheus),
            ).start()
        except BaseException:
            self.prometheus.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        for generator in self._loads:
            generator.close()
        if self.replicas is not None:
            self.replicas.stop()
        if self.prometheus is not None:
            self.prometheus.stop()

    @property
    def prometheus_url(self) -> str:
        assert self.prometheus is not None, "use the Harness as a context manager"
        return self.prometheus.url

    def scrape_operator(self, address: str) -> None:
        """Scrape the operator's metrics endpoint (host:port, path /metrics) from now on."""
        assert self.prometheus is not None, "use the Harness as a context manager"
        target = prometheus.Target(address, "/metrics", {})
        self.prometheus.set_targets("operator", [target], job=prometheus.OPERATOR_JOB)

    def serve(self, namespace: str, name: str) -> None:
        """Run processes for the LLMDeployment's Ready Pods from now on."""
        assert self.replicas is not None, "use the Harness as a context manager"
        self.replicas.watch(namespace, name)

    def load(
        self,
        namespace: str,
        name: str,
        concurrency: int,
        max_tokens: int = 16,
        mix: traffic.Traffic | None = None,
    ) -> load.LoadGenerator:
        """Start closed-loop clients over the LLMDeployment's served Pods, sending `mix`."""
        assert self.replicas is not None
        assert self.prometheus is not None
        served = self.replicas
        generator = load.LoadGenerator(
            lambda: served.endpoints(namespace, name),
            namespace,
            name,
            concurrency=concurrency,
            max_tokens=max_tokens,
            traffic=mix,
        )
        generator.register(self.prometheus)
        self._loads.append(generator)
        return generator.start()
