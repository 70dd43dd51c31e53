"""The autoscaling policies compared: the operator's builtin, a KEDA-like and a KubeAI-like one.

All three act on the same signal, the requests in the engines (waiting + running,
what `includeRunning: true` reads), with the same target per replica and bounds,
so the comparison is of how they decide, not of what they read.

- builtin: `llm_operator.autoscaling.decision.decide`, the function the operator's
  loop runs, with `Policy.from_spec` of an `LLMDeployment`'s `spec.autoscaling`;
  it reads the pods directly (the operator's default source) every polling
  interval: the signal, the waiting queue and the requests finished so far
  (`vllm:request_success_total`), as the operator's loop reads them.
- keda-like: KEDA's defaults with a 15 s polling interval, reading Prometheus (so
  a reading is up to one scrape interval old), and the HPA's default algorithm and
  behaviour: replicas = ceil(signal / target) unless within 10% of the target;
  scale up by at most max(4 Pods, 100%) per 15 s with no stabilisation; scale down
  to the highest recommendation of the last 300 s, by up to 100% per 15 s.
- kubeai-like: KubeAI's way: the in-flight requests sampled every 10 s and
  averaged over a ten-minute window, replicas = ceil(average / target), a
  scale-down only after it has been wanted for 30 s.
"""

from __future__ import annotations

import collections
import math

from fleetsim import fleet
from llm_operator.api import v1alpha1
from llm_operator.autoscaling import decision


class Builtin:
    """The operator's decision code, fed as the operator's loop feeds it."""

    name = "builtin"

    def __init__(self, spec: v1alpha1.Autoscaling) -> None:
        self.policy = decision.Policy.from_spec(spec)
        self.state = decision.State()
        self.interval = float(spec.polling_interval_seconds)

    def decide(self, view: fleet.View) -> int:
        observation = decision.Observation(
            now=view.now,
            signal=float(view.waiting + view.running),
            replicas=view.replicas,
            ready=view.ready,
            waiting=float(view.waiting),
            completed=float(view.completed),
        )
        outcome, self.state = decision.decide(self.policy, self.state, observation)
        return outcome.desired


class KedaLike:
    """KEDA (15 s polling, Prometheus) driving an HPA with its default behaviour."""

    name = "keda-like"
    interval = 15.0
    tolerance = 0.1
    down_window = 300.0

    def __init__(self, min_replicas: int, max_replicas: int, target: float) -> None:
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.target = target
        self.recommendations: collections.deque[tuple[float, int]] = collections.deque()

    def decide(self, view: fleet.View) -> int:
        current = view.replicas
        value = float(view.scraped_waiting + view.scraped_running)
        ratio = value / (max(current, 1) * self.target)
        if current > 0 and abs(ratio - 1.0) <= self.tolerance:
            wanted = current
        else:
            wanted = math.ceil(value / self.target - 1e-9)
        wanted = min(self.max_replicas, max(self.min_replicas, wanted))
        self.recommendations.append((view.now, wanted))
        while self.recommendations and self.recommendations[0][0] <= view.now - self.down_window:
            self.recommendations.popleft()
        desired = current
        if wanted > current:
            desired = min(wanted, current + max(4, current))
        elif wanted < current:
            desired = min(current, max(r for _, r in self.recommendations))
        return desired


class KubeAILike:
    """A ten-minute average of in-flight requests, KubeAI's autoscaler."""

    name = "kubeai-like"
    interval = 10.0
    window = 600.0
    scale_down_delay = 30.0

    def __init__(self, min_replicas: int, max_replicas: int, target: float) -> None:
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.target = target
        self.samples: collections.deque[tuple[float, float]] = collections.deque()
        self.lower_since: float | None = None

    def decide(self, view: fleet.View) -> int:
        self.samples.append((view.now, float(view.waiting + view.running)))
        while self.samples and self.samples[0][0] <= view.now - self.window:
            self.samples.popleft()
        average = sum(v for _, v in self.samples) / len(self.samples)
        wanted = math.ceil(average / self.target - 1e-9)
        wanted = min(self.max_replicas, max(self.min_replicas, wanted))
        if wanted >= view.replicas:
            self.lower_since = None
            return wanted
        if self.lower_since is None:
            self.lower_since = view.now
        if view.now - self.lower_since >= self.scale_down_delay:
            return wanted
        return view.replicas
