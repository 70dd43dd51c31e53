"""The Prometheus Operator's part for rules: the watched LLMDeployments' PrometheusRules, loaded.

No Prometheus Operator runs in the local cluster, so nothing turns a PrometheusRule
into rules a Prometheus evaluates. `Rules(api_client, prometheus).sync(watched)` does
that for the harness's Prometheus: for each watched LLMDeployment it reads the
PrometheusRule the operator applied (its name and namespace) and loads its groups
as one rule file; one the operator pruned (or never made) is unloaded. It reads
again at most every `interval` seconds. The monitors (PodMonitor, ServiceMonitor)
are not read: the harness scrapes every Pod it serves.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from llm_operator.builders import monitoring
from tests.support import prometheus as prometheus_module

GROUP, VERSION = monitoring.MONITORING_API.split("/")
PLURAL = "prometheusrules"


class Rules:
    """Keeps the harness's Prometheus evaluating the operator's PrometheusRules."""

    def __init__(
        self,
        api_client: client.ApiClient,
        prometheus: prometheus_module.Prometheus,
        interval: float = 2.0,
    ) -> None:
        self._objects = client.CustomObjectsApi(api_client)
        self._prometheus = prometheus
        self._interval = interval
        self._next = 0.0

    def _read(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self._objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        assert isinstance(found, dict)
        return found

    def sync(self, watched: set[tuple[str, str]]) -> None:
        """Load each watched LLMDeployment's PrometheusRule; unload those gone."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        for namespace, name in sorted(watched):
            rule = self._read(namespace, name)
            if rule is None:
                self._prometheus.remove_rules(f"{namespace}.{name}")
            else:
                self._prometheus.set_rules(f"{namespace}.{name}", rule["spec"]["groups"])
