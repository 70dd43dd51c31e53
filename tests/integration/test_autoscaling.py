"""Autoscaling for real: the operator, the local cluster, the load harness and its Prometheus.

The builtin loop scales a real Deployment up under load (the simulated nodes bring
the new Pods up, the harness serves them, the queue drains) and back down after its
window, and stops at what the GPU nodes hold with `ScalingLimited`. Without a signal
it claims nothing. KEDA's ScaledObject and the HPA are accepted by the real API
server; the ScaledObject's wake trigger is shown non-empty at zero replicas on the
harness's Prometheus while its signal trigger is empty, and the HPA's own status
(from the real HPA controller) is what status says.
"""

from __future__ import annotations

import copy
import datetime
import pathlib
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import parser

from llm_operator import metrics
from tests.integration import cluster, conftest
from tests.integration import test_operator as helpers
from tests.support import loadharness, tools

ENGINE = loadharness.EngineSettings(max_num_seqs=4, decode_tokens_per_s=20.0, output_tokens=16)
# Short windows, so a test sees a whole cycle in a minute or two.
FAST = {
    "enabled": True,
    "provider": "builtin",
    "minReplicas": 1,
    "maxReplicas": 4,
    "includeRunning": True,
    "targetPerReplica": 4,
    "pollingIntervalSeconds": 1,
    "stableWindowSeconds": 6,
    "panicWindowSeconds": 2,
    "scaleDownStabilizationSeconds": 15,
    "scalePeriodSeconds": 5,
}


@pytest.fixture
def harness(
    operator: conftest.Operator, namespace: str, tmp_path: pathlib.Path
) -> Iterator[loadharness.Harness]:
    with loadharness.Harness(operator.plane.new_client(), tmp_path, engine=ENGINE) as running:
        yield running


def _llmd(name: str, autoscaling: dict[str, Any], **spec: Any) -> dict[str, Any]:
    doc = helpers.load(conftest.ROOT / "examples" / "minimal.yaml")
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    doc["spec"].pop("replicas", None)
    doc["spec"]["autoscaling"] = autoscaling
    doc["spec"].update(spec)
    return doc


def _replicas(plane: cluster.ControlPlane, namespace: str, name: str) -> int:
    return int(plane.apps.read_namespaced_deployment(name, namespace).spec.replicas or 0)


def _events(plane: cluster.ControlPlane, namespace: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in plane.core.list_namespaced_event(namespace).items
        if e.reason == reason and e.involved_object.name == name
    ]


def _when(
    plane: cluster.ControlPlane, namespace: str, name: str, test: Callable[[dict[str, Any]], Any]
) -> dict[str, Any] | None:
    """The LLMDeployment if `test` holds for it now, else None (a probe for wait_for)."""
    obj = helpers.get(plane, namespace, name)
    return obj if test(obj) else None


def _metric(name: str, **labels: str) -> float:
    """The operator's own metric (it runs in this process), summed over matching series."""
    total = 0.0
    for family in parser.text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _active(obj: dict[str, Any]) -> dict[str, Any]:
    return helpers.condition(obj, "ScalingActive")


def test_builtin_scales_up_under_load_and_down_after_its_window(
    operator: conftest.Operator, namespace: str, harness: loadharness.Harness
) -> None:
    plane = operator.plane
    name = "chat"
    autoscaling = {**FAST, "prometheusUrl": harness.prometheus_url}
    helpers.create(plane, namespace, _llmd(name, autoscaling))
    harness.serve(namespace, name)
    helpers.wait_ready(plane, namespace, name)
    obj = cluster.wait_for(
        "the signal read from Prometheus",
        lambda: _when(plane, namespace, name, lambda o: _active(o).get("reason") == "SignalRead"),
        timeout=60,
    )
    assert _active(obj)["status"] == "True"
    assert _replicas(plane, namespace, name) == 1

    # 12 clients, 4 sequences per replica, a target of 4 requests per replica: 3 replicas.
    load = harness.load(namespace, name, concurrency=12)
    queued = cluster.wait_for(
        "a queue in status",
        lambda: _when(
            plane, namespace, name, lambda o: (o.get("status") or {}).get("queueDepth", 0) > 0
        ),
        timeout=60,
    )
    assert queued["status"]["autoscaler"]["signal"] >= queued["status"]["queueDepth"]
    cluster.wait_for(
        "3 replicas wanted and Ready, each served by the harness",
        lambda: (
            _replicas(plane, namespace, name) >= 3
            and helpers.get(plane, namespace, name)["status"].get("readyReplicas", 0) >= 3
            and len(harness.replicas.pods(namespace, name)) >= 3
        ),  # type: ignore[union-attr]
        timeout=120,
    )
    assert _replicas(plane, namespace, name) <= 4
    assert _events(plane, namespace, name, "ScaledUp")
    prometheus = harness.prometheus
    assert prometheus is not None
    waiting = f'sum(vllm:num_requests_waiting{{namespace="{namespace}",llmdeployment="{name}"}})'
    cluster.wait_for(
        "the queue drained by the new replicas",
        lambda: (prometheus.value(waiting) or 0) == 0,
        timeout=60,
    )
    status = helpers.get(plane, namespace, name)["status"]
    assert status["lastScaleTime"]
    ups = _metric(
        "llm_operator_autoscaler_decisions_total",
        namespace=namespace,
        llmdeployment=name,
        direction="up",
    )
    assert ups >= 1
    assert _metric("llm_operator_autoscaler_desired_replicas", llmdeployment=name) >= 3

    # Load stops: the count holds for the 15 s window, then steps down to the minimum.
    load.stop()
    stopped = datetime.datetime.now(datetime.UTC)
    top = _replicas(plane, namespace, name)
    cluster.wait_for(
        "scaled back to 1 replica",
        lambda: _replicas(plane, namespace, name) == 1,
        timeout=120,
    )
    downs = _events(plane, namespace, name, "ScaledDown")
    assert top >= 3
    # Not below the 3 the load asked for before the 15 s scale-down window (event times
    # have whole seconds). A hedge (replicas started beyond that count to race a cold
    # start while requests waited) goes as soon as it is not needed.
    window_end = stopped.replace(microsecond=0) + datetime.timedelta(seconds=14)
    for event in downs:
        if event.first_timestamp < window_end:
            left = re.search(r"-> (\d+)", event.message)
            assert left is not None, event.message
            assert int(left.group(1)) >= 3, event.message
    assert any(e.first_timestamp >= window_end for e in downs)
    helpers.wait_ready(plane, namespace, name)
    assert load.stats.answered > 0
    assert load.stats.failed == 0


def test_builtin_stops_at_what_the_gpu_nodes_hold(
    operator: conftest.Operator, namespace: str, harness: loadharness.Harness
) -> None:
    plane = operator.plane
    name = "big"
    # Each replica takes a whole 8-GPU node; the cluster has two.
    autoscaling = {**FAST, "maxReplicas": 4, "prometheusUrl": harness.prometheus_url}
    doc = _llmd(
        name,
        autoscaling,
        resources={"gpus": 8},
        engine={"tensorParallelSize": 8},
    )
    helpers.create(plane, namespace, doc)
    harness.serve(namespace, name)
    helpers.wait_ready(plane, namespace, name)
    harness.load(namespace, name, concurrency=16)

    def limited() -> dict[str, Any] | None:
        obj = helpers.get(plane, namespace, name)
        found = helpers.condition(obj, "ScalingLimited")
        holding = found.get("reason") == "GPUShortage" and "holds at" in found.get("message", "")
        return obj if holding else None

    obj = cluster.wait_for("ScalingLimited GPUShortage", limited, timeout=120)
    message = helpers.condition(obj, "ScalingLimited")["message"]
    assert helpers.condition(obj, "ScalingLimited")["status"] == "True"
    assert "Pending" in message
    assert "each replica needs 8" in message
    assert _events(plane, namespace, name, "GPUShortage")
    # It added what fits and one Pending replica (a node autoscaler's cue), and holds there
    # while that one waits for GPUs, though the load asks for 4.
    held = _replicas(plane, namespace, name)
    pods = helpers.pods(plane, namespace, name)
    pending = [p for p in pods if not p.spec.node_name]
    assert len(pending) == 1
    assert held == len(pods)
    assert held < 4
    time.sleep(8)
    assert _replicas(plane, namespace, name) == held
    assert helpers.get(plane, namespace, name)["status"]["autoscaler"]["signal"] > 4 * held


def test_builtin_without_a_signal_claims_nothing(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    name = "blind"
    # No Prometheus anywhere: the pods' own endpoints, which kwok's Pods do not serve.
    autoscaling = {**FAST, "minReplicas": 2}
    helpers.create(plane, namespace, _llmd(name, autoscaling))
    obj = cluster.wait_for(
        "ScalingActive False with the reason",
        lambda: _when(
            plane,
            namespace,
            name,
            lambda o: _active(o).get("reason") in ("MetricsUnreachable", "NoReadyPods"),
        ),
        timeout=90,
    )
    assert _active(obj)["status"] == "False"
    assert "holding 2 replicas" in _active(obj)["message"]
    assert obj["status"].get("queueDepth") is None
    assert _replicas(plane, namespace, name) == 2
    warned = cluster.wait_for(
        "a Warning after three failed readings",
        lambda: (
            _events(plane, namespace, name, "MetricsUnreachable")
            or _events(plane, namespace, name, "NoReadyPods")
        ),
        timeout=30,
    )
    assert warned[0].type == "Warning"
    assert "cannot read its signal" in warned[0].message


def test_advise_mode_decides_and_changes_nothing(
    operator: conftest.Operator, namespace: str, harness: loadharness.Harness
) -> None:
    plane = operator.plane
    name = "advised"
    autoscaling = {**FAST, "mode": "advise", "prometheusUrl": harness.prometheus_url}
    helpers.create(plane, namespace, _llmd(name, autoscaling, replicas=1))
    harness.serve(namespace, name)
    helpers.wait_ready(plane, namespace, name)
    harness.load(namespace, name, concurrency=12)
    obj = cluster.wait_for(
        "a recommendation above 1",
        lambda: _when(
            plane,
            namespace,
            name,
            lambda o: (
                ((o.get("status") or {}).get("autoscaler") or {}).get("recommendedReplicas", 0) > 1
            ),
        ),
        timeout=90,
    )
    assert _active(obj)["reason"] == "AdviseOnly"
    assert _replicas(plane, namespace, name) == 1
    assert obj["status"]["desiredReplicas"] == 1
    assert _events(plane, namespace, name, "Recommendation")


def test_kubectl_scale_is_refused_while_autoscaling(
    operator: conftest.Operator, namespace: str, tmp_path: pathlib.Path
) -> None:
    plane = operator.plane
    helpers.create(plane, namespace, _llmd("scaled", {**FAST}))
    out = subprocess.run(
        [str(tools.path("kubectl")), "scale", "llmd", "scaled", "-n", namespace, "--replicas=3"],
        capture_output=True,
        text=True,
        # kubectl keeps its discovery cache under $HOME/.kube: a home of its own.
        env={"KUBECONFIG": str(plane.kubeconfig), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert out.returncode != 0
    assert "replicas cannot change while autoscaling is on" in out.stderr
    # Turning autoscaling off and scaling in one change is allowed.
    helpers.patch_spec(
        plane, namespace, "scaled", {"autoscaling": {"enabled": False}, "replicas": 2}
    )
    helpers.wait_ready(plane, namespace, "scaled")
    assert _replicas(plane, namespace, "scaled") == 2


def test_keda_wakes_from_zero_on_a_signal_that_exists_at_zero(
    operator: conftest.Operator, namespace: str, harness: loadharness.Harness
) -> None:
    plane = operator.plane
    name = "sleepy"
    wake = f'sum({loadharness.PENDING_METRIC}{{namespace="{namespace}",llmdeployment="{name}"}})'
    autoscaling = {
        "enabled": True,
        "provider": "keda",
        "minReplicas": 0,
        "maxReplicas": 3,
        "prometheusUrl": harness.prometheus_url,
        "activationQuery": wake,
    }
    helpers.create(plane, namespace, _llmd(name, autoscaling))
    harness.serve(namespace, name)
    scaled = cluster.wait_for(
        "the ScaledObject accepted by the API server (KEDA's CRD)",
        lambda: (
            plane.dynamic.resources.get(api_version="keda.sh/v1alpha1", kind="ScaledObject")
            .get(name=name, namespace=namespace)
            .to_dict()
        ),
        timeout=60,
    )
    triggers = {t["name"]: t for t in scaled["spec"]["triggers"]}
    assert triggers["wake"]["metadata"]["query"] == wake
    # No KEDA runs here: status must not claim that anything scales.
    obj = cluster.wait_for(
        "ScalingActive False",
        lambda: _when(
            plane, namespace, name, lambda o: _active(o).get("reason") == "KEDANotReporting"
        ),
        timeout=60,
    )
    assert _active(obj)["status"] == "False"

    # Idle at zero, as KEDA leaves it (the operator does not write a KEDA Deployment's replicas).
    plane.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 0}})
    cluster.wait_for("no pods", lambda: not helpers.pods(plane, namespace, name), timeout=60)
    prometheus = harness.prometheus
    assert prometheus is not None
    signal_query = triggers["signal"]["metadata"]["query"]
    load = harness.load(namespace, name, concurrency=3)
    cluster.wait_for("requests held at zero", lambda: load.pending == 3, timeout=30)
    # The engines' signal has no series at zero (KEDA's ignoreNullValues reads 0, at or
    # below activationThreshold 0: it would never wake on it) ...
    time.sleep(3)
    assert prometheus.value(signal_query) is None
    # ... while the wake trigger's query, as KEDA runs it, is above its activation threshold.
    value = cluster.wait_for(
        "the wake signal in Prometheus", lambda: prometheus.value(wake), timeout=30
    )
    assert value > float(triggers["wake"]["metadata"]["activationThreshold"])

    # KEDA activates: one replica; the held requests are served and the signal appears.
    plane.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 1}})
    cluster.wait_for("held requests served", lambda: load.pending == 0, timeout=90)
    cluster.wait_for(
        "the signal trigger has data",
        lambda: prometheus.value(signal_query) is not None,
        timeout=30,
    )
    cluster.wait_for("answers", lambda: load.stats.answered > 0, timeout=30)


def test_hpa_status_is_what_status_says(operator: conftest.Operator, namespace: str) -> None:
    plane = operator.plane
    name = "hpa"
    helpers.create(plane, namespace, _llmd(name, {"enabled": True, "provider": "hpa"}))
    # The real HPA controller finds no external metrics API here and says so.
    obj = cluster.wait_for(
        "ScalingActive from the HPA's own condition",
        lambda: _when(
            plane,
            namespace,
            name,
            lambda o: _active(o).get("reason") not in (None, "HPAMissing", "HPANotReporting"),
        ),
        timeout=120,
    )
    hpa = (
        plane.dynamic.resources.get(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler")
        .get(name=name, namespace=namespace)
        .to_dict()
    )
    theirs = {c["type"]: c for c in hpa["status"]["conditions"]}["ScalingActive"]
    assert _active(obj)["status"] == theirs["status"] == "False"
    assert _active(obj)["reason"] == theirs["reason"]
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]
    assert selector == {"matchLabels": {"llmdeployment": name}}
