"""A load harness that makes the local cluster behave like a serving fleet.

The simulated GPU nodes (kwok) run no containers, so a Ready Pod serves nothing.
This package fills that in with real processes and a real Prometheus:

- `tests.support.prometheus.Prometheus`: the project's pinned Prometheus (`make
  tools`), 1 s scrapes, targets from file-based service discovery (`set_targets`)
  in job `llm` and, for the operator's metrics endpoint, job `llm-operator`; rule
  files (`set_rules`); the HTTP API (`query`, `query_range`, `value`, ...).
- `replicas.Replicas(api_client, prometheus, workdir, engine)`: for each Ready Pod of
  a watched LLMDeployment on a simulated GPU node, one `llm-serving sim` and, when
  the Pod has the gateway sidecar, one `llm-serving gateway` in front of it (with
  the LLMDeployment's guardrail policy) on loopback ports, registered with
  Prometheus as the PodMonitor makes them: `component="engine"` (/metrics/engine
  through the gateway, or the engine's /metrics) and `component="gateway"`
  (/metrics), labelled `namespace`, `pod`, `llmdeployment`; processes follow the
  Pods as they come and go. `replicas.EngineSettings` sets the simulated engine's
  batch, token rate, start-up delay, KV cache size and injected failure rate.
- `rules.Rules`: the watched LLMDeployments' PrometheusRules, as the operator applied
  them, loaded into that Prometheus (the Prometheus Operator's part).
- `load.LoadGenerator`: closed-loop, bounded requests spread over those replicas, in
  a mix of kinds (`traffic.Traffic`: plain, guardrail-blocked, cacheable, streamed),
  and `harness_service_pending_requests` (requests held while no replica is Ready),
  a signal that exists at zero replicas, scraped as `component="service"`.
- `harness.Harness(api_client, workdir)`: all of it as one context manager:
  `serve(namespace, name)`, `load(namespace, name, concurrency, mix=...)`,
  `scrape_operator(address)`, `prometheus_url`.

Used by the integration tests of autoscaling (`tests/integration/test_autoscaling.py`)
and of observability (`tests/integration/test_observability.py`, which runs every
dashboard query and alert on its data and draws the dashboard pictures), and by `make
demo-load` (`python -m tests.support.loadharness.demo`). Every process it starts, it
stops.
"""

from tests.support.loadharness.harness import Harness
from tests.support.loadharness.load import PENDING_METRIC, LoadGenerator
from tests.support.loadharness.replicas import EngineSettings, Replicas
from tests.support.loadharness.traffic import Traffic

__all__ = [
    "PENDING_METRIC",
    "EngineSettings",
    "Harness",
    "LoadGenerator",
    "Replicas",
    "Traffic",
]
