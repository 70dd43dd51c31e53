"""A load harness that makes the local cluster behave like a serving fleet.

The simulated GPU nodes (kwok) run no containers, so a Ready Pod serves nothing.
This package fills that in with real processes and a real Prometheus:

- `prometheus.Prometheus.start(workdir)`: the project's pinned Prometheus (`make
  tools`, started by `tests.support.prometheus`), 1 s scrapes, targets from
  file-based service discovery (`set_targets`); `value(expr)` sums an instant query,
  `server` has the rest of the HTTP API.
- `replicas.Replicas(api_client, prometheus, workdir, engine)`: for each Ready Pod of
  a watched LLMDeployment on a simulated GPU node, one `llm-serving sim` behind one
  `llm-serving gateway` on loopback ports (with the LLMDeployment's guardrail
  policy), registered with Prometheus as `component="engine"` (/metrics/engine) and
  `component="gateway"` (/metrics), labelled `namespace`, `pod`, `llmdeployment`;
  processes follow the Pods as they come and go. `replicas.EngineSettings` sets the
  simulated engine's batch, token rate and start-up delay.
- `load.LoadGenerator`: closed-loop, bounded requests spread over those gateways, and
  `harness_service_pending_requests` (requests held while no replica is Ready), a
  signal that exists at zero replicas, scraped as `component="service"`.
- `harness.Harness(api_client, workdir)`: all three as one context manager:
  `serve(namespace, name)`, `load(namespace, name, concurrency)`, `prometheus_url`.

Used by the integration tests (`tests/integration/test_autoscaling.py`), `make
demo-load` (`python -m tests.support.loadharness.demo`) and the observability tests
that run every dashboard query on real data. Every process it starts, it stops.
"""

from tests.support.loadharness.harness import Harness
from tests.support.loadharness.load import PENDING_METRIC, LoadGenerator
from tests.support.loadharness.prometheus import Prometheus, Target
from tests.support.loadharness.replicas import EngineSettings, Replicas, wait_until

__all__ = [
    "PENDING_METRIC",
    "EngineSettings",
    "Harness",
    "LoadGenerator",
    "Prometheus",
    "Replicas",
    "Target",
    "wait_until",
]
