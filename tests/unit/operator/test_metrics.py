"""The operator's metrics: the per-LLMDeployment figures, GPU-hours, API errors, the server."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from kubernetes.client import exceptions as client_exceptions
from prometheus_client import parser

from llm_operator import kube, metrics, pricing
from llm_operator.autoscaling import signal

PRICES = pricing.PriceTable(default=2.0, prices={"NVIDIA-L4": 1.0})


def pod(
    phase: str, node: str | None = "n1", gpus: int = 1, unschedulable: bool = False
) -> dict[str, Any]:
    conditions = []
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    spec: dict[str, Any] = {
        "containers": [
            {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}},
            {"name": "gateway", "resources": {"limits": {"cpu": "1"}}},
        ]
    }
    if node:
        spec["nodeName"] = node
    return {"spec": spec, "status": {"phase": phase, "conditions": conditions}}


STATUS = {
    "phase": "Progressing",
    "desiredReplicas": 3,
    "readyReplicas": 1,
    "conditions": [{"type": "Ready", "status": "False"}, {"type": "Degraded", "status": "True"}],
}


def samples(fleet: metrics.Fleet) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in fleet.collect():
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def labels(**kv: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kv.items()))


def test_snapshot_counts_pods_gpus_and_unschedulable() -> None:
    pods = [
        pod("Running", gpus=2),
        pod("Pending", gpus=2),  # bound, pulling its image: holds its GPUs
        pod("Pending", node=None, gpus=2, unschedulable=True),
        pod("Succeeded", gpus=2),
    ]
    snap = metrics.snapshot(STATUS, pods, "nvidia.com/gpu", "NVIDIA-L4")
    assert dict(snap.pods_by_phase) == {
        "Pending": 2,
        "Running": 1,
        "Succeeded": 1,
        "Failed": 0,
        "Unknown": 0,
    }
    assert snap.gpus == 4
    assert snap.unschedulable_pods == 1
    assert (snap.desired_replicas, snap.ready_replicas) == (3, 1)
    assert snap.conditions == (("Ready", "False"), ("Degraded", "True"))


def test_fleet_renders_per_object_series_and_counts_by_phase() -> None:
    fleet = metrics.Fleet(PRICES, clock=lambda: 0.0)
    snap = metrics.snapshot(STATUS, [pod("Running")], "nvidia.com/gpu", "NVIDIA-L4")
    fleet.observe("ns1", "a", snap)
    scaled = metrics.snapshot(
        STATUS, [pod("Running")], "nvidia.com/gpu", "NVIDIA-L4", ("keda", 1, 4, 2.5)
    )
    fleet.observe("ns1", "b", scaled)
    got = samples(fleet)
    b = {"namespace": "ns1", "llmdeployment": "b", "provider": "keda"}
    assert got[("llm_operator_llmdeployment_autoscaling_max_replicas", labels(**b))] == 4
    assert got[("llm_operator_llmdeployment_autoscaling_target_queue_depth", labels(**b))] == 2.5
    assert not any(
        name.startswith("llm_operator_llmdeployment_autoscaling")
        and dict(key).get("llmdeployment") == "a"
        for name, key in got
    )
    obj = {"namespace": "ns1", "llmdeployment": "a"}
    assert got[("llm_operator_llmdeployments", labels(namespace="ns1", phase="Progressing"))] == 2
    assert got[("llm_operator_llmdeployment_phase", labels(**obj, phase="Progressing"))] == 1
    assert (
        got[
            (
                "llm_operator_llmdeployment_condition",
                labels(**obj, condition="Ready", status="False"),
            )
        ]
        == 1
    )
    assert got[("llm_operator_llmdeployment_desired_replicas", labels(**obj))] == 3
    assert got[("llm_operator_llmdeployment_ready_replicas", labels(**obj))] == 1
    assert got[("llm_operator_llmdeployment_unavailable_replicas", labels(**obj))] == 2
    assert got[("llm_operator_llmdeployment_pods", labels(**obj, phase="Running"))] == 1
    assert got[("llm_operator_llmdeployment_gpus", labels(**obj, gpu_type="NVIDIA-L4"))] == 1


def test_gpu_hours_integrate_the_gpus_held_over_time_at_the_type_price() -> None:
    now = [0.0]
    fleet = metrics.Fleet(PRICES, clock=lambda: now[0])
    two = metrics.snapshot(STATUS, [pod("Running", gpus=2)], "nvidia.com/gpu", "NVIDIA-L4")
    four = metrics.snapshot(
        STATUS, [pod("Running", gpus=2), pod("Running", gpus=2)], "nvidia.com/gpu", "NVIDIA-L4"
    )
    fleet.observe("ns", "a", two)
    now[0] = 1800.0
    fleet.observe("ns", "a", four)  # 2 GPUs for half an hour
    now[0] = 3600.0  # then 4 GPUs for half an hour
    got = samples(fleet)
    key = labels(namespace="ns", llmdeployment="a", gpu_type="NVIDIA-L4")
    assert got[("llm_operator_llmdeployment_gpu_hours_total", key)] == pytest.approx(3.0)
    assert got[("llm_operator_llmdeployment_gpu_cost_dollars_total", key)] == pytest.approx(3.0)
    # An unlisted type is priced at the default.
    fleet.observe(
        "ns", "b", metrics.snapshot(STATUS, [pod("Running")], "nvidia.com/gpu", "unspecified")
    )
    now[0] = 7200.0
    key_b = labels(namespace="ns", llmdeployment="b", gpu_type="unspecified")
    assert samples(fleet)[("llm_operator_llmdeployment_gpu_cost_dollars_total", key_b)] == (
        pytest.approx(2.0)
    )


def test_forgotten_and_vanished_objects_lose_their_series() -> None:
    fleet = metrics.Fleet(PRICES, clock=lambda: 0.0)
    snap = metrics.snapshot(STATUS, [], "nvidia.com/gpu", "x")
    for name in ("a", "b", "c"):
        fleet.observe("ns", name, snap)
    fleet.forget("ns", "a")
    fleet.keep_only([("ns", "c")])
    assert fleet.names() == [("ns", "c")]
    names = {dict(key[1]).get("llmdeployment") for key in samples(fleet)}
    assert names == {"c", None}  # None: the by-phase count has no llmdeployment label


def test_every_operator_family_is_prefixed() -> None:
    text = metrics.exposition().decode()
    families = list(parser.text_string_to_metric_families(text))
    ours = [f.name for f in families if not f.name.startswith(("process_", "python_"))]
    assert ours, text
    assert all(name.startswith("llm_operator_") for name in ours), ours


def test_api_errors_are_counted_by_code_and_expected_answers_are_not() -> None:
    def value(operation: str, code: str) -> float:
        got = metrics.REGISTRY.get_sample_value(
            "llm_operator_api_errors_total", {"operation": operation, "code": code}
        )
        return got or 0.0

    before = value("get", "500"), value("lease", "409")
    with pytest.raises(client_exceptions.ApiException), kube._call("get"):
        raise client_exceptions.ApiException(status=500)
    with (
        pytest.raises(client_exceptions.ApiException),
        kube._call("lease", expected=(client_exceptions.ApiException,)),
    ):
        raise client_exceptions.ApiException(status=409)
    with pytest.raises(ConnectionRefusedError), kube._call("get"):
        raise ConnectionRefusedError
    assert value("get", "500") == before[0] + 1
    assert value("lease", "409") == before[1]
    assert value("get", "connection") >= 1


def test_server_answers_on_a_real_socket() -> None:
    metrics.RECONCILES.labels("resync", "success").inc()
    server = metrics.serve("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            body = r.read().decode()
            assert r.status == 200
    finally:
        server.close()
    assert 'llm_operator_reconciles_total{result="success",trigger="resync"}' in body
    assert 'llm_operator_build_info{version="' in body


def test_unknown_trigger_or_result_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reconcile"):
        metrics.outcome_labels("timer", "success")


def test_price_table_shipped_and_invalid(tmp_path: pathlib.Path) -> None:
    shipped = pricing.default_table()
    assert shipped.default > 0
    assert shipped.price("no-such-gpu") == shipped.default
    bad = tmp_path / "prices.yaml"
    bad.write_text("default: -1\nprices: {NVIDIA-L4: cheap}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"default: .*greater than or equal to 0") as info:
        pricing.load(bad)
    assert "prices.NVIDIA-L4" in str(info.value)
    result = subprocess.run(
        [sys.executable, "-m", "llm_operator.cli", "run", "--gpu-prices", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--gpu-prices:" in result.stderr
    assert "prices.NVIDIA-L4" in result.stderr


def test_gpu_type_is_the_node_label() -> None:
    assert pricing.gpu_type("H100-80GB") == "NVIDIA-H100-80GB-HBM3"
    assert pricing.gpu_type("NVIDIA-L4") == "NVIDIA-L4"
    assert pricing.gpu_type("Some-Future-GPU") == "Some-Future-GPU"
    assert pricing.gpu_type(None) == "unspecified"
    shipped = pricing.default_table()
    assert shipped.price(pricing.gpu_type("H100-80GB")) != shipped.default


def test_set_prices_exposes_the_table() -> None:
    metrics.set_prices(PRICES)
    try:
        get = metrics.REGISTRY.get_sample_value
        assert get("llm_operator_gpu_price_dollars_per_hour", {"gpu_type": "NVIDIA-L4"}) == 1.0
        assert get("llm_operator_gpu_price_dollars_per_hour", {"gpu_type": "default"}) == 2.0
    finally:
        metrics.set_prices(pricing.default_table())


def test_autoscaler_decisions_start_at_zero_for_every_outcome() -> None:
    autoscalers = metrics.Autoscalers()
    figures = metrics.AutoscalerFigures("queueDepth", 4.0, 2, 9.0, panic=False)
    outcomes = [("up", "Burst"), ("none", "WithinTarget")]
    autoscalers.observe("ns", "chat", figures, "none", "WithinTarget", None, outcomes=outcomes)
    autoscalers.observe("ns", "chat", figures, "up", "Burst", "NoMetrics", outcomes=outcomes)
    autoscalers.observe("ns", "chat", figures, "none", "WithinTarget", None, outcomes=outcomes)
    found = {
        (sample.name, sample.labels.get("direction"), sample.labels.get("reason")): sample.value
        for family in autoscalers.collect()
        for sample in family.samples
        if sample.name.startswith("llm_operator_autoscaler_decisions")
        and not sample.name.endswith("_created")
    }
    name = "llm_operator_autoscaler_decisions_total"
    assert found == {(name, "up", "Burst"): 1, (name, "none", "WithinTarget"): 2}
    fresh = metrics.Autoscalers()
    fresh.observe("ns", "chat", figures, "none", "WithinTarget", None, outcomes=outcomes)
    zero = {
        (s.labels["direction"], s.labels["reason"]): s.value
        for family in fresh.collect()
        for s in family.samples
        if s.name == name
    }
    assert zero == {("up", "Burst"): 0, ("none", "WithinTarget"): 1}


def test_autoscaler_signal_errors_start_at_zero_for_every_reason() -> None:
    autoscalers = metrics.Autoscalers()
    figures = metrics.AutoscalerFigures("queueDepth", 4.0, 2, None, panic=False)
    reasons = ["NoMetrics", "PrometheusUnreachable"]
    autoscalers.observe("ns", "chat", figures, "none", "NoSignal", None, read_errors=reasons)
    autoscalers.observe("ns", "chat", figures, "none", "NoSignal", "NoMetrics", read_errors=reasons)
    name = "llm_operator_autoscaler_signal_errors_total"
    found = {
        s.labels["reason"]: s.value
        for family in autoscalers.collect()
        for s in family.samples
        if s.name == name
    }
    assert found == {"NoMetrics": 1, "PrometheusUnreachable": 0}


def test_read_errors_lists_every_reason_a_reading_fails_with() -> None:
    source = pathlib.Path(signal.__file__).read_text(encoding="utf-8")
    raised = set(re.findall(r'error="(\w+)"', source))
    assert raised
    assert raised == set(signal.READ_ERRORS)
